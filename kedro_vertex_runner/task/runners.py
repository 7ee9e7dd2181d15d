"""How one task runs its nodes: one after another, or the nodes that do not depend on each other at the same time.

The grouping fuses short parallel branches into one task (a Vertex AI task costs minutes to start), so a task can
hold nodes that plain ``kedro run`` with a parallel runner would overlap. ``run_config.task_runner`` chooses, per
task, how the entrypoint runs them:

* ``processes`` (default): never slower than plain ``kedro run``. Nodes linked by a dataset kept in memory
  (:func:`memory_groups`) form a group that runs in one process, one node after another, so no value held in
  memory is ever pickled; groups that can overlap run side by side, each in a process forked from the task's
  process when its inputs are ready, where the compiler's estimate says it pays (``--task-runner=processes`` in
  the spec) and the task uses no Spark (:func:`uses_spark`); otherwise the task runs in-process, sequentially.
  A group sees the task's state as it was before any node ran: what one group's node does to module-level
  variables, ``os.environ``, matplotlib's pyplot state or random seeds reaches no other group (plain ``kedro run``
  lets a node see what the nodes before it left behind; nothing overlaps). Inputs reach a group through the
  fork, without a copy. Kedro's hooks (kedro-mlflow's included) run in the group's process, inside the job's one
  MLflow run.
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

import inspect
import logging
import os
import pickle
import random
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
            runner = make_runner(mode, pipeline, tracker, catalog)
            return runner.run(pipeline, catalog, hook_manager, run_id, only_missing_outputs)

        def _get_executor(self, max_workers: int) -> Executor | None:  # pragma: no cover - run() delegates
            return None

        def _run(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - run() delegates
            raise NotImplementedError

    return TaskRunner()


def make_runner(mode: str, pipeline: Any, tracker: Any, catalog: Any = None) -> Any:
    """The Kedro runner for a task running ``pipeline`` in ``mode``; ``tracker`` is told which node starts and ends
    in which process (see :class:`ForkExecutor`); ``catalog`` (the task's, its stored datasets already swapped in)
    says which datasets stay in memory between the task's nodes and whether the task uses Spark.

    ``processes`` forks only where that cannot cost what plain ``kedro run`` would not: the task's nodes are split
    into groups linked by in-memory datasets (:func:`memory_groups`), each group runs in one process, and the
    task runs in-process, one node after another, when no two groups could overlap or the task uses Spark."""
    from kedro.runner import SequentialRunner, ThreadRunner

    from ..kedro_compat import without_resume_suggestion

    if mode == SEQUENTIAL or len(pipeline.nodes) < 2 or is_chain(pipeline):
        return without_resume_suggestion(SequentialRunner)()
    if mode == THREADS:
        return without_resume_suggestion(ThreadRunner)(max_workers=workers())
    if not hasattr(os, "fork") or sys.platform == "darwin":  # macOS: fork is unsafe with its system libraries
        return without_resume_suggestion(SequentialRunner)()
    import logging

    logger = logging.getLogger(__name__)
    spark = uses_spark(catalog, pipeline)
    if spark:
        logger.info("The task uses Spark (%s): its nodes run one after another in its process", spark)
        return without_resume_suggestion(SequentialRunner)()
    groups = memory_groups(pipeline, lambda name: kept_in_memory(catalog, name))
    if not can_overlap(groups):
        logger.info("No two of the task's nodes can overlap without passing a value in memory: they run in order")
        return without_resume_suggestion(SequentialRunner)()
    return _fork_runner_class()(tracker, groups)


#: what a group of nodes forked into a process of its own is assumed to lose, in seconds: the fork, and what its
#: libraries set up again there (worker pools, caches). The compiler asks a task to run its branches side by side
#: only where that saves more (see ``kedro_vertex_runner.compiler.grouping.CostModel.parallel_cost``)
FORK_COST = 2.0


def kept_in_memory(catalog: Any, name: str) -> bool:
    """Whether the value of ``name`` stays in the task's memory between its nodes (undeclared, or declared as a
    memory dataset): it then never leaves the process that produced it. Without a catalog: every dataset."""
    if catalog is None or name not in catalog:
        return True
    from .persistence import held_in_memory

    return held_in_memory(catalog, name)


def _dataset_type(catalog: Any, name: str) -> str:
    """The dataset class of ``name`` as a dotted path (``kedro_datasets.spark.SparkDataset``, or as the catalog
    entry names it: ``spark.SparkDataset``); empty when undeclared. Never builds a dataset just to ask."""
    built = getattr(catalog, "_datasets", None)
    if isinstance(built, dict) and name in built:
        kind: Any = type(built[name])
        return f"{kind.__module__}.{kind.__qualname__}"
    resolver = getattr(catalog, "config_resolver", None)
    if resolver is None or name not in catalog:
        return ""
    config = resolver.config.get(name)
    if config is None:
        try:
            config = resolver.resolve_pattern(name)
        except Exception:
            return ""
    kind = config.get("type") if isinstance(config, dict) else None
    if isinstance(kind, type):
        return f"{kind.__module__}.{kind.__qualname__}"
    return str(kind or "")


def uses_spark(catalog: Any, pipeline: Any) -> str:
    """Why the task uses Spark (empty: it does not): a SparkContext is running (a hook started a session), a
    node's module uses pyspark, or one of its datasets is a Spark dataset (from a ``spark`` or ``pyspark`` module,
    or a class named ``Spark…``). Such a task keeps one SparkSession (one JVM) for all its nodes: it never forks
    them. That ``pyspark`` is imported says nothing: MLflow imports parts of it wherever it is installed."""
    context = getattr(sys.modules.get("pyspark.context"), "SparkContext", None)
    if getattr(context, "_active_spark_context", None) is not None:
        return "a SparkContext is running"
    for node in pipeline.nodes:
        module = _node_module(node)
        if module is not None and _uses_pyspark(module):
            return f"node {node.name!r} comes from {module.__name__}, which uses pyspark"
    if catalog is None:
        return ""
    for name in sorted(pipeline.datasets()):
        kind = _dataset_type(catalog, name)
        parts = kind.split(".")
        if any(part in ("spark", "pyspark") for part in parts[:-1]) or parts[-1].startswith("Spark"):
            return f"dataset {name!r} is a {kind}"
    return ""


def _node_module(node: Any) -> Any:
    func: Any = getattr(node, "func", None)
    while hasattr(func, "func"):  # functools.partial
        func = func.func
    return sys.modules.get(getattr(func, "__module__", None) or "")


def _uses_pyspark(module: Any) -> bool:
    """Whether ``module`` imported anything from pyspark (``import pyspark``, ``from pyspark.sql import …``)."""
    for value in list(vars(module).values()):
        name = value.__name__ if inspect.ismodule(value) else getattr(value, "__module__", None)
        if isinstance(name, str) and (name == "pyspark" or name.startswith("pyspark.")):
            return True
    return False


def memory_groups(pipeline: Any, in_memory: Callable[[str], bool]) -> list[list[Any]]:
    """The task's nodes in groups that never pass an in-memory value to each other: nodes linked by a dataset
    ``in_memory`` says stays in memory share a group, and groups that would wait for each other (A → X → B, with A
    and B linked in memory and X stored in between) are one group too, so the groups' dependencies form a DAG.
    Each group in topological order; the groups in topological order of their dependencies, ties by their first
    node (Kedro's order, ties by name)."""
    nodes = list(pipeline.nodes)
    index = {node: i for i, node in enumerate(nodes)}
    producer = {name: i for i, node in enumerate(nodes) for name in node.outputs}
    root = list(range(len(nodes)))

    def find(i: int) -> int:
        while root[i] != i:
            root[i] = root[root[i]]
            i = root[i]
        return i

    edges: set[tuple[int, int]] = set()
    for i, node in enumerate(nodes):
        for name in node.inputs:
            if name in producer:
                edges.add((producer[name], i))
                if in_memory(name):
                    a, b = find(producer[name]), find(i)
                    root[max(a, b)] = min(a, b)
    # the groups' graph; every cycle of it becomes one group (Kosaraju's strongly connected components)
    out: dict[int, set[int]] = {}
    into: dict[int, set[int]] = {}
    for a, b in edges:
        ga, gb = find(a), find(b)
        if ga != gb:
            out.setdefault(ga, set()).add(gb)
            into.setdefault(gb, set()).add(ga)
    order: list[int] = []
    seen: set[int] = set()
    for start in sorted({find(i) for i in range(len(nodes))}):
        if start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(sorted(out.get(start, ()))))]
        while stack:
            key, children = stack[-1]
            child = next((c for c in children if c not in seen), None)
            if child is None:
                stack.pop()
                order.append(key)
            else:
                seen.add(child)
                stack.append((child, iter(sorted(out.get(child, ())))))
    component: dict[int, int] = {}
    for start in reversed(order):
        if start in component:
            continue
        component[start] = start
        todo = [start]
        while todo:
            key = todo.pop()
            for parent in into.get(key, ()):
                if parent not in component:
                    component[parent] = start
                    todo.append(parent)
    members: dict[int, list[Any]] = {}
    for node in nodes:
        members.setdefault(component[find(index[node])], []).append(node)
    # the groups in topological order (a group can start before a group holding an earlier node), ties by first node
    import heapq

    first = {key: index[group[0]] for key, group in members.items()}
    waits = {key: 0 for key in members}
    after: dict[int, set[int]] = {}
    for a, b in edges:
        ga, gb = component[find(a)], component[find(b)]
        if ga != gb and gb not in after.setdefault(ga, set()):
            after[ga].add(gb)
            waits[gb] += 1
    ready = [(first[key], key) for key, count in waits.items() if count == 0]
    heapq.heapify(ready)
    ordered: list[list[Any]] = []
    while ready:
        _, key = heapq.heappop(ready)
        ordered.append(members[key])
        for child in after.get(key, ()):
            waits[child] -= 1
            if waits[child] == 0:
                heapq.heappush(ready, (first[child], child))
    return ordered


