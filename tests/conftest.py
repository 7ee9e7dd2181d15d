"""Shared fixtures: a clean environment for every test, a private copy of the example project, and a real GCS
JSON API server (gcp-storage-emulator) on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

# set before gcsfs or google-auth are imported anywhere in the test process
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
os.environ["NO_GCE_CHECK"] = "true"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "demo_project"
PYTHON = sys.executable
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_server(process: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a server a test started: SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def kedro_cmd(*args: str) -> list[str]:
    """``kedro …`` from the test's own environment (never a kedro found elsewhere on PATH)."""
    return [str(BIN / "kedro"), *args]


def installed_metadata(directory: Path) -> str:
    """The package's metadata as ``pip install`` writes it from pyproject.toml (the entry points in particular),
    in ``directory``; returns a PYTHONPATH with it first, where Kedro then finds this plugin's entry points (the
    shared environment's metadata may be older than pyproject.toml)."""
    import tomllib

    from kedro_vertex_runner import __version__

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    info = directory / f"kedro_vertex_runner-{__version__}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: kedro-vertex-runner\nVersion: {__version__}\n")
    groups = {**project["entry-points"], "console_scripts": project["scripts"]}
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n" for group, eps in groups.items()
        )
    )
    return os.pathsep.join([str(directory), os.environ.get("PYTHONPATH", "")])


def assert_one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    """``result`` failed with one ``Error:`` line containing ``text`` on stderr, and no traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and text in errors[0], result.stderr


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
            "NO_GCE_CHECK": "true",
            "DO_NOT_TRACK": "1",
            "PYTHONUNBUFFERED": "1",
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "COLUMNS": "200",
        }
    )
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    env.update(extra)
    return env


# Runs several `kedro …` commands, one after another, in ONE Python process through Kedro's own CLI entry point
# (`kedro.framework.cli.main`): each command gets its own working directory, environment, stdout/stderr and exit
# code, as a separate `kedro` process would, without paying Kedro's and its plugins' imports (~5 s) each time.
_KEDRO_BATCH = """
import contextlib, io, json, os, sys
from kedro.framework.cli import main

