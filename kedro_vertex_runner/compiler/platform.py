"""The Kubernetes platform spec of a compiled pipeline: ``run_config.kubeflow.pod`` and ``run_config.kubeflow.ttl``
written as ``kfp-kubernetes`` writes them (``platforms.kubernetes.deploymentSpec.executors.<executor label>`` and
``platforms.kubernetes.pipelineConfig``), field by field, so KFP 2.x's driver places each task's pod.

The compiled spec dict carries it under :data:`PLATFORM_SPEC_KEY`, next to the PipelineSpec's own keys, and every
writer splits it off: ``compile -o x.yaml`` and the package ``kfp.Client`` reads get KFP's two YAML documents
(the PipelineSpec, then the platform spec), ``-o x.json`` one object ``{"pipeline_spec", "platform_spec"}`` (the
form KFP's API takes a pipeline in). A spec without pod settings or a TTL has no such key and compiles as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import PluginError
from ..pipeline_spec import PLATFORM_SPEC_KEY

if TYPE_CHECKING:
    from kedro.pipeline.node import Node

    from ..config import RunConfig
    from ..config.pod import PodSettings

SHM_VOLUME = "dshm"


def node_pod(run_config: RunConfig, node: Node) -> PodSettings | None:
    """``node``'s merged pod settings (node name beats tag beats ``__default__``).

    Raises:
        PluginError: the merged settings mount two things at one path.
    """
    from ..config.pod import merged_pod

    pod = run_config.kubeflow.pod
    if not pod:
        return None
    try:
        return merged_pod(pod, node.name, node.tags)
    except ValueError as exc:
        raise PluginError(f"run_config.kubeflow.pod, for node {node.name!r}: {exc}") from None


def pod_key(run_config: RunConfig, node: Node) -> str:
    """What two nodes must agree on to share a task: their pod settings as compiled ('' for none)."""
    settings = node_pod(run_config, node)
    return json.dumps(executor_config(settings), sort_keys=True) if settings else ""


def with_platform_spec(
    spec: dict[str, Any],
    run_config: RunConfig,
    executors: Mapping[str, Sequence[Node]],
    webhook_executor: str | None = None,
) -> dict[str, Any]:
    """``spec`` with the platform spec of its tasks (``executors``: executor label → the nodes its task runs) when
    the backend is Kubeflow Pipelines and pods have settings, runs a TTL or the exit task (``webhook_executor``)
    posts to ``run_config.kubeflow.webhook``; else ``spec`` unchanged. The webhook's Secret is the exit task's
    environment variable :data:`~kedro_vertex_runner.task.secret_manager.WEBHOOK_URL_ENV`, as
    ``kfp.kubernetes.use_secret_as_env`` writes it: only the Secret's name and key are in the spec.

    Raises:
        PluginError: the nodes of one task have different pod settings (a grouping that ignores them, ``tags`` or
            ``namespace``), naming the task and what to change.
    """
    from ..backends import backend_class

    hook = run_config.kubeflow.webhook if webhook_executor else None
    if not backend_class(run_config.backend).kubernetes_pods or not (
        run_config.kubeflow.pod or run_config.kubeflow.ttl or hook
    ):
        return spec
    configs: dict[str, Any] = {}
    for label, nodes in executors.items():
        keys: dict[str, list[str]] = {}
        for node in nodes:
            keys.setdefault(pod_key(run_config, node), []).append(node.name)
        if len(keys) > 1:
            detail = "; ".join(", ".join(names[:3]) for names in keys.values())
            raise PluginError(
                f"task {label.removeprefix('exec-')!r} would run nodes with different run_config.kubeflow.pod "
                f"settings ({detail}); give them the same pod settings, or change run_config.grouping"
            )
        settings = node_pod(run_config, nodes[0]) if nodes else None
        if settings is not None:
            config = executor_config(settings)
            if config:
                configs[label] = config
    if hook is not None and webhook_executor is not None:
        from ..task.secret_manager import WEBHOOK_URL_ENV

        config = configs.setdefault(webhook_executor, {})
        config.setdefault("secretAsEnv", []).append(
            {
                "keyToEnv": [{"envVar": WEBHOOK_URL_ENV, "secretKey": hook.key}],
                "optional": False,
                "secretName": hook.secret,
                "secretNameParameter": _name_parameter(hook.secret),
            }
        )
    kubernetes: dict[str, Any] = {}
    if configs:
        kubernetes["deploymentSpec"] = {"executors": configs}
    if run_config.kubeflow.ttl:
        kubernetes["pipelineConfig"] = {"resourceTtlOnCompletion": run_config.kubeflow.ttl}
    if not kubernetes:
        return spec
    return {**spec, PLATFORM_SPEC_KEY: {"platforms": {"kubernetes": kubernetes}}}


def _name_parameter(name: str) -> dict[str, Any]:
    return {"runtimeValue": {"constant": name}}


def executor_config(settings: PodSettings) -> dict[str, Any]:
    """One task's ``KubernetesExecutorConfig``, as ``kfp.kubernetes`` writes it into the platform spec (a
    ``Struct``: its numbers are floats, an int64 such as ``tolerationSeconds`` a string)."""
    config: dict[str, Any] = {}
    if settings.node_selector:
        config["nodeSelector"] = {"labels": dict(settings.node_selector)}
    if settings.tolerations:
        tolerations = []
        for toleration in settings.tolerations:
            item: dict[str, Any] = {"operator": toleration.operator}
            for name, value in (("key", toleration.key), ("value", toleration.value), ("effect", toleration.effect)):
                if value:
                    item[name] = value
            if toleration.toleration_seconds is not None:
                item["tolerationSeconds"] = str(toleration.toleration_seconds)
            tolerations.append(item)
        config["tolerations"] = tolerations
    if settings.affinity:
        terms = []
        for term in settings.affinity:
            out: dict[str, Any] = {}
            for name, requirements in (
                ("matchExpressions", term.match_expressions),
                ("matchFields", term.match_fields),
            ):
                if requirements:
                    out[name] = [
                        {"key": r.key, "operator": r.operator, **({"values": list(r.values)} if r.values else {})}
                        for r in requirements
                    ]
            if term.weight is not None:
                out["weight"] = float(term.weight)
            terms.append(out)
        config["nodeAffinity"] = terms
    metadata: dict[str, Any] = {}
    if settings.labels:
        metadata["labels"] = dict(settings.labels)
    if settings.annotations:
        metadata["annotations"] = dict(settings.annotations)
    if metadata:
        config["podMetadata"] = metadata
    if settings.image_pull_secrets:
        config["imagePullSecret"] = [
            {"secretName": name, "secretNameParameter": _name_parameter(name)} for name in settings.image_pull_secrets
        ]
    if settings.image_pull_policy:
        config["imagePullPolicy"] = settings.image_pull_policy
    if settings.secrets_as_env:
        by_secret: dict[str, list[dict[str, str]]] = {}
        for env, ref in settings.secrets_as_env.items():
            by_secret.setdefault(ref.secret, []).append({"envVar": env, "secretKey": ref.key})
        config["secretAsEnv"] = [
            {"keyToEnv": keys, "optional": False, "secretName": name, "secretNameParameter": _name_parameter(name)}
            for name, keys in by_secret.items()
        ]
    if settings.secrets_as_volume:
        config["secretAsVolume"] = [
            {
                "mountPath": volume.mount_path,
                "optional": False,
                "secretName": volume.secret,
                "secretNameParameter": _name_parameter(volume.secret),
            }
            for volume in settings.secrets_as_volume
        ]
    if settings.config_maps_as_env:
        by_map: dict[str, list[dict[str, str]]] = {}
        for env, map_ref in settings.config_maps_as_env.items():
            by_map.setdefault(map_ref.config_map, []).append({"configMapKey": map_ref.key, "envVar": env})
        config["configMapAsEnv"] = [
            {
                "configMapName": name,
                "configMapNameParameter": _name_parameter(name),
                "keyToEnv": keys,
                "optional": False,
            }
            for name, keys in by_map.items()
        ]
    if settings.volumes:
        config["pvcMount"] = [
            {"constant": volume.pvc, "mountPath": volume.mount_path, "pvcNameParameter": _name_parameter(volume.pvc)}
            for volume in settings.volumes
        ]
    if settings.shm_size:
        config["emptyDirMounts"] = [
            {"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": settings.shm_size, "volumeName": SHM_VOLUME}
        ]
    return config
