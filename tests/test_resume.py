"""Resuming a failed local run with the printed command (``--runner-params resume=ID``), end to end.

One project copy, three real ``kedro run`` jobs (and one batch of refusals): a run fails; a resume with a changed
``--params`` value is refused, then allowed with ``resume_changed=true`` (and fails again); the command that run
prints, pasted with the failure's cause removed, finishes the job running only the failed task and its dependent.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import kedro_batch, kedro_cmd, subprocess_env

pytestmark = pytest.mark.slow

PIPELINE = """
from pathlib import Path

from kedro.pipeline import Node, Pipeline


def _ran(name):
    with open(f"data/resume_{name}.log", "a") as log:
        log.write("ran\\n")


def first(alpha):
    _ran("first")
    return alpha * 2


def prepare(value):
    _ran("prepare")
    return value


def second(value):
    _ran("second")
    if Path("data/resume_fail").exists():
        raise RuntimeError("second fails while data/resume_fail exists")
    return value + 1


def third(value, label):
    _ran("third")
    Path("data/resume_result.txt").write_text(f"{value} {label}")
    return value


def side(alpha):
    _ran("side")
    return alpha


def create_pipeline(**kwargs):
    return Pipeline(
        [
            Node(first, "params:alpha", "first_out", name="first"),
            Node(prepare, "first_out", "prepared", name="prepare", tags=["group.second"]),
            Node(second, "prepared", "second_out", name="second", tags=["group.second"]),
            Node(third, ["second_out", "params:label"], "third_out", name="third"),
            Node(side, "params:alpha", "side_out", name="side"),
        ],
        tags=["resumable"],
    )
