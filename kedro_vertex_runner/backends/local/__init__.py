"""Run a compiled PipelineSpec on this machine: one process per task, DAG-parallel, with live status.

``kfp.local`` cannot run container components without Docker, so this backend walks the spec itself. It is meant
to behave like Vertex AI Pipelines where that matters for debugging a job before paying for one:

* every task runs its container's ``command + args`` as its own process, in the project directory, with the
  container's ``env``; the image is ignored (the task uses this interpreter and its installed packages, so a
  leading ``python`` in the command becomes :data:`sys.executable`);
* ``{{$.pipeline_job_uuid}}``, ``{{$.pipeline_job_name}}``, ``{{$.pipeline_task_name}}``, ``{{$.pipeline_root}}``
  ``{{$}}`` (the executor input: the task's output artifacts and where it writes its executor output, beside its
  log) and ``{{$.inputs.parameters['p']}}`` are substituted as Vertex AI does (strings raw, numbers and booleans as
  JSON, lists and dicts as compact JSON); a task input whose ``runtimeValue`` constant is one of those job
  placeholders takes the job's value, as Kubeflow Pipelines' driver does (the form compiled for that backend);
  an exit task's ``taskFinalStatus`` input (KFP's ``PipelineTaskFinalStatus``) is the guarded DAG's outcome when
  the exit task starts, in the JSON form Vertex AI substitutes (``state``, ``error``, ``pipelineJobResourceName``
  — the job's name here — and ``pipelineTaskName``);
* independent tasks run in parallel (at most ``max_workers`` at once); a failed task's dependents are skipped
  while tasks that do not depend on it carry on (Vertex AI's default "fail slow" policy); tasks with
  ``triggerPolicy.strategy: ALL_UPSTREAM_TASKS_COMPLETED`` (the exit handler) run whatever happened upstream;
* ``retryPolicy`` is honoured, but each wait is capped (:data:`MAX_LOCAL_BACKOFF`): locally a failure is almost
  always a deterministic bug, and waiting the production backoff (30 s and more) to see the same traceback again
  only slows the edit-run loop; ``--timeout=N`` in a task's args kills the task after N seconds;
* each task runs in its own process group, so a timeout or Ctrl-C (or SIGTERM) also stops whatever the task
  started, and a finished task leaves nothing behind — as when Vertex AI tears down a task's container. That
  includes descendants that left the group with ``setsid`` (see ``task/processes.py``), and holds when the launcher
  itself is killed (SIGKILL included): task processes watch for it and stop; temporary files of writes a kill
  interrupted are removed when the run ends;
* tasks that run the task entrypoint start *warm* by default: forked from a process that has already imported
  Kedro, the project and its libraries (see :mod:`.warm`), so a short task does not pay Kedro's start-up. Every
  task is still its own fresh process with its own session, log, timeout and kill semantics.
  ``warm_start=False`` (``run_config.local.warm_start``, ``KEDRO_VERTEX_WARM_START=0``) starts every task from
  nothing instead, as does a platform without ``fork``.

A task's nodes and timeout are read from its arguments through the task contract
(:class:`~kedro_vertex_runner.task.contract.TaskContract`), and which node failed from the task's report file
(:class:`~kedro_vertex_runner.task.contract.TaskReport`, whose path every task gets in ``KEDRO_VERTEX_TASK_REPORT``):
the entrypoint names each node there before it runs, so a node that ends its process hard (``os._exit``, a signal,
a timeout) is named too. Nothing is read back from a task's log but the lines shown to the user.

The run's record goes to ``<root>/<run id>/run.json`` (:func:`read_run_record`): the options that define the run,
its spec and each task's state, so that a failed run can be resumed (``earlier=``, ``resume_nodes=`` of
:func:`run_spec`).

Logs go to ``<root>/<run id>/logs/<task>.log``. A local root that is relative is taken relative to the project
directory; for a remote root (``gs://…``) logs are written to a temporary folder during the run and uploaded with
fsspec as each task ends, by a background thread: slow or unreachable storage never delays starting, watching or
timing out tasks. When storage cannot be reached, one line says so (once), the remaining uploads are skipped and
the logs are kept in the local folder it names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..base import Backend, Capability, JobHandle, JobRequest
from .plan import (
    CANCELLED,
    FAILED,
    MAX_LOCAL_BACKOFF,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    LocalRunFailed,
    LocalRunResult,
    TaskResult,
    _handle,
    backoff_seconds,
    format_value,
)
from .scheduler import run_spec
from .storage import RUN_RECORD, read_run_record

__all__ = [
    "CANCELLED",
    "FAILED",
    "MAX_LOCAL_BACKOFF",
    "PENDING",
    "RUNNING",
    "RUN_RECORD",
    "SKIPPED",
    "SUCCEEDED",
    "LocalBackend",
    "LocalRunFailed",
    "LocalRunResult",
    "TaskResult",
    "backoff_seconds",
    "format_value",
    "read_run_record",
    "run_spec",
]


class LocalBackend(Backend):
    """Every task in its own process on this machine (:func:`run_spec`); the job lives as long as the launcher."""

    name: ClassVar[str] = "local"
    title: ClassVar[str] = "this machine"
    root_schemes: ClassVar[tuple[str, ...]] = ("", "file", "gs", "s3")
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.RUN})
    needs_gcp_project: ClassVar[bool] = False
    remote_tasks: ClassVar[bool] = False
    job_ends_with_launcher: ClassVar[bool] = True
    takes_run_id: ClassVar[bool] = True
    unsupported_keys: ClassVar[dict[str, str]] = {
        "notifications.email": "Vertex AI sends the e-mail: a local run sends none (notifications.webhook works)",
        "kubeflow.webhook": "a Kubernetes secret is read only on Kubeflow Pipelines (notifications.webhook works)",
    }
    job_noun: ClassVar[str] = "run"
    engine: ClassVar[str] = "this machine"

    @classmethod
    def prestart(cls, project_dir: Path, raw_run_config: Mapping[str, Any], options: Mapping[str, Any]) -> None:
        """Start the warm-start process now, so that it preloads the project while Kedro loads the pipelines and
        builds the session (see :mod:`.warm`); if the job turns out to go elsewhere it is simply unused."""
        from . import warm

        local = raw_run_config.get("local")
        local = local if isinstance(local, dict) else {}
        option = options.get("warm_start")
        option = option if option is not None else local.get("warm_start")
        if not warm.enabled(option if isinstance(option, bool) else None):
            return
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "DO_NOT_TRACK": "1"}
        warm.prestart(project_dir, env, remote_root="://" in str(raw_run_config.get("root", "")))

    def start(self, job: JobRequest) -> JobHandle:
        """Run the job to its end (this backend cannot leave a job running); :class:`LocalRunFailed` if a task
        failed."""
        local = self.config.run_config.local
        if self.config.run_config.kubeflow.pod:
            self.reporter.warn(
                "run_config.kubeflow.pod is ignored: the local backend runs tasks as processes on this machine, not "
                "as Kubernetes pods"
            )
        options = job.options
        warm_start = options.get("warm_start")
        result = run_spec(
            job.spec,
            project_dir=job.project_dir or Path.cwd(),
            root=self.config.run_config.root,
            run_id=job.run_id,
            max_workers=options.get("max_workers") or local.max_workers,
            fail_fast=self.config.run_config.failure_policy == "fast",
            warm_start=warm_start if warm_start is not None else local.warm_start,
            record=options.get("record"),
            earlier=options.get("earlier"),
            resume_nodes=options.get("resume_nodes"),
            reporter=self.reporter,
        )
        return _handle(result.run_id)

    def launcher_job(self, job: JobRequest) -> JobHandle:
        return _handle(job.run_id or "")

    def report_page(self, ref: str, path: Path) -> str:
        from ...pictures import local_report

        return local_report(self.config, ref, path)
