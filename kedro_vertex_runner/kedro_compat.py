"""Every use of a private Kedro name, in one module.

The plugin reaches into Kedro where Kedro offers no public way to do what it needs (a hook manager with some
plugins blocked, a copy mode that imports nothing, the datasets' version, …). Each such use is one function here,
and :data:`PRIVATE_NAMES` lists the private names they rely on: ``tests/test_kedro_compat.py`` checks each against
the installed Kedro, so a Kedro upgrade that moves one fails there with the name and the function to update, not
somewhere deep in a task. Kedro is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from typing import Any

#: private name (``module:attribute`` or ``module:Class.attribute``) → the function here that uses it
PRIVATE_NAMES: dict[str, str] = {
    "kedro.framework.session.session:_create_hook_manager": "block_hook_plugins",
    "kedro.framework.session.session:KedroSession._hook_manager": "hook_manager",
    "kedro.io.memory_dataset:_infer_copy_mode": "replace_copy_mode",
    "kedro.config:OmegaConfigLoader._globals": "globals_resolved_again",
    "kedro.framework.cli.utils:_split_params": "split_params",
    "kedro.framework.startup:_get_project_metadata": "project_metadata",
    "kedro.framework.project:_ProjectPipelines._pipelines_module": "forget_loaded_pipelines",
    "kedro.runner:AbstractRunner._suggest_resume_scenario": "without_resume_suggestion",
    "kedro.io.core:AbstractVersionedDataset._version": "pin_version",
    "kedro.io.core:AbstractVersionedDataset._get_versioned_path": "remove_version, versioned_path",
}


def private_name_exists(name: str) -> bool:
    """Whether private name ``name`` (a key of :data:`PRIVATE_NAMES`) is where this module expects it: a module
    attribute, a class attribute, or an attribute its instances set in ``__init__``."""
    module_name, _, attribute = name.partition(":")
    owner: Any = importlib.import_module(module_name)
    *classes, last = attribute.split(".")
    for part in classes:
        owner = getattr(owner, part, None)
        if owner is None:
            return False
    if hasattr(owner, last):
        return True
    if isinstance(owner, type):  # an instance attribute: set in one of the classes' __init__
        import inspect

        for cls in owner.__mro__:
            init = cls.__dict__.get("__init__")
            try:
                if init is not None and f"self.{last}" in inspect.getsource(init):
                    return True
            except (OSError, TypeError):
                continue
    return False


# ------------------------------------------------------------------------------------------------------------------
# sessions and hooks


def block_hook_plugins(blocked: set[str]) -> None:
    """Make every hook manager Kedro creates from now on block the hook plugins named ``blocked`` (entry-point
    names): Kedro's ``DISABLE_HOOKS_FOR_PLUGINS`` only applies to plugins it knows at start-up."""
    from kedro.framework.session import session as session_module

    original = session_module._create_hook_manager

    def create_hook_manager() -> Any:
        manager = original()
        for name in blocked:
            manager.set_blocked(name)
        return manager

    session_module._create_hook_manager = create_hook_manager


def hook_manager(session: Any) -> Any:
    """The hook manager of a ``KedroSession``."""
    return session._hook_manager


def replace_copy_mode(infer_copy_mode: Callable[[Any], Any]) -> None:
    """Use ``infer_copy_mode`` for ``MemoryDataset``'s copy mode (Kedro's imports pandas, numpy and ibis)."""
    try:
        from kedro.io import memory_dataset
    except ImportError:  # pragma: no cover
        return
    if callable(getattr(memory_dataset, "_infer_copy_mode", None)):
        memory_dataset._infer_copy_mode = infer_copy_mode  # type: ignore[assignment]


# ------------------------------------------------------------------------------------------------------------------
# configuration and the project


