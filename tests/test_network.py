"""The launcher on a hostile network: servers that accept and never answer, credentials written into URLs, tokens
asked to travel over plain http, template references that climb out of the registry, and a compile that must not
contact the MLflow server that ``mlflow.yml`` names.

Every server here is in-process on a free 127.0.0.1 port and closed at the end.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import VERTEX_CONFIG_HEAD, _clean_example, kedro_batch, subprocess_env
from fake_http import QuietHandler
from fake_metadata import FakeMetadataServer

from kedro_vertex_runner.backends.kubeflow import auth as kfp_auth
from kedro_vertex_runner.backends.vertex.template_registry import fetch_template, template_uri, upload_template
from kedro_vertex_runner.config import validate_config
from kedro_vertex_runner.errors import PluginError

PASSWORD = "s3cr3t-Pa55"
SPEC = {"pipelineInfo": {"name": "demo-project"}, "root": {"dag": {"tasks": {"a": {}}}}, "schemaVersion": "2.1.0"}


# ----------------------------------------------------------------------------------------------------------------
# small in-process servers


@contextmanager
def silent_socket() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers a byte."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        yield hole.getsockname()[1]


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, handler: type[QuietHandler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.seen: list[dict[str, Any]] = []
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serving(handler: type[QuietHandler]) -> Iterator[_Recorder]:
    server = _Recorder(handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()


class _Record(QuietHandler):
    """Records every request (a proxy sees the full URL in the request line); answers with ``status``."""

    status = 503

    def _handle(self, method: str) -> None:
        server: Any = self.server
        server.seen.append({"method": method, "path": self.path, "headers": dict(self.headers)})
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _HealthyThenSilent(QuietHandler):
    """A KFP API that answers its health check and holds every other request until the test ends."""

    def _handle(self, method: str) -> None:
        server: Any = self.server
        server.seen.append({"method": method, "path": self.path})
        if self.path.startswith(kfp_auth.HEALTHZ):
            body = b'{"multi_user": false}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        server.release.wait(120)


# ----------------------------------------------------------------------------------------------------------------
# Kubeflow Pipelines


KFP_CONFIG = """\
host: {host}
run_config:
  backend: kubeflow
  image: registry.example.com/demo-project:1
  root: gs://kfp-bucket/runs
