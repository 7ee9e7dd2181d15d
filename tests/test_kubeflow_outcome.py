"""The job's final status and the webhook on Kubeflow Pipelines: the exit task's `taskFinalStatus` input and the
webhook's Kubernetes secret compiled as kfp and kfp-kubernetes compile them, KFP's states read as the docs name
them, the webhook posted from the exit task with the URL Kubernetes put into its environment, and an installation
older than KFP 2.14 refused before anything is created (the fake KFP API's health answer, tests/fake_kfp.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import PYTHON, free_port, subprocess_env
from fake_kfp import FakeKfp
from fake_secret_manager import WebhookReceiver
from test_job_outcome import args_of, compile_, kfp_exit_status_reference

from kedro_vertex_runner.backends import get_backend
from kedro_vertex_runner.backends.base import JobRequest, SilentReporter
from kedro_vertex_runner.config import validate_config
from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.pipeline_spec import PLATFORM_SPEC_KEY
from kedro_vertex_runner.task.contract import TaskContract
from kedro_vertex_runner.task.secret_manager import WEBHOOK_URL_ENV

HOOK = {"secret": "ops-hooks", "key": "url"}


def test_kubeflow_exit_task_takes_the_final_status_and_the_webhook_secret_as_kfp_compiles_them(tmp_path: Path):
    spec = compile_(backend="kubeflow", kubeflow={"webhook": HOOK})
    kfp, kfp_platform = kfp_exit_status_reference(tmp_path, WEBHOOK_URL_ENV)
    ours, theirs = spec["root"]["dag"]["tasks"]["on-exit-notify"], kfp["root"]["dag"]["tasks"]["notify"]
    assert ours["inputs"]["parameters"]["status"] == theirs["inputs"]["parameters"]["status"]
    for key in ("dependentTasks", "triggerPolicy"):
        assert ours[key] == theirs[key]
    definition = kfp["components"]["comp-notify"]["inputDefinitions"]["parameters"]["status"]
    assert spec["components"]["comp-on-exit-notify"]["inputDefinitions"]["parameters"]["status"] == definition
    placeholder = kfp["deploymentSpec"]["executors"]["exec-notify"]["container"]["args"][1]
    contract = TaskContract.from_args(args_of(spec, "on-exit-notify"))
    assert contract.final_status == placeholder and contract.webhook == "k8s:ops-hooks/url"
    # the Secret reaches the exit task's environment as kfp-kubernetes writes it; no URL is in the spec
    executors = spec[PLATFORM_SPEC_KEY]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    expected = kfp_platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-notify"]
    assert executors == {"exec-on-exit-notify": expected}
    assert "http" not in json.dumps(spec).replace("https://kubeflow.example.com", "")

    # a webhook without exit pipeline: its own exit task, with the status and the secret
    alone = compile_(backend="kubeflow", on_exit_pipeline=None, kubeflow={"webhook": HOOK})
    assert "status" in alone["root"]["dag"]["tasks"]["on-exit-webhook"]["inputs"]["parameters"]
    assert list(alone[PLATFORM_SPEC_KEY]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]) == [
        "exec-on-exit-webhook"
    ]
    # run_config.kubeflow.final_status: false compiles the exit task without it (for KFP before 2.14)
    old = compile_(backend="kubeflow", kubeflow={"final_status": False})
    assert "status" not in old["root"]["dag"]["tasks"]["on-exit-notify"]["inputs"]["parameters"]
    assert TaskContract.from_args(args_of(old, "on-exit-notify")).final_status is None


def test_the_exit_task_posts_kfp_states_named_as_on_vertex_with_the_url_from_the_pod_environment(demo_project: Path):
    spec = compile_(backend="kubeflow", on_exit_pipeline=None, kubeflow={"webhook": HOOK})
    args = args_of(spec, "on-exit-webhook")
    command = spec["deploymentSpec"]["executors"]["exec-on-exit-webhook"]["container"]["command"]
    receiver = WebhookReceiver()
    url = f"{receiver.base_url}/hooks/t0ken"
    results = []
    try:
        dead = f"http://127.0.0.1:{free_port()}/hooks/t0ken"
        for state, hook in (("COMPLETE", url), ("FAILED", url), ("CANCELED", url), (None, None), ("FAILED", dead)):
            # what KFP's driver resolves (protojson of PipelineTaskFinalStatus; `error` stays empty) and its
            # launcher substitutes for the placeholders
            status = {"state": state, "pipelineJobResourceName": "run-7f3a", "pipelineTaskName": "exit-handler-1"}
            values = {
                "status": json.dumps({**status, "error": {}}),
                "job_uuid": "7f3a",
                "job_name": "run-7f3a",
            }
            argv = list(args)
            for key, value in values.items():
                argv = [a.replace("{{$.inputs.parameters['" + key + "']}}", value) for a in argv]
            env = {WEBHOOK_URL_ENV: hook} if hook else {}
            results.append(
                subprocess.run(
                    [PYTHON, *command[1:], *argv],
                    cwd=demo_project,
                    env=subprocess_env(**env),
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
            )
    finally:
        receiver.stop()
    assert [r.returncode for r in results] == [0, 0, 0, 1, 1], [r.stderr[-2000:] for r in results]
    common = {"error_code": None, "error_message": "", "job_name": "run-7f3a", "task_name": "exit-handler-1"}
    assert receiver.posts == [
        ("/hooks/t0ken", {"state": "SUCCEEDED", **common}),
        ("/hooks/t0ken", {"state": "FAILED", **common}),
        ("/hooks/t0ken", {"state": "CANCELLED", **common}),
    ]
    assert results[3].stderr.strip().splitlines() == [
        f"Error: run_config.kubeflow.webhook (Kubernetes secret ops-hooks, key url): the task has no "
        f"{WEBHOOK_URL_ENV}: run it on Kubeflow Pipelines, which sets it from the secret, with the secret in the "
        "run's namespace"
    ]
    assert results[4].stderr.strip().splitlines() == [
        "Error: run_config.kubeflow.webhook (Kubernetes secret ops-hooks, key url): the webhook cannot be reached "
        "(ConnectionError)"
    ]
    assert all(url not in r.stdout + r.stderr and dead not in r.stdout + r.stderr for r in results)


# ---------------------------------------------------------------------------------------------------------------
# the installation's version, from its health answer


class Warnings(SilentReporter):
    def __init__(self) -> None:
        super().__init__()
        self.warnings: list[str] = []

    def warn(self, message: str) -> None:
        self.warnings.append(message)


def _submit(kfp: FakeKfp, tag: str, **kubeflow: object) -> tuple[str | None, list[str]]:
    """Start a run of a compiled pipeline with an exit task (``--no-wait``) on a KFP saying it is ``tag``: the
    refusal (None if the run was created) and the warnings."""
    kfp.tag_name = tag
    spec = compile_(backend="kubeflow", kubeflow=kubeflow)
    raw = {"image": "img:1", "root": "gs://kfp-bucket/runs", "backend": "kubeflow", "kubeflow": kubeflow}
    reporter = Warnings()
    engine = get_backend("kubeflow", validate_config({"host": kfp.base_url, "run_config": raw}), reporter)
    try:
        engine.start(JobRequest(spec=spec, params={}))
    except PluginError as exc:
        return str(exc), reporter.warnings
    return None, reporter.warnings


def test_a_kubeflow_older_than_2_14_is_refused_before_anything_is_created(kfp: FakeKfp):
    refused, _ = _submit(kfp, "2.4.0")
    assert refused == (
        f"Kubeflow Pipelines at {kfp.base_url} is version 2.4.0, older than 2.14.0, the first that passes an exit "
        "task the job's final status: upgrade it, or set run_config.kubeflow.final_status: false (the exit nodes' "
        "params:job_final_status is then None)"
    )
    assert kfp.requests_to("POST", r"/apis/v2beta1/runs") == []
    # without the status the same installation runs it; a current one, and one that does not say, run it too
    assert _submit(kfp, "2.4.0", final_status=False) == (None, [])
    assert _submit(kfp, "2.14.0") == (None, [])
    refused, warnings = _submit(kfp, "unknown")
    assert refused is None and warnings == [
        f"Kubeflow Pipelines at {kfp.base_url} does not say its version (tag_name 'unknown'): the exit task takes "
        "the job's final status, which needs KFP 2.14.0 or later"
    ]
    assert len(kfp.requests_to("POST", r"/apis/v2beta1/runs")) == 3
