"""Machines and cost: per-node machine settings compiled as Vertex AI CustomJobs (checked field by field against
what google-cloud-pipeline-components compiles, tests/golden/), grouping and the cost model, the persistent
resource runtime and preflight validations in the JSON a job, a schedule and a run-once send (real aiplatform
client, fake Vertex AI), the local backend, and every bad value as one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import VERTEX_CONFIG_HEAD, assert_one_line_error, kedro_batch, subprocess_env
from fake_vertex import FakeVertex
from google.cloud.aiplatform_v1beta1 import PipelineJob
from kedro.pipeline import Pipeline, node

from kedro_vertex_runner import console
from kedro_vertex_runner.backends import vertex
from kedro_vertex_runner.backends.base import JobRequest
from kedro_vertex_runner.cli import _print_explanation
from kedro_vertex_runner.compiler import CompileRequest, compile_spec, cost_model, explain
from kedro_vertex_runner.compiler.grouping import estimate, group_nodes
from kedro_vertex_runner.compiler.spec import task_settings
from kedro_vertex_runner.config import validate_config
from kedro_vertex_runner.errors import ConfigError, PluginError

PersistentResourceRuntimeDetail = PipelineJob.RuntimeConfig.PersistentResourceRuntimeDetail
GOLDEN = Path(__file__).parent / "golden" / "gcpc_custom_job.json"
IMAGE = "europe-docker.pkg.dev/demo/images/demo:1"
PROJECT, REGION = "demo-gcp", "europe-west4"
RESERVATION = "projects/demo/zones/europe-west4-a/reservations/big"
# the settings tests/golden/make_gcpc_custom_job.py gives GCPC
MACHINES: dict[str, Any] = {
    "gpu": {"machine_type": "a2-highgpu-1g", "spot": True, "boot_disk": {"size_gb": 200}},
    "score": {"machine_type": "n2-highmem-32", "timeout": "1h", "reservation": RESERVATION},
    "fit": {"machine_type": "g2-standard-8", "max_wait": "2h", "boot_disk": {"type": "pd-balanced", "size_gb": 150}},
}


def submit(spec: dict[str, Any], config: Any, *, wait: bool = True, **request: Any) -> str:
    """One job on the configured remote backend as the commands run it (the CLI's reporter); returns the job id."""
    with console.ConsoleReporter() as reporter:
        return console.open_backend(config, None, reporter).run(JobRequest(spec=spec, **request), wait=wait).job_id


def f(*values: Any) -> int:
    return 1


def config(backend: str = "vertex", **run_config: Any) -> Any:
    raw = {"image": IMAGE, "root": "test-bucket/root", "backend": backend, **run_config}
    return validate_config({"project_id": PROJECT, "region": REGION, "run_config": raw})


def three() -> Pipeline:
    return Pipeline(
        [
            node(f, "params:alpha", "a", name="train", tags=["gpu"]),
            node(f, "a", "b", name="score"),
            node(f, "b", "c", name="fit"),
        ]
    )


# ------------------------------------------------------------------------------------------------------------------
# the compiled CustomJob task


def test_machine_typed_tasks_compile_as_gcpc_compiles_them() -> None:
    """Component inputs (their defaults carry the settings), outputs and executor equal GCPC 2.22's for the same
    settings; only what must differ is left out: the args our task's container runs (GCPC's golden runs a stand-in
    component) and the pipeline parameters each task takes as inputs (ours: every runtime parameter)."""
    golden = json.loads(GOLDEN.read_text())
    assert golden["_generated_by"]["google-cloud-pipeline-components"] == "2.22.0"
    spec = compile_spec(
        CompileRequest(
            pipeline=three(), config=config(grouping="none", resources=MACHINES), runtime_params={"alpha": 0.5}
        )
    )
    for task in ("train", "score", "fit"):
        ours, theirs = spec["components"][f"comp-{task}"], golden["components"][f"comp-{task}"]
        assert (
            spec["deploymentSpec"]["executors"][f"exec-{task}"] == golden["deploymentSpec"]["executors"][f"exec-{task}"]
        )
        assert (
            ours["outputDefinitions"]
            == theirs["outputDefinitions"]
            == {"parameters": {"gcp_resources": {"parameterType": "STRING"}}}
        )
        our_inputs = {k: v for k, v in ours["inputDefinitions"]["parameters"].items() if k != "alpha"}
        their_inputs = {k: v for k, v in theirs["inputDefinitions"]["parameters"].items() if k != "alpha"}
        our_pools = our_inputs.pop("worker_pool_specs")["defaultValue"]
        their_pools = their_inputs.pop("worker_pool_specs")["defaultValue"]
        assert our_inputs == their_inputs, task
        (our_pool,), (their_pool,) = our_pools, their_pools
        our_args = our_pool["container_spec"].pop("args")
        their_pool["container_spec"].pop("args")
        assert our_pool == their_pool, task  # machine, accelerator, disk, reservation, image, command, env
        assert f"--node={task}" in our_args
        # runtime parameters and the job's ids stay placeholders inside the payload, as GCPC leaves them
        assert "--param=NUMBER_DOUBLE:alpha={{$.inputs.parameters['alpha']}}" in our_args
        assert "--run-id={{$.pipeline_job_uuid}}" in our_args
    # kfp's own parser takes the spec (strict: an unknown field would be refused)
    from google.protobuf.json_format import ParseDict
    from kfp.pipeline_spec import pipeline_spec_pb2

    ParseDict(spec, pipeline_spec_pb2.PipelineSpec())
    # a2-highgpu-1g implies its A100; the task asked for no accelerator
    (pool,) = spec["components"]["comp-train"]["inputDefinitions"]["parameters"]["worker_pool_specs"]["defaultValue"]
    assert pool["machine_spec"]["accelerator_type"] == "NVIDIA_TESLA_A100"


def test_job_settings_reach_the_custom_job() -> None:
    """A CustomJob does not inherit the pipeline job's identity and network: the task passes them on."""
    spec = compile_spec(
        CompileRequest(
            pipeline=three(),
            config=config(
                grouping="none",
                resources={"fit": {"spot": True}},
                service_account="runner@demo-gcp.iam.gserviceaccount.com",
                network={"vpc": "projects/123/global/networks/vpc-1", "reserved_ip_ranges": ["range-a"]},
                labels={"team": "pricing"},
                encryption_key="projects/k/locations/europe-west4/keyRings/r/cryptoKeys/c",
            ),
        )
    )
    inputs = spec["components"]["comp-fit"]["inputDefinitions"]["parameters"]
    assert inputs["service_account"]["defaultValue"] == "runner@demo-gcp.iam.gserviceaccount.com"
    assert inputs["network"]["defaultValue"] == "projects/123/global/networks/vpc-1"
    assert inputs["reserved_ip_ranges"]["defaultValue"] == ["range-a"]
    assert inputs["labels"]["defaultValue"] == {"team": "pricing"}
    assert inputs["encryption_spec_key_name"]["defaultValue"].endswith("cryptoKeys/c")
    # spot alone: GCPC's default machine
    assert inputs["worker_pool_specs"]["defaultValue"][0]["machine_spec"] == {"machine_type": "n1-standard-4"}
    assert inputs["strategy"]["defaultValue"] == "SPOT"
    # a task without machine settings stays a plain container task
    assert "container" in spec["deploymentSpec"]["executors"]["exec-train"]
    assert (
        spec["deploymentSpec"]["executors"]["exec-train"]["container"]["command"][-1]
        == "kedro_vertex_runner.entrypoint"
    )


def test_the_exit_handlers_task_runs_on_its_machine_too() -> None:
    on_exit = Pipeline([node(f, "x", "y", name="notify")])
    cfg = config(on_exit_pipeline="cleanup", resources={"notify": {"machine_type": "e2-standard-4"}})
    spec = compile_spec(CompileRequest(pipeline=chain(1), config=cfg, on_exit=on_exit))
    exit_task = next(name for name in spec["root"]["dag"]["tasks"] if name.startswith("on-exit"))
    launcher = spec["deploymentSpec"]["executors"][f"exec-{exit_task}"]["container"]
    assert launcher["image"] == "gcr.io/ml-pipeline/google-cloud-pipeline-components:2.22.0"
    (pool,) = spec["components"][f"comp-{exit_task}"]["inputDefinitions"]["parameters"]["worker_pool_specs"][
        "defaultValue"
    ]
    assert pool["machine_spec"] == {"machine_type": "e2-standard-4"}
    assert "--exit-handler" in " ".join(pool["container_spec"]["args"])


# ------------------------------------------------------------------------------------------------------------------
# grouping and the cost model


def chain(count: int = 4) -> Pipeline:
    return Pipeline([node(f, f"d{i}", f"d{i + 1}", name=f"n{i}") for i in range(count)])


def test_nodes_on_different_machines_never_share_a_task() -> None:
    resources = {"n1": {"machine_type": "n2-highmem-32"}, "n2": {"machine_type": "n2-highmem-32"}}
    for grouping in ("makespan", "chains"):
        spec = compile_spec(CompileRequest(pipeline=chain(), config=config(grouping=grouping, resources=resources)))
        tasks = sorted(spec["root"]["dag"]["tasks"])
        # n1 and n2 ask for the same machine and share one CustomJob; n0 and n3 never join it
        assert tasks == ["n0", "n1", "n3"], grouping
        (pool,) = spec["components"]["comp-n1"]["inputDefinitions"]["parameters"]["worker_pool_specs"]["defaultValue"]
        assert "--node=n1" in pool["container_spec"]["args"] and "--node=n2" in pool["container_spec"]["args"]
    # the same machine with another strategy is another machine
    spot = {"n1": {"machine_type": "n2-highmem-32"}, "n2": {"machine_type": "n2-highmem-32", "spot": True}}
    spec = compile_spec(CompileRequest(pipeline=chain(), config=config(grouping="chains", resources=spot)))
    assert sorted(spec["root"]["dag"]["tasks"]) == ["n0", "n1", "n2", "n3"]
    # a grouping that puts them together anyway is one line naming both machines
    namespaced = Pipeline([node(f, "x", "y", name="a", namespace="ns"), node(f, "y", "z", name="b", namespace="ns")])
    mixed = {"ns.a": {"machine_type": "n2-highmem-32"}}
    disks = {"ns.a": {"boot_disk": {"size_gb": 200}}, "ns.b": {"boot_disk": {"size_gb": 300}}}
    with pytest.raises(PluginError, match=r"\(n1-standard-4 \(standard, pd-ssd 200 GB\) for ns\.a; n1-standard-4 "):
        compile_spec(CompileRequest(pipeline=namespaced, config=config(grouping="namespace", resources=disks)))
    with pytest.raises(
        PluginError,
        match=r"ask for different machines \(n2-highmem-32 \(standard, pd-ssd 100 GB\) for ns\.a; no machine settings for ns\.b\)",
    ):
        compile_spec(CompileRequest(pipeline=namespaced, config=config(grouping="namespace", resources=mixed)))


def test_cost_model_follows_the_runtime_and_counts_a_custom_jobs_start_up(capsys: pytest.CaptureFixture) -> None:
    # a fan-out of six 30 s branches: cold tasks (120 s to start) are fused, on a persistent resource (20 s) split
    fan = Pipeline(
        [node(f, "x", "root_out", name="root")] + [node(f, "root_out", f"o{i}", name=f"b{i}") for i in range(6)]
    )
    durations = {"root": 10.0, **{f"b{i}": 30.0 for i in range(6)}}
    cold = CompileRequest(pipeline=fan, config=config(), durations=durations)
    warm = CompileRequest(pipeline=fan, config=config(persistent_resource="kedro-pool"), durations=durations)
    assert cost_model(cold).task_startup == 120 and cost_model(warm).task_startup == 20
    cold_groups = group_nodes(
        fan, "makespan", fusable=task_settings(cold.config.run_config).same, model=cost_model(cold)
    )
    warm_groups = group_nodes(
        fan, "makespan", fusable=task_settings(warm.config.run_config).same, model=cost_model(warm)
    )
    assert len(warm_groups) > len(cold_groups)
    # a CustomJob task's start-up: counted once per task, on top of the runtime's
    machine = CompileRequest(
        pipeline=chain(2), config=config(grouping="chains", resources={"__default__": {"spot": True}})
    )
    model = cost_model(machine)
    assert model.extra_startup == {"n0": 180.0, "n1": 180.0}
    groups = group_nodes(chain(2), "chains", fusable=task_settings(machine.config.run_config).same, model=model)
    assert len(groups) == 1 and estimate(groups, model).makespan == 120 + 180 + 2 * 10
    # the local backend has no CustomJob: nothing extra
    assert (
        cost_model(
            CompileRequest(pipeline=chain(2), config=config("local", resources={"__default__": {"spot": True}}))
        ).extra_startup
        == {}
    )
    report = explain(machine)[0]
    assert report.estimate is not None and report.estimate.makespan == 320
    # compile --explain says what it assumed
    _print_explanation([report], model, 2)
    assert "Cost model: 2m00s start-up per task (+3m00s for a task with machine settings);" in capsys.readouterr().out


def test_local_backend_runs_machine_tasks_as_any_task_and_says_so_once(capsys: pytest.CaptureFixture) -> None:
    spec = compile_spec(CompileRequest(pipeline=three(), config=config("local", grouping="none", resources=MACHINES)))
    for task in ("train", "score", "fit"):
        assert spec["deploymentSpec"]["executors"][f"exec-{task}"]["container"]["image"] == IMAGE
        assert "outputDefinitions" not in spec["components"][f"comp-{task}"]
    notes = [line for line in capsys.readouterr().err.splitlines() if "mean nothing" in line]
    assert notes == [
        "Note: run_config.resources: the machine settings (machine_type, spot, boot_disk, reservation, max_wait) "
        "of 3 tasks mean nothing on backend 'local': they run as any other task (on Vertex AI each runs as a "
        "CustomJob on its machine)"
    ]


# ------------------------------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    ("settings", "key", "text"),
    [
        ({"machine_type": "n9-standard-4"}, "machine_type", "'n9-standard-4' is not a Compute Engine machine type"),
        ({"machine_type": "big-machine"}, "machine_type", "use a type such as 'n2-highmem-32'"),
        (
            {"machine_type": "a2-highgpu-1g", "accelerator": "NVIDIA_TESLA_T4"},
            "machine_type",
            "machine type 'a2-highgpu-1g' comes with NVIDIA_TESLA_A100, not NVIDIA_TESLA_T4: set accelerator to",
        ),
        (
            {"machine_type": "a2-highgpu-2g", "accelerator": "NVIDIA_TESLA_A100", "gpu": 1},
            "machine_type",
            "has 2 NVIDIA_TESLA_A100, not 1: set gpu to 2",
        ),
        (
            {"machine_type": "n2-standard-8", "accelerator": "NVIDIA_L4"},
            "machine_type",
            "cannot carry NVIDIA_L4 (n2 machine types have no accelerator)",
        ),
        ({"spot": True, "reservation": RESERVATION}, "reservation", "contradicts spot: true"),
        ({"spot": True, "max_wait": "1h"}, "max_wait", "contradicts spot: true"),
        ({"max_wait": "1h", "reservation": RESERVATION}, "max_wait", "contradicts a reservation"),
        ({"boot_disk": {"size_gb": 50}}, "boot_disk.size_gb", "50 GB is under Vertex AI's minimum boot disk of 100 GB"),
        ({"boot_disk": {"type": "ssd"}}, "boot_disk.type", "'ssd'"),
        ({"reservation": "big"}, "reservation", "expected the full name of a Compute Engine reservation"),
        ({"max_wait": "8d"}, "max_wait", "longer than the limit of 7d"),
    ],
)
def test_bad_machine_settings_are_one_line(settings: dict[str, Any], key: str, text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config(resources={"train": settings})
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(f"vertexai.yml: run_config.resources.train.{key}: "), message
    assert text in message, message


def test_machine_settings_that_contradict_across_layers_are_one_line() -> None:
    """``spot`` from ``__default__`` and a ``reservation`` under a node name are each fine; together they are not."""
    cfg = config(grouping="none", resources={"__default__": {"spot": True}, "score": {"reservation": RESERVATION}})
    with pytest.raises(PluginError) as raised:
        compile_spec(CompileRequest(pipeline=three(), config=cfg))
    assert str(raised.value) == (
        f"run_config.resources: node 'score': reservation: '{RESERVATION}' contradicts spot: true (a Spot VM never "
        "uses a reservation): remove `reservation`, or set spot: false"
    )


def test_a_reservation_outside_the_jobs_region_is_one_line() -> None:
    other = "projects/demo/zones/us-east1-b/reservations/big"
    with pytest.raises(ConfigError) as raised:
        config(resources={"score": {"reservation": other}})
    assert str(raised.value) == (
        f"vertexai.yml: run_config.resources.score.reservation: '{other}' is in zone 'us-east1-b', outside the "
        "job's region 'europe-west4': use a reservation in a zone of europe-west4"
    )


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (
            f"projects/{PROJECT}/locations/us-central1/persistentResources/pool",
            "is in region 'us-central1', but the job runs in 'europe-west4': use a persistent resource in europe-west4",
        ),
        ("Pool!", "expected a persistent resource id such as 'kedro-pool'"),
        ({"name": "pool", "when_busy": "queue"}, "when_busy: expected one of 'fail', 'on_demand', got 'queue'"),
    ],
)
def test_bad_persistent_resource_is_one_line(value: Any, text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        config(persistent_resource=value)
    message = str(raised.value)
    assert "\n" not in message and "run_config.persistent_resource" in message and text in message, message


# ------------------------------------------------------------------------------------------------------------------
# persistent resource and preflight on Vertex AI


@pytest.fixture
def api(fake: FakeVertex, gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> FakeVertex:
    fake.reset()
    monkeypatch.setenv(vertex.ANONYMOUS_ENV, "1")
    monkeypatch.setenv(vertex.POLL_INTERVAL_ENV, "0.02")
    yield fake
    assert fake.unknown == []


SPEC: dict[str, Any] = {
    "pipelineInfo": {"name": "demo-project"},
    "schemaVersion": "2.1.0",
    "sdkVersion": "kedro-vertex-runner",
    "root": {"dag": {"tasks": {"clean": {"taskInfo": {"name": "clean"}}}}},
}
FALL_BACK = PersistentResourceRuntimeDetail.TaskResourceUnavailableTimeoutBehavior.FALL_BACK_TO_ON_DEMAND
POOL = f"projects/{PROJECT}/locations/{REGION}/persistentResources/kedro-pool"
RUNTIME = {
    "defaultRuntime": {
        "persistentResourceRuntimeDetail": {
            "persistentResourceName": POOL,
            "taskResourceUnavailableTimeoutBehavior": FALL_BACK.value,  # the REST client sends enums as numbers
            "taskResourceUnavailableWaitTimeMs": "600000",
        }
    },
    "gcsOutputDirectory": "gs://test-bucket/root",
}


def vertex_config(fake: FakeVertex, **run_config: Any) -> Any:
    raw = {"image": IMAGE, "root": "gs://test-bucket/root", **run_config}
    return validate_config({"project_id": PROJECT, "region": REGION, "api_endpoint": fake.endpoint, "run_config": raw})


def test_job_and_schedule_on_a_persistent_resource_with_preflight(api: FakeVertex) -> None:
    cfg = vertex_config(
        api,
        persistent_resource={"name": "kedro-pool", "when_busy": "on_demand", "wait": "10m"},
        preflight_validations=True,
    )
    submit(SPEC, cfg, pipeline_name="__default__", wait=True)
    console.create_schedule(SPEC, cfg, cron="0 6 * * *")
    # the job is followed through v1beta1 too, as is every call about pipelines and schedules
    assert api.calls("GET", r"/pipelineJobs/[^/]+$")
    assert all(r["path"].startswith("/v1beta1/") for r in api.requests if "metadataStores" not in r["path"])
    (create,) = api.calls("POST", r"/pipelineJobs$")
    (schedule,) = api.calls("POST", r"/schedules$")
    # both through v1beta1, the only version with the persistent resource runtime
    assert create["path"] == f"/v1beta1/projects/{PROJECT}/locations/{REGION}/pipelineJobs"
    assert schedule["path"] == f"/v1beta1/projects/{PROJECT}/locations/{REGION}/schedules"
    for body in (create["body"], schedule["body"]["createPipelineJobRequest"]["pipelineJob"]):
        assert body["runtimeConfig"] == RUNTIME
        assert body["preflightValidations"] is True
        assert set(body) == {"displayName", "pipelineSpec", "runtimeConfig", "preflightValidations"}


def test_without_a_persistent_resource_jobs_go_through_v1(api: FakeVertex) -> None:
    submit(SPEC, vertex_config(api, preflight_validations=True), wait=False)
    (create,) = api.calls("POST", r"/pipelineJobs$")
    assert create["path"].startswith("/v1/projects/")
    assert create["body"]["preflightValidations"] is True
    assert "defaultRuntime" not in create["body"]["runtimeConfig"]


def test_a_preflight_refusal_is_one_line(api: FakeVertex) -> None:
    api.fail(
        "create_job", 400, "Preflight validation failed: quota NVIDIA_A100_GPUS in europe-west4 is 0\n(see quotas)"
    )
    with pytest.raises(PluginError) as raised:
        submit(SPEC, vertex_config(api, preflight_validations=True), wait=False)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(
        "Vertex AI's preflight validation refused the job: Preflight validation failed: quota NVIDIA_A100_GPUS in "
        "europe-west4 is 0 (see quotas); fix what it names"
    ), message


MACHINE_CONFIG = (
    VERTEX_CONFIG_HEAD
    + """\
  grouping: chains
  persistent_resource: kedro-pool
  preflight_validations: true
  resources:
    model.train_model: {{machine_type: n2-highmem-16, boot_disk: {{size_gb: 200}}}}
"""
)


BAD_CASES = [
    (
        "  resources:\n    __default__: {{machine_type: a2-highgpu-1g, accelerator: NVIDIA_TESLA_T4}}\n",
        "run_config.resources.__default__.machine_type: machine type 'a2-highgpu-1g' comes with NVIDIA_TESLA_A100",
    ),
    (
        "  persistent_resource: projects/demo-gcp/locations/us-east1/persistentResources/pool\n",
        "run_config.persistent_resource: 'projects/demo-gcp/locations/us-east1/persistentResources/pool' is in "
        "region 'us-east1', but the job runs in 'europe-west1'",
    ),
]


@pytest.mark.slow
def test_run_once_carries_the_runtime_and_the_custom_job_bad_values_submit_nothing_local_runs(
    demo_project: Path, fake: FakeVertex, gcs_emulator: str, tmp_path: Path
) -> None:
    """One interpreter: two refused configs (one line each, nothing sent to Vertex AI), a local run of nodes with
    machine settings (they run as any task; one line says the settings mean nothing there), then a run-once."""
    import shutil

    fake.reset()
    commands = []
    for index, (extra, _) in enumerate(BAD_CASES):
        bad = shutil.copytree(demo_project, tmp_path / f"bad{index}", ignore=shutil.ignore_patterns("data"))
        (bad / "conf" / "base" / "vertexai.yml").write_text((VERTEX_CONFIG_HEAD + extra).format(endpoint=fake.endpoint))
        commands.append((bad, ["vertexai", "run-once", "--no-wait"]))
    # the example as shipped (backend local) with machine settings on its preprocessing tag: runs as it always does
    local = shutil.copytree(demo_project, tmp_path / "local")
    vertexai = local / "conf" / "base" / "vertexai.yml"
    marker = "    preprocessing:          # tag of clean_houses, add_features, select_features\n"
    assert marker in vertexai.read_text()
    vertexai.write_text(
        vertexai.read_text().replace(marker, marker + "      machine_type: n2-highmem-16\n      spot: true\n")
    )
    commands.append((local, ["run", "--runner=VertexRunner", "--pipeline", "data_processing"]))
    (demo_project / "conf" / "base" / "vertexai.yml").write_text(MACHINE_CONFIG.format(endpoint=fake.endpoint))
    commands.append((demo_project, ["vertexai", "run-once", "--no-wait"]))
    env = subprocess_env(KEDRO_VERTEX_ANONYMOUS_CREDENTIALS="1", KEDRO_VERTEX_POLL_INTERVAL="0.05")
    *refused, local_run, result = kedro_batch(commands, env=env)
    assert local_run.returncode == 0, local_run.stderr[-3000:]
    notes = [line for line in local_run.stderr.splitlines() if "mean nothing on backend 'local'" in line]
    assert len(notes) == 1, local_run.stderr
    assert (local / "data" / "02_intermediate" / "houses_clean.parquet").is_file()
    for bad_result, (_, text) in zip(refused, BAD_CASES, strict=True):
        assert_one_line_error(bad_result, text)

    assert result.returncode == 0, result.stderr
    (create,) = fake.calls("POST", r"/pipelineJobs$")  # the refused ones sent nothing
    assert create["path"].startswith("/v1beta1/projects/demo-gcp/locations/europe-west1/")
    body = create["body"]
    assert body["preflightValidations"] is True
    assert body["runtimeConfig"]["defaultRuntime"] == {
        "persistentResourceRuntimeDetail": {
            "persistentResourceName": "projects/demo-gcp/locations/europe-west1/persistentResources/kedro-pool",
            "taskResourceUnavailableTimeoutBehavior": 1,  # FAIL
        }
    }
    spec = body["pipelineSpec"]
    launcher = spec["deploymentSpec"]["executors"]["exec-model-train-model"]["container"]
    assert launcher["command"][-1] == "google_cloud_pipeline_components.container.v1.custom_job.launcher"
    inputs = spec["components"]["comp-model-train-model"]["inputDefinitions"]["parameters"]
    (pool,) = inputs["worker_pool_specs"]["defaultValue"]
    assert pool["machine_spec"] == {"machine_type": "n2-highmem-16"}
    assert pool["disk_spec"] == {"boot_disk_size_gb": 200, "boot_disk_type": "pd-ssd"}
    assert pool["container_spec"]["image_uri"] == "europe-docker.pkg.dev/demo-gcp/images/demo-project:1"
    assert "--node=model.train_model" in pool["container_spec"]["args"]
    # the CustomJob runs on the job's persistent resource: GCPC's placeholder, resolved by Vertex AI
    assert inputs["persistent_resource_id"]["defaultValue"] == "{{$.pipeline_persistent_resource_id}}"
    # the other tasks stay container tasks
    assert spec["deploymentSpec"]["executors"]["exec-clean-houses"]["container"]["command"][-1] == (
        "kedro_vertex_runner.entrypoint"
    )
    assert fake.unknown == []


def test_kubeflow_warns_that_it_ignores_the_vertex_runtime(caplog: pytest.LogCaptureFixture) -> None:
    raw = {
        "image": IMAGE,
        "root": "test-bucket/root",
        "backend": "kubeflow",
        "persistent_resource": "kedro-pool",
        "preflight_validations": True,
    }
    with caplog.at_level("WARNING"):
        validate_config({"host": "https://kubeflow.example.com/pipeline", "run_config": raw})
    warnings = [r.getMessage() for r in caplog.records if "ignores it" in r.getMessage()]
    assert warnings == [
        "Warning: vertexai.yml: run_config.persistent_resource: backend 'kubeflow' ignores it: a Vertex AI runtime; "
        "KFP runs tasks on the cluster",
        "Warning: vertexai.yml: run_config.preflight_validations: backend 'kubeflow' ignores it: a Vertex AI check; "
        "KFP has none",
    ]
