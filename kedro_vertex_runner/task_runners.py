"""How one task runs its nodes: one after another, or the nodes that do not depend on each other at the same time.

The grouping fuses short parallel branches into one task (a Vertex AI task costs minutes to start), so a task can
hold nodes that plain ``kedro run`` with a parallel runner would overlap. ``run_config.task_runner`` chooses, per
task, how the entrypoint runs them:

* ``processes`` (default): every node of the task runs in its own process, forked from the task's process when its
  inputs are ready. A node sees the task's state as it was before any node ran: what one node does to module-level
  variables, ``os.environ``, matplotlib's pyplot state or random seeds reaches no other node (plain ``kedro run``
  lets a node see what the nodes before it left behind; nothing overlaps). Outputs held in memory between the
  task's nodes are pickled back to the task's process; inputs reach a node through the fork, without a copy.
  Kedro's hooks (kedro-mlflow's included) run in the node's process, inside the job's one MLflow run.
* ``threads``: Kedro's ``ThreadRunner``: nodes share one interpreter, so module-level variables, environment
  variables and matplotlib state are shared *while they run* (use it for I/O-bound nodes known not to touch
  global state); a timed-out task ends up to 15 s after its timeout (a thread cannot be interrupted).
* ``sequential``: Kedro's ``SequentialRunner``, as before.

A task whose nodes form one chain (nothing could overlap) always runs sequentially, in-process, at no cost; so does
a task on a platform without ``fork``. At most ``max(2, os.cpu_count())`` nodes run at once. Kedro's own
``ParallelRunner`` is not used: its worker processes are reused between nodes (state leaks from one node to the
next depending on which worker picks which node), and it runs neither this plugin's task hooks (the task report
naming the running node, node timings) nor the session's hooks.

A node tagged ``task_runner.<mode>`` sets the mode of its task (``task_runner.sequential`` on a node that relies on
what the nodes before it leave behind, or that is not fork-safe); a task takes the most conservative mode of its
nodes: ``sequential`` over ``processes`` over ``threads``. Both the setting and the tags are in the compiled spec
(``--task-runner``), so a task runs the same way on every backend.

Imported by the task entrypoint: stdlib only at import time.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future
from typing import Any

SEQUENTIAL, THREADS, PROCESSES = "sequential", "threads", "processes"
MODES = (SEQUENTIAL, THREADS, PROCESSES)
DEFAULT_MODE = PROCESSES
TAG_PREFIX = "task_runner."
#: precedence when a task's nodes ask for different modes: the most conservative wins
_PRECEDENCE = {SEQUENTIAL: 0, PROCESSES: 1, THREADS: 2}


def mode_for(setting: str | None, nodes: Iterable[Any]) -> str:
    """The mode of a task holding ``nodes`` (Kedro nodes) under ``run_config.task_runner`` (None: the default):
    a node's ``task_runner.<mode>`` tags override the setting for it; across nodes the most conservative wins.
    A ``task_runner.<x>`` tag naming no mode is one warning line naming the node (each node is in one task, so
    compiling warns once per node)."""
    default = setting or DEFAULT_MODE
    chosen = THREADS
    for node in nodes:
        tagged = [tag[len(TAG_PREFIX) :] for tag in node.tags if tag.startswith(TAG_PREFIX)]
        for unknown in sorted(mode for mode in tagged if mode not in _PRECEDENCE):
            logging.getLogger(__name__).warning(
                "Warning: node %a: tag %a names no task runner mode, so it is ignored: use %s",
                node.name,
                TAG_PREFIX + unknown,
                ", ".join(TAG_PREFIX + mode for mode in MODES),
            )
        modes = [mode for mode in tagged if mode in _PRECEDENCE] or [default]
        chosen = min(chosen, *modes, key=_PRECEDENCE.__getitem__)
    return chosen


#: a task runs at least this many nodes at once (more on a machine with more CPUs); the grouping's model assumes it
MIN_WORKERS = 2


def workers() -> int:
    """How many nodes of a task run at once."""
    return max(MIN_WORKERS, os.cpu_count() or 1)


def is_chain(pipeline: Any) -> bool:
    """Whether no two nodes of ``pipeline`` could run at the same time (each topological layer holds one node)."""
    return all(len(layer) == 1 for layer in pipeline.grouped_nodes)


def task_runner(mode: str, tracker: Any) -> Any:
    """A Kedro runner that, given the task's pipeline, runs it with :func:`make_runner`'s choice for ``mode``."""
    from kedro.runner import AbstractRunner

    class TaskRunner(AbstractRunner):
        def run(self, pipeline: Any, catalog: Any, hook_manager: Any = None, run_id: str | None = None,
                only_missing_outputs: bool = False) -> dict[str, Any]:  # fmt: skip
            runner = make_runner(mode, pipeline, tracker)
            return runner.run(pipeline, catalog, hook_manager, run_id, only_missing_outputs)

        def _get_executor(self, max_workers: int) -> Executor | None:  # pragma: no cover - run() delegates
            return None

        def _run(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - run() delegates
            raise NotImplementedError

    return TaskRunner()


def make_runner(mode: str, pipeline: Any, tracker: Any) -> Any:
    """The Kedro runner for a task running ``pipeline`` in ``mode``; ``tracker`` is told which node starts and ends
    in which process (see :class:`ForkExecutor`)."""
    from kedro.runner import SequentialRunner, ThreadRunner

    if mode == SEQUENTIAL or len(pipeline.nodes) < 2 or is_chain(pipeline):
        return _without_resume_suggestion(SequentialRunner)()
    if mode == THREADS:
        return _without_resume_suggestion(ThreadRunner)(max_workers=workers())
    if not hasattr(os, "fork") or sys.platform == "darwin":  # macOS: fork is unsafe with its system libraries
        return _without_resume_suggestion(SequentialRunner)()
    return _fork_runner_class()(tracker)


def _without_resume_suggestion(runner_class: type) -> type:
    """``runner_class`` without Kedro's "You can resume the pipeline run from the nearest nodes with persisted
    inputs by adding the following argument to your previous command: --from-nodes …" warning, which a failing
    node makes Kedro's runners log: inside a task it names a command that would run Kedro's own runner with none
    of the run's options (the launcher prints the command that resumes the job). ``_suggest_resume_scenario`` is
    Kedro's private name for it (``kedro.runner.AbstractRunner``): the one place the plugin relies on it."""

    class Runner(runner_class):
        def _suggest_resume_scenario(self, *args: Any, **kwargs: Any) -> None:
            return None

    Runner.__name__ = Runner.__qualname__ = runner_class.__name__
    Runner.__module__ = runner_class.__module__  # its log lines keep Kedro's logger (AbstractRunner._logger)
    return Runner


