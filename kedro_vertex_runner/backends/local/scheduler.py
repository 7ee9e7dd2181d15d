"""Run a compiled PipelineSpec on this machine: one process per task, DAG-parallel, with live status.

``kfp.local`` cannot run container components without Docker, so this backend walks the spec itself. It is meant
to behave like Vertex AI Pipelines where that matters for debugging a job before paying for one:

* every task runs its container's ``command + args`` as its own process, in the project directory, with the
  container's ``env``; the image is ignored (the task uses this interpreter and its installed packages, so a
  leading ``python`` in the command becomes :data:`sys.executable`);
* ``{{$.pipeline_job_uuid}}``, ``{{$.pipeline_job_name}}``, ``{{$.pipeline_task_name}}``, ``{{$.pipeline_root}}``
  and ``{{$.inputs.parameters['p']}}`` are substituted as Vertex AI does (strings raw, numbers and booleans as
  JSON, lists and dicts as compact JSON); a task input whose ``runtimeValue`` constant is one of those job
  placeholders takes the job's value, as Kubeflow Pipelines' driver does (the form compiled for that backend);
* independent tasks run in parallel (at most ``max_workers`` at once); a failed task's dependents are skipped
  while tasks that do not depend on it carry on (Vertex AI's default "fail slow" policy); tasks with
  ``triggerPolicy.strategy: ALL_UPSTREAM_TASKS_COMPLETED`` (the exit handler) run whatever happened upstream;
* ``retryPolicy`` is honoured, but each wait is capped (:data:`MAX_LOCAL_BACKOFF`): locally a failure is almost
  always a deterministic bug, and waiting the production backoff (30 s and more) to see the same traceback again
  only slows the edit-run loop; ``--timeout=N`` in a task's args kills the task after N seconds;
* each task runs in its own process group, so a timeout or Ctrl-C (or SIGTERM) also stops whatever the task
  started, and a finished task leaves nothing behind — as when Vertex AI tears down a task's container. That
  includes descendants that left the group with ``setsid`` (see :mod:`.processes`), and holds when the launcher
  itself is killed (SIGKILL included): task processes watch for it and stop; temporary files of writes a kill
  interrupted are removed when the run ends;
* tasks that run the task entrypoint start *warm* by default: forked from a process that has already imported
  Kedro, the project and its libraries (see :mod:`.warm`), so a short task does not pay Kedro's start-up. Every
  task is still its own fresh process with its own session, log, timeout and kill semantics.
  ``warm_start=False`` (``run_config.local.warm_start``, ``KEDRO_VERTEX_WARM_START=0``) starts every task from
  nothing instead, as does a platform without ``fork``.

A task's nodes and timeout are read from its arguments through the task contract
(:class:`~kedro_vertex_runner.task_contract.TaskContract`), and which node failed from the task's report file
(:class:`~kedro_vertex_runner.task_contract.TaskReport`, whose path every task gets in ``KEDRO_VERTEX_TASK_REPORT``):
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

import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from ..entrypoint import LAUNCHER_PID_ENV, TIMEOUT_EXIT_CODE
from ..errors import PluginError
from ..task_contract import TASK_REPORT_ENV, TaskContract, TaskReport, _number, keep_nodes
from ..values import PARAMETER_TYPE_WORDS, check_run_id, typed_parameter
from .base import Backend, Capability, JobFailed, JobHandle, JobRequest
from .processes import Descendants

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from .warm import WarmProcess, Zygote

PENDING = "PENDING"
RUNNING = "RUNNING"
RETRYING = "RETRYING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
SKIPPED = "SKIPPED"
CANCELLED = "CANCELLED"
TERMINAL_STATES = frozenset({SUCCEEDED, FAILED, SKIPPED, CANCELLED})
#: The reason of a task a resumed run did not run again: it succeeded in an earlier run of the same run id.
EARLIER_RUN = "earlier run"
#: The run record in ``<root>/<run id>/``: the run's options, its spec and every task's state (resume=).
RUN_RECORD = "run.json"

#: Upper bound, in seconds, of one wait between attempts of a failing task (see the module docstring).
MAX_LOCAL_BACKOFF = 5.0
#: Lines of a failed task's log printed when the run ends.
LOG_TAIL_LINES = 20
#: Seconds a task's processes get to exit after SIGTERM (timeout, Ctrl-C) before they are killed.
KILL_GRACE = 3.0
_POLL_INTERVAL = 0.05
# Live-table rows shown in full up to this many tasks; bigger jobs show only active rows plus counts
_FULL_TABLE_ROWS = 25
_POSIX = os.name == "posix"

_PLACEHOLDER = re.compile(r"\{\{\$\.?([^{}]*)\}\}")
_INPUT_PARAMETER = re.compile(r"""^inputs\.parameters\[\s*['"]([^'"]+)['"]\s*\]$""")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*$")
_RUN_ALWAYS = "ALL_UPSTREAM_TASKS_COMPLETED"
_RUN_ON_SUCCESS = "ALL_UPSTREAM_TASKS_SUCCEEDED"


@dataclass
class TaskResult:
    """What happened to one task.

    Attributes:
        name: the task's name in the spec.
        nodes: the Kedro nodes the task runs (from its ``--node`` args).
        state: ``SUCCEEDED``, ``FAILED``, ``SKIPPED`` or ``CANCELLED`` once the run is over.
        attempts: how many times its process was started.
        exit_code: exit code of the last attempt (negative: killed by that signal); None if it never ran.
        reason: why it failed, was skipped or cancelled, in words (e.g. ``exit 1``, ``timed out after 5 s``).
        duration: seconds its last attempt ran.
        log: where its log is (a path, or a URL for a remote root).
        failed_node: the node that failed, or was running when the task's process ended (from its task report).
        missing_data: a dataset the failed node had to read from the run's storage that this run never stored.
    """

    name: str
    nodes: tuple[str, ...]
    state: str = PENDING
    attempts: int = 0
    exit_code: int | None = None
    reason: str | None = None
    duration: float | None = None
    log: str | None = None
    failed_node: str | None = None
    missing_data: str | None = None


@dataclass
class LocalRunResult:
    """The outcome of :func:`run_spec`: the run id, where its data went, and every task's result."""

    run_id: str
    root: str
    run_dir: str
    tasks: dict[str, TaskResult] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return all(task.state == SUCCEEDED for task in self.tasks.values())

    def count(self, state: str) -> int:
        return sum(task.state == state for task in self.tasks.values())


class LocalRunFailed(JobFailed):
    """A local run ended with failed tasks; ``result`` holds every task's state."""

    def __init__(self, message: str, result: LocalRunResult):
        super().__init__(message, _handle(result.run_id))
        self.result = result


# ----------------------------------------------------------------------------------------------------------------
# public entry point


