"""The compiled PipelineSpec's format, written once: what the compiler writes and the backends, the local
scheduler and the pictures read (the exit handler's names, the task entrypoint, the trigger strategies, task-name
rules), a typed read-only view of a compiled spec (:class:`SpecView`: its tasks, components, executors, root
parameters and exit handler), the few changes a backend makes to a spec before it becomes a job
(:func:`with_default_caching`, :func:`with_job_ids`), and the job's typed parameter values.

Nothing outside this module walks a compiled spec's dict. A neutral module (it imports only the plugin's errors
and value rules), so a backend reads the format without importing the compiler.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import PluginError
from .values import PARAMETER_TYPE_WORDS, typed_parameter

SCHEMA_VERSION = "2.1.0"
#: the module every task runs (``python -m kedro_vertex_runner.entrypoint``)
ENTRYPOINT_MODULE = "kedro_vertex_runner.entrypoint"
ENTRYPOINT_COMMAND = ["python", "-m", ENTRYPOINT_MODULE]
#: the sub-DAG the pipeline's tasks sit in when the spec has an exit handler (``run_config.on_exit_pipeline``)
EXIT_HANDLER_TASK = "exit-handler-1"
EXIT_HANDLER_COMPONENT = "comp-exit-handler-1"
#: ``triggerPolicy.strategy`` of a task that runs whatever happened upstream (the exit task), and the default
RUN_ALWAYS = "ALL_UPSTREAM_TASKS_COMPLETED"
RUN_ON_SUCCESS = "ALL_UPSTREAM_TASKS_SUCCEEDED"
#: Vertex AI task and component names: at most this long
TASK_NAME_MAX = 63
#: where the compiled spec keeps KFP's platform spec (Kubernetes pod settings), KFP's second YAML document
PLATFORM_SPEC_KEY = "platformSpec"


@dataclass(frozen=True)
class Parameter:
    """An input parameter a component (or the pipeline: the root's) declares (``inputDefinitions.parameters``)."""

    name: str
    #: ``parameterType`` (``STRING``, ``NUMBER_INTEGER``, ``TASK_FINAL_STATUS`` …); None when the spec names none
    type: str | None
    #: whether the spec gives it a default (a default may be None: ``has_default`` tells them apart)
    has_default: bool = False
    default: Any = None
    optional: bool = False

    @classmethod
    def of(cls, name: str, definition: Mapping[str, Any]) -> Parameter:
        return cls(
            name=name,
            type=definition.get("parameterType"),
            has_default="defaultValue" in definition,
            default=definition.get("defaultValue"),
            optional=bool(definition.get("isOptional")),
        )


@dataclass(frozen=True)
class Container:
    """What a task runs: an image, its command and args (Vertex AI placeholders unresolved) and its environment."""

    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    #: (name, value) pairs, in the spec's order
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Executor:
    """``deploymentSpec.executors.<label>``; ``container`` is None for an executor that is not a container."""

    label: str
    container: Container | None


@dataclass(frozen=True)
class Task:
    """A task of one of the spec's DAGs."""

    #: the task's key in its DAG (what ``dependentTasks`` and the engines' task details name)
    key: str
    #: ``taskInfo.name`` (the Kedro nodes the task runs, as the consoles show them), the key when there is none
    name: str
    #: ``componentRef.name``; None when the task names no component
    component: str | None
    #: ``dependentTasks``: keys of tasks of the same DAG
    dependencies: tuple[str, ...] = ()
    #: ``inputs.parameters``: input name → where its value comes from (``componentInputParameter``,
    #: ``runtimeValue``, ``taskFinalStatus`` …), as the spec writes it
    inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: ``triggerPolicy.strategy``: :data:`RUN_ALWAYS` for an exit task, else :data:`RUN_ON_SUCCESS`
    trigger: str = RUN_ON_SUCCESS
    #: ``triggerPolicy.condition``, which no task of ours has
    condition: str | None = None
    #: ``retryPolicy`` as the spec writes it (empty: no retries)
    retry: Mapping[str, Any] = field(default_factory=dict)

    @property
    def runs_always(self) -> bool:
        return self.trigger == RUN_ALWAYS


@dataclass(frozen=True)
class Component:
    """``components.<name>``: a container task's (``executor`` names its executor) or a sub-DAG (``dag``)."""

    name: str
    executor: str | None = None
    #: the sub-DAG's tasks by key (the exit handler's component); None for a container task's component
    dag: Mapping[str, Task] | None = None
    parameters: Mapping[str, Parameter] = field(default_factory=dict)
    #: ``outputDefinitions.artifacts``: output artifact name → its ``schemaTitle``
    output_artifacts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExitHandler:
    """kfp's ``dsl.ExitHandler`` layout: the pipeline's tasks sit in the sub-DAG of task ``group`` (component
    ``component``); the exit tasks (the on-exit pipeline's, the e-mail's) run after it, whatever its outcome."""

    group: str
    component: str
    exit_tasks: tuple[str, ...]


def _tasks(dag: Mapping[str, Any] | None) -> dict[str, Task]:
    tasks: dict[str, Task] = {}
    for key, task in ((dag or {}).get("tasks") or {}).items():
        trigger = task.get("triggerPolicy") or {}
        tasks[str(key)] = Task(
            key=str(key),
            name=str((task.get("taskInfo") or {}).get("name") or key),
            component=(task.get("componentRef") or {}).get("name") or None,
            dependencies=tuple(str(dep) for dep in task.get("dependentTasks") or ()),
            inputs=dict((task.get("inputs") or {}).get("parameters") or {}),
            trigger=str(trigger.get("strategy") or RUN_ON_SUCCESS),
            condition=trigger.get("condition") or None,
            retry=dict(task.get("retryPolicy") or {}),
        )
    return tasks


def _parameters(definitions: Mapping[str, Any] | None) -> dict[str, Parameter]:
    parameters = ((definitions or {}).get("parameters")) or {}
    return {str(name): Parameter.of(str(name), definition or {}) for name, definition in parameters.items()}


def _container(container: Mapping[str, Any] | None) -> Container | None:
    if not container:
        return None
    return Container(
        image=str(container.get("image") or container.get("image_uri") or ""),
        command=tuple(str(part) for part in container.get("command") or ()),
        args=tuple(str(part) for part in container.get("args") or ()),
        env=tuple(
            (str(item["name"]), str(item.get("value", "")))
            for item in container.get("env") or ()
            if isinstance(item, Mapping) and "name" in item
        ),
    )


@dataclass(frozen=True)
class SpecView:
    """A typed, read-only view of a compiled PipelineSpec (:meth:`of` reads it; the dict is not kept)."""

    #: ``pipelineInfo.name``: the project, then the Kedro pipeline unless ``__default__``; "" when there is none
    name: str
    #: the root DAG's tasks by key
    root: Mapping[str, Task]
    #: the pipeline's parameters (``root.inputDefinitions``), typed as the spec declares them
    parameters: Mapping[str, Parameter]
    components: Mapping[str, Component]
    executors: Mapping[str, Executor]

    @classmethod
    def of(cls, spec: Mapping[str, Any]) -> SpecView:
        """The view of ``spec``, a compiled spec (a missing part reads as empty: :meth:`missing` names it)."""
        info = spec.get("pipelineInfo") or {}
        root = spec.get("root") or {}
        components = {}
        for name, component in (spec.get("components") or {}).items():
            if not isinstance(component, Mapping):
                continue
            artifacts = ((component.get("outputDefinitions") or {}).get("artifacts")) or {}
            components[str(name)] = Component(
                name=str(name),
                executor=component.get("executorLabel") or None,
                dag=_tasks(component["dag"]) if "dag" in component else None,
                parameters=_parameters(component.get("inputDefinitions")),
                output_artifacts={
                    str(key): str(((definition or {}).get("artifactType") or {}).get("schemaTitle", "system.Artifact"))
                    for key, definition in artifacts.items()
                },
            )
        executors = {
            str(label): Executor(str(label), _container((executor or {}).get("container")))
            for label, executor in ((spec.get("deploymentSpec") or {}).get("executors") or {}).items()
        }
        return cls(
            name=str(info.get("name") or ""),
            root=_tasks(root.get("dag")),
            parameters=_parameters(root.get("inputDefinitions")),
            components=components,
            executors=executors,
        )

    @staticmethod
    def missing(spec: Any) -> str | None:
        """The first part a compiled spec must have that ``spec`` lacks (``root.dag``, ``components``,
        ``deploymentSpec.executors``); None when it has them all."""
        if not isinstance(spec, Mapping):
            return "everything (it is not a mapping)"
        if not isinstance(spec.get("root"), Mapping) or "dag" not in spec["root"]:
            return "root.dag"
        if not isinstance(spec.get("components"), Mapping):
            return "components"
        if not isinstance(spec.get("deploymentSpec"), Mapping) or "executors" not in spec["deploymentSpec"]:
            return "deploymentSpec.executors"
        return None

    def dags(self) -> Iterator[Mapping[str, Task]]:
        """The spec's DAGs: the root one, then each component's (the exit handler's sub-DAG)."""
        yield self.root
        for component in self.components.values():
            if component.dag is not None:
                yield component.dag

    def tasks(self) -> Iterator[Task]:
        """Every task of every DAG, sub-DAG tasks (the exit handler's) included."""
        for dag in self.dags():
            yield from dag.values()

    def task_names(self) -> dict[str, str]:
        """Task key → ``taskInfo.name`` of every task in the spec's DAGs."""
        return {task.key: task.name for task in self.tasks()}

    def component_of(self, task: Task) -> Component | None:
        return self.components.get(task.component) if task.component else None

    def executor_of(self, task: Task) -> Executor | None:
        component = self.component_of(task)
        return self.executors.get(component.executor) if component and component.executor else None

    def workload(self, task: Task) -> Container | None:
        """The container that runs ``task``'s code: its executor's, or for a task compiled as a Vertex AI
        CustomJob (machine settings) the job's worker pool container (the executor only runs GCPC's launcher)."""
        component = self.component_of(task)
        pools = component.parameters.get("worker_pool_specs") if component else None
        if pools is not None and isinstance(pools.default, list) and pools.default:
            return _container((pools.default[0] or {}).get("container_spec"))
        executor = self.executor_of(task)
        return executor.container if executor else None

    @property
    def exit_handlers(self) -> tuple[ExitHandler, ...]:
        """Every exit handler, outermost first. One handler holds the pipeline's tasks; with both an exit task and
        the e-mail, kfp's nesting: the e-mail's handler holds one sub-pipeline task whose DAG has the handler
        around the pipeline's tasks and our exit task."""
        handlers: list[ExitHandler] = []
        dag: Mapping[str, Task] | None = self.root
        while dag is not None:
            group = dag.get(EXIT_HANDLER_TASK)
            if group is None or group.component is None or any(h.component == group.component for h in handlers):
                break
            exits = tuple(task.key for task in dag.values() if EXIT_HANDLER_TASK in task.dependencies)
            handlers.append(ExitHandler(group=group.key, component=group.component, exit_tasks=exits))
            inside = self.components.get(group.component)
            only = list(inside.dag.values()) if inside is not None and inside.dag is not None else []
            sub = self.components.get(only[0].component or "") if len(only) == 1 else None
            dag = sub.dag if sub is not None and sub.dag is not None and EXIT_HANDLER_TASK in sub.dag else None
        return tuple(handlers)

    @property
    def exit_handler(self) -> ExitHandler | None:
        """The exit handler around the pipeline's tasks (the innermost one), when the spec has one
        (``run_config.on_exit_pipeline``, notifications)."""
        handlers = self.exit_handlers
        return handlers[-1] if handlers else None


def task_names(spec: Mapping[str, Any]) -> dict[str, str]:
    """Task key → ``taskInfo.name`` (the Kedro nodes the task runs) of every task in the spec's DAGs."""
    return SpecView.of(spec).task_names()


def documents(spec: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The PipelineSpec and the platform spec (None when there is none) of a compiled spec."""
    pipeline_spec = {key: value for key, value in spec.items() if key != PLATFORM_SPEC_KEY}
    platform = spec.get(PLATFORM_SPEC_KEY)
    return pipeline_spec, (dict(platform) if platform else None)


def yaml_documents(spec: Mapping[str, Any]) -> str:
    """The spec as the YAML KFP's compiler writes: the PipelineSpec, then (when there is one) ``---`` and the
    platform spec. JSON is YAML, so each document is one compact JSON line (what ``kfp.Client`` reads)."""
    pipeline_spec, platform = documents(spec)
    text = json.dumps(pipeline_spec)
    if platform:
        text += "\n---\n" + json.dumps(platform)
    return text + "\n"


def pipeline_name(spec: Mapping[str, Any], default: str = "kedro") -> str:
    """The compiled pipeline's name (``pipelineInfo.name``): the project, then the Kedro pipeline unless
    ``__default__``."""
    return str((spec.get("pipelineInfo") or {}).get("name") or default)


def looks_compiled(spec: Any) -> bool:
    """Whether ``spec`` (e.g. a registry template) has what every compiled spec has: a root and a pipelineInfo."""
    return isinstance(spec, Mapping) and "root" in spec and "pipelineInfo" in spec


# -----------------------------------------------------------------------------------------------------------------
# the changes a backend makes to a compiled spec (each returns a changed copy)


def _raw_tasks(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    dags = [(spec.get("root") or {}).get("dag") or {}]
    dags += [component.get("dag") or {} for component in (spec.get("components") or {}).values()]
    for dag in dags:
        yield from (dag.get("tasks") or {}).values()


def with_default_caching(spec: Mapping[str, Any], enabled: bool) -> dict[str, Any]:
    """``spec`` with ``run_config.caching`` for every task the compiler left without its own ``cachingOptions``.

    Unlike ``aiplatform``'s ``enable_caching`` this never overrides a per-node setting from ``resources``.
    """
    changed = copy.deepcopy(dict(spec))
    for task in _raw_tasks(changed):
        task.setdefault("cachingOptions", {"enableCache": enabled})
    return changed


def with_job_ids(spec: Mapping[str, Any], replacements: Mapping[str, str]) -> dict[str, Any]:
    """``spec`` with each placeholder of ``replacements`` (e.g. the job's ids, ``{{$.pipeline_job_uuid}}``) in the
    args of every task's container replaced by its value: an executor's container, and the worker pool container
    of a task compiled as a CustomJob."""

    def replaced(args: list[Any]) -> list[str]:
        result = []
        for arg in args:
            text = str(arg)
            for placeholder, value in replacements.items():
                text = text.replace(placeholder, value)
            result.append(text)
        return result

    changed = copy.deepcopy(dict(spec))
    for executor in ((changed.get("deploymentSpec") or {}).get("executors") or {}).values():
        container = executor.get("container") or {}
        if "args" in container:
            container["args"] = replaced(container["args"])
    for component in (changed.get("components") or {}).values():
        pools = ((component.get("inputDefinitions") or {}).get("parameters") or {}).get("worker_pool_specs") or {}
        for pool in pools.get("defaultValue") or ():
            container = (pool or {}).get("container_spec") or {}
            if "args" in container:
                container["args"] = replaced(container["args"])
    return changed


#: how a refusal words a parameter type, where it says it differently from the shared words
_EXPECTED = {"NUMBER_INTEGER": "an integer", "STRUCT": "a mapping", "LIST": "a list"}


def typed_value(value: Any, kind: str | None, label: str) -> Any:
    """``value`` as a parameter of type ``kind`` (``parameterType``) is held (a number travels as a double: 3 comes
    back as 3.0, and becomes 3); None, and a value of an unknown type, as it is.

    Raises:
        PluginError: ``<label>: expected <what>, got <value>``.
    """
    if value is None or kind not in PARAMETER_TYPE_WORDS:
        return value
    try:
        return typed_parameter(value, kind)
    except ValueError:
        raise PluginError(
            f"{label}: expected {_EXPECTED.get(kind, PARAMETER_TYPE_WORDS[kind])}, got {value!r}"
        ) from None


def parameter_values(spec: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The job's pipeline parameters, typed as the spec declares them (Vertex rejects e.g. "3" for an integer): the
    one place that types them, for every backend. Values come from the spec's defaults (the compiler records
    ``--params`` there) and ``overrides``.

    Raises:
        PluginError: an unknown parameter, one without a value, or a value of the wrong type.
    """
    declared = SpecView.of(spec).parameters
    overrides = dict(overrides or {})
    values: dict[str, Any] = {}
    for name, parameter in declared.items():
        if name in overrides:
            value = overrides.pop(name)
        elif parameter.has_default:
            value = parameter.default
        elif parameter.optional:
            continue
        else:
            raise PluginError(f"pipeline parameter {name!r} has no value: pass it with --params {name}=…")
        values[name] = typed_value(value, parameter.type, f"pipeline parameter {name!r}")
    if overrides:
        known = ", ".join(sorted(declared)) or "none"
        raise PluginError(f"unknown pipeline parameter {sorted(overrides)[0]!r}: the pipeline declares {known}")
    return values


__all__ = [
    "ENTRYPOINT_COMMAND",
    "ENTRYPOINT_MODULE",
    "EXIT_HANDLER_COMPONENT",
    "EXIT_HANDLER_TASK",
    "PLATFORM_SPEC_KEY",
    "RUN_ALWAYS",
    "RUN_ON_SUCCESS",
    "SCHEMA_VERSION",
    "TASK_NAME_MAX",
    "Component",
    "Container",
    "Executor",
    "ExitHandler",
    "Parameter",
    "SpecView",
    "Task",
    "documents",
    "looks_compiled",
    "parameter_values",
    "pipeline_name",
    "task_names",
    "typed_value",
    "with_default_caching",
    "with_job_ids",
    "yaml_documents",
]
