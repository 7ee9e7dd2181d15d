"""What runs inside each task: ``python -m kedro_vertex_runner.entrypoint …`` (console script
``kedro-vertex-entrypoint``) runs a few named nodes of a Kedro project in one ``KedroSession``.

The compiled PipelineSpec starts it in every container on Vertex AI, and the local backend starts it as a
subprocess with the project directory as working directory. Its arguments are the task contract
(:mod:`kedro_vertex_runner.task.contract`), every option one ``--option=value`` item so that any value arrives
intact::

    --pipeline=NAME            registered pipeline the nodes come from (repeatable; nodes are looked up in the union)
    --node=NODE                node to run (repeatable; run in topological order, as Kedro always does)
    --node-pipeline=NAME       a registered pipeline holding all the --node nodes (repeatable), loaded instead of
                               --pipeline to find them: a smaller pipeline imports fewer node modules, so the task
                               starts sooner. The job's --pipeline is then loaded only if a dataset is produced and
                               consumed inside the task (to learn whether other tasks read it too), or if a node is
                               not found there
    --env=ENV                  Kedro config environment (default: the project's)
    --run-id=RUN_ID            the job's run id (default: KEDRO_VERTEX_RUN_ID, else a generated local id)
    --job-name=JOB_NAME        the job's name (exposed as ${vertex:job_name})
    --root=ROOT                where undeclared intermediates live: gs://bucket/path or a directory (relative to
                               the project directory); see kedro_vertex_runner.task.persistence
    --param=TYPE:KEY=VALUE     a runtime parameter, typed: TYPE is STRING, NUMBER_INTEGER, NUMBER_DOUBLE, BOOLEAN,
                               LIST or STRUCT; VALUE is the text Vertex AI substitutes (raw string, JSON number,
                               true/false, JSON list/object). A dotted KEY sets a nested parameter, as --params does.
    --timeout=SECONDS          fail the task with "node 'X' timed out after N s"
    --task-runner=MODE         how nodes that do not depend on each other run: processes (each group of nodes
                               linked in memory in a forked process), threads or sequential (default); see
                               kedro_vertex_runner.task.runners
    --host-alias=IP=H1,H2      make hostnames H1, H2 resolve to IP inside this process (repeatable)
    --exit-handler             this task belongs to the on-exit pipeline (it runs like any other task)
    --project-dir=DIR          the Kedro project (default: the working directory)
    --code-uri=URI             code upload: fetch the project's code and conf/ from URI (<root>/code/<sha256>/…),
                               unpack it into a scratch directory and run the project from there (see
                               kedro_vertex_runner.task.code_unpack)
    --secret=NAME=REFERENCE    set environment variable NAME to the Secret Manager secret REFERENCE
                               (projects/<p>/secrets/<s>/versions/<v>), read at start-up with the task's credentials
                               (repeatable; see kedro_vertex_runner.task.secret_manager)
    --final-status=JSON        exit task: the job's final status (KFP's PipelineTaskFinalStatus), which its nodes
                               read as the parameter ``job_final_status``
    --webhook=REFERENCE        exit task: POST the final status as JSON to the URL held by this secret, after its
                               nodes (an exit task may have no --node then)

A run id or job name that is still a placeholder (``{{$.pipeline_job_uuid}}``: the backend did not substitute it)
is refused, since every job would then share one folder.

Exit status: 0 on success; 1 when a node fails, with ``Error: node '<name>' failed: <Type>: <message>`` as the last
line on stderr (after the traceback); 124 on timeout; 1 or 2 with one ``Error: …`` line for bad input. When
``KEDRO_VERTEX_TASK_REPORT`` names a file, the task also keeps its ``TaskReport`` there (see
:mod:`kedro_vertex_runner.task.contract`): which node is running, written before each node starts so that a hard
exit still names it, and how the task ended.

Why not ``kedro run --nodes …``: a task should start fast (Vertex AI already spends minutes starting a container),
so this skips the Kedro CLI and its plugins, and never imports kfp, google-cloud-aiplatform or — unless the project
tracks with MLflow — mlflow. Kedro imports every ``kedro.hooks`` entry point before it applies
``DISABLE_HOOKS_FOR_PLUGINS``, so the entrypoint blocks the entry points of disabled plugins before they load:
kedro-mlflow when the project has no ``conf/*/mlflow.y*ml`` (or ``KEDRO_VERTEX_MLFLOW=0``), kedro-telemetry when
``DO_NOT_TRACK``/``KEDRO_DISABLE_TELEMETRY`` opt out anyway, this plugin's own hooks (they serve ``VertexRunner``
only), and whatever the project itself disables.

Logs: when output goes to a file or a pipe (the local backend's task logs, Cloud Logging), Kedro's plain logging
configuration replaces its rich default, and a failing node's traceback leaves out Kedro's own frames
(``KEDRO_VERTEX_DEBUG=1`` shows them); see :func:`_plain_logging`.

``--host-alias`` replaces ``/etc/hosts`` entries (containers may not write it): ``socket.getaddrinfo``,
``gethostbyname`` and ``gethostbyname_ex`` are wrapped so the aliased names resolve to the IP for every library that
resolves through Python's ``socket`` module (requests, urllib3, httpx, the MLflow client). Native resolvers such as
gRPC's c-ares do not see it, and child processes do not inherit it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..errors import PluginError, report_error
from ..values import is_on, switch
from .contract import (
    FAILED,
    PLACEHOLDER_START,
    RUNNING,
    STARTED,
    SUCCEEDED,
    HostAlias,
    TaskContract,
    TaskReport,
    report_path,
)

if TYPE_CHECKING:
    from kedro.pipeline import Pipeline

TIMEOUT_EXIT_CODE = 124
#: the parameter an exit task's nodes read the job's final status from (``params:job_final_status``)
FINAL_STATUS_PARAM = "job_final_status"
# a node stuck in C code that never returns to the interpreter cannot see the timeout exception: hard exit after this
TIMEOUT_GRACE_SECONDS = 15.0


# --------------------------------------------------------------------------------------------- host aliases


def install_host_aliases(aliases: tuple[HostAlias, ...] | list[HostAlias]) -> dict[str, str]:
    """Make each hostname of ``--host-alias=IP=HOST1,HOST2`` resolve to ``IP`` in this process; returns the map."""
    import ipaddress
    import socket

    mapping: dict[str, str] = {}
    for alias in aliases:
        ip, hosts = alias.ip, ",".join(alias.hostnames)
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise PluginError(f"--host-alias={ip}={hosts}: {ip!r} is not an IP address") from None
        names = [h.strip().lower().rstrip(".") for h in alias.hostnames if h.strip()]
        if not names:
            raise PluginError(f"--host-alias={ip}={hosts}: give one or more comma-separated hostnames")
        for name in names:
            mapping[name] = ip
    if not mapping:
        return mapping

    def target(host: Any) -> Any:
        if isinstance(host, bytes):
            aliased = mapping.get(host.decode("ascii", "replace").lower().rstrip("."))
            return aliased.encode() if aliased else host
        if isinstance(host, str):
            return mapping.get(host.lower().rstrip("."), host)
        return host

    original_getaddrinfo = socket.getaddrinfo
    original_gethostbyname = socket.gethostbyname
    original_gethostbyname_ex = socket.gethostbyname_ex

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        return original_getaddrinfo(target(host), *args, **kwargs)

    def gethostbyname(host: str) -> str:
        return original_gethostbyname(target(host))

    def gethostbyname_ex(host: str) -> Any:
        aliased = target(host)
        if aliased is host:
            return original_gethostbyname_ex(host)
        return host, [], [aliased]

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    return mapping


# --------------------------------------------------------------------------------------------- timeout


class TaskTimeout(BaseException):
    """Raised in the main thread when ``--timeout`` expires.

    A ``BaseException`` so that a node's own ``except Exception`` cannot swallow it.
    """


class _Watchdog:
    """``--timeout``: SIGALRM interrupts the main thread; a daemon timer hard-exits if that does not end the task."""

    def __init__(self, seconds: float, describe: Any, report: str | None = None):
        self.seconds = seconds
        self.describe = describe  # () -> node name, for the message
        self.report = report  # the task report file, if any
        self._hard: threading.Timer | None = None
        self._expired: str | None = None  # the node named when the timeout expired (nodes killed after it end too)

    def node(self) -> str:
        return self._expired or self.describe()

    def message(self) -> str:
        return f"node {self.node()!r} timed out after {self.seconds:g} s"

    def start(self) -> None:
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGALRM, self._on_alarm)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        self._hard = threading.Timer(self.seconds + TIMEOUT_GRACE_SECONDS, self._hard_exit)
        self._hard.daemon = True
        self._hard.start()

    def stop(self) -> None:
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            signal.setitimer(signal.ITIMER_REAL, 0)
        if self._hard is not None:
            self._hard.cancel()

    def _on_alarm(self, signum: int, frame: Any) -> None:
        from .runners import kill_node_processes

        self._expired = self.describe()
        kill_node_processes()
        raise TaskTimeout(self.message())

    def _hard_exit(self) -> None:
        from .runners import kill_node_processes

        self._expired = self._expired or self.describe()
        kill_node_processes()
        TaskReport(FAILED, self.node(), f"timed out after {self.seconds:g} s").write(self.report)
        report_error(self.message())
        sys.stderr.flush()
        getattr(os._exit, "__wrapped__", os._exit)(TIMEOUT_EXIT_CODE)  # not _ExitGuard's: this is no node's exit


# --------------------------------------------------------------------------------------------- plugins and hooks


def _normalise(dist_name: str) -> str:
    import re

    return re.sub(r"[-_.]+", "-", dist_name).lower()


def mlflow_wanted(conf_dir: Path) -> bool:
    """Whether kedro-mlflow's hooks load in this task.

    Inside a compiled job the compiler decides: it sets ``KEDRO_VERTEX_MLFLOW=1`` in every task when the job tracks
    one MLflow run, and leaves it out otherwise, so a project with an ``mlflow.yml`` but tracking switched off never
    opens a run per task. Run by hand (no ``--job-name``), the entrypoint follows the project's own
    ``conf/*/mlflow.y*ml``. ``KEDRO_VERTEX_MLFLOW=0/1`` overrides both.
    """
    forced = switch(os.environ.get("KEDRO_VERTEX_MLFLOW"))
    if forced is not None:
        return forced
    if os.environ.get("KEDRO_VERTEX_JOB_NAME"):
        return False
    return any(conf_dir.glob("*/mlflow.y*ml"))