def run_spec(
    spec: Mapping[str, Any] | str | Path,
    *,
    project_dir: str | Path,
    root: str,
    run_id: str | None = None,
    max_workers: int | None = None,
    job_name: str | None = None,
    parameter_values: Mapping[str, Any] | None = None,
    extra_env: Mapping[str, str] | None = None,
    console: Console | None = None,
    max_backoff: float = MAX_LOCAL_BACKOFF,
    fail_fast: bool = False,
    warm_start: bool | None = None,
    record: Mapping[str, Any] | None = None,
    earlier: Mapping[str, Collection[str]] | None = None,
    resume_nodes: Mapping[str, Collection[str]] | None = None,
) -> LocalRunResult:
    """Run every task of ``spec`` as a local process and wait for the run to end.

    The container image is ignored: tasks run with this interpreter (``python`` at the start of a command becomes
    :data:`sys.executable`) and the packages installed next to it, in ``project_dir``.

    Args:
        spec: a PipelineSpec dict, or the path of its JSON file.
        project_dir: the Kedro project; every task starts there.
        root: the job's storage root: a local folder (relative to ``project_dir``) or an fsspec URL such as
            ``gs://bucket/runs``. The run's data and logs go to ``<root>/<run id>/``.
        run_id: the job's id (``{{$.pipeline_job_uuid}}``); a new UUID when not given.
        max_workers: tasks run at once; default: the number of CPUs available.
        job_name: ``{{$.pipeline_job_name}}``; default: ``<pipeline name>-<run id>``.
        parameter_values: pipeline parameters overriding the spec's defaults.
        extra_env: variables added to every task's environment (after the spec's own).
        console: where status goes; a rich live table on a terminal, one plain line per state change otherwise.
        max_backoff: longest wait, in seconds, between attempts of a failing task.
        fail_fast: ``run_config.failure_policy: fast``: once a task has failed, start no further task (running
            ones finish; the exit handler still runs), as Vertex AI's PIPELINE_FAILURE_POLICY_FAIL_FAST does.
        warm_start: fork entrypoint tasks from a process that has preloaded the project (see :mod:`.warm`);
            default: on unless ``KEDRO_VERTEX_WARM_START`` is ``0``/``false``; always off without ``fork``.
        record: the ``kedro run`` options that define the run, kept in ``<root>/<run id>/run.json`` with the spec
            and every task's state (see :func:`read_run_record`), for resuming the run.
        earlier: tasks (name: nodes) that succeeded in an earlier run of this run id (a resumed run): they do not
            run again, unless a task they depend on runs (their stored outputs are read), and are shown as
            ``SUCCEEDED (earlier run)``.
        resume_nodes: failed tasks of that earlier run (name: nodes) that run only these of their nodes: the
            failed node and what follows it in the task (what ran before it stored its outputs).

    Returns:
        the run's :class:`LocalRunResult` when every task succeeded.

    Raises:
        PluginError: the spec or a parameter is invalid, or a folder cannot be written.
        LocalRunFailed: some task failed (its log tail has been printed to ``console``).
        KeyboardInterrupt: after Ctrl-C has stopped every running task; nothing more was started.
    """
    if console is None:
        from rich.console import Console

        console = Console()
    spec = _load_spec(spec)
    project = Path(project_dir).resolve()
    if max_workers is None:
        max_workers = _cpu_count()
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise PluginError(f"max_workers={max_workers!r}: expected a whole number ≥ 1")
    run_id = str(run_id) if run_id else str(uuid.uuid4())
    check_run_id(run_id)
    if job_name is None:
        pipeline_name = str(spec.get("pipelineInfo", {}).get("name") or "pipeline")
        job_name = f"{pipeline_name}-{run_id}"[:128]

    storage = _Storage(str(root), run_id, project)
    previous_sigterm: Any = _NOT_INSTALLED
    scheduler: _Scheduler | None = None
    writer: _RecordWriter | None = None
    try:
        tasks = _plan(
            spec,
            run_id=run_id,
            job_name=job_name,
            pipeline_root=storage.root,
            parameter_values=dict(parameter_values or {}),
            extra_env=dict(extra_env or {}),
        )
        for task in tasks.values():
            task.env[TASK_REPORT_ENV] = str(storage.report_path(task.name))
        result = LocalRunResult(run_id=run_id, root=storage.root, run_dir=storage.run_dir)
        result.tasks = {name: task.result for name, task in tasks.items()}
        display = _Display(console, tasks)
        previous_sigterm = _sigterm_as_interrupt()
        storage.prepare()
        planned = {name: list(task.nodes) for name, task in tasks.items()}  # recorded: the spec's, never narrowed
        _mark_earlier(tasks, earlier or {}, display)
        _keep_nodes(tasks, resume_nodes or {})
        record_writer = _RecordWriter(storage, spec, dict(record or {}), result, planned)
        record_writer.write(first=True)
        writer = record_writer
        from . import warm

        scheduler = _Scheduler(
            tasks,
            project,
            storage,
            display,
            max_workers,
            max_backoff,
            fail_fast=fail_fast,
            warm_start=warm.enabled(warm_start),
            on_task_end=record_writer.write,
        )
        scheduler.run()
        scheduler.close()
        warning = storage.finish()
        if warning:
            display.warn(warning)
        return _report(result, storage, display)
    finally:
        if scheduler is not None:
            scheduler.close()
        if writer is not None:
            writer.write(last=True)
        if previous_sigterm is not _NOT_INSTALLED:
            signal.signal(signal.SIGTERM, previous_sigterm)
        storage.close()


_NOT_INSTALLED = object()


def _sigterm_as_interrupt() -> Any:
    """Treat SIGTERM (a CI job cancelled, ``kill``) like Ctrl-C while tasks run.

    Tasks live in their own process groups, so without this they would outlive a terminated runner.
    """
    if not _POSIX or threading.current_thread() is not threading.main_thread():
        return _NOT_INSTALLED

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _mark_earlier(tasks: dict[str, _Task], earlier: Mapping[str, Collection[str]], display: _Display) -> None:
    """A resumed run: tasks that succeeded earlier (with the same nodes), and depend on no task that runs now, count
    as succeeded."""
    kept: set[str] = set()
    for name, task in tasks.items():  # topological order
        nodes = earlier.get(name)
        if nodes is not None and tuple(nodes) == task.nodes and all(dep in kept for dep in task.deps):
            kept.add(name)
            task.result.state, task.result.reason = SUCCEEDED, EARLIER_RUN
            display.event(task, f"SUCCEEDED ({EARLIER_RUN})")


def _keep_nodes(tasks: dict[str, _Task], resume_nodes: Mapping[str, Collection[str]]) -> None:
    for name, nodes in resume_nodes.items():
        task = tasks.get(name)
        kept = tuple(node for node in task.nodes if node in nodes) if task is not None else ()
        if task is not None and task.result.state == PENDING and kept and kept != task.nodes:
            task.argv = keep_nodes(task.argv, kept)
            task.nodes = task.result.nodes = kept


