"""``VertexRunner``: compile the pipeline Kedro hands over and run it as a Vertex AI job.

``kedro run --runner=VertexRunner`` builds the runner before the session exists, then calls :meth:`run` with the
pipeline already filtered by ``--pipeline/--tags/--nodes/--from-nodes/--to-nodes``. The runner does not execute
nodes itself: it compiles a PipelineSpec and hands it to a backend (:mod:`.backends`: every task in its own process
on this machine, Vertex AI Pipelines…), chosen by ``run_config.backend`` or ``backend=``. Context and
``--params``/``--env`` reach it through the plugin's hooks. User-facing problems are printed as one line and end
the command with a non-zero exit code.

Runner params (``--runner-params k=v,…``): ``backend=NAME`` (a name of :data:`.backends.REGISTRY`),
``wait=true|false`` (a backend that can submit), ``max_workers=N`` and ``warm_start=true|false`` (the local backend's
options), ``cancel_on_interrupt=true``, ``run_id=ID`` (a backend that resumes runs), ``code=image|upload``
(overrides ``run_config.code``).

``run_id`` resumes a failed local run: tasks read and write the undeclared datasets under ``<root>/<ID>/``, so
``kedro run --runner=VertexRunner --from-nodes X --runner-params run_id=<the failed run's id>`` finds what the
earlier run stored (a free input of a filtered pipeline is read from storage; one stored nowhere is refused before
anything runs, as Kedro's own runners refuse a free input missing from the catalog). The id is set before the
session loads any config, so ``${vertex:run_id}`` in the launcher's catalog and in every task agree. On Vertex AI
the run id is the job's uuid, so there it cannot be chosen.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kedro.runner import AbstractRunner

from .backends import DEFAULT_BACKEND, REGISTRY, backend_class, names
from .errors import PluginError, exit_with
from .values import check_run_id, switch

if TYPE_CHECKING:
    from kedro.io import CatalogProtocol
    from kedro.pipeline import Pipeline
    from pluggy import PluginManager

_UNSET: Any = object()  # a runner param not given (`run_id=` on the command line arrives as None)
# example values in "give a value" errors; `backend=` names the backend that runs on this machine (_rehearsal_backend)
_EXAMPLES = {
    "wait": "false",
    "max_workers": "4",
    "cancel_on_interrupt": "true",
    "run_id": "local-20240101-120000-abc123",
    "warm_start": "false",
    "code": "upload",
}


def _as_bool(name: str, value: Any) -> bool:
    flag = switch(value)
    if flag is None:
        raise PluginError(f"--runner-params {name}={value!a}: expected true or false")
    return flag


class VertexRunner(AbstractRunner):
    """Compile the filtered pipeline to a Vertex AI PipelineSpec and run it on the configured backend."""

    def __init__(
        self,
        is_async: bool = False,
        backend: Any = _UNSET,
        wait: Any = _UNSET,
        max_workers: Any = _UNSET,
        cancel_on_interrupt: Any = _UNSET,
        run_id: Any = _UNSET,
        warm_start: Any = _UNSET,
        code: Any = _UNSET,
        **unknown: Any,
    ):
        """Args:
        is_async: refused (``--async``): tasks always run in their own processes.
        backend: a registered backend's name; overrides ``run_config.backend``.
        wait: (vertex) follow the job until it ends; default: true.
        max_workers: (local) how many tasks run at once; default: ``run_config.local.max_workers`` or CPUs.
        cancel_on_interrupt: (vertex) cancel the job on Ctrl-C without asking.
        run_id: (local) the run id, e.g. an earlier run's to reuse its stored intermediates; default: a new one.
        warm_start: (local) fork tasks from a process that has preloaded the project; default:
            ``run_config.local.warm_start``, else ``KEDRO_VERTEX_WARM_START``, else on.
        code: ``image`` or ``upload``; overrides ``run_config.code`` (upload: ship the code with the job).
        """
        super().__init__(is_async=is_async)
        try:
            if is_async:
                raise PluginError(
                    "--async: VertexRunner runs every task in its own process, which loads and saves that task's "
                    "datasets itself; --async does not apply: drop it"
                )
            if unknown:
                known = "backend, wait, max_workers, cancel_on_interrupt, run_id, warm_start, code"
                raise PluginError(f"--runner-params: unknown key {sorted(unknown)[0]!a}; VertexRunner takes {known}")
            given = {
                "backend": backend,
                "wait": wait,
                "max_workers": max_workers,
                "cancel_on_interrupt": cancel_on_interrupt,
                "run_id": run_id,
                "warm_start": warm_start,
                "code": code,
            }
            for name, value in given.items():
                if value is None or (isinstance(value, str) and not value.strip()):
                    example = _rehearsal_backend() if name == "backend" else _EXAMPLES[name]
                    raise PluginError(f"--runner-params {name}=: give a value, e.g. {name}={example}")
            backend, wait, max_workers, run_id = (
                None if value is _UNSET else value for value in (backend, wait, max_workers, run_id)
            )
            cancel_on_interrupt = False if cancel_on_interrupt is _UNSET else cancel_on_interrupt
            if backend is not None and backend not in REGISTRY:
                raise PluginError(f"--runner-params backend={backend!a}: expected {_one_of(names())}")
            self.backend = backend
            self.code = None if code is _UNSET else str(code).strip()
            if self.code is not None and self.code not in ("image", "upload"):
                raise PluginError(f"--runner-params code={code!r}: expected 'image' or 'upload'")
            self.wait = None if wait is None else _as_bool("wait", wait)
            self.cancel_on_interrupt = _as_bool("cancel_on_interrupt", cancel_on_interrupt)
            self.warm_start = None if warm_start is _UNSET else _as_bool("warm_start", warm_start)
            if max_workers is not None:
                try:
                    max_workers = int(str(max_workers).strip())  # not int(): that would cut 1.5 to 1
                    if max_workers < 1:
                        raise ValueError
                except (TypeError, ValueError):
                    raise PluginError(
                        f"--runner-params max_workers={max_workers!a}: expected a whole number ≥ 1"
                    ) from None
            self.max_workers = max_workers
            self.run_id = None if run_id is None else _run_id(run_id)
        except PluginError as exc:
            exit_with(exc)
        self._prestart_warm_tasks()
        if self.run_id is not None:
            from .resolvers import RUN_ID_ENV

            # Kedro builds the runner before the session: config loaded from here on resolves ${vertex:run_id} to it
            os.environ[RUN_ID_ENV] = self.run_id

    def _prestart_warm_tasks(self) -> None:
        """Let the backend start what the job will need while Kedro loads the pipelines and builds the session
        (:meth:`.backends.base.Backend.prestart`). Decided from ``conf/base/vertexai.yml`` as written (the validated
        config is not loaded yet)."""
        project = _project_dir()
        if project is None:
            return
        raw = _raw_run_config(project)
        backend = self.backend or raw.get("backend") or DEFAULT_BACKEND
        if isinstance(backend, str) and backend in REGISTRY:  # else the config check says what is wrong
            backend_class(backend).prestart(project, raw, {"warm_start": self.warm_start})

    def run(
        self,
        pipeline: Pipeline,
        catalog: CatalogProtocol,
        hook_manager: PluginManager | None = None,
        run_id: str | None = None,
        only_missing_outputs: bool = False,
    ) -> dict[str, Any]:
        """Compile ``pipeline`` and run it on the backend. Returns ``{}``: outputs live in storage, not memory.

        Like Kedro's runners this refuses free inputs nobody can load, before anything starts; an undeclared free
        input is one stored under ``<root>/<run id>/`` by the run whose id is given (``run_id=``).
        """
        self._catalog = catalog  # which datasets are declared (caching, resume hint); not built a second time
        try:
            self._run_job(pipeline)
        except PluginError as exc:
            exit_with(exc)
        except KeyboardInterrupt:
            print("Interrupted.", file=sys.stderr)
            raise SystemExit(130) from None
        return {}

    def _run(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - run() is overridden
        raise NotImplementedError("VertexRunner runs whole jobs through run()")

    def _get_executor(self, max_workers: int) -> None:  # pragma: no cover - required by AbstractRunner
        return None

    def _run_job(self, pipeline: Pipeline) -> None:
        from .compiler import compile_spec
        from .config import load_config
        from .hooks import state
        from .project import build_request, check_free_inputs, check_mlflow_backend, run_on_backend

        context = state.context
        if context is None:
            raise PluginError(
                "VertexRunner found no Kedro context: run it through `kedro run --runner=VertexRunner` in a "
                "project where kedro-vertex-runner is installed (or add VertexHooks() to HOOKS in settings.py)"
            )
        run_params = state.run_params or {}
        _check_run_options(run_params, context)
        config = load_config(context.config_loader)
        backend = self.backend or config.run_config.backend
        config = config.with_backend(backend)
        if self.code is not None:
            config = config.model_copy(update={"run_config": config.run_config.model_copy(update={"code": self.code})})
        engine = backend_class(backend)
        engine.check_run_id(self.run_id)
        check_free_inputs(
            pipeline,
            self._catalog,
            project_path=Path(context.project_path),
            config=config,
            pipeline_names=run_params.get("pipeline_names"),
            run_id=self.run_id,
            takes_run_id=engine.takes_run_id,
        )
        request = build_request(
            context,
            pipeline,
            pipeline_names=run_params.get("pipeline_names"),
            runtime_params=run_params.get("runtime_params"),
            config=config,
            catalog=self._catalog,
        )
        check_mlflow_backend(request, context, backend)
        spec = compile_spec(request)
        from .backends.base import JobFailed
        from .resolvers import current_run_id

        try:
            run_on_backend(
                spec,
                request,
                context,
                backend=backend,
                wait=True if self.wait is None else self.wait,
                cancel_on_interrupt=self.cancel_on_interrupt,
                run_id=current_run_id() if engine.takes_run_id else None,
                options={"max_workers": self.max_workers, "warm_start": self.warm_start},
            )
        except JobFailed as exc:
            if getattr(exc, "result", None) is not None:  # a run whose tasks' data stays: say how to resume it
                _print_resume_hint(exc, run_params, pipeline, self._catalog, self.backend)
            raise


def _rehearsal_backend() -> str:
    """The backend whose tasks run on this machine (the usual `backend=` a user types), for examples."""
    return next((name for name in names() if not backend_class(name).remote_tasks), DEFAULT_BACKEND)


def _project_dir() -> Path | None:
    try:
        from kedro.utils import find_kedro_project

        return find_kedro_project(Path.cwd())
    except Exception:  # no project: nothing to prestart
        return None


def _raw_run_config(project: Path) -> dict[str, Any]:
    """``run_config`` of ``conf/base/vertexai.yml`` as plain YAML (no resolvers), or {} when it cannot be read."""
    import yaml

    for name in ("vertexai.yml", "vertexai.yaml"):
        try:
            loaded = yaml.safe_load((project / "conf" / "base" / name).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        run_config = loaded.get("run_config") if isinstance(loaded, dict) else None
        return run_config if isinstance(run_config, dict) else {}
    return {}


def _run_id(value: Any) -> str:
    return check_run_id(str(value).strip(), "--runner-params run_id=")


def _usable(run_id: str) -> bool:
    try:
        return _run_id(run_id) == run_id
    except PluginError:
        return False


def _check_run_options(run_params: dict[str, Any], context: Any) -> None:
    """Refuse ``kedro run`` options that the tasks could not honour, rather than run with other settings."""
    if run_params.get("only_missing_outputs"):
        raise PluginError(
            "--only-missing-outputs: VertexRunner cannot use it (tasks run every node they are given); choose the "
            "nodes with --from-nodes/--nodes, or resume a failed local run with --runner-params run_id=ID"
        )
    if run_params.get("load_versions"):
        raise PluginError(
            "--load-versions: VertexRunner does not pass dataset versions to its tasks; drop it (tasks load the "
            "versions their own job saved, else the latest) or run this pipeline with Kedro's own runner"
        )
    from kedro.framework.project import settings

    conf_source = getattr(context.config_loader, "conf_source", None)
    default = Path(context.project_path) / settings.CONF_SOURCE
    if conf_source and Path(conf_source).resolve() != default.resolve():
        raise PluginError(
            f"--conf-source {conf_source}: VertexRunner tasks read the project's own {settings.CONF_SOURCE}/ (in "
            "the image on Vertex AI); put this configuration in conf/<env>/ and select it with --env"
        )


def _resume_starts(task_nodes: list[str], failed: str, pipeline: Pipeline, catalog: Any) -> set[str]:
    """Where to resume one failed task: the node that failed, every node of the task that may not have run (any
    not upstream of it), and whatever produced their inputs that stayed in the task's memory (undeclared or a
    memory dataset, read by no other task, so never stored: persistence.TaskBoundary); returns the first nodes of
    that set."""
    by_name = {node.name: node for node in pipeline.nodes}
    own = [by_name[name] for name in task_nodes if name in by_name]
    own_names = {node.name for node in own}
    parents = {
        node.name: {p.name for p in ps} & own_names
        for node, ps in pipeline.node_dependencies.items()
        if node.name in own_names
    }
    upstream: set[str] = set()
    todo = [failed]
    while todo:
        for parent in parents.get(todo.pop(), ()):
            if parent not in upstream:
                upstream.add(parent)
                todo.append(parent)
    from .persistence import TaskBoundary

    # the entrypoint's rule: a dataset held in memory, made and read inside the task and read by no other task,
    # was never stored
    in_memory = TaskBoundary.of_catalog(pipeline, catalog).kept_in_memory(own)
    producer = {output: node.name for node in own for output in node.outputs}

    chosen = own_names - upstream | {failed}
    todo = list(chosen)
    while todo:
        for dataset in by_name[todo.pop()].inputs:
            source = producer.get(dataset)
            if source and source not in chosen and dataset in in_memory:
                chosen.add(source)
                todo.append(source)
    return {name for name in chosen if not parents[name] & chosen}


def _print_resume_hint(
    failure: Any, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any, backend: str | None
) -> None:
    """After a failed local run: the command that re-runs from the failed task(s) with this run's stored data.

    Data a task passed between its own nodes in memory was never stored, so the command may start before the
    failed node (see :func:`_resume_starts`). Every filter of the failed run is repeated. When a failed task lacked
    a dataset this run never stored (a filtered run started with a new run id), resuming this run would fail the
    same way: the command takes an earlier run's id instead — one that stored it, when the local root has one.
    Every value is quoted for a POSIX shell, so none can change what the pasted command does.
    """
    names = {node.name for node in pipeline.nodes}
    starts: set[str] = set()
    missing: set[str] = set()
    for task in failure.result.tasks.values():
        if task.state == "FAILED" and task.failed_node in names:  # not e.g. the exit handler
            starts |= _resume_starts(list(task.nodes), task.failed_node, pipeline, catalog)
            if getattr(task, "missing_data", None):
                missing.add(task.missing_data)
    if not starts:
        return
    import shlex

    def joined(key: str) -> str | None:
        value = run_params.get(key)
        return ",".join(value) if value else None

    words = ["kedro", "run", "--runner=VertexRunner"]
    pipelines: list[str] = list(run_params.get("pipeline_names") or ())
    if len(pipelines) == 1:
        words += ["--pipeline", pipelines[0]]
    elif pipelines:
        words += ["--pipelines", ",".join(pipelines)]
    if run_params.get("env"):
        words += ["--env", str(run_params["env"])]
    for flag, key in (
        ("--tags", "tags"),
        ("--namespaces", "namespaces"),
        ("--nodes", "node_names"),
        ("--to-nodes", "to_nodes"),
        ("--from-inputs", "from_inputs"),
        ("--to-outputs", "to_outputs"),
    ):
        value = joined(key)
        if value:
            words += [flag, value]
    words += ["--from-nodes", ",".join(sorted(starts))]
    run_id = failure.result.run_id
    if missing:
        run_id = _earlier_run(failure.result.root, run_id, missing) or "EARLIER_RUN_ID"
    words += ["--runner-params", (f"backend={backend}," if backend else "") + f"run_id={run_id}"]
    same = " (with the same --params)" if run_params.get("runtime_params") else ""
    command = shlex.join(words)
    if missing:
        datasets = ", ".join(repr(name) for name in sorted(missing))
        print(
            f"Run {failure.result.run_id} has no stored {datasets} to resume from; to run the failed task(s) with "
            f"the data of an earlier run that stored it{same}: {command}",
            flush=True,
        )
        return
    print(f"To resume from the failed task(s) with this run's stored data{same}: {command}", flush=True)


def _earlier_run(root: str, run_id: str, datasets: set[str]) -> str | None:
    """The newest other run under a local ``root`` whose folder holds every one of ``datasets``, or None."""
    if "://" in root:
        return None
    from .persistence import file_name

    try:
        runs = [path for path in Path(root).iterdir() if path.is_dir() and path.name != run_id and _usable(path.name)]
        found = [path for path in runs if all((path / file_name(name)).is_file() for name in datasets)]
        newest = max(found, key=lambda path: path.stat().st_mtime, default=None)
    except OSError:
        return None
    return newest.name if newest is not None else None


def _one_of(choices: tuple[str, ...]) -> str:
    quoted = [repr(choice) for choice in choices]
    return " or ".join(quoted) if len(quoted) < 3 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
