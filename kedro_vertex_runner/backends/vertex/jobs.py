"""Vertex AI pipeline jobs: build the job, submit it, follow it, read its tasks' logs.

Nothing is submitted until credentials, the bucket and the experiment have been checked, so an error never leaves a
half-submitted job. Tasks are reported as Vertex AI names them: by their ``taskInfo.name`` (the Kedro node names
the compiler put there), the tasks inside the exit handler included and its sub-DAG entry left out. When a job
fails, the last lines of each failed task's log are read from Cloud Logging (:mod:`.cloud_logging`) and reported
before the one-line error; a log that cannot be read is one line and never replaces the job's own error.
"""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING, Any

from ...errors import PluginError
from ...network import brief
from ...pipeline_spec import EXIT_HANDLER_TASK, parameter_values, pipeline_name, with_default_caching
from ..base import JobFailed, JobHandle, JobStatus, TaskLog, TaskState, Unanswered, poll_interval
from .api import (
    _FINAL_STATES,
    ANONYMOUS_ENV,
    API_TIMEOUT,
    FAILURE_POLICIES,
    MAX_LOGS_SHOWN,
    VertexApi,
    _anonymous,
    _api_error,
    _call,
    _is_local_endpoint,
    _is_transient,
    _short_state,
    api_endpoint,
    console_url,
)
from .cloud_logging import (
    LOGGING_ENDPOINT_ENV,
    TAIL_LINES,
    LogsUnavailable,
    fetch_tail,
    logging_endpoint,
    logs_explorer_url,
    pipeline_log_filter,
    task_log_filter,
)
from .runtime import add_runtime, preflight_error

if TYPE_CHECKING:
    from ...config import PluginConfig
    from ..base import Reporter

# ------------------------------------------------------------------------------------------------------------------
# the job


def build_pipeline_job(
    spec: dict[str, Any],
    config: PluginConfig,
    *,
    display_name: str,
    params: dict[str, Any] | None = None,
    template_uri: str | None = None,
) -> dict[str, Any]:
    """The ``PipelineJob`` body (v1 API field names) for ``spec`` under ``config``; ``template_uri`` records the
    registry template ``spec`` was fetched from."""
    run_config = config.run_config
    job: dict[str, Any] = {
        "display_name": display_name[:128],
        "pipeline_spec": with_default_caching(spec, run_config.caching),
        "labels": dict(run_config.labels),
        "runtime_config": {
            "gcs_output_directory": config.gcs_root,
            "parameter_values": parameter_values(spec, params),
        },
    }
    if run_config.failure_policy:
        job["runtime_config"]["failure_policy"] = FAILURE_POLICIES[run_config.failure_policy]
    if run_config.service_account:
        job["service_account"] = run_config.service_account
    if run_config.encryption_key:
        job["encryption_spec"] = {"kms_key_name": run_config.encryption_key}
    network = run_config.network
    if network.vpc:
        job["network"] = network.vpc
    if network.reserved_ip_ranges:
        job["reserved_ip_ranges"] = list(network.reserved_ip_ranges)
    if network.psc_interface:
        job["psc_interface_config"] = {
            "network_attachment": network.psc_interface.network_attachment,
            "dns_peering_configs": [peering.model_dump() for peering in network.psc_interface.dns_peering],
        }
    if template_uri:
        job["template_uri"] = template_uri
    add_runtime(job, config)
    return job


def _display_name(spec: dict[str, Any]) -> str:
    """The compiled pipeline's name: the project, then the Kedro pipeline unless ``__default__``."""
    return pipeline_name(spec)


def handle_for(config: PluginConfig, job_id: str) -> JobHandle:
    """The handle of job ``job_id``: its console page, and ``job_name=`` finds its MLflow run."""
    return JobHandle(job_id=job_id, url=console_url(config, job_id), run_key={"job_name": job_id})


def create_job(api: VertexApi, body: dict[str, Any], job_id: str, reporter: Reporter, attempts: int = 4) -> Any:
    """Create the job, retrying transient errors (429, 5xx, network).

    The explicit job id makes a retry safe: if an earlier attempt did create the job and only its answer was
    lost, Vertex AI answers ALREADY_EXISTS and we take that job instead of submitting a second one.
    """
    from google.api_core import exceptions as gexc

    action = "submitting the pipeline job"
    for attempt in range(attempts):
        try:
            return api.pipelines.create_pipeline_job(
                parent=api.parent, pipeline_job=body, pipeline_job_id=job_id, timeout=API_TIMEOUT
            )
        except gexc.AlreadyExists as exc:
            if attempt == 0:
                raise _api_error(exc, action, api.config) from None
            name = f"{api.parent}/pipelineJobs/{job_id}"
            return _call(action, api.config, api.pipelines.get_pipeline_job, name=name)
        except Exception as exc:
            if attempt == attempts - 1 or not _is_transient(exc):
                raise preflight_error(exc, body, brief(exc)) or _api_error(exc, action, api.config) from None
            delay = min(poll_interval(), 2.0**attempt)
            reporter.notice(f"Vertex AI did not answer ({brief(exc)[:200]}); retrying in {delay:g}s")
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


