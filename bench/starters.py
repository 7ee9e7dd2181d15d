"""Is ``kedro run --runner=VertexRunner`` (local backend) slower than plain ``kedro run`` on Kedro's own starters?

Creates each official starter (``spaceflights-pandas``, ``spaceflights-pyspark``, ``astro-airflow-iris``) with
``kedro new --starter`` from a kedro-starters checkout (a folder holding the starters, or a git directory of the
kedro-starters repository: its ``HEAD`` is archived), writes ``conf/base/vertexai.yml`` with ``kedro vertexai init``,
then runs plain ``kedro run`` and ``kedro run --runner=VertexRunner --runner-params backend=local`` (warm start on,
unless ``--fresh``) alternately, ``--repeat`` times each after one untimed warm-up of each (which records the node
timings the grouping uses). Before each timed batch it waits (30 s at a time) while the 1-minute load average is
above ``--max-load``. Prints the medians, their ratio, the task count of ``kedro vertexai compile --explain``, the
machine's CPUs and load, and whether the outputs agree: every file the run writes under ``data/`` (versioned
datasets by their newest version, Spark folders by their part files' contents) that is the same in every plain
run must be the same after every VertexRunner run. A starter whose libraries (or, for pyspark, Java) are missing
is skipped with a line saying what to install.

    python bench/starters.py STARTERS [--repeat 3] [--only spaceflights-pandas] [--fresh] [--max-load 1.5]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bootstrap import BIN, _env

#: starter -> (modules its default pipeline imports, needs Java)
STARTERS = {
    "spaceflights-pandas": (("sklearn", "seaborn", "plotly", "openpyxl", "matplotlib"), False),
    "spaceflights-pyspark": (("sklearn", "seaborn", "plotly", "openpyxl", "matplotlib", "pyspark"), True),
    "astro-airflow-iris": (("pandas", "numpy"), False),
}
VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}\.\d{2}\.\d{2}\.\d{3}Z$")


def missing(starter: str) -> list[str]:
    modules, needs_java = STARTERS[starter]
    absent = [name for name in modules if importlib.util.find_spec(name) is None]
    if needs_java and shutil.which("java") is None:
        absent.append("java")
    return absent


def extract(source: Path, starter: str, into: Path) -> Path:
    """The starter's template folder: from a folder of starters, or archived from a git directory's HEAD."""
    if (source / starter / "cookiecutter.json").is_file():
        return source / starter
    git_dir = source / ".git" if (source / ".git").exists() else source
    archive = subprocess.run(
        ["git", f"--git-dir={git_dir}", "archive", "HEAD", starter], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / starter


def run(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write((done.stdout + done.stderr)[-4000:])
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd} (exit {done.returncode})")
    return elapsed, done.stdout + done.stderr


def outputs(project: Path, since: float) -> dict[str, str]:
    """A digest per dataset written since ``since``: ``data/<layer>/<name>``, newest version, contents only."""
    found: dict[str, tuple[str, list[str]]] = {}
    data = project / "data"
    for path in sorted(data.rglob("*")):
        rel = path.relative_to(data).parts
        if not path.is_file() or rel[0] == "vertex_runs" or len(rel) < 2 or path.stat().st_mtime < since:
            continue
        if path.name.startswith((".", "_")):  # .crc, _SUCCESS
            continue
        key = "/".join(rel[:2])
        version = next((part for part in rel[2:] if VERSION.match(part)), "")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        kept = found.get(key)
        if kept is None or version > kept[0]:
            found[key] = (version, [digest])
        elif version == kept[0]:
            kept[1].append(digest)
    result = {}
    for key, (version, digests) in found.items():
        folder = data / key
        if not version and folder.is_dir() and folder.suffix in (".parquet", ".csv"):  # Spark's part files
            result[key] = rows_digest(folder)  # their split into parts and their row order vary between runs
        else:
            result[key] = hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()
    return result


def rows_digest(folder: Path) -> str:
    """A digest of the rows of a Spark-written folder, whatever their order and their split into part files."""
    import pandas as pd

    parts = sorted(p for p in folder.glob("part-*") if p.suffix in (".parquet", ".csv"))
    frame = pd.concat([pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p) for p in parts])
    frame = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def logged(project: Path, output: str, task_logs: bool) -> str:
    """The model metrics the starters' nodes log ("Model has a coefficient R^2 of 0.387"), from the command's output
    and, for VertexRunner, its newest run's task logs."""
    runs = sorted((project / "data" / "vertex_runs").glob("local-*"), key=lambda p: p.stat().st_mtime)
    if task_logs and runs:
        output += "".join(log.read_text() for log in (runs[-1] / "logs").glob("*.log"))
    return " ".join(sorted(set(re.findall(r"Model has an? [^\n]*? of [\d.]+", output))))


