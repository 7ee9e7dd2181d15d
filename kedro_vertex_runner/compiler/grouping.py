"""Kedro nodes → task groups: which nodes run together in one Vertex AI task.

Every Vertex AI task pays for its own container start (about two minutes on Vertex AI, a Kedro bootstrap of
seconds locally), so fewer tasks mean faster and cheaper jobs; but a task runs its nodes one after another and
hands its outputs on only when it ends, so merging two nodes that could run side by side can make the job slower.
The modes (``run_config.grouping``):

``makespan`` (default)
    The grouping that minimises the job's modelled wall time on Vertex AI, then its number of tasks (see below);
    estimates less than :data:`SAME_ESTIMATE` (a second) apart count as the same, so a task is never added to save
    less than that.
``chains``
    Fuse a node into its predecessor when it is that predecessor's *only* consumer and the predecessor is its
    *only* producer. Such a pair can never run in parallel anyway, so fusing removes a container start without
    removing any parallelism; but a node with two consumers ends every chain, so real projects keep many tasks.
``none``
    One task per node: the most visible in the Vertex AI console, the most container starts.
``namespace``
    One task per top-level namespace (Kedro's own ``Pipeline.group_nodes_by("namespace")``); nodes outside a
    namespace get a task each. Suits modular pipelines that are deployed as units.
``tags``
    Nodes tagged ``group.<name>`` share one task per name; untagged nodes get a task each.

``makespan`` and ``chains`` never put nodes whose task settings differ (image, GPUs, accelerator, retries, timeout,
caching) into one task, so a node given its own GPU or image in ``vertexai.yml`` keeps its own task. CPU and memory
requests are the exception: they only size the machine, so nodes asking for different amounts may share a task,
which then asks for the most of each (a two-minute container start costs more than a few minutes on a larger
machine).
``namespace`` and ``tags`` can merge nodes that have an outside node between them (A → X → B with A and B in one
group), which would make the groups depend on each other in a cycle; such a grouping is rejected with an error
naming the nodes.

The model
---------
The job is a DAG of tasks. A task starts when every task it depends on has ended, then costs ``task_startup``
(default 120 s: scheduling, image pull, container and Kedro start) plus its nodes' run time: the length of their
schedule on ``task_workers`` workers (2 by default, since a task runs independent nodes side by side — see
:mod:`kedro_vertex_runner.task.runners`; 1, the sum, with ``task_runner: sequential``) plus ``parallel_cost``, or
the sum when that is shorter (the task then runs its nodes one after another, as the compiled spec says); its
outputs are visible to
other tasks only once it ends. (The greedy below still reasons with sums; the exact scoring of its candidates, the
merge pass and the exhaustive optimum use the schedule.) With as many machines as tasks (Vertex AI runs every ready
task at once), the job's *makespan* is the longest path through the task DAG weighted that way. Node run times
come from the last local run of the same pipeline (see :mod:`kedro_vertex_runner.task.timings`), otherwise a default
``node_duration`` (10 s: a typical node of a Kedro project runs for seconds; one that trains a model for
minutes, which a single local run then records). A grouping is valid when every node is in exactly one task, nodes
of one task have equal settings, and the contracted task graph is acyclic.

The algorithm
-------------
This is the clustering problem of scheduling on an unbounded number of processors (Sarkar's edge zeroing, Kim &
Browne's linear clustering, Yang & Gerasoulis's dominant sequence clustering, DSC). It differs from the classic
form in two ways: the cost is paid once per *task start* instead of once per cut edge, and a task is atomic (it
waits for all its inputs before its first node and publishes all outputs after its last), so growing a task
delays every task that reads from it. ``makespan`` adapts DSC to that:

1. Nodes are visited in DSC's order: a node becomes free when all its producers are placed, and the free node on
   the longest remaining path (bottom level, counting a start-up per edge) goes first, ties by topological index
   (Kedro's name-sorted order), so the result never depends on hash seeds.
2. A free node either starts a new task or joins an *open* task: one of its producers' tasks, or the task last
   started beside it (a sibling). A task is open while no other task reads from it; joining an open task can
   never create a cycle (no path leaves it), which makes the acyclicity test O(1) instead of a reachability
   query, and never delays an already placed task.
3. Each option is scored by the finish time it gives the task plus an estimate of what still has to follow: the
   pending consumers of the task either all join it (the sum of their run times) or all start tasks of their
   own (one start-up plus the longest of them), whichever is shorter; tasks the node leaves behind are closed and
   their pending consumers pay a start-up. Ties, and options within the makespan already committed to, go to
   joining (fewer tasks).
4. Each weakly connected part of the pipeline is solved on its own. The greedy runs three times (remaining path
   as pure run time or with a start-up per edge; with and without filling committed slack); these candidates,
   the ``chains`` grouping and (when all settings agree) a single task are evaluated exactly under the model,
   and the one with the fewest tasks among those within :data:`SAME_ESTIMATE` of the shortest is kept, so
   ``makespan`` is never more than that slower than ``chains`` under the model.
5. A final pass merges tasks while the job's exact makespan stays within :data:`SAME_ESTIMATE` of the grouping
   chosen: with at most :data:`ALL_PAIRS_TASKS` tasks any two (no path between them through a third task),
   otherwise a task with one of its producer tasks (when every other producer starts before that one ends, so no
   path joins them) or with a few tasks of the same producers; wherever the exact earliest start / latest finish
   of every task leaves room for the merged task (its nodes scheduled on the workers). Rounds of merges go on
   while merges are found, within :data:`PACK_BUDGET`. This also packs the tasks of separate parts together.
6. For at most :data:`EXHAUSTIVE_MAX_NODES` nodes, a branch and bound over every valid grouping, limited to
   :data:`EXHAUSTIVE_BUDGET` steps, looks for one with fewer tasks still within that makespan (merging whole
   tasks cannot move a node from one task to another).

Each greedy pass is O((V + E) log V) with lazily cleaned heaps and each merge round O(V + E), so the mode is
near-linear: a thousand nodes take well under a second. :func:`optimal_key_of` enumerates every valid grouping
(with branch and bound) for graphs of up to a dozen nodes: ``bench/grouping.py`` and the tests compare the
heuristic with it.

All functions here are pure: producer/consumer maps are built once from Kedro's cached ``node_dependencies``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import PluginError

if TYPE_CHECKING:
    from kedro.pipeline import Pipeline
    from kedro.pipeline.node import Node

GROUPING_MODES = ("makespan", "chains", "none", "namespace", "tags")
DEFAULT_GROUPING = "makespan"
GROUP_TAG_PREFIX = "group."
DEFAULT_TASK_STARTUP = 120.0
DEFAULT_NODE_DURATION = 10.0
EXHAUSTIVE_MAX_NODES = 12
EXHAUSTIVE_BUDGET = 4000  # steps of the search for fewer tasks on a small graph (a few tens of milliseconds)
SIBLINGS_TRIED = 8  # siblings a task is tried with in one merge round (keeps a round linear)
ALL_PAIRS_TASKS = 64  # up to this many tasks, the merge pass tries every pair of tasks
PACK_BUDGET = 100_000  # merge rounds stop after about this many node and edge visits (at least MIN_PACK_ROUNDS)
MIN_PACK_ROUNDS = 4
#: seconds by which a grouping with fewer tasks may exceed the shortest estimate and still count as the same
#: estimate: below what the estimate resolves (it is shown to the second), while a task start costs minutes
SAME_ESTIMATE = 1.0


@dataclass(frozen=True)
class CostModel:
    """What the ``makespan`` grouping (and ``compile --explain``) assumes a task costs.

    Attributes:
        task_startup: seconds every task spends before its first node (container scheduling and start).
        node_duration: seconds assumed for a node with no recorded run time.
        durations: recorded run time per node name (from the last local run of the pipeline).
        task_workers: how many nodes of one task run at once (``run_config.task_runner``: 1 when sequential);
            a task's run time is then the length of its nodes' schedule on that many workers (see :func:`_span`).
        parallel_cost: seconds a task loses when it runs nodes side by side (processes forked, libraries' pools
            set up again; ``kedro_vertex_runner.task.runners.FORK_COST``): a task whose schedule plus this is not
            shorter than the sum of its nodes runs them one after another, and costs the sum.
        extra_startup: seconds a node's task spends on top of ``task_startup`` (a task with machine settings
            waits for its own machine); counted once per task by :func:`estimate`, with each such node's run time
            by the grouping search (so it fuses such nodes no more eagerly than others).
        transient: datasets that stay in memory between the nodes of a task (undeclared, or memory datasets);
            nodes linked by one run in one process, one after another (see
            ``kedro_vertex_runner.task.runners.memory_groups``), so only such groups overlap. None: unknown, every
            node overlaps on its own.
    """

    task_startup: float = DEFAULT_TASK_STARTUP
    node_duration: float = DEFAULT_NODE_DURATION
    durations: Mapping[str, float] = field(default_factory=dict)
    task_workers: int = 1
    parallel_cost: float = 0.0
    transient: frozenset[str] | None = None
    extra_startup: Mapping[str, float] = field(default_factory=dict)

    def duration(self, node_name: str) -> float:
        return float(self.durations.get(node_name, self.node_duration))


@dataclass(frozen=True)
class Estimate:
    """A grouping's cost under a :class:`CostModel`.

    Attributes:
        makespan: modelled wall time of the job in seconds (the longest chain of dependent tasks).
        tasks: number of tasks.
        critical_path: keys of the tasks on that longest chain, first to last.
        measured: how many of the job's nodes have a recorded run time.
    """

    makespan: float
    tasks: int
    critical_path: tuple[str, ...]
    measured: int = 0


@dataclass(frozen=True)
class TaskGroup:
    """Nodes that run in one task.

    Attributes:
        key: unique id of the group: the first node's name, the namespace, or ``group.<name>`` for a tag group
            (so a tag group never clashes with a node of the same name).
        nodes: the group's nodes in topological order (the order the task runs them in).
        dependencies: keys of the groups that must finish first, sorted.
        kind: ``"nodes"`` for a single node or a fused chain, ``"namespace"`` or ``"tag"`` otherwise.
    """

    key: str
    nodes: tuple[Node, ...]
    dependencies: tuple[str, ...]
    kind: str = "nodes"

    @property
    def name(self) -> str:
        """The group's name as the user wrote it: node name, namespace, or the ``<name>`` of ``group.<name>``."""
        return self.key[len(GROUP_TAG_PREFIX) :] if self.kind == "tag" else self.key

    @property
    def node_names(self) -> list[str]:
        return [node.name for node in self.nodes]


