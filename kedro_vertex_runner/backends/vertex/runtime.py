"""Where a Vertex AI pipeline job runs and what Vertex AI checks before creating it: ``run_config
.persistent_resource`` (``runtimeConfig.defaultRuntime.persistentResourceRuntimeDetail``, a v1beta1 field: a job,
schedule or run-once carrying it goes through the v1beta1 API, everything else through v1) and ``run_config
.preflight_validations`` (``preflightValidations``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import PluginError

if TYPE_CHECKING:
    from ...config import PluginConfig

# run_config.persistent_resource.when_busy → taskResourceUnavailableTimeoutBehavior
WHEN_BUSY = {"fail": "FAIL", "on_demand": "FALL_BACK_TO_ON_DEMAND"}


def uses_v1beta1(config: PluginConfig) -> bool:
    """Whether the job needs the v1beta1 API (a persistent resource runtime)."""
    return config.run_config.persistent_resource is not None


def add_runtime(job: dict[str, Any], config: PluginConfig) -> None:
    """Put the persistent resource runtime and the preflight flag into a ``PipelineJob`` body (proto field names)."""
    from ...config.machines import check_persistent_resource_region

    run_config = config.run_config
    resource = run_config.persistent_resource
    if resource is not None:
        detail: dict[str, Any] = {
            "persistent_resource_name": check_persistent_resource_region(resource, config.project_id, config.region),
            "task_resource_unavailable_timeout_behavior": WHEN_BUSY[resource.when_busy],
        }
        if resource.wait is not None:
            detail["task_resource_unavailable_wait_time_ms"] = int(resource.wait * 1000)
        job["runtime_config"]["default_runtime"] = {"persistent_resource_runtime_detail": detail}
    if run_config.preflight_validations:
        job["preflight_validations"] = True


def preflight_error(exc: BaseException, body: dict[str, Any], message: str) -> PluginError | None:
    """One line for a job Vertex AI's preflight validation refused (400/412 with ``preflightValidations`` on)."""
    code = getattr(exc, "code", None)
    if not body.get("preflight_validations") or int(code or 0) not in (400, 412):
        return None
    return PluginError(
        f"Vertex AI's preflight validation refused the job: {message}; fix what it names (or set "
        "run_config.preflight_validations: false to let the job fail when it runs); nothing was submitted"
    )
