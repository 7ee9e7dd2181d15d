"""The compiled PipelineSpec's format, written once: what the compiler writes and the backends and the local
scheduler read (the exit handler's names, the task entrypoint, the trigger strategies, task-name rules).

A neutral module: it imports nothing of the plugin, so a backend reads the format without importing the compiler.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

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


def pipeline_name(spec: Mapping[str, Any], default: str = "kedro") -> str:
    """The compiled pipeline's name (``pipelineInfo.name``): the project, then the Kedro pipeline unless
    ``__default__``."""
    return str((spec.get("pipelineInfo") or {}).get("name") or default)


__all__ = [
    "ENTRYPOINT_COMMAND",
    "ENTRYPOINT_MODULE",
    "EXIT_HANDLER_COMPONENT",
    "EXIT_HANDLER_TASK",
    "RUN_ALWAYS",
    "RUN_ON_SUCCESS",
    "SCHEMA_VERSION",
    "TASK_NAME_MAX",
    "dags",
    "pipeline_name",
    "task_names",
]
