"""A task's processes behave like fresh interpreters: a task ends when its nodes end and leaves nothing running
(loky workers, a multiprocessing pool, a thread), side-by-side nodes draw different random numbers, and a node that
calls ``sys.exit``/``os._exit`` fails, named, instead of letting its task succeed with later nodes never run.

One local run per start mode (warm and fresh) serves every check; ``grouping: tags`` makes the tasks. Nodes that
pass values in memory share one process, so the nodes meant to run side by side in processes of their own
(``draw_a``/``draw_b``, ``exit_three``/``steady``) pass nothing to each other."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import PYTHON, _clean_example, subprocess_env
from test_e2e_local import _processes_in, kedro_run, output_of, set_config

from kedro_vertex_runner.task.contract import TaskReport

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")]

NODES = """
import json
import multiprocessing
import os
import random
import sys
import threading
import time

import numpy as np
from joblib import Parallel, delayed
from kedro.pipeline import Node, Pipeline


def _record(name, **values):
    with open(os.path.join("data", f"exit_{name}.json"), "w") as handle:
        json.dump({"pid": os.getpid(), **values}, handle)


def with_loky(x):
    workers = sorted(set(Parallel(n_jobs=2)(delayed(_pid)(i) for i in range(8))))
    _record("loky", workers=workers)
    return 1


def _pid(_):
    time.sleep(0.05)
    return os.getpid()


def with_pool(x):
    pool = multiprocessing.Pool(2)  # never closed
    _record("pool", workers=sorted(set(pool.map(_pid, range(8), chunksize=1))))
    return 2


def with_thread(x):
    threading.Thread(target=time.sleep, args=(600,), name="left-running").start()  # not a daemon
    return 3


def _draws(name):
    _record(name, random=random.random(), legacy=float(np.random.rand()),
            rng=float(np.random.default_rng().random()))
    time.sleep(0.3)  # side by side with the other draw
    return name


def draw_a(x):
    return _draws("draw_a")


def draw_b(x):
    workers = Parallel(n_jobs=2)(delayed(_pid)(i) for i in range(4))  # loky, in a node's own process
    _record("draw_b_loky", workers=sorted(set(workers)))
    return _draws("draw_b")


def exit_zero(x):
    sys.exit(0)


def exit_three(x):
    sys.exit(3)


def os_exit(x):
    os._exit(0)


def c_exit(x):
    import ctypes

    ctypes.CDLL(None)._exit(0)  # below Python: no os._exit to notice it


def steady(x):
    time.sleep(0.3)
    return "steady"


def later(*inputs):
    _record("later_ran")
    return "later"


def _group(name, *nodes):
    return [Node(f, i, o, name=n, tags=[f"group.{name}"]) for f, i, o, n in nodes]


def create_pipeline(**kwargs):
    p = "params:report_title"
    return Pipeline(
        _group("libs", (with_loky, p, "l1", "with_loky"), (with_pool, "l1", "l2", "with_pool"),
               (with_thread, "l2", "l3", "with_thread"))
        + _group("rand", (draw_a, p, "ra", "draw_a"), (draw_b, p, "rb", "draw_b"))
        + _group("exit0", (exit_zero, p, "e0", "exit_zero"), (later, "e0", "e0_later", "after_exit_zero"))
        + _group("exit3", (exit_three, p, "e3", "exit_three"), (steady, p, "s3", "steady"),
                 (later, "e3", "e3_later", "after_exit_three"))
        + _group("osexit", (os_exit, p, "ox", "os_exit"), (later, "ox", "ox_later", "after_os_exit"))
        + _group("cexit", (c_exit, p, "cx", "c_exit"), (later, "cx", "cx_later", "after_c_exit"))
    )
