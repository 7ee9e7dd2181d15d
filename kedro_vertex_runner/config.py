"""The plugin's configuration: ``conf/<env>/vertexai.yml`` as pydantic models.

The file is read through the project's own ``OmegaConfigLoader`` (so ``${vertex:…}`` resolvers and
``conf_source`` work) under the config key ``vertexai``; :func:`load_config` registers that key itself, with a deep
merge of ``conf/<env>`` over ``conf/base``, so no ``settings.py`` edit is needed. Every validation problem becomes
one :class:`~kedro_vertex_runner.errors.ConfigError` line naming the file and the key path, e.g.
``conf/base/vertexai.yml: run_config.resources.train.cpu: expected a number of cores (8, 0.5) or a string like
'500m', got [1]``. What can only be checked against the Kedro project (resources entries naming real nodes or tags,
registered pipeline names) lives in :func:`check_against_pipeline` and :func:`check_pipeline_names`.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import math
import re
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .errors import ConfigError

if TYPE_CHECKING:
    from kedro.config import AbstractConfigLoader
    from kedro.pipeline import Pipeline

logger = logging.getLogger(__name__)

CONFIG_KEY = "vertexai"
CONFIG_PATTERNS = ["vertexai*", "vertexai*/**", "**/vertexai*"]
DEFAULT_KEY = "__default__"
# keys of the reference plugin that mean nothing on Vertex AI: accepted, warned about, dropped
IGNORED_RUN_CONFIG_KEYS = ("image_pull_policy", "ttl")

_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_REGION = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+$")
_VPC = re.compile(r"^projects/[^/\s]+/global/networks/[^/\s]+$")
_EXPERIMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_CPU = re.compile(r"^\d+(\.\d+)?m?$")
_MEMORY = re.compile(r"^\d+(\.\d+)?([KMGTPE]i?|[kmgtpe])?$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """Seconds from an int/float or a string such as ``"90"``, ``"30s"``, ``"15m"``, ``"2h"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 3600, '30m' or '2h', got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"expected a duration such as 3600, '30m' or '2h', got {value!r}")
        seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected a positive, finite duration such as 3600, '30m' or '2h', got {value!r}")
    return seconds


def _leading_number(value: Any) -> float:
    """The number a cpu/memory value starts with (``'500m'`` → 500.0), for the must-be-positive check."""
    return float(re.match(r"\d+(?:\.\d+)?", str(value)).group())  # type: ignore[union-attr]  # format checked


def _check_label_key(key: str) -> str:
    if not _LABEL_KEY.match(key):
        raise ValueError(
            f"label key {key!r} must start with a lowercase letter and use only lowercase letters, digits, '_' or "
            "'-' (at most 63 characters)"
        )
    return key


