"""The launcher's side of the job's MLflow run: the environment the compiler gives every task
(:func:`compiled_task_env`), the tracking URI checks, keeping kedro-mlflow from opening a run in the launching
``kedro run`` and closing the job's run from the job's outcome (:func:`close_job_run`).

How the tasks share one run per job execution: :mod:`kedro_vertex_runner.task.mlflow_run`. Nothing here imports
mlflow at module import: :func:`compiled_task_env` is pure.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from .backends import backend_class
from .errors import PluginError
from .network import redact
from .task.mlflow_run import (
    ENV_AUDIENCE,
    ENV_CONSOLE_URL,
    ENV_CREATOR,
    ENV_ENABLED,
    ENV_FINALIZER,
    ENV_TASKS,
    FAILED,
    FINISHED,
    _client,
    _job_runs,
    task_key,
)

if TYPE_CHECKING:
    from kedro.framework.context import KedroContext

logger = logging.getLogger(__name__)

CONSOLE_URL = (
    "https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/runs/{{job_name}}?project={project}"
)
_SERVER_SCHEMES = ("http", "https", "databricks", "databricks-uc")
_FIX = "set server.mlflow_tracking_uri in conf/<env>/mlflow.yml to 'sqlite:///mlflow.db' or an http(s):// server"


# ---------------------------------------------------------------------------------------------------------------
# compile time (pure)


def compiled_task_env(
    *,
    tasks: Sequence[Sequence[str]],
    roots: Sequence[Sequence[str]],
    exit_handler: bool,
    project_id: str | None = None,
    region: str | None = None,
    audience: str | None = None,
) -> dict[str, str]:
    """Environment variables that switch tracking on in every task of a compiled job.

    Args:
        tasks: node names of every regular task (the exit-handler task excluded).
        roots: node names of the tasks without dependencies, in compile order; the first one creates the run.
        exit_handler: whether the job has an on-exit task (it then decides the final status).
        project_id / region: for the Vertex AI console link tag (no tag without them, e.g. on Kubeflow Pipelines).
        audience: ``run_config.mlflow.audience``; tasks mint their own identity token for it.
    """
    if not tasks or not roots:
        raise PluginError("MLflow tracking needs at least one task to compile")
    env = {
        ENV_ENABLED: "1",
        ENV_TASKS: str(len(tasks)),
        ENV_CREATOR: task_key(roots[0]),
        ENV_FINALIZER: "exit-handler" if exit_handler else "tasks",
    }
    if project_id and region:
        env[ENV_CONSOLE_URL] = CONSOLE_URL.format(region=region, project=project_id)
    if audience:
        env[ENV_AUDIENCE] = audience
    return env


# ---------------------------------------------------------------------------------------------------------------
# tracking URI checks


def check_tracking_uri(uri: str | None, *, backend: str | None = None) -> None:
    """Raise a one-line :class:`PluginError` for a tracking URI the run cannot use.

    A local file store (``mlruns``, ``./mlruns``, ``file://…``, kedro-mlflow's default) is refused by MLflow 3
    unless ``MLFLOW_ALLOW_FILE_STORE=true``. With a ``backend`` (a job of VertexRunner) it is refused in any case,
    since the job's tasks never share it; with a backend whose tasks run elsewhere (``remote_tasks``) the URI must be
    a server: tasks on Vertex AI cannot reach a sqlite file on the launching machine. The message says where the URI came from and never
    assumes VertexRunner when no backend is given (the check also guards plain ``kedro run``).
    """
    if backend is not None:
        refuse_credentials(uri)
    source = "set in mlflow.yml" if uri else None
    if not uri and os.environ.get("MLFLOW_TRACKING_URI"):
        uri, source = os.environ["MLFLOW_TRACKING_URI"], "from MLFLOW_TRACKING_URI"
    uri, source = uri or "mlruns", source or "kedro-mlflow's default: mlflow.yml sets none"
    scheme = urlparse(uri).scheme.lower()
    is_file = scheme in ("", "file") or (len(scheme) == 1 and uri[1:2] == ":")  # C:\… on Windows
    # MLflow's own reading of its switch (mlflow.environment_variables: "true" or "1"), not the plugin's on words
    allowed = os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("true", "1")
    if is_file and (backend is not None or not allowed):
        why = "MLflow 3 refuses and the job's tasks could not share" if backend else "MLflow 3 refuses"
        raise PluginError(f"MLflow tracking URI {redact(uri)!r} is a local file store, which {why} ({source}): {_FIX}")
    remote = None if backend is None else backend_class(backend)
    if remote is not None and remote.remote_tasks and scheme not in _SERVER_SCHEMES:
        raise PluginError(
            f"MLflow tracking URI {redact(uri)!r} is not reachable from tasks on {remote.title} ({source}): set "
            "server.mlflow_tracking_uri in conf/<env>/mlflow.yml to an http(s):// MLflow server "
            "(behind IAP or Cloud Run, also set run_config.mlflow.audience)"
        )


def refuse_credentials(uri: str | None) -> None:
    """One line when the tracking URI (``uri`` from mlflow.yml, else ``MLFLOW_TRACKING_URI``) carries a user name or
    password: MLflow and kedro-mlflow quote the URI in messages and tracebacks.

    Raises:
        PluginError: naming the key, never the value, and the variables that carry the credentials instead.
    """
    from .network import refuse_userinfo

    refuse_userinfo("server.mlflow_tracking_uri in mlflow.yml", uri)
    if not uri:
        refuse_userinfo("MLFLOW_TRACKING_URI", os.environ.get("MLFLOW_TRACKING_URI"))


def project_mlflow_config(config_loader: Any) -> dict[str, Any] | None:
    """The project's ``mlflow.yml`` as the config loader reads it; None when the project has none."""
    from kedro.config import MissingConfigException

    patterns = getattr(config_loader, "config_patterns", None)
    if isinstance(patterns, dict):
        patterns.setdefault("mlflow", ["mlflow*", "mlflow*/**", "**/mlflow*"])
    try:
        conf = config_loader["mlflow"]
    except (MissingConfigException, KeyError):
        return None
    return dict(conf or {})


def project_tracking_uri(config_loader: Any) -> str | None:
    """``server.mlflow_tracking_uri`` of the project's ``mlflow.yml`` as written (None when unset or no file)."""
    conf = project_mlflow_config(config_loader) or {}
    return (conf.get("server") or {}).get("mlflow_tracking_uri")


def check_project_tracking(context: KedroContext, *, backend: str | None = None) -> None:
    """:func:`check_tracking_uri` for a project using kedro-mlflow; a no-op when kedro-mlflow is not installed.

    Called for every Kedro command that creates a context (from the plugin's ``after_context_created`` hook, before
    kedro-mlflow's, which fails with a long traceback on a file store), so it must never get in the way of a project
    that does not use the plugin's runner. With ``backend=None`` it raises only where kedro-mlflow itself is about
    to fail: kedro-mlflow active, no MLflow run already active in the process (kedro-mlflow then skips its setup) and
    a file-store URI MLflow refuses that the project chose in its ``mlflow.yml``. It imports neither mlflow nor
    kedro-mlflow, and any other problem reading ``mlflow.yml`` is left to kedro-mlflow to report.

    A project with no ``mlflow.yml`` at all (and no ``MLFLOW_TRACKING_URI``) has not chosen MLflow: kedro-mlflow,
    installed for other projects (e.g. through this plugin's ``mlflow`` extra), would still set up its default
    ``./mlruns`` store and crash on MLflow 3. Such a project keeps running as kedro-mlflow documents it, with
    ``MLFLOW_ALLOW_FILE_STORE=true`` set for this process and one warning saying how to choose otherwise.
    """
    if not kedro_mlflow_active():
        return
    if backend is None and _mlflow_run_active():
        return
    try:
        conf = project_mlflow_config(context.config_loader)
    except Exception:  # a broken mlflow.yml: kedro-mlflow reports it in its own words
        if backend is not None:
            raise
        return
    if backend is None and conf is None and not os.environ.get("MLFLOW_TRACKING_URI"):
        _allow_default_file_store()
        return
    check_tracking_uri(((conf or {}).get("server") or {}).get("mlflow_tracking_uri"), backend=backend)


def _allow_default_file_store() -> None:
    if os.environ.get("MLFLOW_ALLOW_FILE_STORE"):  # the user decided already
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    logger.warning(
        "kedro-mlflow is installed but this project has no mlflow.yml: it logs to its default ./mlruns file store "
        "(MLFLOW_ALLOW_FILE_STORE=true set for this run, as MLflow 3 refuses file stores otherwise); run `kedro "
        'mlflow init` to choose a tracking URI, or add "kedro-mlflow" to DISABLE_HOOKS_FOR_PLUGINS in settings.py'
    )


def _mlflow_run_active() -> bool:
    """An MLflow run is active in this process (checked only when mlflow is already imported: never imports it)."""
    import sys

    mlflow = sys.modules.get("mlflow")
    try:
        return bool(mlflow is not None and mlflow.active_run())
    except Exception:
        return False


def kedro_mlflow_active() -> bool:
    """kedro-mlflow is installed and its hooks are not listed in ``DISABLE_HOOKS_FOR_PLUGINS`` (settings.py)."""
    from importlib.util import find_spec

    if find_spec("kedro_mlflow") is None:
        return False
    from kedro.framework.project import settings

    disabled = {str(name).replace("-", "_") for name in getattr(settings, "DISABLE_HOOKS_FOR_PLUGINS", ()) or ()}
    return "kedro_mlflow" not in disabled


# ---------------------------------------------------------------------------------------------------------------
# the launching process


def suppress_launcher_run(context: KedroContext | None, pipeline_names: Sequence[str] | None) -> None:
    """Keep kedro-mlflow from opening a run in ``kedro run --runner=VertexRunner`` itself (the job has its own).

    Call from a ``before_pipeline_run`` hook that runs before kedro-mlflow's (``tryfirst=True``).
    """
    config = getattr(context, "mlflow", None)
    if config is None:
        return
    disabled = config.tracking.disable_tracking.pipelines
    for name in pipeline_names or ["__default__"]:
        if name not in disabled:
            disabled.append(name)


def find_job_run(context: KedroContext, *, job_id: str | None = None, job_name: str | None = None) -> Any:
    """The MLflow run of one job (by job id or job name) in the project's experiment, or None."""
    config = getattr(context, "mlflow", None)
    if config is None:
        return None
    with launcher_requests():
        client = _client(config.server.mlflow_tracking_uri)
        experiment = client.get_experiment_by_name(config.tracking.experiment.name)
        if experiment is None:
            return None
        runs = _job_runs(client, experiment.experiment_id, job_id=job_id, job_name=job_name)
    return runs[0] if runs else None


@contextlib.contextmanager
def launcher_requests() -> Iterator[None]:
    """While inside: the launcher's MLflow requests wait at most the network time limit and are retried once
    (MLflow's defaults: 120 s and 7 retries with backoff), unless the user set MLflow's variables. The variables are
    put back afterwards, so task processes started later inherit none of it."""
    from .network import network_timeout

    bounds = {
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(network_timeout()))),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    }
    added = [name for name in bounds if name not in os.environ]
    os.environ.update({name: bounds[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def setup_failure(exc: BaseException) -> PluginError | None:
    """One line for kedro-mlflow failing to set up its tracking server as the project loads (None: not that)."""
    if not type(exc).__module__.startswith(("mlflow", "kedro_mlflow", "requests", "urllib3")):
        return None
    import re

    from .network import scrub

    text = " ".join(str(exc).split())
    request = re.search(r"API request to (\S+) failed", text)
    status = re.search(r"too many (\d{3}) error responses", text)
    if request:
        detail = f"request to {request.group(1)} failed" + (f" with HTTP {status.group(1)}" if status else "")
    else:
        detail = text.split(". Response body", 1)[0][:200]
    detail = scrub(detail)
    return PluginError(
        f"kedro-mlflow could not set up the MLflow tracking server of mlflow.yml ({type(exc).__name__}: {detail}): "
        "check server.mlflow_tracking_uri and that the server is up, or list kedro-mlflow in "
        "DISABLE_HOOKS_FOR_PLUGINS (settings.py) to run without tracking"
    )


def close_job_run(
    context: KedroContext, *, succeeded: bool, job_id: str | None = None, job_name: str | None = None
) -> str | None:
    """After the launcher saw the job end: set its run's status from the job's outcome; returns the run id.

    The job state is authoritative: it also covers tasks that were killed before they could report.
    """
    config = getattr(context, "mlflow", None)  # kedro-mlflow's settings, set on the context by its hook
    if config is None:
        return None
    run = find_job_run(context, job_id=job_id, job_name=job_name)
    if run is None:
        return None
    status = FINISHED if succeeded else FAILED
    if run.info.status != status:
        with launcher_requests():
            _client(config.server.mlflow_tracking_uri).set_terminated(run.info.run_id, status)
    return run.info.run_id


__all__ = [
    "check_project_tracking",
    "check_tracking_uri",
    "close_job_run",
    "compiled_task_env",
    "find_job_run",
    "kedro_mlflow_active",
    "launcher_requests",
    "refuse_credentials",
    "setup_failure",
    "suppress_launcher_run",
]
