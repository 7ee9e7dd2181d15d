"""What every backend does to a compiled spec before it becomes a job: the job's typed parameter values (typed in
:mod:`kedro_vertex_runner.pipeline_spec`), the job-wide caching default, and a unique job id. Engine-neutral (Vertex AI and Kubeflow Pipelines read the same
PipelineSpec fields); no client library is imported."""

from __future__ import annotations

import random
import re
import string
from datetime import datetime, timezone
from typing import Any

from ..pipeline_spec import dags, parameter_values
from ..pipeline_spec import pipeline_name as spec_pipeline_name


def job_id_for(pipeline_name: str, spec: dict[str, Any] | None = None, now: datetime | None = None) -> str:
    """A fresh, Vertex-valid job id: ``<pipeline>-<yyyymmddhhmmss>-<random>``.

    Vertex AI's default id is the name plus a second-resolution timestamp, which collides when two runs start
    in the same second; the random suffix makes it unique. ``__default__`` is named after the compiled
    pipeline (the project). Ids are lowercase ``[a-z0-9-]``, start with a letter and stay under 128 characters.
    """
    base = pipeline_name
    if pipeline_name == "__default__":
        base = spec_pipeline_name(spec or {})
    base = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "kedro"
    if not base[0].isalpha():
        base = f"kedro-{base}"
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d%H%M%S")
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
    return f"{base[:100].rstrip('-')}-{stamp}-{suffix}"


def with_default_caching(spec: dict[str, Any], enabled: bool) -> dict[str, Any]:
    """``run_config.caching`` for every task the compiler left without its own ``cachingOptions``.

    Unlike ``aiplatform``'s ``enable_caching`` this never overrides a per-node setting from ``resources``.
    """

    import copy

    spec = copy.deepcopy(spec)
    for dag in dags(spec):
        for task in (dag.get("tasks") or {}).values():
            task.setdefault("cachingOptions", {"enableCache": enabled})
    return spec


__all__ = ["job_id_for", "parameter_values", "with_default_caching"]