def _fork_runner_class() -> type:
    from kedro.runner import AbstractRunner

    class ForkRunner(AbstractRunner):
        """Every node in a process of its own; at most :func:`workers` at once, started in pipeline order.

        Not ``AbstractRunner._run``: that submits every ready node at once, in the order of a set (which varies
        with the hash seed); here the ready nodes start in Kedro's topological order, so which node waits for a
        free slot is the same in every run, and every fork happens in this (the main) thread.
        """

        def __init__(self, tracker: Any):
            super().__init__(is_async=False)
            self._tracker = tracker

        def _get_executor(self, max_workers: int) -> Executor:  # pragma: no cover - _run forks itself
            return ForkExecutor(self._tracker)

        def _run(self, pipeline: Any, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
            from collections import Counter
            from concurrent.futures import FIRST_COMPLETED, wait
            from itertools import chain

            from kedro.runner.task import Task

            nodes = pipeline.nodes  # topological order, ties by name
            position = {node: index for index, node in enumerate(nodes)}
            dependencies = pipeline.node_dependencies
            load_counts = Counter(chain.from_iterable(node.inputs for node in nodes))
            executor = ForkExecutor(self._tracker)
            todo = list(nodes)
            done: set[Any] = set()
            running: dict[Future[Any], Any] = {}
            failure: BaseException | None = None
            while todo or running:
                if failure is None:
                    for node in [n for n in todo if dependencies[n] <= done][: workers() - len(running)]:
                        todo.remove(node)
                        task = Task(
                            node=node, catalog=catalog, hook_manager=hook_manager, is_async=False, run_id=run_id
                        )
                        running[executor.submit(task)] = node
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=lambda f: position[running[f]]):
                    node = running.pop(future)
                    error = future.exception()
                    if error is not None:
                        failure = failure or error
                        continue
                    done.add(node)
                    self._logger.info("Completed node: %s", node.name)
                    self._logger.info("Completed %d out of %d tasks", len(done), len(nodes))
                    self._release_datasets(node, catalog, load_counts, pipeline)
            if failure is not None:  # no Kedro resume suggestion: see _without_resume_suggestion
                raise failure
            if todo:  # pragma: no cover - a pipeline is a DAG
                raise RuntimeError(f"could not schedule {', '.join(n.name for n in todo)}")

    return ForkRunner