def can_overlap(groups: list[list[Any]]) -> bool:
    """Whether two of ``groups`` (from :func:`memory_groups`) could run at the same time: they are not one chain."""
    if len(groups) < 2:
        return False
    group_of = {node: g for g, group in enumerate(groups) for node in group}
    produced = {name: group_of[node] for group in groups for node in group for name in node.outputs}
    depth = [0] * len(groups)
    for g, group in enumerate(groups):  # a producer group comes first (topological order)
        for node in group:
            for name in node.inputs:
                if name in produced and produced[name] != g:
                    depth[g] = max(depth[g], depth[produced[name]] + 1)
    return len(set(depth)) < len(groups)


def _fork_runner_class() -> type:
    from kedro.runner import AbstractRunner

    class ForkRunner(AbstractRunner):
        """Every group of nodes (:func:`memory_groups`) in a process of its own, its nodes one after another; at
        most :func:`workers` at once, started in pipeline order. No value kept in memory crosses a process: the
        groups hand their values on through stored datasets only.

        Not ``AbstractRunner._run``: that submits every ready node at once, in the order of a set (which varies
        with the hash seed); here the ready groups start in Kedro's topological order, so which group waits for a
        free slot is the same in every run, and every fork happens in this (the main) thread.
        """

        def __init__(self, tracker: Any, groups: list[list[Any]]):
            super().__init__(is_async=False)
            self._tracker = _GroupTracker(tracker)
            self._groups = groups

        def _get_executor(self, max_workers: int) -> Executor:  # pragma: no cover - _run forks itself
            return ForkExecutor(self._tracker)

        def _run(self, pipeline: Any, catalog: Any, hook_manager: Any = None, run_id: str | None = None) -> None:
            from collections import Counter
            from concurrent.futures import FIRST_COMPLETED, wait
            from itertools import chain

            nodes = pipeline.nodes  # topological order, ties by name
            groups = [tuple(group) for group in self._groups]
            position = {group: index for index, group in enumerate(groups)}
            group_of = {node: group for group in groups for node in group}
            node_dependencies = pipeline.node_dependencies
            dependencies = {
                group: {group_of[p] for node in group for p in node_dependencies[node]} - {group} for group in groups
            }
            load_counts = Counter(chain.from_iterable(node.inputs for node in nodes))
            executor = ForkExecutor(self._tracker)
            todo = list(groups)
            done: set[Any] = set()
            done_nodes: set[Any] = set()
            running: dict[Future[Any], Any] = {}
            failure: BaseException | None = None
            while todo or running:
                if failure is None:
                    for group in [g for g in todo if dependencies[g] <= done][: workers() - len(running)]:
                        todo.remove(group)
                        task = _GroupTask(group, catalog, hook_manager, run_id, self._tracker)
                        running[executor.submit(task)] = group
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=lambda f: position[running[f]]):
                    group = running.pop(future)
                    error = future.exception()
                    if error is not None:
                        failure = failure or error
                        continue
                    done.add(group)
                    for node in group:
                        done_nodes.add(node)
                        self._logger.info("Completed node: %s", node.name)
                        self._logger.info("Completed %d out of %d tasks", len(done_nodes), len(nodes))
                        self._release_datasets(node, catalog, load_counts, pipeline)
            if failure is not None:  # no Kedro resume suggestion: see kedro_compat.without_resume_suggestion
                raise failure
            if todo:  # pragma: no cover - the groups form a DAG
                raise RuntimeError(f"could not schedule {', '.join(group[0].name for group in todo)}")

    return ForkRunner


