"""``run_config.kubeflow.pod``: where and how a task's pod runs on a Kubeflow Pipelines cluster.

Each entry (a node name, a tag or ``__default__``) holds Kubernetes pod settings that KFP 2.x takes in the pipeline's
Kubernetes platform spec (what ``kfp-kubernetes`` writes; compiled by :mod:`kedro_vertex_runner.compiler.platform`).
Every name and value is checked here against Kubernetes' own rules, so a typo is one line naming the key before
anything is compiled or submitted. Secrets are referred to by name and key only: their values are never read.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_KEY = "__default__"
MAX_TTL_SECONDS = 2**31 - 1  # KFP's pipelineConfig.resourceTtlOnCompletion is an int32

_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")  # Kubernetes' C_IDENTIFIER-ish rule for env var names
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")  # a key of a Secret or ConfigMap
# a Kubernetes resource quantity: a decimal number with an optional binary or decimal SI suffix (or an exponent)
_QUANTITY = re.compile(r"^\+?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][-+]?\d+)?$")


def _qualified_key(kind: str, key: str) -> str:
    """A label, annotation or node-selector key: ``[prefix/]name``, the prefix a DNS subdomain, the name at most
    63 letters, digits, ``-``, ``_`` or ``.``, starting and ending with a letter or digit."""
    prefix, slash, name = key.rpartition("/")
    if (slash and not _DNS_SUBDOMAIN.fullmatch(prefix)) or not _QUALIFIED_NAME.fullmatch(name):
        raise ValueError(
            f"{kind} key {key!a} is not a Kubernetes key: write [prefix/]name, the name at most 63 letters, digits, "
            "'-', '_' or '.' starting and ending with a letter or digit, the prefix a DNS name (e.g. example.com/team)"
        )
    return key


def _label_value(value: str) -> str:
    if not _LABEL_VALUE.fullmatch(value):
        raise ValueError(
            f"label value {value!a} is not a Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return value


def _object_name(kind: str) -> Any:
    def check(value: str) -> str:
        if not _DNS_SUBDOMAIN.fullmatch(value):
            raise ValueError(
                f"{kind} name {value!a} is not a Kubernetes object name: lowercase letters, digits, '-' and '.', "
                "starting and ending with a letter or digit, at most 253 characters"
            )
        return value

    return AfterValidator(check)


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            f"environment variable name {value!a}: use letters, digits, '_', '-' or '.', not a digit first"
        )
    return value


def _item_key(value: str) -> str:
    if not _CONFIG_KEY.fullmatch(value):
        raise ValueError(f"key {value!a} is not a Secret or ConfigMap key: letters, digits, '-', '_' or '.'")
    return value


def _mount_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"mount path {value!a} is not absolute: write it from /, e.g. /mnt/data")
    if ":" in value or any(part == ".." for part in value.split("/")):
        raise ValueError(f"mount path {value!a} may contain neither ':' nor '..'")
    return value.rstrip("/") or "/"


def check_quantity(value: Any) -> str:
    """A Kubernetes quantity (``1Gi``, ``512Mi``, ``2G``) above zero."""
    text = str(value).strip()
    match = _QUANTITY.fullmatch(text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"{text!a} is not a Kubernetes quantity above zero: write e.g. 1Gi, 512Mi or 2G")
    return text


_LabelKey = Annotated[str, AfterValidator(lambda key: _qualified_key("label", key))]
_AnnotationKey = Annotated[str, AfterValidator(lambda key: _qualified_key("annotation", key))]
_SelectorKey = Annotated[str, AfterValidator(lambda key: _qualified_key("node selector", key))]
_LabelValue = Annotated[str, AfterValidator(_label_value)]
_SecretName = Annotated[str, _object_name("secret")]
_ConfigMapName = Annotated[str, _object_name("config map")]
_PvcName = Annotated[str, _object_name("persistent volume claim")]
_EnvName = Annotated[str, AfterValidator(_env_name)]
_ItemKey = Annotated[str, AfterValidator(_item_key)]
_MountPath = Annotated[str, AfterValidator(_mount_path)]


class _Pod(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _text(value: Any) -> Any:
    # YAML reads `gpu: true` or `count: 2` as a boolean or a number; Kubernetes labels and keys are strings
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


class Toleration(_Pod):
    key: _LabelKey | None = Field(None, description="Taint key the toleration matches (empty: every key).")
    operator: Literal["Equal", "Exists"] = Field("Equal", description="'Equal' (key and value) or 'Exists' (key).")
    value: str | None = Field(None, description="Taint value, with operator 'Equal'.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect it matches (empty: every effect)."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, description="With effect 'NoExecute': how long the pod stays on a node that gets the taint."
    )

    @field_validator("value", mode="before")
    @classmethod
    def _value(cls, value: Any) -> Any:
        return _text(value)

    @field_validator("value")
    @classmethod
    def _value_rule(cls, value: str | None) -> str | None:
        return None if value is None else _label_value(value)

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        if self.operator == "Exists" and self.value:
            raise ValueError("operator 'Exists' matches any value: remove value, or use operator 'Equal'")
        if self.key is None and self.operator != "Exists":
            raise ValueError("a toleration without a key must use operator 'Exists' (it then tolerates every taint)")
        if self.toleration_seconds is not None and self.effect != "NoExecute":
            raise ValueError("toleration_seconds applies only to effect 'NoExecute': remove it or set that effect")
        return self


class NodeSelectorRequirement(_Pod):
    key: _SelectorKey = Field(description="Node label (or field) key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"] = Field(
        description="How the node's value is compared with `values`."
    )
    values: list[str] = Field(
        default_factory=list, description="Values for 'In'/'NotIn'; one integer for 'Gt'/'Lt'; none otherwise."
    )

    @field_validator("values", mode="before")
    @classmethod
    def _values(cls, value: Any) -> Any:
        return [_text(item) for item in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _consistent(self) -> NodeSelectorRequirement:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator!r} needs values")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator!r} takes no values: remove them")
        if self.operator in ("Gt", "Lt") and (len(self.values) != 1 or not self.values[0].lstrip("-").isdigit()):
            raise ValueError(f"operator {self.operator!r} takes exactly one integer value")
        return self


class NodeAffinityTerm(_Pod):
    match_expressions: list[NodeSelectorRequirement] = Field(
        default_factory=list, description="Node label requirements, all of which must hold."
    )
    match_fields: list[NodeSelectorRequirement] = Field(
        default_factory=list, description="Node field requirements (e.g. metadata.name)."
    )
    weight: int | None = Field(
        None, ge=1, le=100, description="Set: a preference of that weight (1-100); unset: a requirement."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> NodeAffinityTerm:
        if not self.match_expressions and not self.match_fields:
            raise ValueError("a node affinity term needs match_expressions or match_fields")
        return self


class SecretRef(_Pod):
    secret: _SecretName = Field(description="Name of the Kubernetes Secret.")
    key: _ItemKey = Field(description="Key in the Secret.")


class ConfigMapRef(_Pod):
    config_map: _ConfigMapName = Field(description="Name of the ConfigMap.")
    key: _ItemKey = Field(description="Key in the ConfigMap.")


class SecretVolume(_Pod):
    secret: _SecretName = Field(description="Name of the Kubernetes Secret.")
    mount_path: _MountPath = Field(description="Absolute path its keys appear under, one file each.")


class PvcVolume(_Pod):
    pvc: _PvcName = Field(description="Name of an existing PersistentVolumeClaim.")
    mount_path: _MountPath = Field(description="Absolute path it is mounted at.")


class PodSettings(_Pod):
    """Kubernetes pod settings of the tasks running a node, a tag's nodes or (``__default__``) every node."""

    node_selector: dict[_SelectorKey, _LabelValue] | None = Field(
        None, description="Node labels the pod's node must have, e.g. {cloud.google.com/gke-nodepool: gpu-pool}."
    )
    tolerations: list[Toleration] | None = Field(None, description="Taints the pod tolerates.")
    affinity: list[NodeAffinityTerm] | None = Field(
        None, description="Node affinity terms: required ones (no weight; any one may match) and preferred ones."
    )
    labels: dict[_LabelKey, _LabelValue] | None = Field(None, description="Labels of the pod.")
    annotations: dict[_AnnotationKey, str] | None = Field(None, description="Annotations of the pod.")
    image_pull_secrets: list[_SecretName] | None = Field(
        None, description="Secrets holding the private registry's credentials."
    )
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = Field(
        None, description="When the image is pulled: 'Always', 'IfNotPresent' or 'Never'."
    )
    secrets_as_env: dict[_EnvName, SecretRef] | None = Field(
        None, description="Environment variables read from Secrets: {ENV: {secret, key}}; values are never read here."
    )
    secrets_as_volume: list[SecretVolume] | None = Field(
        None, description="Secrets mounted as files: [{secret, mount_path}]."
    )
    config_maps_as_env: dict[_EnvName, ConfigMapRef] | None = Field(
        None, description="Environment variables read from ConfigMaps: {ENV: {config_map, key}}."
    )
    volumes: list[PvcVolume] | None = Field(None, description="Existing PersistentVolumeClaims: [{pvc, mount_path}].")
    shm_size: str | None = Field(None, description="Size of a memory-backed /dev/shm (e.g. 1Gi), for PyTorch loaders.")

    @field_validator("node_selector", "labels", "annotations", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        return {key: _text(item) for key, item in value.items()} if isinstance(value, dict) else value

    @field_validator("shm_size", mode="before")
    @classmethod
    def _shm(cls, value: Any) -> Any:
        return None if value is None else check_quantity(value)

    @model_validator(mode="after")
    def _no_collisions(self) -> PodSettings:
        mount_paths(self)
        return self


def mount_paths(settings: PodSettings) -> list[str]:
    """Every path ``settings`` mounts something at; two mounts at one path (or one inside /dev/shm, when shm_size
    mounts it) are refused.

    Raises:
        ValueError: naming the path and both mounts.
    """
    seen: dict[str, str] = {}
    mounts = [(v.mount_path, f"volume {v.pvc}") for v in settings.volumes or []]
    mounts += [(v.mount_path, f"secret {v.secret}") for v in settings.secrets_as_volume or []]
    if settings.shm_size:
        mounts.append(("/dev/shm", "shm_size"))
    for path, what in mounts:
        for other, other_what in seen.items():
            if path == other or path.startswith(other.rstrip("/") + "/") or other.startswith(path.rstrip("/") + "/"):
                raise ValueError(
                    f"mount path {path!a} of {what} collides with {other!a} of {other_what}: give each its own path"
                )
        seen[path] = what
    return list(seen)


def merged_pod(pod: dict[str, PodSettings], node_name: str, tags: Any = ()) -> PodSettings | None:
    """A node's pod settings, key by key: node name beats tag (the alphabetically first tag with an entry) beats
    ``__default__``; a key's value (a list or mapping) is replaced whole, never merged. None when nothing applies.

    Raises:
        ValueError: the merged settings mount two things at one path.
    """
    keys = [DEFAULT_KEY, *sorted(set(tags), reverse=True), node_name]
    layers = [pod[key] for key in keys if key in pod]
    if not layers:
        return None
    if len(layers) == 1:
        return layers[0]
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(
            {name: getattr(layer, name) for name in layer.model_fields_set if getattr(layer, name) is not None}
        )
    settings = PodSettings.model_construct(**merged)
    mount_paths(settings)
    return settings


def check_ttl(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_TTL_SECONDS:
        raise ValueError(f"expected a whole number of seconds from 1 to {MAX_TTL_SECONDS}, got {value!a}")
    return value


# ------------------------------------------------------------------------------------------------------------------
# GPUs on Kubeflow Pipelines: `run_config.resources.<name>.accelerator` is a Kubernetes extended resource name, which
# KFP's driver puts into the container's resource limits as it stands (what `set_accelerator_type` compiles to)

KUBERNETES_GPU = "nvidia.com/gpu"  # what a GPU count alone asks for on a backend other than vertex


def is_kubernetes_resource(name: str) -> bool:
    """Whether an accelerator is written the Kubernetes way (``<domain>/<name>``), not as a Vertex AI type."""
    return "/" in name


def check_extended_resource(name: str) -> str:
    """A Kubernetes extended resource name: ``<domain>/<name>`` (``nvidia.com/gpu``, ``amd.com/gpu``), the domain a
    DNS name outside ``kubernetes.io`` (Kubernetes' own resources are not accelerators)."""
    domain, _, resource = name.partition("/")
    if not _DNS_SUBDOMAIN.fullmatch(domain) or not _QUALIFIED_NAME.fullmatch(resource):
        raise ValueError(
            f"{name!a} is not a Kubernetes extended resource name: write <domain>/<name>, the domain a lowercase DNS "
            "name, the name at most 63 letters, digits, '-', '_' or '.' (e.g. nvidia.com/gpu, amd.com/gpu)"
        )
    if domain == "kubernetes.io" or domain.endswith(".kubernetes.io"):
        raise ValueError(
            f"{name!a} is one of Kubernetes' own resources, not an accelerator: write the device plugin's name, "
            "e.g. nvidia.com/gpu"
        )
    return name