def _disable_plugins(plugins: set[str]) -> None:
    """Keep the ``kedro.hooks`` entry points of ``plugins`` (distribution names) from being imported at all.

    ``settings.DISABLE_HOOKS_FOR_PLUGINS`` alone unregisters hooks only after importing them (kedro-mlflow imports
    mlflow, ≈2.5 s). Pluggy skips blocked entry point names, so the session's hook manager is created with them
    blocked; the settings value is extended too, for Kedro's own bookkeeping.
    """
    from importlib.metadata import entry_points

    from kedro.framework.project import settings

    wanted = {_normalise(name) for name in plugins}
    blocked: set[str] = set()
    for ep in entry_points(group="kedro.hooks"):
        dist = getattr(ep, "dist", None)
        if dist is not None and _normalise(dist.metadata["Name"] or "") in wanted:
            blocked.add(ep.name)

    current = tuple(settings.DISABLE_HOOKS_FOR_PLUGINS or ())
    extra = tuple(sorted(name for name in plugins if name not in current))
    if extra:
        settings.set("DISABLE_HOOKS_FOR_PLUGINS", current + extra)

    if not blocked:
        return
    from ..kedro_compat import block_hook_plugins

    block_hook_plugins(blocked)


def _skip_needless_imports() -> None:
    """Stop Kedro's ``MemoryDataset`` from importing pandas (≈0.4 s) just to look at a parameter's type.

    Kedro's copy-mode check imports pandas, numpy and ibis to test ``isinstance``; a value can
    only be a pandas DataFrame if pandas is already imported, so looking the modules up in ``sys.modules`` gives
    the same answer without the import. A task whose nodes use pandas imports it anyway; one that does not (a
    notification, a model deploy) starts that much sooner.
    """
    from ..kedro_compat import replace_copy_mode

    def infer_copy_mode(data: Any) -> Literal["deepcopy", "copy", "assign"]:
        pd, np, ibis = (sys.modules.get(name) for name in ("pandas", "numpy", "ibis"))
        if (pd is not None and isinstance(data, pd.DataFrame)) or (np is not None and isinstance(data, np.ndarray)):
            return "copy"
        if type(data).__name__ == "DataFrame" or (ibis is not None and isinstance(data, ibis.Table)):
            return "assign"
        return "deepcopy"

    replace_copy_mode(infer_copy_mode)


