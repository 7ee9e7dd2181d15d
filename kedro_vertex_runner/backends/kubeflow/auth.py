"""Getting past the proxy in front of a Kubeflow Pipelines API: Google's Identity-Aware Proxy, or Dex.

KFP itself checks no credentials; the proxy in front of it does, and each kind wants something else:

* **IAP** (AI Platform Pipelines, GKE behind a load balancer) wants a Google *ID token* whose audience is the
  proxy's OAuth client id (``IAP_CLIENT_ID``), sent as ``Authorization: Bearer``. Service-account keys,
  impersonated service accounts and the metadata server (GCE, GKE, Cloud Run…) can mint one; a user's
  ``gcloud auth application-default login`` credentials cannot, which we say in one line with the fix.
* **Dex** behind ``oidc-authservice`` or ``oauth2-proxy`` (on-premise Kubeflow) wants a browser session. With
  ``DEX_USERNAME`` and ``DEX_PASSWORD`` we walk the browser's path once: GET the host, follow the redirects to
  Dex's static-password login form, POST the credentials, follow the redirects back, and keep the session cookies
  the proxy set for the host (``authservice_session`` from oidc-authservice, ``oauth2_proxy_kubeflow`` from
  oauth2-proxy since Kubeflow 1.9 — whatever they are called, never a hard-coded name).

:func:`check_access` then asks the API's health endpoint with those credentials, so an unreachable host, a
refused token or a proxy that still wants a login is one line before anything is submitted.

Secrets stay secret: tokens, cookies and passwords are never printed, logged, put into exception text or
compiled into a spec; :class:`KfpAuth` does not show them in its ``repr``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from ...errors import PluginError
from ...network import network_timeout, no_answer, refuse_userinfo, require_https, timed_auth_request

IAP_CLIENT_ID_ENV = "IAP_CLIENT_ID"
DEX_USERNAME_ENV = "DEX_USERNAME"
DEX_PASSWORD_ENV = "DEX_PASSWORD"
HEALTHZ = "/apis/v2beta1/healthz"
_LOGIN_HOPS = 4  # pages between the host and Dex's password form (connector choice, "log in with email"…)
# AI Platform Pipelines' inverse proxy: it takes the caller's Google access token (kfp.Client's own rule)
_INVERSE_PROXY = re.compile(r"\S+\.googleusercontent\.com/?$")
_USER_ADC_TYPES = {"authorized_user", "external_account_authorized_user"}
_IAP_FIX = (
    "impersonate a service account that IAP lets in (`gcloud auth application-default login "
    "--impersonate-service-account=<sa>@<project>.iam.gserviceaccount.com`, which needs "
    "roles/iam.serviceAccountTokenCreator on it) or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
)


@dataclass(frozen=True)
class KfpAuth:
    """What the KFP client sends: a bearer token and/or a ``Cookie`` header value. Shown without the secrets."""

    token: str | None = field(default=None, repr=False)
    cookies: str | None = field(default=None, repr=False)
    method: str = "none"  # "iap", "dex", "gcp" or "none", for messages

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.cookies:
            headers["Cookie"] = self.cookies
        return headers

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`kfp.Client` carrying these credentials."""
        kwargs: dict[str, Any] = {}
        if self.token:
            kwargs["existing_token"] = self.token
        if self.cookies:
            kwargs["cookies"] = self.cookies
        return kwargs


def authenticate(host: str, env: Mapping[str, str] | None = None) -> KfpAuth:
    """The credentials ``env`` (default: the process environment) asks for: an IAP ID token with
    ``IAP_CLIENT_ID``, a Dex session with ``DEX_USERNAME``/``DEX_PASSWORD``, a Google access token for an AI
    Platform Pipelines host (``*.googleusercontent.com``), else none."""
    env = os.environ if env is None else env
    refuse_userinfo("`host:` in vertexai.yml", host)
    client_id = (env.get(IAP_CLIENT_ID_ENV) or "").strip()
    username, password = env.get(DEX_USERNAME_ENV) or "", env.get(DEX_PASSWORD_ENV) or ""
    if client_id and (username or password):
        raise PluginError(
            f"both {IAP_CLIENT_ID_ENV} (IAP) and {DEX_USERNAME_ENV}/{DEX_PASSWORD_ENV} (Dex) are set: a KFP host sits "
            "behind one proxy, unset the other"
        )
    if client_id or username or password or _INVERSE_PROXY.match(host):
        require_https(host, "a login token or session", "`host:` in vertexai.yml")
    if client_id:
        return KfpAuth(token=iap_id_token(client_id, env), method="iap")
    if username or password:
        if not (username and password):
            missing = DEX_PASSWORD_ENV if username else DEX_USERNAME_ENV
            raise PluginError(f"{missing} is not set: Dex login needs both {DEX_USERNAME_ENV} and {DEX_PASSWORD_ENV}")
        return KfpAuth(cookies=dex_session(host, username, password), method="dex")
    if _INVERSE_PROXY.match(host):
        return KfpAuth(token=gcp_access_token(host), method="gcp")
    return KfpAuth()


