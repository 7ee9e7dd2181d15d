"""Keys of the Kedro Kubeflow plugin (getindata's kedro-kubeflow), for ``backend: kubeflow``.

A team moving from kedro-kubeflow keeps its ``kubeflow.yml`` (read when there is no ``vertexai.yml``) or copies its
keys into ``vertexai.yml``: each key with an equivalent here is moved to it with one warning line saying what to
write instead; a key or value without one is one error line. This table is the only place that knows them:

=================  =================================================================================
kedro-kubeflow     here
=================  =================================================================================
image_pull_policy  run_config.kubeflow.pod.__default__.image_pull_policy
ttl                run_config.kubeflow.ttl
node_selectors     run_config.kubeflow.pod.<name>.node_selector
tolerations        run_config.kubeflow.pod.<name>.tolerations
affinity           run_config.kubeflow.pod.<name>.affinity (node affinity only)
extra_volumes      run_config.kubeflow.pod.<name>.volumes (a claim), .secrets_as_volume (a Secret),
                   .shm_size (a memory-backed emptyDir at /dev/shm with a size limit)
volume             refused: the run's own data volume; share data through ``root`` or an existing claim
resources          run_config.resources (``nvidia.com/gpu`` becomes ``gpu``, see :mod:`.reference`)
retry_policy       run_config.resources.<name>.retries (max_retries, backoff, backoff_factor)
node_merge_strategy  ``none``: run_config.grouping: none; ``full`` is refused
max_cache_staleness  ``P0D``: run_config.caching: false; another duration is refused
run_name, wait_for_completion, store_kedro_outputs_as_kfp_artifacts: dropped (they change nothing a task does)
=================  =================================================================================
"""

from __future__ import annotations

import logging
import typing
from typing import Any

from .pod import DEFAULT_KEY
from .sources import _short_repr

if typing.TYPE_CHECKING:
    from .reference import _Translation

logger = logging.getLogger(__name__)

# keys that change nothing a task does: dropped with one warning line
_DROPPED = {
    "run_name": "runs are named after the compiled pipeline and the time",
    "wait_for_completion": "`kedro run --runner=VertexRunner` waits for the run, `kedro vertexai run-once --no-wait` "
    "does not",
    "store_kedro_outputs_as_kfp_artifacts": "datasets pass between tasks through run_config.root, not KFP artifacts",
}
KUBEFLOW_PLUGIN_KEYS = (
    "image_pull_policy",
    "ttl",
    "node_selectors",
    "tolerations",
    "affinity",
    "extra_volumes",
    "volume",
    "retry_policy",
    "node_merge_strategy",
    "max_cache_staleness",
    *_DROPPED,
)


class _Pods:
    """Writes translated values into ``run_config.kubeflow``, one warning line per moved key."""

    def __init__(self, value: dict[str, Any], tr: _Translation) -> None:
        self.value, self.tr = value, tr
        self.kubeflow = tr.mapping(value.get("kubeflow"), ("kubeflow",))
        self.pod = tr.mapping(self.kubeflow.get("pod"), ("kubeflow", "pod"))

    def warn(self, loc: tuple[str, ...], instead: str) -> None:
        logger.warning(
            "%s: run_config.%s is a kedro-kubeflow key: write %s instead", self.tr.where(loc), ".".join(loc), instead
        )

    def set(self, loc: tuple[str, ...], name: str, key: str, item: Any) -> None:
        self.set_all(loc, name, {key: item})

    def set_all(self, loc: tuple[str, ...], name: str, items: dict[str, Any]) -> None:
        """``items`` into ``kubeflow.pod.<name>``, with one warning line for the key at ``loc``."""
        entry = self.tr.mapping(self.pod.get(name), ("kubeflow", "pod", name))
        for key, item in items.items():
            instead = f"run_config.kubeflow.pod.{name}.{key}"
            if key in entry and entry[key] != item:
                self.tr.fail(loc, f"contradicts {instead} ({_short_repr(entry[key])}): keep only {instead}")
        self.warn(loc, ", ".join(f"run_config.kubeflow.pod.{name}.{key}: {_flow(item)}" for key, item in items.items()))
        self.pod[name] = {**entry, **items}

    def done(self) -> None:
        if self.pod:
            self.kubeflow["pod"] = self.pod
        if self.kubeflow:
            self.value["kubeflow"] = self.kubeflow


