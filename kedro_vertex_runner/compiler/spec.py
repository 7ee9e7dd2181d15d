"""Task groups → a Kubeflow v2 PipelineSpec (schema 2.1.0) as a plain JSON dict, and writing it to a file.

The spec is built as dicts rather than through kfp's ``dsl`` compiler, which is quadratic in the number of tasks
and inspects the call stack on every setter; dicts take milliseconds per hundred tasks and need no kfp import. The
layout copies what kfp 2.17 itself emits (``resources``, ``retryPolicy``, ``dsl.ExitHandler``), so Vertex AI and
kfp's own parser accept it.

Each task runs ``python -m kedro_vertex_runner.entrypoint`` with its arguments in exec form — one value per list
item, never a shell — rendered from a :class:`~kedro_vertex_runner.task.contract.TaskContract` as ``--option=value``
items, so node names such as ``f([a;b]) -> [c]`` or ``--help`` and a parameter ``-draft`` arrive intact and inert.
Runtime parameters (``--params``) become typed pipeline parameters whose values reach every task through
placeholders; the project's full parameter set stays in the image's ``conf/`` and is never copied into the spec.
The job's ids reach ``--run-id``/``--job-name`` as ``{{$.pipeline_job_uuid}}``/``{{$.pipeline_job_name}}`` inside the
args, which Vertex AI substitutes there and which keeps a task's cache key the same from job to job; for a backend
whose engine substitutes them only as ``runtimeValue`` constants of task inputs (``job_ids_as_inputs``: Kubeflow
Pipelines), every task takes them as the input parameters ``job_uuid``/``job_name`` and the args read those.
The environment of every task holds only non-secret values: a variable or runtime parameter that looks like a
credential, by name or by value (:mod:`kedro_vertex_runner.secret_check`), is refused rather than written in plain
text into a file that is uploaded and shown in the console.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..backends import backend_class
from ..config import cpu_cores, normalise_root
from ..config.machines import Machine
from ..errors import PluginError
from ..files import replace_file
from ..pipeline_spec import (
    ENTRYPOINT_COMMAND,
    EXIT_HANDLER_COMPONENT,
    EXIT_HANDLER_TASK,
    RUN_ALWAYS,
    SCHEMA_VERSION,
    TASK_NAME_MAX,
    documents,
)
from ..secret_check import find_secret, secret_message, secret_reason
from ..task.artifacts import DATASET as DATASET_ARTIFACT
from ..task.artifacts import EXECUTOR_INPUT_PLACEHOLDER, artifact_name
from ..task.artifacts import definition as artifact_definition
from ..task.contract import (
    JOB_ID_INPUTS,
    JOB_NAME_INPUT,
    JOB_NAME_PLACEHOLDER,
    NULL_PARAM,
    RUN_ID_INPUT,
    RUN_ID_PLACEHOLDER,
    HostAlias,
    TaskContract,
    TaskParam,
    input_placeholder,
)
from ..task.runners import PROCESSES, SEQUENTIAL, can_overlap, memory_groups, mode_for
from ..values import memory_quantity, memory_quantity_bytes, parameter_type
from . import cost_model
from .grouping import TaskGroup, group_nodes
from .machines import as_custom_job, machine_key, machine_of, note_ignored
from .platform import pod_key, with_platform_spec

if TYPE_CHECKING:
    from kedro.pipeline import Pipeline
    from kedro.pipeline.node import Node

    from ..config import RetryPolicy, RunConfig, TaskSettings
    from . import CompileRequest

#: the exit task's input holding the job's final status, and its placeholder (kfp 2.17's layout for a container
#: component taking ``dsl.PipelineTaskFinalStatus``)
FINAL_STATUS_INPUT = "status"
FINAL_STATUS_PLACEHOLDER = "{{$.inputs.parameters['status']}}"
#: Google's e-mail notification exit task (google-cloud-pipeline-components' ``VertexNotificationEmailOp``), as
#: GCPC 2.22.0 with kfp 2.17.3 compiles it (tests/golden/gcpc_notification_email.yaml)
EMAIL_TASK = "vertex-pipelines-notification-email"
EMAIL_IMAGE = "gcr.io/ml-pipeline/google-cloud-pipeline-components:2.22.0"
EMAIL_MODULE = "google_cloud_pipeline_components.container.v1.vertex_notification_email.executor"
#: with both an exit task of ours and the e-mail task: kfp puts no two exit tasks on one ``dsl.ExitHandler``, and
#: nests exit handlers only through a sub-pipeline, so the job's tasks and our exit task are a sub-pipeline
#: (``kedro-pipeline``) with its own exit handler (kfp's ``comp-exit-handler-1-2``), inside the handler the e-mail
#: task watches
INNER_PIPELINE_TASK = "kedro-pipeline"
INNER_HANDLER_COMPONENT = "comp-exit-handler-1-2"


def build_pipeline_spec(request: CompileRequest) -> dict[str, Any]:
    """Compile ``request`` into a PipelineSpec dict; the same request always gives the same dict.

    Raises:
        PluginError: an empty pipeline, unusable runtime parameters, a group whose nodes need different images
            or accelerators, a cyclic grouping, or an environment variable that looks like a secret.
    """
    run_config = request.config.run_config
    _refuse_empty(request)
    job_ids = _job_ids_as_inputs(run_config.backend)
    params = _pipeline_parameters(request.runtime_params, reserved=JOB_ID_INPUTS if job_ids else ())
    settings = task_settings(run_config)
    groups = group_nodes(request.pipeline, run_config.grouping, fusable=settings.same, model=cost_model(request))
    exit_group = None
    if request.on_exit is not None:
        exit_group = _exit_group(request.on_exit, run_config.on_exit_pipeline)
    webhook = webhook_argument(run_config)
    email = list(run_config.notifications.email) if backend_class(run_config.backend).email_notifications else []
    names = _spec_task_names(groups, exit_group, webhook, email)
    task_name_of = {group.key: name for group, name in zip(groups, names[: len(groups)], strict=True)}
    exit_names = names[len(groups) :]  # our exit task's name, then the e-mail task's

    common = _CommonArgs(request, params, groups, exit_handler=exit_group is not None, job_ids=job_ids)
    parts = _SpecParts(run_config, settings, params, job_ids, common)
    tasks = parts.job_tasks(request, groups, task_name_of)
    exit_tasks: dict[str, Any] = {}
    exit_name = None
    if exit_group is not None or webhook:
        exit_name = exit_names.pop(0)
        exit_tasks[exit_name], exit_group = parts.exit_task(exit_name, exit_group)
    email_task = None
    if email:
        email_task = parts.email_task(exit_names.pop(0), email)
    root_tasks = parts.root_tasks(tasks, exit_tasks, email_task)

    task_nodes = {f"exec-{task_name_of[group.key]}": group.nodes for group in groups}
    if exit_group is not None:
        task_nodes[f"exec-{exit_name}"] = exit_group.nodes
    webhook_executor = f"exec-{exit_name}" if webhook else None
    return with_platform_spec(parts.spec(request, root_tasks), run_config, task_nodes, webhook_executor)


def _refuse_empty(request: CompileRequest) -> None:
    """A pipeline with no node (a wrong name or filters that keep nothing) is refused: there is nothing to run."""
    if not request.pipeline.nodes:
        raise PluginError(
            f"pipeline {'+'.join(request.pipeline_names)!r} has no nodes to compile: check the pipeline name and "
            "any --tags/--nodes/--from-nodes/--to-nodes filters"
        )


def _spec_task_names(
    groups: list[TaskGroup], exit_group: TaskGroup | None, webhook: str | None, email: list[str]
) -> list[str]:
    """Every task's name, unique and never one of the names the exit-handler layout reserves: the job's tasks in
    group order, then our exit task (the on-exit pipeline's, or the webhook's alone), then the e-mail task."""
    labels = [_task_base_name(group) for group in groups]
    reserved = {EXIT_HANDLER_TASK, INNER_PIPELINE_TASK}
    if exit_group is not None:
        labels.append(f"on-exit-{exit_group.key}")
    elif webhook:
        labels.append("on-exit-webhook")
    if email:
        labels.append(EMAIL_TASK)
    return _unique_task_names(labels, reserved)


def _after_exit_handler(task: dict[str, Any]) -> None:
    """Make ``task`` an exit task: it runs once the exit handler's tasks have ended, whatever their outcome."""
    task["dependentTasks"] = [EXIT_HANDLER_TASK]
    task["triggerPolicy"] = {"strategy": RUN_ALWAYS}


