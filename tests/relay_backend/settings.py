"""The relay backend's settings: ``run_config.relay`` and its runner params (pydantic only)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from kedro_vertex_runner.backends.settings import ParamsModel, SettingsModel


class RelayConfig(SettingsModel):
    """Relay backend settings."""

    queue: Literal["default", "fast"] = Field("default", description="Relay queue the jobs go to.")
    priority: int | None = Field(None, ge=1, le=9, description="Job priority, 1 to 9.")
    lanes: dict[str, int] = Field(default_factory=dict, description="Lanes per node name, tag or __default__.")

    node_keyed: ClassVar[tuple[str, ...]] = ("lanes",)


class RelayRunnerParams(ParamsModel):
    """``--runner-params`` keys of the relay backend."""

    priority: int | None = Field(
        None, ge=1, le=9, description="Job priority for this run, 1 to 9.", json_schema_extra={"example": "5"}
    )
    express: bool | None = Field(
        None, description="Skip the queue.", json_schema_extra={"check": "flag", "example": "true"}
    )


SETTINGS = RelayConfig
RUNNER_PARAMS = RelayRunnerParams