def group_nodes(
    pipeline: Pipeline,
    mode: str = DEFAULT_GROUPING,
    fusable: Callable[[Node, Node], bool] | None = None,
    model: CostModel | None = None,
) -> list[TaskGroup]:
    """Split ``pipeline`` into task groups, returned in topological order.

    Args:
        pipeline: the (already filtered) Kedro pipeline.
        mode: one of ``makespan``, ``chains``, ``none``, ``namespace``, ``tags``.
        fusable: for ``makespan`` and ``chains``, whether two nodes may share a task (default: always); it must
            be an equivalence (equal settings), as ``makespan`` compares a node with one node of a task.
        model: for ``makespan``, the cost model (default: :class:`CostModel` defaults).

    Raises:
        PluginError: unknown mode, a node with two ``group.*`` tags, or groups that would depend on each other
            in a cycle.
    """
    if mode == "none":
        key_of = {node: node.name for node in pipeline.nodes}
        kinds: dict[str, str] = {}
    elif mode == "chains":
        key_of = _chain_keys(pipeline, fusable)
        kinds = {}
    elif mode == "makespan":
        key_of = _makespan_keys(pipeline, fusable, model or CostModel())
        kinds = {}
    elif mode == "namespace":
        key_of, kinds = _namespace_keys(pipeline)
    elif mode == "tags":
        key_of, kinds = _tag_keys(pipeline)
    else:
        raise PluginError(f"run_config.grouping: unknown mode {mode!r}; use one of {', '.join(GROUPING_MODES)}")
    return _build_groups(pipeline, key_of, kinds)


