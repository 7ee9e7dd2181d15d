"""``kedro vertexai run-once | schedule | list-pipelines | upload-pipeline`` and ``kedro run --runner=VertexRunner``
with ``backend: kubeflow``, in subprocesses on one copy of the example project, through the real ``kfp.Client``
against the fake KFP API (tests/fake_kfp.py), logged in through IAP with an ID token from the fake metadata server.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import _clean_example, kedro_cmd, subprocess_env
from fake_kfp import FakeKfp
from fake_metadata import FakeMetadataServer
from picture_html import assert_self_contained, read_picture

pytestmark = pytest.mark.slow

CLIENT_ID = "987-kfp.apps.googleusercontent.com"
CONFIG = """\
host: {host}
run_config:
  backend: kubeflow
  image: registry.example.com/demo-project:1
  root: gs://kfp-bucket/runs
  grouping: chains
  experiment_name: house-prices
"""


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every command once, in order, against one fake KFP; the results and what the fake saw."""
    project = _clean_example(tmp_path_factory.mktemp("kubeflow_cli"))
    kfp = FakeKfp().start()
    try:
        with FakeMetadataServer() as metadata:
            (project / "conf" / "base" / "vertexai.yml").write_text(CONFIG.format(host=kfp.base_url))
            env = subprocess_env(
                IAP_CLIENT_ID=CLIENT_ID,
                KEDRO_VERTEX_POLL_INTERVAL="0.05",
                CLOUDSDK_CONFIG=str(project / ".gcloud"),
                **metadata.env(),
            )
            env.pop("NO_GCE_CHECK")  # the metadata server is there to be found

            def run(*args: str) -> subprocess.CompletedProcess:
                return subprocess.run(
                    kedro_cmd(*args), cwd=project, env=env, capture_output=True, text=True, timeout=240
                )

            kfp.script_next_run(
                {"state": "RUNNING", "tasks": {"clean-houses": "RUNNING"}},
                {"state": "SUCCEEDED", "tasks": {"clean-houses": "SUCCEEDED"}},
            )
            results = {"run-once": run("vertexai", "run-once", "--params", "learning_rate=0.2")}
            kfp.script_next_run(
                {"state": "FAILED", "tasks": {"clean-houses": "SUCCEEDED", "model-train-model": ("FAILED", "KeyError")}}
            )
            results["kedro-run"] = run("run", "--runner=VertexRunner")
            results["report"] = run("vertexai", "report", max(kfp.runs), "-o", "kfp-report.html")  # the failed run
            kfp.recurring["recurring-old"] = {
                "recurring_run_id": "recurring-old",
                "display_name": "demo-project",
                "status": "ENABLED",
                "trigger": {"cron_schedule": {"cron": "0 0 5 * * *"}},
            }
            results["schedule"] = run("vertexai", "schedule", "--cron", "0 6 * * *")
            results["upload"] = run("vertexai", "upload-pipeline", "--tag", "prod")
            results["list"] = run("vertexai", "list-pipelines")
            yield {"results": results, "kfp": kfp, "audiences": list(metadata.audiences), "project": project}
    finally:
        kfp.stop()


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def test_kubeflow_through_the_cli(session: dict[str, Any]) -> None:
    results, kfp = session["results"], session["kfp"]
    assert kfp.unknown == []

    # run-once: submitted with typed params, followed task by task, succeeded
    out = _ok(results["run-once"])
    runs = [json.loads(r["body"]) for r in kfp.requests_to("POST", r"/apis/v2beta1/runs")]
    assert runs[0]["runtime_config"]["parameters"]["learning_rate"] == 0.2
    assert runs[0]["runtime_config"]["pipeline_root"] == "gs://kfp-bucket/runs"
    assert "clean-houses" in runs[0]["pipeline_spec"]["root"]["dag"]["tasks"]
    assert f"{kfp.base_url}/#/runs/details/" in out and "SUCCEEDED" in out

    # kedro run --runner=VertexRunner: the failed run exits non-zero in one line
    failed = results["kedro-run"]
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert len(runs) == 2 and "model.train_model" in failed.stderr + failed.stdout

    # report: a picture of that run from KFP's task details, each task with its state and nodes
    assert "Wrote the picture of" in _ok(results["report"])
    picture = read_picture(session["project"] / "kfp-report.html")
    assert picture.states() == {"clean-houses": "SUCCEEDED", "model-train-model": "FAILED"}
    assert {"clean_houses", "model.train_model"} <= set(picture.attribute("data-node"))
    assert "KeyError" in picture.text
    assert_self_contained(picture)

    # schedule: the same-named recurring run is replaced by one in KFP's six-field cron
    assert "Replaced earlier recurring run recurring-old" in _ok(results["schedule"])
    [recurring] = kfp.recurring.values()
    assert (
        recurring["display_name"] == "demo-project" and recurring["trigger"]["cron_schedule"]["cron"] == "0 0 6 * * *"
    )

    # upload: a KFP pipeline named after the compiled pipeline, its spec the compiled one
    assert "Created pipeline 'demo-project'" in _ok(results["upload"])
    [pipeline] = kfp.pipelines.values()
    [version] = kfp.versions[pipeline["pipeline_id"]]
    assert (
        pipeline["display_name"] == "demo-project"
        and "clean-houses" in version["pipeline_spec"]["root"]["dag"]["tasks"]
    )

    # list-pipelines shows the runs and the recurring run
    listed = _ok(results["list"])
    assert all(run_id in listed for run_id in kfp.runs) and recurring["recurring_run_id"] in listed

    # every API call carried the IAP ID token minted for the client id, and no output shows it
    assert session["audiences"] and set(session["audiences"]) == {CLIENT_ID}
    bearers = {r["headers"].get("Authorization", "") for r in kfp.requests}
    assert len(bearers) >= 1 and all(b.startswith("Bearer ey") for b in bearers)
    shown = "".join(r.stdout + r.stderr for r in results.values())
    assert all(b.removeprefix("Bearer ") not in shown for b in bearers)
