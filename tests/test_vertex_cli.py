"""``kedro vertexai run-once | schedule | list-pipelines | ui`` and ``kedro run --runner=VertexRunner`` with the
vertex backend, in subprocesses on a copy of the example project, against the fake Vertex REST server and the
storage emulator (anonymous credentials, allowed because ``api_endpoint`` is local).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import (
    VERTEX_CONFIG_HEAD,
    assert_one_line_error,
    failure_policy,
    kedro_batch,
    kedro_cmd,
    subprocess_env,
)
from fake_logging import FakeLogging
from fake_vertex import FakeVertex, custom_job_id

pytestmark = pytest.mark.slow

PROJECT, REGION = "demo-gcp", "europe-west1"
# the example's tasks as Vertex AI names them (their taskInfo.name), keyed in scripts by their spec task keys
CLEAN_TASK = "clean_houses + … + model.split_data (4 nodes)"  # task clean-houses (a chain of four nodes)
TRAIN_TASK = "model.train_model"  # task model-train-model
CONFIG = (
    VERTEX_CONFIG_HEAD
    + """\
  grouping: chains  # a task per branch, named in the job states below (makespan would give two tasks)
  service_account: runner@demo-gcp.iam.gserviceaccount.com
  network:
    vpc: projects/123456/global/networks/peered-vpc
  labels: {{team: pricing}}
  experiment_name: house-prices
  experiment_description: Weekly house-price models
  schedules:
    weekday-mornings:
      cron: "0 6 * * 1-5"
      timezone: Europe/Warsaw
      max_run_count: 5
      pipeline: data_processing
      params: {{learning_rate: 0.3}}