# ------------------------------------------------------------------------------------------------------------------
# following a job


def read_job(api: VertexApi, handle: JobHandle) -> JobStatus:
    """One GET of the job (the poll primitive of :meth:`Backend.follow`); a transient error (429, 5xx, network) is
    :class:`Unanswered`, any other one line."""
    job_name = f"{api.parent}/pipelineJobs/{handle.job_id}"
    try:
        job = api.pipelines.get_pipeline_job(name=job_name, timeout=API_TIMEOUT)
    except Exception as exc:
        if not _is_transient(exc):
            raise _api_error(exc, f"following job {handle.job_id}", api.config) from None
        code = getattr(exc, "code", None)
        status = f"{int(code)} " if isinstance(code, int) else ""
        raise Unanswered(f"Vertex AI did not answer ({status}{brief(exc)[:200]})") from None
    state = _short_state(job.state)
    return JobStatus(state=state, tasks=task_states(job), ended=state in _FINAL_STATES, detail=job)


def _task_details(job: Any) -> list[Any]:
    """The job's container tasks as Vertex AI reports them (``taskName`` is the spec's ``taskInfo.name``).

    Left out: the root entry that stands for the whole pipeline (no parent), and the sub-DAG entries (the exit
    handler's group), which are parents of other tasks — the tasks inside the exit handler are listed.
    """
    details = list(job.job_detail.task_details)
    parents = {d.parent_task_id for d in details if d.parent_task_id}
    return [d for d in details if d.parent_task_id and d.task_id not in parents and d.task_name != EXIT_HANDLER_TASK]


def _task_error(detail: Any) -> str:
    return " ".join(str(detail.error.message).split()) if detail.error and detail.error.message else ""


def _task_states(job: Any) -> list[tuple[str, str, str]]:
    """``(task, state, error)`` for the job's container tasks, named as the console shows them."""
    return [(detail.task_name, detail.state.name, _task_error(detail)) for detail in _task_details(job)]


def _custom_job(detail: Any) -> str:
    """The CustomJob that ran the task's container (its last attempt), or "" when none was started."""
    executor = detail.executor_detail
    return executor.container_detail.main_job if executor and executor.container_detail else ""


def task_states(job: Any) -> list[TaskState]:
    """The job's container tasks, named as the console shows them."""
    return [TaskState(task, state, error) for task, state, error in _task_states(job)]


def job_ended(api: VertexApi, handle: JobHandle, status: JobStatus, reporter: Reporter) -> None:
    """The job ended: one line when it SUCCEEDED; else the failed tasks' log tails and :class:`JobFailed` (FAILED,
    naming the failed task and its error; CANCELLED), or :class:`PluginError` when it is PAUSED (not over: its
    MLflow run stays open for when it is resumed)."""
    job_id, url, job, state = handle.job_id, handle.url, status.detail, status.state
    if state == "SUCCEEDED":
        reporter.info(f"Job {job_id} succeeded")
        return
    if state == "FAILED":
        failed_details = [d for d in _task_details(job) if d.state.name == "FAILED"]
        for detail in failed_details[:MAX_LOGS_SHOWN]:
            reporter.task_log(task_log(api, job, detail))
        failed = [(task, error) for task, task_state, error in _task_states(job) if task_state == "FAILED"]
        failed.sort(key=lambda item: not item[1])  # a task with an error message first
        job_error = " ".join(str(job.error.message).split())
        if failed:
            task, error = failed[0]
            reason = f"task {task} failed: {error or job_error or 'no error message'}"
        else:
            reason = job_error or "no error message"
        raise JobFailed(f"job {job_id} FAILED: {reason} (details: {url})", handle, state="FAILED")
    if state == "CANCELLED":
        raise JobFailed(f"job {job_id} was CANCELLED (details: {url})", handle, state="CANCELLED")
    raise PluginError(f"job {job_id} is PAUSED: resume or cancel it in the console: {url}")