#: the pseudo output through which a group's process sends its nodes' run times back (see :class:`_GroupTask`)
_TIMES = "__kedro_vertex_group_times__"


class _GroupNode:
    """What :class:`ForkExecutor` sees of a group: a name (its first node's) and one in-memory output, the run
    times of the group's nodes."""

    def __init__(self, name: str):
        self.name = name
        self.outputs = [_TIMES]


class _GroupCatalog:
    """The task's catalog, plus the group's run times as a memory dataset (saved in the group's process, sent back
    by :class:`ForkExecutor` and saved again in the task's process)."""

    def __init__(self, catalog: Any):
        from kedro.io import MemoryDataset

        self.catalog = catalog
        self.times: Any = MemoryDataset(copy_mode="assign")

    def get(self, name: str) -> Any:
        return self.times if name == _TIMES else self.catalog.get(name)


class _GroupTask:
    """A group of nodes as one :class:`ForkExecutor` task: in the forked process, Kedro's ``Task`` per node, one
    after another in topological order, each in-memory value released once the group's last reader of it ran."""

    def __init__(self, nodes: tuple[Any, ...], catalog: Any, hook_manager: Any, run_id: str | None, tracker: Any):
        self.nodes = nodes
        self.node = _GroupNode(nodes[0].name)
        self.catalog = _GroupCatalog(catalog)
        self._hook_manager, self._run_id, self._tracker = hook_manager, run_id, tracker
        tracker.groups[self.node.name] = self

    def __call__(self) -> _GroupNode:
        return self.execute()

    def execute(self) -> _GroupNode:
        from collections import Counter

        from kedro.runner.task import Task

        catalog = self.catalog.catalog
        reads = Counter(name for node in self.nodes for name in node.inputs)
        produced = {name for node in self.nodes for name in node.outputs}
        times: dict[str, float] = {}
        for node in self.nodes:
            self._tracker.running = node.name  # this process's copy: names the node an error comes from
            started = time.perf_counter()
            task = Task(
                node=node, catalog=catalog, hook_manager=self._hook_manager, is_async=False, run_id=self._run_id
            )
            task.execute()
            times[node.name] = time.perf_counter() - started
            for name in node.inputs:
                reads[name] -= 1
                if reads[name] == 0 and name in produced and kept_in_memory(catalog, name):
                    catalog.release(name)
        self.catalog.times.save(times)
        return self.node


