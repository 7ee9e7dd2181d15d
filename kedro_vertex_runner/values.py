"""Rules for values that reach the plugin as text from several places, kept once each.

On/off switches (environment variables, ``--runner-params``, boolean ``--param`` values), pipeline parameter types
(the compiler declares them, a task reads them back), Kubernetes memory quantities (``vertexai.yml`` validates
them, the compiler converts them) and run ids (``--runner-params run_id=``, the entrypoint, the job's folder) each
had several copies that could drift apart; every module asks this one. Standard library only: the in-container
entrypoint imports it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .errors import PluginError

# ---------------------------------------------------------------------------------------------------------------
# on/off switches

TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def switch(value: Any) -> bool | None:
    """``True``/``False`` for a boolean or an on/off word (``1 true yes on`` / ``0 false no off``, any case and
    surrounding spaces), ``None`` for anything else (unset, empty, a typo): the caller decides what that means."""
    if isinstance(value, bool):
        return value
    text = ("" if value is None else str(value)).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    return None


def is_on(value: Any) -> bool:
    """Whether ``value`` is an on word (an unset or unknown value is off)."""
    return switch(value) is True


# ---------------------------------------------------------------------------------------------------------------
# pipeline parameter types (KFP PipelineSpec ``parameterType``)

#: Python type → parameter type, in the order to test them (bool before int: bool is an int subclass)
PARAMETER_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "BOOLEAN"),
    (int, "NUMBER_INTEGER"),
    (float, "NUMBER_DOUBLE"),
    (str, "STRING"),
    (list, "LIST"),
    (dict, "STRUCT"),
)
#: parameter type → what a value of it looks like, in words (for "expected …" messages)
PARAMETER_TYPE_WORDS = {
    "STRING": "a string",
    "NUMBER_INTEGER": "a whole number",
    "NUMBER_DOUBLE": "a number",
    "BOOLEAN": "true or false",
    "LIST": "a JSON list",
    "STRUCT": "a JSON object",
}


def parameter_type(value: Any) -> str | None:
    """The parameter type a Python value is declared with, or ``None`` for a value no parameter can hold."""
    for python_type, spec_type in PARAMETER_TYPES:
        if isinstance(value, python_type):
            return spec_type
    return None


def typed_parameter(value: Any, kind: str) -> Any:
    """``value`` (a Python value, or its text on a command line) as a parameter of type ``kind``.

    Integers come back as ``int`` even when they travelled as ``3.0`` (protobuf stores every number as a double).

    Raises:
        ValueError: the value does not fit the type; the message is what was expected (``"a whole number"``).
    """
    kind = kind.upper()
    if kind not in PARAMETER_TYPE_WORDS:
        raise ValueError(f"one of the types {', '.join(PARAMETER_TYPE_WORDS)}")
    expected = PARAMETER_TYPE_WORDS[kind]
    if kind == "STRING":
        return value if isinstance(value, str) else str(value)
    if kind == "BOOLEAN":
        flag = switch(value) if isinstance(value, (bool, str)) else None
        if flag is None:
            raise ValueError(expected)
        return flag
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError(expected) from None
    if kind == "NUMBER_INTEGER":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(expected)
    elif kind == "NUMBER_DOUBLE":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(expected)
    elif not isinstance(value, list if kind == "LIST" else dict):
        raise ValueError(expected)
    return value


# ---------------------------------------------------------------------------------------------------------------
# memory quantities

#: a memory size as ``vertexai.yml`` takes it: ``512Mi``, ``4Gi``, ``16G`` (``16g`` means ``16G``)
MEMORY_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)([KMGTPE]i?|[kmgtpe])?$")
_MEMORY_UNITS = {
    "": 1,
    "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def _memory_parts(memory: str) -> tuple[str, str]:
    match = MEMORY_QUANTITY.match(memory)
    if not match:
        raise ValueError(f"expected a size such as '512Mi', '4Gi' or '16G', got {memory!r}")
    return match.group(1), match.group(2) or ""


def memory_quantity_bytes(memory: str) -> float:
    """Bytes of a memory size (``'4Gi'`` → 4 * 2**30; ``16g`` means ``16G``); ``ValueError`` for another form."""
    number, unit = _memory_parts(memory)
    return float(number) * _MEMORY_UNITS[unit[:1].upper() + unit[1:]]


def memory_quantity(memory: str) -> str:
    """``16g`` → ``16G``: Kubernetes quantities have upper-case unit letters (``m`` would mean milli-bytes)."""
    number, unit = _memory_parts(memory)
    return number + unit[:1].upper() + unit[1:]


# ---------------------------------------------------------------------------------------------------------------
# run ids

# a run id names the job's folder and travels on task command lines: one safe path segment, never an option
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_run_id(value: Any, label: str = "run id ") -> str:
    """``value`` as a run id, if it is one: letters, digits, ``_``, ``.`` and ``-``, starting with a letter or digit
    (so never ``..``, a path or an option), at most 128 characters.

    The one rule for every place a run id enters: ``--runner-params run_id=``, the local backend, the entrypoint.

    Raises:
        PluginError: ``<label><value>: expected …`` (the value shown escaped).
    """
    text = str(value)
    if not RUN_ID.fullmatch(text):
        raise PluginError(
            f"{label}{text!a}: expected an id such as local-20240101-120000-abc123 (at most 128 letters, digits, "
            "'-', '_' or '.', starting with a letter or digit)"
        )
    return text


# ---------------------------------------------------------------------------------------------------------------
# tasks at once, and the environment switches a user sets

#: tasks the local backend runs at once (``--runner-params max_workers=``, ``run_config.local.max_workers``)
MAX_WORKERS = 1024


def check_max_workers(value: Any, label: str = "--runner-params max_workers=") -> int:
    """``value`` (a number or its text) as a count of tasks run at once, 1 to :data:`MAX_WORKERS`.

    Raises:
        PluginError: ``<label><value>: expected a whole number from 1 to 1024``.
    """
    text = str(value).strip()
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_WORKERS):  # not int(): it cuts 1.5 to 1
        shown = ascii(value[:40]) if isinstance(value, str) else ascii(value)
        raise PluginError(f"{label}{shown}: expected a whole number from 1 to {MAX_WORKERS}")
    return int(text)


#: on/off environment variables a user sets (``1 true yes on`` / ``0 false no off``)
ENV_SWITCHES = ("KEDRO_VERTEX_WARM_START", "KEDRO_VERTEX_PLAIN_LOGS", "KEDRO_VERTEX_ANONYMOUS_CREDENTIALS")
#: environment variables holding seconds: the longest sane value of each
ENV_SECONDS = {
    "KEDRO_VERTEX_POLL_INTERVAL": 3600.0,
    "KEDRO_VERTEX_BUCKET_CHECK_TIMEOUT": 3600.0,
    "KEDRO_VERTEX_COMMAND_TIMEOUT": 86400.0,
}


def cache_dir(name: str) -> Any:
    """The plugin's folder ``name`` among this user's caches: ``$XDG_CACHE_HOME`` (default ``~/.cache``)
    ``/kedro-vertex-runner/<name>`` (a ``Path``; not created here)."""
    import os
    from pathlib import Path

    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kedro-vertex-runner" / name


def env_seconds(name: str, default: float, environ: Any = None) -> float:
    """Seconds from the environment variable ``name`` (``default`` when unset or empty): a finite number above 0
    and at most its bound in :data:`ENV_SECONDS`.

    Raises:
        PluginError: ``NAME='x': expected a number of seconds above 0 and at most 3600; fix or unset it``.
    """
    import math
    import os

    raw = (os.environ if environ is None else environ).get(name)
    if raw is None or not raw.strip():
        return default
    maximum = ENV_SECONDS.get(name, math.inf)
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= maximum):
        raise PluginError(
            f"{name}={raw[:40]!a}: expected a number of seconds above 0 and at most {maximum:g}; fix or unset it"
        )
    return value


def check_environment(environ: Any = None) -> None:
    """Every ``KEDRO_VERTEX_*`` variable a user sets, checked before anything starts: on/off words for the
    switches, a sane number of seconds for the others.

    Raises:
        PluginError: one line naming the variable, its value and what it takes.
    """
    import os

    environ = os.environ if environ is None else environ
    for name in ENV_SWITCHES:
        raw = environ.get(name)
        if raw is not None and raw.strip() and switch(raw) is None:
            raise PluginError(
                f"{name}={raw[:40]!a}: expected an on/off word ({', '.join(sorted(TRUE_WORDS))} / "
                f"{', '.join(sorted(FALSE_WORDS))}); fix or unset it"
            )
    for name in ENV_SECONDS:
        env_seconds(name, 0.0, environ)
