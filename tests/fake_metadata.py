"""A local fake of the GCE metadata server, enough for google-auth to mint identity tokens.

google-auth reads ``GCE_METADATA_HOST`` (requests) and ``GCE_METADATA_IP`` (the detection ping); point both at
:attr:`FakeMetadataServer.host`. ``/computeMetadata/v1/instance/service-accounts/default/identity?audience=…``
answers a JWT-shaped token (unsigned) whose ``aud`` is the requested audience; every audience asked for is
recorded in :attr:`audiences`. Requests without ``Metadata-Flavor: Google`` are refused, as on GCE.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

SERVICE_ACCOUNT = "tasks@test-project.iam.gserviceaccount.com"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(audience: str, lifetime: int = 3600) -> str:
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": "fake"}
    claims = {
        "aud": audience,
        "azp": SERVICE_ACCOUNT,
        "email": SERVICE_ACCOUNT,
        "iss": "https://accounts.google.com",
        "sub": "1234567890",
        "iat": now,
        "exp": now + lifetime,
    }
    return ".".join([_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(b"fake-signature")])


class FakeMetadataServer:
    def __init__(self) -> None:
        self.audiences: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def _send(self, code: int, body: str, content_type: str = "text/plain") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.headers.get("Metadata-Flavor") != "Google":
                    self._send(403, "Missing Metadata-Flavor: Google header")
                    return
                url = urlparse(self.path)
                if url.path in ("", "/"):
                    self._send(200, "computeMetadata/\n")
                elif url.path == "/computeMetadata/v1/instance/service-accounts/default/identity":
                    audience = parse_qs(url.query).get("audience", [""])[0]
                    if not audience:
                        self._send(400, "audience required")
                        return
                    server.audiences.append(audience)
                    self._send(200, make_token(audience))
                elif url.path == "/computeMetadata/v1/instance/service-accounts/default/":
                    info = {
                        "aliases": ["default"],
                        "email": SERVICE_ACCOUNT,
                        "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
                    }
                    self._send(200, json.dumps(info), "application/json")
                elif url.path == "/computeMetadata/v1/instance/service-accounts/default/email":
                    self._send(200, SERVICE_ACCOUNT)
                elif url.path == "/computeMetadata/v1/project/project-id":
                    self._send(200, "test-project")
                else:
                    self._send(404, "not found")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def env(self) -> dict[str, str]:
        """Variables that point google-auth in a subprocess at this server."""
        return {"GCE_METADATA_HOST": self.host, "GCE_METADATA_IP": self.host}

    def __enter__(self) -> FakeMetadataServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
