"""Kedro hooks of the plugin, auto-registered through the ``kedro.hooks`` entry point.

They stay thin: importing this module registers the ``${vertex:…}`` config resolvers (see
:mod:`kedro_vertex_runner.resolvers`) before any config loader resolves a value; the hooks themselves only
remember the context and the run parameters so that :class:`~kedro_vertex_runner.runner.VertexRunner`, which Kedro
builds before the session exists, can find them; and register the ``vertexai`` config pattern.

Projects that list hooks explicitly can add ``VertexHooks()`` to ``HOOKS`` in ``settings.py``; registering it twice
is harmless.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kedro.framework.hooks import hook_impl

from . import resolvers  # noqa: F401 - registers the ${vertex:...} resolvers on import
from .config import register_config_pattern

if TYPE_CHECKING:
    from kedro.framework.context import KedroContext
    from kedro.pipeline import Pipeline


class _SessionState:
    """What the hooks saw last in this process (one Kedro session runs at a time)."""

    context: KedroContext | None = None
    run_params: dict[str, Any] | None = None

    def reset(self) -> None:
        self.context = None
        self.run_params = None


state = _SessionState()


class VertexHooks:
    @hook_impl
    def after_context_created(self, context: KedroContext) -> None:
        register_config_pattern(context.config_loader)
        state.context = context

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any) -> None:
        state.run_params = dict(run_params)


vertex_hooks = VertexHooks()
