"""Rerunning a failed Vertex AI job from its failed tasks, and cancelling a job.

A rerun is a new PipelineJob created through the v1beta1 API with ``originalPipelineJobId`` (the original job's
``vertex-ai-pipelines-run-billing-id`` label) and one ``pipelineTaskRerunConfigs`` entry per task of the original,
as ``google-cloud-aiplatform``'s ``PipelineJob.rerun`` sends them: ``taskId``, ``taskName`` (the task's unique
name) and ``skipTask`` for the tasks that succeeded. Vertex AI then runs the failed tasks and what depends on them.

The spec is the pipeline compiled now (a new image or fixed code reaches the rerun), refused when its tasks or its
runtime parameters' names are not the original's. Its tasks must read what the original's tasks stored under ``<root>/<run id>/``, but a rerun
has ids of its own, so the job's ids are fixed in every task's arguments: ``--run-id`` is the original's run id
and ``--job-name`` the original job's id. The run id is the one the original's tasks recorded under the root for
their job (``<root>/timings/jobs/<job id>.txt``, see :func:`kedro_vertex_runner.task.timings.run_of_job`); only when
they recorded none (no task of the original got that far) is it taken to be the billing id label's value, which
Vertex AI's numeric job uuid is believed to equal, with one warning line. A rerun of a rerun keeps the ids the
first rerun fixed (its tasks read and wrote the first job's run, under that job's name).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ...errors import PluginError
from ...pipeline_spec import SpecView, with_job_ids
from ...task.contract import JOB_NAME_PLACEHOLDER, RUN_ID_PLACEHOLDER, TaskContract
from ..submission import job_id_for
from .api import _FINAL_STATES, VertexApi, _call, _short_state, api_endpoint, check_root_bucket
from .jobs import _display_name, build_pipeline_job, handle_for

if TYPE_CHECKING:
    from ..base import JobHandle, JobRequest, Reporter

BILLING_LABEL = "vertex-ai-pipelines-run-billing-id"


def _beta_client(api: VertexApi) -> Any:
    from google.cloud import aiplatform_v1beta1

    return aiplatform_v1beta1.PipelineServiceClient(
        credentials=api.credentials, transport="rest", client_options={"api_endpoint": api_endpoint(api.config)}
    )


def _job_id(job_ref: str) -> str:
    return job_ref.rstrip("/").rsplit("/", 1)[-1]


def task_names(view: SpecView) -> set[str]:
    """The ``taskInfo.name`` of every task of the spec, those of sub-DAGs (the exit handler's) included."""
    return set(view.task_names().values())


def _fixed_job_ids(view: SpecView) -> tuple[str | None, str | None]:
    """The run id and job name fixed in the tasks' arguments of the spec when it is itself a rerun's (its tasks
    read and wrote the first job's run, under that job's name), else ``(None, None)``."""
    for task in view.tasks():
        container = view.workload(task)
        if container is None:
            continue
        ids = TaskContract.from_args(container.args, strict=False)
        if ids.run_id and "{{" not in ids.run_id:
            return ids.run_id, ids.job_name if ids.job_name and "{{" not in ids.job_name else None
    return None, None


def _brief_list(names: set[str]) -> str:
    shown = sorted(names)
    return ", ".join(repr(n) for n in shown[:3]) + (f" and {len(shown) - 3} more" if len(shown) > 3 else "")


def rerun_job(api: VertexApi, job_ref: str, request: JobRequest, reporter: Reporter) -> JobHandle:
    """Create the rerun of failed job ``job_ref`` for the compiled ``request.spec``; return its handle.

    Raises:
        PluginError: the job did not fail, ran another pipeline, has other tasks than the spec, or carries no
            billing id; or an API call was refused. Nothing is created then.
    """
    from google.protobuf.json_format import MessageToDict

    config = api.config
    original_id = _job_id(job_ref)
    client = _beta_client(api)
    name = f"{api.parent}/pipelineJobs/{original_id}"
    original = _call(f"reading job {original_id}", config, client.get_pipeline_job, name=name)
    state = _short_state(original.state)
    if state != "FAILED":
        what = "wait for it to end" if state not in _FINAL_STATES else "start a new run with `kedro vertexai run-once`"
        raise PluginError(f"job {original_id} is {state}, not FAILED: only a failed job's tasks can be rerun; {what}")
    original_spec = MessageToDict(type(original).pb(original).pipeline_spec)
    spec = dict(request.spec)
    original_view, view = SpecView.of(original_spec), SpecView.of(spec)
    ran, now = original_view.name, view.name
    if ran != now:
        raise PluginError(
            f"job {original_id} ran pipeline {ran!r}, not {now!r}: pass the -p/--pipeline (and -e) it ran with"
        )
    before, after = task_names(original_view), task_names(view)
    if before != after:
        gone, new = before - after, after - before
        parts = [
            f"only in the job: {_brief_list(gone)}" if gone else "",
            f"only now: {_brief_list(new)}" if new else "",
        ]
        raise PluginError(
            f"job {original_id}'s tasks are not the pipeline's now ({'; '.join(p for p in parts if p)}): the "
            "spec changed since (nodes, grouping or settings); run it anew with `kedro vertexai run-once`"
        )
    billing_id = original.labels.get(BILLING_LABEL, "")
    if not billing_id.isdigit():
        raise PluginError(
            f"job {original_id} has no {BILLING_LABEL} label Vertex AI could rerun it by: run it anew with "
            "`kedro vertexai run-once`"
        )
    declared = view.parameters
    ran_with = dict(original.runtime_config.parameter_values or {})
    if set(ran_with) != set(declared):
        given = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(ran_with.items())) or "none"
        now = ", ".join(sorted(declared)) or "none"
        raise PluginError(
            f"job {original_id} ran with the runtime parameters {given} (now: {now}): pass --params with the "
            "same names (e.g. the values above), as the tasks take them from the spec"
        )
    run_id, job_name = _fixed_job_ids(original_view)
    if run_id is None:
        from ...task.timings import run_of_job

        run_id, why = run_of_job(config.run_config.root, original_id)
        if run_id is None:
            reporter.warn(
                f"job {original_id}: {why}; its tasks' data is taken to be under run {billing_id}, its "
                f"{BILLING_LABEL} label (Vertex AI's job uuid is believed to be that number)"
            )
            run_id = billing_id
    spec = with_job_ids(spec, {RUN_ID_PLACEHOLDER: run_id, JOB_NAME_PLACEHOLDER: job_name or original_id})
    body = build_pipeline_job(spec, config, display_name=_display_name(spec))
    body["original_pipeline_job_id"] = int(billing_id)
    body["pipeline_task_rerun_configs"] = [
        {
            "task_id": detail.task_id,
            "task_name": detail.task_unique_name,
            "skip_task": detail.state.name == "SUCCEEDED",
        }
        for detail in original.job_detail.task_details
    ]
    check_root_bucket(config, api.credentials)
    job_id = job_id_for(request.pipeline_name, spec)
    _call(
        "submitting the rerun",
        config,
        client.create_pipeline_job,
        parent=api.parent,
        pipeline_job=body,
        pipeline_job_id=job_id,
    )
    skipped = sum(1 for entry in body["pipeline_task_rerun_configs"] if entry["skip_task"])
    handle = handle_for(config, job_id)
    reporter.info(
        f"Submitted Vertex AI pipeline job {job_id}: a rerun of job {original_id} ({skipped} succeeded task"
        f"{'s' if skipped != 1 else ''} not run again; its tasks read run {run_id}'s data)"
    )
    reporter.info(f"View it at {handle.url}")
    return handle


def cancel_job(api: VertexApi, job_ref: str) -> str:
    """Ask Vertex AI to cancel job ``job_ref``; one line saying so.

    Raises:
        PluginError: the job has already ended, or it cannot be read or cancelled.
    """
    config = api.config
    job_id = _job_id(job_ref)
    name = f"{api.parent}/pipelineJobs/{job_id}"
    job = _call(f"reading job {job_id}", config, api.pipelines.get_pipeline_job, name=name)
    state = _short_state(job.state)
    if state in _FINAL_STATES - {"PAUSED"} or state == "CANCELLING":
        raise PluginError(f"job {job_id} is {state}: there is nothing to cancel")
    _call(f"cancelling job {job_id}", config, api.pipelines.cancel_pipeline_job, name=name)
    return f"Cancellation of job {job_id} ({state}) requested"
