"""Vertex AI schedules: recurring runs of a compiled pipeline, replacing same-named ones without a gap or a
double run."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ...errors import PluginError
from .api import VertexApi, _api_error, _call, check_root_bucket
from .jobs import build_pipeline_job

if TYPE_CHECKING:
    from ..base import ScheduleRequest
    from . import VertexBackend


def _parse_time(value: str | None, key: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise PluginError(f"{key} {value!r}: expected an RFC 3339 time like 2030-01-31T06:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def list_schedules(api: VertexApi) -> list[Any]:
    pager = _call("listing schedules", api.config, api.schedules.list_schedules, parent=api.parent)
    try:
        return list(pager)
    except Exception as exc:
        raise _api_error(exc, "listing schedules", api.config) from None


def create_schedule(backend: VertexBackend, request: ScheduleRequest) -> str:
    """A schedule running ``request.spec`` on ``request.cron``, named ``request.name``, in place of the earlier
    schedules of that name (see :meth:`~kedro_vertex_runner.backends.base.Backend.replace_schedule`).

    Returns:
        The new schedule's resource name.
    """
    api = backend.api
    config = api.config
    cron, timezone_name = request.cron, request.timezone
    display_name = request.name
    job_body = build_pipeline_job(
        dict(request.spec),
        config,
        display_name=display_name,
        params=dict(request.params),
        template_uri=request.template_uri,
    )
    schedule: dict[str, Any] = {
        "display_name": display_name,
        "cron": f"TZ={timezone_name} {cron}" if timezone_name else cron,
        "max_concurrent_run_count": request.max_concurrent_runs or 1,
        "create_pipeline_job_request": {"parent": api.parent, "pipeline_job": job_body},
    }
    if request.max_run_count:
        schedule["max_run_count"] = request.max_run_count
    if request.allow_queueing:
        schedule["allow_queueing"] = True
    for key, value in (("start_time", request.start_time), ("end_time", request.end_time)):
        parsed = _parse_time(value, key)
        if parsed:
            schedule[key] = parsed
    check_root_bucket(config, api.credentials)

    def create() -> tuple[str, str]:
        created = _call(
            "creating the schedule", config, api.schedules.create_schedule, parent=api.parent, schedule=schedule
        )
        return created.name, f"Created schedule {display_name!r} ({schedule['cron']}): {created.name}"

    return backend.replace_schedule(display_name, create, "in the console")
