"""What counts as a secret, judged by name and by value, so that none is ever written into a compiled pipeline.

A compiled spec is uploaded with every job and shown in the Vertex AI console: anything in it is readable by
everyone who can see the project's pipelines. Environment variables (``run_config.env``, forwarded
``KEDRO_CONFIG_*``), runtime parameters (``--params``, ``schedules.<name>.params``) and every other config value
that reaches the spec are checked here, in one place, by :func:`secret_reason`: by *name* (``DB_PASSWORD``,
``GITHUB_TOKEN``, ``aws_creds``) and by *value* (a private key block, a URL with a password, a Google, AWS, GitHub or
Slack token). Messages name the key and the rule that matched, never the value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# names: fragments that mean a secret wherever they appear in a name ...
_SECRET_FRAGMENTS = re.compile(
    r"PASSW|PASSPHRASE|SECRET|CREDENTIAL|TOKEN|API_?KEY|PRIVATE_?KEY|ACCESS_?KEY|AUTH_?KEY|SIGNING_?KEY"
    r"|SESSION_?KEY|CLIENT_?KEY",
    re.IGNORECASE,
)
# ... and short words that mean one only as a whole word of the name (DB_PASS, dbPwd; not BYPASS_CACHE, COMPASS)
_SECRET_WORDS = frozenset({"PASS", "PWD", "PASSWD", "CRED", "CREDS", "APIKEY", "PAT"})
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")

# values: shapes that are secrets whatever they are called
_SECRET_VALUES = (
    ("a private key", re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----")),
    ("a URL with a password", re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@]*:[^\s/@]+@[^\s/@]")),
    ("a Google API key", re.compile(r"AIza[0-9A-Za-z_-]{35}")),
    ("a Google OAuth token", re.compile(r"ya29\.[0-9A-Za-z_-]{20,}|1//0[0-9A-Za-z_-]{30,}|GOCSPX-[0-9A-Za-z_-]{20,}")),
    ("an AWS access key", re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|AIPA)[0-9A-Z]{16}(?![A-Z0-9])")),
    ("a GitHub token", re.compile(r"gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,}")),
    ("a Slack token", re.compile(r"xox[abposr]-[0-9A-Za-z-]{10,}")),
    ("a signed token (JWT)", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
)

HOW_TO_PASS_SECRETS = (
    "keep it in Secret Manager and give the tasks its reference in run_config.secrets, or in a credentials file "
    "the tasks read (conf/<env>/credentials.yml in the image, or a mounted file)"
)


def secret_reason(name: str | None = None, value: Any = None) -> str | None:
    """Why a ``name``/``value`` pair looks like a secret (e.g. ``"its name contains 'PASS'"``), or None.

    The reason never contains the value, so it is safe to print.
    """
    if name is not None:
        text = str(name)
        fragment = _SECRET_FRAGMENTS.search(text)
        if fragment:
            return f"its name contains {fragment.group().upper()!r}"
        for word in _WORD.findall(text):
            if word.upper() in _SECRET_WORDS:
                return f"its name contains {word.upper()!r}"
    if isinstance(value, str) and value:
        for what, shape in _SECRET_VALUES:
            if shape.search(value):
                return f"its value looks like {what}"
    return None


def find_secret(data: Any, path: str, *, names: bool = True) -> tuple[str, str] | None:
    """The first ``(key path, reason)`` in ``data`` that looks like a secret: every string is judged by value and,
    with ``names``, every mapping key by name. ``path`` names ``data`` itself (``--params``, ``run_config.env``)."""
    for where, key, value in _walk(data, path):
        reason = secret_reason(key if names else None, value)
        if reason:
            return where, reason
    return None


def secret_message(where: str, reason: str) -> str:
    """The one line that refuses a secret found at ``where``."""
    if reason == "its value looks like a URL with a password":
        from .network import credentials_instead

        instead = credentials_instead(where)
        if instead:  # a URL the launcher itself calls: the credentials have their own variables
            return f"{where}: looks like a secret ({reason}): remove the 'user:password@' part and {instead}"
    return (
        f"{where}: looks like a secret ({reason}) and must never be stored in the compiled pipeline (it is uploaded "
        f"and shown in the Vertex AI console): {HOW_TO_PASS_SECRETS}"
    )


def _walk(data: Any, path: str, key: str | None = None) -> Iterator[tuple[str, str | None, Any]]:
    yield path, key, data
    if isinstance(data, dict):
        for child_key, child in data.items():
            yield from _walk(child, f"{path}.{child_key}" if path else str(child_key), str(child_key))
    elif isinstance(data, (list, tuple)):
        for index, child in enumerate(data):
            yield from _walk(child, f"{path}[{index}]", None)
