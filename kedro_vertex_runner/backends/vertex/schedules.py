"""Vertex AI schedules: recurring runs of a compiled pipeline, replacing same-named ones without a gap or a
double run."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ...errors import PluginError
from .api import API_TIMEOUT, VertexApi, _api_error, _call, check_root_bucket
from .jobs import build_pipeline_job

if TYPE_CHECKING:
    from ..base import Reporter, ScheduleRequest


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


def create_schedule(api: VertexApi, request: ScheduleRequest, reporter: Reporter) -> str:
    """Create a schedule running ``spec`` on ``cron``; delete earlier schedules with the same display name.

    The display name is ``request.name``. Earlier active
    schedules are paused first, then the new one is created, then the earlier ones are deleted: a refused request
    never leaves the pipeline unscheduled (paused schedules are resumed if the new one cannot be created), and an
    earlier schedule that cannot be deleted stays paused, so the pipeline never fires twice.

    Returns:
        The new schedule's resource name.
    """
    from ...config import validate_cron

    config = api.config
    cron, timezone_name = request.cron, request.timezone
    try:
        validate_cron(cron)
    except ValueError as exc:
        raise PluginError(f"--cron: {exc}") from None
    if timezone_name:
        from ...config.rules import check_timezone

        try:
            check_timezone(timezone_name)
        except ValueError as exc:
            raise PluginError(f"--timezone: {exc}") from None
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
    earlier = [s for s in list_schedules(api) if s.display_name == display_name]
    paused: list[Any] = []
    try:
        for old in earlier:
            if old.state.name == "ACTIVE":
                _call(f"pausing earlier schedule {old.name}", config, api.schedules.pause_schedule, name=old.name)
                paused.append(old)
        created = _call(
            "creating the schedule", config, api.schedules.create_schedule, parent=api.parent, schedule=schedule
        )
    except PluginError:
        for old in paused:  # put things back as they were; best effort, the original error is the news
            try:
                api.schedules.resume_schedule(name=old.name, timeout=API_TIMEOUT)
            except Exception:
                reporter.warn(f"could not resume earlier schedule {old.name}: resume it in the console")
        raise
    reporter.info(f"Created schedule {display_name!r} ({schedule['cron']}): {created.name}")
    failures: list[str] = []
    for old in earlier:
        try:
            operation = _call(
                f"deleting earlier schedule {old.name}", config, api.schedules.delete_schedule, name=old.name
            )
            try:
                operation.result(timeout=120)
            except Exception as exc:
                raise _api_error(exc, f"deleting earlier schedule {old.name}", config) from None
        except PluginError as exc:
            failures.append(str(exc))
            continue
        reporter.info(f"Replaced earlier schedule {old.name} ({old.cron}, {old.state.name})")
    if failures:
        raise PluginError(
            f"the new schedule {created.name} is active, but {len(failures)} earlier one(s) named {display_name!r} "
            f"could not be deleted and stay paused (they will not run): {failures[0]}; delete them in the console"
        )
    return created.name


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
