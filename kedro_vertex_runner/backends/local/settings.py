"""The local backend's settings (``run_config.local``) and runner params (``max_workers=``, ``warm_start=``).

Light: pydantic and the plugin's value rules only (see :mod:`kedro_vertex_runner.backends.settings`).
"""

from __future__ import annotations

from pydantic import Field

from ...values import MAX_WORKERS
from ..settings import ParamsModel, SettingsModel


class LocalConfig(SettingsModel):
    """Local backend settings."""

    max_workers: int | None = Field(
        None,
        gt=0,
        le=MAX_WORKERS,
        description=f"Tasks run at once by the local backend, 1 to {MAX_WORKERS} (default: CPUs).",
    )
    warm_start: bool | None = Field(
        None,
        description="Fork tasks from a process that has already imported the project (default: "
        "`KEDRO_VERTEX_WARM_START`, else on where `fork` exists).",
    )
    root: str | None = Field(
        None,
        min_length=1,
        description="Storage root of the local backend (a folder relative to the project, file:// or gs://) in "
        "place of `root`, so a project whose `root` is on Cloud Storage rehearses on a machine without access to it.",
    )


class LocalRunnerParams(ParamsModel):
    """``--runner-params`` keys of the local backend."""

    max_workers: int | None = Field(
        None,
        description=f"Tasks run at once, 1 to {MAX_WORKERS} (default: `run_config.local.max_workers`, else CPU count).",
        json_schema_extra={"check": "workers", "example": "4"},
    )
    warm_start: bool | None = Field(
        None,
        description="Fork tasks from a process that has preloaded the project (default: "
        "`run_config.local.warm_start`, else `KEDRO_VERTEX_WARM_START`, else on).",
        json_schema_extra={"check": "flag", "example": "false"},
    )


SETTINGS = LocalConfig
RUNNER_PARAMS = LocalRunnerParams
TEMPLATE = """\
  # Local backend (`backend: local`, or `--runner-params backend=local` for one run).
  local:
    root: data/vertex_runs   # its storage root (instead of `root`): rehearse without access to the bucket
  #   max_workers: 4     # tasks run at once (default: number of CPUs)
  #   warm_start: false  # start every task as a fresh process (default: forked from a process that has already
  #                      # imported the project, unless KEDRO_VERTEX_WARM_START=0)
"""
