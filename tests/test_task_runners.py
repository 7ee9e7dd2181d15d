"""How a task runs nodes that do not depend on each other: which mode the compiler gives each task, and what a
user sees when a fused task runs its branches in processes of their own (overlap, isolation, failure)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import PYTHON, _clean_example, subprocess_env
from kedro.pipeline import Pipeline, node

from kedro_vertex_runner.compiler import CompileRequest, compile_spec
from kedro_vertex_runner.config import validate_config
from kedro_vertex_runner.task.contract import TaskContract, TaskReport
from kedro_vertex_runner.task.runners import mode_for

# ---------------------------------------------------------------------------------------------------------------
# which mode a task gets


def step(*values):
    return 1


DIAMOND = Pipeline(
    [
        node(step, "raw", "l", name="left", tags=["io"]),
        node(step, "raw", "r", name="right", tags=["io", "task_runner.threads"]),
        node(step, ["l", "r"], "out", name="join"),
    ]
)


def task_runner_args(task_runner=None, **request) -> dict[str, str | None]:
    run_config = {"image": "img:1", "root": "bucket/runs", "grouping": "makespan"}
    if task_runner is not None:
        run_config["task_runner"] = task_runner
    config = validate_config({"project_id": "proj-1", "region": "europe-west1", "run_config": run_config})
    spec = compile_spec(CompileRequest(pipeline=DIAMOND, config=config, **request))
    executors = spec["deploymentSpec"]["executors"].values()
    contracts = [TaskContract.from_args(executor["container"]["args"]) for executor in executors]
    return {",".join(c.nodes): c.task_runner for c in contracts}


def test_a_fused_task_runs_its_branches_in_processes_by_default():
    assert task_runner_args() == {"left,right,join": "processes"}
    assert task_runner_args("sequential") == {"left,right,join": None}  # the entrypoint's own default
    assert task_runner_args("threads") == {"left,right,join": "threads"}


def test_a_task_runs_side_by_side_only_where_that_pays():
    # the last local run timed the branches at half a second: forking them would cost more than it saves
    assert task_runner_args(durations={"left": 0.5, "right": 0.5, "join": 0.1}) == {"left,right,join": None}
    assert task_runner_args(durations={"left": 5, "right": 5, "join": 0.1}) == {"left,right,join": "processes"}
    # the branches hand their values to the join in memory (nothing declared): one process runs all three
    assert task_runner_args(declared=frozenset()) == {"left,right,join": None}
    assert task_runner_args(declared=frozenset({"l", "r"})) == {"left,right,join": "processes"}


def test_a_node_tag_sets_the_mode_of_its_task_and_the_most_conservative_wins():
    by_name = {n.name: n for n in DIAMOND.nodes}
    left, right = by_name["left"], by_name["right"]
    assert mode_for(None, [left]) == "processes"
    assert mode_for("sequential", [right]) == "threads"  # the tag beats the setting
    assert mode_for("sequential", [left, right]) == "sequential"
    assert mode_for(None, [left, right]) == "processes"
    assert mode_for("threads", [left, right]) == "threads"
    pinned = node(step, "x", "y", name="pinned", tags=["task_runner.sequential"])
    assert mode_for("threads", [right, pinned]) == "sequential"


def test_nodes_linked_in_memory_share_a_process_and_groups_never_wait_for_each_other():
    from kedro_vertex_runner.task.runners import can_overlap, memory_groups

    def names(groups):
        return [[n.name for n in group] for group in groups]

    # a0 -> m (memory) -> a1, and b -> s (stored) -> a1: a0 and a1 share a process, which waits for b
    late = Pipeline([node(step, "x", "m", name="a0"), node(step, ["m", "s"], "o", name="a1"),
                     node(step, "y", "s", name="b")])  # fmt: skip
    groups = memory_groups(late, lambda name: name == "m")
    assert names(groups) == [["b"], ["a0", "a1"]] and not can_overlap(groups)
    # a -> m (memory) -> c with b stored in between: a, b and c would wait for each other, so share a process
    cycle = Pipeline([node(step, "x", ["m", "s1"], name="a"), node(step, "s1", "s2", name="b"),
                      node(step, ["m", "s2"], "o", name="c"), node(step, "x", "z", name="d")])  # fmt: skip
    groups = memory_groups(cycle, lambda name: name == "m")
    assert names(groups) == [["a", "b", "c"], ["d"]] and can_overlap(groups)
    assert not can_overlap(memory_groups(DIAMOND, lambda name: True))  # a diamond linked in memory: one process


def test_an_unknown_task_runner_is_a_config_error():
    with pytest.raises(Exception, match="task_runner"):
        task_runner_args("forks")


# ---------------------------------------------------------------------------------------------------------------
# a fused task, run by the entrypoint as the compiled spec starts it

NODES = '''
"""Two branches that each work for a second, and leave global state behind; a join; a failing branch."""
import json
import os
import sys
import threading
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

SEEN = []  # a module-level variable the branches write to
LOG = os.environ["PTEST_LOG"]


def _record(name, **extra):
    with open(os.path.join(LOG, name + ".json"), "w") as handle:
        json.dump({"pid": os.getpid(), **extra}, handle)


def _wait_for(name):
    while not os.path.exists(os.path.join(LOG, name + ".json")):
        time.sleep(0.02)


def _branch(name, other):
    started = time.time()
    SEEN.append(name)
    os.environ["PTEST_LAST_BRANCH"] = name
    plt.rcParams["lines.linewidth"] = 7.0 if name == "left" else 3.0
    time.sleep(1.0)
    # by now the other branch has set its globals too (it starts at the same time)
    state = {"seen": list(SEEN), "env": os.environ.get("PTEST_LAST_BRANCH"),
             "linewidth": plt.rcParams["lines.linewidth"]}
    _record(name, start=started, end=time.time(), **state)
    return name


def left(x):
    return _branch("left", "right")


def right(x):
    return _branch("right", "left")


def join(l, r):
    _record("join", inputs=[l, r], seen=list(SEEN), env=os.environ.get("PTEST_LAST_BRANCH"),
            linewidth=plt.rcParams["lines.linewidth"])
    return {"inputs": [l, r]}


def prepare(x):
    return x


def explode(x):
    time.sleep(0.2)
    raise ValueError("boom in one branch")


def steady(x):
    time.sleep(1.0)
    _record("steady")
    return "steady"


class Guarded:
    """What plain ``kedro run`` passes between nodes in memory but pickle cannot send: a lock and a lambda."""

    def __init__(self):
        self.lock = threading.Lock()
        self.bump = lambda value: value + 1


def make_guarded(x):
    _record("make_guarded")
    return Guarded()


def guarded_a(guarded):
    with guarded.lock:
        _record("guarded_a")
    return guarded.bump  # a lambda


def guarded_b(guarded):
    _record("guarded_b")
    return guarded.bump(1)


def guarded_join(bump, value):
    _record("guarded_join", value=bump(value))
    return value


def spark_left(x):
    time.sleep(0.3)
    _record("spark_left")
    return "l"


def spark_right(x):
    time.sleep(0.3)
    _record("spark_right")
    return "r"


def spark_join(l, r):
    _record("spark_join")
    return l + r
'''

DATASETS = """
from kedro_datasets.pickle import PickleDataset