def _check_label_value(value: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise ValueError(
            f"label value {value!r} may use only lowercase letters, digits, '_' or '-' (at most 63 characters)"
        )
    return value


_LabelKey = Annotated[str, AfterValidator(_check_label_key)]
_LabelValue = Annotated[str, AfterValidator(_check_label_value)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class RetryPolicy(_Model):
    """How often a failed task is retried and how long to wait between attempts."""

    max_retries: int = Field(0, ge=0, le=10, description="Retries after the first failed attempt (0 = none).")
    backoff: float = Field(
        30, description="Seconds (or '30s', '5m') before the first retry.", json_schema_extra={"example": "30s"}
    )
    backoff_factor: float = Field(2.0, ge=1, description="Each further wait is multiplied by this factor.")
    max_backoff: float = Field(3600, description="Upper bound for one wait, in seconds (or '1h').")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `retries: 3` means three retries with the default backoff
        if isinstance(value, int) and not isinstance(value, bool):
            return {"max_retries": value}
        return value

    @field_validator("backoff", "max_backoff", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


class TaskSettings(_Model):
    """Settings for the tasks of one node name, one tag, or ``__default__``; unset fields fall through."""

    cpu: str | None = Field(None, description="CPU limit: a number of cores (8, 0.5) or millicores ('500m').")
    memory: str | None = Field(None, description="Memory limit, e.g. '512Mi', '4Gi', '16G'.")
    gpu: int | None = Field(None, ge=0, description="Number of accelerators (needs `accelerator`).")
    accelerator: str | None = Field(None, description="Accelerator type, e.g. NVIDIA_TESLA_T4, NVIDIA_L4.")
    retries: RetryPolicy | None = Field(None, description="Retry policy for these tasks: a count, or a mapping.")
    timeout: float | None = Field(None, description="Seconds (or '30m', '2h') before the task is killed.")
    caching: bool | None = Field(None, description="Let Vertex AI reuse a previous identical task's result.")
    image: str | None = Field(None, description="Container image for these tasks instead of `run_config.image`.")

    @field_validator("cpu", mode="before")
    @classmethod
    def _cpu(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)) or not _CPU.match(str(value)):
            raise ValueError(f"expected a number of cores (8, 0.5) or a string like '500m', got {value!r}")
        if not _leading_number(value):
            raise ValueError(f"expected a positive number of cores (8, 0.5, '500m'), got {value!r}")
        return str(value)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not _MEMORY.match(str(value)):
            raise ValueError(f"expected a size such as '512Mi', '4Gi' or '16G', got {value!r}")
        if not _leading_number(value):
            raise ValueError(f"expected a positive size such as '512Mi', '4Gi' or '16G', got {value!r}")
        return str(value)

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @model_validator(mode="before")
    @classmethod
    def _reference_gpu_key(cls, value: Any) -> Any:
        # the reference plugin wrote `nvidia.com/gpu: 1`
        if isinstance(value, dict) and "nvidia.com/gpu" in value:
            value = dict(value)
            value.setdefault("gpu", value.pop("nvidia.com/gpu"))
        return value



class HostAlias(_Model):
    ip: str = Field(description="IP address the hostnames resolve to inside the task.")
    hostnames: list[str] = Field(min_length=1, description="Hostnames that resolve to `ip`.")

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"expected an IP address such as '10.0.0.2', got {value!r}") from None
        return value


class NetworkConfig(_Model):
    vpc: str | None = Field(
        None, description="Peered VPC network, `projects/<number>/global/networks/<name>`."
    )
    host_aliases: list[HostAlias] = Field(
        default_factory=list, description="Extra name → IP mappings applied inside each task."
    )

    @field_validator("vpc")
    @classmethod
    def _vpc(cls, value: str | None) -> str | None:
        if value is not None and not _VPC.match(value):
            raise ValueError(f"expected 'projects/<project number>/global/networks/<name>', got {value!r}")
        return value


class ScheduleConfig(_Model):
    cron: str = Field(description="Five-field cron expression, e.g. '0 6 * * 1-5'.")
    timezone: str | None = Field(None, description="IANA time zone for `cron`, e.g. 'Europe/Warsaw'.")
    start_time: str | None = Field(None, description="RFC 3339 time before which no run starts.")
    end_time: str | None = Field(None, description="RFC 3339 time after which no run starts.")
    max_run_count: int | None = Field(None, gt=0, description="Stop after this many runs.")
    max_concurrent_run_count: int = Field(1, gt=0, description="Runs of this schedule allowed at once.")
    pipeline: str | None = Field(None, description="Kedro pipeline to schedule (default: `__default__`).")
    params: dict[str, Any] = Field(default_factory=dict, description="Runtime parameters for every scheduled run.")

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any]) -> dict[str, Any]:
        def check(path: str, item: Any) -> None:
            if item is None:
                raise ValueError(f"{path}: null cannot be a pipeline parameter; give it a value or remove the key")
            if isinstance(item, float) and not math.isfinite(item):
                raise ValueError(f"{path}: {item!r} is not a finite number; give a finite number or a string")
            for key, nested in (item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list)
                                else ()):
                check(f"{path}.{key}", nested)

        for key, item in value.items():
            check(str(key), item)
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        validate_cron(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        import zoneinfo

        if value is None:
            return None
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            if zoneinfo.available_timezones():  # without a tz database, leave the check to Vertex AI
                raise ValueError(
                    f"expected an IANA time zone such as 'Europe/Warsaw' or 'UTC', got {value!r}"
                ) from None
        return value

    @field_validator("start_time", "end_time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> Any:
        import datetime

        if value is None:
            return None
        if isinstance(value, datetime.datetime):  # YAML parses unquoted timestamps
            return value.isoformat()
        try:
            parsed = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"expected an RFC 3339 time such as '2025-01-31T06:00:00Z', got {value!r}") from None
        if parsed.tzinfo is None:
            raise ValueError(f"expected an RFC 3339 time with a zone, e.g. '2025-01-31T06:00:00Z', got {value!r}")
        return str(value)


class MlflowConfig(_Model):
    enabled: bool | None = Field(
        None, description="Track runs in MLflow; default: on when kedro-mlflow is installed and configured."
    )
    audience: str | None = Field(
        None,
        description="Mint a Google identity token for this audience in every task (MLflow behind IAP/Cloud Run).",
    )


class LocalConfig(_Model):
    max_workers: int | None = Field(None, gt=0, description="Tasks run at once by the local backend (default: CPUs).")


class RunConfig(_Model):
    image: str = Field(description="Container image every task runs in (e.g. 'europe-docker.pkg.dev/p/r/img:tag').")
    root: str = Field(
        min_length=1,
        description="Job storage root, 'gs://bucket/path'. With backend 'vertex', 'bucket/path' means the same; "
        "with backend 'local', a path without a scheme is a directory relative to the project. Undeclared "
        "datasets live under `<root>/<run id>/`.",
    )
    backend: Literal["vertex", "local"] = Field(
        "vertex", description="Where `kedro run --runner=VertexRunner` runs the job: 'vertex' or 'local'."
    )
    experiment_name: str | None = Field(None, description="Vertex AI experiment the runs are attached to.")
    experiment_description: str | None = Field(None, description="Description of that experiment.")
    scheduled_run_name: str | None = Field(None, description="Display name of scheduled runs (default: pipeline).")
    description: str | None = Field(None, description="Description of the compiled pipeline.")
    service_account: str | None = Field(None, description="Service account email the tasks run as.")
    labels: dict[_LabelKey, _LabelValue] = Field(default_factory=dict, description="Labels attached to every job.")
    network: NetworkConfig = Field(default_factory=NetworkConfig, description="VPC peering and host aliases.")
    resources: dict[str, TaskSettings] = Field(
        default_factory=dict,
        description="Task settings per node name or tag, and `__default__`; node name beats tag beats default.",
    )
    retries: RetryPolicy = Field(default_factory=RetryPolicy, description="Job-wide retry policy (count or mapping).")
    timeout: float | None = Field(None, description="Job-wide task timeout in seconds (or '30m', '2h').")
    caching: bool = Field(False, description="Job-wide Vertex AI task caching.")
    grouping: Literal["chains", "none", "namespace", "tags"] = Field(
        "chains",
        description="How nodes become tasks: 'chains' fuses linear chains (never loses parallelism), 'none' one "
        "task per node, 'namespace' one task per top-level namespace, 'tags' nodes tagged `group.<name>`.",
    )
    on_exit_pipeline: str | None = Field(None, description="Kedro pipeline run after the job, whatever its outcome.")
    pipeline_registry: str | None = Field(
        None,
        description="Kubeflow Pipelines repository in Artifact Registry for `kedro vertexai upload-pipeline`, "
        "'https://<region>-kfp.pkg.dev/<project>/<repo>'.",
    )
    template_uri: str | None = Field(
        None,
        description="Run and schedule this registry template (a URI, or a tag of this pipeline's package in "
        "`pipeline_registry`) instead of compiling; `--template-uri` overrides it.",
    )
    code: Literal["image", "upload"] = Field(
        "image",
        description="Where tasks get the project's code and conf/: 'image' (built into `image`) or 'upload' "
        "(packaged at submit to `<root>/code/<sha256>/`, unpacked by every task; the image needs only the "
        "dependencies).",
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for every task.")
    schedules: dict[str, ScheduleConfig] = Field(default_factory=dict, description="Named schedules.")
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig, description="MLflow tracking through kedro-mlflow.")
    local: LocalConfig = Field(default_factory=LocalConfig, description="Local backend settings.")

    @model_validator(mode="before")
    @classmethod
    def _compat(cls, value: Any, info: ValidationInfo) -> Any:
        # keys of the reference plugin: ignored ones warn (a config written for it keeps working), renamed ones move
        if not isinstance(value, dict):
            return value
        value = dict(value)
        files = (info.context or {}).get("files") or []
        for key in IGNORED_RUN_CONFIG_KEYS:
            if key in value:
                value.pop(key)
                where = file_defining(files, ("run_config", key))
                logger.warning(
                    "%s: run_config.%s is ignored: it has no meaning on Vertex AI Pipelines; remove it", where, key
                )
        if "vertex_ai_networking" in value and "network" not in value:
            value["network"] = value.pop("vertex_ai_networking")
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    _written_root: str | None = PrivateAttr(default=None)  # `root` as written, before _root_for_backend

    @model_validator(mode="after")
    def _root_for_backend(self) -> RunConfig:
        # `data/vertex_runs` is a folder for the local backend but the reference plugin's `bucket/path` shorthand
        # for Vertex AI: decide once, here, so that every later reader sees an unambiguous root
        self._written_root = self.root
        self.root = normalise_root(self.root, self.backend)
        return self

    @field_validator("experiment_name")
    @classmethod
    def _experiment(cls, value: str | None) -> str | None:
        if value is not None and not _EXPERIMENT.match(value):
            raise ValueError(
                f"experiment name {value!r} may use only lowercase letters, digits and '-' (at most 128 characters)"
            )
        return value

    @field_validator("labels", "env", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        # YAML reads `version: 2` or `debug: true` as numbers/booleans; labels and env values are strings
        if isinstance(value, dict):
            return {k: _scalar_text(v) for k, v in value.items()}
        return value

    def settings_for(self, node_name: str, tags: Any = ()) -> TaskSettings:
        """The effective settings of one node, field by field.

        Node name beats tag beats ``__default__`` beats the job-wide ``retries``/``timeout``/``caching``; when
        several tags of a node have entries, the alphabetically first tag wins, so the result never depends on
        the order tags were declared in. An ``accelerator`` without a ``gpu`` count means one GPU.
        """
        merged: dict[str, Any] = {"retries": self.retries, "timeout": self.timeout, "caching": self.caching}
        for layer in self._layers(node_name, tags):
            merged.update(layer.model_dump(exclude_unset=True, exclude_none=True))
            if layer.retries is not None:
                merged["retries"] = layer.retries
        if merged.get("accelerator") and not merged.get("gpu"):
            merged["gpu"] = 1
        return TaskSettings.model_construct(**merged)

    def _layers(self, node_name: str, tags: Any) -> list[TaskSettings]:
        """The ``resources`` entries that apply to a node, lowest precedence first."""
        keys = [DEFAULT_KEY, *sorted(set(tags), reverse=True), node_name]
        return [self.resources[key] for key in keys if key in self.resources]

    def _layer_keys(self, node_name: str, tags: Any) -> list[str]:
        keys = [DEFAULT_KEY, *sorted(set(tags), reverse=True), node_name]
        return [key for key in keys if key in self.resources]


class PluginConfig(_Model):
    """The whole ``vertexai.yml``."""

    project_id: str = Field(min_length=1, description="Google Cloud project id.")
    region: str = Field(description="Vertex AI region, e.g. 'europe-west1'.")
    api_endpoint: str | None = Field(
        None, description="Override of the Vertex AI API endpoint (regional or Private Service Connect)."
    )
    run_config: RunConfig = Field(description="How the pipeline is compiled and run.")

    # the files the config was read from, lowest precedence first (names the file in later errors)
    _files: list[Path] = PrivateAttr(default_factory=list)

    def with_backend(self, backend: str) -> PluginConfig:
        """This config run on ``backend`` (e.g. ``--runner-params backend=local``): ``root`` is read again as
        written, as it would be for that backend (``bucket/path`` is a folder locally, ``gs://bucket/path`` on
        Vertex AI)."""
        if backend == self.run_config.backend:
            return self
        written = self.run_config._written_root or self.run_config.root
        run_config = self.run_config.model_copy(
            update={"backend": backend, "root": normalise_root(written, backend)}
        )
        return self.model_copy(update={"run_config": run_config})

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.match(value):
            raise ValueError(f"expected a Google Cloud region such as 'europe-west1' or 'us-central1', got {value!r}")
        return value

    @property
    def gcs_root(self) -> str:
        """``run_config.root``: already a ``gs://`` URL for the vertex backend (``bucket/path`` was expanded when
        the config was validated); a local directory stays one, and the vertex backend rejects it."""
        return self.run_config.root

    @property
    def source_files(self) -> list[Path]:
        """The ``vertexai.yml`` files this config was read from, lowest precedence first (may be empty)."""
        return list(self._files)


def _scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value  # strings stay; mappings and lists fail validation with a clear message


def normalise_root(root: str, backend: str | None = None) -> str:
    """The storage root as the backend reads it.

    For ``backend="vertex"``, ``bucket/path`` becomes ``gs://bucket/path``; URLs and explicit local paths
    (absolute, ``./…``, ``~/…``) stay. Otherwise (the local backend, or a root already normalised when the
    config was validated) ``root`` is returned unchanged: a scheme-less path is a local directory.
    """
    if backend != "vertex" or "://" in root or root.startswith(("/", ".", "~")):
        return root
    return f"gs://{root}"


def validate_cron(expression: str) -> None:
    """Raise ``ValueError`` unless ``expression`` is a five-field cron expression (Vertex AI's dialect)."""
    fields = str(expression).split()
    if len(fields) != 5:
        raise ValueError(f"expected a five-field cron expression like '0 6 * * 1', got {expression!r}")
    limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    names = [None, None, None, "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC", "SUN MON TUE WED THU FRI SAT"]
    for field, (low, high), name_list in zip(fields, limits, names):
        for part in field.split(","):
            base, _, step = part.partition("/")
            if step and (not step.isdigit() or int(step) == 0):
                raise ValueError(f"bad step {step!r} in cron expression {expression!r}")
            if base == "*":
                continue
            for bound in base.split("-"):
                if name_list and bound.upper() in name_list.split():
                    continue
                if not bound.isdigit() or not low <= int(bound) <= high:
                    raise ValueError(
                        f"cron field {field!r} in {expression!r} must be '*' or numbers from {low} to {high}"
                    )


# --------------------------------------------------------------------------------------------------------------
# loading


def register_config_pattern(config_loader: Any) -> None:
    """Make ``config_loader["vertexai"]`` work without a ``settings.py`` edit.

    Also asks for a deep ("soft") merge of ``conf/<env>`` over ``conf/base``: with Kedro's default destructive
    merge, a ``conf/prod/vertexai.yml`` that only changes ``run_config.image`` would drop every other
    ``run_config`` key. A strategy the project chose in ``CONFIG_LOADER_ARGS`` is kept.
    """
    patterns = getattr(config_loader, "config_patterns", None)
    if isinstance(patterns, dict):
        patterns.setdefault(CONFIG_KEY, list(CONFIG_PATTERNS))
    strategies = getattr(config_loader, "merge_strategy", None)
    if isinstance(strategies, dict):
        strategies.setdefault(CONFIG_KEY, "soft")


def load_config(config_loader: AbstractConfigLoader, conf_source: str | Path | None = None) -> PluginConfig:
    """Load and validate ``vertexai.yml`` (or ``vertexai.yaml``) from the project's config loader.

    ``conf/<env>`` overrides ``conf/base`` key by key, as for any Kedro config; resolvers and ``conf_source`` work
    because the project's own loader reads the files.

    Raises:
        ConfigError: one line naming the file and key path, or saying to run ``kedro vertexai init``.
    """
    from kedro.config import MissingConfigException

    from . import resolvers  # noqa: F401 - ${vertex:…} values (e.g. the image init writes) resolve in any caller

    register_config_pattern(config_loader)
    source = Path(conf_source or getattr(config_loader, "conf_source", None) or "conf")
    files = _config_files(source, getattr(config_loader, "env", None), config_loader)
    try:
        raw = config_loader[CONFIG_KEY]
    except MissingConfigException as exc:
        if not str(exc).startswith("No files"):  # e.g. the env's folder does not exist
            raise ConfigError(f"{exc}: create it, or choose another env with --env") from None
        raw = None
    except Exception as exc:  # YAML syntax errors, interpolation errors, duplicate keys
        raise ConfigError(_loader_error(exc, files)) from None
    if not raw:
        raise ConfigError(
            f"no vertexai.yml found in {_display(source / 'base')} or the run env: run "
            "`kedro vertexai init PROJECT_ID REGION` in the project to create conf/base/vertexai.yml"
        )
    return validate_config(dict(raw), files)


def validate_config(raw: dict[str, Any], files: list[Path] | None = None) -> PluginConfig:
    """Validate an already loaded mapping; ``files`` (lowest precedence first) name the file in errors.

    Raises:
        ConfigError: one line: ``<file>: <key path>: <what is wrong and what to do>``.
    """
    files = list(files or [])
    try:
        config = PluginConfig.model_validate(raw, context={"files": files})
    except ValidationError as exc:
        # a misspelt key also makes the real one "missing": the unknown key is the better clue
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        error = errors[0]
        loc = tuple(str(part) for part in error["loc"] if part != "[key]")
        where = file_defining(files, loc)
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        raise ConfigError(f"{where}: {'.'.join(loc) or '(top level)'}: {_describe(error, loc)}{more}") from None
    config._files = files
    return config


def check_against_pipeline(
    config: PluginConfig,
    pipeline: Pipeline,
    *,
    pipeline_name: str | None = "__default__",
    files: list[Path] | None = None,
) -> None:
    """Check the parts of the config that refer to nodes: every ``run_config.resources`` entry must name a node
    or a tag of ``pipeline`` (``__default__`` excepted), and a GPU count needs an accelerator type.

    A misspelt entry would otherwise be ignored without a word and the node would run with the default machine.
    Pass the unfiltered pipeline(s) the entries may refer to (plus the on-exit pipeline), not a pipeline narrowed
    by ``--tags``/``--nodes``, or entries for the nodes left out would be reported. With ``pipeline_name=None``
    the message speaks of "any registered pipeline" (for a check against all of them at once).

    Raises:
        ConfigError: ``conf/base/vertexai.yml: run_config.resources.trian: names no node or tag of pipeline
        '__default__' (did you mean 'train'?)``.
    """
    files = config.source_files if files is None else list(files)
    run_config = config.run_config
    node_names = {node.name for node in pipeline.nodes}
    tags = {tag for node in pipeline.nodes for tag in node.tags}
    for key in run_config.resources:
        if key == DEFAULT_KEY or key in node_names or key in tags:
            continue
        where = file_defining(files, ("run_config", "resources", key))
        close = difflib.get_close_matches(key, sorted(node_names | tags), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ": use a node name, a tag or __default__"
        scope = "any registered pipeline" if pipeline_name is None else f"pipeline {pipeline_name!r}"
        raise ConfigError(f"{where}: run_config.resources.{key}: names no node or tag of {scope}{hint}")
    for node in sorted(pipeline.nodes, key=lambda n: n.name):
        settings = run_config.settings_for(node.name, node.tags)
        if settings.gpu and not settings.accelerator:
            keys = [k for k in run_config._layer_keys(node.name, node.tags) if run_config.resources[k].gpu]
            key = keys[-1]
            where = file_defining(files, ("run_config", "resources", key, "gpu"))
            raise ConfigError(
                f"{where}: run_config.resources.{key}.gpu: a GPU count needs an accelerator type: add e.g. "
                f"`accelerator: NVIDIA_TESLA_T4` to this entry (node {node.name!r} has none)"
            )


def check_pipeline_names(config: PluginConfig, registered: Any, files: list[Path] | None = None) -> None:
    """Check that ``run_config.on_exit_pipeline`` and every ``schedules.<name>.pipeline`` is a registered pipeline.

    Raises:
        ConfigError: one line naming the file, the key and the registered pipelines.
    """
    files = config.source_files if files is None else list(files)
    registered = sorted(registered)
    refs = [(("run_config", "on_exit_pipeline"), config.run_config.on_exit_pipeline)]
    refs += [(("run_config", "schedules", n, "pipeline"), s.pipeline) for n, s in config.run_config.schedules.items()]
    for loc, name in refs:
        if name is not None and name not in registered:
            close = difflib.get_close_matches(name, registered, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"registered: {', '.join(registered) or 'none'}"
            raise ConfigError(
                f"{file_defining(files, loc)}: {'.'.join(loc)}: no pipeline {name!r} is registered ({hint})"
            )


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}


def _describe(error: dict[str, Any], loc: tuple[str, ...] = ()) -> str:
    kind = error["type"]
    got = _short_repr(error.get("input"))
    if kind == "missing":
        return "required key is missing: add it (see `kedro vertexai init` or the README's configuration reference)"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1) if model and loc else []
        hint = f"did you mean {close[0]!r}?" if close else "see the README's configuration reference"
        return f"unknown key: remove it or fix its spelling ({hint})"
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", ""))
        expected = ", ".join(part.strip() for part in re.split(r",| or ", expected) if part.strip())
        return f"expected one of {expected}, got {got}"
    if kind in {"model_type", "model_attributes_type"} and loc and loc[-1] == "retries":
        return f"expected a number of retries (e.g. 3) or a mapping with max_retries, backoff, …, got {got}"
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {got}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in {"value_error", "assertion_error"}:
        return message
    message = message.replace("Input should be", "must be").replace("Input", "value")
    return f"{message[0].lower() + message[1:]}, got {got}"


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc`` (to suggest the key a typo meant)."""
    model: Any = PluginConfig
    parts = list(loc)
    while parts:
        field = model.model_fields.get(parts.pop(0)) if isinstance(model, type) else None
        if field is None:
            return None
        inner = _strip_optional(field.annotation)
        if typing.get_origin(inner) in (dict, list) and parts:
            parts.pop(0)  # the entry's name or index
        model = _nested_model(inner)
    return model


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _loader_error(exc: Exception, files: list[Path]) -> str:
    """One line for an error the config loader raised while reading the files (syntax, interpolation)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:  # YAML error without a file name (e.g. a duplicate key): find the file
        where = _file_with_yaml_error(files) or (_display(files[-1]) if files else "vertexai.yml")
        return f"{where}: line {mark.line + 1}: {problem}; fix the YAML there"
    if "incompatible container types" in first:  # conf/<env> has a list or value where conf/base has a mapping
        clash = _type_clash(files)
        if clash:
            return clash
    full_key = getattr(exc, "full_key", None)
    if full_key:
        return f"{file_defining(files, tuple(str(full_key).split('.')))}: {full_key}: {first}"
    if any(str(path) in first for path in files):
        for path in files:
            first = first.replace(str(path), _display(path))
        return first
    return f"{_display(files[-1]) if files else 'vertexai.yml'}: {first}"


def _file_with_yaml_error(files: list[Path]) -> str | None:
    import yaml
    from omegaconf import OmegaConf

    for path in reversed(files):
        try:
            OmegaConf.load(path)  # the YAML dialect Kedro's loader reads (duplicate keys are errors)
        except yaml.YAMLError:
            return _display(path)
        except Exception:
            continue
    return None


def _type_clash(files: list[Path]) -> str | None:
    """``<file>: <key path>: …`` for the first key that is a mapping in one file and not in a later one."""
    import yaml

    loaded = []
    for path in files:
        try:
            loaded.append((path, yaml.safe_load(path.read_text()) or {}))
        except (OSError, yaml.YAMLError):
            continue

    def walk(earlier: Any, later: Any, loc: tuple[str, ...]) -> tuple[str, ...] | None:
        if isinstance(earlier, dict) and isinstance(later, dict):
            for key in later:
                if key in earlier:
                    found = walk(earlier[key], later[key], (*loc, str(key)))
                    if found:
                        return found
            return None
        if isinstance(earlier, dict) != isinstance(later, dict):
            return loc
        return None

    for index, (path, data) in enumerate(loaded):
        for earlier_path, earlier in loaded[:index]:
            loc = walk(earlier, data, ())
            if loc:
                kind = "a mapping" if isinstance(_get(earlier, loc), dict) else "a single value or list"
                return (
                    f"{_display(path)}: {'.'.join(loc)}: {_display(earlier_path)} has {kind} here; "
                    "overrides must keep the same shape"
                )
    return None


def _get(data: Any, loc: tuple[str, ...]) -> Any:
    for part in loc:
        data = data[part]
    return data


def _config_files(source: Path, env: str | None, config_loader: Any) -> list[Path]:
    base = getattr(config_loader, "base_env", "base") or "base"
    default_run_env = getattr(config_loader, "default_run_env", "local") or "local"
    files: list[Path] = []
    for env_name in dict.fromkeys([base, env or default_run_env]):
        folder = source / env_name
        if folder.is_dir():
            # the files CONFIG_PATTERNS match: named vertexai*, or inside a vertexai* folder
            files += sorted(
                path
                for path in folder.rglob("*")
                if path.suffix in {".yml", ".yaml"}
                and any(part.startswith("vertexai") for part in path.relative_to(folder).parts)
            )
    return files


def file_defining(files: list[Path], loc: tuple[str, ...]) -> str:
    """The last file (highest precedence) that defines the longest prefix of ``loc``."""
    import yaml

    best, best_depth = None, -1
    for path in files:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except Exception:
            continue
        depth, node = 0, data
        for part in loc:
            if isinstance(node, dict) and part in node:
                node, depth = node[part], depth + 1
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node, depth = node[int(part)], depth + 1
            else:
                break
        if depth >= best_depth:
            best, best_depth = path, depth
    return _display(best) if best else "vertexai.yml"


def _display(path: Path) -> str:
    """``path`` relative to the working directory, else its last three parts (``conf/base/vertexai.yml``)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(Path(*path.parts[-3:])) if len(path.parts) > 3 else str(path)


# --------------------------------------------------------------------------------------------------------------
# reference table

# fields whose accepted values are wider than their Python type
_TYPE_OVERRIDES = {
    "cpu": "number or string",
    "memory": "string",
    "timeout": "duration",
    "backoff": "duration",
    "max_backoff": "duration",
}


def config_reference() -> str:
    """Markdown table of every key, generated from the models (pasted into the README).

    Durations are seconds or strings like '30s', '15m', '2h'; a model met a second time (e.g. ``retries`` inside
    a ``resources`` entry) points to its first description instead of being repeated.
    """
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    seen: dict[type[BaseModel], str] = {RetryPolicy: "run_config.retries"}  # described once, at the job level

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            annotation = field.annotation
            optional = _is_optional(annotation)
            inner = _strip_optional(annotation)
            nested = _nested_model(inner)
            description = (field.description or "").replace("|", "/")
            default = _render_default(field)
            if nested is not None and nested in seen and seen[nested] != key:
                kind = "integer or mapping" if nested is RetryPolicy else "mapping"
                kind += ", optional" if optional else ""
                rows.append(f"| `{key}` | {kind} | {default} | {description} Keys as in `{seen[nested]}`. |")
                continue
            if nested is not None:
                if _is_mapping(inner):
                    kind, child = "mapping of name → mapping", key + ".<name>."
                elif getattr(inner, "__origin__", None) is list:
                    kind, child = "list of mappings", key + "[]."
                else:
                    kind = "integer or mapping" if nested is RetryPolicy else "mapping"
                    child = key + "."
                kind += ", optional" if optional else ""
                rows.append(f"| `{key}` | {kind} | {default} | {description} |")
                seen[nested] = key
                walk(nested, child)
            else:
                kind = _TYPE_OVERRIDES.get(name) or _type_name(inner)
                kind += ", optional" if optional else ""
                rows.append(f"| `{key}` | {kind} | {default} | {description} |")

    walk(PluginConfig, "")
    return "\n".join(rows)


def _render_default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return ""
    if isinstance(value, BaseModel):
        return ""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        return f"`{value}`"
    return f"`{value!r}`"


def _is_optional(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation) and typing.get_origin(annotation) is not Literal


def _strip_optional(annotation: Any) -> Any:
    if _is_optional(annotation):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin is Literal:
        return "one of " + ", ".join(f"`{arg}`" for arg in typing.get_args(annotation))
    if origin is dict:
        _, value = typing.get_args(annotation)
        return "mapping" if value is Any else f"mapping of string → {_type_name(value)}"
    if origin is list:
        return f"list of {_type_name(typing.get_args(annotation)[0])}s"
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for inner in typing.get_args(candidate):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _is_mapping(annotation: Any) -> bool:
    return typing.get_origin(annotation) is dict


__all__ = [
    "DEFAULT_KEY",
    "ConfigError",
    "HostAlias",
    "LocalConfig",
    "MlflowConfig",
    "NetworkConfig",
    "PluginConfig",
    "RetryPolicy",
    "RunConfig",
    "ScheduleConfig",
    "TaskSettings",
    "check_against_pipeline",
    "check_pipeline_names",
    "config_reference",
    "load_config",
    "normalise_root",
    "parse_duration",
    "validate_config",
    "validate_cron",
]
