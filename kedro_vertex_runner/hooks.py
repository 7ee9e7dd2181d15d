"""Kedro hooks of the plugin, auto-registered through the ``kedro.hooks`` entry point.

They stay thin: importing this module registers the ``${vertex:…}`` config resolvers (see
:mod:`kedro_vertex_runner.task.resolvers`) before any config loader resolves a value; the hooks themselves only
remember the context and the run parameters so that :class:`~kedro_vertex_runner.runner.VertexRunner`, which Kedro
builds before the session exists, can find them; and register the ``vertexai`` config pattern.

Projects that list hooks explicitly can add ``VertexHooks()`` to ``HOOKS`` in ``settings.py``; registering it twice
is harmless.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kedro.framework.hooks import hook_impl

from .config import register_config_pattern
from .errors import PluginError, exit_with
from .task import resolvers  # noqa: F401 - registers the ${vertex:...} resolvers on import

if TYPE_CHECKING:
    from kedro.framework.context import KedroContext
    from kedro.pipeline import Pipeline


class _SessionState:
    """What the hooks saw last in this process (one Kedro session runs at a time)."""

    context: KedroContext | None = None
    run_params: dict[str, Any] | None = None


state = _SessionState()


class VertexHooks:
    @hook_impl(tryfirst=True)  # before kedro-mlflow's: a file-store URI gets one line, not its traceback
    def after_context_created(self, context: KedroContext) -> None:
        register_config_pattern(context.config_loader)
        state.context = context
        from .mlflow_tracking import check_project_tracking

        # Runs for every Kedro command in every project with the plugin installed (plain `kedro run` too). It exits
        # only where kedro-mlflow is about to fail anyway (an ./mlruns file store MLflow 3 refuses), with one line
        # instead of kedro-mlflow's traceback; without kedro-mlflow active it returns at once and imports nothing.
        try:
            check_project_tracking(context)
        except PluginError as exc:
            exit_with(exc)

    @hook_impl(tryfirst=True)  # before kedro-mlflow's: the launcher opens no run, the job has its own
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any) -> None:
        state.run_params = dict(run_params)
        if "VertexRunner" in str(run_params.get("runner", "")):
            from .mlflow_tracking import suppress_launcher_run

            suppress_launcher_run(state.context, run_params.get("pipeline_names"))


vertex_hooks = VertexHooks()