def _chain_keys(pipeline: Pipeline, fusable: Callable[[Node, Node], bool] | None) -> dict[Node, str]:
    parents = pipeline.node_dependencies
    child_count: dict[Node, int] = dict.fromkeys(parents, 0)
    for node_parents in parents.values():
        for parent in node_parents:
            child_count[parent] += 1
    key_of: dict[Node, str] = {}
    for node in pipeline.nodes:  # topological: a parent's key is known before its children are seen
        node_parents = parents[node]
        if len(node_parents) == 1:
            (parent,) = node_parents
            if child_count[parent] == 1 and (fusable is None or fusable(parent, node)):
                key_of[node] = key_of[parent]
                continue
        key_of[node] = node.name
    return key_of


def task_times(groups: list[TaskGroup], model: CostModel) -> dict[str, tuple[float, float, float]]:
    """Per task of ``groups`` (topologically sorted), its modelled ``(start, start-up, end)`` under ``model``: a
    task starts when the last task it depends on ends, and ends its start-up (``task_startup``, plus the extra of
    a task with machine settings) and its nodes' span later."""
    times: dict[str, tuple[float, float, float]] = {}
    for group in groups:
        start = max((times[dep][2] for dep in group.dependencies), default=0.0)
        extra = max((model.extra_startup.get(node.name, 0.0) for node in group.nodes), default=0.0)
        times[group.key] = (
            start,
            model.task_startup + extra,
            start + model.task_startup + extra + _group_span(group, model),
        )
    return times


def estimate(groups: list[TaskGroup], model: CostModel) -> Estimate:
    """The makespan, task count and longest chain of tasks of ``groups`` (topologically sorted) under ``model``."""
    times = task_times(groups, model)
    finish = {key: end for key, (_, _, end) in times.items()}
    via: dict[str, str | None] = {}
    for group in groups:
        ready, before = 0.0, None
        for dep in group.dependencies:  # sorted: the first of equal finishes wins, whatever the hash seed
            if finish[dep] > ready:
                ready, before = finish[dep], dep
        via[group.key] = before
    if not groups:
        return Estimate(0.0, 0, ())
    last = max(groups, key=lambda g: finish[g.key]).key  # max() keeps the first of equal finishes
    path: list[str] = []
    key: str | None = last
    while key is not None:
        path.append(key)
        key = via[key]
    measured = sum(1 for g in groups for n in g.nodes if n.name in model.durations)
    return Estimate(finish[last], len(groups), tuple(reversed(path)), measured)


def _span(weights: Sequence[float], parents: Sequence[Sequence[int]], workers: int, cost: float = 0.0) -> float:
    """How long a task runs nodes ``weights`` (topological order; ``parents``: indices of the producers inside the
    task) on ``workers`` workers: list scheduling in that order, each node on the first free worker once its
    producers are done, as the task's runner starts them. One worker: the sum. Appending a node never changes
    the schedule of the nodes before it, so a partial task's span bounds the whole task's from below. With a
    ``cost`` of running side by side, the shorter of the sum and the schedule plus ``cost`` (still a bound: both
    only grow as nodes are appended)."""
    total = float(sum(weights))
    if workers <= 1:
        return total
    free = [0.0] * workers  # a heap of the times the workers become free
    end: list[float] = []
    span = 0.0
    for weight, node_parents in zip(weights, parents, strict=True):
        ready = max((end[p] for p in node_parents), default=0.0)
        start = max(ready, heapq.heappop(free))
        end.append(start + weight)
        heapq.heappush(free, end[-1])
        span = max(span, end[-1])
    return min(total, span + cost)


def _task_span(
    nodes: Sequence[Node],
    weights: Sequence[float],
    parents: Sequence[Sequence[int]],
    workers: int,
    cost: float,
    transient: frozenset[str] | None,
) -> float:
    """:func:`_span` of a task's ``nodes`` where nodes linked by a ``transient`` dataset run as one (in one
    process, one after another, as the task runner runs them)."""
    if workers > 1 and transient and any(name in transient for node in nodes for name in node.inputs):
        from types import SimpleNamespace

        from ..task.runners import memory_groups

        units = memory_groups(SimpleNamespace(nodes=list(nodes)), transient.__contains__)
        if len(units) < len(nodes):
            position = {node: k for k, node in enumerate(nodes)}
            unit_of = {node: u for u, unit in enumerate(units) for node in unit}
            unit_weights = [sum(weights[position[node]] for node in unit) for unit in units]
            unit_parents = [
                sorted({unit_of[nodes[p]] for node in unit for p in parents[position[node]]} - {u})
                for u, unit in enumerate(units)
            ]
            return _span(unit_weights, unit_parents, workers, cost)
    return _span(weights, parents, workers, cost)


def _group_span(group: TaskGroup, model: CostModel) -> float:
    producer = {name: i for i, node in enumerate(group.nodes) for name in node.outputs}
    parents = [sorted({producer[name] for name in node.inputs if name in producer}) for node in group.nodes]
    weights = [model.duration(node.name) for node in group.nodes]
    return _task_span(group.nodes, weights, parents, model.task_workers, model.parallel_cost, model.transient)


