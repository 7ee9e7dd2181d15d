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
    if request.max_concurrent_active_runs:
        schedule["max_concurrent_active_run_count"] = request.max_concurrent_active_runs
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


def find_schedules(api: VertexApi, name: str) -> list[Any]:
    """The schedules ``name`` stands for: its display name (as ``list-pipelines`` shows it; every schedule of that
    name), its id or its full resource name.

    Raises:
        PluginError: no schedule has that name, naming the ones there are.
    """
    found = list_schedules(api)
    chosen = [s for s in found if name in (s.display_name, s.name, s.name.rsplit("/", 1)[-1])]
    if not chosen:
        known = ", ".join(sorted({repr(s.display_name) for s in found})) or "none"
        raise PluginError(
            f"schedule {name!r}: there is no such schedule in {api.parent} (its schedules: {known}); "
            "`kedro vertexai list-pipelines` lists them"
        )
    return chosen


def change_schedules(api: VertexApi, name: str, action: str, *, catch_up: bool = False) -> list[str]:
    """Pause, resume or delete (``action``) the schedules ``name`` stands for (see :func:`find_schedules`); one
    line per schedule changed. A schedule already in the wanted state is left as it is and said so."""
    config = api.config
    done: list[str] = []
    for schedule in find_schedules(api, name):
        label = f"schedule {schedule.display_name!r} ({schedule.name.rsplit('/', 1)[-1]})"
        state = schedule.state.name
        if action == "pause":
            if state == "PAUSED":
                done.append(f"{label} is already paused")
                continue
            _call(f"pausing {label}", config, api.schedules.pause_schedule, name=schedule.name)
            done.append(f"Paused {label}")
        elif action == "resume":
            if state == "ACTIVE":
                done.append(f"{label} is already active")
                continue
            if state != "PAUSED":
                raise PluginError(f"{label} is {state}, not paused: it cannot be resumed; create it again")
            _call(
                f"resuming {label}",
                config,
                api.schedules.resume_schedule,
                request={"name": schedule.name, "catch_up": catch_up},
            )
            done.append(f"Resumed {label}" + (" (missed runs are caught up)" if catch_up else ""))
        else:
            operation = _call(f"deleting {label}", config, api.schedules.delete_schedule, name=schedule.name)
            try:
                operation.result(timeout=120)
            except Exception as exc:
                raise _api_error(exc, f"deleting {label}", config) from None
            done.append(f"Deleted {label}")
    return done
