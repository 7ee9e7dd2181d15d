"""The Kubeflow Pipelines backend and its auth, in-process, with the real ``kfp.Client`` and google-auth against
local fakes: the KFP API (tests/fake_kfp.py), Dex behind an auth proxy and Google's token endpoint
(tests/fake_dex.py), and the GCE metadata server (tests/fake_metadata.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import without_kfp_login
from fake_dex import FakeDexProxy, FakeTokenEndpoint
from fake_kfp import FakeKfp
from fake_metadata import FakeMetadataServer

from kedro_vertex_runner.backends import get_backend
from kedro_vertex_runner.backends.base import (
    JobFailed,
    JobHandle,
    JobRequest,
    ScheduleRequest,
    SilentReporter,
    TaskState,
)
from kedro_vertex_runner.backends.kubeflow import KubeflowBackend, kfp_cron
from kedro_vertex_runner.config import PluginConfig, validate_config
from kedro_vertex_runner.errors import ConfigError, PluginError

DEX_USER, DEX_PASSWORD = "pipelines@example.com", "s3cret-Passw0rd"
CLIENT_ID = "123456-iapclient.apps.googleusercontent.com"
# KFP reports tasks by their keys in the spec (clean, train); the user sees the names the compiler gave them
CLEAN, TRAIN = "clean_houses + add_features (2 nodes)", "model.train_model"
SPEC: dict[str, Any] = {
    "pipelineInfo": {"name": "demo-project"},
    "schemaVersion": "2.1.0",
    "sdkVersion": "kedro-vertex-runner",
    "root": {
        "inputDefinitions": {
            "parameters": {
                "depth": {"parameterType": "NUMBER_INTEGER", "defaultValue": 3, "isOptional": True},
                "job_uuid": {"parameterType": "STRING", "isOptional": True},
            }
        },
        "dag": {
            "tasks": {
                "clean": {"taskInfo": {"name": CLEAN}, "componentRef": {"name": "comp-clean"}},
                "train": {
                    "taskInfo": {"name": TRAIN},
                    "componentRef": {"name": "comp-clean"},
                    "cachingOptions": {"enableCache": False},
                    "dependentTasks": ["clean"],
                },
            }
        },
    },
    "components": {"comp-clean": {"executorLabel": "exec-clean"}},
    "deploymentSpec": {"executors": {"exec-clean": {"container": {"image": "img:1", "command": ["python"]}}}},
}


class Recorder(SilentReporter):
    """A reporter that keeps every progress report too."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[tuple[str, dict[str, str]]] = []

    def progress(self, job: JobHandle, tasks: Sequence[TaskState], job_state: str) -> None:
        self.reports.append((job_state, {task.name: task.state for task in tasks}))


@pytest.fixture(scope="module")
def kfp_server() -> Iterator[FakeKfp]:
    server = FakeKfp().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def kfp(kfp_server: FakeKfp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKfp]:
    kfp_server.reset()
    without_kfp_login(monkeypatch, tmp_path)
    monkeypatch.setenv("KEDRO_VERTEX_POLL_INTERVAL", "0.01")
    yield kfp_server
    assert kfp_server.unknown == [], "the client used endpoints the fake does not implement"


def make_config(host: str, namespace: str | None = None, **run_config: Any) -> PluginConfig:
    raw = {"image": "registry.example.com/demo:1", "root": "gs://kfp-bucket/runs", "backend": "kubeflow", **run_config}
    if namespace:
        raw["kubeflow"] = {"namespace": namespace}
    return validate_config({"host": host, "run_config": raw} if host else {"run_config": raw})


def backend(host: str, reporter: SilentReporter | None = None, **run_config: Any) -> KubeflowBackend:
    instance = get_backend("kubeflow", make_config(host, **run_config), reporter or Recorder())
    assert isinstance(instance, KubeflowBackend)
    return instance


def created_runs(kfp: FakeKfp) -> list[dict[str, Any]]:
    return [json.loads(r["body"]) for r in kfp.requests_to("POST", r"/apis/v2beta1/runs")]


# ------------------------------------------------------------------------------------------------------------------
# runs