"""
OPTIONS = ["--pipeline", "resumable", "--env", "staging", "--tags", "resumable"]
HINT = re.compile(r"^To resume the failed task\(s\) with this run's stored data: (kedro run .*)$", re.M)
KEDRO_OWN_HINT = (
    "nearest nodes with persisted inputs",
    "You can resume the pipeline run",
    "Repeat the previous command",
)


def kedro(project: Path, words: list[str]) -> subprocess.CompletedProcess[str]:
    assert words[:2] == ["kedro", "run"], words
    return subprocess.run(
        kedro_cmd(*words[1:]), cwd=project, env=subprocess_env(), capture_output=True, text=True, timeout=600
    )


def runs(project: Path) -> dict[str, int]:
    """How many times each node has run."""
    names = ("first", "prepare", "second", "third", "side")
    logs = {name: project / "data" / f"resume_{name}.log" for name in names}
    return {name: len(log.read_text().splitlines()) if log.exists() else 0 for name, log in logs.items()}


def earlier(stdout: str, task: str) -> bool:
    return re.search(rf"^\[\d\d:\d\d:\d\d\] {task}: SUCCEEDED \(earlier run\)$", stdout, re.M) is not None


@pytest.fixture
def project(demo_project: Path) -> Path:
    package = demo_project / "src" / "demo_project" / "pipelines" / "resumable"
    package.mkdir()
    (package / "__init__.py").write_text("from .pipeline import create_pipeline\n")
    (package / "pipeline.py").write_text(PIPELINE)
    (demo_project / "conf" / "base" / "parameters_resumable.yml").write_text("alpha: 0.1\nlabel: base\n")
    (demo_project / "conf" / "staging").mkdir(exist_ok=True)
    (demo_project / "conf" / "staging" / "parameters_resumable.yml").write_text("label: staging\n")
    config = demo_project / "conf" / "base" / "vertexai.yml"
    # `second` fails after `prepare` has run in the same task
    config.write_text(config.read_text().replace("  grouping: makespan\n", "  grouping: tags\n"))
    # ... and stores its output, so that a resumed run starts that task at `second`
    catalog = demo_project / "conf" / "base" / "catalog.yml"
    catalog.write_text(
        catalog.read_text() + "\nprepared:\n  type: pickle.PickleDataset\n  filepath: data/resume_prepared.pkl\n"
    )
    (demo_project / "data" / "resume_fail").write_text("")
    return demo_project


def test_printed_command_resumes_exactly_the_failed_run(project: Path):
    # 1. the run fails in `second` (task `second`, after `prepare`); `first` and `side` succeed
    failed = kedro(
        project, ["kedro", "run", "--runner=VertexRunner", *OPTIONS, "--params", "alpha=0.5,label=two words"]
    )
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output[-4000:]
    run_id = failed.stderr.strip().splitlines()[-1].split()[2]
    hint = HINT.search(failed.stdout)
    assert hint, failed.stdout[-3000:]
    # every option that defined the run, --params included, each value quoted for the shell
    assert shlex.split(hint.group(1)) == [
        "kedro", "run", "--runner=VertexRunner", *OPTIONS, "--params", "alpha=0.5,label=two words",
        "--runner-params", f"resume={run_id}",
    ]  # fmt: skip
    assert "'alpha=0.5,label=two words'" in hint.group(1)
    # the task's log tail no longer carries Kedro's own resume suggestion (a command without VertexRunner's options)
    assert not [text for text in KEDRO_OWN_HINT if text in output], output[-4000:]
    record = json.loads((project / "data" / "vertex_runs" / run_id / "run.json").read_text())
    assert record["options"]["runtime_params"] == {"alpha": 0.5, "label": "two words"}
    assert record["options"]["env"] == "staging" and record["options"]["tags"] == ["resumable"]
    assert {name: task["state"] for name, task in record["tasks"].items()} == {
        "first": "SUCCEEDED", "side": "SUCCEEDED", "group-second": "FAILED", "third": "SKIPPED",
    }  # fmt: skip
    assert runs(project) == {"first": 1, "prepare": 1, "second": 1, "third": 0, "side": 1}

    # 2. resuming with other options is refused, in one line naming the option and both values; nothing runs
    resume = ["--runner-params", f"resume={run_id}"]
    without_env = [*OPTIONS[:2], *OPTIONS[4:]]
    run = ["run", "--runner=VertexRunner", *OPTIONS]
    changed, other_env, unknown, both_ids, alone, remote = kedro_batch(
        [
            (project, ["run", "--runner=VertexRunner", *OPTIONS, "--params", "alpha=0.7,label=two words", *resume]),
            (project, ["run", "--runner=VertexRunner", *without_env, "--params", "alpha=0.5,label=two words", *resume]),
            (project, ["run", "--runner=VertexRunner", *OPTIONS, "--runner-params", "resume=no-such-run"]),
            (project, [*run, "--runner-params", f"resume={run_id},run_id=other"]),
            (project, [*run, "--runner-params", "resume_changed=true"]),
            (project, [*run, "--runner-params", f"backend=vertex,resume={run_id}"]),
        ]
    )
    assert changed.returncode == 1 and changed.stderr.strip().splitlines()[-1] == (
        f"Error: resume of run {run_id}: --params alpha was 0.5, now 0.7: pass the same options (the printed "
        "resume command has them), or add resume_changed=true to --runner-params to resume with the new ones"
    ), changed.stderr[-2000:]
    assert other_env.returncode == 1, other_env.stderr[-2000:]
    assert (
        other_env.stderr.strip()
        .splitlines()[-1]
        .startswith(f"Error: resume of run {run_id}: --env was staging, now not given: pass the same options ")
    ), other_env.stderr[-2000:]
    assert unknown.returncode == 1 and unknown.stderr.strip().splitlines()[-1] == (
        "Error: --runner-params resume=no-such-run: no run record data/vertex_runs/no-such-run/run.json: give the "
        "id of a local run (its printed resume command has it), or start the nodes to run again yourself with "
        "--from-nodes NODES --runner-params run_id=no-such-run"
    ), unknown.stderr[-2000:]
    assert [result.stderr.strip().splitlines()[-1] for result in (both_ids, alone, remote)] == [
        f"Error: --runner-params resume={run_id},run_id=other: a resumed run keeps its run id; drop run_id=",
        "Error: --runner-params resume_changed=true: only with resume=ID (the run to resume)",
        f"Error: --runner-params resume={run_id}: only the backend that runs tasks on this machine resumes runs (on "
        "Vertex AI, retry the job in the console); add backend=local",
    ]
    assert runs(project) == {"first": 1, "prepare": 1, "second": 1, "third": 0, "side": 1}

    # 3. asked for explicitly, it resumes with the new value: only the failed task (compiled anew: run whole) and
    # its dependent run (and it fails again)
    again = kedro(project, [*shlex.split(hint.group(1))[:-4], "--params", "alpha=0.7,label=two words",
                            "--runner-params", f"resume={run_id},resume_changed=true"])  # fmt: skip
    assert again.returncode == 1, (again.stdout + again.stderr)[-4000:]
    assert earlier(again.stdout, "first") and earlier(again.stdout, "side"), again.stdout[-3000:]
    assert runs(project) == {"first": 1, "prepare": 2, "second": 2, "third": 0, "side": 1}
    hint = HINT.search(again.stdout)
    assert hint and "alpha=0.7" in hint.group(1), again.stdout[-3000:]

    # 4. the printed command, pasted once the cause is gone, finishes the job: the failed task, from its failed
    # node (`prepare` stored its output), and its dependent run, with the recorded tasks (a grouping that would now
    # fuse first-prepare-second-third changes nothing)
    (project / "data" / "resume_fail").unlink()
    config = project / "conf" / "base" / "vertexai.yml"
    config.write_text(config.read_text().replace("  grouping: tags\n", "  grouping: chains\n"))
    resumed = kedro(project, shlex.split(hint.group(1)))
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert earlier(resumed.stdout, "first") and earlier(resumed.stdout, "side"), resumed.stdout[-3000:]
    assert re.search(r"^\[\d\d:\d\d:\d\d\] group-second \(second\): SUCCEEDED in ", resumed.stdout, re.M), (
        resumed.stdout[-3000:]
    )
    assert f"Run {run_id} finished: 4 tasks succeeded (2 of them in an earlier run); " in resumed.stdout
    assert runs(project) == {"first": 1, "prepare": 2, "second": 3, "third": 1, "side": 1}
    # `first` was not run again: second read the output the first run stored (0.5 * 2), third the new label
    assert (project / "data" / "resume_result.txt").read_text() == "2.0 two words"
    record = json.loads((project / "data" / "vertex_runs" / run_id / "run.json").read_text())
    assert {task["state"] for task in record["tasks"].values()} == {"SUCCEEDED"}
