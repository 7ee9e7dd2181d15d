"""The plugin's configuration: ``conf/<env>/vertexai.yml`` as pydantic models.

The file is read through the project's own ``OmegaConfigLoader`` (so ``${vertex:…}`` resolvers and
``conf_source`` work) under the config key ``vertexai``; :func:`load_config` registers that key itself, with a deep
merge of ``conf/<env>`` over ``conf/base``, so no ``settings.py`` edit is needed. Every validation problem becomes
one :class:`~kedro_vertex_runner.errors.ConfigError` line naming the file and the key path, e.g.
``conf/base/vertexai.yml: run_config.resources.train.cpu: expected a number of cores (8, 0.5) or a string like
'500m', got [1]``. What can only be checked against the Kedro project (resources entries naming real nodes or tags,
registered pipeline names) lives in :func:`check_against_pipeline` and :func:`check_pipeline_names`.

The package is split along what changes together: :mod:`.rules` (single values), :mod:`.schema` (the models),
:mod:`.reference` (kedro-vertexai keys), :mod:`.loading` (reading, validating, error text), :mod:`.sources` (which
file defines a key), :mod:`.checks` (checks against the pipeline) and :mod:`.table` (docs/reference.md's table).
Every name importers use is re-exported here. Importing it loads pydantic only: backends are looked up when a
config is validated, client libraries never.
"""

from __future__ import annotations

from ..errors import ConfigError
from .checks import check_against_pipeline, check_on_exit_pipeline, check_pipeline_names
from .loading import CONFIG_KEY, CONFIG_PATTERNS, load_config, register_config_pattern, validate_config
from .reference import IGNORED_RUN_CONFIG_KEYS
from .rules import (
    ACCELERATOR_TYPES,
    BUCKET_SCHEMES,
    MAX_BACKOFF_FACTOR,
    MAX_BACKOFF_SECONDS,
    MAX_CPU_CORES,
    MAX_GPUS,
    MAX_MEMORY_BYTES,
    MAX_TIMEOUT_SECONDS,
    check_host,
    check_namespace,
    check_project_id,
    check_region,
    check_root,
    check_vertex_experiment,
    cpu_cores,
    memory_bytes,
    normalise_root,
    parse_duration,
    root_schemes,
    validate_cron,
)
from .schema import (
    DEFAULT_KEY,
    DnsPeering,
    GroupingOptions,
    HostAlias,
    MlflowConfig,
    NetworkConfig,
    PluginConfig,
    PscInterface,
    RetryPolicy,
    RunConfig,
    ScheduleConfig,
    TaskSettings,
    check_for_backend,
    plugin_config_model,
    warn_ignored_keys,
)
from .sources import file_defining
from .table import config_reference, runner_params_reference

__all__ = [
    "ACCELERATOR_TYPES",
    "BUCKET_SCHEMES",
    "CONFIG_KEY",
    "CONFIG_PATTERNS",
    "DEFAULT_KEY",
    "IGNORED_RUN_CONFIG_KEYS",
    "MAX_BACKOFF_FACTOR",
    "MAX_BACKOFF_SECONDS",
    "MAX_CPU_CORES",
    "MAX_GPUS",
    "MAX_MEMORY_BYTES",
    "MAX_TIMEOUT_SECONDS",
    "ConfigError",
    "DnsPeering",
    "GroupingOptions",
    "HostAlias",
    "MlflowConfig",
    "NetworkConfig",
    "PluginConfig",
    "PscInterface",
    "RetryPolicy",
    "RunConfig",
    "ScheduleConfig",
    "TaskSettings",
    "check_against_pipeline",
    "check_for_backend",
    "check_host",
    "check_namespace",
    "check_on_exit_pipeline",
    "check_pipeline_names",
    "check_project_id",
    "check_region",
    "check_root",
    "check_vertex_experiment",
    "config_reference",
    "cpu_cores",
    "file_defining",
    "load_config",
    "memory_bytes",
    "normalise_root",
    "parse_duration",
    "plugin_config_model",
    "register_config_pattern",
    "root_schemes",
    "runner_params_reference",
    "validate_config",
    "validate_cron",
    "warn_ignored_keys",
]