# --------------------------------------------------------------------------------------------- fork executor

#: pid → node name of every node process still running (killed on timeout)
_LIVE: dict[int, str] = {}


def kill_node_processes() -> None:
    """Kill every node process of this task (its timeout expired)."""
    for pid in list(_LIVE):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


class NodeProcessDied(Exception):
    """The process running a node ended before the node returned (``os._exit``, a signal, out of memory)."""


class ForkExecutor(Executor):
    """Runs each submitted Kedro ``Task`` in a process forked from this one and sends back its in-memory outputs.

    The fork happens in the caller's thread (Kedro's scheduling loop, the main thread), so the child holds the
    task's state as it is: the catalog with the inputs already computed, the session's hooks, the job's active
    MLflow run. The child runs the task, pickles the outputs that live in a ``MemoryDataset`` back through a pipe
    and ends (:func:`_child`: only the exit handlers registered in the child run, never the parent's twice). A
    reader thread per child saves those outputs into this process's catalog, then completes the future with the
    node.

    ``tracker`` gets ``started(name)``, ``finished(name, duration)`` and ``failed(name, traceback_text)``.
    """

    def __init__(self, tracker: Any):
        self._tracker = tracker
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        task: Any = fn  # a kedro.runner.task.Task
        future: Future[Any] = Future()
        name = task.node.name
        self._tracker.started(name)
        _flush_all()
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which leaves through os._exit
            os.close(read_end)
            _child(task, write_end, self._tracker)
        os.close(write_end)
        _LIVE[pid] = name
        thread = threading.Thread(target=self._collect, args=(pid, read_end, task, future), daemon=True)
        thread.start()
        self._threads.append(thread)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if wait:
            for thread in self._threads:
                thread.join()

    def _collect(self, pid: int, read_end: int, task: Any, future: Future[Any]) -> None:
        name = task.node.name
        with os.fdopen(read_end, "rb") as pipe:
            payload = pipe.read()
        _, status = os.waitpid(pid, 0)
        _LIVE.pop(pid, None)
        try:
            kind, body, duration, text = pickle.loads(payload) if payload else ("died", None, None, None)
        except Exception as exc:  # an output or exception that pickles but does not unpickle
            kind, duration, text = "error", None, None
            body = _substitute(exc, "cannot unpickle what the node returned: ")
        if kind == "ok":
            try:
                for dataset_name, data in (body or {}).items():
                    task.catalog.get(dataset_name).save(data)  # the node's process logged the save
            except Exception as exc:
                self._tracker.failed(name, None)
                future.set_exception(exc)
                return
            self._tracker.finished(name, duration)
            future.set_result(task.node)
            return
        if kind == "died":
            how = (
                f"signal {-os.waitstatus_to_exitcode(status)}"
                if os.WIFSIGNALED(status)
                else (f"exit status {os.waitstatus_to_exitcode(status)}")
            )
            body = NodeProcessDied(f"the process running node {name!r} ended ({how}) before the node returned")
        self._tracker.failed(name, text)
        future.set_exception(body)