class _TaskHooks:
    """Per-task hooks: swap in persisted datasets, give versioned datasets the job's one version, remember which
    node is running (for error lines and the task report, which names the node *before* it runs so that even a hard
    exit leaves its name behind), and time each node from its first input load to its end (the ``makespan``
    grouping reads the times of the last local run)."""

    def __init__(self, root: str | None, run_id: str, report: str | None = None):
        self.full: Pipeline | Any = None  # the job's pipeline(s), or a function loading them
        self.root = root
        self.run_id = run_id
        self.report = report
        self.current_node: str | None = None
        self.failed_node: str | None = None
        self.persisted: dict[str, str] = {}
        self.durations: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self.running: list[str] = []  # nodes running in processes of their own, in the order they started
        self.tracebacks: dict[str, str] = {}  # node → its traceback, as its process printed it
        self.versions: dict[str, str] = {}  # versioned datasets of this task → the job's version
        self._outputs: dict[str, Any] = {}  # versioned outputs → their dataset objects
        self._job_version: str | None = None
        self.by_thread: dict[int, str] = {}
        #: output artifacts the executor input asks for (artifact name → the launcher's runtime artifact)
        self.artifacts: dict[str, dict[str, Any]] = {}
        self._artifact_datasets: dict[str, str] = {}  # dataset name → artifact name, for this task's outputs
        self._catalog: Any = None
        self._metric_data: dict[str, Any] = {}  # metrics datasets saved in this process → the value saved

    def enter(self, node_name: str) -> None:
        """``node_name`` starts (loading its inputs, then running): say so in the task report."""
        self.by_thread[threading.get_ident()] = node_name  # the node a thread runs (``threads`` mode)
        if node_name not in self._started:
            self.current_node = node_name
            self._started[node_name] = time.perf_counter()
            TaskReport(RUNNING, node_name).write(self.report)

    # -- nodes in processes of their own (kedro_vertex_runner.task.runners.ForkExecutor) -------------------

    def started(self, node_name: str) -> None:
        self.running.append(node_name)
        self.current_node = self.running[0]
        TaskReport(RUNNING, self.current_node).write(self.report)

    def finished(self, node_name: str, duration: float | None) -> None:
        self.running.remove(node_name)
        self.current_node = self.running[0] if self.running else None
        if duration is not None:
            self.durations[node_name] = duration

    def failed(self, node_name: str, traceback_text: str | None) -> None:
        self.running.remove(node_name)
        self.current_node = self.running[0] if self.running else None
        self.failed_node = self.failed_node or node_name
        if traceback_text:
            self.tracebacks[node_name] = traceback_text

    def in_child(self) -> None:
        """In a node's own process: the task's process keeps the report."""
        self.report = None

    @staticmethod
    def traceback_text(exc: BaseException) -> str:
        return "".join(_user_traceback(exc))

    def job_version(self) -> str:
        from .persistence import job_version

        if self._job_version is None:
            self._job_version = job_version(self.root, self.run_id)  # type: ignore[arg-type]
        return self._job_version

    def prepare_catalog(self, pipeline: Pipeline, catalog: Any) -> None:
        from .persistence import persist_undeclared, pin_versions

        self.persisted = persist_undeclared(catalog, pipeline, self.full, self.root, self.run_id)
        if self.artifacts:
            from .artifacts import artifact_name

            self._catalog = catalog
            for name in pipeline.all_outputs():
                if artifact_name(name) in self.artifacts:
                    self._artifact_datasets[name] = artifact_name(name)
        if self.root:
            self.versions = pin_versions(catalog, pipeline, self.job_version)
            produced = set(pipeline.all_outputs())
            self._outputs = {name: catalog.get(name) for name in self.versions if name in produced}

    def before_save(self, dataset_name: str, data: Any = None) -> None:
        key = self._artifact_datasets.get(dataset_name)
        if key is not None:
            from .artifacts import METRICS, schema_of

            if schema_of(self.artifacts[key]) == METRICS:
                self._metric_data[dataset_name] = data
        dataset = self._outputs.pop(dataset_name, None)  # once: a generator node saves one dataset many times
        if dataset is not None:  # an earlier attempt of this job saved this version: replace it, do not fail
            from .persistence import clear_version

            clear_version(dataset, self.versions[dataset_name])

    def register(self, hook_manager: Any) -> None:
        from kedro.framework.hooks import hook_impl

        hooks = self

        class _Impl:
            @hook_impl
            def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Pipeline, catalog: Any) -> None:
                hooks.prepare_catalog(pipeline, catalog)

            @hook_impl
            def before_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
                hooks.before_save(dataset_name, data)

            @hook_impl
            def before_dataset_loaded(self, dataset_name: str, node: Any) -> None:
                hooks.enter(node.name)

            @hook_impl
            def before_node_run(self, node: Any) -> None:
                hooks.enter(node.name)

            @hook_impl
            def after_node_run(self, node: Any) -> None:
                hooks.durations[node.name] = time.perf_counter() - hooks._started.get(node.name, 0.0)

            @hook_impl
            def on_node_error(self, error: Exception, node: Any) -> None:
                hooks.failed_node = node.name

        hook_manager.register(_Impl(), name="kedro-vertex-runner-task")

    def write_artifacts(self, output_file: str) -> None:
        """Write the executor output KFP's launcher reads, and a pointer file at each output artifact's local path.

        Each artifact keeps the URI the launcher assigned (its ``uri`` is left empty: a URI outside the pipeline
        root fails the task on Kubeflow Pipelines); its metadata names the dataset and where the catalog or the
        run's storage put its data (``kedro_dataset``, ``data_uri``), for metrics it holds their values. The
        pointer file (``{"kedro_dataset", "data_uri"}``, best effort) is what the launcher uploads to the
        artifact's URI. Metrics saved in another process (``processes`` task runner) are loaded back."""
        from .artifacts import (
            DATA_URI_KEY,
            DATASET_KEY,
            METRICS,
            dataset_uri,
            local_path,
            metric_values,
            schema_of,
            write_executor_output,
            write_pointer,
        )

        written: dict[str, dict[str, Any]] = {}
        failed: list[str] = []
        for dataset_name, key in sorted(self._artifact_datasets.items()):
            runtime = dict(self.artifacts[key])
            pointer: dict[str, Any] = {DATASET_KEY: dataset_name}
            uri = self.persisted.get(dataset_name)
            dataset = None
            if uri is None and self._catalog is not None:
                try:
                    dataset = self._catalog.get(dataset_name)
                except Exception:  # no dataset object: no location to name
                    dataset = None
                uri = dataset_uri(dataset, self.versions.get(dataset_name)) if dataset is not None else None
            if uri is not None:
                pointer[DATA_URI_KEY] = uri if "://" in uri else os.path.abspath(uri)
            if schema_of(runtime) == METRICS:
                data = self._metric_data.get(dataset_name)
                if dataset_name not in self._metric_data and dataset is not None:
                    try:
                        data = dataset.load()
                    except Exception:  # a metric that cannot be read back is shown without values
                        data = None
                metadata: dict[str, Any] = metric_values(dataset_name, data)
            else:
                metadata = dict(pointer)
            written[key] = {"name": runtime.get("name", key), "uri": "", "metadata": metadata}
            path = local_path(str(runtime.get("uri") or ""))
            if path is not None:
                try:
                    write_pointer(path, pointer)
                except (OSError, ValueError) as exc:
                    failed.append(f"{path}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}")
        if failed:
            more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
            print(
                f"Warning: cannot write the artifact pointer file {failed[0]}{more}; the data is stored and the "
                "executor output still names it",
                file=sys.stderr,
            )
        try:
            write_executor_output(output_file, written)
        except (OSError, ValueError) as exc:  # the data is stored: only the consoles' view of it is incomplete
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            print(
                f"Warning: cannot write the executor output to {output_file!r}: {reason}; the consoles show this "
                "task's artifacts without their data locations and values",
                file=sys.stderr,
            )