# ------------------------------------------------------------------------------------------------------------------
# IAP


def iap_id_token(audience: str, env: Mapping[str, str] | None = None) -> str:
    """A Google ID token for ``audience`` from the service-account key, impersonation or metadata credentials.

    Raises:
        PluginError: user credentials (which cannot mint ID tokens), no credentials at all, or a refused request.
    """
    from google.auth.exceptions import GoogleAuthError

    env = os.environ if env is None else env
    path, info = _adc_info(env)
    request = timed_auth_request()
    try:
        credentials = _id_token_credentials(audience, path, info, request)
        credentials.refresh(request)
    except GoogleAuthError as exc:
        where = f" with {path}" if path else " from the metadata server"
        raise PluginError(
            f"could not mint an ID token for {IAP_CLIENT_ID_ENV}={audience}{where} ({_first_line(exc)}): {_IAP_FIX}"
        ) from None
    token = getattr(credentials, "token", None)
    if not token:
        raise PluginError(f"Google answered no ID token for {IAP_CLIENT_ID_ENV}={audience}: {_IAP_FIX}")
    return str(token)


def gcp_access_token(host: str) -> str:
    """An access token of the Application Default Credentials, as AI Platform Pipelines' proxy wants it."""
    import google.auth
    from google.auth.exceptions import GoogleAuthError

    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        credentials.refresh(timed_auth_request())
    except GoogleAuthError as exc:
        raise PluginError(
            f"no usable Google credentials for {host} ({_first_line(exc)}): run `gcloud auth application-default "
            f"login`, or set {IAP_CLIENT_ID_ENV} if the cluster is behind Identity-Aware Proxy"
        ) from None
    return str(credentials.token)


def _adc_info(env: Mapping[str, str]) -> tuple[str | None, dict[str, Any] | None]:
    """The Application Default Credentials file (``GOOGLE_APPLICATION_CREDENTIALS``, else gcloud's) and its JSON;
    ``(None, None)`` when there is none (the metadata server is asked then)."""
    path = env.get("GOOGLE_APPLICATION_CREDENTIALS") or ""
    explicit = bool(path)
    if not path:
        from google.auth import _cloud_sdk

        path = _cloud_sdk.get_application_default_credentials_path()
        if not os.path.isfile(path):
            return None, None
    try:
        with open(path, encoding="utf-8") as fh:
            info = json.load(fh)
    except (OSError, ValueError):
        key = "GOOGLE_APPLICATION_CREDENTIALS=" if explicit else "the gcloud credentials file "
        raise PluginError(f"{key}{path} is not a readable credentials JSON file: {_IAP_FIX}") from None
    if not isinstance(info, dict):
        raise PluginError(f"{path} is not a Google credentials file: {_IAP_FIX}")
    return path, info


def _id_token_credentials(audience: str, path: str | None, info: dict[str, Any] | None, request: Any) -> Any:
    kind = (info or {}).get("type")
    if info is None:
        from google.auth import compute_engine

        return compute_engine.IDTokenCredentials(request, target_audience=audience, use_metadata_identity_endpoint=True)
    if kind == "service_account":
        from google.oauth2 import service_account

        return service_account.IDTokenCredentials.from_service_account_info(info, target_audience=audience)
    if kind == "impersonated_service_account":
        from google.auth import impersonated_credentials

        target = impersonated_credentials.Credentials.from_impersonated_service_account_info(info)
        return impersonated_credentials.IDTokenCredentials(target, target_audience=audience, include_email=True)
    if kind in _USER_ADC_TYPES:
        raise PluginError(
            f"{IAP_CLIENT_ID_ENV} is set, but {path} holds user credentials (type {kind!r}, from `gcloud auth "
            f"application-default login`), which cannot mint the ID token IAP wants: {_IAP_FIX}"
        )
    raise PluginError(f"{path}: credentials of type {kind!r} cannot mint an ID token for IAP: {_IAP_FIX}")


