"""Vertex AI Pipelines backend: submit a compiled PipelineSpec, follow it, schedule it, list jobs and schedules.

The spec arrives already compiled (see :mod:`kedro_vertex_runner.compiler`); this package only talks to Google
Cloud, in modules along the API's seams: :mod:`.api` (credentials, clients, one-line errors, the bucket check),
:mod:`.jobs` (build, submit, follow, task logs), :mod:`.schedules` and :mod:`.experiments`. :class:`VertexBackend`
puts them behind the :class:`~kedro_vertex_runner.backends.base.Backend` seam; it returns data and raises, and
tells the user what happens through the caller's reporter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ...errors import PluginError
from ..base import (
    Backend,
    Capability,
    JobHandle,
    JobRequest,
    JobSummary,
    ScheduleRequest,
    ScheduleSummary,
    TaskLog,
    UploadedPipeline,
)
from ..submission import job_id_for, parameter_values
from .api import (
    ANONYMOUS_ENV,
    POLL_INTERVAL_ENV,
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
from .experiments import ensure_experiment
from .jobs import (
    _display_name,
    attach_when_ready,
    build_pipeline_job,
    create_job,
    handle_for,
    job_task_logs,
    wait_for_job,
)
from .schedules import create_schedule, list_schedules


def _when(value: Any) -> str:
    if not value:
        return ""
    try:
        return str(value.strftime("%Y-%m-%d %H:%M"))
    except AttributeError:
        return str(value)


class VertexBackend(Backend):
    """Vertex AI Pipelines through its v1 REST API."""

    name: ClassVar[str] = "vertex"
    title: ClassVar[str] = "Vertex AI"
    root_schemes: ClassVar[tuple[str, ...]] = ("gs",)
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)

    _api: VertexApi | None = None
    _experiment: str | None = None  # the experiment context of the job started last

    @property
    def api(self) -> VertexApi:
        """Credentials checked and clients ready (no request sent), once per backend."""
        if self._api is None:
            self._api = connect(self.config)
        return self._api

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
        job_id = job_id_for(job.pipeline_name, spec)
        create_job(api, body, job_id, self.reporter)
        handle = handle_for(config, job_id)
        self.reporter.info(f"Submitted Vertex AI pipeline job {job_id}")
        self.reporter.info(f"View it at {handle.url}")
        return handle

    def submitted(self, job: JobHandle) -> None:
        if self._experiment:
            try:
                attach_when_ready(self.api, self._job_name(job.job_id), self._experiment, self.reporter)
            except PluginError as exc:  # the job runs: never make the user resubmit it over the experiment link
                self.reporter.warn(
                    f"job {job.job_id} was submitted and runs, but it was not attached to its experiment ({exc})"
                )

    def follow(self, job: JobHandle, *, cancel_on_interrupt: bool = False) -> None:
        wait_for_job(
            self.api,
            self._job_name(job.job_id),
            self.reporter,
            cancel_on_interrupt=cancel_on_interrupt,
            experiment_context=self._experiment,
        )

    def _job_name(self, job_id: str) -> str:
        return f"{self.api.parent}/pipelineJobs/{job_id}"

    def schedule(self, request: ScheduleRequest) -> str:
        return create_schedule(self.api, request, self.reporter)

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
                        created=_when(job.create_time),
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
                next_run=_when(item.next_run_time),
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
        from ...template_registry import upload_template

        package, version, uri = upload_template(dict(spec), self.config, list(tags))
        return UploadedPipeline(pipeline=package, version=version, uri=uri)

    def check_upload(self) -> None:
        """Before compiling: a missing registry setting is the first thing to hear about."""
        from ...template_registry import registry_url

        registry_url(self.config)


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