# --------------------------------------------------------------------------------------------- main


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    kind = getattr(exc, "type_name", None) or type(exc).__name__  # task_runners.NodeFailed keeps the node's type
    return f"{kind}: {text}" if text else kind


def _plugin_cause(exc: BaseException) -> PluginError | None:
    """A PluginError behind ``exc`` (OmegaConf wraps resolver errors in its own exception types)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, PluginError):
            return exc
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return None


def _load_pipelines(names: list[str]) -> Pipeline:
    from kedro.framework.project import pipelines
    from kedro.pipeline import Pipeline

    pipelines.set_requested(list(names))
    combined = Pipeline([])
    for name in names:
        try:
            combined += pipelines[name]
        except Exception as exc:  # KeyError, or ImportError from find_pipelines(raise_errors=True) for a bad name
            pipelines.set_requested(None)
            try:
                registered = sorted(pipelines.keys())
            except Exception:
                registered = None
            if registered is not None and name not in registered:
                known = ", ".join(registered) or "none"
                raise PluginError(f"unknown pipeline {name!r}: the project registers {known}") from None
            raise PluginError(f"cannot load pipeline {name!r}: {_one_line(exc)}") from exc
    # session.run asks for the same set again, so the registry is not loaded twice
    return combined


def _resolve_root(root: str | None, project_dir: Path) -> str | None:
    """A URL as given; a local directory made absolute against the project directory."""
    if not root:
        return None
    if "://" in root:
        return root.rstrip("/")
    path = Path(root).expanduser()
    return str(path if path.is_absolute() else project_dir / path)


def run_task(task: TaskContract) -> int:
    """Run ``task``; returns the exit status (node failures are printed here). Keeps the task report
    (``$KEDRO_VERTEX_TASK_REPORT``) up to date: started, the node running, then how the task ended.

    Raises:
        PluginError: bad arguments, an unknown pipeline or node, a project that cannot be loaded.
    """
    hooks = _TaskHooks(None, "", report_path())
    TaskReport(STARTED).write(hooks.report)
    try:
        code = _run(task, hooks) if task.nodes or not task.webhook else 0
    except PluginError as exc:
        TaskReport(FAILED, hooks.failed_node or hooks.current_node, str(exc)).write(hooks.report)
        failure = _notify(task)
        if failure is not None:
            report_error(failure)
        raise
    failure = _notify(task)
    if failure is not None:
        if code != 0:  # the task failed for its nodes already: the webhook's problem is one more line
            report_error(failure)
            return code
        TaskReport(FAILED, None, str(failure)).write(hooks.report)
        raise failure
    if code == 0:
        TaskReport(SUCCEEDED).write(hooks.report)
    return code


def _notify(task: TaskContract) -> PluginError | None:
    """An exit task's webhook: POST the job's final status (never raises; the problem is returned)."""
    if not task.webhook:
        return None
    from .secret_manager import final_status, post_webhook

    try:
        post_webhook(task.webhook, final_status(task.final_status) or {})
    except PluginError as exc:
        return exc
    return None


def _refuse_placeholders(task: TaskContract) -> None:
    """A run id or job name that is still ``{{$.…}}``: the backend substituted nothing, so every job of this
    pipeline would read and write the same folder."""
    for flag, value in (("--run-id", task.run_id), ("--job-name", task.job_name)):
        if value and PLACEHOLDER_START in value:
            raise PluginError(
                f"{flag}={value}: the placeholder was not substituted by the backend running this task, and every "
                f"job would share one folder; run the compiled pipeline on Vertex AI or the local backend, or pass "
                f"{flag}=VALUE"
            )
    if task.run_id is not None:
        from ..values import check_run_id

        check_run_id(task.run_id)  # it names the run's folder: refused before the project is even loaded


def _run(task: TaskContract, hooks: _TaskHooks) -> int:
    """Run the task's nodes; returns the exit status. What needs no project is checked first; then the run's context
    is set up (secrets, storage, code, resolvers) and the nodes run within ``--timeout``; a node's failure or
    ``sys.exit`` and the timeout are reported here and become the status."""
    from . import resolvers

    mode = _task_runner_mode(task)
    if task.secrets:
        from .secret_manager import load_secrets

        load_secrets(task.secrets)  # one line naming the variable and the reference if one cannot be read
    nodes = list(task.nodes)
    pipeline_names = list(task.pipelines) or ["__default__"]
    project_dir = _project_dir(task)
    params = _session_params(task)
    install_host_aliases(task.host_aliases)
    run_id = task.run_id or resolvers.current_run_id()
    root = _run_root(task.root, project_dir, run_id)
    project_dir = _enter_project(task, project_dir, run_id)
    hooks.root, hooks.run_id = root, run_id
    executor_output = _output_artifacts(task, hooks)
    # the timeout covers the whole task, start-up included, as a Vertex AI task timeout would
    watchdog = None
    if task.timeout:
        watchdog = _Watchdog(task.timeout, lambda: hooks.current_node or nodes[0], hooks.report)
    try:
        if watchdog:
            watchdog.start()
        _run_nodes(task, hooks, mode, project_dir, pipeline_names, nodes, params, root, run_id, executor_output)
    except TaskTimeout as exc:
        return _timed_out(exc, watchdog, hooks)
    except PluginError as exc:
        _raise_missing_module(exc, task.code_uri)
        raise
    except SystemExit as exc:  # a node called sys.exit: that node failed, the task's later nodes did not run
        node = _exiting_node(exc) or hooks.failed_node or hooks.current_node
        if node is None:  # not from a node (no node had started): the exit it asks for
            raise
        return _node_exited(exc, node, nodes, hooks)
    except Exception as exc:
        cause = _plugin_cause(exc)
        if cause is not None:
            raise cause from None
        return _node_failed(exc, nodes, hooks, task.code_uri)
    finally:
        if watchdog:
            watchdog.stop()
    return 0


def _task_runner_mode(task: TaskContract) -> str:
    """The task runner (``--task-runner``, sequential by default), once the arguments that need no project are
    checked: at least one node, a known task runner, a run id and job name the backend substituted."""
    if not task.nodes:
        raise PluginError("no --node given: name at least one node to run")
    from .runners import MODES, SEQUENTIAL

    mode = task.task_runner or SEQUENTIAL
    if mode not in MODES:
        raise PluginError(f"--task-runner={mode}: expected one of {', '.join(MODES)}", exit_code=2)
    _refuse_placeholders(task)
    return mode


def _project_dir(task: TaskContract) -> Path:
    """The project the task runs in (``--project-dir``, else the working directory), which must be a Kedro project
    unless the code is uploaded (``--code-uri``)."""
    project_dir = Path(task.project_dir or os.getcwd()).expanduser().resolve()
    if not task.code_uri and not (project_dir / "pyproject.toml").is_file():
        raise PluginError(f"{project_dir} is not a Kedro project (no pyproject.toml); pass --project-dir")
    return project_dir


def _session_params(task: TaskContract) -> dict[str, Any]:
    """The session's runtime parameters: the task's ``--params``, and for the exit handler the job's final status
    (None where the backend gives none)."""
    params = task.runtime_params()
    if task.exit_handler:
        from .secret_manager import final_status

        params[FINAL_STATUS_PARAM] = final_status(task.final_status)
    return params


def _run_root(root_arg: str | None, project_dir: Path, run_id: str) -> str | None:
    """The run's storage root (``--root``), checked before any node runs: its storage package installed, the run id
    usable as a folder name. Its run folder is kept for the clean-up after the launcher died."""
    root = _resolve_root(root_arg, project_dir)
    if root is not None:
        from ..storage import require
        from .persistence import run_dir

        require(root)  # s3:// without s3fs: one line before any node runs

        _RUN_FOLDER[:] = [run_dir(root, run_id)]  # validates the run id as a path segment before any node runs
    return root


def _enter_project(task: TaskContract, project_dir: Path, run_id: str) -> Path:
    """Make the project the working directory (catalog paths are relative to it), after the uploaded code and
    ``conf/`` (``--code-uri``) replaced the working directory's, with the resolvers knowing the job's ids. Returns
    the project directory."""
    from . import resolvers

    if task.code_uri:
        from .code_unpack import unpack

        project_dir = unpack(task.code_uri, project_dir)  # the uploaded code and conf/ replace the working directory's
    resolvers.set_run_context(run_id, task.job_name)
    resolvers.register_resolvers()
    os.chdir(project_dir)  # catalog paths are relative to the project directory
    return project_dir


def _output_artifacts(task: TaskContract, hooks: _TaskHooks) -> tuple[str, dict[str, dict[str, Any]]] | None:
    """The task's output artifacts from KFP's executor input, given to ``hooks``: ``(output file, artifacts)``, or
    None without an executor input."""
    from .artifacts import output_artifacts

    executor_output = output_artifacts(task.executor_input)  # KFP's executor input: the task's output artifacts
    if executor_output is not None:
        hooks.artifacts = executor_output[1]
    return executor_output


def _run_nodes(
    task: TaskContract,
    hooks: _TaskHooks,
    mode: str,
    project_dir: Path,
    pipeline_names: list[str],
    nodes: list[str],
    params: dict[str, Any],
    root: str | None,
    run_id: str,
    executor_output: tuple[str, dict[str, dict[str, Any]]] | None,
) -> None:
    """Load the project and run ``nodes`` in one Kedro session, inside the job's MLflow run when it has one; then
    write the task's output artifacts and, for a task of the job (not its exit handler), its node timings."""
    sources, hooks.full = _prepare_project(project_dir, pipeline_names, nodes, list(task.node_pipelines))
    if task.exit_handler:
        import logging

        logging.getLogger("kedro_vertex_runner.entrypoint").info("Running as the job's exit handler")

    from kedro.framework.session import KedroSession

    from ..kedro_compat import hook_manager
    from . import resolvers
    from .mlflow_run import task_run
    from .runners import task_runner

    session: KedroSession
    with KedroSession.create(project_path=project_dir, env=task.env, runtime_params=params) as session:  # type: ignore[assignment]  # create() is typed as the abstract session
        hooks.register(hook_manager(session))
        # joins the job's shared MLflow run when the job was compiled with MLflow (KEDRO_VERTEX_MLFLOW=1)
        with task_run(
            session,
            job_id=run_id,
            job_name=resolvers.current_job_name(),
            node_names=nodes,
            pipeline_names=pipeline_names,
            exit_handler=task.exit_handler,
        ):
            runner = task_runner(mode, hooks)
            with _ExitGuard(hooks, nodes):
                session.run(pipeline_names=sources, node_names=nodes, runner=runner)
            if executor_output is not None:
                hooks.write_artifacts(executor_output[0])
    if not task.exit_handler:
        from .timings import record_task

        record_task(root, run_id, pipeline_names, hooks.durations, task.job_name)


