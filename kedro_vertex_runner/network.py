"""Rules every network call of the launcher follows: URLs carry no credentials, tokens travel only over HTTPS, and
no call waits longer than the network time limit.

* **No credentials in URLs.** A configured URL (``host:``, the MLflow tracking URI, the template registry…) with a
  user or password part is refused in one line naming the key, never the value, and saying which environment
  variables carry the credentials instead. A URL shown in a message is shown without its user part
  (:func:`redact`), and any text quoted from a library's error is scrubbed of ``user:password@`` (:func:`scrub`).
* **Tokens only over HTTPS.** A Google token, an IAP ID token or a Dex session is sent only to an ``https://`` URL;
  plain ``http://`` is allowed for loopback addresses alone (local test servers) (:func:`require_https`).
* **A time limit.** Each request waits at most :func:`network_timeout` seconds to connect and as long for an
  answer: ``KEDRO_VERTEX_NETWORK_TIMEOUT`` (default 60). A server that accepts and never answers ends the command
  with one line naming the host once that time has passed.
* **A ceiling per command.** Whatever a command does itself — loading the project, compiling, every call to a
  server, one after another — ends within ``KEDRO_VERTEX_COMMAND_TIMEOUT`` seconds (default 900)
  (:func:`command_deadline`); following a job is not counted, since a job runs for as long as its tasks do
  (:func:`following`).

Standard library only.
"""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import PluginError

