"""A small fake of Artifact Registry's Kubeflow Pipelines endpoint (``https://<region>-kfp.pkg.dev/<project>/<repo>``).

What kfp's ``RegistryClient`` and a template download use: ``POST /<project>/<repo>`` with a multipart form (a
``content`` file holding the pipeline YAML, an optional comma-separated ``tags`` field) answers
``<package>/sha256:<digest>`` — the package is the template's ``pipelineInfo.name``, the version the sha256 of the
content, and the registry tags it ``latest`` as well; ``GET /<project>/<repo>/<package>/<tag or version>`` returns the
content. Every request is recorded with its ``Authorization`` header.
"""

from __future__ import annotations

import hashlib
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import Any

import yaml
from fake_http import LocalHTTPServer


class FakeRegistry(LocalHTTPServer):
    def __init__(self, project: str = "demo-gcp", repo: str = "pipelines") -> None:
        self.prefix = f"/{project}/{repo}"
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self.versions: dict[tuple[str, str], bytes] = {}  # (package, version) -> content
        self.tags: dict[tuple[str, str], str] = {}  # (package, tag) -> version

    @property
    def url(self) -> str:
        return f"{self.base_url}{self.prefix}"

    def start(self) -> FakeRegistry:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                registry._record("POST", self.path, self.headers)
                if self.path.rstrip("/") != registry.prefix:
                    return self._answer(404, b"no such repository")
                head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                message = BytesParser(policy=HTTP).parsebytes(head + data)
                fields = {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
                          for part in message.iter_parts()}  # fmt: skip
                content = fields.get("content")
                if not content:
                    return self._answer(400, b"no content")
                package = (yaml.safe_load(content).get("pipelineInfo") or {}).get("name")
                version = "sha256:" + hashlib.sha256(content).hexdigest()
                tags = [t for t in (fields.get("tags") or b"").decode().split(",") if t] + ["latest"]
                with registry.lock:
                    registry.versions[(package, version)] = content
                    for tag in tags:
                        registry.tags[(package, tag)] = version
                self._answer(200, f"{package}/{version}".encode())

            def do_GET(self) -> None:
                registry._record("GET", self.path, self.headers)
                rest = self.path[len(registry.prefix) + 1 :] if self.path.startswith(registry.prefix + "/") else ""
                package, _, ref = rest.partition("/")
                with registry.lock:
                    version = ref if ref.startswith("sha256:") else registry.tags.get((package, ref))
                    content = registry.versions.get((package, version or ""))
                if content is None:
                    return self._answer(404, f"{package}/{ref} not found".encode())
                self._answer(200, content, "application/octet-stream")

        self.serve(Handler)
        return self

    def _record(self, method: str, path: str, headers: Any) -> None:
        with self.lock:
            self.requests.append({"method": method, "path": path, "authorization": headers.get("Authorization")})
