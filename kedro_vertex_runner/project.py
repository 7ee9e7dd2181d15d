"""Gather what a compile needs from a Kedro project: context, pipeline, config, git state, forwarded env.

Used by both ``VertexRunner`` (inside ``kedro run``) and the ``kedro vertexai`` commands, so that a compiled spec
is the same whichever way it was produced.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from .compiler import CompileRequest
from .config import (
    PluginConfig,
    check_against_pipeline,
    check_on_exit_pipeline,
    check_pipeline_names,
    file_defining,
    load_config,
)
from .errors import ConfigError, PluginError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from kedro.framework.context import KedroContext
    from kedro.pipeline import Pipeline

    from .backends.base import JobHandle

FORWARDED_ENV_PREFIX = "KEDRO_CONFIG_"


def git_info(project_path: Path) -> tuple[str | None, str | None]:
    """``(commit id, branch name)`` of the checkout holding ``project_path``; None where git cannot tell.

    ``KEDRO_CONFIG_COMMIT_ID`` / ``KEDRO_CONFIG_BRANCH_NAME`` in the environment win over git.
    """
    commit = os.environ.get("KEDRO_CONFIG_COMMIT_ID")
    branch = os.environ.get("KEDRO_CONFIG_BRANCH_NAME")

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=project_path, capture_output=True, text=True, timeout=5, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() or None

    if commit is None:
        commit = git("rev-parse", "HEAD")
    if branch is None:
        branch = git("rev-parse", "--abbrev-ref", "HEAD")
        if branch == "HEAD":  # detached
            branch = None
    return commit, branch


def forwarded_env(config: PluginConfig) -> dict[str, str]:
    """Variables every task gets: ``run_config.env`` plus the caller's ``KEDRO_CONFIG_*`` variables."""
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith(FORWARDED_ENV_PREFIX)}
    # commit id and branch travel separately (from git when not set), never twice
    env.pop("KEDRO_CONFIG_COMMIT_ID", None)
    env.pop("KEDRO_CONFIG_BRANCH_NAME", None)
    env.update(config.run_config.env)
    return env


def get_pipeline(name: str) -> Pipeline:
    from kedro.framework.project import pipelines

    try:
        return pipelines[name]
    except KeyError:
        known = ", ".join(sorted(pipelines.keys())) or "none"
        raise PluginError(
            f"unknown pipeline {name!r}: the project registers {known} (see pipeline_registry.py)"
        ) from None


def check_config_against_project(config: PluginConfig, running: Pipeline) -> dict[str, frozenset[str]]:
    """Pipeline and node names in the config must exist in the project; returns each registered pipeline's nodes.

    Names are checked against every registered pipeline, not the filtered one: with ``-p model`` or ``--tags`` an
    entry for a node that is merely left out of this run is still valid. The registered pipelines are read one by
    one, never added up (two alternative pipelines may write the same dataset); the node settings (GPU counts) are
    checked for the nodes that run: ``running`` (the filtered pipeline) and the on-exit pipeline.
    """
    from kedro.framework.project import pipelines

    pipelines.set_requested(None)  # Kedro 1.7 loads only the pipelines named on the command line
    check_pipeline_names(config, pipelines.keys())
    registered = list(pipelines.values())
    on_exit = config.run_config.on_exit_pipeline
    for pipeline in (running, pipelines[on_exit]) if on_exit else (running,):
        check_against_pipeline(config, pipeline, pipeline_name=None, names_from=registered)
    return {name: frozenset(node.name for node in pipeline.nodes) for name, pipeline in pipelines.items()}


