"""A unique job id for a remote job (the job's typed parameter values and caching default are in
:mod:`kedro_vertex_runner.pipeline_spec`). Engine-neutral; no client library is imported."""

from __future__ import annotations

import random
import re
import string
from datetime import datetime, timezone
from typing import Any

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


__all__ = ["job_id_for"]
