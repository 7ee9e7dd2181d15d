"""The local backend's plan: the compiled spec read into runnable tasks (commands with their placeholders
substituted, dependencies, retry and time limits), and what a run's tasks ended as."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ...errors import PluginError
from ...pipeline_spec import Component, Container, SpecView, Task, typed_value
from ...pipeline_spec import parameter_values as pipeline_parameter_values
from ...task.contract import TaskContract, keep_nodes
from ...task.processes import Descendants
from ...task.secret_manager import LOCAL_TASK_ENV
from ..base import JobFailed, JobHandle

if TYPE_CHECKING:
    from .display import (
        _Display,
    )
    from .warm import WarmProcess

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

#: Upper bound, in seconds, of one wait between attempts of a failing task (see the module docstring).
MAX_LOCAL_BACKOFF = 5.0
_POSIX = os.name == "posix"

_PLACEHOLDER = re.compile(r"\{\{\$\.?([^{}]*)\}\}")
_INPUT_PARAMETER = re.compile(r"""^inputs\.parameters\[\s*['"]([^'"]+)['"]\s*\]$""")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*s?\s*$")


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
        started_at, ended_at: when its first attempt started and its last attempt ended (seconds since the epoch).
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
    started_at: float | None = None
    ended_at: float | None = None


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
    # an exit task taking the job's final status: the producer DAG task's name and the tasks inside it
    final_status_of: tuple[str, tuple[str, ...]] | None = None
    job_name: str = ""

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
    outputs_dir: str = "",
    artifacts_dir: str = "",
) -> dict[str, _Task]:
    """Flatten the spec's DAG (sub-DAGs such as the exit handler inlined) into runnable tasks, in topological order.

    A task inside a sub-DAG inherits the sub-DAG task's dependencies; a task depending on a sub-DAG task depends on
    every task inside it, so an exit task waits until the whole guarded DAG has ended.
    """
    missing = SpecView.missing(spec)
    if missing:
        raise PluginError(
            f"not a compiled pipeline spec: missing {missing} (expected root.dag, components, deploymentSpec.executors)"
        )
    view = SpecView.of(spec)
    values = pipeline_parameter_values(spec, parameter_values)
    context = {"pipeline_job_uuid": run_id, "pipeline_job_name": job_name, "pipeline_root": pipeline_root}
    tasks: dict[str, _Task] = {}

    def expand(local: Mapping[str, Task], scope: dict[str, Any], outer_deps: tuple[str, ...], where: str) -> list[str]:
        """Add the tasks of the DAG ``local``; return the names of all leaf tasks it holds."""
        members: dict[str, list[str]] = {}
        for name in _topological(local, where):
            task = local[name]
            deps = list(outer_deps)
            for dep in task.dependencies:
                deps += members[dep]
            component = view.component_of(task)
            if component is None:
                raise PluginError(f"task {name!r}{where}: component {task.component!r} is not in the spec's components")
            inputs = _task_inputs(task, component, scope, name, {**context, "pipeline_task_name": name})
            if task.condition:
                raise PluginError(f"task {name!r}: conditions (triggerPolicy.condition) are not supported locally")
            run_always = task.runs_always
            if component.dag is not None:
                members[name] = expand(component.dag, inputs, tuple(dict.fromkeys(deps)), f" (in {name!r})")
                continue
            if name in tasks:
                raise PluginError(f"task name {name!r} appears twice in the spec: task names must be unique")
            label = component.executor
            executor = view.executors.get(label) if label else None
            container = executor.container if executor else None
            if not container:
                raise PluginError(f"task {name!r}: executor {label!r} has no container in deploymentSpec.executors")
            own_context = {**context, "": _executor_input(name, component, context, outputs_dir, artifacts_dir)}
            tasks[name] = _make_task(name, task, container, inputs, deps, run_always, own_context, extra_env)
            producer = next((v[len(_FINAL_STATUS_MARK) :] for v in inputs.values() if _is_status_mark(v)), None)
            if producer is not None:
                if producer not in members:
                    raise PluginError(
                        f"task {name!r}{where}: its final status comes from {producer!r}, not a task before it"
                    )
                tasks[name].final_status_of = (producer, tuple(members[producer]))
                tasks[name].job_name = job_name
            members[name] = [name]
        return [leaf for names in members.values() for leaf in names]

    expand(view.root, values, (), "")
    return tasks


def _executor_input(
    name: str, component: Component, context: dict[str, str], outputs_dir: str, artifacts_dir: str = ""
) -> str:
    """``{{$}}``, KFP's executor input, for a task: its output artifacts (URIs under ``artifacts_dir``, by default
    ``<root>/<run id>/artifacts/``, as KFP's launcher makes them under the pipeline root; the task writes a pointer
    file at each) and the file it writes its executor output to (``<task>.executor_output.json`` beside its log)."""
    artifacts = {}
    default = f"{context['pipeline_root'].rstrip('/')}/{context['pipeline_job_uuid']}/artifacts"
    base = f"{(artifacts_dir or default).rstrip('/')}/{name}"
    for key, schema_title in component.output_artifacts.items():
        runtime = {"name": key, "type": {"schemaTitle": schema_title}}
        artifacts[key] = {"artifacts": [{**runtime, "uri": f"{base}/{key}", "metadata": {}}]}
    output_file = os.path.join(outputs_dir or ".", f"{name}.executor_output.json")
    return json.dumps({"outputs": {"artifacts": artifacts, "outputFile": output_file}}, separators=(",", ":"))


def _topological(local: Mapping[str, Task], where: str) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise PluginError(f"tasks{where} depend on each other in a cycle: {' -> '.join((*chain, name))}")
        state[name] = 1
        for dep in local[name].dependencies:
            if dep not in local:
                raise PluginError(f"task {name!r}{where} depends on {dep!r}, which is not a task of the same DAG")
            visit(dep, (*chain, name))
        state[name] = 2
        order.append(name)

    for name in local:
        visit(name, ())
    return order


def _task_inputs(task: Task, component: Component, scope: dict[str, Any], name: str, context: dict[str, str]) -> dict:
    values: dict[str, Any] = {}
    for key, source in task.inputs.items():
        if "componentInputParameter" in source:
            parent_key = source["componentInputParameter"]
            if parent_key not in scope:
                raise PluginError(
                    f"task {name!r}: input {key!r} reads parameter {parent_key!r}, which its parent DAG does not have"
                )
            values[key] = scope[parent_key]
        elif "runtimeValue" in source:
            values[key] = _runtime_constant((source["runtimeValue"] or {}).get("constant"), context)
        elif "taskFinalStatus" in source:  # known when the task starts (see _Scheduler._with_final_status)
            values[key] = _FINAL_STATUS_MARK + str((source["taskFinalStatus"] or {}).get("producerTask") or "")
        else:
            kinds = ", ".join(sorted(source)) or "nothing"
            raise PluginError(f"task {name!r}: input {key!r} comes from {kinds}, which the local backend cannot run")
    for key, parameter in component.parameters.items():
        if key not in values and parameter.has_default:
            values[key] = parameter.default
        if key in values:
            values[key] = typed_value(values[key], parameter.type, f"task {name!r}: input {key!r}")
    return values


#: stands for the final status in a task's arguments until the task starts (never a value a spec could hold)
_FINAL_STATUS_MARK = "\x00final-status\x00"


def _is_status_mark(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(_FINAL_STATUS_MARK)


def final_status(producer: str, members: list[TaskResult], job_name: str) -> dict[str, Any]:
    """The ``PipelineTaskFinalStatus`` of the DAG task ``producer`` whose tasks ended as ``members``, as Vertex AI
    gives it to an exit task: ``SUCCEEDED`` when every task succeeded, ``CANCELLED`` when one was cancelled, else
    ``FAILED`` with the failed tasks named in ``error.message``."""
    failed = [r.name for r in members if r.state == FAILED]
    if all(r.state == SUCCEEDED for r in members):
        state, error = "SUCCEEDED", {}
    elif any(r.state == CANCELLED for r in members):
        state, error = "CANCELLED", {"code": 1, "message": "The DAG was cancelled."}
    else:
        state = "FAILED"
        error = {
            "code": 9,
            "message": f"The DAG failed because some tasks failed. The failed tasks are: [{', '.join(failed)}].",
        }
    return {"error": error, "pipelineJobResourceName": job_name, "pipelineTaskName": producer, "state": state}


def _runtime_constant(value: Any, context: dict[str, str]) -> Any:
    """A task input's constant as Kubeflow Pipelines' driver passes it: a constant that is exactly one job
    placeholder (``{{$.pipeline_job_uuid}}``, ``{{$.pipeline_task_name}}``…) becomes the job's value."""
    match = _PLACEHOLDER.fullmatch(value) if isinstance(value, str) else None
    key = match.group(1).strip() if match else ""
    return context.get(key, value)