def _flow(item: Any, limit: int = 300) -> str:
    """``item`` as one line of YAML to paste (``[{key: gpu, operator: Exists}]``), cut at ``limit``."""
    import yaml

    text = ascii(item) if not isinstance(item, (dict, list, str, int)) else ""
    if not text:
        text = yaml.safe_dump(item, default_flow_style=True, sort_keys=False, width=10**6).strip()
        text = text.removesuffix("\n...").strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def translate_kubeflow_keys(value: dict[str, Any], tr: _Translation) -> None:
    """Move the kedro-kubeflow keys of ``value`` (a ``run_config`` mapping, changed in place) to this plugin's."""
    if not any(key in value for key in KUBEFLOW_PLUGIN_KEYS):
        return
    pods = _Pods(value, tr)
    if "image_pull_policy" in value:
        pods.set(("image_pull_policy",), DEFAULT_KEY, "image_pull_policy", value.pop("image_pull_policy"))
    if "ttl" in value:
        ttl = value.pop("ttl")
        if pods.kubeflow.get("ttl") not in (None, ttl):
            tr.fail(("ttl",), f"contradicts run_config.kubeflow.ttl ({_short_repr(pods.kubeflow['ttl'])}): keep one")
        pods.warn(("ttl",), f"run_config.kubeflow.ttl: {_flow(ttl)}")
        pods.kubeflow["ttl"] = ttl
    for name, selector in tr.mapping(value.pop("node_selectors", None), ("node_selectors",)).items():
        pods.set(("node_selectors", str(name)), str(name), "node_selector", selector)
    for name, tolerations in tr.mapping(value.pop("tolerations", None), ("tolerations",)).items():
        pods.set(("tolerations", str(name)), str(name), "tolerations", tolerations)
    for name, affinity in tr.mapping(value.pop("affinity", None), ("affinity",)).items():
        loc = ("affinity", str(name))
        pods.set(loc, str(name), "affinity", _affinity_terms(tr.mapping(affinity, loc), loc, tr))
    for name, volumes in tr.mapping(value.pop("extra_volumes", None), ("extra_volumes",)).items():
        loc = ("extra_volumes", str(name))
        if not isinstance(volumes, list):
            tr.fail(loc, f"expected a list of volumes, got {_short_repr(volumes)}")
        pods.set_all(loc, str(name), _extra_volumes(volumes, loc, tr))
    if "volume" in value:
        if value.pop("volume"):
            tr.fail(
                ("volume",),
                "kedro-kubeflow's per-run data volume has no equivalent: tasks share data through run_config.root; "
                "mount an existing claim with run_config.kubeflow.pod.__default__.volumes: [{pvc, mount_path}], "
                "and remove volume",
            )
    for key, reason in _DROPPED.items():
        if key in value:
            value.pop(key)
            logger.warning(
                "%s: run_config.%s is a kedro-kubeflow key and is ignored: %s; remove it", tr.where((key,)), key, reason
            )
    _translate_run_keys(value, pods, tr)
    pods.done()


def _translate_run_keys(value: dict[str, Any], pods: _Pods, tr: _Translation) -> None:
    """``retry_policy``, ``node_merge_strategy`` and ``max_cache_staleness``: settings of this plugin's own."""
    policies = tr.mapping(value.pop("retry_policy", None), ("retry_policy",))
    resources = tr.mapping(value.get("resources"), ("resources",)) if policies else {}
    renamed = (("num_retries", "max_retries"), ("backoff_duration", "backoff"), ("backoff_factor", "backoff_factor"))
    for name, policy in policies.items():
        loc = ("retry_policy", str(name))
        if policy is None:
            continue
        policy = tr.mapping(policy, loc)
        unknown = sorted(set(policy) - {old for old, _ in renamed})
        if unknown:
            tr.fail((*loc, unknown[0]), "has no equivalent: remove it")
        retries = {new: policy[old] for old, new in renamed if old in policy}
        entry = tr.mapping(resources.get(name), ("resources", str(name)))
        instead = f"run_config.resources.{name}.retries"
        if entry.get("retries") not in (None, retries):
            tr.fail(loc, f"contradicts {instead} ({_short_repr(entry['retries'])}): keep only {instead}")
        pods.warn(loc, f"{instead}: {_flow(retries)}")
        resources[name] = {**entry, "retries": retries}
    if policies:
        value["resources"] = resources
    if "node_merge_strategy" in value:
        strategy = value.pop("node_merge_strategy")
        if strategy != "none":
            tr.fail(
                ("node_merge_strategy",),
                f"{_short_repr(strategy)} has no equivalent (one pod for the whole pipeline): use grouping: chains or "
                "makespan (nodes that fit together share a task)",
            )
        if value.get("grouping") not in (None, "none"):
            tr.fail(
                ("node_merge_strategy",), f"contradicts grouping: {_short_repr(value['grouping'])}: keep only grouping"
            )
        pods.warn(("node_merge_strategy",), "`grouping: none`")
        value["grouping"] = "none"
    if "max_cache_staleness" in value:
        staleness = value.pop("max_cache_staleness")
        if str(staleness).strip().upper() not in ("P0D", "PT0S", "0"):
            tr.fail(
                ("max_cache_staleness",),
                f"{_short_repr(staleness)} has no equivalent: caching is on or off here: write run_config.caching "
                "(and resources.<name>.caching)",
            )
        if value.get("caching") not in (None, False):
            tr.fail(("max_cache_staleness",), "contradicts run_config.caching: true: keep only caching")
        pods.warn(("max_cache_staleness",), "run_config.caching: false")
        value["caching"] = False


