"""One MLflow run per job execution, shared by every task of the job (through kedro-mlflow): the tasks' side.

Why this module exists: kedro-mlflow opens a run in ``before_pipeline_run`` and closes it in
``after_pipeline_run``. On Vertex AI every task is its own ``kedro run``, so left alone each task would open its own
run and the launching ``kedro run --runner=VertexRunner`` one more. Here:

* **One run per execution, created inside the job.** The run is found by the tag ``kedro_vertex.job_id`` (the
  job's ``{{$.pipeline_job_uuid}}``, new for every execution, so scheduled firings never share a run). One task, the
  *creator* (the first root task, chosen at compile time), creates it; the other tasks poll for it. No extra task is
  needed. Should the creator never get that far, the others create it after ``wait`` seconds; concurrent creators
  converge on the earliest-created run and delete their own duplicate.
* **Tasks join instead of opening their own.** :func:`task_run` starts the job run *before* the session runs, so
  kedro-mlflow sees an already active run: it logs into it and leaves it open (its documented orchestrator mode).
  kedro-mlflow logs a node's parameters in ``before_node_run``; every task of a job resolves the same
  configuration, so a parameter logged by two tasks has the same value, which MLflow accepts.
* **Status follows the job.** Each task records ``kedro_vertex.task.<key>`` = RUNNING / FINISHED / FAILED on the
  run. A failing task sets the run FAILED at once. Without an on-exit pipeline the task that completes the set of
  ``KEDRO_VERTEX_MLFLOW_TASKS`` tasks sets FINISHED (no extra task: each costs about two minutes of start-up); with
  one, the exit-handler task decides: FAILED if a task failed or never reported its end (killed), else FINISHED.
  A launcher that waits for the job (``kedro run`` with the local backend or ``wait=true``) then sets the status
  from the job's real outcome with :func:`kedro_vertex_runner.mlflow_tracking.close_job_run`, which also covers
  tasks killed without a chance to report (out of memory, timeout, cancellation).
* **Auth.** With ``run_config.mlflow.audience`` each task mints a Google identity token for that audience at run
  time (:func:`use_identity_token`) into ``MLFLOW_TRACKING_TOKEN`` of its own process, refreshed before expiry.
  The compiled spec carries only the audience; tokens are never logged.

The launcher's side (the compiled environment, the tracking URI checks, closing the run from the job's outcome)
is :mod:`kedro_vertex_runner.mlflow_tracking`. Nothing here imports mlflow or google-auth at module import: a task
does nothing unless ``KEDRO_VERTEX_MLFLOW=1`` is in its environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import PluginError

if TYPE_CHECKING:
    from kedro.framework.session import KedroSession

logger = logging.getLogger(__name__)

# environment of every task, written by the compiler (never a secret)
ENV_ENABLED = "KEDRO_VERTEX_MLFLOW"
ENV_TASKS = "KEDRO_VERTEX_MLFLOW_TASKS"
ENV_CREATOR = "KEDRO_VERTEX_MLFLOW_CREATOR"
ENV_FINALIZER = "KEDRO_VERTEX_MLFLOW_FINALIZER"  # "tasks" or "exit-handler"
ENV_AUDIENCE = "KEDRO_VERTEX_MLFLOW_AUDIENCE"
ENV_CONSOLE_URL = "KEDRO_VERTEX_MLFLOW_CONSOLE_URL"  # with a literal {job_name}
TOKEN_ENV = "MLFLOW_TRACKING_TOKEN"

# run tags
TAG_JOB_ID = "kedro_vertex.job_id"
TAG_JOB_NAME = "kedro_vertex.job_name"
TAG_CONSOLE_URL = "kedro_vertex.console_url"
TAG_ENV = "kedro_vertex.kedro_env"
TAG_PIPELINE = "kedro_vertex.pipeline"
TAG_COMMIT = "kedro_vertex.commit_id"
TAG_GIT_COMMIT = "mlflow.source.git.commit"
TASK_TAG_PREFIX = "kedro_vertex.task."

RUNNING, FINISHED, FAILED = "RUNNING", "FINISHED", "FAILED"


# ---------------------------------------------------------------------------------------------------------------
# the task's key (the compiler names the creator task by it)


def task_key(node_names: Sequence[str]) -> str:
    """A short stable id of one task, from its node names (the same in the compiler and in the task)."""
    return hashlib.sha1("\n".join(sorted(node_names)).encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------------------------
# identity tokens


def mint_identity_token(audience: str) -> str:
    """A Google identity token for ``audience``, from the task's service account (metadata server) or
    ``GOOGLE_APPLICATION_CREDENTIALS``.

    Raises:
        PluginError: one line saying why no token could be minted.
    """
    try:
        import google.auth.exceptions
        import google.auth.transport.requests
        import google.oauth2.id_token
    except ImportError:  # pragma: no cover - google-auth is a dependency
        raise PluginError("run_config.mlflow.audience needs google-auth: pip install google-auth") from None
    try:
        return google.oauth2.id_token.fetch_id_token(google.auth.transport.requests.Request(), audience)
    except google.auth.exceptions.GoogleAuthError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise PluginError(
            f"cannot mint a Google identity token for MLflow (audience {audience!r}): {reason}; run the tasks as "
            "a service account (run_config.service_account) or set GOOGLE_APPLICATION_CREDENTIALS to a "
            "service-account key"
        ) from None


def _token_lifetime(token: str) -> float:
    """Seconds until ``token`` expires (from its ``exp`` claim; 3600 when unreadable)."""
    import base64
    import json

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return max(0.0, float(claims["exp"]) - time.time())
    except Exception:
        return 3600.0


def use_identity_token(audience: str, environ: MutableMapping[str, str] | None = None) -> threading.Thread:
    """Put a fresh identity token for ``audience`` into ``MLFLOW_TRACKING_TOKEN`` of this process and keep it fresh.

    MLflow reads that variable on every request, so a daemon thread re-mints the token five minutes before it
    expires (long tasks outlive the one-hour token). Returns that thread.
    """
    environ = os.environ if environ is None else environ
    environ[TOKEN_ENV] = token = mint_identity_token(audience)

    def refresh(token: str) -> None:
        while True:
            time.sleep(max(60.0, _token_lifetime(token) - 300))
            try:
                token = mint_identity_token(audience)
                environ[TOKEN_ENV] = token
            except PluginError as exc:
                logger.warning("%s (will retry in a minute)", exc)
                token = ""

    thread = threading.Thread(target=refresh, args=(token,), name="mlflow-identity-token", daemon=True)
    thread.start()
    return thread


# ---------------------------------------------------------------------------------------------------------------
# the job's run


def job_tags(
    *,
    job_id: str,
    job_name: str,
    kedro_env: str | None = None,
    pipeline_names: Sequence[str] = (),
    commit_id: str | None = None,
    console_url: str | None = None,
) -> dict[str, str]:
    """The tags of a job's run (``console_url`` may hold a literal ``{job_name}``)."""
    tags = {TAG_JOB_ID: job_id, TAG_JOB_NAME: job_name}
    if console_url and not job_id.startswith("local-"):  # the local backend's jobs have no console page
        tags[TAG_CONSOLE_URL] = console_url.replace("{job_name}", job_name)
    if kedro_env:
        tags[TAG_ENV] = kedro_env
    if pipeline_names:
        tags[TAG_PIPELINE] = "+".join(pipeline_names)
    if commit_id:
        tags[TAG_COMMIT] = commit_id
        tags[TAG_GIT_COMMIT] = commit_id
    return tags