def test_run_succeeds_reporting_each_task(kfp: FakeKfp) -> None:
    kfp.script_next_run(
        {"state": "PENDING"},
        {"state": "RUNNING", "tasks": {"clean": "RUNNING", "train": "PENDING"}},
        {"state": "RUNNING", "tasks": {"clean": "SUCCEEDED", "train": "RUNNING"}},
        {"state": "SUCCEEDED", "tasks": {"clean": "SUCCEEDED", "train": "SUCCEEDED"}},
    )
    reporter = Recorder()
    ended: list[tuple[str, bool]] = []
    engine = backend(
        kfp.base_url, reporter, experiment_name="demo-exp", experiment_description="Demo runs", caching=True
    )
    handle = engine.run(
        JobRequest(spec=SPEC, params={"depth": "5"}), on_end=lambda job, ok: ended.append((job.job_id, ok))
    )

    assert ended == [(handle.job_id, True)] and handle.run_key == {"job_id": handle.job_id}
    assert handle.url == f"{kfp.base_url}/#/runs/details/{handle.job_id}"
    # KFP's own root DAG and driver entries are not tasks of the pipeline
    assert reporter.reports == [
        ("PENDING", {}),
        ("RUNNING", {CLEAN: "RUNNING", TRAIN: "PENDING"}),
        ("RUNNING", {CLEAN: "SUCCEEDED", TRAIN: "RUNNING"}),
        ("SUCCEEDED", {CLEAN: "SUCCEEDED", TRAIN: "SUCCEEDED"}),
    ]
    [run] = created_runs(kfp)
    [experiment] = [e for e in kfp.experiments.values() if e["experiment_id"] == run["experiment_id"]]
    assert (experiment["display_name"], experiment["description"]) == ("demo-exp", "Demo runs")
    assert run["display_name"].startswith("demo-project-")
    assert run["runtime_config"] == {"pipeline_root": "gs://kfp-bucket/runs", "parameters": {"depth": 5}}
    tasks = run["pipeline_spec"]["root"]["dag"]["tasks"]
    # run_config.caching is every task's default; a task's own setting (off: KFP's empty default) stays
    assert tasks["clean"]["cachingOptions"] == {"enableCache": True} and tasks["train"]["cachingOptions"] == {}
    assert any(f"View it at {handle.url}" == line for line in reporter.lines)


def test_experiment_is_created_once_and_reused(kfp: FakeKfp) -> None:
    engine = backend(kfp.base_url, experiment_name="reused-exp")
    first, second = engine.run(JobRequest(spec=SPEC)), engine.run(JobRequest(spec=SPEC))
    assert first.job_id != second.job_id
    assert len([e for e in kfp.experiments.values() if e["display_name"] == "reused-exp"]) == 1
    assert len({run["experiment_id"] for run in created_runs(kfp)}) == 1


@pytest.mark.parametrize(
    ("final", "words"),
    [
        (
            {"state": "FAILED", "tasks": {"clean": "SUCCEEDED", "train": ("FAILED", "OOMKilled: exit code 137")}},
            ["ended FAILED", f"failed task(s): {TRAIN}", "OOMKilled", "kubectl logs", "-train-pod"],
        ),
        ({"state": "CANCELED", "tasks": {"clean": "SUCCEEDED", "train": "CANCELED"}}, ["was cancelled"]),
    ],
    ids=["failed", "cancelled"],
)
def test_run_that_does_not_succeed_is_job_failed(kfp: FakeKfp, final: dict[str, Any], words: list[str]) -> None:
    kfp.script_next_run({"state": "RUNNING", "tasks": {"clean": "RUNNING"}}, final)
    reporter = Recorder()
    ended: list[bool] = []
    with pytest.raises(JobFailed) as failure:
        backend(kfp.base_url, reporter).run(JobRequest(spec=SPEC), on_end=lambda job, ok: ended.append(ok))
    message = str(failure.value)
    assert "\n" not in message and all(word in message for word in words), message
    assert failure.value.state == final["state"] and failure.value.job.run_key == {"job_id": failure.value.job_id}
    assert ended == [False]
    assert reporter.reports[-1][1][TRAIN] == final["state"]


class Interrupting(Recorder):
    """Ctrl-C while the first state is shown."""

    def progress(self, job: JobHandle, tasks: Sequence[TaskState], job_state: str) -> None:
        raise KeyboardInterrupt