class _GroupTracker:
    """The task's tracker as :class:`ForkExecutor` reports groups to it: a group's success is each of its nodes'
    (with its own run time); a failure is the node that failed (its name travels ahead of the traceback)."""

    def __init__(self, tracker: Any):
        self._tracker = tracker
        self.groups: dict[str, _GroupTask] = {}
        self.running: str | None = None

    def started(self, name: str) -> None:
        self._tracker.started(name)

    def finished(self, name: str, duration: float | None) -> None:
        group = self.groups.pop(name)
        times = group.catalog.times.load() if group.catalog.times.exists() else {}
        self._tracker.finished(name, times.get(name, duration))
        for node in group.nodes[1:]:
            self._tracker.started(node.name)
            self._tracker.finished(node.name, times.get(node.name))

    def failed(self, name: str, traceback_text: str | None) -> None:
        self.groups.pop(name, None)
        node, _, text = (traceback_text or "").partition("\0")
        if not node or node == name:
            self._tracker.failed(name, text or None)
            return
        self._tracker.started(node)
        self._tracker.failed(node, text or None)
        self._tracker.finished(name, None)

    def in_child(self) -> None:
        self._tracker.in_child()

    def traceback_text(self, exc: BaseException) -> str:
        return f"{self.running or ''}\0{self._tracker.traceback_text(exc)}"


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
        python_state = random.getstate()  # Python reseeds `random` in a forked child: derive from the parent's
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child, which leaves through os._exit
            os.close(read_end)
            _child(task, write_end, self._tracker, python_state)
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