def _client(tracking_uri: str | None = None) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def _job_runs(client: Any, experiment_id: str, *, job_id: str | None = None, job_name: str | None = None) -> list:
    key, value = (TAG_JOB_ID, job_id) if job_id is not None else (TAG_JOB_NAME, job_name)
    value = str(value).replace("'", "\\'")
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{key}` = '{value}'", max_results=100)
    return sorted(runs, key=lambda run: (run.info.start_time or 0, run.info.run_id))


def join_job_run(
    job_id: str,
    *,
    experiment_id: str,
    tags: Mapping[str, str],
    create: bool = True,
    wait: float = 300.0,
    poll: float = 2.0,
    settle: float = 1.0,
    tracking_uri: str | None = None,
) -> str:
    """The id of the job's run (tagged ``kedro_vertex.job_id=job_id``), created when missing.

    Args:
        create: create the run at once when missing (the creator task); otherwise wait up to ``wait`` seconds
            for the creator first.
        settle: after creating, how long to wait before looking for concurrent duplicates; every creator keeps
            the earliest run and deletes its own if it lost.
    """
    client = _client(tracking_uri)
    deadline = time.monotonic() + (0 if create else wait)
    while True:
        runs = _job_runs(client, experiment_id, job_id=job_id)
        if runs:
            return runs[0].info.run_id
        if time.monotonic() >= deadline:
            break
        time.sleep(poll)
    if not create:
        logger.warning("MLflow run of job %s not created by its first task after %.0fs: creating it", job_id, wait)
    run = client.create_run(experiment_id, tags=dict(tags), run_name=tags.get(TAG_JOB_NAME) or job_id)
    mine = run.info.run_id
    time.sleep(settle)
    runs = _job_runs(client, experiment_id, job_id=job_id)
    winner = runs[0].info.run_id if runs else mine
    if winner != mine:
        client.delete_run(mine)
    return winner


def task_states(client: Any, run_id: str) -> dict[str, str]:
    """``task key → RUNNING | FINISHED | FAILED`` as recorded on the run."""
    tags = client.get_run(run_id).data.tags
    return {k[len(TASK_TAG_PREFIX) :]: v for k, v in tags.items() if k.startswith(TASK_TAG_PREFIX)}


def job_status(states: Mapping[str, str], expected_tasks: int | None) -> str:
    """FAILED if any task failed, FINISHED once ``expected_tasks`` tasks finished, else RUNNING."""
    if FAILED in states.values():
        return FAILED
    if expected_tasks is not None and sum(v == FINISHED for v in states.values()) >= expected_tasks:
        return FINISHED
    return RUNNING


def exit_handler_status(states: Mapping[str, str], ok: bool) -> str:
    """The exit handler runs after every other task: a task still RUNNING was killed without reporting.

    Tasks that never reported (skipped after a failure, or served from Vertex AI's cache) do not count.
    """
    return FINISHED if ok and not {RUNNING, FAILED} & set(states.values()) else FAILED


def start_task(
    job_id: str,
    *,
    experiment_id: str,
    tags: Mapping[str, str],
    key: str,
    create: bool,
    exit_handler: bool = False,
    wait: float = 300.0,
) -> str:
    """Join the job's run from one task and make it this process's active run; returns its id."""
    import mlflow

    run_id = join_job_run(job_id, experiment_id=experiment_id, tags=tags, create=create or exit_handler, wait=wait)
    mlflow.start_run(run_id=run_id)  # resuming marks the run RUNNING
    client = _client()
    if not exit_handler:
        client.set_tag(run_id, TASK_TAG_PREFIX + key, RUNNING)  # a retry replaces its earlier FAILED
    if job_status(task_states(client, run_id), None) == FAILED:
        client.set_terminated(run_id, FAILED)  # another task failed already: stay FAILED
    return run_id


def end_task(
    run_id: str, *, key: str, ok: bool, expected_tasks: int | None, finalizer: str = "tasks", exit_handler: bool = False
) -> str:
    """Record this task's outcome and release the run without closing it for the others; returns the status set.

    The status written is derived from every task's state; a RUNNING write is re-checked afterwards so that it never
    hides a FINISHED/FAILED decided concurrently by another task.
    """
    import mlflow

    client = _client()
    if exit_handler:
        status = exit_handler_status(task_states(client, run_id), ok)
        mlflow.end_run(status)
        return status
    client.set_tag(run_id, TASK_TAG_PREFIX + key, FINISHED if ok else FAILED)
    counted = expected_tasks if finalizer == "tasks" else None
    status = job_status(task_states(client, run_id), counted)
    mlflow.end_run(status)  # pops this process's active run; RUNNING keeps the run open
    if status == RUNNING:
        status = job_status(task_states(client, run_id), counted)
        if status != RUNNING:
            client.set_terminated(run_id, status)
    return status


def kedro_env(context: Any) -> str | None:
    """The configuration environment in use: ``--env``, else the config loader's default run env (``local``)."""
    loader = getattr(context, "config_loader", None)
    return getattr(context, "env", None) or getattr(loader, "env", None) or getattr(loader, "default_run_env", None)


class _QuietOrchestratorMode(logging.Filter):
    """Drop kedro-mlflow's warnings that an outer run is active: that is this module's intent, not a problem."""

    _MARKERS = ("is already active", "was already active", "already opened before", "mlflow_config.")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(marker in message for marker in self._MARKERS)


@contextlib.contextmanager
def task_run(
    session: KedroSession,
    *,
    job_id: str,
    job_name: str,
    node_names: Sequence[str],
    pipeline_names: Sequence[str] = ("__default__",),
    exit_handler: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Iterator[str | None]:
    """Run the body (``session.run(...)``) inside the job's MLflow run; yields the run id (None when off).

    Off unless the compiled job set ``KEDRO_VERTEX_MLFLOW=1``: then nothing MLflow-related is imported. Must wrap
    ``session.run``: the session's first context makes kedro-mlflow set the tracking URI and experiment, the job
    run is then started, and the second context (inside ``session.run``) finds it active.
    """
    environ = os.environ if environ is None else environ
    if environ.get(ENV_ENABLED) != "1":
        yield None
        return
    if environ.get(ENV_AUDIENCE):
        use_identity_token(environ[ENV_AUDIENCE])
    context = session.load_context()  # kedro-mlflow: tracking URI, credentials, experiment
    config = getattr(context, "mlflow", None)
    if config is None:
        raise PluginError(
            "this job was compiled with MLflow tracking but kedro-mlflow is not active in the task: install "
            "kedro-mlflow in the image, or compile with run_config.mlflow.enabled: false"
        )
    client = _client()
    experiment = client.get_experiment_by_name(config.tracking.experiment.name)
    key = task_key(node_names)
    tags = job_tags(
        job_id=job_id,
        job_name=job_name,
        kedro_env=kedro_env(context),
        pipeline_names=pipeline_names,
        commit_id=environ.get("KEDRO_CONFIG_COMMIT_ID"),
        console_url=environ.get(ENV_CONSOLE_URL),
    )
    expected = int(environ[ENV_TASKS]) if environ.get(ENV_TASKS) else None
    run_id = start_task(
        job_id,
        experiment_id=experiment.experiment_id,
        tags=tags,
        key=key,
        create=environ.get(ENV_CREATOR) == key,
        exit_handler=exit_handler,
    )
    quiet = _QuietOrchestratorMode()
    hook_logger = logging.getLogger("kedro_mlflow.framework.hooks.mlflow_hook")
    hook_logger.addFilter(quiet)
    logger.info("MLflow run %s of job %s", run_id, job_name)
    ok = False
    try:
        yield run_id
        ok = True
    finally:
        hook_logger.removeFilter(quiet)
        end_task(
            run_id,
            key=key,
            ok=ok,
            expected_tasks=expected,
            finalizer=environ.get(ENV_FINALIZER, "tasks"),
            exit_handler=exit_handler,
        )


__all__ = [
    "end_task",
    "exit_handler_status",
    "job_status",
    "job_tags",
    "join_job_run",
    "mint_identity_token",
    "start_task",
    "task_key",
    "task_run",
    "use_identity_token",
]
