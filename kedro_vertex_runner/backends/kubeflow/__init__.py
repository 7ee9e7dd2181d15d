"""Kubeflow Pipelines backend: the open-source engine Vertex AI Pipelines grew from, on a team's own cluster.

The compiled PipelineSpec runs unchanged (the compiler passes the job ids as task inputs for this backend, see
:attr:`Backend.job_ids_as_inputs`) through the real :class:`kfp.Client` against the top-level ``host:`` of
``vertexai.yml``. Credentials come from :mod:`.auth` (an IAP ID token or a Dex session), and the API's health
endpoint is asked with them before anything is created, so a wrong host or a refused login is one line and never a
half-made run.

What differs from Vertex AI, and how it is bridged:

* KFP's cron has six fields (seconds first, robfig/cron): the five-field form users write gets ``0`` seconds; a
  six-field one is taken as written. Recurring runs of the same display name are replaced as Vertex schedules are:
  earlier ones are disabled, the new one created, then the earlier ones deleted (re-enabled if creation fails).
* KFP's API serves no task logs (they live in the pods or the artifact store), so this backend does not offer
  ``logs``; a failed run's error names the failed tasks' pods for ``kubectl logs``.
* ``kfp.Client`` prints links and warns about versions; that output is kept from the user, who sees this
  backend's lines through the reporter.

``kfp`` is imported only inside the methods that use it: the configuration reads this module's class attributes.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ...errors import ConfigError, PluginError
from ...pipeline_spec import EXIT_HANDLER_TASK, pipeline_name, task_names, yaml_documents
from ..base import (
    Backend,
    Capability,
    JobFailed,
    JobHandle,
    JobRequest,
    JobStatus,
    JobSummary,
    Reporter,
    Schedule,
    ScheduleRequest,
    ScheduleSummary,
    TaskLog,
    TaskState,
    Unanswered,
    UploadedPipeline,
    when,
)

if TYPE_CHECKING:
    from ...config import PluginConfig

SUCCEEDED_STATES = frozenset({"SUCCEEDED", "SKIPPED"})
FAILED_STATES = frozenset({"FAILED", "CANCELED", "CANCELLED", "ERROR"})
#: the first Kubeflow Pipelines release whose driver fills an exit task's `taskFinalStatus` input
#: (kubeflow/pipelines#11953); an older one fails the run with "task final status not supported yet"
FINAL_STATUS_SINCE = (2, 14, 0)
# task_details entries that are KFP's own machinery (the root DAG, executors), not tasks of ours
_HIDDEN_TASKS = frozenset({"", "root", "executor"})


class KubeflowBackend(Backend):
    name: ClassVar[str] = "kubeflow"
    title: ClassVar[str] = "Kubeflow Pipelines (the top-level `host:`)"
    root_schemes: ClassVar[tuple[str, ...]] = ("gs", "s3")
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability) - {Capability.LOGS}
    needs_gcp_project: ClassVar[bool] = False
    job_ids_as_inputs: ClassVar[bool] = True
    required_keys: ClassVar[tuple[str, ...]] = ("host",)
    job_noun: ClassVar[str] = "run"
    schedule_noun: ClassVar[str] = "recurring run"
    engine: ClassVar[str] = "Kubeflow Pipelines"
    cancelled_state: ClassVar[str] = "CANCELED"
    poll_retries: ClassVar[int | None] = 4  # failed reads in a row (5xx, network, a refused login)
    unsupported_keys: ClassVar[dict[str, str]] = {
        "service_account": "set the pipeline runner's service account in the KFP installation instead",
        "network": "KFP runs tasks on the cluster's own network",
        "encryption_key": "KFP has no per-job CMEK; encrypt the cluster's storage instead",
        "failure_policy": "KFP applies its own failure handling",
        "labels": "KFP runs carry no labels",
        "persistent_resource": "a Vertex AI runtime; KFP runs tasks on the cluster",
        "preflight_validations": "a Vertex AI check; KFP has none",
        "notifications.email": "the e-mail notification component works only on Vertex AI Pipelines",
    }
    kubernetes_pods: ClassVar[bool] = True
    secrets_refused: ClassVar[str | None] = (
        "give the tasks Kubernetes secrets instead, as run_config.kubeflow.pod.<name>.secrets_as_env (the webhook's "
        "URL as run_config.kubeflow.webhook: {secret, key})"
    )

    @classmethod
    def compiles_final_status(cls, run_config: Any) -> bool:
        """KFP's driver fills a `taskFinalStatus` input from :data:`FINAL_STATUS_SINCE` on; an older one fails the
        run, so ``run_config.kubeflow.final_status: false`` compiles the exit task without it."""
        return bool(run_config.kubeflow.final_status)

    @classmethod
    def webhook_argument(cls, run_config: Any) -> str | None:
        """``run_config.kubeflow.webhook`` as ``k8s:<secret>/<key>``: KFP's tasks cannot read Secret Manager, so the
        platform spec puts the Secret's value into the exit task's environment (see
        :func:`kedro_vertex_runner.compiler.platform.with_platform_spec`)."""
        from ...task.secret_manager import KUBERNETES_WEBHOOK

        hook = run_config.kubeflow.webhook
        return None if hook is None else f"{KUBERNETES_WEBHOOK}{hook.secret}/{hook.key}"

    @classmethod
    def refuse_accelerator(cls, accelerator: str, name: str) -> str | None:
        """Kubeflow Pipelines takes only Kubernetes resource names: it would ask Kubernetes for a resource called
        ``NVIDIA_TESLA_T4``, which no node has."""
        from ...config.pod import KUBERNETES_GPU, is_kubernetes_resource

        if is_kubernetes_resource(accelerator):
            return None
        if accelerator.startswith("TPU"):
            resource, example = "google.com/tpu", ""
        else:
            resource = KUBERNETES_GPU
            example = f", e.g. {{cloud.google.com/gke-accelerator: {accelerator.lower().replace('_', '-')}}} on GKE"
        return (
            f"{accelerator} is a Vertex AI accelerator type, which Kubeflow Pipelines would ask Kubernetes for as a "
            f"resource no node has: write {resource} instead and choose the model with "
            f"run_config.kubeflow.pod.{name}.node_selector{example}"
        )

    def __init__(self, config: PluginConfig, reporter: Reporter | None = None) -> None:
        super().__init__(config, reporter)
        self._kfp: Any = None
        #: the API's health answer (``tag_name``: the installation's version), read with the client
        self._healthz: dict[str, Any] = {}
        #: run id → {task key, as KFP reports tasks: the task's name in the spec}, for the runs started here
        self._task_names: dict[str, dict[str, str]] = {}

    # ---------------------------------------------------------------------------------------------------------
    # configuration and the client

    @property
    def host(self) -> str:
        """The KFP API URL (top-level ``host:``), without a trailing slash."""
        host = str(getattr(self.config, "host", None) or "").strip().rstrip("/")
        if not host:
            raise ConfigError(
                "vertexai.yml: host: is not set, and backend 'kubeflow' needs the Kubeflow Pipelines API URL: set "
                "host: https://kubeflow.example.com/pipeline (or the AI Platform Pipelines dashboard URL)"
            )
        from ...network import has_userinfo, refuse_userinfo

        if has_userinfo(host):
            try:
                refuse_userinfo("`host:` in vertexai.yml", host)
            except PluginError as exc:
                raise ConfigError(str(exc)) from None
        if not host.startswith(("http://", "https://")):
            raise ConfigError(f"vertexai.yml: host: {host!r} is not a URL: write it with https://")
        return host

    @property
    def namespace(self) -> str | None:
        """``run_config.kubeflow.namespace`` (multi-user KFP), if set."""
        section = getattr(self.config.run_config, "kubeflow", None)
        value = section.get("namespace") if isinstance(section, Mapping) else getattr(section, "namespace", None)
        return str(value) if value else None

    def client(self) -> Any:
        """A :class:`kfp.Client` for ``host`` with the credentials of :mod:`.auth`, checked against the API."""
        if self._kfp is None:
            from . import auth as kfp_auth

            host = self.host
            auth = kfp_auth.authenticate(host)
            self._healthz = kfp_auth.check_access(host, auth)
            with _quiet():
                import kfp

                self._kfp = kfp.Client(host=host, namespace=self.namespace or "kubeflow", **auth.client_kwargs())
            _bound_requests(self._kfp)
        return self._kfp

    def _call(self, action: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``func(*args, **kwargs)`` with KFP's output kept quiet and its errors turned into one line."""
        try:
            with _quiet():
                return func(*args, **kwargs)
        except PluginError:
            raise
        except Exception as exc:  # any client error (HTTP, network, a bad answer) is one line
            if _timed_out(exc):
                from ...network import no_answer

                raise no_answer(self.host, f"to {action}") from None
            raise PluginError(f"Kubeflow Pipelines at {self.host}: {action} failed: {_kfp_error(exc)}") from None

    # ---------------------------------------------------------------------------------------------------------
    # runs

    def start(self, job: JobRequest) -> JobHandle:
        if job.template_uri:
            raise PluginError(
                f"--template-uri {job.template_uri}: Kubeflow Pipelines does not run Artifact Registry templates; "
                "run the compiled pipeline (drop template_uri) or one uploaded with `kedro vertexai upload-pipeline`"
            )
        spec, params = self._prepared(job.spec, job.params)
        client = self.client()
        experiment_id = self._experiment_id()
        run_name = _run_name(job.pipeline_name, spec)
        with _spec_file(spec) as path:
            run = self._call(
                "creating the run",
                client.run_pipeline,
                experiment_id=experiment_id,
                job_name=run_name,
                pipeline_package_path=path,
                params=params,
                pipeline_root=self.config.run_config.root,
            )
        handle = JobHandle(job_id=run.run_id, url=self.run_url(run.run_id), run_key={"job_id": run.run_id})
        self._task_names[run.run_id] = task_names(spec)
        self.reporter.info(f"Submitted Kubeflow Pipelines run {run_name} ({run.run_id})")
        self.reporter.info(f"View it at {handle.url}")
        return handle

    # following a run: the primitives of Backend.follow

    def poll(self, job: JobHandle) -> JobStatus:
        """Read the run once. A failed read is :class:`Unanswered` and the next one gets a fresh client (an IAP
        token lasts an hour, a run longer)."""
        try:
            run = self._call(f"reading run {job.job_id}", self.client().get_run, run_id=job.job_id)
        except PluginError as exc:
            self._kfp = None
            raise Unanswered(str(exc)) from None
        state = _state(run.state)
        tasks = task_states(run, self._task_names.get(job.job_id))
        return JobStatus(state=state, tasks=tasks, ended=state in FAILED_STATES | SUCCEEDED_STATES, detail=run)

    def ended(self, job: JobHandle, status: JobStatus) -> None:
        if status.state in FAILED_STATES:
            raise JobFailed(_failure(job, status.detail, status.state, list(status.tasks)), job, state=status.state)

    def cancel(self, job_id: str) -> str:
        self._call(f"cancelling run {job_id}", self.client().terminate_run, run_id=job_id)
        return f"Cancellation of run {job_id} requested"

    def run_url(self, run_id: str) -> str:
        return f"{self.host}/#/runs/details/{run_id}"

    # ---------------------------------------------------------------------------------------------------------
    # recurring runs

    @classmethod
    def check_schedule(cls, cron: str, timezone: str | None) -> None:
        kfp_cron(cron)  # five or six fields; the time zone is not honoured (a warning when scheduling)

    def schedule(self, request: ScheduleRequest) -> str:
        self.require(Capability.SCHEDULE)
        if request.template_uri:
            raise PluginError(
                f"--template-uri {request.template_uri}: Kubeflow Pipelines does not schedule Artifact Registry "
                "templates; schedule the compiled pipeline"
            )
        cron = kfp_cron(request.cron)
        if request.timezone:
            self.reporter.warn(
                f"time zone {request.timezone} is not honoured: KFP runs cron schedules in the cluster's time zone "
                "(UTC unless changed); write the cron in that time zone"
            )
        if request.max_run_count:
            self.reporter.warn(
                f"max_run_count {request.max_run_count} is not honoured: KFP recurring runs have no "
                "run limit; give an end_time instead"
            )
        if request.allow_queueing:
            self.reporter.warn("allow_queueing is not honoured: KFP starts no queued runs beyond max_concurrency")
        spec, params = self._prepared(request.spec, request.params)
        client = self.client()
        experiment_id = self._experiment_id()

        def create() -> tuple[str, str]:
            with _spec_file(spec) as path:
                created = self._call(
                    "creating the recurring run",
                    client.create_recurring_run,
                    experiment_id=experiment_id,
                    job_name=request.name,
                    cron_expression=cron,
                    start_time=_rfc3339(request.start_time),
                    end_time=_rfc3339(request.end_time),
                    max_concurrency=request.max_concurrent_runs or 1,
                    no_catchup=True,
                    params=params,
                    pipeline_package_path=path,
                    pipeline_root=self.config.run_config.root,
                )
            run_id = str(created.recurring_run_id)
            return run_id, f"Created recurring run {request.name!r} ({cron}): {run_id}"

        return self.replace_schedule(request.name, create, f"at {self.host}/#/recurringruns")

    # replacing a recurring run: the primitives of Backend.replace_schedule

    def schedules_named(self, name: str) -> list[Schedule]:
        return [
            Schedule(run.recurring_run_id, cron=_cron_of(run), state=_state(run.status))
            for run in self._recurring_runs()
            if run.display_name == name
        ]

    def pause_schedule(self, schedule: Schedule) -> None:
        if schedule.state != "DISABLED":
            run_id = schedule.schedule_id
            self._call(f"pausing earlier recurring run {run_id}", self.client().disable_recurring_run, run_id)

    def resume_schedule(self, schedule: Schedule) -> None:
        self._call("re-enabling", self.client().enable_recurring_run, schedule.schedule_id)

    def delete_schedule(self, schedule: Schedule) -> None:
        run_id = schedule.schedule_id
        self._call(f"deleting earlier recurring run {run_id}", self.client().delete_recurring_run, run_id)

    def _recurring_runs(self) -> list[Any]:
        client, token = self.client(), ""
        found: list[Any] = []
        while True:
            page = self._call(
                "listing recurring runs",
                client.list_recurring_runs,
                page_token=token,
                page_size=100,
                namespace=self.namespace,
            )
            found.extend(page.recurring_runs or [])
            token = page.next_page_token or ""
            if not token:
                return found

    # ---------------------------------------------------------------------------------------------------------
    # list, ui, upload

    def list_jobs(self, limit: int = 20) -> list[JobSummary]:
        self.require(Capability.LIST)
        page = self._call(
            "listing runs",
            self.client().list_runs,
            page_size=limit,
            sort_by="created_at desc",
            namespace=self.namespace,
        )
        return [
            JobSummary(
                job_id=run.run_id,
                state=_state(run.state),
                created=when(
                    run.created_at.astimezone(timezone.utc) if isinstance(run.created_at, datetime) else run.created_at,
                    "%Y-%m-%d %H:%M:%S UTC",
                ),
                url=self.run_url(run.run_id),
                pipeline=run.display_name or "",
            )
            for run in page.runs or []
        ]

    def list_schedules(self) -> list[ScheduleSummary]:
        self.require(Capability.LIST)
        return [
            ScheduleSummary(
                name=run.display_name or "",
                cron=_cron_of(run),
                state=_state(run.status),
                schedule_id=run.recurring_run_id or "",
            )
            for run in self._recurring_runs()
        ]

    def where(self) -> str:
        return f"{self.host} (namespace {self.namespace})" if self.namespace else self.host

    def ui_url(self) -> str:
        self.require(Capability.UI)
        return f"{self.host}/#/runs"

    def task_logs(self, job_id: str, task: str | None = None, lines: int = 20) -> list[TaskLog]:
        """KFP's API serves no logs: one line naming where they are (the run's page, or the task's pod)."""
        run = self._call(f"reading run {job_id}", self.client().get_run, run_id=job_id)
        names = self._task_names.get(job_id) or {}
        pods = [pod for key, _, _, pod in _task_rows(run) if pod and task in (None, key, names.get(key))]
        where = f"`kubectl logs -n {self.namespace or 'kubeflow'} {pods[0]} -c main`" if pods else "`kubectl logs`"
        raise PluginError(
            f"Kubeflow Pipelines serves no task logs through its API: read them on {self.run_url(job_id)} or with "
            f"{where}"
        )

    def check_upload(self) -> None:
        """Before compiling: the host, the credentials and the API answer."""
        self.require(Capability.UPLOAD)
        self.client()

    def upload(self, spec: Mapping[str, Any], name: str, tags: Sequence[str] = ()) -> UploadedPipeline:
        """A new version of the KFP pipeline named after the compiled pipeline (``name``, the Kedro pipeline's,
        when the spec names none); the pipeline is created, with this as its first version, when missing. ``tags``
        go into the version's description (KFP version names are unique, tags are not)."""
        self.require(Capability.UPLOAD)
        name = pipeline_name(spec, name)
        client = self.client()
        self._check_final_status(spec)
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]
        version = f"{name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{digest}"
        description = self.config.run_config.description or ""
        if tags:
            description = f"{description} (tags: {', '.join(tags)})".strip()
        pipeline_id = self._call(f"looking up pipeline {name!r}", client.get_pipeline_id, name)
        with _spec_file(dict(spec)) as path:
            if pipeline_id is None:
                pipeline = self._call(
                    f"creating pipeline {name!r}",
                    client.upload_pipeline,
                    path,
                    pipeline_name=name,
                    description=description or None,
                    namespace=self.namespace,
                )
                pipeline_id = pipeline.pipeline_id
                versions = self._call(
                    "reading its version",
                    client.list_pipeline_versions,
                    pipeline_id,
                    page_size=1,
                    sort_by="created_at desc",
                )
                version_id = (versions.pipeline_versions or [None])[0]
                version_id, version = (
                    (version_id.pipeline_version_id, version_id.display_name) if version_id else ("", name)
                )
                self.reporter.info(f"Created pipeline {name!r} ({pipeline_id})")
            else:
                created = self._call(
                    f"uploading a version of pipeline {name!r}",
                    client.upload_pipeline_version,
                    path,
                    version,
                    pipeline_id=pipeline_id,
                    description=description or None,
                )
                version_id = created.pipeline_version_id
        uri = f"{self.host}/#/pipelines/details/{pipeline_id}/version/{version_id}"
        return UploadedPipeline(pipeline=name, version=version, uri=uri)

    # ---------------------------------------------------------------------------------------------------------
    # shared by runs and recurring runs

    def _prepared(self, spec: Mapping[str, Any], params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The spec with ``run_config.caching`` as the default of every task, and typed parameter values."""
        from ...pipeline_spec import parameter_values, with_default_caching

        values = parameter_values(dict(spec), dict(params))
        self._check_final_status(spec)
        return with_default_caching(dict(spec), self.config.run_config.caching), values

    def _check_final_status(self, spec: Mapping[str, Any]) -> None:
        """Refuse, before anything is created, a spec whose exit task takes the job's final status when the
        installation (its health answer's ``tag_name``) is older than :data:`FINAL_STATUS_SINCE`: such a run would
        fail at its exit task. A version that cannot be read (``unknown``: a build of its own) is one warning."""
        if not _takes_final_status(spec):
            return
        self.client()
        tag = str(self._healthz.get("tag_name") or "unknown")
        version = _release_number(tag)
        since = ".".join(map(str, FINAL_STATUS_SINCE))
        if version is None:
            self.reporter.warn(
                f"Kubeflow Pipelines at {self.host} does not say its version (tag_name {tag!r}): the exit task "
                f"takes the job's final status, which needs KFP {since} or later"
            )
        elif version < FINAL_STATUS_SINCE:
            raise PluginError(
                f"Kubeflow Pipelines at {self.host} is version {tag}, older than {since}, the first that passes an "
                "exit task the job's final status: upgrade it, or set run_config.kubeflow.final_status: false "
                "(the exit nodes' params:job_final_status is then None)"
            )

    def _experiment_id(self) -> str:
        """Get or create ``run_config.experiment_name`` (KFP's ``Default`` when unset) in the namespace."""
        run_config = self.config.run_config
        experiment = self._call(
            "getting the experiment",
            self.client().create_experiment,
            run_config.experiment_name or "Default",
            description=run_config.experiment_description,
            namespace=self.namespace,
        )
        return str(experiment.experiment_id)

    def report_page(self, ref: str, path: Path) -> str:
        from ...pictures import kubeflow_report

        return kubeflow_report(self, ref)


# ------------------------------------------------------------------------------------------------------------------
# helpers


def _takes_final_status(spec: Mapping[str, Any]) -> bool:
    """Whether a task of ``spec`` takes a job's final status (a `taskFinalStatus` input)."""
    from ...pipeline_spec import SpecView

    return any("taskFinalStatus" in source for task in SpecView.of(spec).tasks() for source in task.inputs.values())


def _release_number(tag: str) -> tuple[int, int, int] | None:
    """``2.14.0`` (or ``v2.14.0``, ``2.14.0-rc.1``) as numbers; None for what is not a release number."""
    import re

    match = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", tag.strip())
    if not match:
        return None
    return int(match[1]), int(match[2]), int(match[3] or 0)


def kfp_cron(expression: str) -> str:
    """KFP's six-field cron (seconds first) for ``expression``: a five-field one gets ``0`` seconds, a six-field
    one is kept. Day-of-week 7 is refused (KFP's cron counts Sunday as 0 only).

    Raises:
        PluginError: not a cron expression either way.
    """
    from ...config import validate_cron

    fields = str(expression).split()
    five = fields[1:] if len(fields) == 6 else fields
    try:
        validate_cron(" ".join(five))
        if len(fields) == 6:
            validate_cron(" ".join([fields[0], *five[1:]]))  # the seconds field, checked as minutes (0-59)
    except ValueError:
        raise PluginError(
            f"--cron {expression!r}: expected a cron expression like '0 6 * * 1' (five fields) or KFP's six-field "
            "'0 0 6 * * 1' (seconds first)"
        ) from None
    if any(bound == "7" for part in five[4].split(",") for bound in part.partition("/")[0].split("-")):
        raise PluginError(f"--cron {expression!r}: KFP counts Sunday as 0, not 7: write 0")
    return " ".join(fields if len(fields) == 6 else ["0", *fields])


def _task_rows(run: Any) -> list[tuple[str, str, str, str]]:
    """(task key, state, error, pod) of each task KFP reports, its driver, DAG and exit-handler entries left out
    (the last report of a key wins: a retried task is reported again)."""

    rows: dict[str, tuple[str, str, str, str]] = {}
    for detail in getattr(getattr(run, "run_details", None), "task_details", None) or []:
        key = detail.display_name or ""
        if key in _HIDDEN_TASKS or key == EXIT_HANDLER_TASK or key.endswith("-driver"):
            continue
        error = (getattr(detail.error, "message", None) or "") if detail.error else ""
        rows[key] = (key, _state(detail.state), str(error), str(getattr(detail, "pod_name", None) or ""))
    return list(rows.values())


def task_states(run: Any, names: Mapping[str, str] | None = None) -> list[TaskState]:
    """The run's tasks as KFP reports them, named as the spec names them (``names``: task key → name)."""
    names = names or {}
    return [TaskState(name=names.get(key, key), state=state, error=error) for key, state, error, _ in _task_rows(run)]


def _failure(job: JobHandle, run: Any, state: str, tasks: list[TaskState]) -> str:
    word = "was cancelled" if state.startswith("CANCEL") else f"ended {state}"
    failed = [task for task in tasks if task.state in FAILED_STATES]
    message = f"Kubeflow Pipelines run {job.job_id} {word}"
    if failed:
        message += f"; failed task(s): {', '.join(task.name for task in failed)}"
        if failed[0].error:
            message += f" ({failed[0].error[:300]})"
    elif run.error is not None and getattr(run.error, "message", None):
        message += f" ({str(run.error.message)[:300]})"
    pods = [pod for _, row_state, _, pod in _task_rows(run) if pod and row_state in FAILED_STATES]
    if pods:
        message += f"; logs: kubectl logs {pods[0]} -c main"
    return f"{message}; see {job.url}"


def _state(value: Any) -> str:
    return str(getattr(value, "value", value) or "UNKNOWN").upper().replace("RUNTIME_STATE_UNSPECIFIED", "UNKNOWN")


def _cron_of(recurring_run: Any) -> str:
    trigger = recurring_run.trigger
    if trigger is not None and trigger.cron_schedule is not None:
        return str(trigger.cron_schedule.cron or "")
    if trigger is not None and trigger.periodic_schedule is not None:
        return f"every {trigger.periodic_schedule.interval_second}s"
    return ""


def _rfc3339(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    return str(value)


def _run_name(pipeline_name: str, spec: Mapping[str, Any]) -> str:
    from ..submission import job_id_for

    return job_id_for(pipeline_name, dict(spec))


def _kfp_error(exc: BaseException) -> str:
    """One secret-free line for a KFP client error: the HTTP status and KFP's own message, or the error's class."""
    status = getattr(exc, "status", None)
    if status:
        message = ""
        try:
            body = json.loads(getattr(exc, "body", None) or "{}")
            message = str(body.get("message") or body.get("error") or "") if isinstance(body, dict) else ""
        except ValueError:
            pass
        hint = " (the proxy refused the credentials: see IAP_CLIENT_ID / DEX_USERNAME)" if status in (401, 403) else ""
        return (
            f"HTTP {status} {getattr(exc, 'reason', '') or ''}".strip()
            + (f": {message[:300]}" if message else "")
            + hint
        )
    if isinstance(exc, ValueError):
        from ...network import brief

        return brief(exc, limit=300) or "ValueError"
    return f"{type(exc).__name__} (is `host:` reachable?)"


def _bound_requests(client: Any) -> None:
    """Make every request of ``client`` (a :class:`kfp.Client`) wait at most the network time limit to connect and
    as long for an answer, retried at most once on a failed connection (kfp_server_api sets no timeout, and
    urllib3 retries a timed-out read three times)."""
    import urllib3

    from ...network import network_timeout

    limit = network_timeout()
    # one ApiClient behind every service API of the client; a kfp release laid out otherwise is refused, not unbounded
    rest = getattr(getattr(getattr(client, "_run_api", None), "api_client", None), "rest_client", None)
    if rest is None or not hasattr(rest, "pool_manager"):
        raise PluginError(
            "this kfp release has no kfp_server_api REST client to bound: install kfp 2.x (pip install kfp)"
        )
    rest.pool_manager.connection_pool_kw["retries"] = urllib3.Retry(total=1, connect=1, read=0, status=0, redirect=0)
    request = rest.request

    def bounded(*args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return request(*args, _request_timeout=_request_timeout or (limit, limit), **kwargs)

    rest.request = bounded


def _timed_out(exc: BaseException) -> bool:
    """Whether a client error is a request that got no answer in time (urllib3's, possibly wrapped)."""
    import urllib3.exceptions

    for _ in range(10):  # the exception, its reason, their contexts
        if exc is None:
            return False
        if isinstance(exc, (TimeoutError, urllib3.exceptions.TimeoutError)):
            return True
        reason = getattr(exc, "reason", None)
        exc = reason if isinstance(reason, BaseException) else exc.__context__  # type: ignore[assignment]
    return False


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Keep ``kfp.Client``'s prints ("Run details: …") and version warnings from the user's terminal."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _spec_file(spec: Mapping[str, Any]) -> Iterator[str]:
    """``spec`` as the ``.yaml`` package file ``kfp.Client`` reads (JSON is YAML): the PipelineSpec, then its
    Kubernetes platform spec (pod settings) as KFP's second document, which the client sends with every run,
    recurring run and upload; removed afterwards."""

    with tempfile.TemporaryDirectory(prefix="kedro-vertex-kfp-") as folder:
        path = os.path.join(folder, "pipeline.yaml")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(yaml_documents(spec))
        yield path
