"""Catalog datasets as KFP / Vertex AI artifacts: which datasets become which artifact type, their names in the
spec, and the executor output a task writes so the consoles show the data flowing between tasks and the run's
metrics.

The rule (the compiler applies it to the catalog's config, :func:`artifact_type`):

* an entry whose ``metadata`` says ``kedro-vertex-runner: {artifact: dataset|model|metrics|none}`` is that type
  (``none``: no artifact);
* a dataset class whose name holds ``Metric`` (kedro-datasets' ``tracking.MetricsDataset``, kedro-mlflow's
  ``MlflowMetricDataset`` and ``MlflowMetricsHistoryDataset``) is ``system.Metrics``, with or without a location;
* an entry with a location (``filepath`` or ``path``) is ``system.Model`` when its class name holds ``Model``
  (kedro-mlflow's ``MlflowModelLocalFileSystemDataset``, kedro-datasets' ``tensorflow.TensorFlowModelDataset``),
  else ``system.Dataset``; on a cloud backend only a remote location counts (a path inside the container is gone
  when the task ends);
* an intermediate the plugin stores under ``<root>/<run id>/`` because it passes between tasks is a
  ``system.Dataset``.

The task learns its artifacts from KFP's executor input (``--executor-input``, the ``{{$}}`` placeholder) and
writes ``executor_output.json`` where it says, in the form kfp's own ``kfp.dsl.executor.Executor`` writes:
``{"artifacts": {NAME: {"artifacts": [{"name", "uri", "metadata"}]}}}``, with every ``uri`` EMPTY: KFP's launcher
(``launcher_v2.go``, ``mergeRuntimeArtifacts``) then keeps the URI its driver assigned under the pipeline root, and
uploads the artifact's local file there; a URI of the executor output outside the pipeline root's bucket and prefix
fails the task ("failed to upload output artifact"). The dataset's real location goes into the artifact's metadata
(:data:`DATA_URI_KEY`), and a small JSON pointer file (:func:`write_pointer`) at the artifact's local path names it
too. Imported by the task entrypoint: no kfp, Kedro or cloud import here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

DATASET = "system.Dataset"
MODEL = "system.Model"
METRICS = "system.Metrics"
SCHEMA_VERSION = "0.0.1"
#: the catalog entry's ``metadata`` key the plugin reads, and the values ``artifact:`` takes
METADATA_KEY = "kedro-vertex-runner"
KINDS = {"dataset": DATASET, "model": MODEL, "metrics": METRICS, "none": None}
#: where a task's args carry KFP's executor input
EXECUTOR_INPUT_PLACEHOLDER = "{{$}}"
#: an artifact's metadata keys (and a pointer file's): the catalog dataset's name, where its data is
DATASET_KEY = "kedro_dataset"
DATA_URI_KEY = "data_uri"
#: the folder standing in for ``/`` when mapping an artifact's URI to its local path (``gs://b/x`` →
#: ``<folder>/gcs/b/x``); KFP's launcher reads ``ARTIFACT_LOCAL_PATH`` the same way for local debugging
MOUNT_ENV = "KEDRO_VERTEX_ARTIFACT_MOUNT"
_MOUNTS = (("gs://", "gcs"), ("minio://", "minio"), ("s3://", "s3"))
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@functools.lru_cache(maxsize=65536)
def artifact_name(dataset_name: str) -> str:
    """The artifact's name in the spec for ``dataset_name``: the name itself when it is a lower-case identifier,
    else its sanitised form with a short hash of the original (``data_science.model`` →
    ``data_science_model_1a2b3c4d``). A pure function of the name: the compiler and the task agree without a table.
    """
    if _NAME.match(dataset_name):
        return dataset_name
    base = re.sub(r"[^a-z0-9_]+", "_", dataset_name.lower()).strip("_")
    if not base or not base[0].isalpha():
        base = f"ds_{base}".rstrip("_")
    return f"{base[:50]}_{hashlib.sha1(dataset_name.encode('utf-8')).hexdigest()[:8]}"


def artifact_type(config: Mapping[str, Any] | None, remote_only: bool) -> str | None:
    """The artifact schema of a catalog entry's (resolved) ``config``, or None; see the module docstring.

    Raises:
        ValueError: ``metadata.kedro-vertex-runner.artifact`` is not one of :data:`KINDS` (the message says so).
    """
    if not isinstance(config, Mapping):
        return None
    metadata = config.get("metadata")
    own = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
    if isinstance(own, Mapping) and "artifact" in own:
        kind = str(own["artifact"]).lower()
        if kind not in KINDS:
            raise ValueError(
                f"metadata.{METADATA_KEY}.artifact: {own['artifact']!r} is not one of {', '.join(KINDS)}; use one of those, or remove the line"
            )
        return KINDS[kind]
    kind_value = config.get("type")
    class_name = (kind_value.__name__ if isinstance(kind_value, type) else str(kind_value or "")).rpartition(".")[2]
    if "Metric" in class_name:
        return METRICS
    location = config.get("filepath", config.get("path"))
    if not isinstance(location, str) or not location:
        return None
    if remote_only and ("://" not in location or location.startswith("file://")):
        return None
    return MODEL if "Model" in class_name else DATASET


def definition(schema: str) -> dict[str, Any]:
    """An artifact's definition in a component's ``inputDefinitions``/``outputDefinitions``, as kfp writes it."""
    return {"artifactType": {"schemaTitle": schema, "schemaVersion": SCHEMA_VERSION}}


# ---------------------------------------------------------------------------------------------------------------
# the task side


def dataset_uri(dataset: Any, version: str | None = None) -> str | None:
    """Where ``dataset`` (a Kedro dataset object) stores its data: ``gs://…``/``s3://…`` for a remote location, an
    absolute path for a local one, the version's path for a versioned dataset; None when it has no location."""
    path = getattr(dataset, "_filepath", None)
    if path is None:
        path = getattr(dataset, "_path", None)
    if path is None:
        return None
    if version is not None:
        from ..kedro_compat import versioned_path

        path = versioned_path(dataset, version) or path  # else the unversioned location still names the data
    text = str(path)
    protocol = getattr(dataset, "_protocol", None)
    if "://" in text:
        return text
    if protocol and protocol not in ("file", "local"):
        return f"{protocol}://{text}"
    return os.path.abspath(text)


