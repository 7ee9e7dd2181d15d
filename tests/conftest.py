"""Shared fixtures: a clean environment for every test, a private copy of the example project, and a real GCS
JSON API server (gcp-storage-emulator) on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
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


def kedro_cmd(*args: str) -> list[str]:
    """``kedro …`` from the test's own environment (never a kedro found elsewhere on PATH)."""
    return [str(BIN / "kedro"), *args]


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


@pytest.fixture
def demo_project(tmp_path: Path) -> Path:
    """A private copy of examples/demo_project (data and conf included, outputs excluded)."""
    target = tmp_path / "demo_project"
    shutil.copytree(
        EXAMPLE,
        target,
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "mlruns", "*.db", "vertex_runs", ".venv"),
    )
    return target


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