def read_run_record(root: str, project_dir: str | Path, run_id: str) -> dict[str, Any] | None:
    """The run record (``<root>/<run id>/run.json``) of an earlier run, or None when there is none.

    It holds ``options`` (the ``kedro run`` options that defined the run: pipelines, env, filters, ``--params``),
    ``spec`` (the compiled PipelineSpec the run ran) and ``tasks`` (each task's nodes and last state).

    Raises:
        PluginError: the record exists but cannot be read or is not a run record.
    """
    check_run_id(run_id)
    if "://" in root:
        from ..storage import url_to_fs

        fs, path = url_to_fs(f"{root.rstrip('/')}/{run_id}/{RUN_RECORD}")
        where = f"{root.rstrip('/')}/{run_id}/{RUN_RECORD}"
        try:
            data = fs.cat_file(path)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise PluginError(f"cannot read {where}: {type(exc).__name__}: {exc}") from None
    else:
        base = Path(root).expanduser()
        file = (base if base.is_absolute() else Path(project_dir) / base) / run_id / RUN_RECORD
        where = str(file)
        try:
            with os.fdopen(os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as stream:
                data = stream.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PluginError(f"cannot read {where}: {exc.strerror or exc}") from None
    try:
        loaded = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        loaded = None
    if not (
        isinstance(loaded, dict)
        and isinstance(loaded.get("options"), dict)
        and isinstance(loaded.get("spec"), dict)
        and isinstance(loaded.get("tasks"), dict)
    ):
        raise PluginError(f"{where} is not a run record (expected a JSON object with options, spec and tasks)")
    return loaded


class _RecordWriter:
    """Keeps ``<root>/<run id>/run.json`` (:data:`RUN_RECORD`) up to date: written when the run starts, again each
    time a task has succeeded or failed for good (a local root), and when the run ends.

    A local record is replaced atomically (a new file created next to it, never through a link, with the
    process's umask, then renamed onto it); for a remote root it is uploaded when the run starts and ends."""

    def __init__(
        self,
        storage: _Storage,
        spec: Mapping[str, Any],
        options: dict[str, Any],
        result: LocalRunResult,
        nodes: dict[str, list[str]],
    ):
        self.nodes = nodes
        self.storage = storage
        self.spec = spec
        self.options = options
        self.result = result
        self.warning: str | None = None

    def payload(self) -> bytes:
        tasks = {
            name: {"nodes": self.nodes[name], "state": task.state, "failed_node": task.failed_node}
            for name, task in self.result.tasks.items()
        }
        record = {"run_id": self.result.run_id, "options": self.options, "tasks": tasks, "spec": self.spec}
        return json.dumps(record, indent=1, default=str).encode("utf-8")

    def write(self, first: bool = False, last: bool = False) -> None:
        if self.storage.remote and not (first or last):
            return
        try:
            self.storage.write_record(self.payload())
        except Exception as exc:
            problem = f"{exc.strerror or exc}" if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
            where = f"{self.storage.run_dir}/{RUN_RECORD}"
            if first and not self.storage.remote:
                raise PluginError(f"cannot write the run record {where}: {problem}") from None
            if self.warning is None:
                self.warning = f"Could not write the run record {where} ({problem}): this run cannot be resumed"
                print(self.warning, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# planning: spec -> flat list of runnable tasks


@dataclass
class _Task:
    name: str
    nodes: tuple[str, ...]
    argv: list[str]
    env: dict[str, str]
    deps: tuple[str, ...]
    run_always: bool
    timeout: float | None
    max_retries: int
    backoff: float
    backoff_factor: float
    backoff_max: float
    result: TaskResult
    # a task that runs uploaded code (code upload) must import that code, not what the warm-start process preloaded
    # from the project directory: it always starts as a fresh process
    warm: bool = True
    # runtime state of the current attempt
    process: subprocess.Popen[bytes] | WarmProcess | None = None
    tree: Descendants = field(default_factory=lambda: Descendants())
    log_file: IO[bytes] | None = None
    started: float = 0.0
    clock: float | None = None  # when the timeout started counting: once the task's process exists
    retry_at: float = 0.0
    timed_out: bool = False
    kill_at: float | None = None

    @property
    def label(self) -> str:
        nodes = ", ".join(self.nodes)
        return f"{self.name} ({nodes})" if nodes and self.nodes != (self.name,) else self.name


def _load_spec(spec: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    if isinstance(spec, Mapping):
        return spec
    path = Path(spec)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PluginError(f"cannot read pipeline spec {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise PluginError(f"{path} is not a JSON pipeline spec: {exc}") from None
    if not isinstance(loaded, dict):
        raise PluginError(f"{path} is not a JSON pipeline spec: expected an object at the top level")
    # a PipelineJob JSON carries the spec under pipelineSpec
    return loaded.get("pipelineSpec", loaded)


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _plan(
    spec: Mapping[str, Any],
    *,
    run_id: str,
    job_name: str,
    pipeline_root: str,
    parameter_values: dict[str, Any],
    extra_env: dict[str, str],
) -> dict[str, _Task]:
    """Flatten the spec's DAG (sub-DAGs such as the exit handler inlined) into runnable tasks, in topological order.

    A task inside a sub-DAG inherits the sub-DAG task's dependencies; a task depending on a sub-DAG task depends on
    every task inside it, so an exit task waits until the whole guarded DAG has ended.
    """
    try:
        root_dag = spec["root"]["dag"]
        components = spec["components"]
        executors = spec["deploymentSpec"]["executors"]
    except (KeyError, TypeError) as exc:
        raise PluginError(
            f"not a compiled pipeline spec: missing {exc} (expected root.dag, components, deploymentSpec.executors)"
        ) from None
    values = _pipeline_values(spec["root"], parameter_values)
    context = {"pipeline_job_uuid": run_id, "pipeline_job_name": job_name, "pipeline_root": pipeline_root}
    tasks: dict[str, _Task] = {}

    def expand(dag: Mapping[str, Any], scope: dict[str, Any], outer_deps: tuple[str, ...], where: str) -> list[str]:
        """Add the tasks of ``dag``; return the names of all leaf tasks it holds."""
        local = dag.get("tasks") or {}
        members: dict[str, list[str]] = {}
        for name in _topological(local, where):
            task = local[name]
            deps = list(outer_deps)
            for dep in task.get("dependentTasks") or []:
                deps += members[dep]
            ref = (task.get("componentRef") or {}).get("name")
            component = components.get(ref) if ref else None
            if component is None:
                raise PluginError(f"task {name!r}{where}: component {ref!r} is not in the spec's components")
            inputs = _task_inputs(task, component, scope, name, {**context, "pipeline_task_name": name})
            trigger = task.get("triggerPolicy") or {}
            if trigger.get("condition"):
                raise PluginError(f"task {name!r}: conditions (triggerPolicy.condition) are not supported locally")
            run_always = trigger.get("strategy", _RUN_ON_SUCCESS) == _RUN_ALWAYS
            if "dag" in component:
                members[name] = expand(component["dag"], inputs, tuple(dict.fromkeys(deps)), f" (in {name!r})")
                continue
            if name in tasks:
                raise PluginError(f"task name {name!r} appears twice in the spec: task names must be unique")
            label = component.get("executorLabel")
            container = (executors.get(label) or {}).get("container") if label else None
            if not container:
                raise PluginError(f"task {name!r}: executor {label!r} has no container in deploymentSpec.executors")
            tasks[name] = _make_task(name, task, container, inputs, deps, run_always, context, extra_env)
            members[name] = [name]
        return [leaf for names in members.values() for leaf in names]

    expand(root_dag, values, (), "")
    return tasks


def _topological(local: Mapping[str, Any], where: str) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise PluginError(f"tasks{where} depend on each other in a cycle: {' -> '.join((*chain, name))}")
        state[name] = 1
        for dep in local[name].get("dependentTasks") or []:
            if dep not in local:
                raise PluginError(f"task {name!r}{where} depends on {dep!r}, which is not a task of the same DAG")
            visit(dep, (*chain, name))
        state[name] = 2
        order.append(name)

    for name in local:
        visit(name, ())
    return order


def _pipeline_values(root: Mapping[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    definitions = (root.get("inputDefinitions") or {}).get("parameters") or {}
    unknown = sorted(set(overrides) - set(definitions))
    if unknown:
        known = ", ".join(sorted(definitions)) or "none"
        raise PluginError(f"unknown pipeline parameter {unknown[0]!r}: this pipeline takes {known}")
    values: dict[str, Any] = {}
    for name, definition in definitions.items():
        if name in overrides:
            value = overrides[name]
        elif "defaultValue" in definition:
            value = definition["defaultValue"]
        elif definition.get("isOptional"):
            continue
        else:
            raise PluginError(f"pipeline parameter {name!r} has no default value: pass a value for it")
        values[name] = _typed(value, definition.get("parameterType"), f"pipeline parameter {name!r}")
    return values


def _typed(value: Any, parameter_type: str | None, label: str) -> Any:
    """``value`` as the spec declares it (a number travels as a double: 3 comes back as 3.0, and becomes 3)."""
    if value is None or parameter_type not in PARAMETER_TYPE_WORDS:
        return value
    try:
        return typed_parameter(value, parameter_type)
    except ValueError as exc:
        raise PluginError(f"{label}: expected {exc}, got {value!r}") from None


def _task_inputs(
    task: Mapping[str, Any], component: Mapping[str, Any], scope: dict[str, Any], name: str, context: dict[str, str]
) -> dict:
    values: dict[str, Any] = {}
    for key, source in ((task.get("inputs") or {}).get("parameters") or {}).items():
        if "componentInputParameter" in source:
            parent_key = source["componentInputParameter"]
            if parent_key not in scope:
                raise PluginError(
                    f"task {name!r}: input {key!r} reads parameter {parent_key!r}, which its parent DAG does not have"
                )
            values[key] = scope[parent_key]
        elif "runtimeValue" in source:
            values[key] = _runtime_constant((source["runtimeValue"] or {}).get("constant"), context)
        else:
            kinds = ", ".join(sorted(source)) or "nothing"
            raise PluginError(f"task {name!r}: input {key!r} comes from {kinds}, which the local backend cannot run")
    for key, definition in ((component.get("inputDefinitions") or {}).get("parameters") or {}).items():
        if key not in values and "defaultValue" in definition:
            values[key] = definition["defaultValue"]
        if key in values:
            values[key] = _typed(values[key], definition.get("parameterType"), f"task {name!r}: input {key!r}")
    return values


def _runtime_constant(value: Any, context: dict[str, str]) -> Any:
    """A task input's constant as Kubeflow Pipelines' driver passes it: a constant that is exactly one job
    placeholder (``{{$.pipeline_job_uuid}}``, ``{{$.pipeline_task_name}}``…) becomes the job's value."""
    match = _PLACEHOLDER.fullmatch(value) if isinstance(value, str) else None
    key = match.group(1).strip() if match else ""
    return context.get(key, value)


def _make_task(
    name: str,
    task: Mapping[str, Any],
    container: Mapping[str, Any],
    inputs: dict[str, Any],
    deps: list[str],
    run_always: bool,
    context: dict[str, str],
    extra_env: dict[str, str],
) -> _Task:
    local_context = {**context, "pipeline_task_name": name}

    def substitute(text: Any) -> str:
        return _substitute(str(text), local_context, inputs, f"task {name!r}")

    args = [substitute(part) for part in container.get("args") or []]
    argv = [substitute(part) for part in container.get("command") or []] + args
    if not argv:
        raise PluginError(f"task {name!r}: its container has neither command nor args")
    if argv[0] in {"python", "python3"}:
        argv[0] = sys.executable
    env = dict(os.environ)
    env.update({"PYTHONUNBUFFERED": "1", "DO_NOT_TRACK": "1"})
    # a task's output goes to a file, where rich would wrap tracebacks at 80 columns; keep them readable
    env.setdefault("COLUMNS", "160")
    for item in container.get("env") or []:
        env[str(item["name"])] = substitute(item.get("value", ""))
    env.update({str(k): str(v) for k, v in extra_env.items()})

    retry = task.get("retryPolicy") or {}
    try:
        max_retries = int(retry.get("maxRetryCount") or 0)
        backoff = _seconds(retry.get("backoffDuration", "0s"))
        factor = float(retry.get("backoffFactor") or 2.0)
        backoff_max = _seconds(retry.get("backoffMaxDuration", "3600s"))
    except (TypeError, ValueError):
        raise PluginError(f"task {name!r}: invalid retryPolicy {dict(retry)!r}") from None
    try:
        contract = TaskContract.from_args(args, strict=False)
    except PluginError as exc:
        raise PluginError(f"task {name!r}: {exc}") from None
    nodes = contract.nodes or (str((task.get("taskInfo") or {}).get("name") or name),)
    timeout = contract.timeout
    return _Task(
        name=name,
        nodes=nodes,
        argv=argv,
        env=env,
        deps=tuple(dict.fromkeys(deps)),
        run_always=run_always,
        timeout=timeout,
        max_retries=max(0, max_retries),
        backoff=backoff,
        backoff_factor=max(1.0, factor),
        backoff_max=backoff_max,
        result=TaskResult(name=name, nodes=nodes),
        warm=not contract.code_uri,
    )


def _substitute(text: str, context: dict[str, str], inputs: dict[str, Any], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1).strip()
        if key in context:
            return context[key]
        parameter = _INPUT_PARAMETER.match(key)
        if parameter:
            if parameter.group(1) not in inputs:
                raise PluginError(f"{where}: {match.group(0)} names an input the task does not declare")
            return format_value(inputs[parameter.group(1)])
        raise PluginError(f"{where}: placeholder {match.group(0)} is not supported by the local backend")

    return _PLACEHOLDER.sub(replace, text)


def format_value(value: Any) -> str:
    """A parameter value as Vertex AI puts it on a command line: strings raw, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _seconds(value: Any) -> float:
    """Seconds from a protobuf Duration string (``"30s"``, ``"1.5s"``) or a number."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return max(0.0, float(value))
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(value)
    return float(match.group(1))


def backoff_seconds(task_backoff: float, factor: float, backoff_max: float, attempt: int, cap: float) -> float:
    """Wait before attempt ``attempt + 1``: ``backoff * factor**(attempt-1)``, at most ``backoff_max`` and ``cap``."""
    wait = task_backoff * factor ** max(0, attempt - 1)
    return max(0.0, min(wait, backoff_max, cap))


# ----------------------------------------------------------------------------------------------------------------
# where logs (and the run's data) live


class _Storage:
    """``<root>/<run id>/``: its lock, and its ``logs/`` — written in place for a local root, staged and uploaded
    for a remote one.

    **One job per run id.** :meth:`prepare` takes an exclusive ``flock`` on ``<root>/<run id>/.lock`` (for a remote
    root, on a file named after the run directory in the machine's temp folder) and writes the holder's pid, host
    and start time into it. A second run with the same run id is refused with one line naming the holder, before
    any task starts. The kernel drops the lock when the holder exits, however it dies, so a lock left by a dead
    process is simply taken over, and resuming a finished or failed run re-uses its data but never its lock.

    **Nothing outside the run directory.** Log files are opened with ``O_NOFOLLOW`` (a link planted at a log's name
    is refused, never written through), a ``logs`` folder that is a link is refused, and a task name must be one
    plain path segment.
    """

    LOCK_FILE = ".lock"

    def __init__(self, root: str, run_id: str, project_dir: Path):
        self.run_id = run_id
        self.remote = "://" in root
        if self.remote:
            self.root = root.rstrip("/")
            # staged in the user's cache folder, not a temp folder: if storage fails they stay where we say they are
            self._staging: Path | None = _staging_folder(run_id)
            self.logs_dir = self._staging
        else:
            path = Path(root).expanduser()
            self.root = str(path if path.is_absolute() else (project_dir / path).resolve())
            self._staging = None
            self.logs_dir = Path(self.root) / run_id / "logs"
        self.run_dir = f"{self.root}/{run_id}"
        self._remote_logs = f"{self.run_dir}/logs"
        # the tasks' reports (task_contract.TaskReport): private to this run, gone when it ends
        self._reports = tempfile.TemporaryDirectory(prefix="vertex-reports-")
        self._lock_fd: int | None = None
        self._uploads: queue.Queue[str | None] | None = None
        self._upload_thread: threading.Thread | None = None
        self._upload_error: str | None = None
        self._warned = False
        self._keep_local = False

    @property
    def logs_location(self) -> str:
        """Where the logs are: the run's ``logs/`` folder, or the local copies once a remote root failed."""
        return str(self.logs_dir) if self._keep_local else self._remote_logs

    def prepare(self) -> None:
        """Lock the run directory for this run (see the class docstring) and create the log folder.

        Raises:
            PluginError: another run holds the run id, a folder cannot be created or is a link, or a remote root's
                storage package (s3fs for ``s3://``) is not installed.
        """
        if self.remote:
            from ..storage import require

            require(self.root)
        try:
            self.logs_dir.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PluginError(f"cannot create the run folder {self.logs_dir.parent}: {exc.strerror or exc}") from None
        self._lock()
        if self.logs_dir.is_symlink():
            raise PluginError(
                f"{self.logs_dir} is a symbolic link: task logs are only written inside the run folder; remove it"
            )
        try:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PluginError(f"cannot create the log folder {self.logs_dir}: {exc.strerror or exc}") from None

    def _lock_path(self) -> Path:
        if not self.remote:
            return Path(self.run_dir) / self.LOCK_FILE
        import hashlib

        digest = hashlib.sha256(self.run_dir.encode("utf-8")).hexdigest()[:24]
        folder = Path(tempfile.gettempdir()) / "kedro-vertex-runs"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / f"{digest}.lock"

    def _lock(self) -> None:
        if not _POSIX:  # pragma: no cover - flock is POSIX
            return
        import fcntl
        import socket

        path = self._lock_path()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)  # the umask decides
        except OSError as exc:
            raise PluginError(f"cannot create the run lock {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise PluginError(
                f"run id {self.run_id!r} is in use by another run ({holder}; lock {path}): wait for it to end, or "
                "start this run with another run_id"
            ) from None
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {stamp}\n".encode(), 0)
        self._lock_fd = fd

    def write_record(self, data: bytes) -> None:
        """Replace ``<run dir>/run.json`` with ``data``: atomically and never through a link (local root)."""
        if self.remote:
            fs = self._filesystem()
            fs.pipe_file(fs._strip_protocol(f"{self.run_dir}/{RUN_RECORD}"), data)
            return
        import secrets

        from ..persistence import open_new

        target = Path(self.run_dir) / RUN_RECORD
        temp = target.parent / f".{RUN_RECORD}.{os.getpid()}.{secrets.token_hex(4)}.tmp"  # swept if a kill leaves it
        try:
            with open_new(str(temp)) as stream:  # O_EXCL | O_NOFOLLOW, mode 0o666 less the umask
                stream.write(data)
            os.replace(temp, target)  # a link at the record's name is replaced, never written through
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def local_log(self, task: str) -> Path:
        if not task or task in {".", ".."} or "/" in task or "\\" in task or "\0" in task:
            raise PluginError(f"task name {task!r} cannot name a log file: use letters, digits and '-'")
        return self.logs_dir / f"{task}.log"

    def report_path(self, task: str) -> Path:
        return Path(self._reports.name) / f"{task}.json"

    def open_log(self, task: str) -> IO[bytes]:
        """The task's log, opened for appending; never through a symbolic link."""
        path = self.local_log(task)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            return os.fdopen(os.open(path, flags, 0o666), "ab")
        except OSError as exc:
            if path.is_symlink():
                raise PluginError(
                    f"{path} is a symbolic link: task logs are never written through a link; remove it"
                ) from None
            raise PluginError(f"cannot write the task log {path}: {exc.strerror or exc}") from None

    def location(self, task: str) -> str:
        return f"{self.logs_location}/{task}.log" if self.remote else str(self.local_log(task))

    def publish(self, task: str) -> str | None:
        """Queue a finished task's log for upload to a remote root (never waits for storage).

        Returns the one warning that storage could not be reached, the first time it is known (the run goes on).
        """
        if self.remote and self.local_log(task).exists():
            self._uploader().put(task)
        return self._new_warning()

    def finish(self, timeout: float | None = None) -> str | None:
        """Wait (at most ``timeout``, default :data:`LOG_UPLOAD_TIMEOUT` per log left) for the queued uploads."""
        if self._uploads is not None:
            self._uploads.put(None)
            assert self._upload_thread is not None
            self._upload_thread.join(LOG_UPLOAD_TIMEOUT * (self._uploads.qsize() + 1) if timeout is None else timeout)
            if self._upload_thread.is_alive() and self._upload_error is None:
                self._upload_error = f"no answer in {LOG_UPLOAD_TIMEOUT:g} s"
        return self._new_warning()

    def _uploader(self) -> queue.Queue[str | None]:
        if self._uploads is None:
            self._uploads = queue.Queue()
            self._upload_thread = threading.Thread(target=self._upload_all, name="kedro-vertex-logs", daemon=True)
            self._upload_thread.start()
        return self._uploads

    def _upload_all(self) -> None:
        assert self._uploads is not None
        fs: Any = None
        quiet = _QuietStorageLogs()
        try:
            while (task := self._uploads.get()) is not None:
                if self._upload_error is not None:
                    continue  # unreachable: the warning has said so, the local copies stay
                try:
                    if fs is None:
                        fs = self._filesystem()
                    done = threading.Event()
                    failure: list[BaseException] = []
                    # a storage call cannot be cancelled: bound it by waiting for it in a helper thread
                    worker = threading.Thread(target=self._put, args=(fs, task, done, failure), daemon=True)
                    worker.start()
                    if not done.wait(LOG_UPLOAD_TIMEOUT):
                        raise TimeoutError(f"no answer in {LOG_UPLOAD_TIMEOUT:g} s")
                    if failure:
                        raise failure[0]
                except Exception as exc:  # a lost log must not fail the run
                    self._upload_error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        finally:
            quiet.remove()

    def _filesystem(self) -> Any:
        from ..storage import url_to_fs

        options: dict[str, Any] = {"skip_instance_cache": True}
        if self.root.startswith(("gs://", "gcs://")):
            options["requests_timeout"] = LOG_UPLOAD_TIMEOUT  # gcsfs: no minute of retries per log
        return url_to_fs(self.root, **options)[0]

    def _put(self, fs: Any, task: str, done: threading.Event, failure: list[BaseException]) -> None:
        try:
            fs.put_file(str(self.local_log(task)), fs._strip_protocol(self.location(task)))
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    def _new_warning(self) -> str | None:
        if self._upload_error is None or self._warned:
            return None
        self._warned = True
        self._keep_local = True
        return (
            f"Storage unreachable: could not upload task logs to {self._remote_logs}/ ({self._upload_error}); "
            f"the remaining uploads are skipped and every log is kept in {self.logs_dir}/"
        )

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock; the file stays, with the last holder's details
            self._lock_fd = None
        if self._staging is not None and not self._keep_local:
            shutil.rmtree(self._staging, ignore_errors=True)
        self._reports.cleanup()


def _staging_folder(run_id: str) -> Path:
    """A new folder for a run's logs on their way to a remote root: under ``$XDG_CACHE_HOME`` (default
    ``~/.cache``) ``/kedro-vertex-runner/logs/``, kept when the upload fails, removed after a run that uploaded
    them."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kedro-vertex-runner" / "logs"
    prefix = "".join(c if c.isalnum() or c in "-_." else "-" for c in run_id)[:80] + "-"
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    except OSError as exc:
        raise PluginError(f"cannot create a folder for the task logs in {base}: {exc.strerror or exc}") from None


#: Seconds one log upload may take before storage is taken as unreachable.
LOG_UPLOAD_TIMEOUT = 10.0


class _QuietStorageLogs(logging.Filter):
    """While logs upload, the storage libraries' own retry tracebacks stay out of the launcher's output: the
    launcher reports an unreachable storage once, in one line."""

    _LOGGERS = ("gcsfs", "fsspec", "google.auth", "urllib3")

    def __init__(self) -> None:
        super().__init__()
        for name in self._LOGGERS:
            logging.getLogger(name).addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        return False

    def remove(self) -> None:
        for name in self._LOGGERS:
            logging.getLogger(name).removeFilter(self)


# ----------------------------------------------------------------------------------------------------------------
# the scheduler: a single thread polling child processes


class _Scheduler:
    def __init__(
        self,
        tasks: dict[str, _Task],
        project_dir: Path,
        storage: _Storage,
        display: _Display,
        max_workers: int,
        max_backoff: float,
        fail_fast: bool = False,
        warm_start: bool = False,
        on_task_end: Any = None,
    ):
        self.on_task_end = on_task_end  # called once a task has succeeded or failed for good (the run record)
        self.fail_fast = fail_fast
        self.tasks = tasks
        self.project_dir = project_dir
        self.storage = storage
        self.display = display
        self.max_workers = max_workers
        self.max_backoff = max_backoff
        self.running: list[_Task] = []
        self.warm_start = warm_start
        self._zygote: Zygote | None = None
        self._news = 0  # the zygote's message count when the scheduler last looked

    def close(self) -> None:
        """Stop the warm-start process (if any), then remove what interrupted writes left in the run folder."""
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None
        from ..persistence import sweep_temp_files

        sweep_temp_files(self.storage.run_dir)

    def run(self) -> None:
        try:
            with self.display:
                while True:
                    now = time.monotonic()
                    self._reap(now)
                    self._start_ready(now)
                    if not self.running and all(t.result.state in TERMINAL_STATES for t in self.tasks.values()):
                        break
                    self.display.refresh()
                    if self._zygote is not None:  # woken as soon as a warm task has exited
                        self._news = self._zygote.wait_for_news(self._news, _POLL_INTERVAL)
                    else:
                        time.sleep(_POLL_INTERVAL)
                self.display.refresh(force=True)
        except KeyboardInterrupt:
            self._interrupt()
            raise
        finally:
            for task in self.running:  # only left here after an unexpected error
                _signal_group(task.process, signal.SIGKILL if _POSIX else signal.SIGTERM)

    # -- starting ---------------------------------------------------------------------------------------------

    def _start_ready(self, now: float) -> None:
        failed = next((t for t in self.tasks.values() if t.result.state == FAILED), None) if self.fail_fast else None
        for task in self.tasks.values():
            state = task.result.state
            if state == RETRYING and now >= task.retry_at and len(self.running) < self.max_workers:
                self._start(task)
            elif state == PENDING:
                if failed is not None and not task.run_always:
                    task.result.state = SKIPPED
                    task.result.reason = f"failure_policy fast: {failed.name} failed"
                    self.display.event(task, f"SKIPPED ({task.result.reason})")
                    continue
                deps = [self.tasks[name] for name in task.deps]
                if any(dep.result.state not in TERMINAL_STATES for dep in deps):
                    continue
                blocked = [dep for dep in deps if dep.result.state != SUCCEEDED]
                if blocked and not task.run_always:
                    task.result.state = SKIPPED
                    task.result.reason = f"{blocked[0].name} {blocked[0].result.state.lower()}"
                    self.display.event(task, f"SKIPPED ({task.result.reason})")
                elif len(self.running) < self.max_workers:
                    self._start(task)

    def _start(self, task: _Task) -> None:
        result = task.result
        result.attempts += 1
        result.state = RUNNING
        result.log = self.storage.location(task.name)
        task.timed_out, task.kill_at, task.clock = False, None, None
        task.started = time.monotonic()
        log = self.storage.open_log(task.name)  # closed when the attempt ends
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        header = f"==> {stamp} task {task.label}, attempt {result.attempts} of {task.max_retries + 1}\n"
        log.write(header.encode())
        log.flush()
        task.log_file = log
        attempt = f" (attempt {result.attempts} of {task.max_retries + 1})" if result.attempts > 1 else ""
        try:
            task.process = self._start_warm(task) or subprocess.Popen(
                task.argv,
                cwd=self.project_dir,
                env={**task.env, LAUNCHER_PID_ENV: str(os.getpid())},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=_POSIX,
            )
        except OSError as exc:
            log.write(f"could not start {task.argv[0]}: {exc}\n".encode())
            task.process = None
            self.display.event(task, f"RUNNING{attempt}")
            self._attempt_ended(task, None, f"could not start {task.argv[0]}: {exc.strerror or exc}")
            return
        self.running.append(task)
        self.display.event(task, f"RUNNING{attempt}")

    def _start_warm(self, task: _Task) -> WarmProcess | None:
        """Fork ``task`` from the warm-start process if it runs the entrypoint; None: start it from nothing."""
        from . import warm

        args = warm.entrypoint_args(task.argv) if self.warm_start and task.warm else None
        if args is None:
            return None
        try:
            if self._zygote is None:
                self._zygote = warm.take(self.project_dir) or warm.Zygote(
                    self.project_dir, task.env, self.storage.remote
                )
                self._zygote.sweep_on_exit(self.storage.run_dir)
            return self._zygote.start(args, task.env, self.project_dir, self.storage.local_log(task.name))
        except OSError as exc:
            self.warm_start = False
            self.display.warn(f"Warm start unavailable ({exc}): starting the remaining tasks as fresh processes")
            return None

    # -- watching ---------------------------------------------------------------------------------------------

    def _reap(self, now: float) -> None:
        for task in list(self.running):
            assert task.process is not None
            code = task.process.poll()
            if code is None:
                if task.process.pid is None:
                    continue  # a warm task not forked yet (the warm-start process is still preloading)
                if task.clock is None:
                    task.clock = now
                task.tree.track(task.process.pid)
                if task.timeout is not None and not task.timed_out and now - task.clock >= task.timeout:
                    task.timed_out = True
                    task.kill_at = now + KILL_GRACE
                    _signal_group(task.process, signal.SIGTERM)
                elif task.kill_at is not None and now >= task.kill_at:
                    _signal_group(task.process, signal.SIGKILL if _POSIX else signal.SIGTERM)
                    task.kill_at = None
                continue
            # whatever the task left running in its process group goes too, as with a container, and so does
            # whatever it started in a session of its own
            _signal_group(task.process, signal.SIGKILL if _POSIX else signal.SIGTERM)
            task.tree.kill_left()
            self.running.remove(task)
            reason: str | None
            if task.timed_out or (code == TIMEOUT_EXIT_CODE and task.timeout is not None):
                # the entrypoint's own watchdog may see the same --timeout expire first
                reason = f"timed out after {_number(task.timeout or 0.0)} s"
            elif code == 0:
                reason = self._ended_mid_node(task)
            elif getattr(task.process, "error", None):
                reason = str(task.process.error)  # type: ignore[union-attr]
            elif code < 0:
                reason = f"killed by {_signal_name(-code)}"
            else:
                reason = f"exit {code}"
            self._attempt_ended(task, code, reason)

    def _ended_mid_node(self, task: _Task) -> str | None:
        """Why a task that exited with 0 failed all the same: its report still names a node as running (the
        process ended inside that node without a word, e.g. a C extension's ``_exit(0)``), else None."""
        from ..task_contract import RUNNING as NODE_RUNNING

        report = TaskReport.read(self.storage.report_path(task.name))
        if report is None or report.state != NODE_RUNNING:
            return None
        return f"exit 0 while node {report.node!r} was running: a node must return or raise, not end its process"

    def _attempt_ended(self, task: _Task, code: int | None, reason: str | None) -> None:
        result = task.result
        now = time.monotonic()
        result.exit_code = code
        result.duration = now - task.started
        if task.log_file is not None:
            if reason is not None:
                task.log_file.write(f"==> attempt {result.attempts} failed: {reason}\n".encode())
            task.log_file.close()
            task.log_file = None
        if reason is None:
            result.state, result.reason = SUCCEEDED, None
            self._publish(task)
            self.display.event(task, f"SUCCEEDED in {result.duration:.1f}s")
            return
        result.reason = reason
        if result.attempts <= task.max_retries:
            wait = backoff_seconds(
                task.backoff, task.backoff_factor, task.backoff_max, result.attempts, self.max_backoff
            )
            result.state = RETRYING
            task.retry_at = now + wait
            self.display.event(
                task,
                f"FAILED ({reason}), retrying in {wait:.1f}s (attempt {result.attempts + 1} of {task.max_retries + 1})",
            )
            return
        result.state = FAILED
        self._publish(task)
        self.display.event(task, f"FAILED ({reason})")

    def _publish(self, task: _Task) -> None:
        warning = self.storage.publish(task.name)
        if warning:
            self.display.warn(warning)
        if self.on_task_end is not None:
            self.on_task_end()

    # -- Ctrl-C -----------------------------------------------------------------------------------------------

    def _interrupt(self) -> None:
        """Stop every running task (SIGTERM, then SIGKILL after a grace period); start nothing more."""
        running = list(self.running)
        for task in running:
            _signal_group(task.process, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE
        try:
            while time.monotonic() < deadline and any(t.process.poll() is None for t in running):  # type: ignore[union-attr]
                time.sleep(_POLL_INTERVAL)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: kill at once
        for task in running:
            _signal_group(task.process, signal.SIGKILL if _POSIX else signal.SIGTERM)
            task.tree.kill_left()
            try:
                task.process.wait(timeout=5)  # type: ignore[union-attr]
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                pass
            if task.log_file is not None:
                task.log_file.write(b"==> interrupted (Ctrl-C)\n")
                task.log_file.close()
                task.log_file = None
        self.running.clear()
        for task in self.tasks.values():
            if task.result.state not in TERMINAL_STATES:
                was_running = task in running
                task.result.state = CANCELLED
                task.result.reason = "interrupted"
                if was_running:
                    self.display.event(task, "CANCELLED (interrupted)")
        self.display.stop()
        self.display.warn(
            f"Interrupted: stopped {len(running)} running task(s); nothing else was started. "
            f"Logs in {self.storage.logs_location}/"
        )


def _signal_group(process: subprocess.Popen[bytes] | WarmProcess | None, sig: int) -> None:
    if process is None:
        return
    if not isinstance(process, subprocess.Popen):
        process.signal_group(sig)
        return
    try:
        if _POSIX:
            os.killpg(process.pid, sig)
        elif process.poll() is None:
            process.send_signal(sig)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# ----------------------------------------------------------------------------------------------------------------
# status display and the final report


class _Display:
    """A rich live table on a terminal; otherwise one timestamped line per state change (CI logs, pipes)."""

    def __init__(self, console: Console, tasks: dict[str, _Task]):
        self.console = console
        self.tasks = tasks
        self.live_mode = console.is_terminal and not console.is_dumb_terminal
        self._live: Any = None
        self._dirty = True
        self._last_refresh = 0.0

    def __enter__(self) -> _Display:
        if self.live_mode:
            from rich.live import Live

            self._live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self._live.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self._table(), refresh=True)
            self._live.stop()
            self._live = None

    def event(self, task: _Task, text: str) -> None:
        self._dirty = True
        if not self.live_mode:
            stamp = datetime.now().strftime("%H:%M:%S")
            self.console.print(f"[{stamp}] {task.label}: {text}", markup=False, highlight=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True, style="yellow")

    def refresh(self, force: bool = False) -> None:
        if self._live is None:
            return
        now = time.monotonic()
        if force or self._dirty or now - self._last_refresh > 0.5:
            self._live.update(self._table())
            self._dirty = False
            self._last_refresh = now

    def _table(self) -> RenderableType:
        from rich.table import Table

        states = [task.result.state for task in self.tasks.values()]
        counts = {state: states.count(state) for state in dict.fromkeys(states)}
        caption = ", ".join(f"{n} {state.lower()}" for state, n in counts.items())
        table = Table(caption=caption, caption_justify="left")
        for column in ("task", "nodes", "state", "time", "attempt"):
            table.add_column(column, no_wrap=column != "nodes")
        shown = list(self.tasks.values())
        if len(shown) > _FULL_TABLE_ROWS:
            shown = [t for t in shown if t.result.state in {RUNNING, RETRYING, FAILED}]
        now = time.monotonic()
        styles = {SUCCEEDED: "green", FAILED: "red", RUNNING: "cyan", RETRYING: "yellow", SKIPPED: "dim"}
        for task in shown:
            result = task.result
            if result.state == RUNNING:
                elapsed = f"{now - task.started:.0f}s"
            elif result.duration is not None and result.state in TERMINAL_STATES:
                elapsed = f"{result.duration:.1f}s"
            else:
                elapsed = ""
            state = result.state if not result.reason else f"{result.state} ({result.reason})"
            node = _running_node(task) if result.state == RUNNING else None
            if node:
                state = f"{state}: {node}"
            table.add_row(
                task.name,
                ", ".join(task.nodes),
                f"[{styles.get(result.state, '')}]{_escape(state)}[/]" if styles.get(result.state) else _escape(state),
                elapsed,
                str(result.attempts or ""),
            )
        return table


def _running_node(task: _Task) -> str | None:
    """The node the task's report names as running (None before its first node, or without a report)."""
    path = task.env.get(TASK_REPORT_ENV)
    report = TaskReport.read(path) if path else None
    return report.node if report is not None and report.state == "running" else None  # TaskReport's state


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    found = text.splitlines()
    while found and found[-1].startswith("==> attempt"):  # our own footer says nothing the summary does not
        found.pop()
    return found[-lines:]


def _report(result: LocalRunResult, storage: _Storage, display: _Display) -> LocalRunResult:
    console = display.console
    failed = [task for task in result.tasks.values() if task.state == FAILED]
    succeeded = result.count(SUCCEEDED)
    if not failed:
        noun = "task" if succeeded == 1 else "tasks"
        earlier = sum(task.state == SUCCEEDED and task.reason == EARLIER_RUN for task in result.tasks.values())
        then = f" ({earlier} of them in an earlier run)" if earlier else ""
        console.print(
            f"Run {result.run_id} finished: {succeeded} {noun} succeeded{then}; intermediate data in {result.run_dir}/; "
            f"logs in {storage.logs_location}/",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return result
    last_lines: dict[str, str] = {}
    reasons: dict[str, str | None] = {}
    for task in failed:
        tail = _tail(storage.local_log(task.name))
        nodes = ", ".join(task.nodes)
        noun = "node" if len(task.nodes) == 1 else "nodes"
        console.print(
            f"Task {task.name} ({noun} {nodes}) failed ({task.reason}); last {len(tail)} lines of {task.log}:",
            markup=False,
            highlight=False,
            soft_wrap=True,
            style="red",
        )
        for line in tail:
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        # the last line the task itself wrote (not our "attempt failed" footer) usually holds the exception
        own = [line for line in tail if line.strip() and not line.startswith("==> ")]
        last_lines[task.name] = own[-1].strip() if own else ""
        report = TaskReport.read(storage.report_path(task.name))
        task.failed_node = report.failed_node if report and report.failed_node in task.nodes else None
        reasons[task.name] = report.reason if report and task.failed_node else None
        task.missing_data = report.missing_data if report and task.failed_node else None
        if task.failed_node is None and len(task.nodes) == 1:
            task.failed_node = task.nodes[0]
    first = failed[0]
    detail = last_lines[first.name].removeprefix("Error: ")
    more = f" (and {len(failed) - 1} more failed task(s))" if len(failed) > 1 else ""
    counts = f"{succeeded} succeeded, {len(failed)} failed, {result.count(SKIPPED)} skipped"
    reason = reasons[first.name]
    if first.failed_node is not None and reason is not None:
        what = f"task {first.name} failed ({first.reason}): node {first.failed_node!r} failed: {reason}"
    elif first.failed_node is not None and len(first.nodes) > 1:
        # the task ended while this node ran, without a word (os._exit, a signal): its log may say more
        what = f"node {first.failed_node!r} (task {first.name}) failed ({first.reason})"
        what += f": {detail}" if detail else ""
    else:
        noun = "node" if len(first.nodes) == 1 else "nodes"
        what = f"{noun} {', '.join(first.nodes)} (task {first.name}) failed ({first.reason})"
        what += f": {detail}" if detail else ""
    message = f"run {result.run_id} failed: {what}{more}; {counts}; logs in {storage.logs_location}/"
    raise LocalRunFailed(message, result)


__all__ = [
    "CANCELLED",
    "FAILED",
    "MAX_LOCAL_BACKOFF",
    "PENDING",
    "RUNNING",
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


# ----------------------------------------------------------------------------------------------------------------
# the backend seam


def _handle(run_id: str) -> JobHandle:
    """A local run: its id is the job's, and ``job_id=`` finds its MLflow run."""
    return JobHandle(job_id=run_id, run_key={"job_id": run_id})


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
        )
        return _handle(result.run_id)

    def launcher_job(self, job: JobRequest) -> JobHandle:
        return _handle(job.run_id or "")