class SparkFrameDataset(PickleDataset):
    \"\"\"Named like a Spark dataset: the task runner treats a task using it as a Spark task (no JVM needed here).\"\"\"
"""

#: the branches' outputs are stored (pickle files): the only way values leave a forked group
CATALOG = """
pt_guarded:  # holds a lock: kept as is (a deep copy of a lock fails), as a Spark DataFrame would be
  type: MemoryDataset
  copy_mode: assign
pt_left:
  type: pickle.PickleDataset
  filepath: data/08_reporting/pt_left.pkl
pt_right:
  type: pickle.PickleDataset
  filepath: data/08_reporting/pt_right.pkl
pt_spark_left:
  type: demo_project.datasets.SparkFrameDataset
  filepath: data/08_reporting/pt_spark_left.pkl
pt_spark_right:
  type: pickle.PickleDataset
  filepath: data/08_reporting/pt_spark_right.pkl
"""

PIPELINE = """
from kedro.pipeline import Node, Pipeline

from .nodes import (explode, guarded_a, prepare, guarded_b, guarded_join, join, left, make_guarded, right, spark_join,
                    spark_left, spark_right, steady)


def create_pipeline(**kwargs):
    return Pipeline([
        Node(left, "params:report_title", "pt_left", name="left"),
        Node(right, "params:report_title", "pt_right", name="right"),
        Node(join, ["pt_left", "pt_right"], "pt_joined", name="join"),
        Node(prepare, "params:report_title", "pt_prepared", name="prepare"),
        Node(explode, "pt_prepared", "pt_exploded", name="explode"),
        Node(steady, "params:report_title", "pt_steady", name="steady"),
        Node(make_guarded, "params:report_title", "pt_guarded", name="make_guarded"),
        Node(guarded_a, "pt_guarded", "pt_guarded_a", name="guarded_a"),
        Node(guarded_b, "pt_guarded", "pt_guarded_b", name="guarded_b"),
        Node(guarded_join, ["pt_guarded_a", "pt_guarded_b"], "pt_guarded_out", name="guarded_join"),
        Node(spark_left, "params:report_title", "pt_spark_left", name="spark_left"),
        Node(spark_right, "params:report_title", "pt_spark_right", name="spark_right"),
        Node(spark_join, ["pt_spark_left", "pt_spark_right"], "pt_spark_out", name="spark_join"),
    ])
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = _clean_example(tmp_path_factory.mktemp("task_runners"))
    package = project / "src" / "demo_project" / "pipelines" / "ptest"
    package.mkdir()
    (package / "__init__.py").write_text("from .pipeline import create_pipeline\n")
    (package / "nodes.py").write_text(textwrap.dedent(NODES))
    (package / "pipeline.py").write_text(textwrap.dedent(PIPELINE))
    (project / "src" / "demo_project" / "datasets.py").write_text(textwrap.dedent(DATASETS))
    catalog = project / "conf" / "base" / "catalog.yml"
    catalog.write_text(catalog.read_text() + CATALOG)
    return project


