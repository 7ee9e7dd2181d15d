"""The Vertex AI backend, in-process, against the fake Vertex REST server and the storage emulator.

The real ``google-cloud-aiplatform`` v1 clients talk to :mod:`fake_vertex`; the bucket check talks to the
gcp-storage-emulator. Specs are small hand-written dicts so these tests do not depend on the compiler.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import failure_policy
from fake_logging import FakeLogging
from fake_vertex import FakeVertex, custom_job_id

from kedro_vertex_runner import console
from kedro_vertex_runner.backends import vertex
from kedro_vertex_runner.backends.base import JobRequest
from kedro_vertex_runner.backends.vertex import jobs as vertex_jobs
from kedro_vertex_runner.backends.vertex.cloud_logging import LOGGING_ENDPOINT_ENV
from kedro_vertex_runner.config import PluginConfig, validate_config
from kedro_vertex_runner.errors import PluginError

PROJECT, REGION = "proj-1", "europe-west1"
JOBS = f"/v1/projects/{PROJECT}/locations/{REGION}/pipelineJobs"
SPEC: dict[str, Any] = {
    "pipelineInfo": {"name": "demo-project"},
    "schemaVersion": "2.1.0",
    "sdkVersion": "kedro-vertex-runner",
    "root": {
        "inputDefinitions": {
            "parameters": {
                "alpha": {"parameterType": "NUMBER_DOUBLE", "defaultValue": 0.5, "isOptional": True},
                "depth": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3, "isOptional": True},
                "name": {"parameterType": "STRING", "defaultValue": "x", "isOptional": True},
                "flag": {"parameterType": "BOOLEAN", "defaultValue": True, "isOptional": True},
                "opts": {"parameterType": "STRUCT", "defaultValue": {"k": [1, 2]}, "isOptional": True},
            }
        },
        "dag": {
            "tasks": {
                "clean": {"taskInfo": {"name": "clean"}},
                "train": {"taskInfo": {"name": "train"}, "cachingOptions": {"enableCache": False}},
            }
        },
    },
}


@pytest.fixture
def api(fake: FakeVertex, gcs_emulator: str, fake_logging: FakeLogging, monkeypatch: pytest.MonkeyPatch) -> FakeVertex:
    fake.reset()
    fake_logging.reset()
    monkeypatch.setenv(LOGGING_ENDPOINT_ENV, fake_logging.endpoint)
    monkeypatch.setenv(vertex.ANONYMOUS_ENV, "1")
    monkeypatch.setenv(vertex.POLL_INTERVAL_ENV, "0.02")
    monkeypatch.delenv("CI", raising=False)
    yield fake
    assert fake.unknown == [], "the client used endpoints the fake does not implement"


def make_config(fake: FakeVertex, **run_config: Any) -> PluginConfig:
    raw = {"image": "europe-docker.pkg.dev/p/r/img:1", "root": "gs://test-bucket/root", **run_config}
    return validate_config({"project_id": PROJECT, "region": REGION, "api_endpoint": fake.endpoint, "run_config": raw})


def submit(spec: dict[str, Any], config: PluginConfig, *, wait: bool = True, **request: Any) -> str:
    """One job on the vertex backend as the commands run it (the CLI's reporter); returns the job id."""
    with console.ConsoleReporter() as reporter:
        return console.open_backend(config, None, reporter).run(JobRequest(spec=spec, **request), wait=wait).job_id


def created_jobs(fake: FakeVertex) -> list[dict[str, Any]]:
    return fake.calls("POST", r"/pipelineJobs$")


# ------------------------------------------------------------------------------------------------------------------
# submit


def test_submit_sends_a_complete_job(api: FakeVertex, capsys: pytest.CaptureFixture) -> None:
    config = make_config(
        api,
        labels={"team": "pricing", "env": "dev"},
        service_account="runner@proj-1.iam.gserviceaccount.com",
        network={"vpc": "projects/123/global/networks/vpc-1"},
        experiment_name="house-prices",
        experiment_description="Weekly retrains",
        caching=True,
    )
    job_id = submit(SPEC, config, pipeline_name="__default__", wait=False)

    assert re.fullmatch(r"demo-project-\d{14}-[a-z0-9]{6}", job_id)
    (create,) = created_jobs(api)
    assert create["query"]["pipelineJobId"] == job_id
    body = create["body"]
    assert body["displayName"] == "demo-project"
    assert body["labels"] == {"team": "pricing", "env": "dev"}
    assert body["serviceAccount"] == "runner@proj-1.iam.gserviceaccount.com"
    assert body["network"] == "projects/123/global/networks/vpc-1"
    assert body["runtimeConfig"]["gcsOutputDirectory"] == "gs://test-bucket/root"
    values = body["runtimeConfig"]["parameterValues"]
    assert values == {"alpha": 0.5, "depth": 3, "name": "x", "flag": True, "opts": {"k": [1, 2]}}
    assert isinstance(values["name"], str) and isinstance(values["flag"], bool)
    tasks = body["pipelineSpec"]["root"]["dag"]["tasks"]
    # run_config.caching fills tasks without their own setting; a per-task setting wins
    assert tasks["clean"]["cachingOptions"] == {"enableCache": True}
    assert tasks["train"]["cachingOptions"] == {"enableCache": False}
    assert body["pipelineSpec"]["pipelineInfo"] == {"name": "demo-project"}

    # the experiment exists (created with its description) and the run is attached to it
    context = api.calls("POST", r"/metadataStores/default/contexts$")[0]
    assert context["query"]["contextId"] == "house-prices"
    assert context["body"]["schemaTitle"] == "system.Experiment"
    assert context["body"]["description"] == "Weekly retrains"
    (attach,) = api.calls("POST", r"/contexts/house-prices:addContextChildren$")
    run_context = f"projects/{PROJECT}/locations/{REGION}/metadataStores/default/contexts/{job_id}"
    assert attach["body"]["childContexts"] == [run_context]

    out = capsys.readouterr().out
    assert (
        f"https://console.cloud.google.com/vertex-ai/locations/{REGION}/pipelines/runs/{job_id}?project={PROJECT}"
        in out
    )


def test_existing_experiment_is_reused(api: FakeVertex) -> None:
    config = make_config(api, experiment_name="exp-a")
    submit(SPEC, config, wait=False)
    submit(SPEC, config, wait=False)
    assert len(api.calls("POST", r"/contexts$")) == 1
    assert len(api.calls("POST", r":addContextChildren$")) == 2


def test_no_experiment_no_metadata_calls(api: FakeVertex) -> None:
    submit(SPEC, make_config(api), wait=False)
    assert not api.calls("GET", r"/metadataStores") and not api.calls("POST", r"/metadataStores")


def test_params_are_typed_as_the_spec_declares(api: FakeVertex) -> None:
    submit(SPEC, make_config(api), wait=False, params={"depth": "7", "alpha": "1.5", "flag": "false"})
    values = created_jobs(api)[0]["body"]["runtimeConfig"]["parameterValues"]
    assert values["depth"] == 7 and values["alpha"] == 1.5 and values["flag"] is False


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"depth": "seven"}, "pipeline parameter 'depth': expected an integer, got 'seven'"),
        ({"depth": 2.5}, "expected an integer"),
        ({"nope": 1}, "unknown pipeline parameter 'nope'"),
    ],
)
def test_bad_params_submit_nothing(api: FakeVertex, params: dict, message: str) -> None:
    with pytest.raises(PluginError, match=re.escape(message)):
        submit(SPEC, make_config(api), wait=False, params=params)
    assert not created_jobs(api)