def _timed_out(exc: TaskTimeout, watchdog: _Watchdog | None, hooks: _TaskHooks) -> int:
    """``--timeout`` expired: the task report names the node it stopped, the error is one line, the status 124."""
    _flush()
    assert watchdog is not None
    TaskReport(FAILED, watchdog.node(), f"timed out after {watchdog.seconds:g} s").write(hooks.report)
    report_error(exc)
    return TIMEOUT_EXIT_CODE


def _node_exited(exc: SystemExit, node: str, nodes: list[str], hooks: _TaskHooks) -> int:
    """``node`` called ``sys.exit``: it failed (its traceback, then one line), the task's later nodes are named as
    not run; status 1."""
    from .runners import NodeExited

    failure = NodeExited(exc.code)
    TaskReport(FAILED, node, _one_line(failure)).write(hooks.report)
    _report_not_run(nodes, hooks, node)
    _report_failure(failure, node, "".join(_user_traceback(exc)))
    return 1


def _node_failed(exc: Exception, nodes: list[str], hooks: _TaskHooks, code_uri: str | None) -> int:
    """A node (or the project around it) raised ``exc``: the task report names the node and a dataset missing from
    the run's storage, a module the uploaded code lacks is one line, else the task's later nodes are named as not
    run and the failure reported; status 1."""
    node = hooks.failed_node or hooks.current_node
    TaskReport(FAILED, node, _one_line(exc), _missing_data(exc)).write(hooks.report)
    _raise_missing_module(exc, code_uri, node)
    _report_not_run(nodes, hooks, node)
    _report_failure(exc, node, hooks.tracebacks.get(node or ""))
    return 1