def run_task(project: Path, tmp: Path, *nodes: str) -> tuple[subprocess.CompletedProcess, dict, TaskReport | None]:
    """The entrypoint as a compiled fused task starts it (the default mode, ``processes``)."""
    log, report = tmp / "log", tmp / "report.json"
    log.mkdir()
    args = [f"--node={name}" for name in nodes]
    result = subprocess.run(
        [PYTHON, "-m", "kedro_vertex_runner.entrypoint", "--pipeline=ptest", *args, "--run-id=r1",
         f"--root={tmp / 'root'}", "--task-runner=processes"],
        cwd=project, env=subprocess_env(PTEST_LOG=str(log), KEDRO_VERTEX_TASK_REPORT=str(report)),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    records = {path.stem: json.loads(path.read_text()) for path in log.glob("*.json")}
    timings = [json.loads(path.read_text())["nodes"] for path in (tmp / "root" / "r1" / "timings").glob("*.json")]
    records["timings"] = {name: seconds for nodes in timings for name, seconds in nodes.items()}
    return result, records, TaskReport.read(report)


@pytest.fixture(scope="module")
def branches(project: Path, tmp_path_factory: pytest.TempPathFactory):
    return run_task(project, tmp_path_factory.mktemp("branches"), "left", "right", "join")


def test_independent_nodes_of_one_task_overlap(branches):
    result, records, report = branches
    assert result.returncode == 0, result.stderr[-3000:]
    left, right, join = records["left"], records["right"], records["join"]
    # each branch started before the other ended: they ran at the same time, not one after the other
    assert left["start"] < right["end"] and right["start"] < left["end"]
    assert join["inputs"] == ["left", "right"]  # stored outputs reached the join
    # each node's own run time is recorded for the next compile, though it ran in a process of its own
    assert sorted(records["timings"]) == ["join", "left", "right"] and records["timings"]["left"] >= 1.0
    assert report is not None and report.state == "succeeded"


def test_branches_see_none_of_each_others_global_state(branches):
    _, records, _ = branches
    # a module-level list, an environment variable and matplotlib's rcParams, set by each branch mid-run
    assert records["left"]["seen"] == ["left"] and records["right"]["seen"] == ["right"]
    assert records["left"]["env"] == "left" and records["right"]["env"] == "right"
    assert records["left"]["linewidth"] == 7.0 and records["right"]["linewidth"] == 3.0
    # nor does a later node: it starts from the task's state, whichever branch finished last
    assert records["join"]["seen"] == [] and records["join"]["env"] is None
    assert records["join"]["linewidth"] != 7.0 and records["join"]["linewidth"] != 3.0
    assert len({records[name]["pid"] for name in ("left", "right", "join")}) == 3


def test_values_kept_in_memory_never_leave_their_process(project: Path, tmp_path: Path):
    # a diamond whose branches pass a lock and a lambda in memory (pickle cannot send them): plain `kedro run`
    # keeps them in memory, and so does the task, running the four nodes one after another in one process
    result, records, report = run_task(project, tmp_path, "make_guarded", "guarded_a", "guarded_b", "guarded_join")
    assert result.returncode == 0, result.stderr[-3000:]
    assert records["guarded_join"]["value"] == 3
    names = ("make_guarded", "guarded_a", "guarded_b", "guarded_join")
    assert len({records[name]["pid"] for name in names}) == 1
    assert report is not None and report.state == "succeeded"


def test_a_task_using_spark_never_forks_its_nodes(project: Path, tmp_path: Path):
    # the same shape as left/right/join (stored outputs, so it would fork), but one output is a Spark dataset:
    # the task keeps one process, so its nodes would share one SparkSession (one JVM)
    result, records, _ = run_task(project, tmp_path, "spark_left", "spark_right", "spark_join")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len({records[name]["pid"] for name in ("spark_left", "spark_right", "spark_join")}) == 1


def test_only_spark_in_use_keeps_a_task_in_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import importlib
    import sys

    from kedro_vertex_runner.task.runners import uses_spark

    pytest.importorskip("pyspark.sql")
    import mlflow  # noqa: F401 - imports parts of pyspark wherever pyspark is installed

    assert "pyspark.sql" in sys.modules
    # pyspark imported by a library says nothing: these nodes' module does not use it, so their task may fork
    assert uses_spark(None, DIAMOND) == ""
    (tmp_path / "spark_nodes.py").write_text("from pyspark.sql import functions as F\n\ndef count(df):\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    spark_nodes = importlib.import_module("spark_nodes")
    with_spark = Pipeline([node(spark_nodes.count, "raw", "n", name="count"), node(step, "raw", "m", name="other")])
    assert uses_spark(None, with_spark) == "node 'count' comes from spark_nodes, which uses pyspark"


def test_a_failing_branch_fails_the_task_and_is_named(project: Path, tmp_path: Path):
    # explode runs after prepare in their process (prepare hands it a value in memory), beside steady
    result, records, report = run_task(project, tmp_path, "prepare", "explode", "steady")
    assert result.returncode == 1
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last == "Error: node 'explode' failed: ValueError: boom in one branch"
    assert 'raise ValueError("boom in one branch")' in result.stderr  # the node's own traceback
    assert report is not None and report.state == "failed" and report.node == "explode"
    assert "steady" in records  # the other branch was not cut off mid-write


# ---------------------------------------------------------------------------------------------------------------
# the grouping's model knows that a task runs its branches side by side


def test_the_model_counts_a_fused_tasks_branches_side_by_side():
    from kedro_vertex_runner.compiler.grouping import CostModel, TaskGroup, estimate, group_nodes, optimal_key_of

    fan = Pipeline([node(step, "raw", "s", name="split"), node(step, "s", "a", name="a"),
                    node(step, "s", "b", name="b"), node(step, ["a", "b"], "out", name="join")])  # fmt: skip
    sequential, side_by_side = CostModel(), CostModel(task_workers=2)
    one_task = group_nodes(fan, "makespan", model=side_by_side)
    assert [group.node_names for group in one_task] == [["split", "a", "b", "join"]]
    assert estimate(one_task, sequential).makespan == 120 + 4 * 10
    assert estimate(one_task, side_by_side).makespan == 120 + 3 * 10  # a and b overlap
    assert optimal_key_of(fan, model=side_by_side)[:2] == (120 + 3 * 10, 1)
    # in one task, more branches than workers queue: five 10 s nodes on two workers take 30 s
    wide = TaskGroup("w0", tuple(node(step, "raw", f"o{i}", name=f"w{i}") for i in range(5)), ())
    assert estimate([wide], side_by_side).makespan == 120 + 3 * 10
    assert estimate([wide], sequential).makespan == 120 + 5 * 10


def test_the_model_counts_what_the_runner_does_the_cost_of_forking_and_values_kept_in_memory():
    from kedro_vertex_runner.compiler.grouping import CostModel, estimate, group_nodes

    fan = Pipeline([node(step, "raw", "s", name="split"), node(step, "s", "a", name="a"),
                    node(step, "s", "b", name="b"), node(step, ["a", "b"], "out", name="join")])  # fmt: skip
    one_task = group_nodes(fan, "makespan", model=CostModel(task_workers=2))

    def span(**model):
        return estimate(one_task, CostModel(task_workers=2, parallel_cost=2, **model)).makespan - 120

    assert span() == 3 * 10 + 2  # a and b overlap, at the cost of forking
    assert span(durations={"split": 1, "a": 1, "b": 1, "join": 1}) == 4  # forking would cost more: one by one
    assert span(transient=frozenset()) == 3 * 10 + 2  # everything is stored: a and b still overlap
    assert span(transient=frozenset({"s"})) == 4 * 10  # split hands s to both in memory: one process for all
    assert span(transient=frozenset({"a", "b"})) == 4 * 10  # both reach the join in memory: one process


def test_a_forked_process_draws_its_own_numbers_repeatably_when_the_project_seeded():
    import random

    import numpy as np

    from kedro_vertex_runner.task.runners import fresh_random_state

    def draws(key: str, seed: int | None) -> tuple[float, float]:
        random.seed(seed)  # the parent's state: seeded by the project, or from the OS's entropy (None)
        np.random.seed(seed)
        inherited = random.getstate()
        random.seed()  # what Python does to `random` in a forked child
        fresh_random_state(key, inherited)
        return random.random(), float(np.random.rand())

    assert draws("group-a", 0) == draws("group-a", 0)  # seeded: the same numbers in every run
    assert draws("group-a", 0) != draws("group-b", 0)  # side by side: never the same numbers
    assert draws("group-a", None) != draws("group-a", None)  # unseeded: fresh in every run, as a new interpreter