def quiet(max_load: float) -> float:
    while (load := os.getloadavg()[0]) > max_load:
        print(f"  load average {load:.2f} > {max_load}: waiting 30 s", flush=True)
        time.sleep(30)
    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("starters", type=Path, help="a folder of starters, or the kedro-starters git directory")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=tuple(STARTERS), default=None)
    parser.add_argument("--fresh", action="store_true", help="no warm start (runner param warm_start=false)")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait while the 1-minute load is above this")
    args = parser.parse_args()

    kedro = str(BIN / "kedro")
    local = "backend=local" + (",warm_start=false" if args.fresh else "")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for starter in STARTERS:
            if args.only and starter != args.only:
                continue
            if absent := missing(starter):
                print(f"{starter}: skipped, missing {', '.join(absent)}", flush=True)
                continue
            template = extract(args.starters.resolve(), starter, Path(tmp))
            package = starter.replace("-", "_")
            config = Path(tmp) / f"{package}.yml"
            config.write_text(f"project_name: {package}\nrepo_name: {package}\npython_package: {package}\n"
                              f"output_dir: {tmp}\n")  # fmt: skip
            run([kedro, "new", f"--starter={template}", f"--config={config}"], Path(tmp))
            project = Path(tmp) / package
            run([kedro, "vertexai", "init", "bench-project", "europe-west1"], project)
            commands = {
                "kedro run": [kedro, "run"],
                "VertexRunner": [kedro, "run", "--runner=VertexRunner", "--runner-params", local],
            }
            for cmd in commands.values():  # warm-up: caches, and the node timings the grouping reads
                run(cmd, project)
            _, explain = run([kedro, "vertexai", "compile", "--backend", "local", "--explain", "-o",
                              str(Path(tmp) / f"{package}.json")], project)  # fmt: skip
            tasks = len(re.findall(r"^\s+task \d+ ", explain, re.MULTILINE))
            load = quiet(args.max_load)
            times: dict[str, list[float]] = {label: [] for label in commands}
            digests: dict[str, list[dict[str, str]]] = {label: [] for label in commands}
            for _ in range(args.repeat):
                for label, cmd in commands.items():
                    since = time.time() - 1
                    elapsed, output = run(cmd, project)
                    times[label].append(elapsed)
                    digests[label].append(
                        {**outputs(project, since), "metrics logged": logged(project, output, label == "VertexRunner")}
                    )
            stable = {
                k: v for k, v in digests["kedro run"][0].items() if all(d.get(k) == v for d in digests["kedro run"])
            }
            differ = sorted({k for d in digests["VertexRunner"] for k, v in stable.items() if d.get(k) != v})
            varying = sorted(set(digests["kedro run"][0]) - set(stable))
            plain, vertex = (statistics.median(times[label]) for label in commands)
            end_load = os.getloadavg()[0]
            rows.append((starter, plain, vertex, tasks, f"{load:.2f}–{end_load:.2f}"))
            print(f"{starter}: plain {plain:.2f} s, VertexRunner {vertex:.2f} s, ratio {vertex / plain:.2f}x, "
                  f"{tasks} task(s), load {load:.2f}–{end_load:.2f} (runs: {times})", flush=True)  # fmt: skip
            print(f"  outputs: {len(stable)} deterministic, equal in every VertexRunner run"
                  f"{'' if not differ else ' EXCEPT ' + ', '.join(differ)}"
                  f"{'; differ between plain runs: ' + ', '.join(varying) if varying else ''}", flush=True)  # fmt: skip
            if differ:
                raise SystemExit(f"{starter}: VertexRunner's outputs differ from plain kedro run's: {differ}")
    print(
        f"\nmachine: {os.cpu_count()} CPUs; {args.repeat} runs each, medians{'; no warm start' if args.fresh else ''}"
    )
    print("| starter | plain `kedro run` s | VertexRunner s | ratio | tasks | load average |")
    print("|---|---|---|---|---|---|")
    for starter, plain, vertex, tasks, load in rows:
        print(f"| {starter} | {plain:.2f} | {vertex:.2f} | {vertex / plain:.2f}x | {tasks} | {load} |")


if __name__ == "__main__":
    main()