# ------------------------------------------------------------------------------------------------------------------
# Dex


@dataclass
class _Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    has_password: bool = False


class _LoginPage(HTMLParser):
    """The forms and links of a login page (Dex's templates, or a proxy's "sign in" page)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(_Form(action=values.get("action", ""), method=values.get("method", "get").lower()))
        elif tag == "input" and self.forms:
            form, name = self.forms[-1], values.get("name", "")
            if values.get("type", "").lower() == "password" or name == "password":
                form.has_password = True
            elif name and values.get("type", "").lower() in {"hidden", "text", "email", ""}:
                form.fields[name] = values.get("value", "")
        elif tag == "a" and values.get("href"):
            self.links.append(values["href"])


def dex_session(host: str, username: str, password: str, timeout: float | None = None) -> str:
    """Log in through Dex's static-password form as a browser would; the ``Cookie`` header value for ``host``.

    Raises:
        PluginError: the host cannot be reached, it shows no Dex login form, the password is refused, or no
            session cookie came back (one line, without the password or any cookie).
    """
    import requests

    timeout = network_timeout() if timeout is None else timeout
    session = requests.Session()
    session.headers["Accept"] = "text/html,application/xhtml+xml"  # oauth2-proxy answers 401, not a redirect, to APIs
    try:
        page = session.get(host, timeout=timeout)
        form = _password_form(session, page, host, timeout)
        data = {**form.fields, "login": username, "password": password}
        target = urljoin(page.url, form.action) if form.action else page.url
        require_https(target, f"{DEX_PASSWORD_ENV}", f"the Dex login form of {_no_query(host)}")
        answer = session.post(target, data=data, timeout=timeout)
        # Dex shows the form again after a refused password (200), or answers 401 for it
        if answer.status_code in (401, 403) or _password_form_in(answer.text):
            raise PluginError(
                f"Dex refused the login of {DEX_USERNAME_ENV}={username} for {host} (wrong user or password): check "
                f"{DEX_USERNAME_ENV} and {DEX_PASSWORD_ENV}"
            )
        if answer.status_code >= 400:
            raise PluginError(
                f"logging in to {host} through Dex failed: HTTP {answer.status_code} at {_no_query(answer.url)}"
            )
    except requests.Timeout:
        raise no_answer(host, "to the Dex login") from None
    except requests.RequestException as exc:
        raise PluginError(f"cannot reach {host} to log in through Dex ({_reason(exc)}): check `host:`") from None
    cookies = _host_cookies(session.cookies, host)
    if not cookies:
        raise PluginError(
            f"logged in through Dex, but {host} set no session cookie: is `host:` the Kubeflow address behind "
            "oidc-authservice or oauth2-proxy (e.g. https://kubeflow.example.com/pipeline)?"
        )
    return "; ".join(f"{name}={value}" for name, value in cookies.items())


def _password_form(session: Any, page: Any, host: str, timeout: float) -> _Form:
    """Dex's password form, following at most a few "choose a connector" / "log in with email" pages."""
    for _ in range(_LOGIN_HOPS):
        if page.status_code >= 400:
            raise PluginError(
                f"{host} answered HTTP {page.status_code} at {_no_query(page.url)} instead of a Dex login page: check "
                f"`host:` and that the cluster logs in through Dex"
            )
        parsed = _LoginPage()
        parsed.feed(page.text)
        for form in parsed.forms:
            if form.has_password:
                return form
        nxt = _next_login_step(parsed)
        if nxt is None:
            break
        page = session.get(urljoin(page.url, nxt[0]), params=nxt[1], timeout=timeout)
    raise PluginError(
        f"{DEX_USERNAME_ENV} is set, but {host} led to no Dex password login form (ended at {_no_query(page.url)}): "
        "enable Dex's static-password (local) connector, or unset DEX_USERNAME/DEX_PASSWORD if no Dex is in front"
    )


def _next_login_step(page: _LoginPage) -> tuple[str, dict[str, str]] | None:
    """The link or GET form leading on to the password form: Dex's "Log in with Email" connector, or
    oauth2-proxy's "Sign in with Dex" button."""
    for marker in ("/auth/local", "/oauth2/start"):
        for link in page.links:
            if marker in link:
                return link, {}
        for form in page.forms:
            if form.method == "get" and marker in form.action:
                return form.action, form.fields
    return None


