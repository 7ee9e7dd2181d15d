"""``VertexRunner``: compile the pipeline Kedro hands over and run it as a Vertex AI job.

``kedro run --runner=VertexRunner`` builds the runner before the session exists, then calls :meth:`run` with the
pipeline already filtered by ``--pipeline/--tags/--nodes/--from-nodes/--to-nodes``. The runner does not execute
nodes itself: it compiles a PipelineSpec and hands it to a backend (:mod:`.backends`: every task in its own process
on this machine, Vertex AI Pipelines…), chosen by ``run_config.backend`` or ``backend=``. Context and
``--params``/``--env`` reach it through the plugin's hooks. User-facing problems are printed as one line and end
the command with a non-zero exit code.

Runner params (``--runner-params k=v,…``) are the keys every backend takes
(:class:`~.backends.settings.RunnerParams`: ``backend=NAME``, ``wait=``, ``cancel_on_interrupt=``, ``run_id=``,
``code=``, ``resume=``, ``resume_changed=``) and those a backend declares in its settings module (the local backend's
``max_workers=`` and ``warm_start=``), each checked by its model; a backend's own key is refused on another backend.

``resume=ID`` resumes a failed local run exactly: the run's options, spec and task states are recorded in
``<root>/<ID>/run.json``; the command printed after a failure repeats every option and runs only the failed tasks
and what depends on them (:func:`_resumed_run`); other options are refused unless ``resume_changed=true``.

``run_id`` re-runs chosen nodes of a failed local run by hand: tasks read and write the undeclared datasets under
``<root>/<ID>/``, so ``kedro run --runner=VertexRunner --from-nodes X --runner-params run_id=<the failed run's id>``
finds what the earlier run stored (a free input of a filtered pipeline is read from storage; one stored nowhere is
refused before anything runs, as Kedro's own runners refuse a free input missing from the catalog). Either id is
set before the session loads any config, so ``${vertex:run_id}`` in the launcher's catalog and in every task agree. On Vertex AI the run id is the job's uuid, so there it cannot be chosen.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from kedro.runner import AbstractRunner

from .backends import DEFAULT_BACKEND, REGISTRY, backend_class
from .backends.settings import RunnerParams, read_runner_params
from .errors import PluginError, exit_with
from .values import check_environment, check_run_id

if TYPE_CHECKING:
    from kedro.io import CatalogProtocol
    from kedro.pipeline import Pipeline
    from pluggy import PluginManager


_UNSET: Any = object()  # a recorded option that was not given


class VertexRunner(AbstractRunner):
    """Compile the filtered pipeline to a Vertex AI PipelineSpec and run it on the configured backend."""

    def __init__(self, is_async: bool = False, **params: Any):
        """Args:
        is_async: refused (``--async``): tasks always run in their own processes.
        params: ``--runner-params``: the keys of :class:`~.backends.settings.RunnerParams` (``backend``, ``wait``,
            ``cancel_on_interrupt``, ``run_id``, ``code``, ``resume``, ``resume_changed``) and those a backend
            declares in its settings module (the local backend's ``max_workers`` and ``warm_start``), checked
            through those models (:func:`~.backends.settings.read_runner_params`); a backend's own key is refused
            on another backend once the job's backend is known.
        """
        super().__init__(is_async=is_async)
        try:
            check_environment()
            if is_async:
                raise PluginError(
                    "--async: VertexRunner runs every task in its own process, which loads and saves that task's "
                    "datasets itself; --async does not apply: drop it"
                )
            given = read_runner_params(params)
            common = given.common
            self.params = given
            self.backend = common.backend
            self.code = common.code
            self.wait = common.wait
            self.cancel_on_interrupt = bool(common.cancel_on_interrupt)
            self.options = given.own  # the backend's own params, e.g. {"max_workers": 4}
            self.run_id = common.run_id
            self.resume = common.resume
            self.resume_changed = bool(common.resume_changed)
            if self.resume is not None and self.run_id not in (None, self.resume):
                raise PluginError(
                    f"--runner-params resume={self.resume},run_id={self.run_id}: a resumed run keeps its run id; "
                    "drop run_id="
                )
            if self.resume is None and self.resume_changed:
                raise PluginError("--runner-params resume_changed=true: only with resume=ID (the run to resume)")
            self.run_id = self.resume or self.run_id
        except PluginError as exc:
            exit_with(exc)
        self._prestart_warm_tasks()
        if self.run_id is not None:
            from .task.resolvers import RUN_ID_ENV

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
            backend_class(backend).prestart(project, raw, self.options)

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
        from .network import CommandTimeout, command_deadline

        self._catalog = catalog  # which datasets are declared (caching, resume hint); not built a second time
        try:
            with command_deadline("kedro run --runner=VertexRunner"):
                self._run_job(pipeline)
        except PluginError as exc:
            exit_with(exc)
        except CommandTimeout as exc:
            exit_with(exc.as_error())
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
        self.params.refuse_foreign(backend)
        config = config.with_backend(backend)
        if self.code is not None:
            config = config.model_copy(update={"run_config": config.run_config.model_copy(update={"code": self.code})})
        engine = backend_class(backend)
        resumed = _resumed_run(
            self.resume, self.resume_changed, run_params, engine, config, context, pipeline, self._catalog
        )
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
            online=engine.remote_tasks,
        )
        check_mlflow_backend(request, context, backend)
        spec = resumed.spec if resumed.spec is not None else compile_spec(request)
        from .backends.base import JobFailed
        from .task.resolvers import current_run_id

        try:
            run_on_backend(
                spec,
                request,
                context,
                backend=backend,
                wait=True if self.wait is None else self.wait,
                cancel_on_interrupt=self.cancel_on_interrupt,
                run_id=current_run_id() if engine.takes_run_id else None,
                options={**self.options, **resumed.options},
            )
        except JobFailed as exc:
            if getattr(exc, "result", None) is not None:  # a run whose tasks' data stays: say how to resume it
                _print_resume_hint(exc, run_params, pipeline, self._catalog, self.backend)
            raise


def _rehearsal_backend() -> str:
    """The backend whose tasks run on this machine (the usual `backend=` a user types), for examples."""
    return RunnerParams.example("backend")


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


def _run_id(value: Any, key: str = "run_id") -> str:
    return check_run_id(str(value).strip(), f"--runner-params {key}=")


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
            "nodes with --from-nodes/--nodes, or resume a failed local run with --runner-params resume=RUN_ID"
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
    from .task.persistence import TaskBoundary

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
    """After a failed local run: the command that resumes it (see :func:`_resumed_run`).

    It repeats every option that defined the run (:data:`_RUN_OPTIONS`, ``--params`` included) and adds
    ``--runner-params resume=<run id>``: the failed tasks and what depends on them run again, the others are not.
    When a failed task lacked a dataset this run never stored (a filtered run started with a new run id), resuming
    this run would fail the same way: the command then starts at the failed node(s) (or earlier in their task, see
    :func:`_resume_starts`) with ``run_id=`` of an earlier run — one that stored it, when the local root has one.
    Every value is quoted for a POSIX shell, so none can change what the pasted command does.
    """
    names = {node.name for node in pipeline.nodes}
    failed = [task for task in failure.result.tasks.values() if task.state == "FAILED" and names & set(task.nodes)]
    if not failed:  # e.g. only the exit handler failed
        return
    starts: set[str] = set()
    missing: set[str] = set()
    for task in failed:
        if task.failed_node in names:
            starts |= _resume_starts(list(task.nodes), task.failed_node, pipeline, catalog)
            if getattr(task, "missing_data", None):
                missing.add(task.missing_data)
    import shlex

    options = _run_options(run_params)
    chosen = f"backend={backend}," if backend else ""
    if missing:
        run_id = _earlier_run(failure.result.root, failure.result.run_id, missing) or "EARLIER_RUN_ID"
        words = _option_words(options, without="from_nodes")
        words += ["--from-nodes", ",".join(sorted(starts)), "--runner-params", f"{chosen}run_id={run_id}"]
        datasets = ", ".join(repr(name) for name in sorted(missing))
        print(
            f"Run {failure.result.run_id} has no stored {datasets} to resume from; to run the failed task(s) with "
            f"the data of an earlier run that stored it: {shlex.join(words)}",
            flush=True,
        )
        return
    words = [*_option_words(options), "--runner-params", f"{chosen}resume={failure.result.run_id}"]
    print(f"To resume the failed task(s) with this run's stored data: {shlex.join(words)}", flush=True)


#: The ``kedro run`` options that define a run (``run_params`` key, option), kept in its run record and repeated,
#: in this order, by the resume command. ``--conf-source`` is not one: VertexRunner refuses any but the project's
#: (:func:`_check_run_options`); ``--load-versions`` and ``--only-missing-outputs`` are refused too.
_RUN_OPTIONS = (
    ("pipeline_names", "--pipeline"),
    ("env", "--env"),
    ("tags", "--tags"),
    ("namespaces", "--namespaces"),
    ("node_names", "--nodes"),
    ("from_nodes", "--from-nodes"),
    ("to_nodes", "--to-nodes"),
    ("from_inputs", "--from-inputs"),
    ("to_outputs", "--to-outputs"),
    ("runtime_params", "--params"),
)


def _run_options(run_params: dict[str, Any]) -> dict[str, Any]:
    """The options of :data:`_RUN_OPTIONS` as JSON values: lists of names, the env or None, and ``--params`` as a
    flat mapping (``a.b`` for ``{"a": {"b": …}}``, as typed on the command line)."""
    import json

    options: dict[str, Any] = {}
    for key, _ in _RUN_OPTIONS:
        value = run_params.get(key)
        if key == "env":
            options[key] = str(value) if value else None
        elif key == "runtime_params":
            options[key] = _flat(json.loads(json.dumps(dict(value or {}), default=str)))
        else:
            options[key] = [str(item) for item in value or ()]
    return options


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _option_words(options: dict[str, Any], without: str = "") -> list[str]:
    """``kedro run --runner=VertexRunner`` and every recorded option (not quoted yet)."""
    words = ["kedro", "run", "--runner=VertexRunner"]
    for key, flag in _RUN_OPTIONS:
        value = options.get(key)
        if not value or key == without:
            continue
        if key == "pipeline_names" and len(value) > 1:
            words += ["--pipelines", ",".join(value)]
        elif key == "runtime_params":
            words += ["--params", ",".join(f"{name}={_param_text(item)}" for name, item in value.items())]
        else:
            words += [flag, value if isinstance(value, str) else ",".join(value)]
    return words


def _param_text(value: Any) -> str:
    """A ``--params`` value as typed: Kedro reads it as YAML, so a string YAML would read as something else (a
    number, ``true``, empty) is written quoted, and other values as JSON (which YAML reads back unchanged)."""
    import json
    import math

    if isinstance(value, str):
        from omegaconf import OmegaConf

        try:
            read: Any = OmegaConf.to_container(OmegaConf.from_dotlist([f"k={value}"]))
            if value and read["k"] == value:
                return value
        except Exception:  # not a value YAML reads back: quoted below
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return {"inf": ".inf", "-inf": "-.inf"}.get(str(value), ".nan")  # YAML's spelling, not JSON's
    return json.dumps(value)


def _shown(value: Any, param: bool = False) -> str:
    """A recorded option's value (``param``: of ``--params``, where None is ``null``) in an error line."""
    import json

    if value is _UNSET or (not param and value in (None, [])):
        return "not given"
    if isinstance(value, list) and not param:
        return ",".join(value)
    if isinstance(value, str):
        return value if value and not any(c.isspace() for c in value) else repr(value)
    return json.dumps(value)


def _first_difference(before: dict[str, Any], now: dict[str, Any]) -> str | None:
    """The first option (in :data:`_RUN_OPTIONS` order) whose value differs, as ``--params alpha was 0.5, now
    0.7``; None when the run's options are the same."""
    import json

    def same(a: Any, b: Any) -> bool:  # 1 and true, 1 and 1.0 differ
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

    for key, flag in _RUN_OPTIONS:
        if key == "runtime_params":
            old, new = before.get(key) or {}, now.get(key) or {}
            for name in [*old, *(name for name in new if name not in old)]:
                if (name in old) != (name in new) or not same(old[name], new[name]):
                    was, now_ = _shown(old.get(name, _UNSET), True), _shown(new.get(name, _UNSET), True)
                    return f"--params {name} was {was}, now {now_}"
        elif not same(before.get(key) or None, now.get(key) or None):
            return f"{flag} was {_shown(before.get(key))}, now {_shown(now.get(key))}"
    return None


class _Resume(NamedTuple):
    spec: dict[str, Any] | None  # the recorded spec, run again when the run's options are the same
    options: dict[str, Any]  # for the backend: this run's options to record, and the tasks that succeeded earlier


def _resumed_run(
    resume: str | None,
    changed: bool,
    run_params: dict[str, Any],
    engine: Any,
    config: Any,
    context: Any,
    pipeline: Pipeline,
    catalog: Any,
) -> _Resume:
    """What ``--runner-params resume=ID`` resumes: the run record ``<root>/<ID>/run.json`` the local backend keeps.

    The resumed run runs the recorded spec (a grouping that new node timings would change cannot change the
    tasks); the tasks that succeeded there are not run again (their stored outputs are read) unless a task they
    depend on runs, and a failed task runs from its failed node (:func:`_from_failed_nodes`). Options that differ
    from the recorded ones (``--params``, ``--env``, the pipeline, the filters) are refused, naming the first,
    unless ``resume_changed=true``: then the spec is compiled from the new options, the earlier tasks with the
    same name and nodes are kept and the other tasks run whole.
    """
    options = _run_options(run_params)
    if not engine.takes_run_id:
        if resume is not None:
            raise PluginError(
                f"--runner-params resume={resume}: only the backend that runs tasks on this machine resumes runs "
                f"(on Vertex AI, retry the job in the console); add backend={_rehearsal_backend()}"
            )
        return _Resume(None, {})
    if resume is None:
        return _Resume(None, {"record": options})
    from .backends.local import RUN_RECORD, SUCCEEDED, read_run_record

    root = config.run_config.root
    record = read_run_record(root, context.project_path, resume)
    if record is None:
        raise PluginError(
            f"--runner-params resume={resume}: no run record {root.rstrip('/')}/{resume}/{RUN_RECORD}: give the id "
            f"of a local run (its printed resume command has it), or start the nodes to run again yourself with "
            f"--from-nodes NODES --runner-params run_id={resume}"
        )
    difference = _first_difference(record["options"], options)
    if difference and not changed:
        raise PluginError(
            f"resume of run {resume}: {difference}: pass the same options (the printed resume command has them), or "
            "add resume_changed=true to --runner-params to resume with the new ones"
        )
    tasks = {name: task for name, task in record["tasks"].items() if isinstance(task, dict)}
    earlier = {name: list(task.get("nodes") or ()) for name, task in tasks.items() if task.get("state") == SUCCEEDED}
    if difference:
        return _Resume(None, {"record": options, "earlier": earlier})
    resume_nodes = _from_failed_nodes(tasks, pipeline, catalog)
    return _Resume(record["spec"], {"record": options, "earlier": earlier, "resume_nodes": resume_nodes})


def _from_failed_nodes(tasks: dict[str, Any], pipeline: Pipeline, catalog: Any) -> dict[str, list[str]]:
    """The nodes each failed task of a run record runs when resumed: from its failed node (or from earlier in the
    task, where that node needs data the task kept in memory: :func:`_resume_starts`), not from its first node."""
    names = {node.name for node in pipeline.nodes}
    resume_nodes: dict[str, list[str]] = {}
    for name, task in tasks.items():
        nodes = [str(node) for node in task.get("nodes") or ()]
        failed = task.get("failed_node")
        if task.get("state") == "SUCCEEDED" or failed not in nodes or not set(nodes) <= names:
            continue
        starts = _resume_starts(nodes, failed, pipeline, catalog)
        following = {node.name for node in pipeline.from_nodes(*starts).nodes}
        resume_nodes[name] = [node for node in nodes if node in following]
    return resume_nodes


def _earlier_run(root: str, run_id: str, datasets: set[str]) -> str | None:
    """The newest other run under a local ``root`` whose folder holds every one of ``datasets``, or None."""
    if "://" in root:
        return None
    from .task.persistence import file_name

    try:
        runs = [path for path in Path(root).iterdir() if path.is_dir() and path.name != run_id and _usable(path.name)]
        found = [path for path in runs if all((path / file_name(name)).is_file() for name in datasets)]
        newest = max(found, key=lambda path: path.stat().st_mtime, default=None)
    except OSError:
        return None
    return newest.name if newest is not None else None