def check_free_inputs(
    pipeline: Pipeline,
    catalog: Any,
    *,
    project_path: Path,
    config: PluginConfig,
    pipeline_names: Any,
    run_id: str | None,
    takes_run_id: bool,
) -> None:
    """Refuse, before anything is compiled or started, a run whose tasks could not load one of their inputs.

    Every free input of ``pipeline`` (what none of its nodes produces) must be a parameter, a dataset the catalog
    stores, or stored under ``<root>/<run_id>/`` (the given ``run_id``: a new run has nothing stored). The
    datasets read from there are those :class:`.persistence.TaskBoundary` says enter the pipeline (undeclared, or
    a declared memory dataset a node of the job's pipelines produces). A local root is looked at; a remote root
    (``gs://``, ``s3://``) only when a run id is given, and a failing look there leaves the check to the tasks.
    Nothing is checked when the catalog is unknown (``None``).

    Raises:
        PluginError: one line naming the first missing dataset, the node that produces it, and an earlier local
        run that stored it (its run id) when there is one.
    """
    if catalog is None:
        return
    from kedro.framework.project import pipelines
    from kedro.pipeline import Pipeline as KedroPipeline

    from .task.persistence import TaskBoundary, dataset_path

    @functools.cache
    def job() -> KedroPipeline:  # Kedro built the same sum for the run, so it cannot fail here
        return sum((pipelines[name] for name in pipeline_names or ("__default__",)), KedroPipeline([]))

    needed, _ = TaskBoundary.of_catalog(job, catalog).crossing(pipeline.nodes)
    if not needed:
        return
    root = config.run_config.root
    if "://" not in root:
        root = str(project_path / Path(root).expanduser())
    for name in sorted(needed):
        if run_id is not None and _stored(dataset_path(root, run_id, name)):
            continue
        producers = [node.name for node in job().nodes if name in node.outputs]
        made_by = f" (made by node {producers[0]!r}, not selected)" if producers else ""
        where = f"run {run_id} did not store it under {root}/{run_id}/" if run_id else "a new run has nothing stored"
        earlier = _earlier_local_run(root, run_id, name) if takes_run_id else None
        if earlier:
            fix = f"{'use' if run_id else 'add'} --runner-params run_id={earlier} (that run stored it)"
        else:
            options = [f"run node {producers[0]!r} too" if producers else "run the node that makes it"]
            options.append("declare it in the catalog")
            if takes_run_id:
                options.append("give --runner-params run_id=ID of a run that stored it")
            fix = ", ".join(options[:-1]) + " or " + options[-1]
        raise PluginError(
            f"input {name!r} of the selected nodes{made_by} is stored by no catalog entry, and {where}: {fix}"
        )


def _stored(path: str) -> bool:
    """Whether a dataset file exists (a remote one: True when storage cannot be asked, the tasks will say)."""
    if "://" not in path:
        return Path(path).is_file()
    try:
        from .storage import url_to_fs

        fs, remote = url_to_fs(path)
        return bool(fs.exists(remote))
    except Exception:
        return True


def _earlier_local_run(root: str, run_id: str | None, name: str) -> str | None:
    from .runner import _earlier_run

    return _earlier_run(root, run_id or "", {name})


def mlflow_enabled(context: KedroContext, config: PluginConfig) -> bool:
    """MLflow tracking is on when configured so, or by default when kedro-mlflow is installed and configured."""
    from .mlflow_tracking import kedro_mlflow_active

    active = kedro_mlflow_active()  # False: not installed, or its hooks disabled in settings.py
    if config.run_config.mlflow.enabled is not None:
        if config.run_config.mlflow.enabled and not active:  # every task would fail to join the run
            where = file_defining(config.source_files, ("run_config", "mlflow", "enabled"))
            raise ConfigError(
                f"{where}: run_config.mlflow.enabled: true needs kedro-mlflow installed and not listed in "
                "DISABLE_HOOKS_FOR_PLUGINS in settings.py: install/enable kedro-mlflow, or set enabled: false"
            )
        return config.run_config.mlflow.enabled
    if not active:
        return False
    conf_path = Path(context.project_path) / "conf"
    return any(conf_path.glob("*/mlflow.y*ml"))