def _make_task(
    name: str,
    task: Task,
    container: Container,
    inputs: dict[str, Any],
    deps: list[str],
    run_always: bool,
    context: dict[str, str],
    extra_env: dict[str, str],
) -> _Task:
    local_context = {**context, "pipeline_task_name": name}

    def substitute(text: Any) -> str:
        return _substitute(str(text), local_context, inputs, f"task {name!r}")

    args = [substitute(part) for part in container.args]
    argv = [substitute(part) for part in container.command] + args
    if not argv:
        raise PluginError(f"task {name!r}: its container has neither command nor args")
    if argv[0] in {"python", "python3"}:
        argv[0] = sys.executable
    env = dict(os.environ)
    env.update({"PYTHONUNBUFFERED": "1", "DO_NOT_TRACK": "1", LOCAL_TASK_ENV: "1"})
    # a task's output goes to a file, where rich would wrap tracebacks at 80 columns; keep them readable
    env.setdefault("COLUMNS", "160")
    for key, value in container.env:
        env[key] = substitute(value)
    env.update({str(k): str(v) for k, v in extra_env.items()})

    retry = task.retry
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
    nodes = contract.nodes or (task.name,)
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
# the job a local run is


def _handle(run_id: str) -> JobHandle:
    """A local run: its id is the job's, and ``job_id=`` finds its MLflow run."""
    return JobHandle(job_id=run_id, run_key={"job_id": run_id})