class _Graph:
    """The pipeline as index lists (topological order), with each node's duration."""

    def __init__(
        self,
        nodes: list[Node],
        parents: list[list[int]],
        weight: list[float],
        startup: float,
        workers: int = 1,
        parallel_cost: float = 0.0,
        transient: frozenset[str] | None = None,
    ):
        self.nodes, self.parents, self.weight, self.startup, self.workers = nodes, parents, weight, startup, workers
        self.parallel_cost, self.transient = parallel_cost, transient
        self.children: list[list[int]] = [[] for _ in nodes]
        for i, node_parents in enumerate(parents):
            for p in node_parents:
                self.children[p].append(i)

    @classmethod
    def of(cls, pipeline: Pipeline, model: CostModel) -> _Graph:
        nodes = list(pipeline.nodes)
        index = {node: i for i, node in enumerate(nodes)}
        dependencies = pipeline.node_dependencies
        parents = [sorted(index[p] for p in dependencies[node]) for node in nodes]
        weights = [model.duration(node.name) + model.extra_startup.get(node.name, 0.0) for node in nodes]
        return cls(
            nodes, parents, weights, model.task_startup, model.task_workers, model.parallel_cost, model.transient
        )

    def components(self) -> list[list[int]]:
        """Weakly connected components, each a sorted index list, ordered by their first node."""
        root = list(range(len(self.nodes)))

        def find(i: int) -> int:
            while root[i] != i:
                root[i] = root[root[i]]
                i = root[i]
            return i

        for i, node_parents in enumerate(self.parents):
            for p in node_parents:
                a, b = find(i), find(p)
                if a != b:
                    root[max(a, b)] = min(a, b)
        members: dict[int, list[int]] = {}
        for i in range(len(self.nodes)):
            members.setdefault(find(i), []).append(i)
        return list(members.values())

    def subgraph(self, indices: list[int]) -> _Graph:
        local = {i: k for k, i in enumerate(indices)}
        return _Graph(
            [self.nodes[i] for i in indices],
            [[local[p] for p in self.parents[i]] for i in indices],
            [self.weight[i] for i in indices],
            self.startup,
            self.workers,
            self.parallel_cost,
            self.transient,
        )

    def bottom_levels(self, per_edge: float) -> list[float]:
        """Longest path from each node to the end: its own run time, plus ``per_edge`` and the rest per hop."""
        level = [0.0] * len(self.nodes)
        for i in range(len(self.nodes) - 1, -1, -1):
            level[i] = self.weight[i] + max((per_edge + level[c] for c in self.children[i]), default=0.0)
        return level

    def _work(self, labels: list[int]) -> dict[int, float]:
        """Each task's run time (its nodes' schedule on ``workers``), the start-up left out."""
        work: dict[int, float] = {}
        if self.workers <= 1:
            for i, label in enumerate(labels):
                work[label] = work.get(label, 0.0) + self.weight[i]
            return work
        members: dict[int, list[int]] = {}
        for i, label in enumerate(labels):
            members.setdefault(label, []).append(i)
        for label, indices in members.items():
            local = {i: k for k, i in enumerate(indices)}
            parents = [[local[p] for p in self.parents[i] if labels[p] == label] for i in indices]
            work[label] = _task_span(
                [self.nodes[i] for i in indices],
                [self.weight[i] for i in indices],
                parents,
                self.workers,
                self.parallel_cost,
                self.transient,
            )
        return work

    def evaluate(self, labels: list[int]) -> tuple[float, int]:
        """(makespan, tasks) of the grouping ``labels`` (node index → task id); infinite makespan if the task
        graph has a cycle."""
        work = self._work(labels)
        deps: dict[int, set[int]] = {}
        for i, label in enumerate(labels):
            label_deps = deps.setdefault(label, set())
            for p in self.parents[i]:
                if labels[p] != label:
                    label_deps.add(labels[p])
        waiting = {label: len(d) for label, d in deps.items()}
        users: dict[int, list[int]] = {label: [] for label in deps}
        for label, label_deps in deps.items():
            for dep in label_deps:
                users[dep].append(label)
        start = dict.fromkeys(deps, 0.0)
        ready = [label for label, count in waiting.items() if count == 0]
        makespan = 0.0
        while ready:
            label = ready.pop()
            end = start[label] + self.startup + work[label]
            makespan = max(makespan, end)
            for user in users[label]:
                start[user] = max(start[user], end)
                waiting[user] -= 1
                if waiting[user] == 0:
                    ready.append(user)
        if any(waiting.values()):  # a cycle between tasks: never chosen
            return float("inf"), len(deps)
        return makespan, len(deps)


def _makespan_keys(
    pipeline: Pipeline, fusable: Callable[[Node, Node], bool] | None, model: CostModel
) -> dict[Node, str]:
    """Best candidate per weakly connected component, then tasks of different components packed together."""
    graph = _Graph.of(pipeline, model)
    if fusable is None:
        same: Callable[[int, int], bool] = lambda a, b: True  # noqa: E731
    else:
        same = lambda a, b: fusable(graph.nodes[a], graph.nodes[b])  # noqa: E731
    chain_key = _chain_keys(pipeline, fusable)
    labels = [-1] * len(graph.nodes)
    offset, shortest = 0, 0.0
    for indices in graph.components():
        part = graph.subgraph(indices)

        def part_same(a: int, b: int, indices: list[int] = indices) -> bool:
            return same(indices[a], indices[b])

        part_labels, part_shortest = _best_candidate(part, part_same, [chain_key[n] for n in part.nodes])
        shortest = max(shortest, part_shortest)  # the parts run side by side
        for i, label in zip(indices, part_labels, strict=True):
            labels[i] = offset + label
        offset += len(indices)
    limit = shortest + SAME_ESTIMATE  # never more than that above the shortest candidate
    return _keys_from_labels(graph.nodes, _fewest_tasks(graph, same, _pack(graph, labels, same, limit), limit))


def _best_candidate(graph: _Graph, same: Callable[[int, int], bool], chain_keys: list[str]) -> tuple[list[int], float]:
    """The fewest tasks among the greedy variants, ``chains`` and a single task whose makespan is within
    :data:`SAME_ESTIMATE` of the shortest of them (then the shortest); and that shortest makespan."""
    n = len(graph.nodes)
    priority = graph.bottom_levels(graph.startup)
    candidates: list[list[int]] = []
    for rest_per_edge, fill in ((0.0, True), (graph.startup, True), (0.0, False)):
        levels = graph.bottom_levels(rest_per_edge)
        rest = [levels[i] - graph.weight[i] for i in range(n)]
        candidates.append(_greedy(graph, same, priority, rest, fill))
    chain_ids: dict[str, int] = {}
    candidates.append([chain_ids.setdefault(key, len(chain_ids)) for key in chain_keys])
    if all(same(0, i) for i in range(1, n)):
        candidates.append([0] * n)
    scored = [(*graph.evaluate(labels), position) for position, labels in enumerate(candidates)]
    shortest = min(makespan for makespan, _, _ in scored)
    # the fewest tasks among those whose estimate is the same (within SAME_ESTIMATE), then the shortest
    tied = [(tasks, makespan, position) for makespan, tasks, position in scored if makespan <= shortest + SAME_ESTIMATE]
    return candidates[min(tied)[2]], shortest


