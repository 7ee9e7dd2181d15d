"""How fast does a task start? The task entrypoint against ``kedro run --nodes`` for the same node.

Every Vertex AI task pays its start-up once per container, so the entrypoint skips the Kedro CLI, CLI plugins and
unused hook plugins. This runs both on a private copy of ``examples/demo_project`` several times (alternating,
after one untimed warm-up of each so file caches are equally warm) and prints the median time to the first node
("Running node:" in the log) and to process exit, and the ratios.

Three commands: ``kedro run --pipeline P --nodes N``; the entrypoint as the compiled spec starts it today
(``--pipeline P --node N``: loading ``P`` imports every node module of ``P``, e.g. scikit-learn for the demo's
``model`` pipeline even when the task only summarises a CSV); and the entrypoint with ``--node-pipeline S``, the
smallest registered pipeline holding the node, so only the node modules of ``S`` are imported. A fourth line,
``warm fork``, is the same entrypoint task forked by the local backend's warm-start process
(:mod:`kedro_vertex_runner.backends.local.warm`) once it has preloaded the project: what a local task costs by default.

Last measured (3 runs each, shared 2-core machine, load average ≈0.8): first node after 4.79 s (``kedro run``),
3.85 s (entrypoint, 0.80x), 1.90 s (``--node-pipeline``, 0.40x), 0.43 s (warm fork, 0.09x).

    python bench/bootstrap.py [--node summarize_raw_data] [--pipeline __default__] [--node-pipeline reporting]
                              [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "demo_project"
BIN = Path(sys.executable).parent
MARKER = "Running node:"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DO_NOT_TRACK": "1",
            "KEDRO_DISABLE_TELEMETRY": "true",
            "NO_GCE_CHECK": "true",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            "PYTHONUNBUFFERED": "1",
            "COLUMNS": "200",
        }
    )
    return env


def measure(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Seconds from start to the first "Running node:" line, and to exit."""
    start = time.perf_counter()
    first = None
    proc = subprocess.Popen(cmd, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output = []
    for line in proc.stdout:
        output.append(line)
        if first is None and MARKER in line:
            first = time.perf_counter() - start
    code = proc.wait()
    total = time.perf_counter() - start
    if code != 0 or first is None:
        sys.stderr.write("".join(output[-30:]))
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code})")
    return first, total


def measure_warm(args: list[str], cwd: Path, zygote: object, log: Path) -> tuple[float, float]:
    """Like :func:`measure`, for the entrypoint forked by an already started warm-start process."""
    log.write_text("")
    start = time.perf_counter()
    process = zygote.start(args, _env(), cwd, log)  # type: ignore[attr-defined]
    first = None
    while process.poll() is None:
        if first is None and MARKER in log.read_text():
            first = time.perf_counter() - start
        time.sleep(0.005)
    total = time.perf_counter() - start
    if process.poll() != 0 or first is None:
        sys.stderr.write(log.read_text()[-3000:])
        raise SystemExit(f"warm fork of {' '.join(args)} failed (exit {process.poll()})")
    return first, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", default="summarize_raw_data")
    parser.add_argument("--pipeline", default="__default__")
    parser.add_argument("--node-pipeline", default="reporting", help="registered pipeline holding --node")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "demo_project"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "mlruns"))
        entrypoint = [
            sys.executable, "-m", "kedro_vertex_runner.entrypoint", "--pipeline", args.pipeline,
            "--node", args.node, "--run-id", "bench", "--root", str(Path(tmp) / "runs"),
        ]  # fmt: skip
        commands = {
            "kedro run": [str(BIN / "kedro"), "run", "--pipeline", args.pipeline, "--nodes", args.node],
            "entrypoint": entrypoint,
            "+node-pipe": [*entrypoint, "--node-pipeline", args.node_pipeline],
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for cmd in commands.values():  # warm-up: byte-code caches, page cache
            measure(cmd, project)
        from kedro_vertex_runner.backends.local.warm import Zygote

        zygote = Zygote(project, _env())
        log = Path(tmp) / "warm.log"
        results["warm fork"] = []
        measure_warm(entrypoint[3:], project, zygote, log)  # waits for the preload
        try:
            for _ in range(args.repeat):
                for name, cmd in commands.items():
                    results[name].append(measure(cmd, project))
                results["warm fork"].append(measure_warm(entrypoint[3:], project, zygote, log))
        finally:
            zygote.close()

    print(f"node {args.node!r} of pipeline {args.pipeline!r}, {args.repeat} runs each (median, min–max seconds)")
    print(f"{'command':<12} {'first node':>22} {'total':>22}")
    medians = {}
    for name, runs in results.items():
        firsts = [r[0] for r in runs]
        totals = [r[1] for r in runs]
        medians[name] = (statistics.median(firsts), statistics.median(totals))
        print(
            f"{name:<12} {medians[name][0]:>8.2f} ({min(firsts):.2f}–{max(firsts):.2f})"
            f" {medians[name][1]:>8.2f} ({min(totals):.2f}–{max(totals):.2f})"
        )
    base_first, base_total = medians["kedro run"]
    for name in ("entrypoint", "+node-pipe", "warm fork"):
        ratio_first = medians[name][0] / base_first
        ratio_total = medians[name][1] / base_total
        print(f"ratio {name} / kedro run: first node {ratio_first:.2f}x, total {ratio_total:.2f}x (target ≤ 0.40x)")


if __name__ == "__main__":
    main()
