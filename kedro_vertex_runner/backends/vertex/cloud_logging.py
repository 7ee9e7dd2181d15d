"""The last lines of a Vertex AI pipeline task's log, read from Cloud Logging.

Vertex AI runs each container task of a pipeline job as a CustomJob (``executorDetail.containerDetail.mainJob`` of
the task); what the container writes lands in Cloud Logging under the resource type ``ml_job`` with the label
``job_id`` set to that CustomJob's id. One ``entries:list`` call (newest first, one page) fetches the tail; the
console's Logs Explorer shows the rest with the same filter.

This module only talks to the API and builds links; printing is the caller's business. Every failure is a
:class:`LogsUnavailable` with one line saying why (a missing ``roles/logging.viewer`` included), never anything
that could hide the job's own error. The REST call goes through google-auth's ``AuthorizedSession`` (already a
dependency), so no logging client library is needed.

Environment variables:
    ``KEDRO_VERTEX_LOGGING_ENDPOINT``: base URL of the Cloud Logging API (default ``https://logging.googleapis.com``),
    e.g. a Private Service Connect endpoint, or a local fake in tests.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

LOGGING_ENDPOINT_ENV = "KEDRO_VERTEX_LOGGING_ENDPOINT"
DEFAULT_LOGGING_ENDPOINT = "https://logging.googleapis.com"
TAIL_LINES = 20
TIMEOUT = 20.0
CONSOLE = "https://console.cloud.google.com"


class LogsUnavailable(Exception):
    """The log could not be read; the message is one line for the user."""


@dataclass(frozen=True)
class LogLine:
    timestamp: str
    severity: str
    text: str


def logging_endpoint() -> str:
    return (os.environ.get(LOGGING_ENDPOINT_ENV) or DEFAULT_LOGGING_ENDPOINT).rstrip("/")


def task_log_filter(custom_job: str, since: str | None = None) -> str:
    """The Cloud Logging filter of one task's container log; ``custom_job`` is its CustomJob name or id."""
    job_id = custom_job.rsplit("/", 1)[-1]
    parts = ['resource.type="ml_job"', f'resource.labels.job_id="{job_id}"']
    if since:
        parts.append(f'timestamp>="{since}"')
    return " AND ".join(parts)


def pipeline_log_filter(pipeline_job_id: str) -> str:
    """The filter of the events Vertex AI logs for a pipeline job itself (no task container involved)."""
    return (
        f'resource.type="aiplatform.googleapis.com/PipelineJob" AND resource.labels.pipeline_job_id="{pipeline_job_id}"'
    )


def logs_explorer_url(project_id: str, log_filter: str) -> str:
    """A Logs Explorer link showing every entry the filter matches."""
    return f"{CONSOLE}/logs/query;query={quote(log_filter, safe='')}?project={quote(project_id)}"


def fetch_tail(credentials: Any, project_id: str, log_filter: str, lines: int = TAIL_LINES) -> list[LogLine]:
    """The last ``lines`` entries matching ``log_filter``, oldest first.

    Raises:
        LogsUnavailable: permission denied (``roles/logging.viewer`` missing), an API error or no answer.
    """
    import requests
    from google.auth.exceptions import GoogleAuthError
    from google.auth.transport.requests import AuthorizedSession

    body = {
        "resourceNames": [f"projects/{project_id}"],
        "filter": log_filter,
        "orderBy": "timestamp desc",
        "pageSize": lines,
    }
    from ...errors import PluginError
    from ...network import network_timeout, require_https

    endpoint = logging_endpoint()
    try:
        require_https(endpoint, "your Google access token", LOGGING_ENDPOINT_ENV)
        limit = min(TIMEOUT, network_timeout())
    except PluginError as exc:
        raise LogsUnavailable(str(exc)) from None
    session = AuthorizedSession(credentials, refresh_timeout=limit)
    try:
        response = session.post(f"{endpoint}/v2/entries:list", json=body, timeout=limit)
    except (requests.exceptions.RequestException, GoogleAuthError, OSError) as exc:
        raise LogsUnavailable(f"Cloud Logging did not answer ({type(exc).__name__})") from None
    finally:
        session.close()
    if response.status_code == 403:
        raise LogsUnavailable(
            f"no permission to read logs of project {project_id}: grant the account roles/logging.viewer to see "
            "task logs here"
        )
    if response.status_code >= 400:
        raise LogsUnavailable(f"Cloud Logging answered {response.status_code}: {_error_message(response)}")
    try:
        entries = response.json().get("entries") or []
    except ValueError:
        raise LogsUnavailable("Cloud Logging answered with something that is not JSON") from None
    return [_line(entry) for entry in reversed(entries)]


def _error_message(response: Any) -> str:
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text
    return " ".join(str(message).split())[:300]


def _line(entry: dict[str, Any]) -> LogLine:
    payload = entry.get("jsonPayload")
    if "textPayload" in entry:
        text = str(entry["textPayload"])
    elif isinstance(payload, dict):
        text = str(payload.get("message", payload))
    else:
        text = ""
    return LogLine(str(entry.get("timestamp", "")), str(entry.get("severity", "DEFAULT")), text.rstrip("\n"))


__all__ = [
    "LOGGING_ENDPOINT_ENV",
    "LogLine",
    "LogsUnavailable",
    "fetch_tail",
    "logging_endpoint",
    "logs_explorer_url",
    "pipeline_log_filter",
    "task_log_filter",
]