results = []
for cwd, args, extra in json.loads(sys.argv[1]):
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    os.environ.update(extra)
    os.chdir(cwd)
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = ["kedro", *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException as exc:  # shown as a separate process would show it
            import traceback
            traceback.print_exc()
            code = 1
    os.chdir(saved_cwd)
    os.environ.clear()
    os.environ.update(saved_env)
    results.append([code, out.getvalue(), err.getvalue()])
print(json.dumps(results))
"""


def kedro_batch(
    commands: list[tuple[Path, list[str]]], env: dict[str, str] | None = None, timeout: float = 400
) -> list[subprocess.CompletedProcess]:
    """``kedro ARGS`` in each ``(cwd, ARGS)`` of ``commands``, in one subprocess (see :data:`_KEDRO_BATCH`);
    for commands that fail before any task starts, where what is asserted is the message and the exit code.
    Warm start is off: nothing of one command outlives it."""
    import json

    payload = json.dumps([[str(cwd), list(args), {"KEDRO_VERTEX_WARM_START": "0"}] for cwd, args in commands])
    done = subprocess.run(
        [PYTHON, "-c", _KEDRO_BATCH, payload],
        env=env or subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return [
        subprocess.CompletedProcess(["kedro", *args], code, out, err)
        for (_, args), (code, out, err) in zip(commands, results, strict=True)
    ]


def _copy_project(source: Path, target: Path) -> Path:
    shutil.copytree(
        source,
        target,
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "mlruns", "*.db", "vertex_runs", ".venv"),
    )
    return target


def _clean_example(tmp_path: Path) -> Path:
    """A copy of the example as a fresh clone has it: only git-tracked files, no outputs of earlier runs."""
    import subprocess

    target = tmp_path / "demo_project"
    tracked = subprocess.run(
        ["git", "ls-files", "-z", "--", "."], cwd=EXAMPLE, capture_output=True, text=True, check=False
    )
    if tracked.returncode != 0 or not tracked.stdout:  # not a git checkout (e.g. an sdist): copy what is there
        return _copy_project(EXAMPLE, target)
    for name in filter(None, tracked.stdout.split("\0")):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(EXAMPLE / name, target / name)
    return target


@pytest.fixture
def demo_project(tmp_path: Path) -> Path:
    """A private copy of examples/demo_project as a fresh clone has it (no outputs of earlier runs)."""
    return _clean_example(tmp_path)


@pytest.fixture(scope="session")
def _demo_outputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import subprocess

    project = _clean_example(tmp_path_factory.mktemp("demo_outputs"))
    subprocess.run(kedro_cmd("run"), cwd=project, env=subprocess_env(), capture_output=True, check=True, timeout=300)
    return project


@pytest.fixture
def demo_project_with_outputs(_demo_outputs: Path, tmp_path: Path) -> Path:
    """A copy of the example after one plain `kedro run`: every catalog dataset exists, as after a user's run."""
    return _copy_project(_demo_outputs, tmp_path / "with_outputs" / "demo_project")


@pytest.fixture(scope="session")
def gcs_emulator():
    """A real GCS JSON API server on 127.0.0.1 with bucket ``test-bucket``; yields its base URL."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="test-bucket")
    server.start()
    url = f"http://127.0.0.1:{port}"
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = url
    try:
        yield url
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous


@pytest.fixture(scope="module")
def fake():
    """A fake Vertex AI REST server (tests/fake_vertex.py) on 127.0.0.1, one per test module."""
    from fake_vertex import FakeVertex

    server = FakeVertex().start()
    try:
        yield server
    finally:
        server.stop()


def without_kfp_login(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Reach Kubeflow Pipelines without a login: no IAP, Dex or Google credentials in the environment, no gcloud
    credentials of the machine, nor a ~/.config/kfp/context.json."""
    for name in ("IAP_CLIENT_ID", "DEX_USERNAME", "DEX_PASSWORD", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture
def kfp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A fake Kubeflow Pipelines API (tests/fake_kfp.py) on 127.0.0.1, reached without a login."""
    from fake_kfp import FakeKfp

    without_kfp_login(monkeypatch, tmp_path)
    server = FakeKfp().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fake_logging():
    """A fake Cloud Logging REST server (tests/fake_logging.py) on 127.0.0.1, one per test module."""
    from fake_logging import FakeLogging

    server = FakeLogging().start()
    try:
        yield server
    finally:
        server.stop()


def task_by_node(spec: dict, node_name: str) -> str:
    """Name of the compiled task whose args run ``node_name``."""
    from kedro_vertex_runner.task.contract import TaskContract

    for name, executor in spec["deploymentSpec"]["executors"].items():
        if node_name in TaskContract.from_args(executor["container"]["args"]).nodes:
            return name.removeprefix("exec-")
    raise AssertionError(f"no task runs {node_name!r}")


def failure_policy(job_body: dict) -> str:
    """The job's ``runtimeConfig.failurePolicy`` by name (the REST client sends enums as numbers)."""
    from google.cloud.aiplatform_v1 import PipelineFailurePolicy

    value = job_body["runtimeConfig"]["failurePolicy"]
    return PipelineFailurePolicy(value).name if isinstance(value, int) else value


# vertexai.yml of the example against the fake Vertex AI and the storage emulator; tests append their own
# run_config keys and fill in the fake's endpoint with .format()
VERTEX_CONFIG_HEAD = """\
project_id: demo-gcp
region: europe-west1
api_endpoint: {endpoint}
run_config:
  image: europe-docker.pkg.dev/demo-gcp/images/demo-project:1
  root: gs://test-bucket/root
  backend: vertex
"""
