"""Kedro nodes → task groups: which nodes run together in one Vertex AI task.

Every Vertex AI task pays for its own container start (about two minutes on Vertex AI, a Kedro bootstrap of
seconds locally), so fewer tasks mean faster jobs; but a task runs its nodes one after another, so merging two
nodes that could run side by side makes the job slower. The modes (``run_config.grouping``):

``chains`` (default)
    Fuse a node into its predecessor when it is that predecessor's *only* consumer and the predecessor is its
    *only* producer. Such a pair can never run in parallel anyway, so fusing removes a container start without
    removing any parallelism: the default gives the fewest tasks that keep every branch of the graph concurrent.
    Nodes whose task settings differ (image, resources, retries, timeout, caching) are not fused, so a node given
    its own GPU or image in ``vertexai.yml`` keeps its own task.
``none``
    One task per node: the most visible in the Vertex AI console, the most container starts.
``namespace``
    One task per top-level namespace (Kedro's own ``Pipeline.group_nodes_by("namespace")``); nodes outside a
    namespace get a task each. Suits modular pipelines that are deployed as units.
``tags``
    Nodes tagged ``group.<name>`` share one task per name; untagged nodes get a task each.

``namespace`` and ``tags`` can merge nodes that have an outside node between them (A → X → B with A and B in one
group), which would make the groups depend on each other in a cycle; such a grouping is rejected with an error
naming the nodes. All functions here are pure and linear in the size of the pipeline: producer/consumer maps are
built once from Kedro's cached ``node_dependencies``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import PluginError

if TYPE_CHECKING:
    from kedro.pipeline import Pipeline
    from kedro.pipeline.node import Node

GROUPING_MODES = ("chains", "none", "namespace", "tags")
GROUP_TAG_PREFIX = "group."


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
    mode: str = "chains",
    fusable: Callable[[Node, Node], bool] | None = None,
) -> list[TaskGroup]:
    """Split ``pipeline`` into task groups, returned in topological order.

    Args:
        pipeline: the (already filtered) Kedro pipeline.
        mode: one of ``chains``, ``none``, ``namespace``, ``tags``.
        fusable: for ``chains``, whether a parent and its only child may share a task (default: always).

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