"""


@pytest.fixture(scope="module")
def exit_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = _clean_example(tmp_path_factory.mktemp("task_exit"))
    package = project / "src" / "demo_project" / "pipelines" / "exits"
    package.mkdir()
    (package / "__init__.py").write_text("from .pipeline import create_pipeline\n")
    (package / "pipeline.py").write_text(NODES)
    set_config(project, **{"  grouping: makespan\n": "  grouping: tags\n"})
    return project


#: the tasks of each run: fresh tasks start slowly (Kedro's imports), so that run has the two that matter most there
RUNS = {"warm": ("libs", "rand", "exit0", "exit3", "osexit", "cexit"), "fresh": ("libs", "osexit")}


@pytest.fixture(scope="module", params=list(RUNS))
def exit_run(request: pytest.FixtureRequest, exit_project: Path):
    for old in (exit_project / "data").glob("exit_*.json"):
        old.unlink()
    started = time.monotonic()
    tags = ",".join(f"group.{name}" for name in RUNS[request.param])
    result = kedro_run(
        exit_project, "--pipeline", "exits", "--tags", tags,
        KEDRO_VERTEX_WARM_START="1" if request.param == "warm" else "0",
    )  # fmt: skip
    elapsed = time.monotonic() - started
    records = {path.stem[5:]: json.loads(path.read_text()) for path in (exit_project / "data").glob("exit_*.json")}
    run_dir = max((exit_project / "data" / "vertex_runs").glob("local-*"), key=lambda path: path.stat().st_mtime)
    logs = {path.stem: path.read_text() for path in (run_dir / "logs").glob("*.log")}
    return result, elapsed, records, logs, _processes_in(exit_project), RUNS[request.param]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _task_line(output: str, task: str) -> str:
    return next(line for line in output.splitlines() if re.search(rf"\] group-{task} \(.*\): (SUCCEEDED|FAILED)", line))


def test_a_task_ends_with_its_nodes_and_leaves_no_process_behind(exit_run):
    result, elapsed, records, _, left, tasks = exit_run
    out = output_of(result)
    # loky's idle workers (300 s), an unclosed pool and a non-daemon thread kept the task alive before
    assert "SUCCEEDED" in _task_line(out, "libs"), out[-3000:]
    assert elapsed < 120, out[-3000:]
    workers = records["loky"]["workers"] + records["pool"]["workers"]
    if "rand" in tasks:  # loky in a node's own process (processes task runner)
        assert "SUCCEEDED" in _task_line(out, "rand"), out[-3000:]
        workers += records["draw_b_loky"]["workers"]
    assert len(workers) >= 4
    assert left == [] and not any(_alive(pid) for pid in workers)


def test_side_by_side_nodes_draw_different_random_numbers(exit_run):
    _, _, records, _, _, tasks = exit_run
    if "rand" not in tasks:
        pytest.skip("checked in the warm run")
    a, b = records["draw_a"], records["draw_b"]
    assert a["pid"] != b["pid"]
    for generator in ("random", "legacy", "rng"):
        assert a[generator] != b[generator], generator


@pytest.mark.parametrize(
    ("task", "node", "how", "later"),
    [
        ("exit0", "exit_zero", "sys.exit(0)", "after_exit_zero"),  # in the task's own process
        ("exit3", "exit_three", "sys.exit(3)", "after_exit_three"),  # in a node process of its own
        ("osexit", "os_exit", "os._exit(0)", "after_os_exit"),
    ],
)
def test_a_node_that_exits_fails_its_task_and_later_nodes_are_not_run(exit_run, task, node, how, later):
    result, _, records, logs, _, tasks = exit_run
    if task not in tasks:
        pytest.skip("checked in the warm run")
    out = output_of(result)
    assert result.returncode != 0
    assert "FAILED" in _task_line(out, task), out[-3000:]
    lines = [line for line in logs[f"group-{task}"].splitlines() if line.strip() and not line.startswith("==> ")]
    assert lines[-1].startswith(f"Error: node {node!r} failed: ") and f"called {how}" in lines[-1], lines[-5:]
    assert f"Not run, because node {node!r} failed: {later}" in logs[f"group-{task}"]
    assert "later_ran" not in records


def test_a_task_that_exits_0_inside_a_node_without_a_word_failed(exit_run):
    result, _, _, _, _, tasks = exit_run
    if "cexit" not in tasks:
        pytest.skip("checked in the warm run")
    line = _task_line(output_of(result), "cexit")
    assert "FAILED (exit 0 while node 'c_exit' was running" in line, line


def test_a_node_that_exits_fails_its_task_with_threads_too(exit_project: Path, tmp_path: Path):
    """The entrypoint as a compiled task starts it, in the mode the local run above does not use."""
    report = tmp_path / "report.json"
    result = subprocess.run(
        [PYTHON, "-m", "kedro_vertex_runner.entrypoint", "--pipeline=exits", "--node=exit_three", "--node=steady",
         "--node=after_exit_three", "--run-id=r1", f"--root={tmp_path / 'root'}", "--task-runner=threads"],
        cwd=exit_project, env=subprocess_env(KEDRO_VERTEX_TASK_REPORT=str(report)),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last == (
        "Error: node 'exit_three' failed: SystemExit: the node called sys.exit(3); a node must return its outputs "
        "or raise"
    )
    assert re.search(r"Not run, because node 'exit_three' failed: .*after_exit_three", result.stderr)
    state = TaskReport.read(report)
    assert state is not None and state.state == "failed" and state.node == "exit_three"
    assert not (exit_project / "data" / "exit_later_ran.json").exists()


HANGING_EXIT = """
import atexit, subprocess, sys, time
from kedro_vertex_runner.task import processes

processes.EXIT_GRACE = 0.5
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
atexit.register(time.sleep, 600)  # an exit handler that never returns
processes.finish(5)
"""


def test_exit_handlers_that_hang_never_keep_a_task_alive(tmp_path: Path):
    started = time.monotonic()
    result = subprocess.run(
        [PYTHON, "-c", HANGING_EXIT], env=subprocess_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 5 and time.monotonic() - started < 30, result.stderr
    assert "exit handlers still running after 0.5 s: ending without them" in result.stderr
    child = int(result.stdout.split()[0])
    deadline = time.monotonic() + 5  # killed as the process left: gone as soon as the kernel has reaped it
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)  # what the process started is gone with it
