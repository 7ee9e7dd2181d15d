"""Vertex AI Pipelines backend: submit a compiled PipelineSpec, follow it, schedule it, list jobs and schedules.

The spec arrives already compiled (see :mod:`kedro_vertex_runner.compiler`); this package only talks to Google
Cloud, in modules along the API's seams: :mod:`.api` (credentials, clients, one-line errors, the bucket check),
:mod:`.jobs` (build, submit, read and end a job, task logs), :mod:`.schedules`, :mod:`.experiments`,
:mod:`.cloud_logging` (task log tails) and :mod:`.template_registry` (Artifact Registry templates).
:class:`VertexBackend` puts them behind the :class:`~kedro_vertex_runner.backends.base.Backend` seam; it returns data
and raises, and tells the user what happens through the caller's reporter.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ...errors import PluginError
from ...pipeline_spec import parameter_values
from ..base import (
    POLL_INTERVAL_ENV,
    Backend,
    Capability,
    JobHandle,
    JobRequest,
    JobStatus,
    JobSummary,
    Schedule,
    ScheduleRequest,
    ScheduleSummary,
    TaskLog,
    UploadedPipeline,
    when,
)
from ..submission import job_id_for
from .api import (
    ANONYMOUS_ENV,
    API_TIMEOUT,
    EXPERIMENT_ATTACH_TIMEOUT,
    VertexApi,
    _api_error,
    _call,
    _short_state,
    api_endpoint,
    check_root_bucket,
    connect,
    console_url,
    load_credentials,
    pipelines_console_url,
)
from .experiments import attach_to_experiment, ensure_experiment
from .jobs import (
    _display_name,
    build_pipeline_job,
    create_job,
    handle_for,
    job_ended,
    job_task_logs,
    read_job,
    stop_hint,
)
from .schedules import create_schedule, list_schedules


class VertexBackend(Backend):
    """Vertex AI Pipelines through its v1 REST API."""

    name: ClassVar[str] = "vertex"
    title: ClassVar[str] = "Vertex AI"
    root_schemes: ClassVar[tuple[str, ...]] = ("gs",)
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)
    engine: ClassVar[str] = "Vertex AI"
    machines_as_custom_jobs: ClassVar[bool] = True
    gpu_count_alone: ClassVar[bool] = False
    email_notifications: ClassVar[bool] = True

    _api: VertexApi | None = None
    _experiment: str | None = None  # the experiment context of the job started last
    _attached: bool | None = None  # whether that job was linked to it (None: not yet tried)

    @property
    def api(self) -> VertexApi:
        """Credentials checked and clients ready (no request sent), once per backend."""
        if self._api is None:
            self._api = connect(self.config)
        return self._api

    @classmethod
    def refuse_run_config(cls, run_config: Any) -> tuple[str, str] | None:
        """Vertex AI runs no Kubernetes pods (``run_config.kubeflow.pod``), and names its experiments by its own rule
        (``run_config.experiment_name``)."""
        if run_config.kubeflow.pod:
            return "kubeflow.pod", (
                "Vertex AI runs no Kubernetes pods you can place: remove the key (choose machines with "
                "resources.<name>.cpu, memory, gpu and accelerator), or run on backend 'kubeflow'"
            )
        if run_config.kubeflow.webhook is not None:
            return "kubeflow.webhook", (
                "Vertex AI tasks read no Kubernetes secrets: give the URL's Secret Manager reference as "
                "notifications.webhook instead, or run on backend 'kubeflow'"
            )
        experiment = run_config.experiment_name
        if experiment is not None:
            from ...config.rules import check_vertex_experiment

            try:
                check_vertex_experiment(experiment)
            except ValueError as exc:
                return "experiment_name", str(exc)
        return None

    @classmethod
    def refuse_accelerator(cls, accelerator: str, name: str) -> str | None:
        """Vertex AI takes only its own accelerator types."""
        from ...config.pod import is_kubernetes_resource

        if is_kubernetes_resource(accelerator):
            return (
                f"{accelerator} is a Kubernetes resource name, which Vertex AI does not take: write a Vertex AI "
                "accelerator type such as NVIDIA_TESLA_T4 or NVIDIA_L4 instead, or run on backend 'kubeflow'"
            )
        return None

    def where(self) -> str:
        return f"{self.config.project_id}/{self.config.region}"

    def start(self, job: JobRequest) -> JobHandle:
        config = self.config
        api = self.api
        spec = dict(job.spec)
        body = build_pipeline_job(
            spec, config, display_name=_display_name(spec), params=dict(job.params), template_uri=job.template_uri
        )
        check_root_bucket(config, api.credentials)
        experiment = config.run_config.experiment_name
        self._experiment = (
            ensure_experiment(api, experiment, config.run_config.experiment_description) if experiment else None
        )
        self._attached = None
        job_id = job_id_for(job.pipeline_name, spec)
        create_job(api, body, job_id, self.reporter)
        handle = handle_for(config, job_id)
        self.reporter.info(f"Submitted Vertex AI pipeline job {job_id}")
        self.reporter.info(f"View it at {handle.url}")
        return handle

    def submitted(self, job: JobHandle) -> None:
        """Nobody waits for the job: link it to its experiment once Vertex AI has created its run context (shortly
        after it starts), waiting at most :data:`EXPERIMENT_ATTACH_TIMEOUT`."""
        if not self._experiment:
            return
        deadline = time.monotonic() + EXPERIMENT_ATTACH_TIMEOUT
        try:
            self.watch(job, until=lambda status: self._attached is not None or time.monotonic() > deadline)
        except PluginError as exc:  # the job runs: never make the user resubmit it over the experiment link
            self.reporter.warn(
                f"job {job.job_id} was submitted and runs, but it was not attached to its experiment ({exc})"
            )
            return
        if self._attached:
            self.reporter.info(f"Attached to experiment {self._experiment.rsplit('/', 1)[-1]}")
        elif self._attached is None:
            self.reporter.warn(f"job {job.job_id} has no run context yet; it was not attached to the experiment")

    # following a job: the primitives of Backend.follow

    def poll(self, job: JobHandle) -> JobStatus:
        return read_job(self.api, job)

    def observed(self, job: JobHandle, status: JobStatus) -> None:
        """Link the job to its experiment as soon as Vertex AI has created its run context."""
        run_context = status.detail.job_detail.pipeline_run_context.name
        if self._experiment and self._attached is None and run_context:
            self._attached = attach_to_experiment(self.api, self._experiment, run_context, self.reporter)

    def ended(self, job: JobHandle, status: JobStatus) -> None:
        job_ended(self.api, job, status, self.reporter)

    def stop_hint(self, job: JobHandle) -> str:
        return stop_hint(self.api, job)

    def schedule(self, request: ScheduleRequest) -> str:
        self.check_schedule(request.cron, request.timezone)
        return create_schedule(self, request)

    # replacing a schedule: the primitives of Backend.replace_schedule

    def schedules_named(self, name: str) -> list[Schedule]:
        return [
            Schedule(item.name, cron=item.cron, state=item.state.name, active=item.state.name == "ACTIVE")
            for item in list_schedules(self.api)
            if item.display_name == name
        ]

    def pause_schedule(self, schedule: Schedule) -> None:
        name = schedule.schedule_id
        _call(f"pausing earlier schedule {name}", self.config, self.api.schedules.pause_schedule, name=name)

    def resume_schedule(self, schedule: Schedule) -> None:
        self.api.schedules.resume_schedule(name=schedule.schedule_id, timeout=API_TIMEOUT)

    def delete_schedule(self, schedule: Schedule) -> None:
        action = f"deleting earlier schedule {schedule.schedule_id}"
        operation = _call(action, self.config, self.api.schedules.delete_schedule, name=schedule.schedule_id)
        try:
            operation.result(timeout=120)
        except Exception as exc:
            raise _api_error(exc, action, self.config) from None

    def list_jobs(self, limit: int = 20) -> list[JobSummary]:
        if limit < 1:
            raise PluginError(f"--limit {limit}: expected a whole number ≥ 1")
        api, config = self.api, self.config
        request = {"parent": api.parent, "page_size": min(limit, 100), "order_by": "create_time desc"}
        pager = _call("listing pipeline jobs", config, api.pipelines.list_pipeline_jobs, request=request)
        jobs: list[JobSummary] = []
        try:
            for job in pager:
                job_id = job.name.rsplit("/", 1)[-1]
                jobs.append(
                    JobSummary(
                        job_id=job_id,
                        state=_short_state(job.state),
                        created=when(job.create_time),
                        url=console_url(config, job_id),
                        pipeline=job.display_name,
                    )
                )
                if len(jobs) >= limit:
                    break
        except Exception as exc:
            raise _api_error(exc, "listing pipeline jobs", config) from None
        return jobs

    def list_schedules(self) -> list[ScheduleSummary]:
        return [
            ScheduleSummary(
                name=item.display_name,
                cron=item.cron,
                state=item.state.name,
                next_run=when(item.next_run_time),
                schedule_id=item.name.rsplit("/", 1)[-1],
            )
            for item in list_schedules(self.api)
        ]

    def ui_url(self) -> str:
        return pipelines_console_url(self.config)

    def task_logs(self, job_id: str, task: str | None = None, lines: int = 20) -> list[TaskLog]:
        from ...config.rules import check_job_id

        # offline first: a mistyped job id or task is the news, not missing credentials
        try:
            check_job_id(job_id)
        except ValueError as exc:
            raise PluginError(f"JOB_ID {exc}") from None
        if task is not None and not task.strip():
            raise PluginError("--task: give a task name as the console shows it, or leave --task out")
        return job_task_logs(self.api, job_id, task=task, lines=lines)

    def rerun(self, job_id: str, job: JobRequest, *, wait: bool = True) -> JobHandle:
        from ...network import following
        from .rerun import rerun_job

        handle = rerun_job(self.api, job_id, job, self.reporter)
        if wait:
            with following():
                self.follow(handle, cancel_on_interrupt=job.cancel_on_interrupt)
        return handle

    def cancel(self, job_id: str) -> str:
        from .rerun import cancel_job

        return cancel_job(self.api, job_id)

    def change_schedule(self, name: str, action: str, *, catch_up: bool = False) -> list[str]:
        from .schedules import change_schedules

        return change_schedules(self.api, name, action, catch_up=catch_up)

    def upload(self, spec: Mapping[str, Any], name: str, tags: Sequence[str] = ()) -> UploadedPipeline:
        """A template version in ``run_config.pipeline_registry`` (Artifact Registry's Kubeflow Pipelines
        repository); ``name`` is unused (the registry names the package after the compiled pipeline)."""
        from .template_registry import upload_template

        package, version, uri = upload_template(dict(spec), self.config, list(tags))
        return UploadedPipeline(pipeline=package, version=version, uri=uri)

    def check_upload(self) -> None:
        """Before compiling: a missing registry setting is the first thing to hear about."""
        from .template_registry import registry_url

        registry_url(self.config)

    def report_page(self, ref: str, path: Path) -> str:
        from ...pictures import vertex_report

        return vertex_report(self, ref)


__all__ = [
    "ANONYMOUS_ENV",
    "POLL_INTERVAL_ENV",
    "VertexBackend",
    "api_endpoint",
    "console_url",
    "job_id_for",
    "load_credentials",
    "parameter_values",
    "pipelines_console_url",
]
