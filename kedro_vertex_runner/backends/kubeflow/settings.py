"""The Kubeflow Pipelines backend's settings (``run_config.kubeflow``: namespace, pods, TTL, final status, webhook), and the keys of the
Kedro Kubeflow plugin it understands.

Light: pydantic and the plugin's config rules only (see :mod:`kedro_vertex_runner.backends.settings`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from ...config.pod import PodSettings, SecretRef, check_ttl
from ...config.rules import check_namespace
from ..settings import SettingsModel

if TYPE_CHECKING:
    from ...config.reference import _Translation


class KubeflowConfig(SettingsModel):
    """Kubeflow Pipelines settings."""

    node_keyed: ClassVar[tuple[str, ...]] = ("pod",)

    namespace: str | None = Field(
        None,
        description="Kubernetes namespace of the runs on a multi-user Kubeflow Pipelines (a profile's namespace, "
        "e.g. 'kubeflow-user-example-com'); default: the installation's own.",
    )

    pod: dict[str, PodSettings] = Field(
        default_factory=dict,
        description="Kubernetes pod settings per node name, tag or '__default__' (see 'Kubeflow: placing "
        "pods' in the docs).",
    )
    ttl: int | None = Field(
        None, description="Seconds a finished run's workflow and pods stay on the cluster before KFP deletes them."
    )
    final_status: bool = Field(
        True,
        description="Pass the exit task the job's final status (KFP 2.14 or later; false for an older KFP: the exit "
        "nodes' `params:job_final_status` is then None).",
    )
    webhook: SecretRef | None = Field(
        None,
        description="Kubernetes Secret holding the URL the exit task POSTs the job's final status to, as JSON: "
        "{secret, key} (Kubeflow's form of `notifications.webhook`; the value is never read here).",
    )

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str | None) -> str | None:
        return None if value is None else check_namespace(value)

    @field_validator("ttl", mode="before")
    @classmethod
    def _ttl(cls, value: Any) -> Any:
        return check_ttl(value)


def translate_reference_keys(value: dict[str, Any], tr: _Translation) -> None:
    """kedro-kubeflow's ``run_config`` keys mean something here: moved into ``run_config.kubeflow`` (see
    :mod:`kedro_vertex_runner.config.kubeflow_plugin`)."""
    from ...config.kubeflow_plugin import translate_kubeflow_keys

    translate_kubeflow_keys(value, tr)


SETTINGS = KubeflowConfig
#: the configuration the Kedro Kubeflow plugin wrote (``conf/<env>/kubeflow.yml``: its config key, and the plugin's
#: name), read for this backend when a project has no vertexai.yml
OTHER_PLUGIN_CONFIG = ("kubeflow", "kedro-kubeflow")
TEMPLATE = """\
  # Kubeflow Pipelines backend (`backend: kubeflow`, with `host` above). It ignores service_account, network,
  # encryption_key, failure_policy and labels (one warning line each when they are set).
  # kubeflow:
  #   namespace: kubeflow-user-example-com   # the profile namespace of a multi-user installation
  #   ttl: 1d                                # how long finished pods stay
  #   pod:                                   # per node name, tag or __default__, like `resources`
  #     train_model:
  #       node_selector: {cloud.google.com/gke-accelerator: nvidia-tesla-t4}
  #       tolerations:
  #         - key: nvidia.com/gpu
  #           operator: Exists                 # or Equal, with a value
  #           effect: NoSchedule               # PreferNoSchedule, NoExecute
  #         - key: dedicated
  #           operator: Equal
  #           value: ml
  #           effect: NoExecute
  #           toleration_seconds: 600
  #       affinity:
  #         - match_expressions:
  #             - key: topology.kubernetes.io/zone
  #               operator: In
  #               values: [europe-west1-b]
  #           match_fields: []
  #           weight: 50                     # a preference; without weight: a requirement
  #       labels: {team: ml}
  #       annotations: {example.com/owner: ml-team}
  #       image_pull_secrets: [registry-credentials]
  #       image_pull_policy: IfNotPresent
  #       secrets_as_env:
  #         API_TOKEN:
  #           secret: api
  #           key: token
  #       secrets_as_volume:
  #         - secret: gcp-key
  #           mount_path: /secrets/gcp
  #       config_maps_as_env:
  #         MODE:
  #           config_map: settings
  #           key: mode
  #       volumes:
  #         - pvc: shared-data
  #           mount_path: /mnt/shared
  #       shm_size: 1Gi                      # a memory-backed /dev/shm
  #   final_status: true                     # the exit task gets the job's final status (KFP 2.14+; false before)
  #   webhook: {secret: ops-hooks, key: url} # POST the final status to the URL held by this Kubernetes secret
"""
