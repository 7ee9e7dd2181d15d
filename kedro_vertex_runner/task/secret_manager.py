"""Secrets by reference and the exit task's webhook: what a task reads from Secret Manager at start-up.

``run_config.secrets`` (and ``run_config.resources.<name>.secrets``) map an environment variable name to a Secret
Manager reference, ``projects/<project>/secrets/<secret>/versions/<version>``. Only the reference is compiled into
the spec (``--secret=NAME=REFERENCE`` task arguments); each task reads the value with its own credentials — the
job's service account on Vertex AI, the user's on the local backend — through Secret Manager's REST API
(``GET https://secretmanager.googleapis.com/v1/<reference>:access``) and sets the variable for its nodes. The value
is never logged, never part of an error message and never written anywhere by this module.

On the local backend (``KEDRO_VERTEX_LOCAL_TASK=1``, set by that backend for its tasks), a variable already set in
the environment of ``kedro run`` is used as it is and Secret Manager is not asked. On Kubeflow Pipelines the
webhook's URL comes from a Kubernetes secret instead (``--webhook=k8s:<secret>/<key>``): KFP puts it into the exit
task's environment as :data:`WEBHOOK_URL_ENV`.

Environment variables:
    ``KEDRO_VERTEX_SECRET_MANAGER_ENDPOINT``: base URL of the Secret Manager API (default
    ``https://secretmanager.googleapis.com``), e.g. a regional endpoint or a local fake for tests; with
    ``KEDRO_VERTEX_ANONYMOUS_CREDENTIALS=1`` and an endpoint on this machine, no credentials are sent.

Only google-auth and requests are imported (when a secret is read), never kfp, aiplatform or mlflow.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from ..errors import PluginError
from ..values import is_on

ENDPOINT_ENV = "KEDRO_VERTEX_SECRET_MANAGER_ENDPOINT"
DEFAULT_ENDPOINT = "https://secretmanager.googleapis.com"
LOCAL_TASK_ENV = "KEDRO_VERTEX_LOCAL_TASK"
ANONYMOUS_ENV = "KEDRO_VERTEX_ANONYMOUS_CREDENTIALS"
TIMEOUT_SECONDS = 30.0
#: a secret version: the project's id or number, the secret's id (Secret Manager's rule) and a version or ``latest``
SECRET_REFERENCE = re.compile(
    r"^projects/(?:[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20}|[a-z0-9.-]+:[a-z][a-z0-9-]{4,28}[a-z0-9])"
    r"/secrets/[A-Za-z0-9_-]{1,255}/versions/(?:latest|[1-9][0-9]{0,18})$"
)
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
#: ``--webhook=k8s:<secret>/<key>``: on Kubeflow Pipelines the URL is in a Kubernetes Secret, which the platform spec
#: puts into the exit task's environment as :data:`WEBHOOK_URL_ENV` (``run_config.kubeflow.webhook``)
KUBERNETES_WEBHOOK = "k8s:"
WEBHOOK_URL_ENV = "KEDRO_VERTEX_WEBHOOK_URL"
#: the job's final state in the words the docs promise (Vertex AI's), from Kubeflow Pipelines' (the state of the
#: exit handler's ML Metadata execution: COMPLETE, CACHED, FAILED, CANCELED)
_STATES = {"COMPLETE": "SUCCEEDED", "CACHED": "SUCCEEDED", "CANCELED": "CANCELLED"}


def check_reference(value: str) -> str:
    """``value`` if it is a Secret Manager version reference.

    Raises:
        ValueError: saying what the reference must look like (the reference is shown: it is not the secret).
    """
    if not isinstance(value, str) or not SECRET_REFERENCE.fullmatch(value):
        raise ValueError(
            f"{value!a} is not a Secret Manager reference: write projects/<project>/secrets/<secret>/versions/"
            "<version> (a version number or 'latest')"
        )
    return value


def parse_pair(item: str) -> tuple[str, str]:
    """``NAME=REFERENCE`` of a ``--secret`` argument."""
    name, equals, reference = item.partition("=")
    if not equals or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise PluginError(f"--secret={item}: expected NAME=projects/<p>/secrets/<s>/versions/<v>", exit_code=2)
    try:
        check_reference(reference)
    except ValueError as exc:
        raise PluginError(f"secret {name}: {exc}", exit_code=2) from None
    return name, reference


def load_secrets(pairs: Iterable[str], environ: dict[str, str] | None = None) -> list[str]:
    """Read every ``NAME=REFERENCE`` and set ``NAME`` in ``environ`` (default: this process's environment).

    Returns the names set. A local task keeps a variable already set.

    Raises:
        PluginError: one line naming the variable and the reference (never the value).
    """
    target = os.environ if environ is None else environ
    parsed = [parse_pair(item) for item in pairs]
    local = is_on(os.environ.get(LOCAL_TASK_ENV))
    names = []
    for name, reference in parsed:
        if local and target.get(name):
            names.append(name)
            continue
        target[name] = access(reference, f"secret {name} ({reference})")
        names.append(name)
    return names


def access(reference: str, what: str) -> str:
    """The payload of ``reference`` as text. ``what`` names it in errors (the variable and the reference)."""
    url = f"{_endpoint()}/v1/{reference}:access"
    try:
        import requests
    except ImportError:  # pragma: no cover - a dependency of google-auth's transport
        raise PluginError(f"{what}: reading a secret needs requests: pip install requests") from None
    headers = _auth_headers(what)
    try:
        response = requests.get(url, headers=headers, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        raise PluginError(f"{what}: Secret Manager cannot be reached ({type(exc).__name__})") from None
    status = response.status_code
    if status == 403:
        raise PluginError(
            f"{what}: permission denied (403): grant the task's service account (locally: your account) "
            "roles/secretmanager.secretAccessor on the secret"
        )
    if status == 404:
        raise PluginError(f"{what}: not found (404): check the project, the secret's name and the version")
    if status in (400, 401):
        raise PluginError(f"{what}: refused ({status}): check the reference and the credentials")
    if status != 200:
        raise PluginError(f"{what}: Secret Manager answered HTTP {status}")
    try:
        data = response.json()["payload"]["data"]
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise PluginError(f"{what}: the answer holds no text payload (a binary secret cannot be an env var)") from None


def _endpoint() -> str:
    return (os.environ.get(ENDPOINT_ENV) or DEFAULT_ENDPOINT).rstrip("/")


def _auth_headers(what: str) -> dict[str, str]:
    endpoint = _endpoint()
    if is_on(os.environ.get(ANONYMOUS_ENV)) and (urlsplit(endpoint).hostname or "") in _LOCAL_HOSTS:
        return {}
    try:
        import google.auth
        import google.auth.exceptions
        import google.auth.transport.requests
    except ImportError:  # pragma: no cover - google-auth is a dependency
        raise PluginError(f"{what}: reading a secret needs google-auth: pip install google-auth") from None
    try:
        credentials, _project = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        credentials.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.GoogleAuthError as exc:
        raise PluginError(
            f"{what}: no Google credentials to read it ({type(exc).__name__}): run `gcloud auth application-default "
            "login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    return {"Authorization": f"Bearer {credentials.token}"}


# ------------------------------------------------------------------------------------------------- the exit status


def final_status(text: str | None) -> dict[str, Any] | None:
    """The job's final status as the exit task's nodes read it (``params:job_final_status``), from the
    ``PipelineTaskFinalStatus`` JSON Vertex AI, Kubeflow Pipelines (or the local backend) substitutes into
    ``--final-status``; Kubeflow's states are named as Vertex AI names them (``COMPLETE`` is ``SUCCEEDED``…)."""
    if not text:
        return None
    try:
        raw = json.loads(text)
    except ValueError:
        raise PluginError("--final-status: expected the job's final status as JSON", exit_code=2) from None
    if not isinstance(raw, Mapping):
        raise PluginError("--final-status: expected a JSON object", exit_code=2)
    error: Mapping[str, Any] = raw["error"] if isinstance(raw.get("error"), Mapping) else {}
    return {
        "state": _STATES.get(str(raw.get("state") or ""), str(raw.get("state") or "")),
        "error_code": error.get("code"),
        "error_message": error.get("message") or "",
        "job_name": str(raw.get("pipelineJobResourceName") or ""),
        "task_name": str(raw.get("pipelineTaskName") or ""),
    }


def post_webhook(reference: str, status: Mapping[str, Any]) -> None:
    """POST ``status`` as JSON to the URL held by the secret ``reference``. A failure is one line naming the
    reference, never the URL (it may carry a token)."""
    import requests

    if reference.startswith(KUBERNETES_WEBHOOK):
        secret, _, key = reference[len(KUBERNETES_WEBHOOK) :].partition("/")
        what = f"run_config.kubeflow.webhook (Kubernetes secret {secret}, key {key})"
        url = os.environ.get(WEBHOOK_URL_ENV, "").strip()
        if not url:
            raise PluginError(
                f"{what}: the task has no {WEBHOOK_URL_ENV}: run it on Kubeflow Pipelines, which sets it from the "
                "secret, with the secret in the run's namespace"
            )
    else:
        what = f"notifications.webhook ({reference})"
        url = access(reference, what).strip()
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise PluginError(f"{what}: the secret does not hold an http(s) URL")
    try:
        response = requests.post(url, json=dict(status), timeout=TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        raise PluginError(f"{what}: the webhook cannot be reached ({type(exc).__name__})") from None
    if response.status_code >= 300:
        raise PluginError(f"{what}: the webhook answered HTTP {response.status_code}")