def _password_form_in(text: str) -> bool:
    parsed = _LoginPage()
    parsed.feed(text)
    return any(form.has_password for form in parsed.forms)


def _host_cookies(jar: Any, host: str) -> dict[str, str]:
    """The cookies the browser would send to ``host``: set for its domain and for a path above the host's."""
    url = urlsplit(host)
    hostname = (url.hostname or "").lower()
    path = url.path or "/"
    cookies: dict[str, str] = {}
    for cookie in jar:
        domain = cookie.domain.lower().lstrip(".")
        on_domain = hostname == domain or (cookie.domain.startswith(".") and hostname.endswith(f".{domain}"))
        if on_domain and path.startswith(cookie.path or "/") and cookie.value is not None:
            cookies[cookie.name] = cookie.value
    return cookies


# ------------------------------------------------------------------------------------------------------------------
# the pre-flight check


def check_access(host: str, auth: KfpAuth, timeout: float | None = None) -> dict[str, Any]:
    """Ask ``host``'s health endpoint with ``auth``; its answer (``multi_user``…) or one line saying what is wrong."""
    import requests

    timeout = network_timeout() if timeout is None else timeout
    url = host.rstrip("/") + HEALTHZ
    try:
        answer = requests.get(
            url, headers={"Accept": "application/json", **auth.headers()}, timeout=timeout, allow_redirects=False
        )
    except requests.Timeout:
        raise no_answer(host, "to its health check") from None
    except requests.RequestException as exc:
        raise PluginError(
            f"cannot reach Kubeflow Pipelines at {host} ({_reason(exc)}): check `host:` and the network"
        ) from None
    status = answer.status_code
    if status in (301, 302, 303, 307, 308) or status in (401, 403):
        raise PluginError(f"Kubeflow Pipelines at {host} {_refusal(status, auth)}")
    if status == 404:
        raise PluginError(
            f"{host} serves no Kubeflow Pipelines API ({HEALTHZ} answered 404): point `host:` at the pipelines API, "
            "e.g. https://kubeflow.example.com/pipeline or https://<id>-dot-<region>.pipelines.googleusercontent.com"
        )
    if status >= 400:
        raise PluginError(f"Kubeflow Pipelines at {host} answered HTTP {status} to {HEALTHZ}: try again later")
    try:
        body = answer.json()
    except ValueError:
        raise PluginError(
            f"{host}{HEALTHZ} did not answer as a Kubeflow Pipelines API (no JSON): point `host:` at the pipelines API"
        ) from None
    return body if isinstance(body, dict) else {}


def _refusal(status: int, auth: KfpAuth) -> str:
    """Why a proxy turned the request away, and what to set."""
    what = "redirected to a login page" if status < 400 else f"refused the request (HTTP {status})"
    if auth.method == "iap":
        return (
            f"{what}: the ID token for {IAP_CLIENT_ID_ENV} was not accepted; check it is the IAP OAuth client id "
            "and that the identity has IAP-secured Web App User on the cluster"
        )
    if auth.method == "gcp":
        return f"{what}: your Google account was not let in; ask for access to the AI Platform Pipelines instance"
    if auth.method == "dex":
        return f"{what}: the Dex session was not accepted; check that {DEX_USERNAME_ENV} may use Kubeflow Pipelines"
    return (
        f"{what}: set {IAP_CLIENT_ID_ENV} (behind Identity-Aware Proxy) or {DEX_USERNAME_ENV} and "
        f"{DEX_PASSWORD_ENV} (behind Dex)"
    )


def _no_query(url: str) -> str:
    """``url`` without its query (login URLs carry state and request ids, not for messages)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _reason(exc: BaseException) -> str:
    """A short, secret-free cause: the exception's class and, for a connection error, what failed."""
    text = str(exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "timed out",
        "Temporary failure",
        "No route to host",
        "certificate verify failed",
        "Network is unreachable",
    ):
        if marker in text:
            return f"{type(exc).__name__}: {marker}"
    return type(exc).__name__


def _first_line(exc: BaseException) -> str:
    """The first line of a google-auth error, without the response body it may quote."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return (text.splitlines() or [type(exc).__name__])[0][:200]
