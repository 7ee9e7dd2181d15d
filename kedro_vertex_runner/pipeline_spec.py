"""The compiled PipelineSpec's format, written once: what the compiler writes and the backends and the local
scheduler read (the exit handler's names, the task entrypoint, the trigger strategies, task-name rules, the DAGs
and their tasks' names, and the job's typed parameter values).

A neutral module (it imports only the plugin's errors and value rules), so a backend reads the format without
importing the compiler.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
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


def dags(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The spec's DAGs: the root one, then each component's (the exit handler's sub-DAG)."""
    yield (spec.get("root") or {}).get("dag") or {}
    for component in (spec.get("components") or {}).values():
        yield component.get("dag") or {}


def task_names(spec: Mapping[str, Any]) -> dict[str, str]:
    """Task key → ``taskInfo.name`` (the Kedro nodes the task runs) of every task in the spec's DAGs."""
    return {
        key: str((task.get("taskInfo") or {}).get("name") or key)
        for dag in dags(spec)
        for key, task in (dag.get("tasks") or {}).items()
    }


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
    declared = ((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    overrides = dict(overrides or {})
    values: dict[str, Any] = {}
    for name, definition in declared.items():
        if name in overrides:
            value = overrides.pop(name)
        elif "defaultValue" in definition:
            value = definition["defaultValue"]
        elif definition.get("isOptional"):
            continue
        else:
            raise PluginError(f"pipeline parameter {name!r} has no value: pass it with --params {name}=…")
        values[name] = typed_value(value, definition.get("parameterType"), f"pipeline parameter {name!r}")
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
    "dags",
    "documents",
    "parameter_values",
    "pipeline_name",
    "task_names",
    "typed_value",
    "yaml_documents",
]
