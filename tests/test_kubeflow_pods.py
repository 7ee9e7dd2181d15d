"""Kubernetes pod settings on Kubeflow Pipelines (``run_config.kubeflow.pod`` and ``.ttl``): compiled exactly as
``kfp-kubernetes`` compiles the same settings, the grouping rule, the other backends, the Kedro Kubeflow plugin's
keys and every bad input. What reaches KFP's API through the real ``kfp.Client`` is in test_kubeflow_backend.py."""

from __future__ import annotations

import json
import logging
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.config import OmegaConfigLoader
from kedro.pipeline import Pipeline, node

from kedro_vertex_runner.compiler import CompileRequest, compile_spec
from kedro_vertex_runner.compiler.platform import PLATFORM_SPEC_KEY
from kedro_vertex_runner.compiler.spec import write_spec
from kedro_vertex_runner.config import ConfigError, load_config, validate_config
from kedro_vertex_runner.errors import PluginError

IMAGE = "registry.example.com/demo:1"
# every key, as a GPU task on a private cluster needs them
POD: dict[str, Any] = {
    "node_selector": {"cloud.google.com/gke-nodepool": "gpu-pool"},
    "tolerations": [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoExecute", "toleration_seconds": 30},
    ],
    "affinity": [
        {"match_expressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
        {"match_expressions": [{"key": "spot", "operator": "DoesNotExist"}], "weight": 10},
    ],
    "labels": {"team": "ml", "app.kubernetes.io/part-of": "demo"},
    "annotations": {"example.com/owner": "ml team <ml@example.com>"},
    "image_pull_secrets": ["regcred", "mirror-cred"],
    "image_pull_policy": "Always",
    "secrets_as_env": {
        "DB_PASSWORD": {"secret": "db-credentials", "key": "password"},
        "DB_USER": {"secret": "db-credentials", "key": "user"},
        "API_TOKEN": {"secret": "api", "key": "token"},
    },
    "secrets_as_volume": [{"secret": "gcp-key", "mount_path": "/var/secrets/gcp"}],
    "config_maps_as_env": {"FEATURE_FLAGS": {"config_map": "flags", "key": "flags.json"}},
    "volumes": [{"pvc": "shared-data", "mount_path": "/data"}, {"pvc": "models", "mount_path": "/models"}],
    "shm_size": "2Gi",
}


def step(*values: Any) -> int:
    return 1


def kubeflow_config(pod: dict[str, Any] | None = None, ttl: int | None = None, **run_config: Any) -> Any:
    kubeflow: dict[str, Any] = {"pod": pod or {}}
    if ttl is not None:
        kubeflow["ttl"] = ttl
    raw = {"image": IMAGE, "root": "gs://kfp-bucket/runs", "backend": "kubeflow", "kubeflow": kubeflow, **run_config}
    return validate_config({"host": "http://127.0.0.1:1", "run_config": raw})


def compile_(pipeline: Pipeline, config: Any) -> dict[str, Any]:
    return compile_spec(CompileRequest(pipeline=pipeline, config=config))


def kfp_kubernetes_reference(path: Path) -> Path:
    """The same settings through kfp's own compiler and ``kfp.kubernetes``, one call per setting."""
    from kfp import compiler, dsl, kubernetes

    @dsl.container_component
    def train():  # type: ignore[no-untyped-def]  # kfp reads the annotations: none here
        return dsl.ContainerSpec(image=IMAGE, command=["python"])

    @dsl.pipeline(name="reference", pipeline_config=dsl.PipelineConfig(ttl_seconds_after_finished=3600))
    def reference():  # type: ignore[no-untyped-def]
        task = train()
        kubernetes.add_node_selector(task, label_key="cloud.google.com/gke-nodepool", label_value="gpu-pool")
        kubernetes.add_toleration(task, key="nvidia.com/gpu", operator="Exists", effect="NoSchedule")
        kubernetes.add_toleration(
            task, key="dedicated", operator="Equal", value="ml", effect="NoExecute", toleration_seconds=30
        )
        kubernetes.add_node_affinity(task, match_expressions=[{"key": "zone", "operator": "In", "values": ["a", "b"]}])
        kubernetes.add_node_affinity(task, match_expressions=[{"key": "spot", "operator": "DoesNotExist"}], weight=10)
        kubernetes.add_pod_label(task, "team", "ml")
        kubernetes.add_pod_label(task, "app.kubernetes.io/part-of", "demo")
        kubernetes.add_pod_annotation(task, "example.com/owner", "ml team <ml@example.com>")
        kubernetes.set_image_pull_secrets(task, ["regcred", "mirror-cred"])
        kubernetes.set_image_pull_policy(task, "Always")
        kubernetes.use_secret_as_env(
            task, secret_name="db-credentials", secret_key_to_env={"password": "DB_PASSWORD", "user": "DB_USER"}
        )
        kubernetes.use_secret_as_env(task, secret_name="api", secret_key_to_env={"token": "API_TOKEN"})
        kubernetes.use_secret_as_volume(task, secret_name="gcp-key", mount_path="/var/secrets/gcp")
        kubernetes.use_config_map_as_env(
            task, config_map_name="flags", config_map_key_to_env={"flags.json": "FEATURE_FLAGS"}
        )
        kubernetes.mount_pvc(task, pvc_name="shared-data", mount_path="/data")
        kubernetes.mount_pvc(task, pvc_name="models", mount_path="/models")
        kubernetes.empty_dir_mount(task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit="2Gi")

    compiler.Compiler().compile(reference, str(path))
    return path


# ------------------------------------------------------------------------------------------------------------------
# compiled as kfp-kubernetes compiles them


def test_every_key_compiles_as_kfp_kubernetes_compiles_it_and_kfp_client_reads_it(tmp_path: Path) -> None:
    from google.protobuf import json_format
    from kfp.client.client import _extract_pipeline_yaml

    pipeline = Pipeline([node(step, "raw", "model", name="train_model", tags=["gpu"])])
    spec = compile_(pipeline, kubeflow_config({"gpu": POD}, ttl=3600))
    ours = spec[PLATFORM_SPEC_KEY]["platforms"]["kubernetes"]
    reference = kfp_kubernetes_reference(tmp_path / "reference.yaml")
    theirs = list(yaml.safe_load_all(reference.read_text()))[1]["platforms"]["kubernetes"]

    [(label, executor)] = ours["deploymentSpec"]["executors"].items()
    assert label == spec["components"]["comp-train-model"]["executorLabel"]
    expected = theirs["deploymentSpec"]["executors"]["exec-train"]
    assert sorted(executor) == sorted(expected)
    for field in expected:  # field by field, for a readable failure
        assert executor[field] == expected[field], field
    assert ours["pipelineConfig"] == theirs["pipelineConfig"] == {"resourceTtlOnCompletion": 3600}

    # compile -o x.yaml: KFP's two documents, read by kfp.Client as kfp's own file is
    written = write_spec(spec, tmp_path / "pipeline.yaml")
    pipeline_doc, platform_doc = yaml.safe_load_all(written.read_text())
    assert PLATFORM_SPEC_KEY not in pipeline_doc and pipeline_doc["deploymentSpec"] == spec["deploymentSpec"]
    assert platform_doc == spec[PLATFORM_SPEC_KEY]
    read, kfp_read = _extract_pipeline_yaml(str(written)), _extract_pipeline_yaml(str(reference))
    as_dict = json_format.MessageToDict(read.platform_spec)["platforms"]["kubernetes"]
    kfp_dict = json_format.MessageToDict(kfp_read.platform_spec)["platforms"]["kubernetes"]
    assert as_dict["deploymentSpec"]["executors"][label] == kfp_dict["deploymentSpec"]["executors"]["exec-train"]
    assert as_dict["pipelineConfig"] == kfp_dict["pipelineConfig"]
    # -o x.json: the same content, as KFP's API takes a pipeline with a platform spec
    as_json = json.loads(write_spec(spec, tmp_path / "pipeline.json").read_text())
    assert as_json == {"pipeline_spec": pipeline_doc, "platform_spec": platform_doc}
    # secrets are named, never turned into plain environment values
    assert not any(
        item["name"] in POD["secrets_as_env"] for item in spec["deploymentSpec"]["executors"][label]["container"]["env"]
    )


def test_without_pod_settings_the_spec_is_as_before(tmp_path: Path) -> None:
    pipeline = Pipeline([node(step, "raw", "model", name="train_model")])
    plain = compile_(pipeline, kubeflow_config())
    other_nodes = compile_(pipeline, kubeflow_config({"evaluate": {"shm_size": "1Gi"}}))
    assert PLATFORM_SPEC_KEY not in plain and plain == other_nodes
    assert len(list(yaml.safe_load_all(write_spec(plain, tmp_path / "p.yaml").read_text()))) == 1
    only_ttl = compile_(pipeline, kubeflow_config(ttl=600))
    assert only_ttl[PLATFORM_SPEC_KEY] == {
        "platforms": {"kubernetes": {"pipelineConfig": {"resourceTtlOnCompletion": 600}}}
    }


def test_node_beats_tag_beats_default_key_by_key() -> None:
    pipeline = Pipeline(
        [
            node(step, "raw", "a", name="prepare"),
            node(step, "a", "b", name="train", tags=["gpu"]),
            node(step, "b", "c", name="evaluate", tags=["gpu"]),
        ]
    )
    pod = {
        "__default__": {"image_pull_secrets": ["regcred"], "labels": {"team": "ml"}},
        "gpu": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}], "labels": {"pool": "gpu"}},
        "evaluate": {"labels": {"pool": "cpu"}},
    }
    spec = compile_(pipeline, kubeflow_config(pod, grouping="none"))
    executors = spec[PLATFORM_SPEC_KEY]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    pull = [{"secretName": "regcred", "secretNameParameter": {"runtimeValue": {"constant": "regcred"}}}]
    assert executors["exec-prepare"] == {"imagePullSecret": pull, "podMetadata": {"labels": {"team": "ml"}}}
    assert executors["exec-train"]["podMetadata"] == {"labels": {"pool": "gpu"}}  # a mapping is replaced whole
    assert executors["exec-train"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    assert executors["exec-evaluate"]["podMetadata"] == {"labels": {"pool": "cpu"}}
    assert executors["exec-evaluate"]["imagePullSecret"] == pull and "tolerations" in executors["exec-evaluate"]


# ------------------------------------------------------------------------------------------------------------------
# grouping


def test_nodes_with_different_pod_settings_never_share_a_task() -> None:
    chain = Pipeline(
        [
            node(step, "raw", "a", name="load"),
            node(step, "a", "b", name="clean"),
            node(step, "b", "c", name="train", tags=["gpu"]),
            node(step, "c", "d", name="evaluate", tags=["gpu"]),
        ]
    )
    plain = compile_(chain, kubeflow_config(grouping="chains"))
    assert len(plain["deploymentSpec"]["executors"]) == 1  # one chain, one task
    pod = {"gpu": {"node_selector": {"pool": "gpu"}, "shm_size": "1Gi"}}
    for grouping in ("chains", "makespan"):
        spec = compile_(chain, kubeflow_config(pod, grouping=grouping))
        executors = spec["deploymentSpec"]["executors"]
        assert len(executors) == 2, grouping
        platform = spec[PLATFORM_SPEC_KEY]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        # the merged task of train and evaluate carries the settings once; load + clean carry none
        [(label, settings)] = platform.items()
        assert "--node=train" in " ".join(executors[label]["container"]["args"])
        assert "--node=evaluate" in " ".join(executors[label]["container"]["args"])
        assert settings["nodeSelector"] == {"labels": {"pool": "gpu"}}
    # the same settings written twice (by node name and by tag) are the same settings: one task
    same = {"clean": {"node_selector": {"pool": "gpu"}}, "__default__": {"node_selector": {"pool": "gpu"}}}
    assert len(compile_(chain, kubeflow_config(same, grouping="chains"))["deploymentSpec"]["executors"]) == 1


def test_a_grouping_that_mixes_pod_settings_is_one_line() -> None:
    tagged = Pipeline(
        [
            node(step, "raw", "a", name="clean", tags=["group.prep"]),
            node(step, "a", "b", name="train", tags=["group.prep", "gpu"]),
        ]
    )
    with pytest.raises(PluginError) as info:
        compile_(tagged, kubeflow_config({"gpu": {"node_selector": {"pool": "gpu"}}}, grouping="tags"))
    message = str(info.value)
    assert "\n" not in message and "different run_config.kubeflow.pod settings (clean; train)" in message
    assert "change run_config.grouping" in message


def test_mounts_colliding_only_after_merging_are_one_line() -> None:
    pipeline = Pipeline([node(step, "raw", "a", name="train", tags=["gpu"])])
    pod = {
        "__default__": {"volumes": [{"pvc": "shared-data", "mount_path": "/data"}]},
        "gpu": {"secrets_as_volume": [{"secret": "gcp-key", "mount_path": "/data/key"}]},
    }
    with pytest.raises(PluginError) as info:
        compile_(pipeline, kubeflow_config(pod))
    assert str(info.value) == (
        "run_config.kubeflow.pod, for node 'train': mount path '/data/key' of secret gcp-key collides with '/data' "
        "of volume shared-data: give each its own path"
    )


# ------------------------------------------------------------------------------------------------------------------
# other backends


def test_vertex_refuses_pod_settings_in_one_line() -> None:
    raw = {"image": IMAGE, "root": "gs://b/runs", "kubeflow": {"pod": {"__default__": {"shm_size": "1Gi"}}}}
    with pytest.raises(ConfigError) as info:
        validate_config({"project_id": "my-project", "region": "europe-west1", "run_config": raw})
    assert str(info.value).startswith(
        "vertexai.yml: run_config.kubeflow.pod: Vertex AI runs no Kubernetes pods you can place: remove the key"
    )
    config = validate_config(
        {
            "project_id": "my-project",
            "region": "europe-west1",
            "host": "http://127.0.0.1:1",
            "run_config": {**raw, "backend": "kubeflow"},
        }
    )
    with pytest.raises(ConfigError) as switched:
        config.with_backend("vertex")  # --runner-params backend=vertex
    assert "run_config.kubeflow.pod: Vertex AI runs no Kubernetes pods" in str(switched.value)


def test_local_backend_compiles_no_platform_spec() -> None:
    raw = {
        "image": IMAGE,
        "root": "runs",
        "backend": "local",
        "kubeflow": {"pod": {"__default__": {"shm_size": "1Gi"}}, "ttl": 60},
    }
    spec = compile_(Pipeline([node(step, "raw", "a", name="train")]), validate_config({"run_config": raw}))
    assert PLATFORM_SPEC_KEY not in spec


# ------------------------------------------------------------------------------------------------------------------
# GPUs: a count and a Kubernetes extended resource name, as kfp's set_accelerator_type / set_accelerator_limit


def kfp_accelerator_reference(path: Path) -> dict[str, Any]:
    """Each executor's ``resources`` as kfp's own compiler writes them for GPU requests on Kubernetes."""
    from kfp import compiler, dsl

    @dsl.container_component
    def train():  # type: ignore[no-untyped-def]  # kfp reads the annotations: none here
        return dsl.ContainerSpec(image=IMAGE, command=["python"])

    @dsl.pipeline(name="reference")
    def reference():  # type: ignore[no-untyped-def]
        train().set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(2)
        train().set_accelerator_type("amd.com/gpu").set_accelerator_limit(1)

    compiler.Compiler().compile(reference, str(path))
    executors = yaml.safe_load(path.read_text())["deploymentSpec"]["executors"]
    return {label: executor["container"]["resources"] for label, executor in executors.items()}


def test_a_gpu_request_compiles_as_kfp_set_accelerator_compiles_it(tmp_path: Path) -> None:
    pipeline = Pipeline(
        [
            node(step, "raw", "a", name="prepare"),
            node(step, "a", "b", name="train", tags=["gpu"]),
            node(step, "b", "c", name="tune", tags=["gpu"]),
            node(step, "c", "d", name="evaluate"),
        ]
    )
    resources = {
        "gpu": {"gpu": 2},  # a count alone: nvidia.com/gpu
        "tune": {"accelerator": "nvidia.com/gpu"},  # the same type written out, with the tag's count
        "evaluate": {"accelerator": "amd.com/gpu"},  # one, unless gpu says otherwise
    }
    theirs = kfp_accelerator_reference(tmp_path / "reference.yaml")
    nvidia, amd = theirs["exec-train"], theirs["exec-train-2"]
    assert nvidia["accelerator"]["resourceType"] == "nvidia.com/gpu"  # what is compared below is kfp's layout
    spec = compile_(pipeline, kubeflow_config(resources=resources, grouping="none"))
    ours = {
        label: executor["container"].get("resources") for label, executor in spec["deploymentSpec"]["executors"].items()
    }
    assert ours["exec-prepare"] is None
    for label, expected in (("exec-train", nvidia), ("exec-tune", nvidia), ("exec-evaluate", amd)):
        assert sorted(ours[label]["accelerator"]) == sorted(expected["accelerator"]), label
        for field in expected["accelerator"]:  # field by field, for a readable failure
            assert ours[label]["accelerator"][field] == expected["accelerator"][field], (label, field)
        assert ours[label] == expected, label
    # kfp.Client reads the request from the compiled file as it reads kfp's own
    from google.protobuf import json_format
    from kfp.client.client import _extract_pipeline_yaml

    def read(path: Path) -> list[Any]:
        executors = json_format.MessageToDict(_extract_pipeline_yaml(str(path)).pipeline_spec)["deploymentSpec"][
            "executors"
        ]
        return sorted((e["container"].get("resources", {}) for e in executors.values()), key=str)

    assert read(write_spec(spec, tmp_path / "ours.yaml")) == sorted([nvidia, nvidia, amd, {}], key=str)
    assert read(tmp_path / "reference.yaml") == sorted([nvidia, amd], key=str)
    # train and tune ask for the same GPUs: makespan may run them in one task, which keeps the request
    merged = compile_(pipeline, kubeflow_config(resources=resources))
    requests = [e["container"].get("resources") for e in merged["deploymentSpec"]["executors"].values()]
    assert nvidia in requests and amd in requests
    # the local backend runs no GPU and takes either form, so a file written for kubeflow or vertex runs here
    local = {**resources, "prepare": {"accelerator": "NVIDIA_TESLA_T4"}}
    raw = {"image": IMAGE, "root": "runs", "backend": "local", "resources": local, "grouping": "none"}
    spec = compile_(pipeline, validate_config({"run_config": raw}))
    assert spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"] == nvidia


def test_the_docs_gpu_node_pool_example_requests_a_gpu_on_the_pool() -> None:
    page = (Path(__file__).parents[1] / "docs" / "kubeflow.md").read_text()
    example = page.split("## Kubeflow: placing pods", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    raw = {"image": IMAGE, "root": "gs://kfp-bucket/runs", **yaml.safe_load(example)["run_config"]}
    spec = compile_(
        Pipeline([node(step, "raw", "a", name="train", tags=["gpu"])]),
        validate_config({"host": "http://127.0.0.1:1", "run_config": raw}),
    )
    assert spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]["accelerator"] == {
        "count": "1",
        "resourceCount": "1",
        "resourceType": "nvidia.com/gpu",
        "type": "nvidia.com/gpu",
    }
    pod = spec[PLATFORM_SPEC_KEY]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    assert pod["nodeSelector"] == {"labels": {"cloud.google.com/gke-nodepool": "gpu-pool"}}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


@pytest.mark.parametrize(
    ("backend", "entry", "expected"),
    [
        (
            "kubeflow",
            {"accelerator": "NVIDIA_TESLA_T4"},
            "run_config.resources.train.accelerator: NVIDIA_TESLA_T4 is a Vertex AI accelerator type, which Kubeflow "
            "Pipelines would ask Kubernetes for as a resource no node has: write nvidia.com/gpu instead and choose "
            "the model with run_config.kubeflow.pod.train.node_selector, e.g. {cloud.google.com/gke-accelerator: "
            "nvidia-tesla-t4} on GKE",
        ),
        ("kubeflow", {"accelerator": "TPU_V5_LITEPOD"}, "write google.com/tpu instead and choose the model with"),
        (
            "vertex",
            {"accelerator": "nvidia.com/gpu", "gpu": 2},
            "run_config.resources.train.accelerator: nvidia.com/gpu is a Kubernetes resource name, which Vertex AI "
            "does not take: write a Vertex AI accelerator type such as NVIDIA_TESLA_T4 or NVIDIA_L4 instead, or run "
            "on backend 'kubeflow'",
        ),
        ("kubeflow", {"accelerator": "nvidia.com/"}, "'nvidia.com/' is not a Kubernetes extended resource name"),
        ("kubeflow", {"accelerator": "/gpu"}, "'/gpu' is not a Kubernetes extended resource name: write <domain>/"),
        ("kubeflow", {"accelerator": "Nvidia.com/gpu"}, "'Nvidia.com/gpu' is not a Kubernetes extended resource"),
        ("kubeflow", {"accelerator": "nvidia.com/gpu/x"}, "'nvidia.com/gpu/x' is not a Kubernetes extended"),
        ("local", {"accelerator": "nvidia.com/g pu"}, "'nvidia.com/g pu' is not a Kubernetes extended resource"),
        ("kubeflow", {"accelerator": "kubernetes.io/gpu"}, "is one of Kubernetes' own resources, not an accelerator"),
        ("kubeflow", {"accelerator": "GPU"}, "nor, for backend kubeflow, a Kubernetes resource name such as nvidia"),
        ("kubeflow", {"gpu": -1}, "run_config.resources.train.gpu: must be greater than or equal to 0, got -1"),
        ("kubeflow", {"gpu": 17}, "run_config.resources.train.gpu: must be less than or equal to 16, got 17"),
        (
            "kubeflow",
            {"gpu": 0, "accelerator": "amd.com/gpu"},
            "run_config.resources.train.gpu: 0 contradicts accelerator amd.com/gpu: remove `accelerator`",
        ),
    ],
)
def test_bad_gpu_requests_are_one_line(backend: str, entry: dict[str, Any], expected: str) -> None:
    top: dict[str, Any] = {
        "kubeflow": {"host": "http://127.0.0.1:1"},
        "vertex": {"project_id": "my-project", "region": "europe-west1"},
        "local": {},
    }[backend]
    raw = {"image": IMAGE, "root": "gs://b/runs", "backend": backend, "resources": {"train": entry}}
    with pytest.raises(ConfigError) as info:
        validate_config({**top, "run_config": raw})
    message = str(info.value)
    assert "\n" not in message and message.startswith("vertexai.yml: run_config.resources.train."), message
    assert expected in message, message


def test_a_gpu_request_follows_the_backend_it_is_switched_to() -> None:
    from kedro_vertex_runner.config import check_against_pipeline

    pipeline = Pipeline([node(step, "raw", "a", name="train", tags=["gpu"])])
    kubeflow = kubeflow_config(resources={"gpu": {"gpu": 1}, "train": {"accelerator": "amd.com/gpu"}})
    check_against_pipeline(kubeflow, pipeline)
    with pytest.raises(ConfigError) as info:  # --runner-params backend=vertex
        kubeflow.model_copy(update={"project_id": "my-project", "region": "europe-west1"}).with_backend("vertex")
    assert str(info.value) == (
        "vertexai.yml: run_config.resources.train.accelerator: amd.com/gpu is a Kubernetes resource name, which "
        "Vertex AI does not take: write a Vertex AI accelerator type such as NVIDIA_TESLA_T4 or NVIDIA_L4 instead, or "
        "run on backend 'kubeflow' (the job runs on backend 'vertex')"
    )
    # on vertex a count alone still needs a Vertex AI accelerator type
    count_only = kubeflow_config(resources={"gpu": {"gpu": 1}}).model_copy(
        update={"project_id": "my-project", "region": "europe-west1"}
    )
    with pytest.raises(ConfigError, match=r"run_config.resources.gpu.gpu: a GPU count needs an accelerator type"):
        check_against_pipeline(count_only.with_backend("vertex"), pipeline)


# ------------------------------------------------------------------------------------------------------------------
# bad input: one line each, naming the key


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        ({"labels": {"-team": "ml"}}, "labels.-team: label key '-team' is not a Kubernetes key"),
        ({"labels": {"team": "m l"}}, "labels.team: label value 'm l' is not a Kubernetes label value"),
        ({"labels": {"x" * 64: "a"}}, "is not a Kubernetes key"),
        ({"annotations": {"Example.com/owner": "me"}}, "annotation key 'Example.com/owner' is not a Kubernetes key"),
        ({"node_selector": {"pool/": "gpu"}}, "node selector key 'pool/' is not a Kubernetes key"),
        ({"tolerations": [{"key": "gpu", "operator": "Equals"}]}, "tolerations.0.operator: expected one of 'Equal'"),
        ({"tolerations": [{"key": "gpu", "effect": "NoSchedul"}]}, "tolerations.0.effect: expected one of"),
        ({"tolerations": [{"key": "gpu", "operator": "Exists", "value": "x"}]}, "operator 'Exists' matches any value"),
        ({"tolerations": [{"operator": "Equal", "value": "x"}]}, "a toleration without a key must use operator"),
        ({"affinity": [{"match_expressions": [{"key": "k", "operator": "Within"}]}]}, "operator: expected one of 'In'"),
        ({"affinity": [{"weight": 5}]}, "a node affinity term needs match_expressions or match_fields"),
        ({"shm_size": "1GB"}, "shm_size: '1GB' is not a Kubernetes quantity above zero"),
        ({"shm_size": "0"}, "shm_size: '0' is not a Kubernetes quantity above zero"),
        ({"image_pull_secrets": ["Reg_Cred"]}, "secret name 'Reg_Cred' is not a Kubernetes object name"),
        ({"image_pull_policy": "always"}, "image_pull_policy: expected one of 'Always'"),
        ({"secrets_as_env": {"DB": {"secret": "db.", "key": "pw"}}}, "secret name 'db.' is not a Kubernetes object"),
        ({"secrets_as_env": {"1DB": {"secret": "db", "key": "pw"}}}, "environment variable name '1DB'"),
        ({"secrets_as_env": {"DB": {"secret": "db", "key": "p/w"}}}, "key 'p/w' is not a Secret or ConfigMap key"),
        ({"config_maps_as_env": {"F": {"config_map": "Flags", "key": "f"}}}, "config map name 'Flags'"),
        ({"volumes": [{"pvc": "Shared", "mount_path": "/data"}]}, "persistent volume claim name 'Shared'"),
        ({"volumes": [{"pvc": "shared", "mount_path": "data"}]}, "mount path 'data' is not absolute"),
        ({"volumes": [{"pvc": "shared", "mount_path": "/a/../b"}]}, "mount path '/a/../b' may contain neither"),
        (
            {"volumes": [{"pvc": "a", "mount_path": "/data"}, {"pvc": "b", "mount_path": "/data/"}]},
            "mount path '/data' of volume b collides with '/data' of volume a",
        ),
        (
            {"shm_size": "1Gi", "secrets_as_volume": [{"secret": "s", "mount_path": "/dev/shm"}]},
            "mount path '/dev/shm' of shm_size collides with '/dev/shm' of secret s",
        ),
        ({"node_selectors": {"pool": "gpu"}}, "node_selectors: unknown key"),
    ],
)
def test_bad_pod_settings_are_one_line_naming_the_key(pod: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        kubeflow_config({"train": pod})
    message = str(info.value)
    assert "\n" not in message and message.startswith("vertexai.yml: run_config.kubeflow.pod.train"), message
    assert expected in message, message


@pytest.mark.parametrize("ttl", [0, -1, 2**31, "1d", 1.5, True])
def test_bad_ttl_is_one_line(ttl: Any) -> None:
    with pytest.raises(ConfigError) as info:
        kubeflow_config(ttl=ttl)
    assert str(info.value).startswith("vertexai.yml: run_config.kubeflow.ttl: expected a whole number of seconds")


# ------------------------------------------------------------------------------------------------------------------
# the Kedro Kubeflow plugin's kubeflow.yml

KEDRO_KUBEFLOW = """\
host: https://kubeflow.example.com/pipeline
run_config:
  image: registry.example.com/demo:1
  image_pull_policy: IfNotPresent
  root: gs://kfp-bucket/runs
  experiment_name: demo
  ttl: 604800
  resources:
    __default__: {cpu: 1, memory: 1Gi}
    model.train_model: {cpu: 4, nvidia.com/gpu: 1}
  tolerations:
    __default__:
    - {key: dedicated, operator: Equal, value: ml-ops, effect: NoSchedule}
  node_selectors:
    model.train_model: {cloud.google.com/gke-nodepool: gpu-pool}
  affinity:
    model.train_model:
      node_affinity:
        required_during_scheduling_ignored_during_execution:
          nodeSelectorTerms:
          - matchExpressions: [{key: gpu, operator: In, values: ["true"]}]
        preferred_during_scheduling_ignored_during_execution:
        - weight: 20
          preference:
            matchExpressions: [{key: zone, operator: In, values: [a]}]
  extra_volumes:
    model.train_model:
    - mount_path: /dev/shm
      volume:
        name: shared_memory
        empty_dir: {cls: V1EmptyDirVolumeSource, params: {medium: Memory, size_limit: 4Gi}}
    - mount_path: /data
      volume:
        name: data
        persistent_volume_claim: {cls: V1PersistentVolumeClaimVolumeSource, params: {claim_name: shared-data}}
    - mount_path: /var/secrets/gcp
      volume:
        name: key
        secret: {cls: V1SecretVolumeSource, params: {secret_name: gcp-key}}
"""


def _conf(tmp_path: Path, text: str, name: str = "kubeflow.yml") -> OmegaConfigLoader:
    (tmp_path / "conf" / "base").mkdir(parents=True, exist_ok=True)
    (tmp_path / "conf" / "local").mkdir(exist_ok=True)
    (tmp_path / "conf" / "base" / name).write_text(textwrap.dedent(text))
    return OmegaConfigLoader(conf_source=str(tmp_path / "conf"), base_env="base", default_run_env="local")


def test_a_kedro_kubeflow_config_is_read_with_one_warning_per_translated_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="kedro_vertex_runner"):
        config = load_config(_conf(tmp_path, KEDRO_KUBEFLOW))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    where = "conf/base/kubeflow.yml"
    assert warnings == [
        f"{where}: read as this plugin's configuration (written for kedro-kubeflow, and there is no vertexai.yml): "
        "rename it to vertexai.yml once its keys are translated",
        f"{where}: run_config.image_pull_policy is a kedro-kubeflow key: write "
        "run_config.kubeflow.pod.__default__.image_pull_policy: IfNotPresent instead",
        f"{where}: run_config.ttl is a kedro-kubeflow key: write run_config.kubeflow.ttl: 604800 instead",
        f"{where}: run_config.node_selectors.model.train_model is a kedro-kubeflow key: write "
        "run_config.kubeflow.pod.model.train_model.node_selector: {cloud.google.com/gke-nodepool: gpu-pool} instead",
        f"{where}: run_config.tolerations.__default__ is a kedro-kubeflow key: write "
        "run_config.kubeflow.pod.__default__.tolerations: [{key: dedicated, operator: Equal, value: ml-ops, effect: "
        "NoSchedule}] instead",
        f"{where}: run_config.affinity.model.train_model is a kedro-kubeflow key: write "
        "run_config.kubeflow.pod.model.train_model.affinity: [{match_expressions: [{key: gpu, operator: In, values: "
        "['true']}]}, {match_expressions: [{key: zone, operator: In, values: [a]}], weight: 20}] instead",
        f"{where}: run_config.extra_volumes.model.train_model is a kedro-kubeflow key: write "
        "run_config.kubeflow.pod.model.train_model.shm_size: 4Gi, run_config.kubeflow.pod.model.train_model.volumes: "
        "[{pvc: shared-data, mount_path: /data}], run_config.kubeflow.pod.model.train_model.secrets_as_volume: "
        "[{secret: gcp-key, mount_path: /var/secrets/gcp}] instead",
        f"{where}: run_config.resources.model.train_model.nvidia.com/gpu is a kedro-vertexai key: write "
        "run_config.resources.model.train_model.gpu instead",
    ]
    run_config = config.run_config
    assert run_config.backend == "kubeflow" and run_config.kubeflow.ttl == 604800
    pod = run_config.kubeflow.pod
    assert pod["__default__"].image_pull_policy == "IfNotPresent"
    assert pod["__default__"].tolerations[0].value == "ml-ops"
    train = pod["model.train_model"]
    assert train.node_selector == {"cloud.google.com/gke-nodepool": "gpu-pool"} and train.shm_size == "4Gi"
    assert [(t.weight, t.match_expressions[0].key) for t in train.affinity] == [(None, "gpu"), (20, "zone")]
    assert [(v.pvc, v.mount_path) for v in train.volumes] == [("shared-data", "/data")]
    assert run_config.resources["model.train_model"].gpu == 1


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "volume: {size: 1Gi, access_modes: [ReadWriteOnce]}",
            "run_config.volume: kedro-kubeflow's per-run data volume has no equivalent",
        ),
        (
            "affinity: {train: {pod_anti_affinity: {x: 1}}}",
            "run_config.affinity.train.pod_anti_affinity: has no equivalent (KFP places pods by node affinity only)",
        ),
        (
            "extra_volumes: {train: [{mount_path: /dev/shm, volume: {name: shm, empty_dir: {cls: V1EmptyDirVolumeSource,"
            " params: {medium: Memory}}}}]}",
            "run_config.extra_volumes.train.0.volume.empty_dir: a memory-backed /dev/shm needs a size here: write "
            "run_config.kubeflow.pod.train.shm_size: 1Gi",
        ),
        (
            "extra_volumes: {train: [{mount_path: /x, volume: {name: x, host_path: {cls: V1HostPathVolumeSource, "
            "params: {path: /x}}}}]}",
            "run_config.extra_volumes.train.0.volume.host_path: has no equivalent",
        ),
        (
            "tolerations: {train: [{key: a, operator: Same, effect: NoSchedule}]}",
            "run_config.kubeflow.pod.train.tolerations.0.operator: expected one of 'Equal', 'Exists'",
        ),
        (
            "image_pull_policy: Always\n  kubeflow: {pod: {__default__: {image_pull_policy: Never}}}",
            "run_config.image_pull_policy: contradicts run_config.kubeflow.pod.__default__.image_pull_policy ('Never')",
        ),
    ],
)
def test_kedro_kubeflow_keys_without_an_equivalent_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    text = "host: https://kfp.example.com\nrun_config:\n  image: i:1\n  root: gs://b/r\n  " + extra + "\n"
    with pytest.raises(ConfigError) as info:
        load_config(_conf(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message and message.startswith("conf/base/kubeflow.yml: ") and expected in message, message


def test_kedro_kubeflow_keys_in_vertexai_yml_for_vertex_keep_their_old_meaning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    text = "project_id: my-project\nregion: europe-west1\nrun_config:\n  image: i:1\n  root: b/r\n  ttl: 60\n"
    with caplog.at_level(logging.WARNING, logger="kedro_vertex_runner"):
        config = load_config(_conf(tmp_path, text, "vertexai.yml"))
    assert config.run_config.kubeflow.ttl is None
    assert any("run_config.ttl is ignored: it has no meaning on Vertex AI" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------------------------------------
# what the user sees on the terminal


@pytest.mark.slow
def test_commands_with_pod_settings(demo_project: Path, tmp_path: Path) -> None:
    """In one batch of kedro commands: a kedro-kubeflow ``kubeflow.yml`` compiles to KFP's two documents, its
    ``nvidia.com/gpu: 1`` a GPU request; the Vertex backend refuses pod settings and a Kubernetes GPU name in one
    line, the kubeflow backend a Vertex AI accelerator type; a bad key is one line and nothing is written; a local
    run says once that it ignores pod settings and runs with a GPU count alone (kubeflow's form)."""
    from conftest import kedro_batch

    projects = {}
    for case in ("kubeflow_yml", "vertex", "bad", "local", "vertex_gpu", "kubeflow_t4"):
        projects[case] = shutil.copytree(demo_project, tmp_path / case / "demo_project")
    for case in ("kubeflow_yml", "kubeflow_t4"):
        (projects[case] / "conf" / "base" / "vertexai.yml").unlink()
    (projects["kubeflow_yml"] / "conf" / "base" / "kubeflow.yml").write_text(KEDRO_KUBEFLOW)
    t4 = KEDRO_KUBEFLOW.replace("nvidia.com/gpu: 1", "gpu: 1, accelerator: NVIDIA_TESLA_T4")
    (projects["kubeflow_t4"] / "conf" / "base" / "kubeflow.yml").write_text(t4)
    gpu = "    preprocessing:          # tag of clean_houses, add_features, select_features\n      memory: 4Gi\n"
    # a count alone (kubeflow's form) runs on the local backend, which runs no GPU
    for case, request in (("local", "gpu: 1"), ("vertex_gpu", "accelerator: nvidia.com/gpu")):
        path = projects[case] / "conf" / "base" / "vertexai.yml"
        assert gpu in path.read_text()
        path.write_text(path.read_text().replace(gpu, f"{gpu}      {request}\n"))
    pod = "  kubeflow:\n    pod:\n      __default__:\n        secrets_as_env: {DB_PASSWORD: {secret: db, key: password}}\n"
    for case in ("vertex", "local"):
        with (projects[case] / "conf" / "base" / "vertexai.yml").open("a") as handle:
            handle.write(pod)
    with (projects["bad"] / "conf" / "base" / "vertexai.yml").open("a") as handle:
        handle.write("  kubeflow:\n    pod:\n      __default__:\n        volumes: [{pvc: data, mount_path: data}]\n")
    out = tmp_path / "out"
    results = dict(
        zip(
            projects,
            kedro_batch(
                [
                    (projects["kubeflow_yml"], ["vertexai", "compile", "-o", str(out / "kfp.yaml")]),
                    (
                        projects["vertex"],
                        ["vertexai", "compile", "-o", str(out / "vertex.json"), "--backend", "vertex"],
                    ),
                    (projects["bad"], ["vertexai", "compile", "-o", str(out / "bad.json"), "--backend", "kubeflow"]),
                    (projects["local"], ["run", "--runner=VertexRunner", "--nodes=clean_houses"]),
                    (
                        projects["vertex_gpu"],
                        ["vertexai", "compile", "-o", str(out / "vgpu.json"), "--backend", "vertex"],
                    ),
                    (projects["kubeflow_t4"], ["vertexai", "compile", "-o", str(out / "t4.yaml")]),
                ]
            ),
            strict=True,
        )
    )
    ok = results["kubeflow_yml"]
    assert ok.returncode == 0, ok.stderr
    text = " ".join((ok.stdout + ok.stderr).split())  # Kedro's log lines may wrap
    assert "run_config.tolerations.__default__ is a kedro-kubeflow key" in text
    pipeline_doc, platform_doc = yaml.safe_load_all((out / "kfp.yaml").read_text())
    executors = platform_doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {component["executorLabel"] for component in pipeline_doc["components"].values()}
    assert platform_doc["platforms"]["kubernetes"]["pipelineConfig"] == {"resourceTtlOnCompletion": 604800}
    # kedro-kubeflow's `nvidia.com/gpu: 1` requests one GPU, as kfp's set_accelerator_type/limit writes it
    train = [
        executor["container"]
        for executor in pipeline_doc["deploymentSpec"]["executors"].values()
        if "--node=model.train_model" in " ".join(executor["container"]["args"])
    ]
    assert [container["resources"]["accelerator"] for container in train] == [
        {"count": "1", "resourceCount": "1", "resourceType": "nvidia.com/gpu", "type": "nvidia.com/gpu"}
    ]
    for case, expected in (
        ("vertex", "Error: conf/base/vertexai.yml: run_config.kubeflow.pod: Vertex AI runs no Kubernetes pods"),
        ("bad", "Error: conf/base/vertexai.yml: run_config.kubeflow.pod.__default__.volumes.0.mount_path: mount path"),
        (
            "vertex_gpu",
            "Error: conf/base/vertexai.yml: run_config.resources.preprocessing.accelerator: nvidia.com/gpu is a "
            "Kubernetes resource name, which Vertex AI does not take: write a Vertex AI accelerator type such as",
        ),
        (
            "kubeflow_t4",
            "Error: conf/base/kubeflow.yml: run_config.resources.model.train_model.accelerator: NVIDIA_TESLA_T4 is a "
            "Vertex AI accelerator type, which Kubeflow Pipelines would ask Kubernetes for as a resource no node has: "
            "write nvidia.com/gpu instead",
        ),
    ):
        result = results[case]
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr, result.stderr
        assert len(errors) == 1 and errors[0].startswith(expected), result.stderr
    assert not any(out.joinpath(name).exists() for name in ("vertex.json", "bad.json", "vgpu.json", "t4.yaml"))
    local = results["local"]
    assert local.returncode == 0, local.stderr
    lines = (local.stdout + local.stderr).splitlines()
    assert sum("run_config.kubeflow.pod is ignored" in line for line in lines) == 1
    assert "password" not in (local.stdout + local.stderr).replace("DB_PASSWORD", "")


def test_a_pod_entry_naming_no_node_or_tag_is_one_line() -> None:
    from kedro_vertex_runner.config import check_against_pipeline

    pipeline = Pipeline([node(step, "raw", "a", name="train", tags=["gpu"])])
    check_against_pipeline(kubeflow_config({"gpu": {"shm_size": "1Gi"}, "train": {}}), pipeline)
    with pytest.raises(ConfigError) as info:
        check_against_pipeline(kubeflow_config({"gpus": {"shm_size": "1Gi"}}), pipeline)
    assert str(info.value) == (
        "vertexai.yml: run_config.kubeflow.pod.gpus: names no node or tag of pipeline '__default__' (did you mean 'gpu'?)"
    )


def test_kedro_kubeflow_run_keys_are_translated_or_dropped_with_one_line_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    text = """\
    host: https://kfp.example.com
    run_config:
      image: i:1
      root: gs://b/r
      run_name: demo-run
      wait_for_completion: false
      store_kedro_outputs_as_kfp_artifacts: true
      node_merge_strategy: none
      max_cache_staleness: P0D
      retry_policy:
        __default__: {num_retries: 4, backoff_duration: 60s, backoff_factor: 2}
        wait_for_partition: null
    """
    with caplog.at_level(logging.WARNING, logger="kedro_vertex_runner"):
        config = load_config(_conf(tmp_path, text))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING][1:]
    where = "conf/base/kubeflow.yml: run_config"
    assert warnings == [
        f"{where}.run_name is a kedro-kubeflow key and is ignored: runs are named after the compiled pipeline and the "
        "time; remove it",
        f"{where}.wait_for_completion is a kedro-kubeflow key and is ignored: `kedro run --runner=VertexRunner` waits "
        "for the run, `kedro vertexai run-once --no-wait` does not; remove it",
        f"{where}.store_kedro_outputs_as_kfp_artifacts is a kedro-kubeflow key and is ignored: datasets pass between "
        "tasks through run_config.root, not KFP artifacts; remove it",
        f"{where}.retry_policy.__default__ is a kedro-kubeflow key: write run_config.resources.__default__.retries: "
        "{max_retries: 4, backoff: 60s, backoff_factor: 2} instead",
        f"{where}.node_merge_strategy is a kedro-kubeflow key: write `grouping: none` instead",
        f"{where}.max_cache_staleness is a kedro-kubeflow key: write run_config.caching: false instead",
    ]
    run_config = config.run_config
    assert run_config.grouping == "none" and run_config.caching is False
    retries = run_config.resources["__default__"].retries
    assert retries is not None and (retries.max_retries, retries.backoff, retries.backoff_factor) == (4, 60, 2)
    for extra, expected in (
        ("node_merge_strategy: full", "run_config.node_merge_strategy: 'full' has no equivalent"),
        ("max_cache_staleness: P1D", "run_config.max_cache_staleness: 'P1D' has no equivalent"),
        ("retry_policy: {x: {num_retries: 1, policy: Always}}", "run_config.retry_policy.x.policy: has no equivalent"),
    ):
        body = "host: https://kfp.example.com\nrun_config:\n  image: i:1\n  root: gs://b/r\n  " + extra + "\n"
        with pytest.raises(ConfigError) as info:
            load_config(_conf(tmp_path, body))
        assert str(info.value).startswith(f"conf/base/kubeflow.yml: {expected}"), str(info.value)
