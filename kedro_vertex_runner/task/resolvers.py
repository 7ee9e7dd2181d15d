"""``${vertex:…}`` values in any Kedro config file: the job's run id, job name, git state and forwarded variables.

Syntax (one OmegaConf resolver named ``vertex``; the first argument is the key, the optional second the default)::

    ${vertex:run_id}                 the job's run id; every task of one job sees the same value
    ${vertex:job_name}               the job's name
    ${vertex:commit_id, dirty}       KEDRO_CONFIG_COMMIT_ID, else `git rev-parse HEAD`, else the default
    ${vertex:branch_name, main}      KEDRO_CONFIG_BRANCH_NAME, else the current git branch, else the default
    ${vertex:<name>}                 the environment variable KEDRO_CONFIG_<NAME> (name upper-cased)
    ${vertex:<name>, <default>}      ... or <default> when that variable is not set

A key with no value and no default raises :class:`~kedro_vertex_runner.errors.PluginError` naming the key, so a
typo never silently becomes an empty path segment.

Where the values come from, and why:

* ``run_id``: ``KEDRO_VERTEX_RUN_ID`` when set (each task gets it from the compiled spec — on Vertex AI that is
  ``{{$.pipeline_job_uuid}}``), otherwise an id generated once per process, ``local-<yyyymmdd-hhmmss>-<6 hex>``
  (UTC). The process-wide id is what the local backend hands to every task, so the runner process and all tasks
  agree; both formats are safe as a single path segment.
* ``job_name``: ``KEDRO_VERTEX_JOB_NAME`` when set, otherwise ``<project>-<run id>`` lower-cased to
  ``[a-z0-9-]`` (the project is the Kedro package name, or the current directory's name).
* ``commit_id`` / ``branch_name``: the same variables as any ``KEDRO_CONFIG_*`` name, with git as a fallback so
  ``kedro run`` on a laptop works without exporting anything; git is asked at most once per process.

Resolvers are process-global in OmegaConf, so registering on import (the plugin's hooks module imports this one
before any config loader exists) makes the syntax work in every config file without touching ``settings.py``.

Switching off: ``KEDRO_VERTEXAI_DISABLE_CONFIG_HOOK=true`` (also ``1``/``yes``) logs one warning and leaves every
``${vertex:…}`` value as its literal text (e.g. the string ``"${vertex:run_id}"``), so projects with their own
``vertex`` resolver or templating can opt out without config loading failing.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from typing import Any

from ..errors import PluginError
from ..values import check_run_id, is_on

logger = logging.getLogger(__name__)

RESOLVER_NAME = "vertex"
RUN_ID_ENV = "KEDRO_VERTEX_RUN_ID"
JOB_NAME_ENV = "KEDRO_VERTEX_JOB_NAME"
DISABLE_ENV = "KEDRO_VERTEXAI_DISABLE_CONFIG_HOOK"
CONFIG_ENV_PREFIX = "KEDRO_CONFIG_"

_lock = threading.Lock()
_generated_run_id: str | None = None
_git_cache: dict[str, str | None] = {}
_warned_disabled = False
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def disabled() -> bool:
    """Whether ``KEDRO_VERTEXAI_DISABLE_CONFIG_HOOK`` switches the resolvers off."""
    return is_on(os.environ.get(DISABLE_ENV))


def new_local_run_id() -> str:
    """A fresh ``local-<yyyymmdd-hhmmss>-<6 hex>`` id (UTC); sortable by start time, unique enough per machine."""
    return f"local-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


def current_run_id() -> str:
    """The run id of this process: ``KEDRO_VERTEX_RUN_ID``, else one id generated on first call and kept."""
    from_env = os.environ.get(RUN_ID_ENV)
    if from_env:
        return from_env
    global _generated_run_id
    with _lock:
        if _generated_run_id is None:
            _generated_run_id = new_local_run_id()
        return _generated_run_id


def _project_name() -> str:
    # only a project that is already configured counts: importing kedro.framework.project here would set up logging
    project = sys.modules.get("kedro.framework.project")
    package = getattr(project, "PACKAGE_NAME", None)
    return package or os.path.basename(os.getcwd()) or "kedro"


def current_job_name() -> str:
    """``KEDRO_VERTEX_JOB_NAME``, else ``<project>-<run id>`` reduced to lowercase letters, digits and dashes."""
    from_env = os.environ.get(JOB_NAME_ENV)
    if from_env:
        return from_env
    raw = f"{_project_name()}-{current_run_id()}".lower()
    return re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", raw)).strip("-")


def set_run_context(run_id: str, job_name: str | None = None) -> None:
    """Make ``run_id`` (and ``job_name``) this process's values, and those of every child process it starts.

    Environment variables rather than module state, so that a task's own subprocesses (and a second import of
    this module under another name) resolve the same values.
    """
    if not run_id:
        raise PluginError("the run id must not be empty")
    os.environ[RUN_ID_ENV] = str(run_id)
    if job_name:
        os.environ[JOB_NAME_ENV] = str(job_name)
    else:
        os.environ.pop(JOB_NAME_ENV, None)


def _git(*args: str) -> str | None:
    key = " ".join(args)
    with _lock:
        if key in _git_cache:
            return _git_cache[key]
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, check=True, stdin=subprocess.DEVNULL
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    value = out or None
    if key == "rev-parse --abbrev-ref HEAD" and value == "HEAD":  # detached checkout: no branch
        value = None
    with _lock:
        _git_cache[key] = value
    return value


def _lookup(key: str) -> str | None:
    name = key.upper()
    if name == "RUN_ID":
        return current_run_id()
    if name == "JOB_NAME":
        return current_job_name()
    value = os.environ.get(CONFIG_ENV_PREFIX + name)
    if value is not None:
        return value
    if name == "COMMIT_ID":
        return _git("rev-parse", "HEAD")
    if name == "BRANCH_NAME":
        return _git("rev-parse", "--abbrev-ref", "HEAD")
    return None


_MISSING = object()


def resolve(key: Any = _MISSING, default: Any = _MISSING, *extra: Any) -> Any:
    """The value of ``${vertex:key}`` / ``${vertex:key, default}`` (the resolver OmegaConf calls)."""
    if disabled():
        _warn_disabled()
        args = [a for a in (key, default, *extra) if a is not _MISSING]
        return "${" + RESOLVER_NAME + ":" + ", ".join(str(a) for a in args) + "}"
    if key is _MISSING or not isinstance(key, str) or not _NAME.match(key.strip()):
        raise PluginError(
            f"${{{RESOLVER_NAME}:{'' if key is _MISSING else key}}}: expected a key such as run_id, job_name, "
            f"commit_id, branch_name or a KEDRO_CONFIG_<NAME> variable name"
        )
    if extra:
        raise PluginError(f"${{{RESOLVER_NAME}:{key}, …}}: takes a key and at most one default")
    key = key.strip()
    value = _lookup(key)
    if value is not None:
        return value
    if default is not _MISSING:
        return default
    raise PluginError(
        f"${{{RESOLVER_NAME}:{key}}} has no value: set {CONFIG_ENV_PREFIX}{key.upper()} or give a default, "
        f"e.g. ${{{RESOLVER_NAME}:{key}, some-default}}"
    )


def _warn_disabled() -> None:
    global _warned_disabled
    if not _warned_disabled:
        _warned_disabled = True
        logger.warning(
            "%s is set: ${%s:…} values in the config will not be substituted (they stay literal text)",
            DISABLE_ENV,
            RESOLVER_NAME,
        )


def register_resolvers() -> None:
    """Register the ``vertex`` resolver with OmegaConf (idempotent; replaces an earlier registration)."""
    from omegaconf import OmegaConf

    if disabled():
        _warn_disabled()
    register = getattr(OmegaConf, "register_resolver", None)
    if register is not None:  # omegaconf >= 2.4
        register(RESOLVER_NAME, resolve, replace=True, use_cache=False, annotation_validation="off")
    else:  # pragma: no cover - omegaconf 2.3
        OmegaConf.register_new_resolver(RESOLVER_NAME, resolve, replace=True, use_cache=False)


register_resolvers()

__all__ = [
    "check_run_id",
    "current_job_name",
    "current_run_id",
    "disabled",
    "new_local_run_id",
    "register_resolvers",
    "resolve",
    "set_run_context",
]
