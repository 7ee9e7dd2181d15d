"""Compile, with google-cloud-pipeline-components (GCPC), a container component wrapped as a Vertex AI CustomJob
with the machine settings the tests use, and write the compiled PipelineSpec to ``gcpc_custom_job.json`` (with the
GCPC and kfp versions inside, under ``_generated_by``).

Run it in a virtualenv of its own (GCPC pins kfp):
    python3 -m venv /tmp/gcpc && /tmp/gcpc/bin/pip install google-cloud-pipeline-components
    /tmp/gcpc/bin/python tests/golden/make_gcpc_custom_job.py
tests/test_machines.py compares the task kedro-vertex-runner compiles for the same settings with this file.
"""

import json
import tempfile
from importlib.metadata import version
from pathlib import Path

from google_cloud_pipeline_components.v1.custom_job import create_custom_training_job_from_component
from kfp import compiler, dsl

IMAGE = "europe-docker.pkg.dev/demo/images/demo:1"


@dsl.container_component
def train(alpha: float):
    return dsl.ContainerSpec(
        image=IMAGE, command=["python", "-m", "kedro_vertex_runner.entrypoint"], args=["--x=1", alpha]
    )


@dsl.container_component
def score():
    return dsl.ContainerSpec(image=IMAGE, command=["python", "-m", "kedro_vertex_runner.entrypoint"], args=["--y=2"])


@dsl.container_component
def fit():
    return dsl.ContainerSpec(image=IMAGE, command=["python", "-m", "kedro_vertex_runner.entrypoint"], args=["--z=3"])


# the settings of tests/test_machines.py's machine-typed nodes
train_job = create_custom_training_job_from_component(
    train,
    display_name="train",
    machine_type="a2-highgpu-1g",
    accelerator_type="NVIDIA_TESLA_A100",
    accelerator_count=1,
    boot_disk_type="pd-ssd",
    boot_disk_size_gb=200,
    strategy="SPOT",
    env=[{"name": "DO_NOT_TRACK", "value": "1"}],
)
score_job = create_custom_training_job_from_component(
    score,
    display_name="score",
    machine_type="n2-highmem-32",
    boot_disk_type="pd-ssd",
    boot_disk_size_gb=100,
    timeout="3600s",
    reservation_affinity_type="SPECIFIC_RESERVATION",
    reservation_affinity_key="compute.googleapis.com/reservation-name",
    reservation_affinity_values=["projects/demo/zones/europe-west4-a/reservations/big"],
    env=[{"name": "DO_NOT_TRACK", "value": "1"}],
)


fit_job = create_custom_training_job_from_component(
    fit,
    display_name="fit",
    machine_type="g2-standard-8",
    accelerator_type="NVIDIA_L4",
    accelerator_count=1,
    boot_disk_type="pd-balanced",
    boot_disk_size_gb=150,
    strategy="FLEX_START",
    max_wait_duration="7200s",
    env=[{"name": "DO_NOT_TRACK", "value": "1"}],
)


@dsl.pipeline(name="gcpc-custom-job")
def pipeline(alpha: float = 0.5) -> None:
    train_job(alpha=alpha)
    score_job()
    fit_job()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "spec.json"
        compiler.Compiler().compile(pipeline, str(out))
        spec = json.loads(out.read_text())
    spec["_generated_by"] = {
        "google-cloud-pipeline-components": version("google-cloud-pipeline-components"),
        "kfp": version("kfp"),
        "script": "tests/golden/make_gcpc_custom_job.py",
    }
    target = Path(__file__).with_name("gcpc_custom_job.json")
    target.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    print(target)