class _SpecParts:
    """The components and executors of one spec as its tasks are compiled, and how many tasks asked for a machine."""

    def __init__(
        self,
        run_config: RunConfig,
        settings: _SettingsCache,
        params: list[_Parameter],
        job_ids: bool,
        common: _CommonArgs,
    ):
        self.run_config, self.settings, self.common = run_config, settings, common
        self.params, self.job_ids = params, job_ids
        self.components: dict[str, Any] = {}
        self.executors: dict[str, Any] = {}
        self.machine_tasks = 0

    def job_tasks(
        self, request: CompileRequest, groups: list[TaskGroup], task_name_of: dict[str, str]
    ) -> dict[str, Any]:
        """One task per group, after the groups it depends on. A task that would be served from cache although it
        reads or writes a per-run output is not cached; the warnings about memory datasets crossing tasks and
        about those uncached tasks are printed only once every task compiled (an error is then the one line
        printed)."""
        tasks: dict[str, Any] = {}
        boundary = _PerRunOutputs(request, groups, task_name_of)
        artifacts = _Artifacts(request, boundary)
        not_cached: list[tuple[str, str, str]] = []
        for group in groups:
            name = task_name_of[group.key]
            group_settings = self.settings.combine(group)
            boundary.warn_memory_crossing(group)
            if group_settings.caching:
                shared = boundary.uncacheable(group)
                if shared:
                    group_settings = replace(group_settings, caching=False)
                    not_cached.append((name, *shared))
            task = _task(name, _display_name(group), group_settings, self.params, self.job_ids)
            if group.dependencies:
                task["dependentTasks"] = sorted(task_name_of[dep] for dep in group.dependencies)
            tasks[name] = task
            self.components[f"comp-{name}"] = component = _component(name, self.params, self.job_ids)
            declares = artifacts.declare(group, name, task, component, group_settings.machine is not None)
            self.executors[f"exec-{name}"] = _executor(
                group, group_settings, self.common, exit_handler=False, artifacts=declares
            )
            self._count_machine(name, group_settings)

        boundary.print_warnings()
        if not_cached:
            _warn_not_cached(not_cached)
        return tasks

    def exit_task(self, name: str, exit_group: TaskGroup | None) -> tuple[dict[str, Any], TaskGroup]:
        """Our exit task and the group it runs: the on-exit pipeline's nodes, never served from cache (the exit
        handler must run after every execution, whatever its outcome), or, with only a webhook, no node at all.
        It takes the job's final status where the backend gives one."""
        if exit_group is not None:
            exit_settings = replace(self.settings.combine(exit_group), caching=False)
            display = f"on exit: {_node_summary(exit_group)}"
        else:  # only the webhook: a task running no node
            exit_group = TaskGroup("webhook", (), (), "on_exit")
            exit_settings = _GroupSettings(self.run_config.image, None, None, 0, None, None, None, False, "webhook")
            display = "on exit: webhook"
        exit_task = _task(name, display, exit_settings, self.params, self.job_ids)
        component = _component(name, self.params, self.job_ids)
        if self.common.final_status:
            _final_status_input(exit_task, component)
        _after_exit_handler(exit_task)
        self.components[f"comp-{name}"] = component
        self.executors[f"exec-{name}"] = _executor(exit_group, exit_settings, self.common, exit_handler=True)
        self._count_machine(name, exit_settings)
        return exit_task, exit_group

    def email_task(self, name: str, recipients: list[str]) -> tuple[str, dict[str, Any]]:
        """Google's e-mail notification exit task, by name."""
        task, self.components[f"comp-{name}"], self.executors[f"exec-{name}"] = _email_task(name, recipients)
        _after_exit_handler(task)
        return name, task

    def root_tasks(
        self, tasks: dict[str, Any], exit_tasks: dict[str, Any], email_task: tuple[str, dict[str, Any]] | None
    ) -> dict[str, Any]:
        """The root DAG's tasks. Without an exit task, the job's tasks. With one, kfp's ``dsl.ExitHandler`` layout:
        the job's tasks in a sub-DAG component, the exit task beside it. With our exit task and the e-mail task,
        kfp's nested exit handlers: the job's tasks and ours in a sub-pipeline, the e-mail's handler around it."""
        params = self.params
        if email_task is not None:
            if exit_tasks:
                self.components[INNER_HANDLER_COMPONENT] = _dag_component(tasks, params)
                inner_handler = _dag_task(INNER_HANDLER_COMPONENT, EXIT_HANDLER_TASK, params)
                self.components[f"comp-{INNER_PIPELINE_TASK}"] = _dag_component(
                    {EXIT_HANDLER_TASK: inner_handler, **exit_tasks}, params
                )
                tasks = {INNER_PIPELINE_TASK: _dag_task(f"comp-{INNER_PIPELINE_TASK}", INNER_PIPELINE_TASK, params)}
                exit_tasks = {}
            email_name, email = email_task
            exit_tasks[email_name] = email
        if not exit_tasks:
            return tasks
        self.components[EXIT_HANDLER_COMPONENT] = _dag_component(tasks, params)
        return {EXIT_HANDLER_TASK: _dag_task(EXIT_HANDLER_COMPONENT, EXIT_HANDLER_TASK, params), **exit_tasks}

    def spec(self, request: CompileRequest, root_tasks: dict[str, Any]) -> dict[str, Any]:
        """The PipelineSpec around ``root_tasks``, before its platform spec; says once that this backend runs the
        tasks with machine settings as ordinary tasks."""
        run_config = self.run_config
        if self.machine_tasks and not backend_class(run_config.backend).machines_as_custom_jobs:
            note_ignored(run_config.backend, self.machine_tasks)
        root: dict[str, Any] = {"dag": {"tasks": root_tasks}}
        if self.params:
            root["inputDefinitions"] = {"parameters": {p.name: p.definition() for p in self.params}}
        pipeline_info = {"name": _pipeline_name(request.project_name, request.pipeline_names)}
        if run_config.description:
            pipeline_info["description"] = run_config.description
        return {
            "components": self.components,
            "deploymentSpec": {"executors": self.executors},
            "pipelineInfo": pipeline_info,
            "root": root,
            "schemaVersion": SCHEMA_VERSION,
            "sdkVersion": f"kedro-vertex-runner-{__version__}",
        }

    def _count_machine(self, name: str, settings: _GroupSettings) -> None:
        """A task with machine settings: a CustomJob where the backend runs them so (:func:`_on_machine`)."""
        self.machine_tasks += _on_machine(name, settings, self.components, self.executors, self.run_config)


