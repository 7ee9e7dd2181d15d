"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# Pipelines (one per package under demo_project/pipelines/) that make up the
# default run. `notify` is deliberately excluded: it is a one-node pipeline
# meant to be used as an on-exit pipeline.
DEFAULT_PARTS = ("data_processing", "model", "reporting")


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    ``find_pipelines()`` discovers ``data_processing``, ``model``, ``reporting``
    and ``notify``. Note that Kedro 1.7 loads pipelines selectively: for
    ``kedro run --pipelines model`` only ``model`` is discovered, so the
    default pipeline is only assembled when all its parts were found.
    """
    pipelines = find_pipelines(raise_errors=True)
    if all(name in pipelines for name in DEFAULT_PARTS):
        pipelines["__default__"] = sum(
            (pipelines[name] for name in DEFAULT_PARTS), Pipeline([])
        )
    return pipelines