"""
)


@pytest.fixture
def project(demo_project: Path, fake: FakeVertex, gcs_emulator: str, fake_logging: FakeLogging) -> Path:
    fake.reset()
    fake_logging.reset()
    _LOGGING_ENDPOINT[0] = fake_logging.endpoint
    (demo_project / "conf" / "base" / "vertexai.yml").write_text(CONFIG.format(endpoint=fake.endpoint))
    yield demo_project
    assert fake.unknown == []


_LOGGING_ENDPOINT = [""]  # the module's fake Cloud Logging, set by the `project` fixture


def env(**extra: str) -> dict[str, str]:
    return subprocess_env(
        KEDRO_VERTEX_ANONYMOUS_CREDENTIALS="1",
        KEDRO_VERTEX_POLL_INTERVAL="0.05",
        KEDRO_VERTEX_LOGGING_ENDPOINT=_LOGGING_ENDPOINT[0],
        **extra,
    )


def run(project: Path, *args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        kedro_cmd(*args), cwd=project, env=environ or env(), capture_output=True, text=True, timeout=180
    )


def test_run_once_waits_and_succeeds(project: Path, fake: FakeVertex) -> None:
    fake.script_next_job("RUNNING", {"state": "RUNNING", "tasks": {"clean-houses": "RUNNING"}}, 503, "SUCCEEDED")
    result = run(project, "vertexai", "run-once", "--params", "learning_rate=0.2")
    assert result.returncode == 0, result.stderr
    (create,) = fake.calls("POST", r"/pipelineJobs$")
    job_id = create["query"]["pipelineJobId"]
    assert re.fullmatch(r"demo-project-\d{14}-[a-z0-9]{6}", job_id)
    body = create["body"]
    assert body["runtimeConfig"]["parameterValues"]["learning_rate"] == 0.2
    assert body["runtimeConfig"]["gcsOutputDirectory"] == "gs://test-bucket/root"
    assert body["serviceAccount"] == "runner@demo-gcp.iam.gserviceaccount.com"
    assert body["labels"] == {"team": "pricing"}
    assert body["network"] == "projects/123456/global/networks/peered-vpc"
    assert body["displayName"] == "demo-project"
    assert "clean-houses" in body["pipelineSpec"]["root"]["dag"]["tasks"]
    declared = body["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]
    assert declared["learning_rate"]["parameterType"] == "NUMBER_DOUBLE"
    # the experiment is created before the job (with its description), the job's run is attached to it
    (context,) = fake.calls("POST", r"/metadataStores/default/contexts$")
    assert context["query"]["contextId"] == "house-prices"
    assert context["body"]["description"] == "Weekly house-price models"
    assert fake.requests.index(context) < fake.requests.index(create)
    assert fake.calls("POST", r"/contexts/house-prices:addContextChildren$")
    # the example ships with kedro-mlflow switched off: nothing about MLflow in the job
    assert "mlflow" not in json.dumps(body).lower()
    # api_endpoint is honoured: every call went to the fake, the regional endpoint was never asked
    assert all(r["path"].startswith("/v1/projects/demo-gcp/locations/europe-west1/") for r in fake.requests)
    out = result.stdout
    link = f"https://console.cloud.google.com/vertex-ai/locations/{REGION}/pipelines/runs/{job_id}?project={PROJECT}"
    assert link in out
    assert f"{CLEAN_TASK}: RUNNING" in out and f"{TRAIN_TASK}: SUCCEEDED" in out
    assert f"Job {job_id} succeeded" in out
    assert "retrying" in result.stderr


def test_run_once_failed_job_exits_non_zero(project: Path, fake: FakeVertex) -> None:
    fake.script_next_job(
        "RUNNING",
        {
            "state": "FAILED",
            "tasks": {"clean-houses": "SUCCEEDED", "model-train-model": ("FAILED", "KeyError: 'price'")},
        },
    )
    result = run(project, "vertexai", "run-once")
    assert_one_line_error(result, f"FAILED: task {TRAIN_TASK} failed: KeyError: 'price'")

    # a failed task without its own message: the job's message is shown instead
    fake.script_next_job(
        {
            "state": "FAILED",
            "tasks": {"model-train-model": "FAILED"},
            "error": "The DAG failed because some tasks failed.",
        }
    )
    result = run(project, "vertexai", "run-once")
    assert_one_line_error(result, f"task {TRAIN_TASK} failed: The DAG failed because some tasks failed.")


def test_run_once_cancelled_job_exits_non_zero(project: Path, fake: FakeVertex) -> None:
    fake.script_next_job("RUNNING", {"state": "CANCELLED", "tasks": {"clean-houses": "CANCELLED"}})
    result = run(project, "vertexai", "run-once")
    assert result.returncode == 1
    assert_one_line_error(result, "was CANCELLED (details: https://console.cloud.google.com/vertex-ai/locations/")
    assert "succeeded" not in result.stdout


def test_run_once_no_wait_returns_after_submitting(project: Path, fake: FakeVertex) -> None:
    result = run(project, "vertexai", "run-once", "--no-wait", "-p", "data_processing")
    assert result.returncode == 0, result.stderr
    (create,) = fake.calls("POST", r"/pipelineJobs$")
    assert create["query"]["pipelineJobId"].startswith("data-processing-")
    assert create["body"]["displayName"] == "demo-project-data-processing"  # the pipeline's name once
    assert "Submitted Vertex AI pipeline job data-processing-" in result.stdout
    assert "succeeded" not in result.stdout


def test_missing_bucket_submits_nothing(project: Path, fake: FakeVertex) -> None:
    config = project / "conf" / "base" / "vertexai.yml"
    config.write_text(config.read_text().replace("gs://test-bucket/root", "gs://missing-bucket/root"))
    result = run(project, "vertexai", "run-once")
    assert_one_line_error(result, "bucket gs://missing-bucket of run_config.root does not exist")
    assert fake.requests == []


def test_missing_credentials_submit_nothing(project: Path, fake: FakeVertex, tmp_path: Path) -> None:
    environ = subprocess_env(CLOUDSDK_CONFIG=str(tmp_path / "gcloud"))
    environ.pop("KEDRO_VERTEX_ANONYMOUS_CREDENTIALS", None)
    environ.pop("NO_GCE_CHECK", None)  # as on a user's laptop: nothing may wait for a metadata server
    result = run(project, "vertexai", "run-once", environ=environ)
    # this line comes from the check made before google-auth is asked (which would probe for a metadata server,
    # 3 s or more per try on a laptop; that check's own time is bounded in test_vertex_backend.py)
    assert_one_line_error(result, "no Google Cloud credentials found: run `gcloud auth application-default login`")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in result.stderr
    assert fake.requests == []


def test_bad_credentials_file_submits_nothing(project: Path, fake: FakeVertex, tmp_path: Path) -> None:
    environ = subprocess_env(GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "nope.json"))
    environ.pop("KEDRO_VERTEX_ANONYMOUS_CREDENTIALS", None)
    result = run(project, "vertexai", "list-pipelines", environ=environ)
    assert_one_line_error(result, "nope.json does not exist")
    assert fake.requests == []


def test_unreachable_token_endpoint_is_one_line_in_bounded_time(
    project: Path, fake: FakeVertex, tmp_path: Path
) -> None:
    """Well-formed service-account credentials whose token endpoint cannot be reached (offline): one line about
    network and credentials after the bounded bucket check, nothing submitted."""
    import socket

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    with socket.socket() as probe:  # a free port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_file = tmp_path / "sa.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "1",
                "private_key": key.decode(),
                "client_email": f"ci@{PROJECT}.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": f"http://127.0.0.1:{dead}/token",
            }
        )
    )
    environ = env(GOOGLE_APPLICATION_CREDENTIALS=str(key_file), KEDRO_VERTEX_BUCKET_CHECK_TIMEOUT="2")
    environ.pop("KEDRO_VERTEX_ANONYMOUS_CREDENTIALS")
    started = time.monotonic()
    result = run(project, "vertexai", "run-once", environ=environ)
    assert_one_line_error(result, "checking bucket gs://test-bucket: no answer from Google Cloud within 2 s")
    assert "check the network connection and credentials" in result.stderr
    assert fake.calls("POST", r"/pipelineJobs$") == []
    assert time.monotonic() - started < 60


def test_kedro_run_with_vertex_runner(project: Path, fake: FakeVertex) -> None:
    fake.script_next_job("RUNNING", "SUCCEEDED")
    result = run(
        project, "run", "--runner=VertexRunner", "--runner-params", "backend=vertex", "--params", "learning_rate=0.4"
    )
    assert result.returncode == 0, result.stderr
    (create,) = fake.calls("POST", r"/pipelineJobs$")
    assert create["body"]["runtimeConfig"]["parameterValues"]["learning_rate"] == 0.4
    assert "succeeded" in result.stdout


def test_interrupt_with_cancel_on_interrupt_cancels(project: Path, fake: FakeVertex) -> None:
    fake.script_next_job("RUNNING")
    process = subprocess.Popen(
        kedro_cmd("vertexai", "run-once", "--cancel-on-interrupt"),
        cwd=project,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not fake.calls("GET", r"/pipelineJobs/[^/]+$") and time.monotonic() < deadline:
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert len(fake.calls("POST", r"/pipelineJobs/[^/]+:cancel$")) == 1
    assert "cancellation of job demo-project-" in err and "Traceback" not in err


def test_schedule_from_cron_then_replace(project: Path, fake: FakeVertex) -> None:
    first = run(project, "vertexai", "schedule", "--cron", "0 2 * * *")
    assert first.returncode == 0, first.stderr
    second = run(project, "vertexai", "schedule", "--cron", "30 3 * * *", "--timezone", "Europe/Warsaw")
    assert second.returncode == 0, second.stderr
    assert len(fake.schedules) == 1
    (schedule,) = fake.schedules.values()
    assert schedule["displayName"] == "demo-project" and schedule["cron"] == "TZ=Europe/Warsaw 30 3 * * *"
    assert "Replaced earlier schedule" in second.stdout and "0 2 * * *" in second.stdout


def test_named_schedule_from_config(project: Path, fake: FakeVertex) -> None:
    result = run(project, "vertexai", "schedule", "--schedule", "weekday-mornings")
    assert result.returncode == 0, result.stderr
    (schedule,) = fake.schedules.values()
    assert schedule["cron"] == "TZ=Europe/Warsaw 0 6 * * 1-5"
    assert schedule["maxRunCount"] in ("5", 5)
    job = schedule["createPipelineJobRequest"]["pipelineJob"]
    assert job["runtimeConfig"]["parameterValues"]["learning_rate"] == 0.3
    assert schedule["displayName"] == "demo-project-data-processing"  # the entry's pipeline

    # --pipeline overrides the entry's pipeline, even when it names __default__
    again = run(project, "vertexai", "schedule", "--schedule", "weekday-mornings", "-p", "__default__")
    assert again.returncode == 0, again.stderr
    assert sorted(s["displayName"] for s in fake.schedules.values()) == ["demo-project", "demo-project-data-processing"]


def test_schedule_whose_old_one_cannot_be_deleted_never_fires_twice(project: Path, fake: FakeVertex) -> None:
    """Deleting the earlier schedule is refused: the new one is active, the earlier one stays paused (one line
    says so), and trying again does not pile up active schedules."""
    old = fake.add_schedule(PROJECT, REGION, "demo-project")
    for attempt in (1, 2):
        fake.fail("delete_schedule", 403, "permission denied")
        result = run(project, "vertexai", "schedule", "--cron", "0 2 * * *")
        assert_one_line_error(result, "is active, but 1 earlier one(s) named 'demo-project' could not be deleted")
        active = [s for s in fake.schedules.values() if s["state"] == "ACTIVE"]
        assert len(active) == 1 and active[0]["name"] != old, (attempt, fake.schedules)
        assert fake.schedules[old]["state"] == "PAUSED"


def test_schedule_that_cannot_be_created_leaves_the_earlier_one_running(project: Path, fake: FakeVertex) -> None:
    old = fake.add_schedule(PROJECT, REGION, "demo-project")
    fake.fail("create_schedule", 403, "permission denied")
    result = run(project, "vertexai", "schedule", "--cron", "0 2 * * *")
    assert_one_line_error(result, "creating the schedule")
    assert list(fake.schedules) == [old] and fake.schedules[old]["state"] == "ACTIVE"


BAD_SCHEDULE_OPTIONS = [
    (("--cron", "61 * * * *"), "--cron: cron field '61'"),
    (("--schedule", "nope"), "--schedule 'nope': run_config.schedules defines weekday-mornings"),
    ((), "give --cron EXPRESSION or --schedule NAME (run_config.schedules defines weekday-mornings)"),
]


def test_bad_schedule_options(project: Path, fake: FakeVertex) -> None:
    results = kedro_batch([(project, ["vertexai", "schedule", *args]) for args, _ in BAD_SCHEDULE_OPTIONS], env())
    for result, (_, message) in zip(results, BAD_SCHEDULE_OPTIONS, strict=True):
        assert_one_line_error(result, message)
    assert fake.schedules == {}


def test_list_pipelines_and_ui(project: Path, fake: FakeVertex) -> None:
    fake.script_next_job("SUCCEEDED")
    assert run(project, "vertexai", "run-once").returncode == 0
    job_id = fake.calls("POST", r"/pipelineJobs$")[0]["query"]["pipelineJobId"]
    fake.add_schedule(PROJECT, REGION, "demo-project", cron="0 6 * * *")
    listing = run(project, "vertexai", "list-pipelines")
    assert listing.returncode == 0, listing.stderr
    assert re.search(rf"{job_id}\s.*SUCCEEDED", listing.stdout)
    assert f"pipelines/runs/{job_id}?project={PROJECT}" in listing.stdout
    assert "demo-project" in listing.stdout and "0 6 * * *" in listing.stdout
    ui = run(project, "vertexai", "ui", environ=env(CI="true"))
    assert ui.returncode == 0, ui.stderr
    assert f"https://console.cloud.google.com/vertex-ai/pipelines/runs?project={PROJECT}" in ui.stdout


PRODUCTION_CONFIG = (
    VERTEX_CONFIG_HEAD
    + """\
  labels: {{team: pricing, env: prod}}
  encryption_key: projects/kms-proj/locations/europe-west1/keyRings/ml/cryptoKeys/pipelines
  failure_policy: fast
  network:
    vpc: projects/123456/global/networks/private
    reserved_ip_ranges: [vertex-ai-range]
    psc_interface:
      network_attachment: projects/demo-gcp/regions/europe-west1/networkAttachments/pipelines
      dns_peering: [{{domain: corp.example.com., target_project: host-proj, target_network: shared-vpc}}]
  schedules:
    nightly: {{cron: "0 2 * * *", allow_queueing: true}}