def _keys_from_labels(nodes: list[Node], labels: list[int]) -> dict[Node, str]:
    """Each task is keyed by its first node's name in topological order (unique, as node names are)."""
    first: dict[int, str] = {}
    for node, label in zip(nodes, labels, strict=True):
        first.setdefault(label, node.name)
    return {node: first[label] for node, label in zip(nodes, labels, strict=True)}


class _Tasks:
    """The tasks built so far by :func:`_greedy`: timing, openness and each task's pending consumers."""

    def __init__(self, rest: list[float], weight: list[float], startup: float):
        self.rest, self.weight, self.startup = rest, weight, startup
        self.start: list[float] = []
        self.work: list[float] = []
        self.open: list[bool] = []
        self.first: list[int] = []
        self.pending: list[set[int]] = []
        self.pending_work: list[float] = []
        self.by_tail: list[list[tuple[float, int]]] = []  # max-heaps (negated) over pending: run time + rest
        self.by_rest: list[list[tuple[float, int]]] = []  # and rest alone

    def new(self, start: float, first: int) -> int:
        self.start.append(start)
        self.work.append(0.0)
        self.open.append(True)
        self.first.append(first)
        self.pending.append(set())
        self.pending_work.append(0.0)
        self.by_tail.append([])
        self.by_rest.append([])
        return len(self.start) - 1

    def finish(self, task: int) -> float:
        return self.start[task] + self.startup + self.work[task]

    def _top(self, heap: list[tuple[float, int]], pending: set[int]) -> float | None:
        while heap and heap[0][1] not in pending:
            heapq.heappop(heap)
        return -heap[0][0] if heap else None

    def after(self, task: int, extra: Sequence[int] = ()) -> float:
        """Estimated time still needed after ``task`` ends for its pending consumers (plus ``extra``), if the
        task stays open: all of them join it, or each starts its own task, whichever is shorter."""
        pending = self.pending[task]
        total = self.pending_work[task]
        tail = self._top(self.by_tail[task], pending)
        rest = self._top(self.by_rest[task], pending)
        for c in extra:
            if c not in pending:
                total += self.weight[c]
            tail = max(tail or 0.0, self.weight[c] + self.rest[c])
            rest = max(rest or 0.0, self.rest[c])
        if tail is None:
            return 0.0
        if not self.open[task]:
            return self.startup + tail
        return min(total + (rest or 0.0), self.startup + tail)

    def after_closed(self, task: int) -> float:
        tail = self._top(self.by_tail[task], self.pending[task])
        return 0.0 if tail is None else self.startup + tail

    def add_pending(self, task: int, consumers: list[int]) -> None:
        pending = self.pending[task]
        for c in consumers:
            if c not in pending:
                pending.add(c)
                self.pending_work[task] += self.weight[c]
                heapq.heappush(self.by_tail[task], (-(self.weight[c] + self.rest[c]), c))
                heapq.heappush(self.by_rest[task], (-self.rest[c], c))

    def placed(self, task: int, node: int) -> None:
        if node in self.pending[task]:
            self.pending[task].discard(node)
            self.pending_work[task] -= self.weight[node]


def _greedy(
    graph: _Graph,
    same: Callable[[int, int], bool],
    priority: list[float],
    rest: list[float],
    fill: bool,
) -> list[int]:
    """One DSC-style pass (see the module docstring): node index → task id."""
    n = len(graph.nodes)
    startup, weight, parents, children = graph.startup, graph.weight, graph.parents, graph.children
    tasks = _Tasks(rest, weight, startup)
    alone = [_alone(children[v], weight, rest, startup) for v in range(n)]
    label = [-1] * n
    waiting = [len(p) for p in parents]
    free = [(-priority[i], i) for i in range(n) if waiting[i] == 0]
    heapq.heapify(free)
    last_child: dict[int, int] = {}  # task → the task last started for a node reading from it
    last_root = -1
    committed = 0.0
    while free:
        _, v = heapq.heappop(free)
        producers = sorted({label[p] for p in parents[v]})
        for t in producers:
            tasks.placed(t, v)
        finish = {t: tasks.finish(t) for t in producers}
        closed = {t: finish[t] + tasks.after_closed(t) for t in producers}
        ready = max(finish.values(), default=0.0)
        own = children[v]
        # a new task of its own: producers not joined are closed
        best_est = max(ready + startup + weight[v] + alone[v], *closed.values(), 0.0)
        best = (max(best_est, committed) if fill else best_est, 1, best_est, -1)
        options = [t for t in producers if tasks.open[t]]
        for t in [last_child.get(t, -1) for t in producers] if producers else [last_root]:
            if t >= 0 and tasks.open[t] and t not in options:
                options.append(t)
        for t in options:
            if not same(tasks.first[t], v):
                continue
            begin = max([tasks.start[t]] + [finish[p] for p in producers if p != t])
            end = begin + startup + tasks.work[t] + weight[v]
            est = max(end + tasks.after(t, own), *(closed[p] for p in producers if p != t), 0.0)
            option = (max(est, committed) if fill else est, 0, est, t)
            if option < best:
                best = option
        _, _, est, chosen = best
        committed = max(committed, est)
        if chosen < 0:
            chosen = tasks.new(ready, v)
            for t in producers:
                last_child[t] = chosen
            if not producers:
                last_root = chosen
        else:
            tasks.start[chosen] = max([tasks.start[chosen]] + [finish[p] for p in producers if p != chosen])
        tasks.work[chosen] += weight[v]
        label[v] = chosen
        for t in producers:
            if t != chosen:
                tasks.open[t] = False
        tasks.add_pending(chosen, own)
        for c in own:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(free, (-priority[c], c))
    return label