def test_job_ids_are_unique_and_valid() -> None:
    ids = {vertex.job_id_for("data_processing.Clean Houses", SPEC) for _ in range(500)}
    assert len(ids) == 500
    for job_id in ids:
        assert re.fullmatch(r"[a-z][a-z0-9-]*", job_id) and len(job_id) < 128
        assert job_id.startswith("data-processing-clean-houses-")
    assert vertex.job_id_for("3d", SPEC).startswith("kedro-3d-")
    assert len(vertex.job_id_for("x" * 300, SPEC)) < 128


def test_missing_bucket_is_one_line_and_nothing_is_submitted(api: FakeVertex) -> None:
    config = make_config(api, root="gs://no-such-bucket/root", experiment_name="exp-b")
    with pytest.raises(PluginError) as info:
        submit(SPEC, config, wait=False)
    message = str(info.value)
    assert "bucket gs://no-such-bucket of run_config.root does not exist" in message
    assert "gcloud storage buckets create gs://no-such-bucket --location=europe-west1" in message
    assert "\n" not in message
    assert api.requests == []  # neither a job nor an experiment


def test_local_root_is_refused_for_vertex(api: FakeVertex) -> None:
    with pytest.raises(PluginError, match="must be a Cloud Storage path like gs://bucket/path"):
        submit(SPEC, make_config(api, root="./data/runs"), wait=False)
    assert api.requests == []