def webhook_argument(run_config: Any) -> str | None:
    """The exit task's ``--webhook``, as the backend gives it (:meth:`.backends.base.Backend.webhook_argument`)."""
    return backend_class(run_config.backend).webhook_argument(run_config)


def _dag_component(tasks: dict[str, Any], params: list[_Parameter]) -> dict[str, Any]:
    """A sub-DAG component (an exit handler's, a sub-pipeline's) of ``tasks``: it declares the pipeline parameters
    as its own inputs (same names) and the tasks inside read them from there."""
    component: dict[str, Any] = {"dag": {"tasks": tasks}}
    if params:
        component["inputDefinitions"] = {"parameters": {p.name: p.type_only() for p in params}}
    return component


def _dag_task(component: str, name: str, params: list[_Parameter]) -> dict[str, Any]:
    """The task running sub-DAG ``component``, passing it the pipeline parameters."""
    task: dict[str, Any] = {"componentRef": {"name": component}, "taskInfo": {"name": name}}
    if params:
        task["inputs"] = _task_inputs(params)
    return task


def _final_status_input(task: dict[str, Any], component: dict[str, Any]) -> None:
    """Give an exit task the job's final status, as kfp compiles a ``dsl.PipelineTaskFinalStatus`` input."""
    inputs = task.setdefault("inputs", {}).setdefault("parameters", {})
    inputs[FINAL_STATUS_INPUT] = {"taskFinalStatus": {"producerTask": EXIT_HANDLER_TASK}}
    definitions = component.setdefault("inputDefinitions", {}).setdefault("parameters", {})
    definitions[FINAL_STATUS_INPUT] = {"isOptional": True, "parameterType": "TASK_FINAL_STATUS"}


