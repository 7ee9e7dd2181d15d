"""Backends: where a compiled PipelineSpec runs, one package each, looked up by name in :data:`REGISTRY` (see
docs/architecture.md, "Architecture: backends")."""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

from ..errors import PluginError

if TYPE_CHECKING:
    from ..config import PluginConfig
    from .base import Backend, Reporter

#: backend name → "module:Class"; modules are imported only when the backend is looked up
REGISTRY: dict[str, str] = {
    "local": "kedro_vertex_runner.backends.local:LocalBackend",
    "vertex": "kedro_vertex_runner.backends.vertex:VertexBackend",
    "kubeflow": "kedro_vertex_runner.backends.kubeflow:KubeflowBackend",
}

DEFAULT_BACKEND = "vertex"


def names() -> tuple[str, ...]:
    return tuple(REGISTRY)


@cache
def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name``; an unknown name is one line listing the known ones."""
    try:
        module_name, class_name = REGISTRY[name].split(":")
    except KeyError:
        known = ", ".join(repr(known) for known in REGISTRY)
        raise PluginError(f"backend {name!r} is not known: use one of {known}") from None
    return getattr(importlib.import_module(module_name), class_name)


def get_backend(name: str, config: PluginConfig, reporter: Reporter | None = None) -> Backend:
    """An instance of backend ``name`` for ``config``."""
    return backend_class(name)(config, reporter)


__all__ = ["DEFAULT_BACKEND", "REGISTRY", "backend_class", "get_backend", "names"]