"""
)


def test_production_settings_reach_the_job_and_the_schedule(project: Path, fake: FakeVertex) -> None:
    (project / "conf" / "base" / "vertexai.yml").write_text(PRODUCTION_CONFIG.format(endpoint=fake.endpoint))
    submitted = run(project, "vertexai", "run-once", "--no-wait")
    assert submitted.returncode == 0, submitted.stderr
    scheduled = run(project, "vertexai", "schedule", "--schedule", "nightly")
    assert scheduled.returncode == 0, scheduled.stderr
    (create,) = fake.calls("POST", r"/pipelineJobs$")
    (schedule,) = fake.schedules.values()
    assert schedule["allowQueueing"] is True
    for body in (create["body"], schedule["createPipelineJobRequest"]["pipelineJob"]):
        assert body["labels"] == {"team": "pricing", "env": "prod"}
        assert body["encryptionSpec"] == {
            "kmsKeyName": "projects/kms-proj/locations/europe-west1/keyRings/ml/cryptoKeys/pipelines"
        }
        assert failure_policy(body) == "PIPELINE_FAILURE_POLICY_FAIL_FAST"
        assert body["network"] == "projects/123456/global/networks/private"
        assert body["reservedIpRanges"] == ["vertex-ai-range"]
        assert body["pscInterfaceConfig"] == {
            "networkAttachment": "projects/demo-gcp/regions/europe-west1/networkAttachments/pipelines",
            "dnsPeeringConfigs": [
                {"domain": "corp.example.com.", "targetProject": "host-proj", "targetNetwork": "shared-vpc"}
            ],
        }


def test_failed_task_log_in_the_terminal_and_the_logs_command(
    project: Path, fake: FakeVertex, fake_logging: FakeLogging
) -> None:
    traceback = [
        "Traceback (most recent call last):",
        '  File "nodes.py", line 12, in train_model',
        "KeyError: 'price'",
    ]
    fake_logging.add_lines(custom_job_id("model-train-model"), ["INFO Loading data"] * 25 + traceback)
    fake.script_next_job(
        {"state": "RUNNING", "tasks": {"clean-houses": "RUNNING"}},
        {
            "state": "FAILED",
            "tasks": {
                "clean-houses": "SUCCEEDED",
                "model-train-model": ("FAILED", "The replica workerpool0-0 exited with 1"),
            },
        },
    )
    result = run(project, "vertexai", "run-once")
    # named as the console names them: the task's nodes, not the spec's task keys
    assert_one_line_error(result, f"FAILED: task {TRAIN_TASK} failed: The replica workerpool0-0 exited with 1")
    out = result.stdout.splitlines()
    assert f"{CLEAN_TASK}: RUNNING" in out and f"{TRAIN_TASK}: FAILED" in out
    start = out.index(f"Task {TRAIN_TASK} (FAILED); last 20 lines of its log:")
    assert out[start + 18 : start + 21] == [f"  {line}" for line in traceback]
    assert out[start + 21].startswith("Full log: https://console.cloud.google.com/logs/query;query=")
    job_id = fake.calls("POST", r"/pipelineJobs$")[0]["query"]["pipelineJobId"]

    # later: the same tail with the logs command (by default: the failed tasks)
    later = run(project, "vertexai", "logs", job_id, "--lines", "3")
    assert later.returncode == 0, later.stderr
    out = later.stdout.splitlines()
    start = out.index(f"Task {TRAIN_TASK} (FAILED); last 3 lines of its log:")
    assert out[start + 1 : start + 4] == [f"  {line}" for line in traceback]

    # without roles/logging.viewer: one line saying so, no traceback
    fake_logging.deny()
    denied = run(project, "vertexai", "logs", job_id, "--task", CLEAN_TASK)
    assert denied.returncode == 0 and "Traceback" not in denied.stderr, denied.stderr
    (line,) = [line for line in denied.stdout.splitlines() if line.startswith("Task ")]
    assert line.startswith(
        f"Task {CLEAN_TASK} (SUCCEEDED): its log cannot be shown: no permission to read logs of "
        "project demo-gcp: grant the account roles/logging.viewer"
    ), line