def _pack(graph: _Graph, labels: list[int], same: Callable[[int, int], bool], horizon: float) -> list[int]:
    """Fewer tasks for the same estimate: merge two tasks wherever the merged task, its nodes scheduled on the
    task's workers, ends within the latest finish of both that keeps the job within :data:`SAME_ESTIMATE` of the
    grouping chosen, and no cycle appears. Each round finds such pairs against the round's exact timings and keeps
    as many of them (all, else the first half, quarter …; else the same without the first) as keep the exact
    makespan within that bound: together they can cost more than each alone (two merges using the same slack, a
    cycle through both). Rounds go on while merges are found, within about :data:`PACK_BUDGET` node and edge
    visits (at least a few rounds), so the pass stays near-linear."""
    labels = list(labels)
    size = len(graph.nodes) + sum(len(p) for p in graph.parents)
    budget = PACK_BUDGET
    for done in range(len(graph.nodes)):
        if done >= MIN_PACK_ROUNDS and budget <= 0:
            break
        timing = _TaskTimes(graph, labels, horizon)
        timing.budget = max(0, budget // 4)  # exact spans of pairs: at most a quarter of what is left per round
        merges = timing.merges(same)
        budget -= 2 * size + (max(0, budget // 4) - timing.budget)  # the timings and the pairs tried
        found = False
        while merges and not found and (budget > 0 or done < MIN_PACK_ROUNDS):
            count = len(merges)
            while count and not found:
                trial = _merged(labels, merges[:count])
                budget -= 2 * size
                if graph.evaluate(trial)[0] <= horizon + 1e-9:
                    labels, found = trial, True
                count //= 2
            merges = [] if found or budget <= 0 else merges[1:]  # the first alone costs: the others without it
        if not found:
            break
    return labels


def _merged(labels: list[int], merges: list[tuple[int, int]]) -> list[int]:
    into = {absorbed: kept for kept, absorbed in merges}
    return [into.get(label, label) for label in labels]


class _TaskTimes:
    """Exact start, finish and latest finish of every task of a grouping (for :func:`_pack`)."""

    def __init__(self, graph: _Graph, labels: list[int], horizon: float = 0.0):
        self.graph = graph
        self.budget = 0  # node visits left for merged_work
        self.startup = graph.startup
        self.first: dict[int, int] = {}
        self.members: dict[int, list[int]] = {}
        self.total: dict[int, float] = {}  # run time of the task's nodes one after another
        self.work: dict[int, float] = graph._work(labels)
        self.producers: dict[int, set[int]] = {}
        self.users: dict[int, set[int]] = {}
        for i, label in enumerate(labels):
            self.first.setdefault(label, i)
            self.members.setdefault(label, []).append(i)
            self.total[label] = self.total.get(label, 0.0) + graph.weight[i]
            self.producers.setdefault(label, set())
            self.users.setdefault(label, set())
            for p in graph.parents[i]:
                if labels[p] != label:
                    self.producers[label].add(labels[p])
                    self.users[labels[p]].add(label)
        order = sorted(self.first, key=self.first.__getitem__)  # by first node: producers come first
        order = self._toposorted(order)
        self.start: dict[int, float] = {}
        for t in order:
            self.start[t] = max((self.finish(p) for p in self.producers[t]), default=0.0)
        self.makespan = max((self.finish(t) for t in order), default=0.0)
        self.horizon = max(self.makespan, horizon)  # what the job may take: the latest finishes count back from it
        self.latest: dict[int, float] = {}
        self._two_latest: dict[int, tuple[float, int, float]] = {}
        for t in reversed(order):
            best, best_user, second = self.horizon, -1, self.horizon
            for u in self.users[t]:
                value = self.latest_start(u)
                if value < best:
                    best, best_user, second = value, u, best
                elif value < second:
                    second = value
            self.latest[t] = best
            self._two_latest[t] = (best, best_user, second)
        self.order = order

    def _toposorted(self, order: list[int]) -> list[int]:
        waiting = {t: len(self.producers[t]) for t in order}
        position = {t: i for i, t in enumerate(order)}
        ready = [(position[t], t) for t in order if waiting[t] == 0]
        heapq.heapify(ready)
        result = []
        while ready:
            _, t = heapq.heappop(ready)
            result.append(t)
            for u in self.users[t]:
                waiting[u] -= 1
                if waiting[u] == 0:
                    heapq.heappush(ready, (position[u], u))
        return result

    def finish(self, t: int) -> float:
        return self.start[t] + self.startup + self.work[t]

    def latest_start(self, t: int) -> float:
        return self.latest[t] - self.startup - self.work[t]

    def _latest_except(self, t: int, skip: int) -> float:
        """The latest finish of ``t`` if ``skip`` no longer read from it."""
        best, best_user, second = self._two_latest[t]
        return second if best_user == skip else best

    def merged_work(self, a: int, b: int) -> float:
        """The run time of one task holding the nodes of tasks ``a`` and ``b`` (their schedule on the workers)."""
        graph = self.graph
        if graph.workers <= 1:
            return self.work[a] + self.work[b]
        indices = sorted(self.members[a] + self.members[b])
        self.budget -= len(indices)
        local = {i: k for k, i in enumerate(indices)}
        parents = [[local[p] for p in graph.parents[i] if p in local] for i in indices]
        return _task_span(
            [graph.nodes[i] for i in indices],
            [graph.weight[i] for i in indices],
            parents,
            graph.workers,
            graph.parallel_cost,
            graph.transient,
        )

    def _fits(self, start: float, a: int, b: int, latest: float) -> bool:
        """Whether tasks ``a`` and ``b`` merged, starting at ``start``, end by ``latest`` (a lower bound first)."""
        room = latest + 1e-9 - start - self.startup
        if self.work[a] + self.work[b] <= room:  # one after the other they fit (nearly always: the pass checks)
            return True
        if max(self.work[a], self.work[b], (self.total[a] + self.total[b]) / self.graph.workers) > room:
            return False
        return self.budget > 0 and self.merged_work(a, b) <= room

    def _reach(self) -> dict[int, int]:
        """Per task, the tasks reachable from it through one or more dependencies, as a bit set."""
        bit = {t: 1 << i for i, t in enumerate(self.order)}
        reach: dict[int, int] = {}
        for t in reversed(self.order):
            mask = 0
            for u in self.users[t]:
                mask |= bit[u] | reach[u]
            reach[t] = mask
        return reach

    def merges(self, same: Callable[[int, int], bool]) -> list[tuple[int, int]]:
        """(kept, absorbed) pairs, each task in at most one, smallest absorbed work first. With few tasks every pair
        is tried; otherwise a task with each of its producers and with the next few tasks of the same producers."""
        if len(self.order) <= ALL_PAIRS_TASKS:
            found = self._all_pairs(same)
        else:
            found = self._near_pairs(same)
        found.sort()
        used: set[int] = set()
        result = []
        for _, _, kept, absorbed in found:
            if kept not in used and absorbed not in used:
                used.update((kept, absorbed))
                result.append((kept, absorbed))
        return result

    def _all_pairs(self, same: Callable[[int, int], bool]) -> list[tuple[float, int, int, int]]:
        reach = self._reach()
        bit = {t: 1 << i for i, t in enumerate(self.order)}
        found: list[tuple[float, int, int, int]] = []
        for i, a in enumerate(self.order):
            for b in self.order[i + 1 :]:  # topological: b never reaches a
                if b in self.users[a]:
                    if any(reach[u] & bit[b] for u in self.users[a] if u != b):
                        continue  # a path a -> u -> b would become a cycle
                    others = [self.finish(z) for z in self.producers[b] if z != a]
                    begin = max([self.start[a], *others])
                    latest = min(self.latest[b], self._latest_except(a, b))
                elif reach[a] & bit[b]:
                    continue
                else:
                    begin = max(self.start[a], self.start[b])
                    latest = min(self.latest[a], self.latest[b])
                if self._fits(begin, a, b, latest) and same(self.first[a], self.first[b]):
                    kept, absorbed = (a, b) if self.first[a] < self.first[b] else (b, a)
                    found.append((self.work[absorbed], self.first[absorbed], kept, absorbed))
        return found

    def _near_pairs(self, same: Callable[[int, int], bool]) -> list[tuple[float, int, int, int]]:
        found: list[tuple[float, int, int, int]] = []
        siblings: dict[frozenset[int], list[int]] = {}
        for t in self.order:
            producers = self.producers[t]
            siblings.setdefault(frozenset(producers), []).append(t)
            for y in sorted(producers):
                # no path from y to another producer z (which would make a cycle): z starts before y ends
                others = [self.finish(z) for z in producers if z != y and self.start[z] < self.finish(y)]
                if len(others) < len(producers) - 1:
                    continue
                begin = max([self.start[y], *others])
                latest = min(self.latest[t], self._latest_except(y, t))
                if self._fits(begin, y, t, latest) and same(self.first[y], self.first[t]):
                    found.append((self.work[t], self.first[t], y, t))
        for group in siblings.values():
            group.sort(key=lambda t: (self.work[t], self.first[t]))
            paired: set[int] = set()
            for i, a in enumerate(group):  # each with the next few lighter-first siblings it fits with
                for b in group[i + 1 : i + 1 + SIBLINGS_TRIED]:
                    if a in paired:
                        break
                    fits = self._fits(self.start[a], a, b, min(self.latest[a], self.latest[b]))
                    if b not in paired and fits and same(self.first[a], self.first[b]):
                        kept, absorbed = (a, b) if self.first[a] < self.first[b] else (b, a)
                        found.append((self.work[absorbed], self.first[absorbed], kept, absorbed))
                        paired.update((a, b))
        return found


def _alone(consumers: list[int], weight: list[float], rest: list[float], startup: float) -> float:
    """What follows a new task's only node: its consumers all join it, or each starts a task (the shorter)."""
    if not consumers:
        return 0.0
    joined = sum(weight[c] for c in consumers) + max(rest[c] for c in consumers)
    return min(joined, startup + max(weight[c] + rest[c] for c in consumers))


def optimal_key_of(
    pipeline: Pipeline, fusable: Callable[[Node, Node], bool] | None = None, model: CostModel | None = None
) -> tuple[float, int, dict[Node, str]]:
    """The exact optimum of the ``makespan`` model, by enumerating set partitions with branch and bound.

    Exponential: meant for graphs of at most :data:`EXHAUSTIVE_MAX_NODES` nodes (benchmarks and tests). Returns
    (makespan, tasks, node → task key).

    Raises:
        PluginError: the pipeline has more than :data:`EXHAUSTIVE_MAX_NODES` nodes.
    """
    graph = _Graph.of(pipeline, model or CostModel())
    n = len(graph.nodes)
    if n > EXHAUSTIVE_MAX_NODES:
        raise PluginError(f"exhaustive grouping is limited to {EXHAUSTIVE_MAX_NODES} nodes, got {n}")
    same = (lambda a, b: True) if fusable is None else (lambda a, b: fusable(graph.nodes[a], graph.nodes[b]))
    best = _partitions(graph, same, [float("inf"), n + 1, None])
    return best[0], best[1], _keys_from_labels(graph.nodes, best[2])


class _OutOfBudget(Exception):
    pass


def _partitions(
    graph: _Graph, same: Callable[[int, int], bool], best: list[Any], limit: float | None = None, budget: int = 0
) -> list[Any]:
    """Branch and bound over the valid groupings of ``graph``; ``best`` is [makespan, tasks, labels] to beat.

    Without ``limit``: the least (makespan, tasks). With ``limit``: the fewest tasks (then the shortest) among the
    groupings whose makespan is at most ``limit``. ``budget``: give up after that many steps (0: never), keeping
    the best found so far."""
    n = len(graph.nodes)
    labels = [-1] * n
    blocks: list[list[int]] = []
    steps = [0]

    def reaches(source: int, targets: set[int]) -> bool:
        seen, stack = {source}, [source]
        while stack:
            b = stack.pop()
            for i in blocks[b]:
                for c in graph.children[i]:
                    lc = labels[c]
                    if lc >= 0 and lc not in seen:
                        if lc in targets:
                            return True
                        seen.add(lc)
                        stack.append(lc)
        return False

    def worse(makespan: float, tasks: int) -> bool:
        """Whether a partial grouping (its makespan and tasks can only grow) cannot beat ``best``."""
        if limit is None:
            return makespan > best[0] + 1e-9 or (makespan > best[0] - 1e-9 and tasks >= best[1])
        return makespan > limit + 1e-9 or tasks > best[1] or (tasks == best[1] and makespan >= best[0] - 1e-9)

    def search(v: int) -> None:
        steps[0] += 1
        if budget and steps[0] > budget:
            raise _OutOfBudget
        partial = graph.evaluate([label for label in labels[:v]]) if v else (0.0, 0)
        if worse(*partial):
            return
        if v == n:
            best[:] = [partial[0], partial[1], list(labels)]
            return
        producers = {labels[p] for p in graph.parents[v]}
        for b in range(len(blocks)):
            if same(blocks[b][0], v) and not reaches(b, producers - {b}):
                labels[v] = b
                blocks[b].append(v)
                search(v + 1)
                blocks[b].pop()
                labels[v] = -1  # unassigned again before the next block's cycle check
        labels[v] = len(blocks)
        blocks.append([v])
        search(v + 1)
        blocks.pop()
        labels[v] = -1

    try:
        search(0)
    except _OutOfBudget:
        pass
    return best


def _fewest_tasks(graph: _Graph, same: Callable[[int, int], bool], labels: list[int], limit: float) -> list[int]:
    """For a small graph, a grouping with fewer tasks than ``labels`` whose makespan is at most ``limit``, if a
    bounded exhaustive search finds one (the merge pass only merges whole tasks; this may also move nodes)."""
    if len(graph.nodes) > EXHAUSTIVE_MAX_NODES:
        return labels
    makespan, tasks = graph.evaluate(labels)
    best = _partitions(graph, same, [makespan, tasks, labels], limit=limit, budget=EXHAUSTIVE_BUDGET)
    return best[2]


def _namespace_keys(pipeline: Pipeline) -> tuple[dict[Node, str], dict[str, str]]:
    by_name = {node.name: node for node in pipeline.nodes}
    key_of: dict[Node, str] = {}
    kinds: dict[str, str] = {}
    for group in pipeline.group_nodes_by("namespace"):
        kinds[group.name] = group.type
        for name in group.nodes:
            key_of[by_name[name]] = group.name
    return key_of, kinds


def _tag_keys(pipeline: Pipeline) -> tuple[dict[Node, str], dict[str, str]]:
    key_of: dict[Node, str] = {}
    kinds: dict[str, str] = {}
    for node in pipeline.nodes:
        names = sorted(tag[len(GROUP_TAG_PREFIX) :] for tag in node.tags if tag.startswith(GROUP_TAG_PREFIX))
        if len(names) > 1:
            raise PluginError(
                f"node {node.name!r} has several group tags ({', '.join(GROUP_TAG_PREFIX + n for n in names)}): "
                "give each node at most one `group.<name>` tag"
            )
        if names and names[0]:
            key_of[node] = GROUP_TAG_PREFIX + names[0]
            kinds[key_of[node]] = "tag"
        else:
            key_of[node] = node.name
    return key_of, kinds


def _build_groups(pipeline: Pipeline, key_of: dict[Node, str], kinds: dict[str, str]) -> list[TaskGroup]:
    """Groups with their dependencies, topologically sorted; a cycle between groups is an error."""
    parents = pipeline.node_dependencies
    members: dict[str, list[Node]] = {}
    deps: dict[str, set[str]] = {}
    for node in pipeline.nodes:
        key = key_of[node]
        members.setdefault(key, []).append(node)
        group_deps = deps.setdefault(key, set())
        for parent in parents[node]:
            parent_key = key_of[parent]
            if parent_key != key:
                group_deps.add(parent_key)

    return [
        TaskGroup(key, tuple(members[key]), tuple(sorted(deps[key])), kinds.get(key, "nodes"))
        for key in _toposort(members, deps)
    ]


def _toposort(members: dict[str, list[Node]], deps: dict[str, set[str]]) -> list[str]:
    """Kahn's algorithm in first-seen order, so the result is deterministic and follows Kedro's node order."""
    children: dict[str, list[str]] = {key: [] for key in members}
    waiting = {key: len(group_deps) for key, group_deps in deps.items()}
    for key, group_deps in deps.items():
        for dep in group_deps:
            children[dep].append(key)
    position = {key: i for i, key in enumerate(members)}
    ready = [key for key in members if waiting[key] == 0]
    order: list[str] = []
    heap = [(position[key], key) for key in ready]
    heapq.heapify(heap)
    while heap:
        _, key = heapq.heappop(heap)
        order.append(key)
        for child in children[key]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(heap, (position[child], child))
    if len(order) < len(members):
        stuck = [key for key in members if waiting[key] > 0]
        raise PluginError(_cycle_message(_find_cycle(stuck, deps), members))
    return order


def _find_cycle(stuck: list[str], deps: dict[str, set[str]]) -> list[str]:
    """One cycle among the groups that could not be ordered (walk dependencies until a group repeats)."""
    stuck_set = set(stuck)
    path: list[str] = []
    seen: dict[str, int] = {}
    key = stuck[0]
    while key not in seen:
        seen[key] = len(path)
        path.append(key)
        key = min(dep for dep in deps[key] if dep in stuck_set)
    cycle = path[seen[key] :]
    cycle.reverse()  # walked against the data flow; report it along the flow
    # start where the pipeline starts, so the message does not depend on where the walk began
    first = min(range(len(cycle)), key=lambda i: stuck.index(cycle[i]))
    return cycle[first:] + cycle[:first]


def _cycle_message(cycle: list[str], members: dict[str, list[Node]]) -> str:
    def label(key: str) -> str:
        names = ", ".join(node.name for node in members[key])
        return f"{key} ({names})" if [key] != [n.name for n in members[key]] else key

    loop = " -> ".join(label(key) for key in [*cycle, cycle[0]])
    return (
        f"run_config.grouping: these task groups would depend on each other in a cycle: {loop}; "
        "put the nodes in between into the same group, or split the group"
    )