def test_permission_denied_is_one_line(api: FakeVertex) -> None:
    api.fail("create_job", 403, "Permission 'aiplatform.pipelineJobs.create' denied on resource")
    with pytest.raises(PluginError) as info:
        submit(SPEC, make_config(api), wait=False)
    message = str(info.value)
    assert message.startswith("submitting the pipeline job: permission denied")
    assert "aiplatform.pipelineJobs.create" in message and "roles/aiplatform.user" in message
    assert "\n" not in message and "http://" not in message


def test_transient_error_on_submit_is_retried_once_created(api: FakeVertex, capsys: pytest.CaptureFixture) -> None:
    api.fail("create_job", 503, "backend busy")
    job_id = submit(SPEC, make_config(api), wait=False)
    creates = created_jobs(api)
    assert len(creates) == 2 and {c["query"]["pipelineJobId"] for c in creates} == {job_id}
    assert len(api.jobs) == 1
    assert "retrying" in capsys.readouterr().err


def test_not_found_names_project_and_region(api: FakeVertex) -> None:
    api.fail("create_job", 404, "Location europe-west99 is not found")
    with pytest.raises(PluginError, match=r"not found .*check project_id 'proj-1' and region 'europe-west1'"):
        submit(SPEC, make_config(api), wait=False)


# ------------------------------------------------------------------------------------------------------------------
# never a half-submitted job: the experiment step and the job create, in either order of failure


def test_experiment_failure_submits_no_job(api: FakeVertex) -> None:
    api.fail("create_context", 403, "Permission 'aiplatform.metadataStores.create' denied")
    with pytest.raises(PluginError, match=r"preparing experiment 'exp-c': permission denied") as info:
        submit(SPEC, make_config(api, experiment_name="exp-c"), wait=False)
    assert "\n" not in str(info.value)
    assert created_jobs(api) == []


def test_job_refused_after_the_experiment_leaves_only_a_reusable_experiment(api: FakeVertex) -> None:
    config = make_config(api, experiment_name="exp-d")
    api.fail("create_job", 400, "Invalid pipeline spec")
    with pytest.raises(PluginError, match="submitting the pipeline job: Vertex AI answered 400"):
        submit(SPEC, config, wait=False)
    assert api.jobs == {} and not api.calls("POST", r":addContextChildren$")
    # the experiment left behind is an empty one, reused as is by the next submit
    job_id = submit(SPEC, config, wait=False)
    assert len(api.calls("POST", r"/contexts$")) == 1
    (attach,) = api.calls("POST", r"/contexts/exp-d:addContextChildren$")
    assert attach["body"]["childContexts"][0].endswith(f"/contexts/{job_id}")


@pytest.mark.parametrize("wait", [False, True])
def test_experiment_link_failing_after_the_job_exists_is_a_warning(
    api: FakeVertex, capsys: pytest.CaptureFixture, wait: bool
) -> None:
    api.fail("add_context_children", 403, "Permission 'aiplatform.contexts.update' denied")
    api.script_next_job("RUNNING", "SUCCEEDED")
    job_id = submit(SPEC, make_config(api, experiment_name="exp-e"), wait=wait)  # no error: the job runs
    assert len(api.jobs) == 1
    captured = capsys.readouterr()
    warning = [line for line in captured.err.splitlines() if line.startswith("Warning:")]
    assert len(warning) == 1 and f"job {job_id} was submitted and runs" in warning[0]
    assert "exp-e" in warning[0] and "permission denied" in warning[0]
    assert vertex.console_url(make_config(api), job_id) in captured.out
    if wait:
        assert f"Job {job_id} succeeded" in captured.out


# ------------------------------------------------------------------------------------------------------------------
# following a job