def _exiting_node(exc: BaseException) -> str | None:
    """The node whose code raised ``exc``: the innermost frame of ``kedro.pipeline.Node`` the traceback passes."""
    node_type = getattr(sys.modules.get("kedro.pipeline.node"), "Node", None)
    found = None
    tb = exc.__traceback__
    while tb is not None and node_type is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, node_type):
            found = owner.name
        tb = tb.tb_next
    return found


def _report_not_run(nodes: list[str], hooks: _TaskHooks, failed: str | None) -> None:
    """Name the task's nodes that never completed because ``failed`` ended the task (none for a one-node task)."""
    left = [name for name in nodes if name != failed and name not in hooks.durations]
    if left and failed is not None:
        _flush()
        print(f"Not run, because node {failed!r} failed: {', '.join(left)}", file=sys.stderr)


class _ExitGuard:
    """While the task's nodes run, ``os._exit`` in the task's own process (a node calling it, in-process) fails
    the node with a line naming it instead of ending the task as if it had succeeded. A process forked from the
    task (a node's own process, a library's worker) exits as it asks."""

    def __init__(self, hooks: _TaskHooks, nodes: list[str]):
        self.hooks, self.nodes = hooks, nodes
        self.pid = os.getpid()
        self.real = os._exit

    def __enter__(self) -> _ExitGuard:
        def guarded(status: int) -> Any:
            if os.getpid() != self.pid:
                self.real(status)
            self._exited(status)

        guarded.__wrapped__ = self.real  # type: ignore[attr-defined]
        os._exit = guarded
        return self

    def __exit__(self, *exc_info: Any) -> None:
        os._exit = self.real

    def _exited(self, status: int) -> None:
        hooks = self.hooks
        node = hooks.by_thread.get(threading.get_ident()) or hooks.current_node
        reason = f"the node called os._exit({status!r}); a node must return its outputs or raise"
        try:
            TaskReport(FAILED, node, reason).write(hooks.report)
            _report_not_run(self.nodes, hooks, node)
            report_error(f"node {node!r} failed: {reason}" if node else reason)
            sys.stderr.flush()
        finally:
            from .processes import finish

            finish(1)  # as the task would have ended: exit handlers, then whatever it started is killed


