"""The HTML pictures of a plan (``compile --explain --html``) and of a run (``report.html``, ``kedro vertexai
report``), read back with the standard library's HTML parser. Chromium renders them in bench/pictures.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from kedro.pipeline import Pipeline, node
from picture_html import assert_self_contained, read_picture

from kedro_vertex_runner.compiler import GroupingReport
from kedro_vertex_runner.compiler.grouping import CostModel, estimate, group_nodes
from kedro_vertex_runner.compiler.spec import task_names
from kedro_vertex_runner.pictures import NODES_PER_BOX, TASKS_PER_COLUMN, plan_page, plan_tasks

EVIL = 'loaded<script>alert("x")</script>&co'  # a dataset: node names cannot hold markup


def _identity(*values):
    return values[0] if len(values) == 1 else values


def _plan(pipeline: Pipeline, mode: str, model: CostModel) -> GroupingReport:
    groups = group_nodes(pipeline, mode, model=model)
    return GroupingReport(mode, tuple(groups), estimate(groups, model))


def diamond() -> Pipeline:
    return Pipeline(
        [
            node(_identity, "raw", EVIL, name="load"),
            node(_identity, EVIL, "left", name="slow_left"),
            node(_identity, EVIL, "right", name="fast_right"),
            node(_identity, ["left", "right"], "joined", name="join"),
        ]
    )


def test_the_plan_shows_every_task_node_and_dataset_the_longest_chain_and_the_modelled_timeline():
    model = CostModel(task_startup=60.0, node_duration=10.0, durations={"slow_left": 300.0, "fast_right": 5.0})
    report = _plan(diamond(), "none", model)
    page = plan_page(report, model, "Plan of <the> pipeline", "a test")
    picture = read_picture(page)

    # modelled times: a task starts when the last task it depends on ends, and ends start-up + its nodes later
    tasks = {task.name: task for task in plan_tasks(report, model)}
    names = dict(zip((g.key for g in report.groups), task_names(list(report.groups)), strict=True))
    load, left, right, join = (names[n] for n in ("load", "slow_left", "fast_right", "join"))
    assert (tasks[load].start, tasks[load].end) == (0.0, 70.0)
    assert (tasks[left].start, tasks[left].end) == (70.0, 430.0)
    assert (tasks[right].start, tasks[right].end) == (70.0, 135.0)
    assert (tasks[join].start, tasks[join].end) == (430.0, 500.0)
    assert tasks[join].end == report.estimate.makespan
    assert "estimated makespan 8m20s" in picture.text

    assert {"svg", "g", "rect", "path", "text", "title", "marker"} <= picture.tags("graph")
    assert {"svg", "g", "rect", "text", "line"} <= picture.tags("gantt")
    assert set(picture.attribute("data-task", "graph")) == set(names.values())
    assert set(picture.attribute("data-task", "gantt")) == set(names.values())
    assert set(picture.attribute("data-node", "graph")) == {"load", "slow_left", "fast_right", "join"}
    # the longest chain, and only it, is marked in both pictures
    chain = {load, left, join}
    assert set(picture.attribute("data-task", "graph", cls="critical")) == chain
    assert set(picture.attribute("data-task", "gantt", cls="critical")) == chain
    arrows = zip(picture.attribute("data-from", "graph"), picture.attribute("data-to", "graph"), strict=True)
    assert set(arrows) == {
        (load, left),
        (load, right),
        (left, join),
        (right, join),
    }
    for dataset in (EVIL[:16], "left", "right"):  # on the arrows (a long name cut short)
        assert dataset in picture.text
    # every name is escaped: the dataset's name is text (in the arrow's tooltip in full), never markup
    assert "<script" not in page and EVIL in picture.text
    assert "Plan of <the> pipeline" in picture.text
    assert_self_contained(picture)


def test_a_thousand_node_plan_stays_small_and_quick():
    chain = Pipeline([node(_identity, f"d{i}", f"d{i + 1}", name=f"step_{i:04d}") for i in range(1000)])
    wide = Pipeline([node(_identity, "raw", f"out{i}", name=f"leaf_{i:04d}") for i in range(1000)])
    model = CostModel()
    began = time.perf_counter()
    one_task = plan_page(_plan(chain, "chains", model), model, "chain")
    many_tasks = plan_page(_plan(wide, "none", model), model, "wide")
    assert time.perf_counter() - began < 10

    big_box = read_picture(one_task)
    assert len(big_box.attribute("data-node", "graph")) == NODES_PER_BOX
    assert f"+{1000 - NODES_PER_BOX} more" in big_box.text
    assert len(big_box.attribute("data-node")) == 1000 + NODES_PER_BOX  # the table below names every node
    columns = read_picture(many_tasks)
    assert len(columns.attribute("data-task", "graph")) == TASKS_PER_COLUMN - 1
    assert f"+{1000 - TASKS_PER_COLUMN + 1} more tasks" in columns.text
    assert len(columns.attribute("data-task", "gantt")) == 1000
    assert len(many_tasks) < 3_000_000


# ----------------------------------------------------------------------------------------------------------------
# through the commands, on the example project: compile --html, and report against the fake Vertex AI


@pytest.mark.slow
def test_compile_html_and_report_of_a_vertex_job(demo_project: Path, fake, gcs_emulator: str, tmp_path: Path):
    from conftest import VERTEX_CONFIG_HEAD, assert_one_line_error, kedro_batch, subprocess_env

    fake.reset()
    (demo_project / "conf" / "base" / "vertexai.yml").write_text(VERTEX_CONFIG_HEAD.format(endpoint=fake.endpoint))
    env = subprocess_env(KEDRO_VERTEX_ANONYMOUS_CREDENTIALS="1")
    (compiled,) = kedro_batch(
        [(demo_project, ["vertexai", "compile", "--explain", "--html", "plan.html", "-o", "spec.json"])], env
    )
    assert compiled.returncode == 0, compiled.stderr
    assert "Wrote the picture of the plan to plan.html" in compiled.stdout
    plan = read_picture(demo_project / "plan.html")
    chain = compiled.stdout.split("Longest chain of dependent tasks: ")[1].splitlines()[0].split(" -> ")
    assert set(plan.attribute("data-task", "graph", cls="critical")) == set(chain)
    spec = json.loads((demo_project / "spec.json").read_text())
    assert set(plan.attribute("data-task", "graph")) == set(spec["root"]["dag"]["tasks"])
    assert len(set(plan.attribute("data-node"))) == 11  # in the boxes or, past a box's six, in the table
    assert_self_contained(plan)

    parent = "projects/demo-gcp/locations/europe-west1"
    keys = list(spec["root"]["dag"]["tasks"])
    job = fake.add_job(
        f"{parent}/pipelineJobs/demo-job-1",
        {"displayName": "demo", "pipelineSpec": spec},
        {"state": "FAILED", "tasks": {keys[0]: "SUCCEEDED", keys[1]: ("FAILED", "KeyError: 'price'")}},
    )
    report, unknown_run, unknown_job, unwritable = kedro_batch(
        [
            (demo_project, ["vertexai", "report", job]),
            (demo_project, ["vertexai", "report", "no-such-run", "--backend", "local"]),
            (demo_project, ["vertexai", "report", "no-such-job"]),
            (demo_project, ["vertexai", "report", job, "-o", str(tmp_path / "missing" / "r.html")]),
        ],
        env,
    )
    assert report.returncode == 0, report.stderr
    picture = read_picture(demo_project / f"report-{job}.html")
    assert picture.states() == {keys[0]: "SUCCEEDED", keys[1]: "FAILED"}  # the others have not started
    assert set(picture.attribute("data-task", "graph")) == set(keys)
    assert picture.states("graph") == {keys[0]: "SUCCEEDED", keys[1]: "FAILED"} | dict.fromkeys(keys[2:], "PENDING")
    assert "KeyError: 'price'" in picture.text and "Vertex AI job demo-job-1: FAILED" in picture.text
    assert_self_contained(picture)

    for result, text in [
        (unknown_run, "RUN_OR_JOB 'no-such-run': no local run with that id under gs://test-bucket/root"),
        (unknown_job, "reading job no-such-job"),
        (unwritable, f"-o {tmp_path / 'missing' / 'r.html'}: cannot write it (No such file or directory)"),
    ]:
        assert_one_line_error(result, text)