NETWORK_TIMEOUT_ENV = "KEDRO_VERTEX_NETWORK_TIMEOUT"
DEFAULT_NETWORK_TIMEOUT = 60.0
_USERINFO = re.compile(r"(?<=://)[^/@\s'\"]*@")
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def network_timeout() -> float:
    """Seconds a request may wait to connect, and again for an answer (``KEDRO_VERTEX_NETWORK_TIMEOUT``)."""
    raw = os.environ.get(NETWORK_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_NETWORK_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise PluginError(f"{NETWORK_TIMEOUT_ENV}={raw!r}: expected a number of seconds between 0 and 3600, e.g. 60")
    return value


def timeout_setting() -> float:
    """:func:`network_timeout`, or its default when the variable is not a valid number (for module constants read
    at import; the commands refuse a bad value with :func:`network_timeout`'s one line)."""
    try:
        return network_timeout()
    except PluginError:
        return DEFAULT_NETWORK_TIMEOUT


def has_userinfo(url: str) -> bool:
    return "://" in url and "@" in (urlsplit(url.strip()).netloc or "")


#: where the credentials go instead of a URL, by the configuration key holding the URL
CREDENTIALS_INSTEAD = {
    "host": "set DEX_USERNAME and DEX_PASSWORD (Dex) or IAP_CLIENT_ID instead",
    "pipeline_registry": "let your Application Default Credentials log in instead",
    "template_uri": "let your Application Default Credentials log in instead",
    "mlflow_tracking_uri": "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN) instead",
}
CREDENTIALS_INSTEAD["MLFLOW_TRACKING_URI"] = CREDENTIALS_INSTEAD["mlflow_tracking_uri"]


def credentials_instead(key: str) -> str | None:
    """What to do with the credentials of the URL at ``key`` (a key of :data:`CREDENTIALS_INSTEAD` in it), if known."""
    names = re.findall(r"(?<![\w-])(" + "|".join(CREDENTIALS_INSTEAD) + r")(?![\w-])", key)
    return CREDENTIALS_INSTEAD[names[-1]] if names else None


def userinfo_message(key: str, instead: str | None = None) -> str:
    """The one line refusing a URL with ``user:password@`` at ``key`` (never the value)."""
    if instead is None:
        instead = credentials_instead(key) or "pass credentials in environment variables instead"
    return (
        f"{key} holds a user name or password in its URL, which would be shown in output and logs: remove the "
        f"'user:password@' part and {instead}"
    )


def refuse_userinfo(key: str, url: str | None, instead: str | None = None) -> None:
    """One line when ``url`` (the value of ``key``) carries ``user:password@``; the value itself is never shown.

    Raises:
        PluginError: :func:`userinfo_message`.
    """
    if url and has_userinfo(str(url)):
        raise PluginError(userinfo_message(key, instead))


def redact(url: str) -> str:
    """``url`` without its user part (``https://u:p@h/x`` → ``https://h/x``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def scrub(text: str) -> str:
    """``text`` with every ``scheme://user:password@`` reduced to ``scheme://`` (for quoting library errors)."""
    return _USERINFO.sub("", text)


def brief(exc: BaseException, *, named: bool = False, limit: int | None = None) -> str:
    """A library error quoted in one of our one-line messages: its message (a Google API error's ``message``, else
    ``str(exc)``) on one line, without the request line Google's REST transport puts in front (``POST https://…:
    ``) and without secrets (:func:`scrub`); ``named``: after the error's class name (``ConnectionError: …``);
    at most ``limit`` characters."""
    message = " ".join(str(getattr(exc, "message", None) or exc).split())
    message = re.sub(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ", "", message)
    if named:
        message = f"{type(exc).__name__}: {message}"
    return scrub(message)[:limit]


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    host = (urlsplit(url if "://" in url else f"//{url}").hostname or "").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_https(url: str, what: str, key: str) -> None:
    """Refuse to send ``what`` (a token, a session) to ``url`` unless it is ``https://`` or a loopback address.

    Raises:
        PluginError: one line naming ``key`` and the host.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "https" or (scheme == "http" and is_loopback(url)):
        return
    host = urlsplit(url).hostname or url
    raise PluginError(
        f"{key}: {scheme or 'no'}:// URL of {host}: {what} is sent only over https://, never in clear text: write "
        f"https://"
    )


def timed_auth_request() -> Any:
    """A google-auth transport request whose calls wait at most :func:`network_timeout` (google-auth's default is
    two minutes)."""
    from google.auth.transport.requests import Request

    request, limit = Request(), network_timeout()

    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = min(float(kwargs.get("timeout") or limit), limit)
        return request(*args, **kwargs)

    return call


def no_answer(host: str, what: str = "") -> PluginError:
    """The one line for a server that did not answer within the limit."""
    limit = network_timeout()
    doing = f" {what}" if what else ""
    return PluginError(
        f"{redact(host)} gave no answer{doing} within {limit:g} s ({NETWORK_TIMEOUT_ENV}): check that it is "
        "reachable and up, or raise the limit"
    )


COMMAND_TIMEOUT_ENV = "KEDRO_VERTEX_COMMAND_TIMEOUT"
DEFAULT_COMMAND_TIMEOUT = 900.0


class CommandTimeout(BaseException):
    """The command ran past its ceiling (:func:`command_deadline`). A ``BaseException``, like ``KeyboardInterrupt``,
    so that no library's ``except Exception`` swallows it; the command turns it into its one ``Error:`` line
    (:meth:`as_error`)."""

    def as_error(self) -> PluginError:
        return PluginError(str(self))


def _can_time() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def command_deadline(what: str) -> Iterator[None]:
    """End ``what`` (a command) with one line once it has run ``KEDRO_VERTEX_COMMAND_TIMEOUT`` seconds, wherever
    it is: a blocking call to a server is interrupted (``SIGALRM`` in the main thread), and the command unwinds as
    from any error, so nothing it started is left behind. Time spent in :func:`following` is not counted. Nested
    deadlines leave the outer one in force; off the main thread (or without ``setitimer``) nothing is bounded."""
    from .values import env_seconds

    seconds = env_seconds(COMMAND_TIMEOUT_ENV, DEFAULT_COMMAND_TIMEOUT)
    if not _can_time() or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise CommandTimeout(
            f"{what} did not finish within {seconds:g} s ({COMMAND_TIMEOUT_ENV}; following a job is not counted): "
            "check that the servers it calls are reachable and up, or raise the limit"
        )

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextmanager
def following() -> Iterator[None]:
    """Stop the command's ceiling while a job is followed (or run here, by the local backend), and resume it with
    the time that was left."""
    remaining = signal.getitimer(signal.ITIMER_REAL)[0] if _can_time() else 0.0
    if remaining <= 0:
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, remaining)