"""


def test_servers_that_never_answer_end_run_once_within_the_time_limit(tmp_path: Path) -> None:
    """A KFP API that answers its health check and holds every other call, and a template registry that accepts
    connections and never answers: ``run-once --no-wait`` ends after the 2 s limit with one line naming the host."""
    kfp_project = _clean_example(tmp_path / "kfp")
    registry_project = _clean_example(tmp_path / "registry")
    with serving(_HealthyThenSilent) as kfp, silent_socket() as port:
        (kfp_project / "conf" / "base" / "vertexai.yml").write_text(KFP_CONFIG.format(host=kfp.url))
        registry = f"http://127.0.0.1:{port}/demo-gcp/pipelines"
        (registry_project / "conf" / "base" / "vertexai.yml").write_text(
            VERTEX_CONFIG_HEAD.format(endpoint="127.0.0.1:9") + f"  pipeline_registry: {registry}\n"
        )
        env = subprocess_env(KEDRO_VERTEX_NETWORK_TIMEOUT="2", KEDRO_VERTEX_ANONYMOUS_CREDENTIALS="1")
        started = time.monotonic()
        kfp_run, registry_run = kedro_batch(
            [
                (kfp_project, ["vertexai", "run-once", "--no-wait"]),
                (registry_project, ["vertexai", "run-once", "--no-wait", "--template-uri", "prod"]),
            ],
            env=env,
        )
        elapsed = time.monotonic() - started
        calls = [seen["path"] for seen in kfp.seen]
    for result in (kfp_run, registry_run):
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
    assert [line for line in kfp_run.stderr.splitlines() if line.startswith("Error:")] == [
        f"Error: {kfp.url} gave no answer to getting the experiment within 2 s (KEDRO_VERTEX_NETWORK_TIMEOUT): check "
        "that it is reachable and up, or raise the limit"
    ], kfp_run.stdout + kfp_run.stderr
    assert calls[0].startswith(kfp_auth.HEALTHZ)
    assert len([call for call in calls if not call.startswith(kfp_auth.HEALTHZ)]) == 1  # held once, not retried
    assert registry_run.stderr.strip().splitlines()[-1] == (
        f"Error: {registry}/demo-project/prod gave no answer to the download within 2 s "
        "(KEDRO_VERTEX_NETWORK_TIMEOUT): check that it is reachable and up, or raise the limit"
    )
    assert elapsed < 60  # Kedro's start-up and two project loads, then 2 s each (both waited forever before)


def test_credentials_in_urls_are_refused_without_being_shown(tmp_path: Path) -> None:
    """``host:`` and the MLflow tracking URI with ``user:password@`` are refused in one line that never shows the
    password; compile with kedro-mlflow on and ``mlflow.yml`` pointing at a server contacts it not at all."""
    host_project = _clean_example(tmp_path / "host")
    (host_project / "conf" / "base" / "vertexai.yml").write_text(
        KFP_CONFIG.format(host=f"https://admin:{PASSWORD}@kubeflow.example.test/pipeline")
    )
    with serving(_Record) as mlflow_server, serving(_Record) as failing_server:
        creds_project = _mlflow_project(tmp_path / "creds", f"http://user:{PASSWORD}@127.0.0.1:9/")
        offline_project = _mlflow_project(tmp_path / "offline", mlflow_server.url)
        failing_project = _mlflow_project(tmp_path / "failing", failing_server.url)
        # one process: the first project's settings.py (kedro-mlflow on) is the one all of them see
        creds_compile, offline_compile, failing_run, host_run = kedro_batch(
            [
                (creds_project, ["vertexai", "compile", "-o", "spec.json"]),
                (offline_project, ["vertexai", "compile", "-o", "spec.json"]),
                (failing_project, ["vertexai", "run-once", "--no-wait"]),
                (host_project, ["vertexai", "run-once", "--no-wait"]),
            ],
            env=subprocess_env(KEDRO_VERTEX_NETWORK_TIMEOUT="2"),
        )
        contacted = list(mlflow_server.seen)
        asked, failing_url = len(failing_server.seen), failing_server.url

    for result in (host_run, creds_compile):
        assert result.returncode != 0
        assert PASSWORD not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    assert host_run.stderr.strip().splitlines()[-1] == (
        "Error: conf/base/vertexai.yml: host: looks like a secret (its value looks like a URL with a password): remove "
        "the 'user:password@' part and set DEX_USERNAME and DEX_PASSWORD (Dex) or IAP_CLIENT_ID instead"
    )
    assert creds_compile.stderr.strip().splitlines()[-1] == (
        "Error: server.mlflow_tracking_uri in mlflow.yml holds a user name or password in its URL, which would be "
        "shown in output and logs: remove the 'user:password@' part and set MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) instead"
    )
    assert offline_compile.returncode == 0, offline_compile.stdout + offline_compile.stderr
    assert "KEDRO_VERTEX_MLFLOW" in (offline_project / "spec.json").read_text()  # compiled with tracking on
    assert contacted == []
    # a submitting command keeps kedro-mlflow's setup: a server answering 503 is one line, after one retry
    assert failing_run.returncode != 0 and "Traceback" not in failing_run.stderr
    assert (
        failing_run.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "Error: kedro-mlflow could not set up the MLflow tracking server of mlflow.yml (MlflowException: request to "
            f"{failing_url}/api/2.0/mlflow/experiments/get-by-name failed with HTTP 503): check "
        )
    ), failing_run.stderr[-2000:]
    assert 1 <= asked <= 2


def _mlflow_project(where: Path, tracking_uri: str) -> Path:
    """The example with kedro-mlflow on and ``mlflow.yml`` pointing at ``tracking_uri``."""
    project = _clean_example(where)
    for settings in (project / "src").glob("*/settings.py"):
        lines = settings.read_text().splitlines(keepends=True)
        settings.write_text("".join(line for line in lines if not line.startswith("DISABLE_HOOKS_FOR_PLUGINS")))
    (project / "conf" / "base" / "mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: {tracking_uri}\ntracking:\n  experiment:\n    name: demo_project\n"
    )
    return project


def test_tokens_and_sessions_go_only_over_https(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through a recording proxy: no IAP token, Google token or Dex password is sent to an http:// name that is not
    this machine; each refusal is one line, said before any credential is minted or any request made."""
    with serving(_Record) as proxy, FakeMetadataServer() as metadata:
        for name, value in {**metadata.env(), "HTTP_PROXY": proxy.url, "http_proxy": proxy.url}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("NO_GCE_CHECK", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        host = "http://kubeflow.example.test/pipeline"
        with pytest.raises(PluginError) as iap:
            kfp_auth.authenticate(host, {"IAP_CLIENT_ID": "987-kfp.apps.googleusercontent.com"})
        with pytest.raises(PluginError) as dex:
            kfp_auth.authenticate(host, {"DEX_USERNAME": "user@example.com", "DEX_PASSWORD": PASSWORD})
        config = _registry_config("https://europe-west1-kfp.pkg.dev/demo-gcp/pipelines")
        with pytest.raises(PluginError) as template:
            fetch_template("http://europe-west1-kfp.pkg.dev/demo-gcp/pipelines/demo-project/prod", config)
        seen = list(proxy.seen)
        asked = list(metadata.audiences)
    expected = (
        "`host:` in vertexai.yml: http:// URL of kubeflow.example.test: a login token or session is sent only over"
    )
    assert str(iap.value).startswith(expected) and str(dex.value).startswith(expected)
    assert PASSWORD not in str(dex.value)
    assert str(template.value).startswith("template_uri: http:// URL of europe-west1-kfp.pkg.dev: your Google access")
    assert seen == [] and asked == []
    # an https:// host without credentials to send is let through
    assert kfp_auth.authenticate("https://kubeflow.example.test", {}).method == "none"


# ----------------------------------------------------------------------------------------------------------------
# the template registry


def _registry_config(url: str | None) -> Any:
    run_config = {"image": "img:1", "root": "gs://b/r"}
    if url:
        run_config["pipeline_registry"] = url
    return validate_config({"project_id": "demo-gcp", "region": "europe-west1", "run_config": run_config})


def test_a_registry_that_never_answers_is_one_line_within_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEDRO_VERTEX_ANONYMOUS_CREDENTIALS", "1")
    monkeypatch.setenv("KEDRO_VERTEX_NETWORK_TIMEOUT", "1")
    with silent_socket() as port:
        url = f"http://127.0.0.1:{port}/demo-gcp/pipelines"
        config = _registry_config(url)
        for call in (
            lambda: fetch_template(f"{url}/demo-project/prod", config),
            lambda: upload_template(SPEC, config, ["prod"]),
        ):
            started = time.monotonic()
            with pytest.raises(PluginError) as caught:
                call()
            assert time.monotonic() - started < 1 * 2 + 1.5
            assert str(caught.value).startswith(f"http://127.0.0.1:{port}/demo-gcp/pipelines")
            assert "gave no answer" in str(caught.value) and "KEDRO_VERTEX_NETWORK_TIMEOUT" in str(caught.value)


@pytest.mark.parametrize(
    "reference, message",
    [
        ("../../other/x/prod", r"^--tag '\.\./\.\./other/x/prod': expected letters"),
        ("sha256:abc", r"^template_uri 'sha256:abc': expected sha256: and 64 lower-case hex digits"),
        (
            "https://europe-west1-kfp.pkg.dev/demo-gcp/pipelines/../secrets/prod",
            r"^template_uri: https://europe-west1-kfp\.pkg\.dev/.*: path segment '\.\.' is not allowed",
        ),
        (
            "https://europe-west1-kfp.pkg.dev/demo-gcp//demo-project/prod",
            r"^template_uri: .*: an empty path segment is not allowed: expected https://<region>-kfp\.pkg\.dev/",
        ),
        (
            "https://europe-west1-kfp.pkg.dev/demo-gcp/pipelines/demo project/prod",
            r"^template_uri: .*: path segment 'demo project' is not allowed",
        ),
        (
            f"https://oauth2:{PASSWORD}@europe-west1-kfp.pkg.dev/demo-gcp/pipelines/demo-project/prod",
            r"^template_uri holds a user name or password in its URL",
        ),
    ],
)
def test_template_references_are_checked_before_any_request(reference: str, message: str) -> None:
    config = _registry_config("https://europe-west1-kfp.pkg.dev/demo-gcp/pipelines")
    with pytest.raises(PluginError, match=message) as caught:
        template_uri(reference, config, "demo-project")
    assert PASSWORD not in str(caught.value)


def test_registry_urls_are_checked_before_any_request() -> None:
    config = _registry_config("https://europe-west1-kfp.pkg.dev/demo-gcp/pipelines")
    with pytest.raises(PluginError, match=r"^template_uri: https://europe-west1-kfp.pkg.dev/p/r/x: expected https://"):
        template_uri("https://europe-west1-kfp.pkg.dev/p/r/x", config, "demo-project")  # no tag
    for url, message in [
        (
            f"https://u:{PASSWORD}@europe-west1-kfp.pkg.dev/p/r",
            r".*run_config.pipeline_registry: looks like a secret \(.*\): remove .* Application Default",
        ),
        ("http://europe-west1-kfp.pkg.dev/p/r", "run_config.pipeline_registry: http:// URL of europe-west1-kfp"),
        ("https://europe-west1-kfp.pkg.dev/p", "run_config.pipeline_registry: https://europe-west1-kfp.pkg.dev/p: "),
    ]:
        with pytest.raises(PluginError, match=f"^{message}") as caught:
            template_uri("prod", _registry_config(url), "demo-project")
        assert PASSWORD not in str(caught.value)


def test_urls_in_messages_lose_their_credentials_and_a_bad_limit_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from kedro_vertex_runner.network import network_timeout, redact, scrub

    assert redact(f"https://user:{PASSWORD}@host.example/x?y=1") == "https://host.example/x?y=1"
    assert scrub(f"ProxyError('http://me:{PASSWORD}@proxy:3128' refused)") == "ProxyError('http://proxy:3128' refused)"
    for bad in ("soon", "0", "-5", "7200"):
        monkeypatch.setenv("KEDRO_VERTEX_NETWORK_TIMEOUT", bad)
        with pytest.raises(PluginError, match=rf"^KEDRO_VERTEX_NETWORK_TIMEOUT='{bad}': expected a number of seconds"):
            network_timeout()
    monkeypatch.setenv("KEDRO_VERTEX_NETWORK_TIMEOUT", "2.5")
    assert network_timeout() == 2.5


def test_a_library_error_is_quoted_on_one_line_without_credentials() -> None:
    """One way every backend quotes a library's error: Google's request line dropped, secrets scrubbed, one line."""
    from google.api_core.exceptions import NotFound

    from kedro_vertex_runner.network import brief

    google = NotFound("POST https://europe-west4-aiplatform.googleapis.com/v1/x: Job\n  not found")
    assert brief(google) == "Job not found"
    assert brief(google, named=True) == "NotFound: Job not found"
    proxy = ConnectionError(f"via http://me:{PASSWORD}@proxy:3128:\nrefused")
    assert brief(proxy, named=True, limit=40) == "ConnectionError: via http://proxy:3128: refused"[:40]


def test_a_kfp_health_check_or_dex_login_that_never_answers_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEDRO_VERTEX_NETWORK_TIMEOUT", "1")
    with silent_socket() as port:
        host = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        with pytest.raises(PluginError, match=rf"^{host} gave no answer to its health check within 1 s"):
            kfp_auth.check_access(host, kfp_auth.KfpAuth())
        with pytest.raises(PluginError, match=rf"^{host} gave no answer to the Dex login within 1 s") as dex:
            kfp_auth.authenticate(host, {"DEX_USERNAME": "user@example.com", "DEX_PASSWORD": PASSWORD})
        assert time.monotonic() - started < 2 * 1 + 2
    assert PASSWORD not in str(dex.value)


def test_a_command_ends_at_its_ceiling_whatever_it_waits_for(tmp_path: Path) -> None:
    """Below the per-request limit, ``KEDRO_VERTEX_COMMAND_TIMEOUT`` ends a command held by a server in one line."""
    project = _clean_example(tmp_path / "kfp")
    with serving(_HealthyThenSilent) as kfp:
        (project / "conf" / "base" / "vertexai.yml").write_text(KFP_CONFIG.format(host=kfp.url))
        env = subprocess_env(KEDRO_VERTEX_NETWORK_TIMEOUT="120", KEDRO_VERTEX_COMMAND_TIMEOUT="8")
        started = time.monotonic()
        (result,) = kedro_batch([(project, ["vertexai", "run-once", "--no-wait"])], env=env)
        elapsed = time.monotonic() - started
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("Error:")] == [
        "Error: kedro vertexai run-once did not finish within 8 s (KEDRO_VERTEX_COMMAND_TIMEOUT; following a job is "
        "not counted): check that the servers it calls are reachable and up, or raise the limit"
    ]
    assert elapsed < 60  # Kedro's start-up, then 8 s: not the 120 s a request may wait


def test_following_a_job_is_not_counted_against_the_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    from kedro_vertex_runner.network import CommandTimeout, command_deadline, following

    monkeypatch.setenv("KEDRO_VERTEX_COMMAND_TIMEOUT", "0.4")
    with command_deadline("kedro vertexai run-once"):
        with following():
            time.sleep(0.6)  # a job running longer than the ceiling
        time.sleep(0.2)  # what is left of the ceiling still holds
    with pytest.raises(CommandTimeout, match=r"^kedro vertexai run-once did not finish within 0.4 s"):
        with command_deadline("kedro vertexai run-once"):
            time.sleep(1)
