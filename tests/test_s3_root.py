"""``root: s3://bucket/path``: a real S3 server (moto's ``moto_server``) on 127.0.0.1 holds the job's data.

The example is compiled in the form Kubeflow Pipelines needs (the job's ids as task inputs) and run by the local
backend: its tasks write the datasets that cross task boundaries to the bucket and read them back, finding the
endpoint the way botocore does (``AWS_ENDPOINT_URL``). Without s3fs, an s3 root is one line.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import BIN, _clean_example, free_port, stop_server, subprocess_env
from rich.console import Console

from kedro_vertex_runner.config import check_root

BUCKET = "kedro-runs"
ROOT = f"s3://{BUCKET}/jobs"
RUN_ID = "s3-run-1"
MISSING_S3FS = f"root {ROOT}: install s3fs (pip install 'kedro-vertex-runner[s3]')"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}

COMPILE_FOR_KUBEFLOW = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro_vertex_runner.compiler import compile_spec
    from kedro_vertex_runner.compiler.spec import write_spec
    from kedro_vertex_runner.config import load_config
    from kedro_vertex_runner.project import build_request, get_pipeline

    project = Path.cwd()
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        context = session.load_context()
        config = load_config(context.config_loader).with_backend("kubeflow")
        request = build_request(context, get_pipeline("__default__"), pipeline_names=None, runtime_params=None,
                                config=config)
        write_spec(compile_spec(request), sys.argv[1])
    """
)


@pytest.fixture(scope="module")
def s3_server():
    """``moto_server`` on a free 127.0.0.1 port with bucket ``kedro-runs``; the endpoint and test credentials are in
    the environment (tasks inherit it) while the module runs. Always shut down."""
    port = free_port()
    server = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    saved = {name: os.environ.get(name) for name in [*AWS_ENV, "AWS_ENDPOINT_URL"]}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not start on {endpoint}") from None
                time.sleep(0.1)
        os.environ.update({**AWS_ENV, "AWS_ENDPOINT_URL": endpoint})
        import s3fs

        s3fs.S3FileSystem(skip_instance_cache=True).mkdir(BUCKET)
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        stop_server(server)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example with ``root: s3://kedro-runs/jobs`` and a Kubeflow Pipelines ``host`` (never contacted)."""
    project = _clean_example(tmp_path_factory.mktemp("s3"))
    config = project / "conf" / "base" / "vertexai.yml"
    text = config.read_text()
    assert "root: data/vertex_runs" in text
    text = text.replace("root: data/vertex_runs", f"root: {ROOT}")
    # `chains`: the undeclared raw_data_summary passes between two tasks through the bucket (`makespan` fuses them)
    text = text.replace("  grouping: makespan\n", "  grouping: chains\n")
    config.write_text(f"host: http://127.0.0.1:9/pipeline\n{text}")
    return project


@pytest.fixture(scope="module")
def kubeflow_run(project: Path, s3_server: str):
    """The example compiled for Kubeflow Pipelines, run by the local backend (in this process) on the s3 root."""
    from kedro_vertex_runner.backends.local import run_spec
    from kedro_vertex_runner.console import ConsoleReporter

    spec_path = project / "kubeflow.json"
    compiled = subprocess.run(
        [sys.executable, "-c", COMPILE_FOR_KUBEFLOW, str(spec_path)],
        cwd=project, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    output = io.StringIO()
    result = run_spec(
        spec_path, project_dir=project, root=ROOT, run_id=RUN_ID, max_workers=2,
        reporter=ConsoleReporter(Console(file=output, width=200, force_terminal=False)),
    )  # fmt: skip
    return json.loads(spec_path.read_text()), result, output.getvalue()


@pytest.mark.slow
def test_the_kubeflow_spec_of_the_example_passes_the_job_ids_as_inputs(kubeflow_run):
    spec, _, _ = kubeflow_run
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) > 1
    for executor in executors.values():
        args = executor["container"]["args"]
        assert not any("{{$.pipeline_job_" in arg for arg in args)
        assert "--run-id={{$.inputs.parameters['job_uuid']}}" in args
        assert f"--root={ROOT}" in args


