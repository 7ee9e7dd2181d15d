"""Catalog datasets as KFP artifacts: the compiled artifacts against what kfp itself compiles for components with
the same outputs, the rule of which dataset becomes which artifact type (on a real Kedro catalog), and the executor
output a real task writes, read back with kfp's own types.

kfp reads component annotations at run time: no ``from __future__ import annotations`` in this module.
"""

import json
import pickle
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import PYTHON, subprocess_env
from fake_kfp import FakeKfp
from kedro.pipeline import Pipeline, node

from kedro_vertex_runner.compiler import CompileRequest, compile_spec
from kedro_vertex_runner.config import validate_config
from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.project import catalog_artifacts
from kedro_vertex_runner.task.artifacts import DATASET, METRICS, MODEL, artifact_name

ENTRYPOINT = [PYTHON, "-m", "kedro_vertex_runner.entrypoint"]


def step(*values):
    return 1


def two(*values):
    return 1, 2


# prepare → train → evaluate → use: `features`, `model` and `metrics` are catalog datasets with a location (a
# dataset, a model, metrics), `scratch` and `final` are undeclared and stored under <root>/<run id>/
PIPELINE = Pipeline(
    [
        node(step, "raw", "features", name="prepare"),
        node(step, "features", "model", name="train"),
        node(two, ["features", "model"], ["metrics", "scratch"], name="evaluate"),
        node(step, "scratch", "final", name="use"),
    ]
)
DECLARED = frozenset({"raw", "features", "model", "metrics"})
KINDS = {"features": DATASET, "model": MODEL, "metrics": METRICS}


def config(backend="vertex", **run_config):
    run_config = {"image": "img:1", "root": "gs://bucket/runs", "grouping": "none", "backend": backend, **run_config}
    if backend == "kubeflow":
        return validate_config({"host": "http://127.0.0.1:1", "run_config": run_config})
    return validate_config({"project_id": "proj-1", "region": "europe-west1", "run_config": run_config})


def compile_(backend="vertex", run_config=None, **request_args):
    args = {"declared": DECLARED, "artifacts": KINDS, **request_args}
    return compile_spec(CompileRequest(pipeline=PIPELINE, config=config(backend, **(run_config or {})), **args))


def kfp_reference() -> dict:
    """What kfp 2.17 compiles for container components with the same inputs and outputs."""
    import tempfile

    from kfp import compiler, dsl
    from kfp.dsl import Dataset, Input, Metrics, Model, Output

    def spec():
        return dsl.ContainerSpec(image="img:1", command=["python"], args=["--executor-input", "{{$}}"])

    @dsl.container_component
    def prepare(features: Output[Dataset]):
        return spec()

    @dsl.container_component
    def train(features: Input[Dataset], model: Output[Model]):
        return spec()

    @dsl.container_component
    def evaluate(features: Input[Dataset], model: Input[Model], metrics: Output[Metrics], scratch: Output[Dataset]):
        return spec()

    @dsl.container_component
    def use(scratch: Input[Dataset], final: Output[Dataset]):
        return spec()

    @dsl.pipeline(name="reference")
    def pipeline():
        a = prepare()
        b = train(features=a.outputs["features"])
        c = evaluate(features=a.outputs["features"], model=b.outputs["model"])
        use(scratch=c.outputs["scratch"])

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reference.yaml"
        compiler.Compiler().compile(pipeline, str(path))
        return yaml.safe_load(path.read_text())


def parse_with_kfp(spec: dict):
    from google.protobuf.json_format import ParseDict
    from kfp.pipeline_spec import pipeline_spec_pb2

    return ParseDict(spec, pipeline_spec_pb2.PipelineSpec())


def tasks_of(spec: dict) -> dict:
    root = spec["root"]["dag"]["tasks"]
    if "exit-handler-1" in root:
        return spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    return root


