"""``VertexRunner``: compile the pipeline Kedro hands over and run it as a Vertex AI job.

``kedro run --runner=VertexRunner`` builds the runner before the session exists, then calls :meth:`run` with the
pipeline already filtered by ``--pipeline/--tags/--nodes/--from-nodes/--to-nodes``. The runner does not execute
nodes itself: it compiles a PipelineSpec and hands it to a backend — ``local`` (every task in its own process on
this machine) or ``vertex`` (Vertex AI Pipelines). Context and ``--params``/``--env`` reach it through the plugin's
hooks. User-facing problems are printed as one line and end the command with a non-zero exit code.

Runner params (``--runner-params k=v,…``): ``backend=local|vertex``, ``wait=true|false`` (vertex),
``max_workers=N`` (local), ``cancel_on_interrupt=true`` (vertex), ``run_id=ID`` (local).

``run_id`` resumes a failed local run: tasks read and write the undeclared datasets under ``<root>/<ID>/``, so
``kedro run --runner=VertexRunner --from-nodes X --runner-params run_id=<the failed run's id>`` finds what the
earlier run stored (a free input of a filtered pipeline is read from storage, never rejected as Kedro's own
runners would). The id is set before the session loads any config, so ``${vertex:run_id}`` in the launcher's
catalog and in every task agree. On Vertex AI the run id is the job's uuid, so there it cannot be chosen.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kedro.runner import AbstractRunner

from .errors import PluginError

if TYPE_CHECKING:
    from kedro.io import CatalogProtocol
    from kedro.pipeline import Pipeline
    from pluggy import PluginManager

_BACKENDS = ("local", "vertex")


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes", "on"}:
        return True
    if text in {"false", "0", "no", "off"}:
        return False
    raise PluginError(f"--runner-params {name}={value!r}: expected true or false")


class VertexRunner(AbstractRunner):
    """Compile the filtered pipeline to a Vertex AI PipelineSpec and run it on the configured backend."""

    def __init__(
        self,
        is_async: bool = False,
        backend: str | None = None,
        wait: Any = None,
        max_workers: Any = None,
        cancel_on_interrupt: Any = False,
        run_id: Any = None,
        **unknown: Any,
    ):
        """Args:
        is_async: accepted for Kedro compatibility; tasks always run in their own processes.
        backend: ``local`` or ``vertex``; overrides ``run_config.backend``.
        wait: (vertex) follow the job until it ends; default: true.
        max_workers: (local) how many tasks run at once; default: ``run_config.local.max_workers`` or CPUs.
        cancel_on_interrupt: (vertex) cancel the job on Ctrl-C without asking.
        run_id: (local) the run id, e.g. an earlier run's to reuse its stored intermediates; default: a new one.
        """
        super().__init__(is_async=is_async)
        try:
            if unknown:
                known = "backend, wait, max_workers, cancel_on_interrupt, run_id"
                raise PluginError(f"--runner-params: unknown key {sorted(unknown)[0]!r}; VertexRunner takes {known}")
            if backend is not None and backend not in _BACKENDS:
                raise PluginError(f"--runner-params backend={backend!r}: expected 'local' or 'vertex'")
            self.backend = backend
            self.wait = None if wait is None else _as_bool("wait", wait)
            self.cancel_on_interrupt = _as_bool("cancel_on_interrupt", cancel_on_interrupt)
            if max_workers is not None:
                try:
                    max_workers = int(max_workers)
                    if max_workers < 1:
                        raise ValueError
                except (TypeError, ValueError):
                    raise PluginError(
                        f"--runner-params max_workers={max_workers!r}: expected a whole number ≥ 1"
                    ) from None
            self.max_workers = max_workers
            self.run_id = None if run_id is None else _run_id(run_id)
        except PluginError as exc:
            _exit(exc)
        if self.run_id is not None:
            from .resolvers import RUN_ID_ENV

            # Kedro builds the runner before the session: config loaded from here on resolves ${vertex:run_id} to it
            os.environ[RUN_ID_ENV] = self.run_id

    def run(
        self,
        pipeline: Pipeline,
        catalog: CatalogProtocol,
        hook_manager: PluginManager | None = None,
        run_id: str | None = None,
        only_missing_outputs: bool = False,
    ) -> dict[str, Any]:
        """Compile ``pipeline`` and run it on the backend. Returns ``{}``: outputs live in storage, not memory.

        Unlike Kedro's runners this does not check that free inputs are in the catalog: a task reads an
        undeclared free input from the job's storage root.
        """
        try:
            self._run_job(pipeline)
        except PluginError as exc:
            _exit(exc)
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
        from .project import build_request, check_mlflow_backend, close_mlflow_run

        context = state.context
        if context is None:
            raise PluginError(
                "VertexRunner found no Kedro context: run it through `kedro run --runner=VertexRunner` in a "
                "project where kedro-vertex-runner is installed (or add VertexHooks() to HOOKS in settings.py)"
            )
        run_params = state.run_params or {}
        config = load_config(context.config_loader)
        backend = self.backend or config.run_config.backend
        if self.run_id is not None and backend != "local":
            raise PluginError(
                f"--runner-params run_id={self.run_id}: only the local backend takes a run id (on Vertex AI it is "
                f"the job's uuid); add backend=local"
            )
        request = build_request(
            context,
            pipeline,
            pipeline_names=run_params.get("pipeline_names"),
            runtime_params=run_params.get("runtime_params"),
            config=config,
        )
        check_mlflow_backend(request, context, backend)
        spec = compile_spec(request)
        if backend == "local":
            from .backends.local import LocalRunFailed, run_spec
            from .resolvers import current_run_id

            run_id = current_run_id()
            try:
                run_spec(
                    spec,
                    project_dir=Path(context.project_path),
                    root=config.run_config.root,
                    run_id=run_id,
                    max_workers=self.max_workers or config.run_config.local.max_workers,
                )
            except LocalRunFailed as exc:
                close_mlflow_run(request.mlflow, context, succeeded=False, job_id=run_id)
                _print_resume_hint(exc, run_params)
                raise
            except BaseException:
                close_mlflow_run(request.mlflow, context, succeeded=False, job_id=run_id)
                raise
            close_mlflow_run(request.mlflow, context, succeeded=True, job_id=run_id)
        else:
            from .project import submit_to_vertex

            wait = True if self.wait is None else self.wait
            submit_to_vertex(spec, request, context, wait=wait, cancel_on_interrupt=self.cancel_on_interrupt)


def _run_id(value: Any) -> str:
    text = str(value).strip()
    if not text or text in {".", ".."} or not all(ch.isalnum() or ch in "-_." for ch in text):
        raise PluginError(
            f"--runner-params run_id={value!r}: expected an id such as local-20240101-120000-abc123 (letters, "
            f"digits, '-', '_', '.')"
        )
    return text


def _print_resume_hint(failure: Any, run_params: dict[str, Any]) -> None:
    """After a failed local run: the command that re-runs from the failed node(s) with this run's stored data."""
    nodes = [task.failed_node for task in failure.result.tasks.values() if task.state == "FAILED" and task.failed_node]
    if not nodes:
        return
    import shlex

    parts = ["kedro run --runner=VertexRunner"]
    for name in run_params.get("pipeline_names") or ():
        parts.append(f"--pipelines {shlex.quote(name)}")
    if run_params.get("env"):
        parts.append(f"--env {shlex.quote(str(run_params['env']))}")
    if run_params.get("tags"):
        parts.append(f"--tags {shlex.quote(','.join(run_params['tags']))}")
    parts.append(f"--from-nodes {shlex.quote(','.join(nodes))}")
    parts.append(f"--runner-params run_id={failure.result.run_id}")
    same = " (with the same --params)" if run_params.get("runtime_params") else ""
    print(f"To resume from the failed node(s) with this run's stored data{same}: {' '.join(parts)}", flush=True)


def _exit(exc: PluginError) -> None:
    print(f"Error: {exc}", file=sys.stderr)
    raise SystemExit(exc.exit_code)