def build_request(
    context: KedroContext,
    pipeline: Pipeline,
    *,
    pipeline_names: list[str] | tuple[str, ...] | None,
    runtime_params: dict[str, Any] | None,
    config: PluginConfig | None = None,
    catalog: Any = None,
    online: bool = False,
) -> CompileRequest:
    """The compile request for ``pipeline`` (already filtered) in ``context``; ``catalog`` is the session's, when
    it has been built already (else built here only if some task may be cached). ``online``: the command talks to
    servers anyway (it runs or schedules a job), so node times of the last cloud run may be read from the root."""
    from kedro.framework.project import PACKAGE_NAME

    config = config or load_config(context.config_loader)
    registered = check_config_against_project(config, pipeline)
    on_exit = None
    if config.run_config.on_exit_pipeline:
        on_exit = get_pipeline(config.run_config.on_exit_pipeline)
        check_on_exit_pipeline(
            config,
            pipeline_names or ("__default__",),
            (node.name for node in pipeline.nodes),
            (node.name for node in on_exit.nodes),
        )
    commit, branch = git_info(Path(context.project_path))
    request = CompileRequest(
        pipeline=pipeline,
        config=config,
        pipeline_names=tuple(pipeline_names or ("__default__",)),
        env=context.env,
        runtime_params=dict(runtime_params or {}),
        project_name=PACKAGE_NAME or Path(context.project_path).name,
        on_exit=on_exit,
        commit_id=commit,
        branch_name=branch,
        extra_env=forwarded_env(config),
        mlflow=mlflow_enabled(context, config),
        registered=registered,
        **_catalog_facts(context, pipeline, config, catalog),
        **_recorded(Path(context.project_path), config, pipeline_names or ("__default__",), online),
    )
    if config.run_config.code != "upload":
        return request
    from dataclasses import replace

    from .compiler import compile_spec

    compile_spec(request)  # what the compiler refuses (a --params value, a grouping) is heard before any upload
    return replace(request, code_uri=upload_code(Path(context.project_path), config))


def _recorded(project_path: Path, config: PluginConfig, pipeline_names: Any, online: bool) -> dict[str, Any]:
    durations, source = recorded_timings(project_path, config, pipeline_names, online=online)
    return {"durations": durations, "durations_source": source}


def _cloud_timings_cache(root: str) -> Path:
    """Where the node times of the last cloud run under ``root`` are kept on this machine: under
    ``$XDG_CACHE_HOME`` (default ``~/.cache``)``/kedro-vertex-runner/cloud-timings/``, a folder per root."""
    import hashlib

    from .values import cache_dir

    return cache_dir("cloud-timings") / hashlib.sha256(root.encode()).hexdigest()[:16]


def recorded_timings(
    project_path: Path, config: PluginConfig, pipeline_names: Any, *, online: bool = False
) -> tuple[dict[str, float], str]:
    """Node run times for the ``makespan`` grouping and which run they came from: the last local run of
    ``pipeline_names``, else the last cloud run under ``run_config.root`` when that is a ``gs://`` or ``s3://``
    root. Only a command that talks to servers anyway (``online``: running or scheduling a job) reads them from
    the root, when credentials for it are at hand (none looked for over the network), and keeps a copy under the
    local backend's root (``cloud-timings/``); ``compile`` stays offline and reads that copy."""
    durations = recorded_durations(project_path, config, pipeline_names)
    if durations or not config.run_config.grouping_options.use_timings:
        return durations, "the last local run" if durations else ""
    root = config.run_config.root
    from .storage import scheme

    if scheme(root) not in {"gs", "gcs", "s3", "s3a"}:
        return {}, ""
    from .task.timings import pipeline_key

    key = pipeline_key(pipeline_names)
    if online and _storage_credentials(scheme(root)):
        found = _read_cloud_timings(root, pipeline_names)
        if found is not None:
            run_id, durations = found
            if durations:
                _keep_cloud_timings(key, root, run_id, durations)
            return durations, f"cloud run {run_id} under {root}" if durations else ""
    run_id, durations = _kept_cloud_timings(key, root)
    return durations, f"cloud run {run_id} under {root} (as last read by a job command)" if durations else ""


def _local_root(project_path: Path, config: PluginConfig) -> Path | None:
    """The folder the backend running on this machine keeps its runs in, if it is a local folder."""
    from .backends import REGISTRY, backend_class

    here = next((name for name in REGISTRY if not backend_class(name).remote_tasks), None)
    if here is None:
        return None
    root = config.with_backend(here).run_config.root
    if root.startswith("file://"):
        root = root[len("file://") :]
    if "://" in root:
        return None
    return project_path / Path(root).expanduser()


#: seconds a job command waits for the last cloud run's node times before it goes on without them
CLOUD_TIMINGS_WAIT = 5.0