def test_submit_sends_the_production_settings(api: FakeVertex) -> None:
    key = f"projects/kms/locations/{REGION}/keyRings/ml/cryptoKeys/pipelines"
    config = make_config(
        api,
        encryption_key=key,
        failure_policy="fast",
        network={
            "vpc": "projects/123/global/networks/vpc-1",
            "reserved_ip_ranges": ["range-a", "range-b"],
            "psc_interface": {
                "network_attachment": "att-1",
                "dns_peering": [{"domain": "corp.", "target_project": "host-project", "target_network": "n"}],
            },
        },
    )
    submit(SPEC, config, wait=False)
    body = created_jobs(api)[0]["body"]
    assert body["encryptionSpec"] == {"kmsKeyName": key}
    assert failure_policy(body) == "PIPELINE_FAILURE_POLICY_FAIL_FAST"
    assert body["reservedIpRanges"] == ["range-a", "range-b"]
    assert body["pscInterfaceConfig"] == {
        "networkAttachment": "att-1",
        "dnsPeeringConfigs": [{"domain": "corp.", "targetProject": "host-project", "targetNetwork": "n"}],
    }
    # nothing of it is sent when not configured
    api.reset()
    submit(SPEC, make_config(api), wait=False)
    body = created_jobs(api)[0]["body"]
    assert not {"encryptionSpec", "reservedIpRanges", "pscInterfaceConfig"} & set(body)
    assert "failurePolicy" not in body["runtimeConfig"]


# a spec as the compiler writes it with an on-exit pipeline: the tasks live in the exit handler's sub-DAG
EXIT_SPEC: dict[str, Any] = {
    "pipelineInfo": {"name": "demo-project"},
    "schemaVersion": "2.1.0",
    "components": {
        "comp-exit-handler-1": {
            "dag": {
                "tasks": {
                    "clean-houses": {"taskInfo": {"name": "clean_houses + add_features"}},
                    "train-model": {"taskInfo": {"name": "train_model"}, "dependentTasks": ["clean-houses"]},
                }
            }
        },
    },
    "root": {
        "dag": {
            "tasks": {
                "exit-handler-1": {
                    "componentRef": {"name": "comp-exit-handler-1"},
                    "taskInfo": {"name": "exit-handler-1"},
                },
                "on-exit-notify": {
                    "taskInfo": {"name": "on exit: log_run_finished"},
                    "dependentTasks": ["exit-handler-1"],
                },
            }
        }
    },
}


def test_tasks_are_named_as_vertex_reports_them_exit_handler_included(
    api: FakeVertex, fake_logging: FakeLogging, capsys: pytest.CaptureFixture
) -> None:
    """Vertex AI names tasks by taskInfo.name and lists the exit handler's group as a task of its own, with the
    tasks inside it as its children: progress and the failure show the tasks, by those names, never the group."""
    fake_logging.add_lines(custom_job_id("train-model"), [f"line {i}" for i in range(30)] + ["KeyError: 'price'"])
    api.script_next_job(
        {"state": "RUNNING", "tasks": {"clean-houses": "RUNNING"}},
        {
            "state": "FAILED",
            "tasks": {
                "clean-houses": "SUCCEEDED",
                "train-model": ("FAILED", "exit code 1"),
                "on-exit-notify": "SUCCEEDED",
            },
        },
    )
    with pytest.raises(PluginError, match=r"FAILED: task train_model failed: exit code 1"):
        submit(EXIT_SPEC, make_config(api), wait=True)
    out = capsys.readouterr().out.splitlines()
    for line in (
        "clean_houses + add_features: RUNNING",
        "clean_houses + add_features: SUCCEEDED",
        "train_model: FAILED",
        "on exit: log_run_finished: SUCCEEDED",
    ):
        assert line in out
    assert not [line for line in out if line.startswith(("exit-handler-1", "demo-project-"))], out
    # the failed task's log tail, from the CustomJob that ran it, then the link for the rest
    start = out.index("Task train_model (FAILED); last 20 lines of its log:")
    assert out[start + 1 : start + 21] == [f"  line {i}" for i in range(11, 30)] + ["  KeyError: 'price'"]
    assert out[start + 21].startswith("Full log: https://console.cloud.google.com/logs/query;query=resource.type")
    (request,) = fake_logging.requests
    assert f'resource.labels.job_id="{custom_job_id("train-model")}"' in request["body"]["filter"]
    assert request["body"]["resourceNames"] == [f"projects/{PROJECT}"]