def metric_values(name: str, data: Any) -> dict[str, float]:
    """The numbers of a metrics dataset's saved value, as ``system.Metrics`` metadata: a number is
    ``{name: value}``; a mapping keeps its numeric entries (kedro-mlflow's ``{"value": v, "step": s}`` is its
    value; a list of such is its last); anything else gives nothing."""

    def number(value: Any) -> float | None:
        if isinstance(value, Mapping) and "value" in value:
            value = value["value"]
        if isinstance(value, (list, tuple)) and value:
            value = number(value[-1])
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if math.isfinite(value) else None

    if isinstance(data, Mapping) and "value" not in data:
        found = {str(key): number(value) for key, value in data.items()}
        return {key: value for key, value in found.items() if value is not None}
    value = number(data)
    return {} if value is None else {name: value}


def output_artifacts(executor_input: str | None) -> tuple[str, dict[str, dict[str, Any]]] | None:
    """``(output file, {artifact name: the launcher's runtime artifact})`` from KFP's executor input (a runtime
    artifact holds ``name``, ``type.schemaTitle``, ``uri``, ``metadata``), or None when there is none (an
    unsubstituted placeholder, a task run by hand)."""
    if not executor_input or executor_input == EXECUTOR_INPUT_PLACEHOLDER:
        return None
    try:
        data = json.loads(executor_input)
        outputs = data.get("outputs") or {}
        output_file = outputs["outputFile"]
        found = {
            str(name): dict(((entry or {}).get("artifacts") or [{}])[0] or {})
            for name, entry in (outputs.get("artifacts") or {}).items()
        }
    except (ValueError, AttributeError, KeyError, TypeError, IndexError):
        return None
    return str(output_file), found


def schema_of(runtime: Mapping[str, Any]) -> str:
    """The schema title of a runtime artifact of the executor input."""
    kind = runtime.get("type")
    return str(kind.get("schemaTitle") or DATASET) if isinstance(kind, Mapping) else DATASET


def local_path(uri: str) -> str | None:
    """The local path of an artifact's ``uri`` inside the task's container, as KFP maps it (``LocalPathForURI`` in
    its launcher, ``Artifact.path`` in kfp): ``gs://`` → ``/gcs/``, ``minio://`` → ``/minio/``, ``s3://`` →
    ``/s3/``, under :data:`MOUNT_ENV` (else ``ARTIFACT_LOCAL_PATH``) when set; an absolute local path is itself.
    None for anything else (``oci://``, a relative path, no URI)."""
    for prefix, folder in _MOUNTS:
        if uri.startswith(prefix):
            mount = os.environ.get(MOUNT_ENV) or os.environ.get("ARTIFACT_LOCAL_PATH") or ""
            return f"{mount.rstrip('/')}/{folder}/{uri[len(prefix) :]}"
    if "://" in uri or not os.path.isabs(uri):
        return None
    return uri


def write_pointer(path: str, content: Mapping[str, Any]) -> None:
    """Write ``content`` as JSON at ``path`` (an output artifact's local path), creating its folders; never through
    a symbolic link at ``path``.

    Raises:
        OSError: the folder or the file cannot be written.
    """
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(path, flags, 0o666), "w", encoding="utf-8") as handle:
        json.dump(dict(content), handle, sort_keys=True)


def write_executor_output(output_file: str, artifacts: Mapping[str, Mapping[str, Any]]) -> None:
    """Write ``executor_output.json`` at ``output_file`` as kfp's ``Executor.write_executor_output`` does (one
    write, no rename: on Vertex AI the path is a gcsfuse mount): ``artifacts`` maps an artifact name to its runtime
    artifact (``name``, ``uri``, ``metadata``)."""
    content: dict[str, Any] = {"artifacts": {}}
    for key, runtime in sorted(artifacts.items()):
        item: dict[str, Any] = {"name": str(runtime.get("name", "")), "uri": str(runtime.get("uri", ""))}
        item["metadata"] = dict(runtime.get("metadata") or {})
        content["artifacts"][key] = {"artifacts": [item]}
    folder = os.path.dirname(output_file)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(output_file, "w", encoding="utf-8") as handle:
        json.dump(content, handle, sort_keys=True, allow_nan=False)
