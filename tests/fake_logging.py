"""A small fake of the Cloud Logging REST API (v2): ``POST /v2/entries:list``, enough for task log tails.

Entries are held per CustomJob id (Vertex AI writes a pipeline task's container log under ``resource.type="ml_job"``
with ``resource.labels.job_id`` set to the id of the CustomJob that ran it). The fake reads that id from the
request's filter, answers newest first, at most ``pageSize`` entries, as the real API does for
``orderBy: "timestamp desc"``. Every request is recorded; :meth:`FakeLogging.deny` makes the next ones answer 403
as for an account without ``roles/logging.viewer``.
"""

from __future__ import annotations

import json
import re
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from fake_http import LocalHTTPServer

_JOB_ID = re.compile(r'resource\.labels\.job_id="([^"]+)"')
_TYPE = re.compile(r'resource\.type="([^"]+)"')


class FakeLogging(LocalHTTPServer):
    """The server's state; start with :meth:`start`, always :meth:`stop`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.entries: dict[str, list[dict[str, Any]]] = {}
        self.denied = False

    def start(self) -> FakeLogging:
        fake = self

        class Handler(_Handler):
            state = fake

        self.serve(Handler)
        return self

    @property
    def endpoint(self) -> str:
        return self.base_url

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.entries.clear()
            self.denied = False

    def add_lines(self, custom_job_id: str, lines: list[str]) -> None:
        """Log ``lines`` (oldest first) as the container output of CustomJob ``custom_job_id``."""
        start = datetime.now(timezone.utc)
        with self.lock:
            entries = self.entries.setdefault(custom_job_id, [])
            for index, line in enumerate(lines, start=len(entries)):
                stamp = (start + timedelta(milliseconds=index)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
                entries.append(
                    {
                        "logName": "projects/p/logs/workerpool0-0",
                        "resource": {
                            "type": "ml_job",
                            "labels": {"job_id": custom_job_id, "task_name": "workerpool0-0"},
                        },
                        "textPayload": line,
                        "timestamp": stamp,
                        "severity": "ERROR" if "Error" in line else "INFO",
                    }
                )

    def deny(self) -> None:
        with self.lock:
            self.denied = True

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method != "POST" or path != "/v2/entries:list":
            return 404, {"error": {"code": 404, "message": f"fake Cloud Logging has no {method} {path}"}}
        if self.denied:
            return 403, {
                "error": {"code": 403, "status": "PERMISSION_DENIED", "message": "The caller does not have permission"}
            }
        log_filter = str((body or {}).get("filter", ""))
        kind, job_id = _TYPE.search(log_filter), _JOB_ID.search(log_filter)
        if kind is None or kind.group(1) != "ml_job" or job_id is None:
            return 200, {}
        entries = sorted(self.entries.get(job_id.group(1), []), key=lambda e: e["timestamp"], reverse=True)
        if (body or {}).get("orderBy") != "timestamp desc":
            entries.reverse()
        size = int((body or {}).get("pageSize") or 50)
        return 200, {"entries": entries[:size]} if entries else {}


class _Handler(BaseHTTPRequestHandler):
    state: FakeLogging
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _serve(self) -> None:
        path = urlsplit(self.path).path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw.strip() else None
        with self.state.lock:
            self.state.requests.append({"method": self.command, "path": path, "body": body})
            status, payload = self.state.handle(self.command, path, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _serve