def _missing_data(exc: BaseException | None) -> str | None:
    """The dataset behind ``exc`` that had to come from the run's storage and was never stored there, if any."""
    from .persistence import MissingStoredData

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, MissingStoredData):
            return exc.dataset_name
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _raise_missing_module(exc: BaseException, code_uri: str | None, node: str | None = None) -> None:
    """With code upload, a module the uploaded code imports but the image lacks is one line naming it."""
    if not code_uri:
        return
    from .code_unpack import missing_module, missing_module_message

    module = missing_module(exc)
    if module:
        message = missing_module_message(module)
        raise PluginError(f"node {node!r} failed: {message}" if node else message) from None


#: set to 1 to keep plain task logs on a terminal too, 0 to keep Kedro's rich logging when output is not a terminal
PLAIN_LOGS_ENV = "KEDRO_VERTEX_PLAIN_LOGS"


def _plain_logging(project_dir: Path, reconfigure: bool = False) -> bool:
    """Use Kedro's plain logging configuration instead of its rich one when output goes to a file or a pipe.

    Kedro's default logging is rich: boxed, column-wrapped tracebacks and right-aligned source locations that
    read well in a terminal and badly in ``<root>/<run id>/logs/<task>.log`` or Cloud Logging, and whose import
    costs start-up time. Only Kedro's *default* is replaced: ``KEDRO_LOGGING_CONFIG`` and a project's own
    ``conf/logging.yml`` are left alone. Must run before ``kedro.framework.project`` is imported (it configures
    logging on import). ``KEDRO_VERTEX_PLAIN_LOGS=1`` forces plain logs on a terminal, ``=0`` keeps rich ones.

    ``reconfigure``: the caller configures Kedro's logging again afterwards (a task forked from the local
    backend's warm-start process, which has imported Kedro already).

    Returns whether plain logging was chosen.
    """
    wanted = switch(os.environ.get(PLAIN_LOGS_ENV))
    if wanted is False or os.environ.get("KEDRO_LOGGING_CONFIG"):
        return False
    if wanted is not True and sys.stdout.isatty():
        return False
    if any((project_dir / "conf").glob("logging.y*ml")):
        return False
    if "kedro.framework.project" in sys.modules and not reconfigure:  # pragma: no cover - imported by a caller
        return False
    import importlib.util

    spec = importlib.util.find_spec("kedro")
    for location in (spec.submodule_search_locations or []) if spec else []:
        plain = Path(location) / "framework" / "project" / "default_logging.yml"
        if plain.is_file():
            os.environ["KEDRO_LOGGING_CONFIG"] = str(plain)
            return True
    return False  # pragma: no cover - a Kedro without its plain default


def _prepare_project(
    project_dir: Path, pipeline_names: list[str], nodes: list[str], node_pipelines: list[str] | None = None
) -> tuple[list[str], Any]:
    """Bootstrap the project and keep unwanted plugins from loading.

    Returns ``(sources, full)``: the pipeline names to take ``nodes`` from (``node_pipelines`` when they hold every
    node, else ``pipeline_names``), and the union of ``pipeline_names`` — or, when ``sources`` is smaller, a
    function loading it on demand (see :func:`kedro_vertex_runner.task.persistence.boundary_datasets`).
    """
    _plain_logging(project_dir)
    from kedro.framework.startup import bootstrap_project

    try:
        bootstrap_project(project_dir)
    except Exception as exc:  # missing [tool.kedro], bad settings.py, …
        raise PluginError(f"cannot load the Kedro project at {project_dir}: {_one_line(exc)}") from exc

    from kedro.framework.project import settings

    # this plugin's own hooks are for the launching process; what the project disables is never imported at all
    disabled = {"kedro-vertex-runner"} | {_normalise(name) for name in settings.DISABLE_HOOKS_FOR_PLUGINS}
    if not mlflow_wanted(project_dir / str(settings.CONF_SOURCE)):
        disabled.add("kedro-mlflow")
    if is_on(os.environ.get("DO_NOT_TRACK")) or is_on(os.environ.get("KEDRO_DISABLE_TELEMETRY")):
        disabled.add("kedro-telemetry")
    _disable_plugins(disabled)
    _skip_needless_imports()

    if node_pipelines and sorted(set(node_pipelines)) != sorted(set(pipeline_names)):
        try:
            found = {node.name for node in _load_pipelines(node_pipelines).nodes}
        except PluginError:
            found = set()
        if set(nodes) <= found:
            return list(node_pipelines), lambda: _load_pipelines(pipeline_names)
        import logging

        logging.getLogger("kedro_vertex_runner.entrypoint").warning(
            "--node-pipeline %s does not hold every node of this task: loading %s",
            ", ".join(node_pipelines),
            ", ".join(pipeline_names),
        )
    full = _load_pipelines(pipeline_names)
    known_nodes = {node.name for node in full.nodes}
    for name in nodes:
        if name not in known_nodes:
            raise PluginError(f"unknown node {name!r}: not in pipeline(s) {', '.join(pipeline_names)}")
    return list(pipeline_names), full