def test_artifacts_match_what_kfp_compiles_and_parse_in_every_spec_form():
    reference = kfp_reference()
    for backend in ("vertex", "kubeflow"):
        spec = compile_(backend)
        parse_with_kfp(spec)
        tasks = tasks_of(spec)
        for name in ("prepare", "train", "evaluate", "use"):
            ours, theirs = spec["components"][f"comp-{name}"], reference["components"][f"comp-{name}"]
            for side in ("inputDefinitions", "outputDefinitions"):
                assert ours.get(side, {}).get("artifacts") == theirs.get(side, {}).get("artifacts"), (name, side)
            expected = reference["root"]["dag"]["tasks"][name].get("inputs", {}).get("artifacts")
            assert tasks[name].get("inputs", {}).get("artifacts") == expected, name
            # the executor input reaches the task as kfp passes it: the placeholder on an item of its own
            args = spec["deploymentSpec"]["executors"][f"exec-{name}"]["container"]["args"]
            assert args[args.index("--executor-input") + 1] == "{{$}}"
        if backend == "kubeflow":  # the job's ids still arrive as runtimeValue inputs beside the artifacts
            assert tasks["use"]["inputs"]["parameters"]["job_uuid"] == {
                "runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}
            }
    # inside the exit handler's sub-DAG too, and kfp still parses it
    on_exit = Pipeline([node(step, "params:x", None, name="cleanup")])
    spec = compile_(run_config={"on_exit_pipeline": "x"}, on_exit=on_exit)
    parse_with_kfp(spec)
    assert tasks_of(spec)["use"]["inputs"]["artifacts"]["scratch"]["taskOutputArtifact"]["producerTask"] == "evaluate"


def test_no_artifacts_when_the_catalog_is_unknown_or_nothing_is_stored():
    spec = compile_(declared=None, artifacts={})
    assert not any("outputDefinitions" in c for c in spec["components"].values())
    assert all("--executor-input" not in e["container"]["args"] for e in spec["deploymentSpec"]["executors"].values())
    # a grouped task declares what it writes, and takes as inputs only what other tasks wrote
    spec = compile_(run_config={"grouping": "chains"})
    # `evaluate` and `use` share a task: `scratch` stays inside it, what the task writes and reads is declared
    component = spec["components"]["comp-evaluate"]
    assert set(component["outputDefinitions"]["artifacts"]) == {"metrics", "final"}
    assert set(component["inputDefinitions"]["artifacts"]) == {"features", "model"}
    parse_with_kfp(spec)


def test_which_catalog_datasets_become_which_artifacts():
    from kedro.io import DataCatalog

    catalog = DataCatalog.from_config(
        {
            "table": {"type": "pandas.CSVDataset", "filepath": "gs://bucket/table.csv"},
            "local_table": {"type": "pandas.CSVDataset", "filepath": "data/table.csv"},
            "tf_model": {"type": "tensorflow.TensorFlowModelDataset", "filepath": "gs://bucket/model"},
            "pickled": {
                "type": "pickle.PickleDataset",
                "filepath": "gs://bucket/regressor.pkl",
                "metadata": {"kedro-vertex-runner": {"artifact": "model"}},
            },
            "scores": {
                "type": "json.JSONDataset",
                "filepath": "data/metrics.json",
                "metadata": {"kedro-vertex-runner": {"artifact": "metrics"}},
            },
            "mlflow_metric": {"type": "kedro_mlflow.io.metrics.MlflowMetricDataset"},
            "hidden": {
                "type": "pandas.CSVDataset",
                "filepath": "gs://bucket/hidden.csv",
                "metadata": {"kedro-vertex-runner": {"artifact": "none"}},
            },
            "in_memory": {"type": "MemoryDataset"},
            "{name}_part": {
                "type": "partitions.PartitionedDataset",
                "path": "s3://b/{name}",
                "dataset": "pickle.PickleDataset",
            },
        }
    )
    names = ["table", "local_table", "tf_model", "pickled", "scores", "mlflow_metric", "hidden", "in_memory", "a_part"]
    assert catalog_artifacts(catalog, names, remote_only=True) == {
        "table": DATASET,
        "tf_model": MODEL,
        "pickled": MODEL,
        "scores": METRICS,
        "mlflow_metric": METRICS,
        "a_part": DATASET,
    }
    # on the local backend a local path is a location too
    assert catalog_artifacts(catalog, ["local_table"], remote_only=False) == {"local_table": DATASET}
    bad = DataCatalog.from_config(
        {
            "x": {
                "type": "json.JSONDataset",
                "filepath": "x.json",
                "metadata": {"kedro-vertex-runner": {"artifact": "plot"}},
            }
        }
    )
    with pytest.raises(PluginError, match=r"^catalog entry 'x': metadata.kedro-vertex-runner.artifact: 'plot' is not"):
        catalog_artifacts(bad, ["x"], remote_only=False)