def test_interrupt_with_cancel_on_interrupt_cancels_the_run(kfp: FakeKfp) -> None:
    kfp.script_next_run({"state": "RUNNING"})
    ended: list[bool] = []
    with pytest.raises(JobFailed) as failure:
        backend(kfp.base_url, Interrupting()).run(
            JobRequest(spec=SPEC, cancel_on_interrupt=True), on_end=lambda job, ok: ended.append(ok)
        )
    assert failure.value.exit_code == 130 and failure.value.state == "CANCELED" and ended == [False]
    assert kfp.requests_to("POST", rf"/apis/v2beta1/runs/{failure.value.job_id}:terminate")


def test_interrupt_without_cancelling_leaves_the_run(kfp: FakeKfp) -> None:
    kfp.script_next_run({"state": "RUNNING"})
    with pytest.raises(PluginError, match="keeps running on Kubeflow Pipelines") as failure:
        backend(kfp.base_url, Interrupting()).run(JobRequest(spec=SPEC))  # confirm() answers no
    assert failure.value.exit_code == 130
    assert kfp.requests_to("POST", r"/apis/v2beta1/runs/.*:terminate") == []


def test_submit_without_waiting_returns_at_once(kfp: FakeKfp) -> None:
    kfp.script_next_run({"state": "RUNNING"})
    handle = backend(kfp.base_url).run(JobRequest(spec=SPEC), wait=False)
    assert kfp.requests_to("GET", rf"/apis/v2beta1/runs/{handle.job_id}") == []


def test_bad_param_and_template_create_nothing(kfp: FakeKfp) -> None:
    engine = backend(kfp.base_url)
    with pytest.raises(PluginError, match="unknown pipeline parameter 'nope'"):
        engine.run(JobRequest(spec=SPEC, params={"nope": 1}))
    with pytest.raises(PluginError, match="does not run Artifact Registry templates"):
        engine.run(JobRequest(spec=SPEC, template_uri="https://europe-west1-kfp.pkg.dev/p/r/demo/v1"))
    assert created_runs(kfp) == []


def test_namespace_goes_to_the_experiment(kfp: FakeKfp) -> None:
    backend(kfp.base_url, namespace="team-a", experiment_name="ns-exp").run(JobRequest(spec=SPEC))
    [experiment] = [e for e in kfp.experiments.values() if e["display_name"] == "ns-exp"]
    assert experiment["namespace"] == "team-a"


# ------------------------------------------------------------------------------------------------------------------
# recurring runs, list, ui, upload


@pytest.mark.parametrize(
    ("written", "sent"),
    [("0 6 * * 1", "0 0 6 * * 1"), ("*/15 * * * *", "0 */15 * * * *"), ("30 0 6 * * MON-FRI", "30 0 6 * * MON-FRI")],
)
def test_cron_becomes_kfp_six_field_form(written: str, sent: str) -> None:
    assert kfp_cron(written) == sent


@pytest.mark.parametrize(
    ("written", "words"),
    [("0 6 * *", "five fields"), ("61 0 6 * * *", "five fields"), ("0 6 * * 7", "Sunday as 0")],
)
def test_bad_cron_is_one_line(written: str, words: str) -> None:
    with pytest.raises(PluginError, match=words):
        kfp_cron(written)


def test_schedule_replaces_the_same_named_recurring_run(kfp: FakeKfp) -> None:
    kfp.recurring.clear()
    reporter = Recorder()
    engine = backend(kfp.base_url, reporter, experiment_name="sched-exp")
    other = engine.schedule(ScheduleRequest(spec=SPEC, name="weekly", cron="0 5 * * 0"))
    first = engine.schedule(ScheduleRequest(spec=SPEC, name="daily", cron="0 6 * * *", params={"depth": 4}))
    second = engine.schedule(ScheduleRequest(spec=SPEC, name="daily", cron="0 7 * * *", timezone="Europe/Warsaw"))

    assert set(kfp.recurring) == {other, second} and first not in kfp.recurring
    created = kfp.recurring[second]
    assert created["trigger"]["cron_schedule"]["cron"] == "0 0 7 * * *"
    assert created["status"] == "ENABLED" and int(created["max_concurrency"]) == 1
    assert created["runtime_config"]["pipeline_root"] == "gs://kfp-bucket/runs"
    assert created["pipeline_spec"]["pipelineInfo"]["name"] == "demo-project"
    # the earlier one was paused before the new one was created, then deleted
    order = [f"{r['method']} {r['path']}" for r in kfp.requests if "recurringruns" in r["path"]]
    assert order.index(f"POST /apis/v2beta1/recurringruns/{first}:disable") < len(order) - 2
    assert order[-1] == f"DELETE /apis/v2beta1/recurringruns/{first}"
    assert any("time zone Europe/Warsaw is not honoured" in line for line in reporter.lines)
    assert {(s.name, s.cron) for s in engine.list_schedules()} == {("weekly", "0 0 5 * * 0"), ("daily", "0 0 7 * * *")}