def _read_cloud_timings(root: str, pipeline_names: Any) -> tuple[str | None, dict[str, float]] | None:
    """:func:`~kedro_vertex_runner.task.timings.last_run` under ``root``, given at most :data:`CLOUD_TIMINGS_WAIT`
    seconds: the times only refine the grouping, so storage that is slow to answer never holds a job back (one
    warning line, then the copy kept from an earlier read, if any). None when it took too long."""
    import threading

    from .task.timings import _warn, last_run

    result: list[tuple[str | None, dict[str, float]]] = []
    reader = threading.Thread(
        target=lambda: result.append(last_run(root, pipeline_names)), name="kedro-vertex-timings", daemon=True
    )
    reader.start()
    reader.join(CLOUD_TIMINGS_WAIT)
    if not result:
        _warn(f"node times of the last cloud run under {root} not read within {CLOUD_TIMINGS_WAIT:g} s: going on")
        return None
    return result[0]


def _keep_cloud_timings(key: str, root: str, run_id: str | None, durations: dict[str, float]) -> None:
    import json

    from .task.timings import _warn, write_inside

    base = _cloud_timings_cache(root)
    body = json.dumps({"root": root, "run_id": run_id, "nodes": durations}, sort_keys=True)
    try:
        write_inside(base, (f"{key}.json",), body)
    except OSError as exc:  # a copy for offline compiles: not worth failing the command
        _warn(f"node times of cloud run {run_id} not kept under {base}: {exc.strerror or exc}")


def _kept_cloud_timings(key: str, root: str) -> tuple[str | None, dict[str, float]]:
    """The copy :func:`_keep_cloud_timings` made for ``root``; nothing when absent, for another root, or not sane."""
    import json

    from .task.timings import _read_inside, _sane

    try:
        record = json.loads(_read_inside(_cloud_timings_cache(root), (f"{key}.json",)))
    except (OSError, ValueError):
        return None, {}
    if not isinstance(record, dict) or record.get("root") != root or not isinstance(record.get("nodes"), dict):
        return None, {}
    nodes = {str(k): float(v) for k, v in record["nodes"].items() if _sane(v)}
    run_id = record.get("run_id")
    return (str(run_id) if run_id else None), nodes


def _storage_credentials(kind: str) -> bool:
    """Whether credentials for a ``gs://`` (``kind`` gs/gcs) or ``s3://`` root are at hand without asking a metadata
    server: an emulator, a key file, application default credentials, or a Google Cloud machine; AWS keys, a
    profile or ``~/.aws``."""
    import os

    if kind in {"gs", "gcs"}:
        from .backends.vertex.api import _adc_file, _maybe_on_google_cloud

        key = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        return bool(
            os.environ.get("STORAGE_EMULATOR_HOST")
            or (key and os.path.isfile(key))
            or _adc_file()
            or _maybe_on_google_cloud()
        )
    aws = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or Path.home() / ".aws" / "credentials")
    return bool(
        os.environ.get("AWS_ACCESS_KEY_ID")
        or os.environ.get("AWS_PROFILE")
        or os.environ.get("AWS_WEB_IDENTITY_TOKEN_FILE")
        or aws.is_file()
    )


def recorded_durations(project_path: Path, config: PluginConfig, pipeline_names: Any) -> dict[str, float]:
    """Node run times of the last local run of ``pipeline_names`` (under the root as the local backend reads it),
    for the ``makespan`` grouping; empty when timings are off or there was no such run."""
    if not config.run_config.grouping_options.use_timings:
        return {}
    from .task.timings import last_run_durations

    base = _local_root(project_path, config)  # the runs that record node times here are those on this machine
    return {} if base is None else last_run_durations(str(base), pipeline_names)


def upload_code(project_path: Path, config: PluginConfig) -> str:
    """Code upload: package the project's code and conf/, store it under the root; returns its URI."""
    from kedro.framework.project import PACKAGE_NAME

    from .code_upload import prepare

    package = PACKAGE_NAME or project_path.name
    source_dir = _source_dir(project_path)
    run_config = config.run_config
    return prepare(
        project_path, package, source_dir, run_config.root, run_config.backend, run_config.code_upload.max_file_size
    )