def test_a_task_writes_the_executor_output_kfp_reads(demo_project_with_outputs: Path, tmp_path: Path):
    """A real task (two independent nodes, each in a process of its own) writes executor_output.json where the
    executor input says, read back with kfp's proto and artifact types: every URI empty (KFP's launcher then keeps
    the one its driver assigned under the pipeline root), the dataset's real location in the metadata, the metrics'
    values; and a pointer file at each artifact's local path (``gs://`` → ``<mount>/gcs/``), best effort."""
    from google.protobuf.json_format import Parse
    from kfp import dsl
    from kfp.dsl.executor import Executor, create_artifact_instance
    from kfp.pipeline_spec import pipeline_spec_pb2

    from kedro_vertex_runner.task.artifacts import MOUNT_ENV

    project = demo_project_with_outputs
    root = tmp_path / "root"
    mount = tmp_path / "mount"  # stands in for the container's / (its /gcs/ gcsfuse mount)
    output_file = tmp_path / "outputs" / "executor_output.json"
    # the metrics' pointer cannot be written: a file sits where its folder would be
    (mount / "gcs").mkdir(parents=True)
    (mount / "gcs" / "blocked").write_text("")

    def runtime(key: str, schema: str, bucket: str = "p") -> dict:
        uri = f"gs://{bucket}/run-1/task/{key}"
        return {"artifacts": [{"name": key, "type": {"schemaTitle": schema}, "uri": uri, "metadata": {}}]}

    summary, metrics = artifact_name("raw_data_summary"), artifact_name("model_metrics")
    executor_input = {
        "outputs": {
            "artifacts": {summary: runtime(summary, DATASET), metrics: runtime(metrics, METRICS, "blocked")},
            "outputFile": str(output_file),
        }
    }
    done = subprocess.run(
        [
            *ENTRYPOINT,
            "--node=summarize_raw_data",
            "--node=model.evaluate_model",
            "--run-id=run-1",
            f"--root={root}",
            "--task-runner=processes",
            "--executor-input",
            json.dumps(executor_input),
        ],
        cwd=project,
        env=subprocess_env(**{MOUNT_ENV: str(mount)}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    warnings = [line for line in done.stderr.splitlines() if "Warning: cannot write the artifact pointer" in line]
    assert len(warnings) == 1 and str(mount / "gcs" / "blocked" / "run-1") in warnings[0], done.stderr[-3000:]
    text = output_file.read_text()
    parsed = Parse(text, pipeline_spec_pb2.ExecutorOutput())  # the launcher's own type for this file
    assert set(parsed.artifacts) == {summary, metrics}
    # an empty URI: the launcher's merge (`if len(src.Uri) > 0 { dst.Uri = src.Uri }`) keeps the driver's
    assert all(parsed.artifacts[key].artifacts[0].uri == "" for key in (summary, metrics))
    data = json.loads(text)
    raw = create_artifact_instance({"type": {"schemaTitle": DATASET}, **data["artifacts"][summary]["artifacts"][0]})
    assert raw.uri == "" and raw.metadata["kedro_dataset"] == "raw_data_summary"  # kfp's reader takes it as is

    def merged(key: str) -> dsl.Artifact:
        """The artifact as the launcher records it: the driver's URI, the executor output's metadata."""
        driver = executor_input["outputs"]["artifacts"][key]["artifacts"][0]
        ours = data["artifacts"][key]["artifacts"][0]
        return create_artifact_instance({**driver, "uri": ours["uri"] or driver["uri"], "metadata": ours["metadata"]})

    stored = merged(summary)
    data_file = root / "run-1" / "raw_data_summary.pkl"
    assert isinstance(stored, dsl.Dataset) and stored.uri == f"gs://p/run-1/task/{summary}"
    assert stored.metadata == {"kedro_dataset": "raw_data_summary", "data_uri": str(data_file)}
    assert pickle.loads(data_file.read_bytes())  # the data itself, untouched at its real location
    # the pointer file at the artifact's local path, as kfp maps it (`Artifact.path`: /gcs/…), under the mount
    assert stored.path == f"/gcs/p/run-1/task/{summary}"
    assert json.loads((mount / stored.path.lstrip("/")).read_text()) == stored.metadata
    read = merged(metrics)
    assert isinstance(read, dsl.Metrics)
    assert read.metadata == json.loads((project / "data" / "08_reporting" / "metrics.json").read_text())

    # kfp's own executor, for a lightweight component logging a metric, writes the same structure
    def component(scores: dsl.Output[dsl.Metrics]):
        scores.log_metric("r2", 0.5)

    kfp_file = tmp_path / "kfp" / "executor_output.json"
    scores = {"name": "scores", "type": {"schemaTitle": METRICS}, "uri": str(tmp_path / "kfp" / "scores")}
    kfp_input = {"outputs": {"artifacts": {"scores": {"artifacts": [scores]}}, "outputFile": str(kfp_file)}}
    Executor(kfp_input, component).execute()
    theirs = json.loads(kfp_file.read_text())["artifacts"]["scores"]["artifacts"][0]
    assert set(theirs) == set(data["artifacts"][metrics]["artifacts"][0]) == {"name", "uri", "metadata"}
    assert theirs["metadata"] == {"r2": 0.5}


def test_artifact_local_paths_are_kfps():
    """Where a task writes an artifact's pointer file: KFP's mapping of its URI, under the overridable mount."""
    from kfp import dsl

    from kedro_vertex_runner.task.artifacts import MOUNT_ENV, local_path

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(MOUNT_ENV, raising=False)
        patch.delenv("ARTIFACT_LOCAL_PATH", raising=False)
        for uri in ("gs://b/r/t/a", "minio://b/r/t/a", "s3://b/r/t/a", "/abs/run/artifacts/t/a"):
            assert local_path(uri) == dsl.Artifact(uri=uri).path
        patch.setenv(MOUNT_ENV, "/tmp/m/")
        assert local_path("s3://b/r/t/a") == "/tmp/m/s3/b/r/t/a"
        # no local path: the pointer is skipped
        assert [local_path(uri) for uri in ("oci://reg/model", "https://x/y", "relative/a", "")] == [None] * 4


def test_kfp_client_submits_the_kubeflow_spec_with_its_artifacts(kfp: FakeKfp):
    """The Kubeflow form (job ids as runtimeValue inputs) with artifacts goes through kfp.Client unchanged."""
    from kedro_vertex_runner.backends import get_backend
    from kedro_vertex_runner.backends.base import JobRequest, SilentReporter

    spec = compile_("kubeflow")
    run_config = {"image": "img:1", "root": "gs://bucket/runs", "backend": "kubeflow"}
    plugin_config = validate_config({"host": kfp.base_url, "run_config": run_config})
    kfp.script_next_run({"state": "RUNNING"})
    get_backend("kubeflow", plugin_config, SilentReporter()).run(JobRequest(spec=spec), wait=False)
    (request,) = kfp.requests_to("POST", r"/apis/v2beta1/runs")
    sent = json.loads(request["body"])["pipeline_spec"]
    assert sent["components"]["comp-use"] == spec["components"]["comp-use"]
    assert sent["root"]["dag"]["tasks"]["use"]["inputs"] == spec["root"]["dag"]["tasks"]["use"]["inputs"]
    assert kfp.unknown == []
