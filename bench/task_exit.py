"""Does a task end when its nodes end? A three-node chain whose first node fits scikit-learn's
``GridSearchCV(n_jobs=-1)`` (joblib's loky workers), run by plain ``kedro run`` and by the local backend with warm
start on and off, in a private copy of ``examples/demo_project``.

A warm task used to wait about 300 s at exit for loky's idle workers (multiprocessing's exit handler joined them
because threading's shutdown hooks, where loky stops them, never ran); it should now take about as long as plain
``kedro run``. After each run, no process may be left whose working directory is the project.

    python bench/task_exit.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bootstrap import BIN, EXAMPLE, _env

NODES = """
from kedro.pipeline import Node, Pipeline


def grid(x):
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV

    features, labels = make_classification(n_samples=200, random_state=0)
    search = GridSearchCV(LogisticRegression(max_iter=200), {"C": [0.1, 1.0, 10.0]}, n_jobs=-1, cv=3)
    return float(search.fit(features, labels).best_score_)


def after(x):
    return x


def create_pipeline(**kwargs):
    return Pipeline([Node(grid, "params:report_title", "g", name="grid"), Node(after, "g", "a", name="after"),
                     Node(after, "a", "l", name="last")])
"""


def left_in(project: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cwd").resolve() == project.resolve():
                found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120])
        except OSError:
            continue
    return found


def timed(cmd: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write((done.stdout + done.stderr)[-4000:])
        raise SystemExit(f"{' '.join(cmd)} failed (exit {done.returncode})")
    leftovers = left_in(cwd)
    if leftovers:
        raise SystemExit(f"{' '.join(cmd)} left processes behind: {leftovers}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    kedro = str(BIN / "kedro")
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "demo_project"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("vertex_runs", "__pycache__"))
        package = project / "src" / "demo_project" / "pipelines" / "gridsearch"
        package.mkdir()
        (package / "__init__.py").write_text("from .pipeline import create_pipeline\n")
        (package / "pipeline.py").write_text(NODES)
        selection = ["--pipeline", "gridsearch"]
        commands = {
            "kedro run": [kedro, "run", *selection],
            "local, warm": [kedro, "run", "--runner=VertexRunner", *selection],
            "local, fresh": [kedro, "run", "--runner=VertexRunner", *selection, "--runner-params", "warm_start=false"],
        }
        times: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.repeat):
            for label, cmd in commands.items():
                times[label].append(timed(cmd, project))
        base = statistics.median(times["kedro run"])
        print(f"GridSearchCV(n_jobs=-1) chain: {args.repeat} runs each, median (min–max) seconds, nothing left behind")
        for label, runs in times.items():
            median = statistics.median(runs)
            print(f"  {label:<13} {median:7.2f} ({min(runs):.2f}–{max(runs):.2f})  ratio {median / base:.2f}x")


if __name__ == "__main__":
    main()
