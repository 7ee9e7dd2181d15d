"""A real MLflow tracking server for the tests: ``mlflow server`` from this venv on 127.0.0.1, sqlite backend.

A test module that needs it names this module in ``pytest_plugins``. Started once per session,
waited for with a ``/health`` poll, always terminated.
"""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import BIN, free_port, stop_server, subprocess_env

STARTUP_TIMEOUT = 90.0


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a running ``mlflow server`` (sqlite store, local artifact root)."""
    home = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    log = (home / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--default-artifact-root",
            str(home / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        # no background job runner (huey consumers): the tests use tracking only, and it slows start-up
        env=subprocess_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false"),
        cwd=home,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, home / "server.log")
        yield url
    finally:
        stop_server(process, timeout=15)
        log.close()


def _wait_healthy(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"mlflow server did not answer /health within {STARTUP_TIMEOUT:.0f}s")
