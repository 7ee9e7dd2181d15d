"""Kedro pipeline → Kubeflow v2 / Vertex AI PipelineSpec.

:func:`compile_spec` depends on its request alone: no network, no credentials, no GCP client, no timestamps, no
kfp import; the same request compiles to byte-identical JSON (what it needs from git, the project and the last
run's timings is gathered into the request by its callers). Its one effect besides the spec is warning lines on
stderr (a memory dataset passed between tasks, tasks left uncached, machine settings the backend ignores).
:mod:`.grouping` decides which nodes share a task; :mod:`.spec` turns the groups into the spec, and its
:func:`~.spec.write_spec` and :func:`~.spec.check_output_path` are the only functions here that touch the file
system.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kedro.pipeline import Pipeline

    from ..config import PluginConfig
    from .grouping import CostModel, Estimate, TaskGroup


@dataclass(frozen=True)
class CompileRequest:
    """Everything the compiler needs, gathered by the runner or the CLI.

    Attributes:
        pipeline: the pipeline to compile, already filtered by Kedro (tags, nodes, from/to nodes …).
        config: the validated ``vertexai.yml``.
        pipeline_names: registered pipeline(s) the nodes come from; each task's entrypoint looks nodes up there.
        env: the Kedro env (``--env``), or None for the project default.
        runtime_params: ``--params`` as Kedro parsed them; each top-level key becomes a typed pipeline parameter.
        project_name: the project's package name; names the compiled pipeline.
        on_exit: the resolved ``run_config.on_exit_pipeline`` (its name is ``config.run_config.on_exit_pipeline``).
        commit_id / branch_name: from git at compile time (None when not a git checkout).
        extra_env: environment variables for every task, e.g. forwarded ``KEDRO_CONFIG_*`` values (never secrets).
        mlflow: whether the job tracks an MLflow run (kedro-mlflow installed and enabled).
        registered: node names of every registered pipeline. A task whose nodes all sit in a registered pipeline
            smaller than the job's is told so (``--node-pipeline``): it then imports fewer node modules at start-up.
        declared: the pipeline's datasets declared in the catalog (explicitly or by a factory pattern), when known.
            A task whose undeclared outputs other tasks read is never cached: a cached task does not run, so it
            would not store them under the new job's run id.
        durations: node run times in seconds recorded by the last local run of the pipeline (used by the
            ``makespan`` grouping unless ``run_config.grouping_options.use_timings`` is false).
        in_memory: those of ``declared`` the catalog declares as memory datasets. They are stored per run like
            undeclared ones when they pass between tasks (see :class:`kedro_vertex_runner.task.persistence.TaskBoundary`);
            the compiler warns about each one that does.
        per_run: those of ``declared`` whose catalog entry uses a per-run value (``${vertex:run_id}``,
            ``${vertex:job_name}``): a task writing one is never cached either.
        code_uri: with code upload, the URI of the project's uploaded code; every task unpacks and runs it.
        artifacts: the artifact schema (``system.Dataset``, ``system.Model``, ``system.Metrics``) of each of
            ``declared`` that is an artifact by :func:`kedro_vertex_runner.task.artifacts.artifact_type`; the task
            writing it declares it as an output artifact, the tasks reading it as an input artifact.
    """

    pipeline: Pipeline
    config: PluginConfig
    pipeline_names: tuple[str, ...] = ("__default__",)
    env: str | None = None
    runtime_params: dict[str, Any] = field(default_factory=dict)
    project_name: str = "kedro-pipeline"
    on_exit: Pipeline | None = None
    commit_id: str | None = None
    branch_name: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    mlflow: bool = False
    registered: Mapping[str, frozenset[str]] = field(default_factory=dict)
    declared: frozenset[str] | None = None
    durations: Mapping[str, float] = field(default_factory=dict)
    durations_source: str = ""  # which run `durations` came from, for `compile --explain`
    in_memory: frozenset[str] = frozenset()
    per_run: frozenset[str] = frozenset()
    code_uri: str | None = None
    artifacts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GroupingReport:
    """One grouping of the request's pipeline and what the cost model says of it (``compile --explain``).

    Attributes:
        mode: the ``run_config.grouping`` value.
        groups: the tasks, in dependency order (empty when the grouping is refused).
        estimate: modelled makespan, task count and longest chain of tasks (None when refused).
        error: why the grouping is refused for this pipeline (e.g. a cycle between tag groups), else None.
    """

    mode: str
    groups: tuple[TaskGroup, ...]
    estimate: Estimate | None
    error: str | None = None


def cost_model(request: CompileRequest) -> CostModel:
    """The cost model the ``makespan`` grouping uses for ``request``."""
    from .grouping import CostModel

    options = request.config.run_config.grouping_options
    durations = dict(request.durations) if options.use_timings else {}
    from ..task.runners import FORK_COST, MIN_WORKERS, SEQUENTIAL

    # a task runs independent nodes side by side unless the job says sequential (a node's tag may still say so:
    # the model assumes the job's setting); at least MIN_WORKERS at once, whatever machine the task gets
    workers = 1 if request.config.run_config.task_runner == SEQUENTIAL else MIN_WORKERS
    transient = None  # datasets kept in memory inside a task: nodes linked by one never overlap
    if request.declared is not None:
        declared, in_memory = request.declared, request.in_memory
        transient = frozenset(
            name
            for name in request.pipeline.datasets()
            if (name not in declared or name in in_memory) and not name.startswith("params:") and name != "parameters"
        )
    from .machines import custom_job_startup

    run_config = request.config.run_config
    return CostModel(
        task_startup=options.persistent_task_startup if run_config.persistent_resource else options.task_startup,
        extra_startup=custom_job_startup(request.pipeline, run_config),
        node_duration=options.node_duration,
        durations=durations,
        task_workers=workers,
        parallel_cost=FORK_COST,
        transient=transient,
    )


def explain(request: CompileRequest) -> list[GroupingReport]:
    """Every grouping mode applied to the request's pipeline, the configured one first, with its estimate."""
    from ..errors import PluginError
    from .grouping import GROUPING_MODES, estimate, group_nodes
    from .spec import task_settings

    model = cost_model(request)
    fusable = task_settings(request.config.run_config).same
    configured = request.config.run_config.grouping
    reports = []
    for mode in [configured, *(m for m in GROUPING_MODES if m != configured)]:
        try:
            groups = group_nodes(request.pipeline, mode, fusable=fusable, model=model)
        except PluginError as exc:
            reports.append(GroupingReport(mode, (), None, str(exc)))
            continue
        reports.append(GroupingReport(mode, tuple(groups), estimate(groups, model)))
    return reports


def compile_spec(request: CompileRequest) -> dict[str, Any]:
    """Compile ``request`` into a PipelineSpec dict (JSON-serialisable)."""
    from ..config import file_defining
    from ..errors import PluginError
    from .spec import build_pipeline_spec

    try:
        return build_pipeline_spec(request)
    except PluginError as exc:  # a config problem found while compiling: name the file that sets the key
        text = str(exc)
        files = request.config.source_files
        if not text.startswith("run_config.") or not files:
            raise
        key = text.split(":", 1)[0].split()[0]
        raise type(exc)(f"{file_defining(files, tuple(key.split('.')))}: {text}", exc.exit_code) from None