def test_unreadable_logs_are_one_line_and_never_hide_the_job_error(
    api: FakeVertex, fake_logging: FakeLogging, capsys: pytest.CaptureFixture
) -> None:
    fake_logging.deny()
    api.script_next_job({"state": "FAILED", "tasks": {"train": ("FAILED", "ValueError: bad")}})
    with pytest.raises(PluginError, match=r"FAILED: task train failed: ValueError: bad"):
        submit(SPEC, make_config(api), wait=True)
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("Task train")]
    assert (
        "its log cannot be shown: no permission to read logs of project proj-1: grant the account roles/logging.viewer"
    ) in line
    assert "https://console.cloud.google.com/logs/query" in line


def test_a_task_that_never_started_a_container_has_no_log(
    api: FakeVertex, fake_logging: FakeLogging, capsys: pytest.CaptureFixture
) -> None:
    api.script_next_job(
        {"state": "FAILED", "tasks": {"train": ("NOT_TRIGGERED", "")}},
    )
    submit(SPEC, make_config(api), wait=False)
    job_id = created_jobs(api)[0]["query"]["pipelineJobId"]
    with pytest.raises(PluginError, match=rf"--task 'nope': job {job_id} has no such task \(its tasks: 'train'\)"):
        console.show_logs(make_config(api), job_id, task="nope")
    console.show_logs(make_config(api), job_id, task="train")
    out = capsys.readouterr().out
    assert "Task train (NOT_TRIGGERED): its log cannot be shown: Vertex AI started no container for it" in out
    assert fake_logging.requests == []


def test_wait_until_succeeded_shows_task_states(api: FakeVertex, capsys: pytest.CaptureFixture) -> None:
    api.script_next_job(
        "PENDING",
        {"state": "RUNNING", "tasks": {"clean": "RUNNING", "train": "PENDING"}},
        {"state": "RUNNING", "tasks": {"clean": "SUCCEEDED", "train": "RUNNING"}},
        "SUCCEEDED",
    )
    job_id = submit(SPEC, make_config(api), wait=True)
    out = capsys.readouterr().out.splitlines()
    for line in ("clean: RUNNING", "train: PENDING", "clean: SUCCEEDED", "train: RUNNING", "train: SUCCEEDED"):
        assert line in out
    assert out.index("clean: RUNNING") < out.index("clean: SUCCEEDED")
    assert f"Job {job_id} succeeded" in out
    assert len(api.calls("GET", rf"/pipelineJobs/{job_id}$")) == 4


def test_failed_job_names_the_task_and_its_error(api: FakeVertex) -> None:
    api.script_next_job(
        "RUNNING",
        {
            "state": "FAILED",
            "tasks": {"clean": "SUCCEEDED", "train": ("FAILED", "ValueError: learning_rate must be > 0")},
            "error": "The DAG failed because some tasks failed.",
        },
    )
    with pytest.raises(PluginError) as info:
        submit(SPEC, make_config(api), wait=True)
    message = str(info.value)
    assert re.match(r"job demo-project-\S+ FAILED: task train failed: ValueError: learning_rate must be > 0", message)
    assert "console.cloud.google.com" in message and info.value.exit_code != 0
    assert info.value.job_id == created_jobs(api)[0]["query"]["pipelineJobId"]  # for the MLflow run's status


@pytest.mark.parametrize(("final", "expected"), [("CANCELLED", "was CANCELLED"), ("PAUSED", "is PAUSED")])
def test_cancelled_or_paused_job_is_an_error(api: FakeVertex, final: str, expected: str) -> None:
    api.script_next_job("RUNNING", final)
    with pytest.raises(PluginError, match=expected):
        submit(SPEC, make_config(api), wait=True)


def test_transient_errors_while_polling_are_retried(api: FakeVertex, capsys: pytest.CaptureFixture) -> None:
    api.script_next_job("RUNNING", 503, 429, "RUNNING", "SUCCEEDED")
    submit(SPEC, make_config(api), wait=True)
    err = capsys.readouterr().err
    assert "Vertex AI did not answer (503 the service is currently unavailable); retrying" in err
    assert "(429 " in err