def _get(mapping: dict[str, Any], snake: str) -> Any:
    """A Kubernetes field as kedro-kubeflow's files write it, snake_case or camelCase."""
    head, *rest = snake.split("_")
    return mapping.get(snake, mapping.get(head + "".join(part.title() for part in rest)))


def _affinity_terms(affinity: dict[str, Any], loc: tuple[str, ...], tr: _Translation) -> list[dict[str, Any]]:
    for other in ("pod_affinity", "pod_anti_affinity"):
        if affinity.get(other):
            tr.fail((*loc, other), "has no equivalent (KFP places pods by node affinity only): remove it")
    unknown = sorted(set(affinity) - {"node_affinity", "pod_affinity", "pod_anti_affinity"})
    if unknown:
        tr.fail((*loc, unknown[0]), "is not a field of a Kubernetes affinity: remove it")
    node = tr.mapping(affinity.get("node_affinity"), (*loc, "node_affinity"))
    terms: list[dict[str, Any]] = []
    required = _get(node, "required_during_scheduling_ignored_during_execution") or {}
    for term in _get(tr.mapping(required, (*loc, "node_affinity")), "node_selector_terms") or []:
        terms.append(_term(tr.mapping(term, loc), None))
    for preferred in _get(node, "preferred_during_scheduling_ignored_during_execution") or []:
        preferred = tr.mapping(preferred, loc)
        terms.append(_term(tr.mapping(preferred.get("preference"), loc), preferred.get("weight")))
    if not terms:
        tr.fail(
            loc, "expected node_affinity with required_during_scheduling_ignored_during_execution or preferred terms"
        )
    return terms


def _term(term: dict[str, Any], weight: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("match_expressions", "match_fields"):
        if _get(term, key):
            out[key] = _get(term, key)
    if weight is not None:
        out["weight"] = weight
    return out


def _extra_volumes(volumes: list[Any], loc: tuple[str, ...], tr: _Translation) -> dict[str, Any]:
    """kedro-kubeflow's ``[{mount_path, volume: {name, <source>: {cls, params}}}]`` as pod settings."""
    out: dict[str, Any] = {}
    for index, entry in enumerate(volumes):
        here = (*loc, str(index))
        entry = tr.mapping(entry, here)
        mount_path = entry.get("mount_path")
        volume = tr.mapping(entry.get("volume"), (*here, "volume"))
        sources = {key: item for key, item in volume.items() if key != "name"}
        if len(sources) != 1:
            tr.fail((*here, "volume"), "expected a name and one volume source (a claim, a secret or an emptyDir)")
        kind, source = next(iter(sources.items()))
        source = tr.mapping(source, (*here, "volume", kind))
        params = tr.mapping(source.get("params", source), (*here, "volume", kind))
        if kind == "persistent_volume_claim" and _get(params, "claim_name"):
            out.setdefault("volumes", []).append({"pvc": _get(params, "claim_name"), "mount_path": mount_path})
        elif kind == "secret" and _get(params, "secret_name"):
            out.setdefault("secrets_as_volume", []).append(
                {"secret": _get(params, "secret_name"), "mount_path": mount_path}
            )
        elif kind == "empty_dir" and params.get("medium") == "Memory" and mount_path == "/dev/shm":
            if not _get(params, "size_limit"):
                tr.fail(
                    (*here, "volume", kind),
                    "a memory-backed /dev/shm needs a size here: write "
                    f"run_config.kubeflow.pod.{loc[-1]}.shm_size: 1Gi (or the size you need) instead",
                )
            out["shm_size"] = _get(params, "size_limit")
        else:
            tr.fail(
                (*here, "volume", kind),
                "has no equivalent: mount an existing claim (persistent_volume_claim), a secret, or a memory-backed "
                "emptyDir at /dev/shm with a size_limit",
            )
    return out
