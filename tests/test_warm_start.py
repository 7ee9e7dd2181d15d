"""Warm start on the local backend: tasks forked from a process that preloaded the project stay isolated.

Each test runs the real ``kedro run --runner=VertexRunner`` on a copy of the example project with small probe
pipelines added; the probes write what they saw (module globals, environment, matplotlib's rcParams, process ids)
to files, and the tests read those files and the command's output.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import _clean_example, kedro_cmd, subprocess_env
from test_e2e_local import _processes_in, kedro_run, output_of, set_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="warm start forks")]

PROBES = '''
"""Probe nodes: what a task sees of the tasks before it, and faults."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from kedro.pipeline import Node, Pipeline

try:
    import matplotlib

    def _style():
        return matplotlib.rcParams["lines.linewidth"]

    def _set_style():
        matplotlib.rcParams["lines.linewidth"] = 9.0
except ImportError:  # another library-global: the decimal context
    import decimal

    def _style():
        return decimal.getcontext().prec

    def _set_style():
        decimal.getcontext().prec = 3

STATE = {"touched_by": None}


def _cmdline(pid) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\\0", b" ").decode()


def _parent_of(pid) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def observe(name):
    seen = {"global": STATE["touched_by"], "env": os.environ.get("PROBE_LEAK"), "style": _style(),
            "parent": os.getppid(), "parent_cmdline": _cmdline(os.getppid()),
            "grandparent_cmdline": _cmdline(_parent_of(os.getppid())), "pid": os.getpid()}
    STATE["touched_by"] = name
    os.environ["PROBE_LEAK"] = name
    _set_style()
    Path(f"data/state_{name}.json").write_text(json.dumps(seen))
    return name


def spawn_daemon():
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    Path("data/daemon.pid").write_text(str(daemon.pid))
    return "spawned"


def hang():
    time.sleep(120)


def die():
    print("last words before SIGKILL")  # no flush: the task's output must reach its log unbuffered
    os.kill(os.getpid(), signal.SIGKILL)


def spawn_and_wait():
    same_group = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    own_session = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    Path("data/spawner.pids").write_text(f"{os.getpid()} {same_group.pid} {own_session.pid}")
    time.sleep(120)


class SlowToPickle:
    def __reduce__(self):
        Path("data/writer.pids").write_text(str(os.getpid()))
        time.sleep(120)
        return (SlowToPickle, ())


def write_slowly():
    return SlowToPickle()


def create_pipeline(**kwargs):
    return Pipeline([Node(observe, f"params:probe_{n}", f"seen_{n}", name=f"observe_{n}") for n in "abc"]
                    + [Node(spawn_daemon, None, "daemon_spawned", name="spawn_daemon")])


def faults():
    return Pipeline([Node(hang, None, "hung", name="hang"), Node(die, None, "died", name="die")])


def orphans():
    return Pipeline([Node(spawn_and_wait, None, "waited", name="spawn_and_wait"),
                     Node(write_slowly, None, "slow_value", name="write_slowly")])
