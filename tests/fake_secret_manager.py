"""A fake Secret Manager REST API (``GET /v1/projects/<p>/secrets/<s>/versions/<v>:access``) and a webhook
receiver, each on a free 127.0.0.1 port, for the secrets and notifications of a job (tests/test_job_outcome.py).

Point tasks at the fake with ``KEDRO_VERTEX_SECRET_MANAGER_ENDPOINT=<base_url>`` and
``KEDRO_VERTEX_ANONYMOUS_CREDENTIALS=1``.
"""

from __future__ import annotations

import base64
import json
import threading

from fake_http import LocalHTTPServer, QuietHandler


class FakeSecretManager(LocalHTTPServer):
    """``secrets``: reference → value; a reference in ``denied`` answers 403, any other unknown one 404."""

    def __init__(self, secrets: dict[str, str], denied: set[str] | None = None):
        self.secrets = dict(secrets)
        self.denied = set(denied or ())
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Authorization header)
        self._lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def _handle(self, method: str) -> None:
                with fake._lock:
                    fake.requests.append((method, self.path, self.headers.get("Authorization")))
                prefix, suffix = "/v1/", ":access"
                if method != "GET" or not (self.path.startswith(prefix) and self.path.endswith(suffix)):
                    self._reply(404, {"error": {"code": 404, "message": "no such route"}})
                    return
                reference = self.path[len(prefix) : -len(suffix)]
                if reference in fake.denied:
                    self._reply(403, {"error": {"code": 403, "status": "PERMISSION_DENIED"}})
                elif reference in fake.secrets:
                    data = base64.b64encode(fake.secrets[reference].encode()).decode()
                    self._reply(200, {"name": reference, "payload": {"data": data}})
                else:
                    self._reply(404, {"error": {"code": 404, "status": "NOT_FOUND"}})

            def _reply(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.serve(Handler)


class WebhookReceiver(LocalHTTPServer):
    """Records every POST: (path, JSON body); answers 200."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, object]] = []
        receiver = self

        class Handler(QuietHandler):
            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.posts.append((self.path, json.loads(body or b"null")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.serve(Handler)