@pytest.mark.slow
def test_the_local_backend_runs_it_with_its_data_in_the_bucket(kubeflow_run, project: Path):
    import pandas as pd
    import s3fs

    _, result, output = kubeflow_run
    assert result.succeeded, output
    assert result.run_dir == f"{ROOT}/{RUN_ID}"
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    stored = {path.rsplit("/", 1)[-1] for path in fs.find(f"{BUCKET}/jobs/{RUN_ID}")}
    # the job's ids reached every task: its data and logs sit under the run id, not a literal placeholder
    assert not fs.exists(f"{BUCKET}/jobs/{{{{$.pipeline_job_uuid}}}}")
    assert "raw_data_summary.pkl" in stored and "save_version" in stored, stored
    assert {name for name in stored if name.endswith(".log")} == {f"{task}.log" for task in result.tasks}
    # every task recorded its nodes' run times in the bucket, and the run is its pipeline's latest there
    from kedro_vertex_runner.task.timings import last_run

    assert fs.cat_file(f"{BUCKET}/jobs/timings/__default__.txt").decode().strip() == RUN_ID
    run_id, durations = last_run(ROOT, ["__default__"])
    executors = kubeflow_run[0]["deploymentSpec"]["executors"].values()
    args = [arg for e in executors if "--exit-handler" not in e["container"]["args"] for arg in e["container"]["args"]]
    assert run_id == RUN_ID and set(durations) == {arg[len("--node=") :] for arg in args if arg.startswith("--node=")}
    # what one task wrote to the bucket is what the next one read back
    raw = pd.read_csv(project / "data" / "01_raw" / "houses.csv")
    summary = pickle.loads(fs.cat_file(f"{BUCKET}/jobs/{RUN_ID}/raw_data_summary.pkl"))
    assert summary["n_rows"] == len(raw)
    report = json.loads((project / "data" / "08_reporting" / "report.json").read_text())
    assert report["raw_data"] == summary
    assert set(report["model_metrics"]) and report["model_metrics"] == json.loads(
        (project / "data" / "08_reporting" / "metrics.json").read_text()
    )
    rooms = json.loads((project / "data" / "08_reporting" / "rooms_report.json").read_text())
    counts = raw["rooms"].value_counts()
    assert rooms["houses_per_room_count"] == {str(k): int(v) for k, v in sorted(counts.items())}
    assert not (project / "s3:").exists() and not (project / "data" / "vertex_runs").exists()


BLOCK_S3FS = "import sys; sys.modules['s3fs'] = None  # as if s3fs were not installed\n"


def _without_s3fs(project: Path, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_S3FS + textwrap.dedent(code)],
        cwd=project, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.slow
def test_a_task_with_an_s3_root_and_no_s3fs_is_one_line(project: Path):
    done = _without_s3fs(
        project,
        f"""
        from kedro_vertex_runner.task.entrypoint import main
        sys.exit(main(["--node=summarize_raw_data", "--run-id=no-s3fs", "--root={ROOT}"]))
        """,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"Error: {MISSING_S3FS}"]


@pytest.mark.slow
def test_the_local_backend_with_an_s3_root_and_no_s3fs_starts_nothing(project: Path, tmp_path: Path):
    marker = tmp_path / "ran"
    done = _without_s3fs(
        project,
        f"""
        from kedro_vertex_runner.backends.local import run_spec
        from kedro_vertex_runner.errors import PluginError
        spec = {{
            "root": {{"dag": {{"tasks": {{"t": {{"taskInfo": {{"name": "t"}}, "componentRef": {{"name": "comp-t"}}}}}}}}}},
            "components": {{"comp-t": {{"executorLabel": "exec-t"}}}},
            "deploymentSpec": {{"executors": {{"exec-t": {{"container": {{
                "image": "x", "command": ["python", "-c", "open({str(marker)!r}, 'w')"]}}}}}}}},
        }}
        try:
            run_spec(spec, project_dir=".", root="{ROOT}", run_id="no-s3fs")
        except PluginError as exc:
            print(exc)
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == MISSING_S3FS
    assert not marker.exists()


@pytest.mark.parametrize("backend", ["kubeflow", "local"])
def test_an_s3_root_is_taken_by_the_backends_that_keep_data_there(backend):
    assert check_root("s3://kedro-runs/jobs", backend) == "s3://kedro-runs/jobs"
    assert check_root("s3://my.bucket-1", backend) == "s3://my.bucket-1"


@pytest.mark.parametrize(
    ("root", "message"),
    [
        ("s3://", "'s3://' names no bucket: give s3://bucket/path"),
        ("s3:///jobs", "'s3:///jobs' names no bucket: give s3://bucket/path"),
        ("s3://ab/jobs", "'s3://ab/jobs': 'ab' is not an S3 bucket name (3 to 63 lowercase letters"),
        ("s3://My_Bucket/jobs", "'My_Bucket' is not an S3 bucket name"),
        ("s3://a..b/jobs", "'a..b' is not an S3 bucket name"),
        ("s3://192.168.1.10/jobs", "'192.168.1.10' is not an S3 bucket name"),
        (f"s3://{'b' * 64}/jobs", "is not an S3 bucket name"),
    ],
)
def test_a_bad_s3_bucket_name_is_one_line(root, message):
    with pytest.raises(ValueError) as info:
        check_root(root, "kubeflow")
    assert message in str(info.value) and "\n" not in str(info.value)


def test_vertex_keeps_job_data_in_cloud_storage_only():
    with pytest.raises(ValueError, match=r"backend 'vertex' cannot keep job data in s3:// \(backend 'kubeflow' does\)"):
        check_root("s3://kedro-runs/jobs", "vertex")
