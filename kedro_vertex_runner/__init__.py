"""kedro-vertex-runner: run Kedro pipelines on Vertex AI Pipelines, or locally task by task.

Importing this package is cheap: it does not import kfp, google-cloud-aiplatform or mlflow. ``VertexRunner`` is
loaded on first access. Importing it also hides a few warnings that libraries raise about their own code (see
:func:`quiet_library_warnings`); every way into the plugin (the ``kedro vertexai`` commands, the hooks, the runner,
a task's entrypoint) imports it before Kedro creates its config loader.

Where code runs: ``task/`` holds what runs inside a task (``python -m kedro_vertex_runner.entrypoint``, whose name
``entrypoint/`` keeps) and imports nothing else of the plugin but the shared ``errors``, ``values``, ``network``,
``storage``, ``kedro_compat`` and ``files``; everything else runs in the launching process: ``runner``, ``cli``, ``hooks``,
``project`` and the modules they use, ``config/``, ``compiler/`` and ``backends/``.
"""

from __future__ import annotations

import warnings
from typing import Any

__version__ = "0.1.0"
__all__ = ["VertexRunner", "__version__", "quiet_library_warnings"]

#: (message, module) of the warnings hidden: OmegaConf 2.4 deprecates register_new_resolver, which Kedro's config
#: loader and kedro-mlflow's hook still call (three to five warnings of ~12 lines on every command and in every task).
#: Hidden only when both match (``module``: the module the warning is attributed to, here the caller's), so the same
#: warning about a call in the user's own code still shows.
LIBRARY_NOISE = (
    (r"(register_new_resolver|legacy_register_resolver)\(\) is deprecated", r"(kedro|kedro_mlflow)(\.|$)"),
)
#: MLflow warns when a subclass of its PythonModel has a predict() without type hints; importing kedro-mlflow defines
#: one (KedroPipelineModel), so every ``kedro`` command started with it. Hidden only for a class that a library
#: (these packages) defines: for a class in the user's own code it still shows.
_UNTYPED_PREDICT = "Add type hints to the `predict` method"
_LIBRARY_MODELS = ("kedro_mlflow", "mlflow")


def quiet_library_warnings() -> None:
    """Hide, in this process (and the processes it forks), the warnings that libraries raise about their own code:
    :data:`LIBRARY_NOISE`, and MLflow's untyped ``predict`` warning about a library's model class. Idempotent; also
    the ``kedro.init`` entry point, which the ``kedro`` command calls before it loads any plugin's commands."""
    for message, module in LIBRARY_NOISE:
        warnings.filterwarnings("ignore", message=message, module=module)
    # MLflow raises that warning inside its own catch_warnings(), which puts its filters before anyone's: it can
    # only be dropped where a warning is shown (for warnings logged through Kedro's rich handler too)
    show = getattr(warnings, "_showwarnmsg", None)
    if show is not None and not getattr(show, "quiet_library_warnings", False):

        def showwarnmsg(msg: Any) -> None:
            if not _library_model_warning(msg):
                show(msg)

        showwarnmsg.quiet_library_warnings = True  # type: ignore[attr-defined]
        warnings._showwarnmsg = showwarnmsg  # type: ignore[attr-defined]


def _library_model_warning(msg: Any) -> bool:
    """Whether ``msg`` (a ``warnings.WarningMessage``) is MLflow's untyped-predict warning about a class that one of
    :data:`_LIBRARY_MODELS` defines (the frame that creates the class, above PythonModel.__init_subclass__)."""
    if _UNTYPED_PREDICT not in str(msg.message) or "mlflow" not in str(msg.filename):
        return False
    import sys

    frame: Any = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "__init_subclass__" and frame.f_back is not None:
            module = str(frame.f_back.f_globals.get("__name__", ""))
            return module.split(".")[0] in _LIBRARY_MODELS
        frame = frame.f_back
    return False


quiet_library_warnings()


def __getattr__(name: str) -> Any:
    if name == "VertexRunner":
        from .runner import VertexRunner

        return VertexRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