def test_list_jobs_and_ui(kfp: FakeKfp) -> None:
    engine = backend(kfp.base_url)
    handle = engine.run(JobRequest(spec=SPEC))
    jobs = engine.list_jobs(limit=5)
    assert jobs[0].job_id == handle.job_id and jobs[0].state == "SUCCEEDED" and jobs[0].url == handle.url
    assert len(jobs) <= 5
    assert engine.ui_url() == f"{kfp.base_url}/#/runs"


def test_upload_creates_the_pipeline_then_versions(kfp: FakeKfp) -> None:
    engine = backend(kfp.base_url, description="Demo pipeline")
    named = {**SPEC, "pipelineInfo": {"name": "demo-upload"}}
    first = engine.upload(named, "__default__")
    second = engine.upload(named, "__default__", tags=["v2", "latest"])

    uploads = [r for r in kfp.requests if r["path"].startswith("/apis/v2beta1/pipelines/upload")]
    assert [r["path"] for r in uploads] == ["/apis/v2beta1/pipelines/upload", "/apis/v2beta1/pipelines/upload_version"]
    [pipeline] = [p for p in kfp.pipelines.values() if p["display_name"] == "demo-upload"]
    versions = kfp.versions[pipeline["pipeline_id"]]
    assert len(versions) == 2 and versions[1]["display_name"] == second.version != first.version
    assert versions[1]["pipeline_spec"] == named and "tags: v2, latest" in versions[1]["description"]
    assert first.pipeline == second.pipeline == "demo-upload"
    assert second.uri == (
        f"{kfp.base_url}/#/pipelines/details/{pipeline['pipeline_id']}/version/{versions[1]['pipeline_version_id']}"
    )


def test_logs_name_the_pod_in_one_line(kfp: FakeKfp) -> None:
    kfp.script_next_run({"state": "FAILED", "tasks": {"clean": "SUCCEEDED", "train": ("FAILED", "boom")}})
    engine = backend(kfp.base_url, namespace="team-a")
    handle = engine.run(JobRequest(spec=SPEC), wait=False)
    with pytest.raises(PluginError) as failure:
        engine.task_logs(handle.job_id, task=TRAIN)
    assert str(failure.value) == (
        f"Kubeflow Pipelines serves no task logs through its API: read them on {handle.url} or with "
        f"`kubectl logs -n team-a {handle.job_id}-train-pod -c main`"
    )


# ------------------------------------------------------------------------------------------------------------------
# host and access problems


def test_missing_host_is_one_config_line(kfp: FakeKfp) -> None:
    with pytest.raises(ConfigError, match="host: required key is missing for backend 'kubeflow'"):
        backend("")


def test_unreachable_host_is_one_line(kfp: FakeKfp) -> None:
    from conftest import free_port

    with pytest.raises(PluginError, match=r"cannot reach Kubeflow Pipelines at http://127\.0\.0\.1") as failure:
        backend(f"http://127.0.0.1:{free_port()}").list_jobs()
    assert "\n" not in str(failure.value)


def test_refused_without_credentials_says_what_to_set(kfp: FakeKfp) -> None:
    kfp.require_token = "only-this-token"
    with pytest.raises(PluginError, match=r"HTTP 401.*set IAP_CLIENT_ID.*DEX_USERNAME and DEX_PASSWORD"):
        backend(kfp.base_url).run(JobRequest(spec=SPEC))
    assert created_runs(kfp) == []