def _child(task: Any, write_end: int, tracker: Any, python_state: Any = None) -> None:  # pragma: no cover
    """Run ``task`` here, write ``(kind, body, duration, traceback)`` to ``write_end``, then end as a fresh
    interpreter would, at once: the exit handlers registered in this process run (a loky executor the node started
    stops its workers; the task's own handlers, inherited, do not run twice), whatever the node started and left
    running (a pool, workers, a thread) is killed or abandoned, and the process leaves with ``os._exit``."""
    import atexit

    from kedro.io import MemoryDataset

    from .processes import finish

    inherited_hooks = len(getattr(threading, "_threading_atexits", []))
    atexit._clear()  # the task's handlers (its MLflow run, its logging) are the task's, not this node's
    tracker.in_child()
    fresh_random_state(task.node.name, python_state)
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


def fresh_random_state(key: str, python_state: Any = None) -> None:
    """Give this freshly forked process random state of its own, derived from its parent's and ``key`` (what it
    runs: a task's arguments, a group's first node): ``random`` (whose state ``python_state`` is as the parent held
    it before the fork; Python reseeds it after ``os.fork``) and numpy's legacy global generator
    (``numpy.random.rand`` and friends; ``default_rng()`` reads fresh entropy on each call anyway).

    Processes forked side by side thus never draw the same numbers, and the draws are as repeatable as the parent's
    state: fresh from the OS's entropy in every run when nothing seeded it (as in a new interpreter), the same in
    every run when the project seeded it (``np.random.seed(0)`` when a module is imported), one stream per key."""
    import hashlib
    import random

    def seed_from(*parts: bytes) -> bytes:
        digest = hashlib.sha256(key.encode("utf-8", "backslashreplace"))
        for part in parts:
            digest.update(part)
        return digest.digest()

    state = random.getstate() if python_state is None else python_state
    random.seed(int.from_bytes(seed_from(repr(state).encode()), "big"))
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        try:
            legacy = numpy.random.get_state(legacy=True)
            seed = seed_from(numpy.asarray(legacy[1]).tobytes(), repr(legacy[2:]).encode())
            numpy.random.seed(numpy.frombuffer(seed, dtype=numpy.uint32))
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