def _email_task(name: str, recipients: list[str]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Task, component and executor of Google's e-mail notification exit task (``VertexNotificationEmailOp``):
    Vertex AI itself sends the e-mail; the container is never run with a payload."""
    task: dict[str, Any] = {
        "cachingOptions": {"enableCache": False},
        "componentRef": {"name": f"comp-{name}"},
        "inputs": {"parameters": {"recipients": {"runtimeValue": {"constant": list(recipients)}}}},
        "taskInfo": {"name": name},
    }
    component: dict[str, Any] = {
        "executorLabel": f"exec-{name}",
        "inputDefinitions": {
            "parameters": {
                "recipients": {
                    "description": "A list of email addresses to send a notification to.",
                    "parameterType": "LIST",
                }
            }
        },
    }
    task["inputs"]["parameters"]["pipeline_task_final_status"] = {
        "taskFinalStatus": {"producerTask": EXIT_HANDLER_TASK}
    }
    component["inputDefinitions"]["parameters"]["pipeline_task_final_status"] = {
        "isOptional": True,
        "parameterType": "TASK_FINAL_STATUS",
    }
    executor = {
        "container": {
            "args": ["--type", "VertexNotificationEmail", "--payload", ""],
            "command": ["python3", "-u", "-m", EMAIL_MODULE],
            "image": EMAIL_IMAGE,
        }
    }
    return task, component, executor


def _job_ids_as_inputs(backend: str) -> bool:
    """Whether ``backend``'s engine substitutes the job's ids only in task inputs (``Backend.job_ids_as_inputs``)."""
    return backend_class(backend).job_ids_as_inputs


def write_spec(spec: dict[str, Any], path: str | Path) -> Path:
    """Write ``spec`` as compact JSON (sorted keys, trailing newline) or, for ``.yaml``/``.yml``, as YAML; atomically.
    A Kubernetes platform spec (:mod:`.platform`) is KFP's second YAML document, or in JSON the object
    ``{"pipeline_spec", "platform_spec"}``.

    Raises:
        PluginError: an unknown suffix or a path that cannot be written, naming the path.
    """
    path = Path(path)
    pipeline_spec, platform = documents(spec)  # a platform spec is KFP's second document (see .platform)
    if check_output_path(path) == ".json":
        # compact: a thousand-task spec stays near 1 MB (indented it would be twice that); -o *.yaml is for reading
        content = {"pipeline_spec": pipeline_spec, "platform_spec": platform} if platform else spec
        text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n"
    else:
        text = _to_yaml(pipeline_spec) + (f"---\n{_to_yaml(platform)}" if platform else "")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(str(path))
        replace_file(path, text)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise PluginError(
            f"cannot write the compiled pipeline to {str(path)!r}: {reason}; choose another -o/--output path"
        ) from None
    return path


def check_output_path(path: str | Path) -> str:
    """The format ``path`` asks for (``.json`` or ``.yaml``), after the checks that need no spec: a known suffix,
    not a folder, no file where a folder has to be, a writable folder. Cheap, so the CLI runs it before opening
    a Kedro session; :func:`write_spec` still reports whatever fails when the file is written.

    Raises:
        PluginError: one line naming the path and what to do.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".json", ".yaml", ".yml"}:
        raise PluginError(f"output file {str(path)!r}: unknown suffix {path.suffix!r}; use .json, .yaml or .yml")

    def unwritable(reason: str) -> PluginError:
        return PluginError(
            f"cannot write the compiled pipeline to {str(path)!r}: {reason}; choose another -o/--output path"
        )

    if path.is_dir():
        raise unwritable("Is a directory")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # the nearest folder that exists
        folder = folder.parent
    if not folder.is_dir():
        raise unwritable(f"{str(folder)!r} is a file, not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise unwritable("Permission denied")
    return ".json" if suffix == ".json" else ".yaml"


def _to_yaml(spec: dict[str, Any]) -> str:
    import yaml

    base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class _Dumper(base):  # type: ignore[misc, valid-type]
        def ignore_aliases(self, data: Any) -> bool:  # no &id001 anchors for repeated values
            return True

    return yaml.dump(spec, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=4096)


# ---------------------------------------------------------------------------------------------------------------
# parameters


class _Parameter:
    """One runtime parameter: Kedro's top-level key, its name in the spec, its type and default."""

    __slots__ = ("key", "name", "type", "value")

    def __init__(self, key: str, name: str, type_: str, value: Any):
        self.key, self.name, self.type, self.value = key, name, type_, value

    def definition(self) -> dict[str, Any]:
        return {"defaultValue": self.value, "isOptional": True, "parameterType": self.type}

    def type_only(self) -> dict[str, Any]:
        return {"parameterType": self.type}

    def placeholder(self) -> str:
        return input_placeholder(self.name)


def _pipeline_parameters(runtime_params: dict[str, Any], reserved: Iterable[str] = ()) -> list[_Parameter]:
    """The typed pipeline parameters of ``runtime_params``, named apart from each other and from ``reserved``
    (the tasks' own inputs)."""
    params = []
    used: set[str] = set(reserved)
    for key in sorted(runtime_params, key=str):
        value = runtime_params[key]
        if value is None:  # no parameter type holds a null: the tasks get it as a fixed arg (_null_params)
            continue
        type_ = _parameter_type(str(key), value)
        _check_json_value(str(key), value)
        secret = find_secret({str(key): value}, "")
        if secret:
            raise PluginError(secret_message(f"--params {secret[0]}", secret[1]))
        base = re.sub(r"[^a-z0-9_]", "_", str(key).lower())
        if not base or not base[0].isalpha():
            base = f"p_{base}"
        name, counter = base, 2
        while name in used:
            name, counter = f"{base}_{counter}", counter + 1
        used.add(name)
        params.append(_Parameter(str(key), name, type_, value))
    return params


def _null_params(request: CompileRequest) -> tuple[TaskParam, ...]:
    """``--params k=null``: as in a plain ``kedro run`` the nodes get None. Fixed in the compiled tasks' args
    (``--param=NULL:k=``), not a pipeline parameter: no Vertex AI parameter type holds a null."""
    params = request.runtime_params
    return tuple(TaskParam(str(key), NULL_PARAM, "") for key in sorted(params, key=str) if params[key] is None)


def _parameter_type(key: str, value: Any) -> str:
    spec_type = parameter_type(value)
    if spec_type is not None:
        return spec_type
    shown = "null" if value is None else f"{value!r} ({type(value).__name__})"
    raise PluginError(
        f"--params {key}: value {shown} cannot be a pipeline parameter; use a string, number, boolean, list or mapping"
    )


def _check_json_value(path: str, value: Any) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise PluginError(f"--params {path}: {value!r} is not a finite number; pass a finite number or a string")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PluginError(f"--params {path}: key {key!r} is not a string; quote it")
            _check_json_value(f"{path}.{key}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_value(f"{path}[{index}]", item)
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        raise PluginError(
            f"--params {path}: value {value!r} ({type(value).__name__}) cannot be stored in the pipeline spec; "
            "use strings, numbers, booleans, lists or mappings"
        )


def _task_inputs(params: list[_Parameter], job_ids: bool = False) -> dict[str, Any]:
    """A task's inputs: the pipeline parameters and, with ``job_ids``, the job's ids as ``runtimeValue`` constants
    (the form kfp's own compiler gives ``dsl.PIPELINE_JOB_ID_PLACEHOLDER`` passed to a task)."""
    inputs: dict[str, Any] = {p.name: {"componentInputParameter": p.name} for p in params}
    if job_ids:
        inputs.update({name: {"runtimeValue": {"constant": value}} for name, value in JOB_ID_INPUTS.items()})
    return {"parameters": inputs}


# ---------------------------------------------------------------------------------------------------------------
# settings


def task_settings(run_config: RunConfig) -> _SettingsCache:
    """Each node's effective task settings, cached; ``.same(a, b)`` says whether two nodes may share a task."""
    return _SettingsCache(run_config)


class _SettingsCache:
    """Effective ``TaskSettings`` per node, computed once per distinct (node-specific?, tags) combination."""

    def __init__(self, run_config: RunConfig):
        self.run_config = run_config
        self._by_tags: dict[frozenset[str], TaskSettings] = {}
        self._by_node: dict[str, TaskSettings] = {}
        self._keys: dict[str, tuple[Any, ...]] = {}

    def of(self, node: Node) -> TaskSettings:
        found = self._by_node.get(node.name)
        if found is None:
            if node.name in self.run_config.resources:
                found = self.run_config.settings_for(node.name, node.tags)
            else:
                tags = frozenset(node.tags)
                found = self._by_tags.get(tags)
                if found is None:
                    found = self._by_tags[tags] = self.run_config.settings_for(node.name, tags)
            self._by_node[node.name] = found
        return found

    def key(self, node: Node) -> tuple[Any, ...]:
        cached = self._keys.get(node.name)
        if cached is None:
            s = self.of(node)
            retries = s.retries
            retry_key = None
            if retries is not None:
                retry_key = (retries.max_retries, retries.backoff, retries.backoff_factor, retries.max_backoff)
            image = s.image or self.run_config.image
            # cpu and memory are left out: a task can hold nodes asking for different amounts (it gets the most)
            cached = (
                s.gpu, s.accelerator, retry_key, s.timeout, s.caching, image, pod_key(self.run_config, node),
                machine_key(s), _secret_items(s.secrets),
            )  # fmt: skip
            self._keys[node.name] = cached
        return cached

    def same(self, parent: Node, child: Node) -> bool:
        """Whether two nodes may share a task (``makespan``, ``chains``): when their image, GPUs, accelerator,
        retries, timeout, caching and Kubernetes pod settings agree. CPU and memory requests may differ:
        :meth:`combine` gives the task the most of each."""
        return self.key(parent) == self.key(child)

    def combine(self, group: TaskGroup) -> _GroupSettings:
        """One set of settings for a group: the most of every resource, the most retries, the longest timeout,
        caching only if every node allows it; image and accelerator type must agree."""
        all_settings = [(node, self.of(node)) for node in group.nodes]
        if len(all_settings) == 1:
            return _GroupSettings.from_settings(group.nodes[0].name, all_settings[0][1], self.run_config.image)
        images: dict[str, list[str]] = {}
        accelerators: dict[str, list[str]] = {}
        machines: dict[str, list[str]] = {}
        cpu = memory = retries = None
        secrets: dict[str, dict[str, list[str]]] = {}
        gpu = 0
        timeout: float | None = 0.0
        caching = True
        for node, s in all_settings:
            images.setdefault(s.image or self.run_config.image, []).append(node.name)
            if s.accelerator:
                accelerators.setdefault(s.accelerator, []).append(node.name)
            machine = machine_of(s, f"node {node.name!r}")
            machines.setdefault(machine.describe() if machine else "no machine settings", []).append(node.name)
            if s.cpu is not None and (cpu is None or _cpu_cores(s.cpu) > _cpu_cores(cpu)):
                cpu = s.cpu
            if s.memory is not None and (memory is None or _memory_bytes(s.memory) > _memory_bytes(memory)):
                memory = s.memory
            gpu = max(gpu, s.gpu or 0)
            if s.retries is not None and (retries is None or s.retries.max_retries > retries.max_retries):
                retries = s.retries
            timeout = None if timeout is None or s.timeout is None else max(timeout, s.timeout)
            caching = caching and bool(s.caching)
            for env_name, reference in (s.secrets or {}).items():
                secrets.setdefault(env_name, {}).setdefault(reference, []).append(node.name)
        _agree(group, "image", images)
        _agree(group, "accelerator", accelerators)
        _agree(group, "machine", machines)
        for env_name, references in sorted(secrets.items()):
            _agree(group, f"secrets.{env_name} reference", references)
        return _GroupSettings(
            image=next(iter(images)),
            cpu=cpu,
            memory=memory,
            gpu=gpu,
            accelerator=next(iter(accelerators), None),
            retries=retries,
            timeout=timeout,
            caching=caching,
            where=f"group {group.name!r}",
            machine=Machine.of(all_settings[0][1]),
            secrets=_secret_items({env_name: next(iter(refs)) for env_name, refs in secrets.items()}),
        )


def _secret_items(secrets: Mapping[str, str] | None) -> tuple[str, ...]:
    """``--secret`` items (``NAME=REFERENCE``), sorted: only references, never a value."""
    return tuple(f"{name}={reference}" for name, reference in sorted((secrets or {}).items()))


_PER_RUN_PATH = "is stored under a per-run path (its catalog entry uses ${vertex:run_id} or ${vertex:job_name})"


class _PerRunOutputs:
    """Datasets a task stores under the job's run id, through the one rule of
    :class:`kedro_vertex_runner.task.persistence.TaskBoundary`:

    * a task producing one that other tasks read (or one the catalog itself puts under a ``${vertex:run_id}``
      path) cannot be served from Vertex AI's cache: it would not run, and the data would not exist for the new
      job;
    * a dataset the catalog declares as a memory dataset that passes between tasks is stored there like an
      undeclared one, with one warning line naming it and both tasks.
    """

    def __init__(self, request: CompileRequest, groups: list[TaskGroup], task_name_of: dict[str, str]):
        from ..task.persistence import TaskBoundary

        declared = request.declared
        self.known = declared is not None
        self.in_memory = request.in_memory if self.known else frozenset()
        self.per_run = request.per_run if self.known else frozenset()
        self.boundary = TaskBoundary(
            request.pipeline, (declared or frozenset()).__contains__, self.in_memory.__contains__
        )
        self._task_of_node: dict[str, str] | None = None
        self._groups, self._task_name_of = groups, task_name_of
        self._last: tuple[str, tuple[set[str], set[str]]] | None = None
        self._warnings: list[str] = []

    def uncacheable(self, group: TaskGroup) -> tuple[str, str] | None:
        """``(dataset, why)`` for the first output of ``group`` stored per run, or None."""
        if not self.known:
            return None
        own = {node.name for node in group.nodes}
        _, outputs = self._crossing(group)
        for node in group.nodes:
            for name in node.outputs:
                if name in self.per_run:
                    return name, _PER_RUN_PATH
                if name in outputs and self.boundary.read_outside(name, own):
                    kind = "declared as a memory dataset" if name in self.in_memory else "not in the catalog"
                    return name, f"is read by other tasks and stored per run (it is {kind})"
        return None

    def warn_memory_crossing(self, group: TaskGroup) -> None:
        if not self.in_memory:
            return
        own = {node.name for node in group.nodes}
        _, outputs = self._crossing(group)
        for name in sorted(outputs & self.in_memory):
            readers = sorted(self.boundary.read_outside(name, own))
            if not readers:
                continue
            writer, reader = self._task_name_of[group.key], self._task_of(readers[0])
            self._warnings.append(
                f"Warning: dataset {name!r} is declared as a MemoryDataset, but task {writer!r} writes it and task "
                f"{reader!r} reads it: it is stored under <root>/<run id>/ like an undeclared dataset; declare a "
                "persistent type for it in the catalog, or group the nodes into one task (run_config.grouping)"
            )

    def print_warnings(self) -> None:
        for line in self._warnings:
            print(line, file=sys.stderr)

    def _crossing(self, group: TaskGroup) -> tuple[set[str], set[str]]:
        if self._last is None or self._last[0] != group.key:
            self._last = (group.key, self.boundary.crossing(group.nodes))
        return self._last[1]

    def _task_of(self, node_name: str) -> str:
        if self._task_of_node is None:
            self._task_of_node = {
                node.name: self._task_name_of[group.key] for group in self._groups for node in group.nodes
            }
        return self._task_of_node.get(node_name, node_name)


class _Artifacts:
    """The catalog datasets each task declares as output artifacts, and the input artifacts of the tasks that read
    them (``taskOutputArtifact``), per the rule of :mod:`kedro_vertex_runner.task.artifacts`: the catalog's datasets
    with a location, metrics and models (``request.artifacts``), and the intermediates stored under
    ``<root>/<run id>/`` because they leave a task. Nothing when the catalog is unknown (``request.declared`` None).
    Linear: a dict look-up per output and input of every node.
    """

    def __init__(self, request: CompileRequest, boundary: _PerRunOutputs):
        run_config = request.config.run_config
        self.known = request.declared is not None
        self.catalog = request.artifacts
        self.stored = bool(normalise_root(run_config.root))  # no root: nothing is stored between tasks
        # a CustomJob task's component is GCPC's: no artifacts there
        self.custom_jobs = backend_class(run_config.backend).machines_as_custom_jobs
        self.boundary = boundary
        self.producer: dict[str, tuple[str, str, str]] = {}  # dataset → (task, artifact name, schema)

    def declare(
        self, group: TaskGroup, name: str, task: dict[str, Any], component: dict[str, Any], machine: bool
    ) -> bool:
        """Add the task's input and output artifacts to ``task`` and ``component``; whether it has outputs (its
        args then carry the executor input)."""
        if not self.known or (machine and self.custom_jobs):
            return False
        own: set[str] = set()
        outputs: dict[str, Any] = {}
        for node in group.nodes:
            own.update(node.outputs)
        _, crossing = self.boundary._crossing(group) if self.stored else (set(), set())
        for dataset in sorted(own):
            schema = self.catalog.get(dataset) or (DATASET_ARTIFACT if dataset in crossing else None)
            if schema is None:
                continue
            key = artifact_name(dataset)
            outputs[key] = artifact_definition(schema)
            self.producer[dataset] = (name, key, schema)
        inputs: dict[str, Any] = {}
        definitions: dict[str, Any] = {}
        for node in group.nodes:
            for dataset in node.inputs:
                found = self.producer.get(dataset)
                if found is None or dataset in own:
                    continue
                producer, key, schema = found
                inputs[key] = {"taskOutputArtifact": {"outputArtifactKey": key, "producerTask": producer}}
                definitions[key] = artifact_definition(schema)
        if inputs:
            task.setdefault("inputs", {})["artifacts"] = dict(sorted(inputs.items()))
            component.setdefault("inputDefinitions", {})["artifacts"] = dict(sorted(definitions.items()))
        if outputs:
            component["outputDefinitions"] = {"artifacts": outputs}
        return bool(outputs)


def _warn_not_cached(not_cached: list[tuple[str, str, str]]) -> None:
    task, dataset, why = not_cached[0]
    more = f" and {len(not_cached) - 1} more" if len(not_cached) > 1 else ""
    print(
        f"Warning: caching is off for task {task!r}{more}: its output {dataset!r} {why}; a cached task would not "
        "write it for the new job. Declare such datasets in the catalog with a path that does not change per run "
        "to let Vertex AI cache these tasks",
        file=sys.stderr,
    )


def _agree(group: TaskGroup, what: str, values: dict[str, list[str]]) -> None:
    if len(values) > 1:
        detail = "; ".join(f"{value} for {', '.join(nodes)}" for value, nodes in sorted(values.items()))
        raise PluginError(
            f"run_config.resources: the nodes of task group {group.name!r} run in one task but ask for different "
            f"{what}s ({detail}); give them the same {what}, or change run_config.grouping"
        )


@dataclass(frozen=True)
class _GroupSettings:
    """The settings one task runs with (a single node's, or a group's combined)."""

    image: str
    cpu: str | None
    memory: str | None
    gpu: int
    accelerator: str | None
    retries: RetryPolicy | None
    timeout: float | None
    caching: bool
    where: str  # "node 'x'" or "group 'y'", for error messages
    machine: Machine | None = None  # machine settings: the task runs as a Vertex AI CustomJob
    secrets: tuple[str, ...] = ()  # --secret items

    @classmethod
    def from_settings(cls, node_name: str, s: TaskSettings, default_image: str) -> _GroupSettings:
        return cls(
            image=s.image or default_image,
            cpu=s.cpu,
            memory=s.memory,
            gpu=s.gpu or 0,
            accelerator=s.accelerator,
            retries=s.retries,
            timeout=s.timeout,
            caching=bool(s.caching),
            where=f"node {node_name!r}",
            machine=machine_of(s, f"node {node_name!r}"),
            secrets=_secret_items(s.secrets),
        )

    def resources(self) -> dict[str, Any] | None:
        """kfp 2.17's layout: float limits for older backends plus the newer string fields."""
        resources: dict[str, Any] = {}
        if self.cpu is not None:
            resources["cpuLimit"] = _cpu_cores(self.cpu)
            resources["resourceCpuLimit"] = self.cpu
        if self.memory is not None:
            resources["memoryLimit"] = _memory_bytes(self.memory) / 10**9
            resources["resourceMemoryLimit"] = _memory_quantity(self.memory)
        if self.gpu:
            if not self.accelerator:
                raise PluginError(
                    f"run_config.resources: {self.where} asks for gpu: {self.gpu} but no accelerator type; add "
                    "`accelerator: NVIDIA_TESLA_T4` (or another Vertex AI accelerator type) next to it"
                )
            count = str(self.gpu)
            resources["accelerator"] = {
                "count": count,
                "resourceCount": count,
                "resourceType": self.accelerator,
                "type": self.accelerator,
            }
        return resources or None


def _cpu_cores(cpu: str) -> float:
    return cpu_cores(cpu)


def _memory_bytes(memory: str) -> float:
    try:
        return memory_quantity_bytes(memory)
    except ValueError as exc:  # the configuration validated the form already
        raise PluginError(f"run_config.resources: memory: {exc}") from None


def _memory_quantity(memory: str) -> str:
    """``16g`` → ``16G``: Kubernetes quantities have upper-case unit letters (``m`` would mean milli-bytes)."""
    try:
        return memory_quantity(memory)
    except ValueError as exc:  # config validated the form already
        raise PluginError(f"run_config.resources: memory: {exc}") from None


def _duration(seconds: float) -> str:
    return f"{_number(seconds)}s"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# ---------------------------------------------------------------------------------------------------------------
# tasks


class _CommonArgs:
    """What every task's contract shares (built once); a task adds its nodes, timeout and exit-handler flag."""

    def __init__(
        self,
        request: CompileRequest,
        params: list[_Parameter],
        groups: list[TaskGroup],
        *,
        exit_handler: bool,
        job_ids: bool = False,
    ):
        run_config = request.config.run_config
        run_id, job_name = RUN_ID_PLACEHOLDER, JOB_NAME_PLACEHOLDER
        if job_ids:  # the engine substitutes the ids only in task inputs: the args read those inputs
            run_id, job_name = input_placeholder(RUN_ID_INPUT), input_placeholder(JOB_NAME_INPUT)
        self.main = TaskContract(
            pipelines=tuple(request.pipeline_names),
            env=request.env or None,
            run_id=run_id,
            job_name=job_name,
            root=normalise_root(run_config.root),
            params=tuple(TaskParam(p.key, p.type, p.placeholder()) for p in params) + _null_params(request),
            host_aliases=tuple(HostAlias(a.ip, tuple(a.hostnames)) for a in run_config.network.host_aliases),
            code_uri=request.code_uri,
        )
        #: whether the exit task gets the job's final status (``--final-status``)
        self.final_status = backend_class(run_config.backend).compiles_final_status(run_config)
        self.exit = replace(
            self.main,
            pipelines=(str(run_config.on_exit_pipeline),) if run_config.on_exit_pipeline else (),
            exit_handler=True,
            final_status=FINAL_STATUS_PLACEHOLDER if self.final_status else None,
            webhook=webhook_argument(run_config),
        )
        self.env = _task_env(request, groups, exit_handler)
        self.node_pipeline = _NodePipelineIndex(request.registered, request.pipeline_names)
        self._task_runner = run_config.task_runner
        self._request = request
        self._boundary: Any = None
        self._model: Any = None

    def task_runner(self, group: TaskGroup) -> str | None:
        """``--task-runner`` of a task: left out (sequential) for a single node or a sequential mode, and for
        ``processes`` where running side by side does not pay (:meth:`side_by_side_pays`)."""
        if len(group.nodes) < 2:
            return None
        mode = mode_for(self._task_runner, group.nodes)
        if mode == PROCESSES and not self.side_by_side_pays(group):
            return None
        return None if mode == SEQUENTIAL else mode

    def side_by_side_pays(self, group: TaskGroup) -> bool:
        """Whether the task's nodes, in groups linked by values kept in memory (each group one process, see
        :func:`kedro_vertex_runner.task.runners.memory_groups`), finish sooner side by side, on the workers the
        cost model assumes and with its cost of forking, than one after another, by the cost model's node times
        (the last local run's, or the default). Where the catalog is unknown, every node is a group of its own."""
        from types import SimpleNamespace

        from . import cost_model
        from .grouping import _span

        request = self._request
        kept: set[str] = set()
        if request.declared is not None:
            if self._boundary is None:
                from ..task.persistence import TaskBoundary

                self._boundary = TaskBoundary(
                    request.pipeline, request.declared.__contains__, request.in_memory.__contains__
                )
            kept = self._boundary.kept_in_memory(group.nodes)
        units = memory_groups(SimpleNamespace(nodes=list(group.nodes)), kept.__contains__)
        if not can_overlap(units):
            return False
        if self._model is None:
            self._model = cost_model(request)
        model = self._model
        unit_of = {node.name: u for u, unit in enumerate(units) for node in unit}
        producer = {name: unit_of[node.name] for node in group.nodes for name in node.outputs}
        weights = [sum(model.duration(node.name) for node in unit) for unit in units]
        parents = [
            sorted({producer[name] for node in unit for name in node.inputs if name in producer} - {u})
            for u, unit in enumerate(units)
        ]
        return _span(weights, parents, max(model.task_workers, 2), model.parallel_cost) < sum(weights) - 1e-9


class _NodePipelineIndex:
    """For a task, the smallest registered pipeline holding all its nodes, when smaller than the job's.

    Kedro imports the node modules of every pipeline a task loads; a task of ``__default__`` whose nodes all belong
    to ``reporting`` starts faster loading only ``reporting`` (the entrypoint falls back to the job's pipelines when
    it needs them). Linear: one pass over the registered pipelines, then a set intersection per task.
    """

    def __init__(self, registered: Mapping[str, frozenset[str]], job_pipelines: tuple[str, ...]):
        self.by_node: dict[str, set[str]] = {}
        self.size = {name: len(nodes) for name, nodes in registered.items()}
        job_nodes: set[str] = set()
        for name in job_pipelines:
            if name not in registered:  # unknown size: never suggest anything
                self.limit = 0
                return
            job_nodes |= registered[name]
        self.limit = len(job_nodes)
        for name, nodes in registered.items():
            if name in job_pipelines or len(nodes) >= self.limit:
                continue
            for node_name in nodes:
                self.by_node.setdefault(node_name, set()).add(name)

    def smallest(self, node_names: list[str]) -> str | None:
        candidates: set[str] | None = None
        for node_name in node_names:
            holders = self.by_node.get(node_name)
            if not holders:
                return None
            candidates = set(holders) if candidates is None else candidates & holders
            if not candidates:
                return None
        if not candidates:
            return None
        return min(candidates, key=lambda name: (self.size[name], name))


def _task_env(request: CompileRequest, groups: list[TaskGroup], exit_handler: bool) -> list[dict[str, str]]:
    env: dict[str, str] = {}
    for name, value in request.extra_env.items():
        reason = secret_reason(name, value)
        if reason:
            where = (
                f"run_config.env.{name}" if name in request.config.run_config.env else f"environment variable {name}"
            )
            raise PluginError(secret_message(where, reason))
        env[name] = str(value)
    if request.commit_id:
        env["KEDRO_CONFIG_COMMIT_ID"] = request.commit_id
    if request.branch_name:
        env["KEDRO_CONFIG_BRANCH_NAME"] = request.branch_name
    if request.mlflow:
        # one MLflow run per job execution: every task learns how many tasks there are and which one creates it
        from ..mlflow_tracking import compiled_task_env

        env.update(
            compiled_task_env(
                tasks=[group.node_names for group in groups],
                roots=[group.node_names for group in groups if not group.dependencies],
                exit_handler=exit_handler,
                project_id=request.config.project_id,
                region=request.config.region,
                audience=request.config.run_config.mlflow.audience,
            )
        )
    env["DO_NOT_TRACK"] = "1"  # kedro-telemetry would otherwise post (or prompt) in every task
    return [{"name": name, "value": env[name]} for name in sorted(env)]


def _task(
    name: str, display: str, settings: _GroupSettings, params: list[_Parameter], job_ids: bool = False
) -> dict[str, Any]:
    task: dict[str, Any] = {
        "cachingOptions": {"enableCache": settings.caching},
        "componentRef": {"name": f"comp-{name}"},
        "taskInfo": {"name": display},
    }
    if params or job_ids:
        task["inputs"] = _task_inputs(params, job_ids)
    retries = settings.retries
    if retries is not None and retries.max_retries > 0:
        task["retryPolicy"] = {
            "backoffDuration": _duration(retries.backoff),
            "backoffFactor": float(retries.backoff_factor),
            "backoffMaxDuration": _duration(retries.max_backoff),
            "maxRetryCount": retries.max_retries,
        }
    return task


def _component(name: str, params: list[_Parameter], job_ids: bool = False) -> dict[str, Any]:
    component: dict[str, Any] = {"executorLabel": f"exec-{name}"}
    definitions = {p.name: p.type_only() for p in params}
    if job_ids:
        definitions.update({name: {"parameterType": "STRING"} for name in JOB_ID_INPUTS})
    if definitions:
        component["inputDefinitions"] = {"parameters": definitions}
    return component


def _executor(
    group: TaskGroup, settings: _GroupSettings, common: _CommonArgs, *, exit_handler: bool, artifacts: bool = False
) -> dict[str, Any]:
    names = tuple(node.name for node in group.nodes)
    smaller = None if exit_handler else common.node_pipeline.smallest(list(names))
    shared = common.exit if exit_handler else common.main
    node_pipelines = (smaller,) if smaller is not None else ()
    args = shared.to_args(
        node_pipelines=node_pipelines,
        nodes=names,
        timeout=settings.timeout,
        task_runner=common.task_runner(group),
        secrets=settings.secrets,
        executor_input=EXECUTOR_INPUT_PLACEHOLDER if artifacts else None,
    )
    container: dict[str, Any] = {
        "args": args,
        "command": list(ENTRYPOINT_COMMAND),
        "env": [dict(item) for item in common.env],
        "image": settings.image,
    }
    resources = settings.resources()
    if resources:
        container["resources"] = resources
    return {"container": container}


def _on_machine(
    name: str, settings: _GroupSettings, components: dict[str, Any], executors: dict[str, Any], run_config: RunConfig
) -> int:
    """A task with machine settings becomes a CustomJob on Vertex AI (:mod:`.machines`); elsewhere it runs as any
    task. 1 for such a task, else 0."""
    if settings.machine is None:
        return 0
    if backend_class(run_config.backend).machines_as_custom_jobs:
        components[f"comp-{name}"], executors[f"exec-{name}"] = as_custom_job(
            components[f"comp-{name}"],
            executors[f"exec-{name}"],
            display_name=name,
            machine=settings.machine,
            timeout=settings.timeout,
            run_config=run_config,
        )
    return 1


def _exit_group(on_exit: Pipeline, name: str | None) -> TaskGroup:
    """The whole on-exit pipeline as one task: KFP allows exactly one exit task per exit handler."""
    if not name:
        raise PluginError("run_config.on_exit_pipeline: set it to the registered pipeline to run on exit")
    nodes = tuple(on_exit.nodes)
    if not nodes:
        raise PluginError(
            f"run_config.on_exit_pipeline: pipeline {name!r} has no nodes; register a pipeline with nodes or "
            "remove the key"
        )
    return TaskGroup(name, nodes, (), "on_exit")


# ---------------------------------------------------------------------------------------------------------------
# names


def _task_base_name(group: TaskGroup) -> str:
    return group.name if group.kind != "tag" else f"group-{group.name}"


def _sanitise(label: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
    if not name or not name[0].isalpha():
        name = f"task-{name}".rstrip("-")
    return name


def _unique_task_names(labels: list[str], reserved: set[str]) -> list[str]:
    """Vertex AI task names for ``labels`` (lowercase, digits, dashes, ≤ 63 chars), unique and stable.

    Labels whose sanitised form is shared (``a_b`` and ``a-b``), was cut to length or clashes with a reserved
    name get a short hash of the original label, so a name does not depend on which other nodes are compiled.
    """
    import hashlib

    bases = [_sanitise(label) for label in labels]
    counts: dict[str, int] = {}
    for base in bases:
        counts[base] = counts.get(base, 0) + 1

    def plain(base: str) -> bool:
        return counts[base] == 1 and len(base) <= TASK_NAME_MAX and base not in reserved

    taken = set(reserved) | {base for base in bases if plain(base)}
    result: list[str] = []
    for label, base in zip(labels, bases, strict=True):
        if plain(base):
            result.append(base)
            continue
        digest = hashlib.sha1(label.encode("utf-8")).hexdigest()
        size = 8
        name = f"{base[: TASK_NAME_MAX - size - 1].rstrip('-')}-{digest[:size]}"
        while name in taken:  # a hash clash: vanishingly rare, still resolved deterministically
            size += 1
            name = f"{base[: TASK_NAME_MAX - size - 1].rstrip('-')}-{digest[:size]}"
        taken.add(name)
        result.append(name)
    return result


def task_names(groups: list[TaskGroup]) -> list[str]:
    """The task names the compiled spec gives ``groups`` (``compile --explain`` shows them)."""
    return _unique_task_names([_task_base_name(group) for group in groups], {EXIT_HANDLER_TASK})


def _node_summary(group: TaskGroup) -> str:
    names = group.node_names
    if len(names) <= 3:
        return " + ".join(names)
    return f"{names[0]} + … + {names[-1]} ({len(names)} nodes)"


def _display_name(group: TaskGroup) -> str:
    """What the console shows: the Kedro node name(s), prefixed by the namespace or group for grouped tasks."""
    if group.kind in ("namespace", "tag"):
        return f"{group.name}: {_node_summary(group)}"
    return _node_summary(group)


def _pipeline_name(project_name: str, pipeline_names: tuple[str, ...]) -> str:
    parts = [project_name] + [name for name in pipeline_names if name != "__default__"]
    name = re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-") or "kedro-pipeline"
    if not name[0].isalpha():
        name = f"kedro-{name}"
    return name[:128].rstrip("-")
