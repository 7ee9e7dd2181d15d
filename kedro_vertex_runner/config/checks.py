"""Checks of the configuration against the Kedro project: ``resources`` entries naming real nodes or tags,
accelerators for GPU counts, the on-exit pipeline and scheduled pipelines being registered and separate.

They need the pipelines, which only the project gives, so they run after loading (``kedro run``, ``compile``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .schema import DEFAULT_KEY, PluginConfig, RunConfig
from .sources import _key_path, file_defining

if TYPE_CHECKING:
    from kedro.pipeline import Pipeline


def check_against_pipeline(
    config: PluginConfig,
    pipeline: Pipeline,
    *,
    pipeline_name: str | None = "__default__",
    files: list[Path] | None = None,
    names_from: Iterable[Pipeline] | None = None,
) -> None:
    """Check the parts of the config that refer to nodes: every ``run_config.resources`` entry must name a node
    or a tag of ``pipeline`` (``__default__`` excepted), and a GPU count needs an accelerator type (on vertex only:
    elsewhere a count alone means ``nvidia.com/gpu``, see :meth:`.RunConfig.settings_for`).

    ``names_from``: the pipelines whose node names and tags an entry may name instead of ``pipeline``'s (each
    registered pipeline, read one by one: two of them may write the same dataset, so they cannot be added up);
    the GPU settings are then checked for ``pipeline``'s nodes only, the nodes that run.

    A misspelt entry would otherwise be ignored without a word and the node would run with the default machine.
    Pass the unfiltered pipeline(s) the entries may refer to (plus the on-exit pipeline), not a pipeline narrowed
    by ``--tags``/``--nodes``, or entries for the nodes left out would be reported. With ``pipeline_name=None``
    the message speaks of "any registered pipeline" (for a check against all of them at once).

    Raises:
        ConfigError: ``conf/base/vertexai.yml: run_config.resources.trian: names no node or tag of pipeline
        '__default__' (did you mean 'train'?)``.
    """
    files = config.source_files if files is None else list(files)
    run_config = config.run_config
    named = [node for source in (names_from if names_from is not None else (pipeline,)) for node in source.nodes]
    node_names = {node.name for node in named}
    tags = {tag for node in named for tag in node.tags}
    # a backend's section may have entries named the same way (run_config.kubeflow.pod: its `node_keyed` fields)
    entries = [("resources", key) for key in run_config.resources]
    for backend, section in _node_keyed_sections(run_config):
        entries += [(f"{backend}.{field}", key) for field in section.node_keyed for key in getattr(section, field)]
    for section, key in entries:
        if key == DEFAULT_KEY or key in node_names or key in tags:
            continue
        where = file_defining(files, ("run_config", *section.split("."), key))
        close = difflib.get_close_matches(key, sorted(node_names | tags), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ": use a node name, a tag or __default__"
        scope = "any registered pipeline" if pipeline_name is None else f"pipeline {pipeline_name!r}"
        raise ConfigError(f"{where}: run_config.{section}.{key}: names no node or tag of {scope}{hint}")
    for node in sorted(pipeline.nodes, key=lambda n: n.name):
        settings = run_config.settings_for(node.name, node.tags)
        _check_no_gpu_with_accelerator(run_config, node, settings.accelerator, files)
        if settings.gpu and not settings.accelerator:
            keys = [k for k in run_config._layer_keys(node.name, node.tags) if run_config.resources[k].gpu]
            key = keys[-1]
            where = file_defining(files, ("run_config", "resources", key, "gpu"))
            raise ConfigError(
                f"{where}: run_config.resources.{key}.gpu: a GPU count needs an accelerator type: add e.g. "
                f"`accelerator: NVIDIA_TESLA_T4` to this entry (node {node.name!r} has none)"
            )


def _node_keyed_sections(run_config: RunConfig) -> list[tuple[str, Any]]:
    """The backends' sections with fields whose entries name nodes and tags (``node_keyed``), by backend name."""
    from ..backends import names

    sections = [(name, getattr(run_config, name, None)) for name in names()]
    return [(name, section) for name, section in sections if getattr(section, "node_keyed", ())]


def _check_no_gpu_with_accelerator(
    run_config: RunConfig, node: Any, accelerator: str | None, files: list[Path]
) -> None:
    """``gpu: 0`` for a node that gets an accelerator from another entry (e.g. ``__default__``) is a contradiction:
    the accelerator would win and the node would get a GPU anyway."""
    if not accelerator:
        return
    keys = run_config._layer_keys(node.name, node.tags)
    gpu_keys = [key for key in keys if run_config.resources[key].gpu is not None]
    if gpu_keys and run_config.resources[gpu_keys[-1]].gpu == 0:
        source = [key for key in keys if run_config.resources[key].accelerator][-1]
        where = file_defining(files, ("run_config", "resources", gpu_keys[-1], "gpu"))
        raise ConfigError(
            f"{where}: run_config.resources.{_key_path((gpu_keys[-1],))}.gpu: 0 contradicts accelerator "
            f"{accelerator} that node {node.name!a} gets from run_config.resources.{_key_path((source,))}: set "
            "`accelerator` only in the entries of the nodes that need one"
        )


def check_on_exit_pipeline(
    config: PluginConfig,
    job_pipelines: Any,
    job_nodes: Any,
    exit_nodes: Any,
    files: list[Path] | None = None,
) -> None:
    """``run_config.on_exit_pipeline`` must not be a pipeline the job runs, nor share a node with it: its nodes
    would run a second time after the job (and, when the job failed, run again what just failed).

    Raises:
        ConfigError: one line naming the file, the key and a shared node.
    """
    name = config.run_config.on_exit_pipeline
    if name is None:
        return
    files = config.source_files if files is None else list(files)
    where = f"{file_defining(files, ('run_config', 'on_exit_pipeline'))}: run_config.on_exit_pipeline"
    fix = "name a separate pipeline (notifications, clean-up) that shares no node with the job"
    if name in set(job_pipelines):
        raise ConfigError(f"{where}: {name!a} is the pipeline this job runs, so it would run twice: {fix}")
    shared = sorted(set(job_nodes) & set(exit_nodes))
    if shared:
        more = f" and {len(shared) - 1} more" if len(shared) > 1 else ""
        raise ConfigError(
            f"{where}: pipeline {name!a} shares node {shared[0]!a}{more} with the pipeline this job runs, which "
            f"would run again after the job: {fix}"
        )


def check_pipeline_names(config: PluginConfig, registered: Any, files: list[Path] | None = None) -> None:
    """Check that ``run_config.on_exit_pipeline`` and every ``schedules.<name>.pipeline`` is a registered pipeline.

    Raises:
        ConfigError: one line naming the file, the key and the registered pipelines.
    """
    files = config.source_files if files is None else list(files)
    registered = sorted(registered)
    refs: list[tuple[tuple[str, ...], str | None]] = [
        (("run_config", "on_exit_pipeline"), config.run_config.on_exit_pipeline)
    ]
    refs += [(("run_config", "schedules", n, "pipeline"), s.pipeline) for n, s in config.run_config.schedules.items()]
    for loc, name in refs:
        if name is not None and name not in registered:
            close = difflib.get_close_matches(name, registered, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"registered: {', '.join(registered) or 'none'}"
            raise ConfigError(
                f"{file_defining(files, loc)}: {'.'.join(loc)}: no pipeline {name!r} is registered ({hint})"
            )