def test_non_transient_error_while_polling_ends_the_wait(api: FakeVertex) -> None:
    api.script_next_job("RUNNING", 403)
    with pytest.raises(PluginError, match=r"following job .*permission denied"):
        submit(SPEC, make_config(api), wait=True)


def _interrupt_on_first_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    def sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(vertex_jobs.time, "sleep", sleep)


def test_ctrl_c_with_cancel_on_interrupt_cancels_the_job(api: FakeVertex, monkeypatch: pytest.MonkeyPatch) -> None:
    api.script_next_job("RUNNING")
    _interrupt_on_first_sleep(monkeypatch)
    with pytest.raises(PluginError, match=r"cancellation of job .* requested") as info:
        submit(SPEC, make_config(api), wait=True, cancel_on_interrupt=True)
    assert info.value.exit_code == 130
    assert len(api.calls("POST", r"/pipelineJobs/[^/]+:cancel$")) == 1


def test_ctrl_c_without_a_terminal_does_not_cancel(
    api: FakeVertex, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    api.script_next_job("RUNNING")
    _interrupt_on_first_sleep(monkeypatch)
    with pytest.raises(PluginError, match="keeps running on Vertex AI") as info:
        submit(SPEC, make_config(api), wait=True)
    assert info.value.exit_code == 130
    assert not api.calls("POST", r":cancel$")
    err = capsys.readouterr().err
    cancel_url = rf"{re.escape(api.endpoint)}/v1/projects/{PROJECT}/locations/{REGION}/pipelineJobs/\S+:cancel"
    assert re.search(rf"curl -X POST .*{cancel_url}", err)


def test_ctrl_c_on_a_terminal_asks_before_cancelling(api: FakeVertex, monkeypatch: pytest.MonkeyPatch) -> None:
    api.script_next_job("RUNNING")
    _interrupt_on_first_sleep(monkeypatch)
    monkeypatch.setattr(console.sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(console.sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(console, "_Progress", _PlainProgress)
    asked: list[str] = []

    def confirm(text: str, **kwargs: Any) -> bool:
        asked.append(text)
        return True

    monkeypatch.setattr(console.click, "confirm", confirm)
    with pytest.raises(PluginError, match="cancellation"):
        submit(SPEC, make_config(api), wait=True)
    assert asked and asked[0].startswith("Cancel job demo-project-")
    assert len(api.calls("POST", r":cancel$")) == 1


class _PlainProgress(console._Progress):
    def __enter__(self) -> console._Progress:
        self.tty = False
        return self


# ------------------------------------------------------------------------------------------------------------------
# credentials


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(vertex.ANONYMOUS_ENV, raising=False)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no ADC file there
    monkeypatch.setenv("NO_GCE_CHECK", "true")


def test_missing_credentials_fail_fast_with_the_fix(api: FakeVertex, no_credentials: None) -> None:
    config = make_config(api)
    started = time.monotonic()
    with pytest.raises(PluginError) as info:
        vertex.load_credentials(config)
    assert time.monotonic() - started < 1.0
    assert "gcloud auth application-default login" in str(info.value)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in str(info.value)
    with pytest.raises(PluginError, match="no Google Cloud credentials found"):
        submit(SPEC, config, wait=False)
    assert api.requests == []


def test_bad_credentials_file(
    api: FakeVertex, no_credentials: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(PluginError, match=r"GOOGLE_APPLICATION_CREDENTIALS=.*missing.json does not exist"):
        vertex.load_credentials(make_config(api))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"type": "service_account", "client_email": "x"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(broken))
    started = time.monotonic()
    with pytest.raises(PluginError) as info:
        vertex.load_credentials(make_config(api))
    assert time.monotonic() - started < 1.0
    assert "unusable Google Cloud credentials" in str(info.value) and "\n" not in str(info.value)


def test_anonymous_credentials_only_for_a_local_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(vertex.ANONYMOUS_ENV, "1")
    config = validate_config(
        {"project_id": PROJECT, "region": REGION, "run_config": {"image": "i", "root": "gs://b/r"}}
    )
    assert vertex.api_endpoint(config) == "europe-west1-aiplatform.googleapis.com"
    with pytest.raises(PluginError, match="honoured only when api_endpoint points at localhost"):
        vertex.load_credentials(config)


# ------------------------------------------------------------------------------------------------------------------
# schedules, list, ui


def test_schedule_replaces_earlier_ones_with_the_same_name(api: FakeVertex, capsys: pytest.CaptureFixture) -> None:
    old = api.add_schedule(PROJECT, REGION, "nightly-prices", cron="0 1 * * *")
    other = api.add_schedule(PROJECT, REGION, "someone-else")
    config = make_config(api, scheduled_run_name="nightly-prices", labels={"team": "pricing"})
    name = console.create_schedule(
        SPEC,
        config,
        cron="0 6 * * 1-5",
        timezone_name="Europe/Warsaw",
        max_run_count=10,
        params={"depth": 5},
        allow_queueing=True,
    )
    (create,) = api.calls("POST", r"/schedules$")
    body = create["body"]
    assert body["displayName"] == "nightly-prices"
    assert body["cron"] == "TZ=Europe/Warsaw 0 6 * * 1-5"
    assert body["maxRunCount"] in ("10", 10) and body["maxConcurrentRunCount"] in ("1", 1)
    assert body["allowQueueing"] is True
    job = body["createPipelineJobRequest"]["pipelineJob"]
    assert body["createPipelineJobRequest"]["parent"] == f"projects/{PROJECT}/locations/{REGION}"
    assert job["runtimeConfig"]["gcsOutputDirectory"] == "gs://test-bucket/root"
    assert job["runtimeConfig"]["parameterValues"]["depth"] == 5
    assert job["labels"] == {"team": "pricing"}
    assert set(api.schedules) == {name, other}
    assert api.calls("DELETE", rf"{re.escape(old)}$")
    out = capsys.readouterr().out
    assert f"Replaced earlier schedule {old} (0 1 * * *, ACTIVE)" in out
    assert name in out


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "0 6 * *"}, "--cron: expected a five-field cron expression"),
        (
            {"cron": "0 6 * * *", "timezone_name": "Mars/Base"},
            "--timezone: expected an IANA time zone such as 'Europe/Warsaw' or 'UTC', got 'Mars/Base'",
        ),
        ({"cron": "0 6 * * *", "start_time": "tomorrow"}, "start_time 'tomorrow': expected an RFC 3339 time"),
    ],
)
def test_bad_schedule_input_creates_nothing(api: FakeVertex, kwargs: dict, message: str) -> None:
    with pytest.raises(PluginError, match=re.escape(message)):
        console.create_schedule(SPEC, make_config(api), **kwargs)
    assert api.requests == []