# ------------------------------------------------------------------------------------------------------------------
# Dex


@pytest.fixture(scope="module", params=["authservice_session", "oauth2_proxy_kubeflow"])
def dex(request: pytest.FixtureRequest, kfp_server: FakeKfp) -> Iterator[FakeDexProxy]:
    proxy = FakeDexProxy(kfp_server.base_url, request.param, DEX_USER, DEX_PASSWORD).start()
    try:
        yield proxy
    finally:
        proxy.stop()


def test_dex_login_cookie_reaches_the_api(kfp: FakeKfp, dex: FakeDexProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEX_USERNAME", DEX_USER)
    monkeypatch.setenv("DEX_PASSWORD", DEX_PASSWORD)
    reporter = Recorder()
    engine = backend(f"{dex.base_url}/pipeline", reporter)
    handle = engine.run(JobRequest(spec=SPEC))
    engine.list_jobs()

    api_calls = [r for r in kfp.requests if r["path"].startswith("/apis/")]
    assert {r["path"] for r in api_calls} >= {
        "/apis/v2beta1/healthz",
        "/apis/v2beta1/runs",
        f"/apis/v2beta1/runs/{handle.job_id}",
    }
    [session] = dex.sessions  # one login for every call
    for call in api_calls:
        assert call["headers"]["Cookie"] == f"{dex.cookie_name}={session}"  # Dex's own /dex cookie stays behind
    assert handle.url.startswith(f"{dex.base_url}/pipeline/#/runs/details/")
    shown = " ".join(reporter.lines) + json.dumps(created_runs(kfp))
    assert session not in shown and DEX_PASSWORD not in shown
    dex.sessions.clear()


def test_dex_wrong_password_is_one_line(kfp: FakeKfp, dex: FakeDexProxy, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEX_USERNAME", DEX_USER)
    monkeypatch.setenv("DEX_PASSWORD", "wrong-password-123")
    with pytest.raises(PluginError) as failure:
        backend(f"{dex.base_url}/pipeline").run(JobRequest(spec=SPEC))
    message = str(failure.value)
    assert "Dex refused the login of DEX_USERNAME=pipelines@example.com" in message and "\n" not in message
    assert "wrong-password-123" not in message and dex.logins[-1] == (DEX_USER, False)
    assert kfp.requests == []  # nothing reached the API


def test_dex_without_password_is_one_line(kfp: FakeKfp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEX_USERNAME", DEX_USER)
    with pytest.raises(PluginError, match="DEX_PASSWORD is not set"):
        backend(kfp.base_url).list_jobs()


def test_dex_set_but_no_login_page_is_one_line(kfp: FakeKfp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEX_USERNAME", DEX_USER)
    monkeypatch.setenv("DEX_PASSWORD", DEX_PASSWORD)
    with pytest.raises(PluginError, match="led to no Dex password login form"):
        backend(kfp.base_url).list_jobs()


# ------------------------------------------------------------------------------------------------------------------
# IAP


@pytest.fixture(scope="module")
def token_endpoint() -> Iterator[FakeTokenEndpoint]:
    server = FakeTokenEndpoint().start()
    try:
        yield server
    finally:
        server.stop()


def _bearers(kfp: FakeKfp) -> set[str]:
    return {r["headers"].get("Authorization", "") for r in kfp.requests if r["path"].startswith("/apis/")}


def test_iap_token_from_a_service_account_key_is_sent_as_bearer(
    kfp: FakeKfp, token_endpoint: FakeTokenEndpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "sa.json"
    key.write_text(json.dumps(token_endpoint.service_account_key()))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    monkeypatch.setenv("IAP_CLIENT_ID", CLIENT_ID)
    reporter = Recorder()
    backend(kfp.base_url, reporter).run(JobRequest(spec=SPEC))

    assert token_endpoint.audiences[-1] == CLIENT_ID
    token = token_endpoint.issued[-1]
    assert _bearers(kfp) == {f"Bearer {token}"}
    assert token not in " ".join(reporter.lines) + json.dumps(created_runs(kfp))


def test_iap_token_from_the_metadata_server(kfp: FakeKfp, monkeypatch: pytest.MonkeyPatch) -> None:
    from google.auth.compute_engine import _metadata

    with FakeMetadataServer() as metadata:
        monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", metadata.host)  # what GCE_METADATA_HOST sets at import
        monkeypatch.setenv("IAP_CLIENT_ID", CLIENT_ID)
        backend(kfp.base_url).list_jobs()
    assert metadata.audiences == [CLIENT_ID]
    [bearer] = _bearers(kfp)
    assert bearer.startswith("Bearer ey")


def test_user_credentials_cannot_mint_and_say_how_to_fix(
    kfp: FakeKfp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "adc.json"
    user.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "c",
                "client_secret": "secret-value-xyz",
                "refresh_token": "refresh-token-xyz",
            }
        )
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(user))
    monkeypatch.setenv("IAP_CLIENT_ID", CLIENT_ID)
    with pytest.raises(PluginError) as failure:
        backend(kfp.base_url).run(JobRequest(spec=SPEC))
    message = str(failure.value)
    assert "holds user credentials" in message and "--impersonate-service-account=" in message
    assert "\n" not in message and "refresh-token-xyz" not in message and "secret-value-xyz" not in message
    assert kfp.requests == []


def test_iap_and_dex_together_are_refused(kfp: FakeKfp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IAP_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("DEX_USERNAME", DEX_USER)
    with pytest.raises(PluginError, match="unset the other"):
        backend(kfp.base_url).list_jobs()


# ------------------------------------------------------------------------------------------------------------------
# pod settings: the Kubernetes platform spec reaches KFP with every request

PLATFORM = {
    "platforms": {
        "kubernetes": {
            "deploymentSpec": {
                "executors": {
                    "exec-clean": {
                        "nodeSelector": {"labels": {"cloud.google.com/gke-nodepool": "gpu-pool"}},
                        "tolerations": [
                            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                            {
                                "key": "a",
                                "operator": "Equal",
                                "value": "b",
                                "effect": "NoExecute",
                                "tolerationSeconds": "30",
                            },
                        ],
                        "nodeAffinity": [
                            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}], "weight": 10.0}
                        ],
                        "secretAsEnv": [
                            {
                                "keyToEnv": [{"envVar": "DB_PASSWORD", "secretKey": "password"}],
                                "optional": False,
                                "secretName": "db",
                                "secretNameParameter": {"runtimeValue": {"constant": "db"}},
                            }
                        ],
                        "pvcMount": [
                            {
                                "constant": "data",
                                "mountPath": "/data",
                                "pvcNameParameter": {"runtimeValue": {"constant": "data"}},
                            }
                        ],
                        "emptyDirMounts": [
                            {"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": "1Gi", "volumeName": "dshm"}
                        ],
                    }
                }
            },
            "pipelineConfig": {"resourceTtlOnCompletion": 3600},
        }
    }
}


def test_the_platform_spec_reaches_runs_recurring_runs_and_pipeline_versions(kfp: FakeKfp) -> None:
    spec = {**SPEC, "pipelineInfo": {"name": "demo-pods"}, "platformSpec": PLATFORM}
    engine = backend(kfp.base_url)
    engine.run(JobRequest(spec=spec))
    engine.schedule(ScheduleRequest(spec=spec, name="pods-daily", cron="0 6 * * *"))
    engine.upload(spec, "__default__")
    engine.upload(spec, "__default__", tags=["v2"])

    [run] = created_runs(kfp)
    [recurring] = [r for r in kfp.recurring.values() if r["display_name"] == "pods-daily"]
    [pipeline_id] = [key for key, p in kfp.pipelines.items() if p["display_name"] == "demo-pods"]
    versions = [upload["spec"] for upload in kfp.uploads if upload["pipeline_id"] == pipeline_id]
    assert len(versions) == 2
    for sent in (run["pipeline_spec"], recurring["pipeline_spec"], *versions):
        # KFP's form of a pipeline with a platform spec; the platform spec intact, never inside the PipelineSpec
        assert set(sent) == {"pipeline_spec", "platform_spec"} and sent["platform_spec"] == PLATFORM
        assert "platformSpec" not in sent["pipeline_spec"]
        assert sent["pipeline_spec"]["deploymentSpec"] == SPEC["deploymentSpec"]