def code_package(project_path: Path, config: PluginConfig) -> Any:
    """What code upload would ship (a ``CodePackage``), without storing anything: ``compile --list-code``."""
    from kedro.framework.project import PACKAGE_NAME

    from .code_upload import package_project

    package = PACKAGE_NAME or project_path.name
    return package_project(
        project_path, package, _source_dir(project_path), config.run_config.code_upload.max_file_size
    )


def _source_dir(project_path: Path) -> str:
    """``[tool.kedro] source_dir`` of the project (default ``src``), as Kedro reads it."""
    from .kedro_compat import project_metadata

    try:
        metadata = project_metadata(project_path)
        return Path(metadata.source_dir).resolve().relative_to(project_path.resolve()).as_posix()
    except Exception:  # not readable here, or outside the project: Kedro's default layout
        return "src"


class _CatalogFacts(TypedDict, total=False):
    """The :class:`CompileRequest` fields :func:`_catalog_facts` fills."""

    declared: frozenset[str] | None
    in_memory: frozenset[str]
    per_run: frozenset[str]
    artifacts: dict[str, str]


def _catalog_facts(
    context: KedroContext, pipeline: Pipeline, config: PluginConfig, catalog: Any = None
) -> _CatalogFacts:
    """What the compiler needs to know of the catalog: the pipeline's datasets it ``declared`` (explicitly or by a
    pattern), those of them held ``in_memory`` (they pass between tasks like undeclared ones), and — only when some
    task may be cached — those whose entry uses a ``per_run`` value. Nothing is known (``declared`` None) when the
    catalog cannot be built here (e.g. credentials only available in the container)."""
    from .backends import backend_class
    from .task.persistence import _is_parameter, held_in_memory

    if catalog is None:
        try:
            catalog = context.catalog
        except Exception:  # no task is held back from cache; the tasks still store what crosses them
            return {"declared": None}
    declared = frozenset(name for name in pipeline.datasets() if name in catalog)
    facts: _CatalogFacts = {
        "declared": declared,
        "in_memory": frozenset(name for name in declared if not _is_parameter(name) and held_in_memory(catalog, name)),
    }
    run_config = config.run_config
    if run_config.caching or any(entry.caching for entry in run_config.resources.values()):
        facts["per_run"] = per_run_datasets(context, catalog, declared)

    facts["artifacts"] = catalog_artifacts(
        catalog, declared - facts["in_memory"], remote_only=backend_class(run_config.backend).remote_tasks
    )
    return facts


def catalog_artifacts(catalog: Any, names: Iterable[str], remote_only: bool) -> dict[str, str]:
    """The artifact schema of each of ``names`` that is an artifact (:func:`.artifacts.artifact_type`), judged by
    its catalog entry (or the factory pattern it matches), or by the object for a dataset added in code.

    Raises:
        PluginError: an entry's ``metadata.kedro-vertex-runner.artifact`` is not a known kind.
    """
    from fsspec.implementations.local import LocalFileSystem

    from .task.artifacts import artifact_type
    from .task.persistence import _is_parameter

    built = getattr(catalog, "_datasets", None)
    resolver = getattr(catalog, "config_resolver", None)
    found: dict[str, str] = {}
    for name in sorted(names):
        if _is_parameter(name):
            continue
        config: Any = None
        if resolver is not None:
            config = resolver.config.get(name)
            if config is None:
                try:
                    config = resolver.resolve_pattern(name)
                except Exception:  # a pattern Kedro cannot resolve: the catalog reports it when the task uses it
                    config = None
        if not config and isinstance(built, dict) and name in built:
            dataset = built[name]
            path = getattr(dataset, "_filepath", None) or getattr(dataset, "_path", None)
            protocol = getattr(dataset, "_protocol", None)
            location = None if path is None else str(path)
            if location and protocol and protocol not in LocalFileSystem.protocol and "://" not in location:
                location = f"{protocol}://{location}"
            config = {"type": type(dataset), "filepath": location, "metadata": getattr(dataset, "metadata", None)}
        try:
            schema = artifact_type(config, remote_only)
        except ValueError as exc:
            raise PluginError(f"catalog entry {name!r}: {exc}") from None
        if schema is not None:
            found[name] = schema
    return found


