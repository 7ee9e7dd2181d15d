"""kedro-vertex-runner: run Kedro pipelines on Vertex AI Pipelines, or locally task by task.

Importing this package is cheap: it does not import kfp, google-cloud-aiplatform or mlflow. ``VertexRunner`` is
loaded on first access.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["VertexRunner", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "VertexRunner":
        from .runner import VertexRunner

        return VertexRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
