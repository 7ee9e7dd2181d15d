"""Kubeflow Pipelines backend: the open-source engine Vertex AI Pipelines grew from, on a team's own cluster.

Declared here so that the configuration knows its facts; the client side is built on :class:`kfp.Client`.
"""

from __future__ import annotations

from typing import ClassVar

from .base import Backend, Capability


class KubeflowBackend(Backend):
    name: ClassVar[str] = "kubeflow"
    title: ClassVar[str] = "Kubeflow Pipelines (the top-level `host:`)"
    root_schemes: ClassVar[tuple[str, ...]] = ("gs", "s3")
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)
    needs_gcp_project: ClassVar[bool] = False
    job_ids_as_inputs: ClassVar[bool] = True
    required_keys: ClassVar[tuple[str, ...]] = ("host",)
    unsupported_keys: ClassVar[dict[str, str]] = {
        "service_account": "set the pipeline runner's service account in the KFP installation instead",
        "network": "KFP runs tasks on the cluster's own network",
        "encryption_key": "KFP has no per-job CMEK; encrypt the cluster's storage instead",
        "failure_policy": "KFP applies its own failure handling",
        "labels": "KFP runs carry no labels",
    }