def per_run_datasets(context: KedroContext, catalog: Any, names: frozenset[str]) -> frozenset[str]:
    """Those of ``names`` whose catalog entry (explicit, or the factory pattern it matches) uses a per-run value:
    ``${vertex:run_id}`` or ``${vertex:job_name}``, directly or through another interpolation.

    The catalog config is loaded once more through the project's own config loader, with the run id and job name
    set to a marker no real value contains; an entry is per-run when a string of it holds the marker. This follows
    every way a value can reach an entry (globals, ``${_base}/${vertex:run_id}``, patterns) without re-implementing
    OmegaConf; the session's catalog, built before, keeps its real values.
    """
    import secrets

    from .task.resolvers import JOB_NAME_ENV, RUN_ID_ENV

    marker = f"kedro-vertex-per-run-{secrets.token_hex(6)}"
    from .kedro_compat import globals_resolved_again

    loader = context.config_loader
    saved = {key: os.environ.get(key) for key in (RUN_ID_ENV, JOB_NAME_ENV)}
    os.environ[RUN_ID_ENV], os.environ[JOB_NAME_ENV] = marker, marker
    try:
        # globals.yml is resolved once, when the loader is built: resolve it again too
        with globals_resolved_again(loader):
            raw = loader["catalog"]
    except Exception:  # the session loaded this config already; a second load failing leaves caching as configured
        return frozenset()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    resolver = getattr(catalog, "config_resolver", None)
    found = set()
    for name in names:
        entry = raw.get(name)
        if entry is None and resolver is not None:
            pattern = resolver.match_dataset_pattern(name) or resolver.match_user_catch_all_pattern(name)
            entry = raw.get(pattern) if pattern else None
        if entry is not None and marker in repr(entry):
            found.add(name)
    return frozenset(found)


def check_mlflow_backend(request: CompileRequest, context: KedroContext, backend: str) -> None:
    """With MLflow on: the tracking URI must be reachable from where ``backend`` runs the tasks."""
    if request.mlflow:
        from .mlflow_tracking import check_tracking_uri, project_tracking_uri

        check_tracking_uri(project_tracking_uri(context.config_loader), backend=backend)


def close_mlflow_run(enabled: bool, context: Any, *, succeeded: bool, **job: str) -> None:
    """The launcher saw the job end: give its MLflow run the job's status and say where it is."""
    if not enabled:
        return
    from .mlflow_tracking import close_job_run

    try:
        run_id = close_job_run(context, succeeded=succeeded, **job)
    except Exception as exc:  # never turn a finished job into a failure over bookkeeping
        print(f"Warning: could not update the job's MLflow run: {str(exc).splitlines()[0]}", file=sys.stderr)
        return
    if run_id:
        print(f"MLflow run: {run_id}", file=sys.stderr)


def run_on_backend(
    spec: dict[str, Any],
    request: CompileRequest | None,
    context: KedroContext | None,
    *,
    backend: str,
    wait: bool,
    cancel_on_interrupt: bool = False,
    run_id: str | None = None,
    params: dict[str, Any] | None = None,
    template_uri: str | None = None,
    options: dict[str, Any] | None = None,
    config: PluginConfig | None = None,
    pipeline_name: str = "__default__",
) -> JobHandle:
    """Run ``spec`` on ``backend`` (following it when ``wait``). Once the job has ended, its MLflow run gets the
    job's outcome (which also covers tasks that were killed before they could report): the one place that closes
    it, for every backend. ``request`` is None for a registry template (nothing compiled here, no MLflow run)."""
    from .backends import get_backend
    from .backends.base import JobRequest
    from .console import ConsoleReporter

    config = config or request.config  # type: ignore[union-attr]  # one of them is given
    job = JobRequest(
        spec=spec,
        pipeline_name=request.pipeline_names[0] if request else pipeline_name,
        params=dict(params or {}),
        template_uri=template_uri,
        run_id=run_id,
        project_dir=Path(context.project_path) if context is not None else None,
        cancel_on_interrupt=cancel_on_interrupt,
        options={key: value for key, value in (options or {}).items() if value is not None},
    )

    def ended(handle: JobHandle, succeeded: bool) -> None:
        if request is not None:
            close_mlflow_run(request.mlflow, context, succeeded=succeeded, **handle.run_key)

    with ConsoleReporter() as reporter:
        return get_backend(backend, config, reporter).run(job, wait=wait, on_end=ended)