def _report_failure(exc: Exception, node: str | None, traceback_text: str | None = None) -> None:
    """Traceback (for a node's own exception), then the one line a user reads first: the last line on stderr.

    Errors outside any node (catalog, config) and dataset errors are user errors: one line, no traceback, unless
    ``KEDRO_VERTEX_DEBUG`` is set.
    """
    import traceback

    from kedro.io import DatasetError

    _flush()
    debug = bool(os.environ.get("KEDRO_VERTEX_DEBUG"))
    user_error = node is None or isinstance(exc, DatasetError)
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    elif not user_error:
        sys.stderr.write(traceback_text or "".join(_user_traceback(exc)))
    report_error(_one_line(exc) if node is None else f"node {node!r} failed: {_one_line(exc)}")


def _user_traceback(exc: BaseException) -> list[str]:
    """The traceback of ``exc`` without the frames of Kedro and this plugin, so the user's code is what shows.

    A failing node's traceback is mostly Kedro's runner machinery (a dozen frames above the one line of the node
    that raised); the local backend shows the last lines of a failed task's log, which should be the user's
    frames. Falls back to the whole traceback when no frame is left. ``KEDRO_VERTEX_DEBUG=1`` prints it all.
    """
    import traceback

    hidden = tuple(
        str(Path(str(module.__file__)).parent) + os.sep
        for module in (sys.modules.get("kedro"), sys.modules.get(__package__ or "kedro_vertex_runner"))
        if module is not None and getattr(module, "__file__", None)
    )

    def trim(te: traceback.TracebackException, seen: set[int]) -> None:
        if id(te) in seen:
            return
        seen.add(id(te))
        kept = [frame for frame in te.stack if not frame.filename.startswith(hidden)]
        if kept and len(kept) < len(te.stack):
            te.stack = traceback.StackSummary.from_list(kept)
        for chained in (te.__cause__, te.__context__):
            if chained is not None:
                trim(chained, seen)

    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    full = len(te.stack)
    trim(te, set())
    lines = list(te.format())
    if len(te.stack) < full and lines and lines[0].startswith("Traceback"):
        lines[0] = "Traceback (most recent call last; frames of Kedro left out, KEDRO_VERTEX_DEBUG=1 shows them):\n"
    return lines


def _flush() -> None:
    import logging

    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # pragma: no cover - a broken handler must not hide the error line
            pass
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the command line) as a :class:`TaskContract` and run it; returns the exit status."""
    try:
        try:
            task = TaskContract.from_args(sys.argv[1:] if argv is None else argv)
        except PluginError as exc:
            TaskReport(FAILED, None, str(exc)).write(report_path())
            raise
        code = run_task(task)
    except PluginError as exc:
        _flush()
        report_error(exc)
        code = exc.exit_code
    sys.stderr.flush()
    return code


#: set by the local backend for a task it starts as a fresh process: the launcher's pid (see _watch_launcher)
LAUNCHER_PID_ENV = "KEDRO_VERTEX_LAUNCHER_PID"


#: the run folder of this task (set once the run id is known), for the clean-up after the launcher died
_RUN_FOLDER: list[str] = []


def _watch_launcher() -> None:
    """Stop this task and everything it started when the local backend that started it dies.

    A launcher killed with SIGKILL cannot stop its tasks; the task notices that it has been re-parented, kills its
    descendants (the task is their subreaper, so even a child that started a session of its own and was orphaned
    stays one) and its own process group, and leaves a small process behind that removes the temporary files of
    the writes this kill interrupted once the task is gone. (Tasks forked by the warm-start process are watched by
    that process instead.)
    """
    try:
        launcher = int(os.environ.pop(LAUNCHER_PID_ENV, "") or 0)
    except ValueError:
        return
    if launcher <= 0 or not hasattr(os, "killpg") or os.getppid() != launcher:
        return
    from .processes import become_subreaper, descendants, kill

    become_subreaper()

    def watch() -> None:
        import time

        while os.getppid() == launcher:
            time.sleep(0.5)
        for pid in descendants(os.getpid()):
            kill(pid)
        if _RUN_FOLDER:
            _sweep_when_gone(_RUN_FOLDER[0])
        os.killpg(os.getpgid(0), signal.SIGKILL)

    threading.Thread(target=watch, name="kedro-vertex-launcher-watch", daemon=True).start()


def _sweep_when_gone(folder: str) -> None:
    """Fork a process, in a session of its own, that removes the run folder's temporary files once this task has
    ended (a write in this process is cut short by the kill that follows)."""
    from .persistence import sweep_temp_files  # imported before fork: no import machinery in the child

    task = os.getpid()
    ready_r, ready_w = os.pipe()
    if os.fork() == 0:
        try:
            os.setsid()  # out of the process group about to be killed
            os.write(ready_w, b"1")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    state = Path(f"/proc/{task}/stat").read_text().rsplit(")", 1)[1].split()[0]
                except OSError:
                    break
                if state == "Z":
                    break
                time.sleep(0.05)
            sweep_temp_files(folder)
        finally:
            os._exit(0)
    os.read(ready_r, 1)


def _main_and_exit() -> None:
    """``python -m kedro_vertex_runner.entrypoint``: run the task, then end as a warm-started task does
    (:func:`~kedro_vertex_runner.task.processes.finish`): exit handlers run, no thread or worker is waited for."""
    code = 1
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        from .processes import finish

        finish(code)


if __name__ == "__main__":
    _watch_launcher()
    _main_and_exit()