'''


@pytest.fixture(scope="module")
def probe_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = _clean_example(tmp_path_factory.mktemp("warm"))
    pipelines = project / "src" / "demo_project" / "pipelines"
    (pipelines / "probes").mkdir()
    (pipelines / "probes" / "__init__.py").write_text("from .pipeline import create_pipeline\n")
    (pipelines / "probes" / "pipeline.py").write_text(PROBES)
    for name in ("faults", "orphans"):  # one package per registered pipeline, as find_pipelines() expects
        (pipelines / f"probe_{name}").mkdir()
        (pipelines / f"probe_{name}" / "__init__.py").write_text(
            f"from demo_project.pipelines.probes.pipeline import {name} as create_pipeline\n"
        )
    (project / "conf" / "base" / "parameters_probes.yml").write_text("probe_a: a\nprobe_b: b\nprobe_c: c\n")
    # one task per probe node, whatever the last run's node times make of the default grouping
    set_config(
        project,
        **{"  resources:\n": "  resources:\n    hang: {timeout: 3}\n", "  grouping: makespan\n": "  grouping: none\n"},
    )
    return project


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _all_dead(pids: list[int], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(_alive(pid) for pid in pids)


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "fresh"])
def test_nothing_a_task_does_reaches_the_next_task(probe_project: Path, warm: bool):
    for old in probe_project.glob("data/state_*.json"):
        old.unlink()
    env = {} if warm else {"KEDRO_VERTEX_WARM_START": "0"}
    # one task at a time: every task starts after the others have mutated their globals
    result = kedro_run(probe_project, "--pipeline", "probes", "--runner-params", "max_workers=1", **env)
    output = output_of(result)
    assert result.returncode == 0, output[-4000:]
    assert "finished: 4 tasks succeeded" in result.stdout, output[-4000:]

    seen = {name: json.loads((probe_project / f"data/state_{name}.json").read_text()) for name in "abc"}
    styles = {record["style"] for record in seen.values()}
    assert len(styles) == 1 and styles != {9.0} and styles != {3}, seen
    for name, record in seen.items():
        assert record["global"] is None, f"task {name} saw the module global set by {record['global']}"
        assert record["env"] is None, f"task {name} saw PROBE_LEAK={record['env']}"
    assert len({record["pid"] for record in seen.values()}) == 3
    launcher = "run --runner=VertexRunner --pipeline probes"
    if warm:  # forked by the warm-start process (itself forked from `kedro run`), not started by `kedro run`
        assert len({record["parent"] for record in seen.values()}) == 1, seen
        assert all(launcher in record["grandparent_cmdline"] for record in seen.values()), seen
        # the warm-start process was forked from `kedro run` (its command line), not started as a fresh python
        assert all(launcher in record["parent_cmdline"] for record in seen.values()), seen
    else:
        assert all(launcher in record["parent_cmdline"] for record in seen.values()), seen
        assert all(launcher not in record["grandparent_cmdline"] for record in seen.values()), seen
    # a child the task started in a session of its own did not outlive the task
    assert _all_dead([int((probe_project / "data/daemon.pid").read_text())])


def test_a_task_timed_out_or_killed_on_the_warm_path_is_reported(probe_project: Path):
    result = kedro_run(probe_project, "--pipeline", "probe_faults")
    output = output_of(result)

    assert result.returncode != 0, output[-4000:]
    assert re.search(r"^\[\d\d:\d\d:\d\d\] hang: FAILED \(timed out after 3 s\)$", result.stdout, re.M), output
    assert re.search(r"^\[\d\d:\d\d:\d\d\] die: FAILED \(killed by SIGKILL\)$", result.stdout, re.M), output
    (die_log,) = probe_project.glob("data/vertex_runs/*/logs/die.log")
    assert "last words before SIGKILL" in die_log.read_text()
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: run ") and "(and 1 more failed task(s))" in error, error
    assert "0 succeeded, 2 failed, 0 skipped" in error


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc")
@pytest.mark.parametrize("warm", [True, False], ids=["warm", "fresh"])
def test_a_killed_launcher_leaves_no_task_process_and_no_temporary_file(probe_project: Path, warm: bool):
    for old in ("spawner.pids", "writer.pids"):
        (probe_project / "data" / old).unlink(missing_ok=True)
    launcher = subprocess.Popen(
        kedro_cmd("run", "--runner=VertexRunner", "--pipeline", "probe_orphans"),
        cwd=probe_project,
        env=subprocess_env(**({} if warm else {"KEDRO_VERTEX_WARM_START": "0"})),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_files = [probe_project / "data" / name for name in ("spawner.pids", "writer.pids")]
    try:
        deadline = time.monotonic() + 120
        while not all(path.exists() and path.read_text() for path in pid_files):
            assert launcher.poll() is None, "the run ended before its tasks started"
            assert time.monotonic() < deadline, "tasks did not start"
            time.sleep(0.1)
        time.sleep(0.3)  # the writer is inside its write, with the temporary file open
        run_dirs = list((probe_project / "data" / "vertex_runs").glob("*/"))
        assert any(run_dir.glob(".*.tmp") for run_dir in run_dirs), "the write under test did not start"
        os.kill(launcher.pid, signal.SIGKILL)
        launcher.wait(timeout=30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()

    pids = [int(pid) for path in pid_files for pid in path.read_text().split()]
    assert len(pids) == 4
    assert _all_dead(pids), [pid for pid in pids if _alive(pid)]
    deadline = time.monotonic() + 10
    while _processes_in(probe_project) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_in(probe_project) == []  # the warm-start process is gone too
    leftovers = [p.name for run_dir in run_dirs for p in run_dir.glob(".*.tmp")]
    assert leftovers == []


def test_a_launcher_with_threads_starts_its_warm_start_process_fresh_instead_of_forking(probe_project: Path):
    """Forking copies no thread but every lock a thread holds: with a thread running, the zygote is not forked
    from the launcher but started as a fresh interpreter, and tasks still start warm from it."""
    import threading

    from kedro_vertex_runner.backends.local import warm

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        zygote = warm.Zygote(probe_project, subprocess_env(), fork=True)
    finally:
        stop.set()
        thread.join()
    try:
        assert isinstance(zygote.process, subprocess.Popen)
        assert "kedro_vertex_runner.backends.local.warm" in " ".join(zygote.process.args)
        log = probe_project / "data" / "fresh_zygote_task.log"
        task = zygote.start(["--help"], subprocess_env(), probe_project, log)
        assert task.wait(timeout=120) == 0, log.read_text()
        assert "--node" in log.read_text()  # the entrypoint's own help, from a task forked by that process
    finally:
        zygote.close()


def test_a_pipeline_that_fails_to_import_is_reported_once_and_the_others_run(tmp_path: Path):
    """The launcher imports the node modules before it forks the warm-start process: a broken pipeline package
    still gets Kedro's one warning (not one more from that early import), and the rest of the project runs."""
    project = _clean_example(tmp_path)
    broken = project / "src" / "demo_project" / "pipelines" / "broken"
    broken.mkdir()
    (broken / "__init__.py").write_text("raise ImportError('this pipeline is broken')\n")
    registry = project / "src" / "demo_project" / "pipeline_registry.py"  # Kedro's default: warn, do not raise
    registry.write_text(registry.read_text().replace("find_pipelines(raise_errors=True)", "find_pipelines()"))
    result = kedro_run(project)
    output = output_of(result)
    assert result.returncode == 0, output[-4000:]
    assert "tasks succeeded" in result.stdout, output[-4000:]
    # Kedro's warning names the module once (its rich handler may wrap the sentence around it)
    assert output.count("'demo_project.pipelines.broken'") == 1, output[-4000:]