def test_list_shows_jobs_with_links_and_schedules(
    api: FakeVertex, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    config = make_config(api)
    api.script_next_job("SUCCEEDED")
    first = submit(SPEC, config, wait=True)
    second = submit(SPEC, config, pipeline_name="train", wait=False)  # never polled: stays PENDING
    api.add_schedule(PROJECT, REGION, "nightly-prices", cron="TZ=UTC 0 6 * * *")
    capsys.readouterr()
    console.list_jobs_and_schedules(config, limit=10)
    out = capsys.readouterr().out
    assert first in out and second in out
    assert re.search(rf"{first}\s.*SUCCEEDED", out) and re.search(rf"{second}\s.*PENDING", out)
    assert vertex.console_url(config, first) in out
    assert "nightly-prices" in out and "TZ=UTC 0 6 * * *" in out
    assert api.calls("GET", r"/pipelineJobs$")[0]["query"]["pageSize"] == "10"


def test_ui_prints_the_url_when_no_browser_opens(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    config = validate_config({"project_id": PROJECT, "region": REGION, "run_config": {"image": "i", "root": "gs://b"}})
    opened: list[str] = []
    console.open_ui(config, opener=lambda url: opened.append(url) or False)
    captured = capsys.readouterr()
    assert opened == [f"https://console.cloud.google.com/vertex-ai/pipelines/runs?project={PROJECT}"]
    assert opened[0] in captured.out and "No browser available" in captured.err
    monkeypatch.setenv("CI", "true")
    console.open_ui(config, opener=lambda url: pytest.fail("no browser in CI"))
    assert opened[0] in capsys.readouterr().out
