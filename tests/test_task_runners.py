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
from kedro_vertex_runner.task_contract import TaskContract, TaskReport
from kedro_vertex_runner.task_runners import mode_for

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


def task_runner_args(task_runner=None) -> dict[str, str | None]:
    run_config = {"image": "img:1", "root": "bucket/runs", "grouping": "makespan"}
    if task_runner is not None:
        run_config["task_runner"] = task_runner
    config = validate_config({"project_id": "proj-1", "region": "europe-west1", "run_config": run_config})
    spec = compile_spec(CompileRequest(pipeline=DIAMOND, config=config))
    executors = spec["deploymentSpec"]["executors"].values()
    contracts = [TaskContract.from_args(executor["container"]["args"]) for executor in executors]
    return {",".join(c.nodes): c.task_runner for c in contracts}


def test_a_fused_task_runs_its_branches_in_processes_by_default():
    assert task_runner_args() == {"left,right,join": "processes"}
    assert task_runner_args("sequential") == {"left,right,join": None}  # the entrypoint's own default
    assert task_runner_args("threads") == {"left,right,join": "threads"}


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


def explode(x):
    time.sleep(0.2)
    raise ValueError("boom in one branch")


def steady(x):
    time.sleep(1.0)
    _record("steady")
    return "steady"
'''

PIPELINE = """
from kedro.pipeline import Node, Pipeline

from .nodes import explode, join, left, right, steady


def create_pipeline(**kwargs):
    return Pipeline([
        Node(left, "params:report_title", "pt_left", name="left"),
        Node(right, "params:report_title", "pt_right", name="right"),
        Node(join, ["pt_left", "pt_right"], "pt_joined", name="join"),
        Node(explode, "params:report_title", "pt_exploded", name="explode"),
        Node(steady, "params:report_title", "pt_steady", name="steady"),
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
    assert join["inputs"] == ["left", "right"]  # outputs held in memory reached the join
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


def test_a_failing_branch_fails_the_task_and_is_named(project: Path, tmp_path: Path):
    result, records, report = run_task(project, tmp_path, "explode", "steady")
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
