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