def _child(task: Any, write_end: int, tracker: Any) -> None:  # pragma: no cover - runs in the child
    """Run ``task`` here, write ``(kind, body, duration, traceback)`` to ``write_end``, then end as a fresh
    interpreter would, at once: the exit handlers registered in this process run (a loky executor the node started
    stops its workers; the task's own handlers, inherited, do not run twice), whatever the node started and left
    running (a pool, workers, a thread) is killed or abandoned, and the process leaves with ``os._exit``."""
    import atexit

    from kedro.io import MemoryDataset

    from .backends.processes import finish

    inherited_hooks = len(getattr(threading, "_threading_atexits", []))
    atexit._clear()  # the task's handlers (its MLflow run, its logging) are the task's, not this node's
    tracker.in_child()
    fresh_random_state()
    started = time.perf_counter()
    try:
        node = task.execute()
        outputs = {}
        for dataset_name in node.outputs:
            dataset = task.catalog.get(dataset_name)
            if isinstance(dataset, MemoryDataset):
                outputs[dataset_name] = dataset.load()
        payload = _dumps(("ok", outputs, time.perf_counter() - started, None))
    except SystemExit as exc:
        payload = _dumps(("error", NodeExited(exc.code), None, tracker.traceback_text(exc)))
    except BaseException as exc:
        payload = _dumps(("error", exc, None, tracker.traceback_text(exc)))
    try:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(payload)
        _flush_all()
    finally:
        finish(0, inherited_hooks)


class NodeExited(Exception):
    """A node called ``sys.exit`` (or raised ``SystemExit``): the node fails, never the task silently succeeds."""

    def __init__(self, code: Any):
        super().__init__(f"the node called sys.exit({code!r}); a node must return its outputs or raise")
        self.code = code
        self.type_name = "SystemExit"  # how the error line names it

    def __reduce__(self) -> tuple[Any, ...]:
        return NodeExited, (self.code,)


def fresh_random_state() -> None:
    """Reseed, from the OS's entropy, every generator a fresh interpreter seeds that way and a fork copies:
    ``random`` (Python reseeds it after ``os.fork``; done again for a fork that skipped that) and numpy's legacy
    global generator (``numpy.random.rand`` and friends; ``default_rng()`` reads fresh entropy on each call)."""
    import random

    random.seed()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        try:
            numpy.random.seed()
        except Exception:
            pass


def _dumps(result: tuple[Any, ...]) -> bytes:
    try:
        return pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        kind, body, _duration, text = result
        if kind == "ok":
            failure = _substitute(exc, "cannot send the node's outputs to the task's process (they must pickle): ")
            return pickle.dumps(("error", failure, None, None))
        return pickle.dumps(("error", _substitute(body), None, text))


class NodeFailed(Exception):
    """A node's exception that could not travel between processes: its type name and message."""

    def __init__(self, type_name: str, message: str):
        super().__init__(message)
        self.type_name = type_name

    def __reduce__(self) -> tuple[Any, ...]:
        return NodeFailed, (self.type_name, str(self))


def _substitute(exc: BaseException, prefix: str = "") -> NodeFailed:
    """An exception of the same type name and message that pickles (the original may not)."""
    return NodeFailed(type(exc).__name__, prefix + " ".join(str(exc).split()))


def _flush_all() -> None:
    import logging

    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # pragma: no cover
            pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # pragma: no cover
            pass