@contextlib.contextmanager
def globals_resolved_again(loader: Any) -> Iterator[None]:
    """While inside, ``loader`` (an ``OmegaConfigLoader``) resolves ``globals.yml`` again when asked (it resolves it
    once, when built, and caches it twice); put back as it was afterwards."""
    from kedro.config import OmegaConfigLoader

    omega = loader if isinstance(loader, OmegaConfigLoader) else None
    saved = (omega._globals, omega._globals_oc) if omega is not None and omega._globals else None
    try:
        if omega is not None and saved:
            omega._globals, omega._globals_oc = loader["globals"], None
        yield
    finally:
        if omega is not None and saved:
            omega._globals, omega._globals_oc = saved


def split_params(ctx: Any, param: Any, value: Any) -> Any:
    """Kedro's own parsing of ``--params`` (``kedro run`` and the plugin's commands read it the same way)."""
    from kedro.framework.cli.utils import _split_params

    return _split_params(ctx, param, value)


def project_metadata(project_path: Any) -> Any:
    """The project's metadata as Kedro reads it from ``pyproject.toml`` (``source_dir``…)."""
    from kedro.framework.startup import _get_project_metadata

    return _get_project_metadata(project_path)


def forget_loaded_pipelines(pipelines: Any) -> None:
    """Make Kedro's ``pipelines`` registry load the pipelines afresh when next asked."""
    pipelines.configure(pipelines._pipelines_module)


# ------------------------------------------------------------------------------------------------------------------
# runners and datasets


def without_resume_suggestion(runner_class: type) -> type:
    """``runner_class`` without Kedro's "You can resume the pipeline run from the nearest nodes with persisted
    inputs …" warning, which a failing node makes Kedro's runners log: inside a task it names a command that would
    run Kedro's own runner with none of the run's options (the launcher prints the command that resumes the job)."""

    class Runner(runner_class):
        def _suggest_resume_scenario(self, *args: Any, **kwargs: Any) -> None:
            return None

    Runner.__name__ = Runner.__qualname__ = runner_class.__name__
    Runner.__module__ = runner_class.__module__  # its log lines keep Kedro's logger (AbstractRunner._logger)
    return Runner


def is_versioned(dataset: Any) -> bool:
    """Whether ``dataset`` is a versioned dataset with versioning on."""
    return getattr(dataset, "_version", None) is not None and hasattr(dataset, "_get_versioned_path")


def dataset_version(dataset: Any) -> Any:
    return getattr(dataset, "_version", None)


def pin_version(dataset: Any, version: Any) -> None:
    """Make ``dataset`` load and save ``version`` (a ``kedro.io.core.Version``), forgetting versions it cached."""
    dataset._version = version
    for cache in ("_cached_load_version", "_cached_save_version"):
        if hasattr(dataset, cache):
            setattr(dataset, cache, None)


def versioned_path(dataset: Any, version: str) -> Any:
    """Where a versioned ``dataset`` keeps ``version`` (a path), or None when it cannot say."""
    if not hasattr(dataset, "_get_versioned_path"):
        return None
    try:
        return dataset._get_versioned_path(version)
    except Exception:
        return None


def remove_version(dataset: Any, version: str) -> None:
    """Delete what ``dataset`` saved at ``version``, if anything (an fsspec dataset; others: nothing)."""
    try:
        from kedro.io.core import get_filepath_str

        path = get_filepath_str(dataset._get_versioned_path(version), dataset._protocol)
        if dataset._exists_function(path):
            dataset._fs.rm(path, recursive=True)
    except (AttributeError, FileNotFoundError):  # not an fsspec dataset: Kedro reports the clash itself
        return


__all__ = [
    "PRIVATE_NAMES",
    "block_hook_plugins",
    "dataset_version",
    "forget_loaded_pipelines",
    "globals_resolved_again",
    "hook_manager",
    "is_versioned",
    "pin_version",
    "private_name_exists",
    "project_metadata",
    "remove_version",
    "replace_copy_mode",
    "split_params",
    "versioned_path",
    "without_resume_suggestion",
]
