"""What every backend does to a compiled spec before it becomes a job: the job's typed parameter values, the
job-wide caching default, and a unique job id. Engine-neutral (Vertex AI and Kubeflow Pipelines read the same
PipelineSpec fields); no client library is imported."""

from __future__ import annotations

import random
import re
import string
from datetime import datetime, timezone
from typing import Any

from ..errors import PluginError
from ..values import PARAMETER_TYPE_WORDS, typed_parameter


def job_id_for(pipeline_name: str, spec: dict[str, Any] | None = None, now: datetime | None = None) -> str:
    """A fresh, Vertex-valid job id: ``<pipeline>-<yyyymmddhhmmss>-<random>``.

    Vertex AI's default id is the name plus a second-resolution timestamp, which collides when two runs start
    in the same second; the random suffix makes it unique. ``__default__`` is named after the compiled
    pipeline (the project). Ids are lowercase ``[a-z0-9-]``, start with a letter and stay under 128 characters.
    """
    base = pipeline_name
    if pipeline_name == "__default__":
        base = ((spec or {}).get("pipelineInfo") or {}).get("name") or "kedro"
    base = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "kedro"
    if not base[0].isalpha():
        base = f"kedro-{base}"
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d%H%M%S")
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
    return f"{base[:100].rstrip('-')}-{stamp}-{suffix}"


#: how a submit refusal words a parameter type, where it says it differently from the shared words
_EXPECTED = {"NUMBER_INTEGER": "an integer", "STRUCT": "a mapping", "LIST": "a list"}


def parameter_values(spec: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job's pipeline parameters, typed as the spec declares them (Vertex rejects e.g. "3" for an integer).

    Values come from the spec's defaults (the compiler records ``--params`` there) and ``overrides``.
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
        kind = definition.get("parameterType")
        if kind in PARAMETER_TYPE_WORDS and value is not None:
            try:
                value = typed_parameter(value, kind)
            except ValueError:
                expected = _EXPECTED.get(kind, PARAMETER_TYPE_WORDS[kind])
                raise PluginError(f"pipeline parameter {name!r}: expected {expected}, got {value!r}") from None
        values[name] = value
    if overrides:
        known = ", ".join(sorted(declared)) or "none"
        raise PluginError(f"unknown pipeline parameter {sorted(overrides)[0]!r}: the pipeline declares {known}")
    return values


def with_default_caching(spec: dict[str, Any], enabled: bool) -> dict[str, Any]:
    """``run_config.caching`` for every task the compiler left without its own ``cachingOptions``.

    Unlike ``aiplatform``'s ``enable_caching`` this never overrides a per-node setting from ``resources``.
    """

    def fill(dag: dict[str, Any]) -> None:
        for task in (dag.get("tasks") or {}).values():
            task.setdefault("cachingOptions", {"enableCache": enabled})

    import copy

    spec = copy.deepcopy(spec)
    fill((spec.get("root") or {}).get("dag") or {})
    for component in (spec.get("components") or {}).values():
        fill(component.get("dag") or {})
    return spec