def stop_hint(api: VertexApi, handle: JobHandle) -> str:
    """How to cancel a job left running: its console page, or the API's cancel call."""
    job_id = handle.job_id
    endpoint = api_endpoint(api.config)
    endpoint = endpoint if "://" in endpoint else f"https://{endpoint}"
    return (
        f"Job {job_id} keeps running. Cancel it in the console ({console_url(api.config, job_id)}) or with:\n"
        f'  curl -X POST -H "Authorization: Bearer $(gcloud auth print-access-token)" '
        f"{shlex.quote(f'{endpoint}/v1/{_job_name(api, job_id)}:cancel')}"
    )


def _job_name(api: VertexApi, job_id: str) -> str:
    return f"{api.parent}/pipelineJobs/{job_id}"


# ------------------------------------------------------------------------------------------------------------------
# task logs


def _job_start(job: Any) -> str | None:
    """The job's creation time as RFC 3339 (bounds the log query), if known."""
    created = job.create_time
    try:
        return created.strftime("%Y-%m-%dT%H:%M:%SZ") if created else None
    except AttributeError:  # pragma: no cover - proto-plus returns datetimes
        return None


def task_log_lines(api: VertexApi, job: Any, detail: Any, lines: int = TAIL_LINES) -> tuple[list[str], str]:
    """The last ``lines`` lines of one task's log and the Logs Explorer link for all of it.

    Raises:
        LogsUnavailable: the log cannot be read (no CustomJob ran, no permission, API error); one line.
    """
    project = api.project_id
    custom_job = _custom_job(detail)
    if not custom_job:
        url = logs_explorer_url(project, pipeline_log_filter(job.name.rsplit("/", 1)[-1]))
        raise LogsUnavailable(f"Vertex AI started no container for it, so it has no log; the job's events: {url}")
    log_filter = task_log_filter(custom_job, since=_job_start(job))
    url = logs_explorer_url(project, log_filter)
    if _anonymous() and not _is_local_endpoint(logging_endpoint()):
        raise LogsUnavailable(
            f"{ANONYMOUS_ENV} is set, so logs are read only from a local {LOGGING_ENDPOINT_ENV}; the log is at {url}"
        )
    try:
        tail = fetch_tail(api.credentials, project, log_filter, lines)
    except LogsUnavailable as exc:
        raise LogsUnavailable(f"{exc}; the log is at {url}") from None
    return [line.text for line in tail], url


def task_log(api: VertexApi, job: Any, detail: Any, lines: int = TAIL_LINES) -> TaskLog:
    """A task's log tail and its Logs Explorer link; a log that cannot be read is a note, never an error."""
    name, state = detail.task_name, detail.state.name
    try:
        tail, url = task_log_lines(api, job, detail, lines)
    except LogsUnavailable as exc:
        return TaskLog(task=name, lines=(), state=state, note=f"its log cannot be shown: {exc}")
    if not tail:
        return TaskLog(
            task=name, lines=(), state=state, source=url, note=f"no log lines in Cloud Logging yet; the log: {url}"
        )
    return TaskLog(task=name, lines=tail, source=url, state=state)


def job_task_logs(api: VertexApi, job_ref: str, task: str | None = None, lines: int = TAIL_LINES) -> list[TaskLog]:
    """``kedro vertexai logs JOB_ID [--task NAME]``: the log tail of the named task, else of every failed task.

    Raises:
        PluginError: unknown job or task, or a job without failed tasks when no ``--task`` is given.
    """
    if not 1 <= lines <= 1000:  # Cloud Logging's largest page
        raise PluginError(f"--lines {lines}: expected a whole number from 1 to 1000")
    config = api.config
    job_id = job_ref.rstrip("/").rsplit("/", 1)[-1]
    job = _call(
        f"reading job {job_id}", config, api.pipelines.get_pipeline_job, name=f"{api.parent}/pipelineJobs/{job_id}"
    )
    details = _task_details(job)
    names = ", ".join(repr(d.task_name) for d in details) or "none yet"
    if task is not None:
        chosen = [d for d in details if task in (d.task_name, d.task_unique_name)]
        if not chosen:
            raise PluginError(f"--task {task!r}: job {job_id} has no such task (its tasks: {names})")
    else:
        chosen = [d for d in details if d.state.name == "FAILED"]
        if not chosen:
            raise PluginError(
                f"job {job_id} ({_short_state(job.state)}) has no failed task: choose one with --task NAME "
                f"(its tasks: {names})"
            )
    return [task_log(api, job, detail, lines) for detail in chosen]
