"""``kedro vertexai rerun | cancel | schedules pause/resume/delete`` against the fake Vertex REST server (v1 and
v1beta1) through the real aiplatform client, with the storage emulator for the bucket check."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import VERTEX_CONFIG_HEAD, assert_one_line_error, kedro_batch, subprocess_env
from fake_vertex import BILLING_LABEL, FakeVertex

from kedro_vertex_runner.task.timings import record_task

pytestmark = pytest.mark.slow

PROJECT, REGION = "demo-gcp", "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
CONFIG = (
    VERTEX_CONFIG_HEAD
    + """\
  grouping: chains
  schedules:
    nightly:
      cron: "0 2 * * *"
      max_concurrent_active_run_count: 2
      catch_up: true
"""
)


@pytest.fixture
def project(demo_project: Path, fake: FakeVertex, gcs_emulator: str) -> Path:
    fake.reset()
    (demo_project / "conf" / "base" / "vertexai.yml").write_text(CONFIG.format(endpoint=fake.endpoint))
    yield demo_project
    assert fake.unknown == []


def env() -> dict[str, str]:
    return subprocess_env(KEDRO_VERTEX_ANONYMOUS_CREDENTIALS="1", KEDRO_VERTEX_POLL_INTERVAL="0.05")


def test_rerun_runs_the_failed_tasks_on_the_original_runs_data(project: Path, fake: FakeVertex) -> None:
    fake.script_next_job(
        {"state": "FAILED", "tasks": {"clean-houses": "SUCCEEDED", "model-train-model": ("FAILED", "KeyError")}}
    )
    (failed,) = kedro_batch([(project, ["vertexai", "run-once", "--params", "learning_rate=0.2"])], env())
    assert failed.returncode == 1, failed.stderr
    original = fake.calls("POST", r"^/v1/.*/pipelineJobs$")[0]
    original_id = original["query"]["pipelineJobId"]
    billing_id = fake.jobs[f"{PARENT}/pipelineJobs/{original_id}"]["labels"][BILLING_LABEL]
    details = fake.jobs[f"{PARENT}/pipelineJobs/{original_id}"]["jobDetail"]["taskDetails"]

    # jobs the rerun refuses
    spec = original["body"]
    succeeded = fake.add_job(f"{PARENT}/pipelineJobs/done-1", spec, "SUCCEEDED")
    running = fake.add_job(f"{PARENT}/pipelineJobs/running-1", spec, "RUNNING")
    changed_spec = json.loads(json.dumps(spec))
    task = changed_spec["pipelineSpec"]["root"]["dag"]["tasks"]["model-train-model"]
    task["taskInfo"]["name"] = "train_model_old"
    changed = fake.add_job(f"{PARENT}/pipelineJobs/changed-1", changed_spec, "FAILED")
    refusals = [
        (["rerun", succeeded], f"job {succeeded} is SUCCEEDED, not FAILED: only a failed job's tasks can be rerun"),
        (["rerun", running], f"job {running} is RUNNING, not FAILED: only a failed job's tasks can be rerun; wait"),
        (["rerun", original_id, "-p", "data_processing"], "ran pipeline 'demo-project', not 'demo-project-data-pro"),
        (["rerun", original_id], f"job {original_id} ran with the runtime parameters learning_rate=0.2 (now: none)"),
        (["rerun", changed], "only in the job: 'train_model_old'; only now: 'model.train_model'): the spec changed"),
        (["rerun", "no-such-job"], "reading job no-such-job: not found"),
        (["rerun", "Bad_Id!"], "JOB_ID"),
        (["rerun", original_id, "--backend", "local"], "backend 'local' cannot rerun a job's failed tasks"),
        (["cancel", succeeded], f"job {succeeded} is SUCCEEDED: there is nothing to cancel"),
        (["cancel", "Bad_Id!"], "JOB_ID"),
        (["cancel", "no-such-job"], "reading job no-such-job: not found"),
        (["schedules", "delete", " "], "NAME: give a schedule's name as list-pipelines shows it"),
        (["schedules", "pause", "nope"], "schedule 'nope': there is no such schedule in projects/demo-gcp/locations"),
    ]
    # the original's tasks recorded their run under the root for their job (as a task's record_task does); a failed
    # job whose tasks recorded nothing is rerun on its billing id label's run, with one warning line
    recorded_run = "7410852963074108529"
    record_task(
        "gs://test-bucket/root", recorded_run, ["__default__"], {"clean_houses": 1.5}, f"{PARENT}/x/{original_id}"
    )
    unrecorded = fake.add_job(f"{PARENT}/pipelineJobs/unrecorded-1", spec, "FAILED")
    unrecorded_billing = fake.jobs[f"{PARENT}/pipelineJobs/{unrecorded}"]["labels"][BILLING_LABEL]
    # a failed rerun: its tasks had the first job's ids fixed in their arguments, and a rerun of it keeps them
    rerun_spec = json.loads(
        json.dumps(spec)
        .replace("--run-id={{$.pipeline_job_uuid}}", "--run-id=5550001")
        .replace("--job-name={{$.pipeline_job_name}}", "--job-name=first-job-1")
    )
    failed_rerun = fake.add_job(f"{PARENT}/pipelineJobs/failed-rerun-1", rerun_spec, "FAILED")
    fake.script_next_job("RUNNING", {"state": "FAILED", "tasks": {"model-train-model": ("FAILED", "KeyError")}})
    followed = ["rerun", original_id, "--params", "learning_rate=0.3"]
    no_wait = ["rerun", unrecorded, "--no-wait", "--params", "learning_rate=0.2"]
    again = ["rerun", failed_rerun, "--no-wait", "--params", "learning_rate=0.2"]
    rerun, later, second, *results = kedro_batch(
        [(project, ["vertexai", *args]) for args in [followed, no_wait, again, *(a for a, _ in refusals)]], env()
    )
    # followed like any job: the same one-line error and exit code as run-once
    assert_one_line_error(rerun, "FAILED: task model.train_model failed: KeyError")
    assert rerun.returncode == 1
    create, create_later, create_again = fake.calls("POST", r"^/v1beta1/.*/pipelineJobs$")
    body = create["body"]
    assert create["query"]["pipelineJobId"] != original_id
    assert body["originalPipelineJobId"] in (billing_id, int(billing_id))
    # one entry per task of the original, as aiplatform's PipelineJob.rerun sends them: succeeded ones skipped
    expected = [
        {"taskId": d["taskId"], "taskName": d.get("taskUniqueName", ""), "skipTask": d["state"] == "SUCCEEDED"}
        for d in details
    ]
    got = [{"taskName": "", "skipTask": False, **entry} for entry in body["pipelineTaskRerunConfigs"]]
    assert got == expected
    assert [e["taskName"] for e in got if e["skipTask"]] == ["clean_houses + … + model.split_data (4 nodes)"]
    # the tasks read the original run's folder and carry the original job's name; the parameters given
    args = [a for e in body["pipelineSpec"]["deploymentSpec"]["executors"].values() for a in e["container"]["args"]]
    assert f"--run-id={recorded_run}" in args and f"--job-name={original_id}" in args
    assert "data is taken to be under" not in rerun.stdout + rerun.stderr
    assert "{{$." not in json.dumps(args).replace("{{$.inputs.parameters", "")
    assert body["runtimeConfig"]["parameterValues"]["learning_rate"] == 0.3
    assert f"a rerun of job {original_id}" in rerun.stdout
    # --no-wait returns once the rerun is submitted
    assert later.returncode == 0, later.stderr
    assert "Submitted Vertex AI pipeline job" in later.stdout and not re.search(r"Job \S+ succeeded", later.stdout)
    executors = create_later["body"]["pipelineSpec"]["deploymentSpec"]["executors"].values()
    assert {a for e in executors for a in e["container"]["args"] if a.startswith("--run-id")} == {
        f"--run-id={unrecorded_billing}"
    }
    warnings = [line for line in (later.stdout + later.stderr).splitlines() if "data is taken" in line]
    assert warnings == [
        f"Warning: job {unrecorded}: its tasks recorded no run under gs://test-bucket/root "
        f"(gs://test-bucket/root/timings/jobs/{unrecorded}.txt does not exist); its tasks' data is taken to be under "
        f"run {unrecorded_billing}, its {BILLING_LABEL} label (Vertex AI's job uuid is believed to be that number)"
    ], later.stderr
    assert second.returncode == 0, second.stderr
    executors = create_again["body"]["pipelineSpec"]["deploymentSpec"]["executors"].values()
    fixed = {a for e in executors for a in e["container"]["args"] if a.startswith(("--run-id", "--job-name"))}
    assert fixed == {"--run-id=5550001", "--job-name=first-job-1"}
    assert "data is taken" not in second.stdout + second.stderr
    # refusals, in one line each, and nothing created or cancelled
    for result, (_, message) in zip(results, refusals, strict=True):
        assert_one_line_error(result, message)
    assert len(fake.calls("POST", r"pipelineJobs$")) == 4
    assert fake.calls("POST", r":cancel$") == []


def test_cancel_and_schedule_housekeeping(project: Path, fake: FakeVertex, tmp_path: Path) -> None:
    running = fake.add_job(f"{PARENT}/pipelineJobs/running-2", {"displayName": "demo-project"}, "RUNNING")
    other = fake.add_schedule(PROJECT, REGION, "another-pipeline")
    schedule_id = str(int(other.rsplit("/", 1)[-1]) + 1)  # the fake's next id: the schedule created first below
    commands = [
        ["schedule", "--schedule", "nightly"],
        ["cancel", running],
        ["schedules", "pause", "nightly"],  # an entry of run_config.schedules: its display name
        ["schedules", "pause", "demo-project"],  # already paused: said, nothing sent
        ["schedules", "resume", "nightly"],  # catch_up: true in the entry
        ["schedules", "pause", schedule_id],
        ["schedules", "resume", "demo-project", "--no-catch-up"],
        ["schedules", "delete", "demo-project"],
    ]
    # settings Vertex AI would refuse: one line naming the key, before anything is sent
    bad = [
        ("max_concurrent_active_run_count: 2", "max_concurrent_active_run_count: 0"),
        ("catch_up: true", "catch_up: maybe"),
    ]
    copies = []
    for number, (old, new) in enumerate(bad):
        copy = shutil.copytree(project, tmp_path / f"bad{number}")
        config = copy / "conf" / "base" / "vertexai.yml"
        config.write_text(config.read_text().replace(old, new))
        copies.append((copy, ["vertexai", "schedules", "pause", "nightly"]))
    created, *results, bad_active, bad_catch_up = kedro_batch(
        [(project, ["vertexai", *args]) for args in commands] + copies, env()
    )
    assert_one_line_error(bad_active, "max_concurrent_active_run_count")
    assert_one_line_error(bad_catch_up, "catch_up")
    assert created.returncode == 0, created.stderr
    (create,) = fake.calls("POST", r"/schedules$")
    assert create["body"]["maxConcurrentActiveRunCount"] in (2, "2")
    assert f"schedules/{schedule_id}" in created.stdout
    for result in results:
        assert result.returncode == 0, result.stderr
    outputs = [result.stdout.strip() for result in results]
    assert outputs[0] == f"Cancellation of job {running} (RUNNING) requested"
    label = f"schedule 'demo-project' ({schedule_id})"
    assert outputs[1:] == [
        f"Paused {label}",
        f"{label} is already paused",
        f"Resumed {label} (missed runs are caught up)",
        f"Paused {label}",
        f"Resumed {label}",
        f"Deleted {label}",
    ]
    (cancel,) = fake.calls("POST", r":cancel$")
    assert cancel["path"] == f"/v1/{PARENT}/pipelineJobs/{running}:cancel"
    assert len(fake.calls("POST", rf"/schedules/{schedule_id}:pause$")) == 2
    resumes = [call["body"] or {} for call in fake.calls("POST", rf"/schedules/{schedule_id}:resume$")]
    assert [r.get("catchUp", False) for r in resumes] == [True, False]
    assert [c["path"] for c in fake.calls("DELETE", r"/schedules/")] == [f"/v1/{PARENT}/schedules/{schedule_id}"]
    assert list(fake.schedules) == [other] and fake.schedules[other]["state"] == "ACTIVE"
