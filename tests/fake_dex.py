"""Fakes of what stands in front of a Kubeflow Pipelines API: an auth proxy with Dex, and Google's token endpoint.

:class:`FakeDexProxy` is oidc-authservice or oauth2-proxy plus Dex on one local port, fronting a
:class:`~fake_kfp.FakeKfp` under ``/pipeline`` (so ``host: <base_url>/pipeline``). A request without the session
cookie is redirected into the browser login chain when it asks for HTML, and answered 401 otherwise (as
oauth2-proxy does for API clients). The chain: ``/pipeline`` → ``/dex/auth`` → ``/dex/auth/local?req=…`` (a
"Log in with Email" connector page) → ``/dex/auth/local/login?back=&state=…`` (the password form). A POST with
the right ``login``/``password`` is redirected through ``/dex/approval`` to the proxy's callback, which sets the
session cookie (named ``cookie_name``: ``authservice_session`` or ``oauth2_proxy_kubeflow``) and sends the browser
back; a wrong password shows the form again. Dex sets its own cookie on ``/dex``, which must not reach the API.
Requests with the session cookie are forwarded to the fake KFP with their headers.

:class:`FakeTokenEndpoint` is Google's OAuth token endpoint for a service-account key whose ``token_uri`` points
at it: it answers the JWT-bearer grant google-auth sends with an ``id_token`` for the ``target_audience`` the
assertion asks for (see :func:`service_account_key`).
"""

from __future__ import annotations

import base64
import html
import http.client
import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fake_http import LocalHTTPServer, QuietHandler
from fake_metadata import make_token

_LOGIN_FORM = """<html><body><h2>Log in to Your Account</h2>{error}
<form method="post" action="/dex/auth/local/login?back=&amp;state={state}">
  <input tabindex="1" required id="login" name="login" type="text" placeholder="email address">
  <input tabindex="2" required id="password" name="password" type="password" placeholder="password">
  <button tabindex="3" id="submit-login" type="submit">Login</button>
</form></body></html>"""
_CONNECTORS = """<html><body><h2>Log in to dex</h2>
<a href="/dex/auth/local?req={req}&amp;connector_id=local"><button>Log in with Email</button></a>
</body></html>"""


class FakeDexProxy(LocalHTTPServer):
    def __init__(self, upstream: str, cookie_name: str, username: str, password: str) -> None:
        self.upstream = urlsplit(upstream)
        self.cookie_name = cookie_name
        self.username, self.password = username, password
        self.sessions: set[str] = set()
        self.logins: list[tuple[str, bool]] = []  # (login, accepted)
        self.lock = threading.Lock()

    def start(self) -> FakeDexProxy:
        self.serve(self._handler())
        return self

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def _send(
                self, code: int, body: str = "", headers: dict[str, str] | None = None, cookies: list[str] = ()
            ) -> None:  # type: ignore[assignment]
                data = body.encode()
                self.send_response(code)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                for cookie in cookies:
                    self.send_header("Set-Cookie", cookie)
                self.send_header("Content-Type", "text/html" if body.startswith("<") else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _redirect(self, location: str, code: int = 302, cookies: list[str] = ()) -> None:  # type: ignore[assignment]
                self._send(code, "", {"Location": location}, cookies)

            def _session(self) -> str | None:
                for part in (self.headers.get("Cookie") or "").split(";"):
                    name, _, value = part.strip().partition("=")
                    if name == fake.cookie_name and value in fake.sessions:
                        return value
                return None

            def _handle(self, method: str) -> None:
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if url.path == "/dex/auth":
                    self._send(200, _CONNECTORS.format(req="req-1"))
                elif url.path == "/dex/auth/local":
                    self._redirect(
                        "/dex/auth/local/login?back=&state=req-1", cookies=["dex_flow=started; Path=/dex; HttpOnly"]
                    )
                elif url.path == "/dex/auth/local/login" and method == "GET":
                    self._send(200, _LOGIN_FORM.format(error="", state=html.escape(query.get("state", [""])[0])))
                elif url.path == "/dex/auth/local/login" and method == "POST":
                    form = parse_qs(raw.decode())
                    login, password = form.get("login", [""])[0], form.get("password", [""])[0]
                    accepted = (login, password) == (fake.username, fake.password)
                    with fake.lock:
                        fake.logins.append((login, accepted))
                    if accepted:
                        self._redirect("/dex/approval?req=req-1", 303)
                    else:
                        self._send(
                            200, _LOGIN_FORM.format(error="<p>Invalid username and password.</p>", state="req-1")
                        )
                elif url.path == "/dex/approval":
                    self._redirect("/authservice/oidc/callback?code=code-1&state=req-1", 303)
                elif url.path == "/authservice/oidc/callback":
                    session = secrets.token_urlsafe(24)
                    with fake.lock:
                        fake.sessions.add(session)
                    self._redirect("/pipeline", cookies=[f"{fake.cookie_name}={session}; Path=/; HttpOnly"])
                elif self._session():
                    self._forward(method, raw)
                elif "text/html" in (self.headers.get("Accept") or ""):
                    self._redirect("/dex/auth?client_id=kubeflow&redirect_uri=%2Fauthservice%2Foidc%2Fcallback")
                else:
                    self._send(401, json.dumps({"error": "unauthenticated"}))

            def _forward(self, method: str, raw: bytes) -> None:
                path = self.path.removeprefix("/pipeline")
                connection = http.client.HTTPConnection(fake.upstream.hostname, fake.upstream.port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                connection.request(method, path or "/", body=raw or None, headers=headers)
                answer = connection.getresponse()
                body = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                connection.close()

        return Handler


# ------------------------------------------------------------------------------------------------------------------
# Google's token endpoint, for service-account keys


def _claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class FakeTokenEndpoint(LocalHTTPServer):
    def __init__(self) -> None:
        self.audiences: list[str] = []
        self.issued: list[str] = []

    def start(self) -> FakeTokenEndpoint:
        fake = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                assertion = form.get("assertion", [""])[0]
                audience = _claims(assertion).get("target_audience", "") if assertion else ""
                if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"] or not audience:
                    code, body = 400, {"error": "invalid_grant", "error_description": "no target_audience"}
                else:
                    token = make_token(audience)
                    fake.audiences.append(audience)
                    fake.issued.append(token)
                    code, body = 200, {"id_token": token}
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.serve(Handler)
        return self

    def service_account_key(self) -> dict[str, str]:
        """A service-account key file's JSON (a fresh RSA key) whose ``token_uri`` is this endpoint."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "fake-key",
            "private_key": pem,
            "client_email": "pipelines@test-project.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "token_uri": f"{self.base_url}/token",
        }
