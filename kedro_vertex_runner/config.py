"""The plugin's configuration: ``conf/<env>/vertexai.yml`` as pydantic models.

The file is read through the project's own ``OmegaConfigLoader`` (so ``${vertex:…}`` resolvers, env overrides and
``conf_source`` all work) under the config key ``vertexai``; :func:`load_config` registers that key itself, so no
``settings.py`` edit is needed. Every validation problem becomes one :class:`~kedro_vertex_runner.errors.ConfigError`
line naming the file and the key path, e.g.
``conf/base/vertexai.yml: run_config.resources.train.cpu: expected a number or a string like '500m', got [1]``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError

if TYPE_CHECKING:
    from kedro.config import AbstractConfigLoader

logger = logging.getLogger(__name__)

CONFIG_KEY = "vertexai"
CONFIG_PATTERNS = ["vertexai*", "vertexai*/**", "**/vertexai*"]
DEFAULT_KEY = "__default__"
# keys of the reference plugin that mean nothing on Vertex AI: accepted, warned about, dropped
IGNORED_RUN_CONFIG_KEYS = ("image_pull_policy", "ttl")

_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
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
    if seconds <= 0:
        raise ValueError(f"expected a positive duration, got {value!r}")
    return seconds


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


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
    retries: RetryPolicy | None = Field(None, description="Retry policy: a count, or a mapping (see `retries`).")
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
        return str(value)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not _MEMORY.match(str(value)):
            raise ValueError(f"expected a size such as '512Mi', '4Gi' or '16G', got {value!r}")
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

    @model_validator(mode="after")
    def _gpu_needs_accelerator(self) -> TaskSettings:
        if self.accelerator and not self.gpu:
            self.gpu = 1
        return self


class HostAlias(_Model):
    ip: str = Field(description="IP address the hostnames resolve to inside the task.")
    hostnames: list[str] = Field(min_length=1, description="Hostnames that resolve to `ip`.")


class NetworkConfig(_Model):
    vpc: str | None = Field(
        None, description="Peered VPC network, `projects/<number>/global/networks/<name>`."
    )
    host_aliases: list[HostAlias] = Field(
        default_factory=list, description="Extra name → IP mappings applied inside each task."
    )


class ScheduleConfig(_Model):
    cron: str = Field(description="Five-field cron expression, e.g. '0 6 * * 1-5'.")
    timezone: str | None = Field(None, description="IANA time zone for `cron`, e.g. 'Europe/Warsaw'.")
    start_time: str | None = Field(None, description="RFC 3339 time before which no run starts.")
    end_time: str | None = Field(None, description="RFC 3339 time after which no run starts.")
    max_run_count: int | None = Field(None, gt=0, description="Stop after this many runs.")
    max_concurrent_run_count: int = Field(1, gt=0, description="Runs of this schedule allowed at once.")
    pipeline: str | None = Field(None, description="Kedro pipeline to schedule (default: `__default__`).")
    params: dict[str, Any] = Field(default_factory=dict, description="Runtime parameters for every scheduled run.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        validate_cron(value)
        return value


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
        description="Job storage root: 'gs://bucket/path' or 'bucket/path' for Vertex AI, or a local directory "
        "for the local backend. Undeclared datasets live under <root>/<run id>/."
    )
    backend: Literal["vertex", "local"] = Field(
        "vertex", description="Where `kedro run --runner=VertexRunner` runs the job: 'vertex' or 'local'."
    )
    experiment_name: str | None = Field(None, description="Vertex AI experiment the runs are attached to.")
    experiment_description: str | None = Field(None, description="Description of that experiment.")
    scheduled_run_name: str | None = Field(None, description="Display name of scheduled runs (default: pipeline).")
    description: str | None = Field(None, description="Description of the compiled pipeline.")
    service_account: str | None = Field(None, description="Service account email the tasks run as.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels attached to every job.")
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
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for every task.")
    schedules: dict[str, ScheduleConfig] = Field(default_factory=dict, description="Named schedules.")
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig, description="MLflow tracking through kedro-mlflow.")
    local: LocalConfig = Field(default_factory=LocalConfig, description="Local backend settings.")

    @model_validator(mode="before")
    @classmethod
    def _compat(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        value = dict(value)
        for key in IGNORED_RUN_CONFIG_KEYS:
            if key in value:
                value.pop(key)
                logger.warning("run_config.%s means nothing on Vertex AI and is ignored", key)
        if "vertex_ai_networking" in value and "network" not in value:
            value["network"] = value.pop("vertex_ai_networking")
        return value

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if not _LABEL_KEY.match(key):
                raise ValueError(
                    f"label key {key!r} must start with a lowercase letter and use only lowercase letters, "
                    "digits, '_' or '-' (at most 63)"
                )
            if not _LABEL_VALUE.match(str(value)):
                raise ValueError(
                    f"label value {value!r} of {key!r} may use only lowercase letters, digits, '_' or '-' "
                    "(at most 63)"
                )
        return labels

    @field_validator("labels", "env", mode="before")
    @classmethod
    def _stringify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, str) or isinstance(v, (dict, list)) else str(v) for k, v in value.items()}
        return value

    def settings_for(self, node_name: str, tags: Any = ()) -> TaskSettings:
        """The effective settings of one node: node name beats tag (sorted) beats ``__default__`` beats job-wide."""
        merged: dict[str, Any] = {"retries": self.retries, "timeout": self.timeout, "caching": self.caching}
        layers = [self.resources.get(DEFAULT_KEY)]
        layers += [self.resources.get(tag) for tag in sorted(tags, reverse=True)]
        layers.append(self.resources.get(node_name))
        for layer in layers:
            if layer is not None:
                merged.update(layer.model_dump(exclude_unset=True, exclude_none=True))
                if layer.retries is not None:
                    merged["retries"] = layer.retries
        return TaskSettings.model_construct(**merged)


class PluginConfig(_Model):
    """The whole ``vertexai.yml``."""

    project_id: str = Field(description="Google Cloud project id.")
    region: str = Field(description="Vertex AI region, e.g. 'europe-west1'.")
    api_endpoint: str | None = Field(
        None, description="Override of the Vertex AI API endpoint (regional or Private Service Connect)."
    )
    run_config: RunConfig

    @property
    def gcs_root(self) -> str:
        """``run_config.root`` as a URL: ``bucket/path`` becomes ``gs://bucket/path``; local paths stay."""
        return normalise_root(self.run_config.root)


def normalise_root(root: str) -> str:
    if "://" in root or root.startswith(("/", ".", "~")):
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
            if step and not step.isdigit():
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
    """Make ``config_loader["vertexai"]`` work without a ``settings.py`` edit."""
    patterns = getattr(config_loader, "config_patterns", None)
    if isinstance(patterns, dict):
        patterns.setdefault(CONFIG_KEY, list(CONFIG_PATTERNS))


def load_config(config_loader: AbstractConfigLoader, conf_source: str | Path | None = None) -> PluginConfig:
    """Load and validate ``vertexai.yml`` from the project's config loader.

    Raises:
        ConfigError: one line naming the file and key path, or saying to run ``kedro vertexai init``.
    """
    from kedro.config import MissingConfigException

    register_config_pattern(config_loader)
    try:
        raw = config_loader[CONFIG_KEY]
    except MissingConfigException:
        raw = None
    except Exception as exc:  # YAML syntax errors, interpolation errors
        raise ConfigError(f"vertexai.yml: {str(exc).splitlines()[0]}") from exc
    source = Path(conf_source or getattr(config_loader, "conf_source", "conf"))
    if not raw:
        raise ConfigError(
            f"no vertexai.yml found under {_display(source)}: run `kedro vertexai init PROJECT_ID REGION` "
            "to create conf/base/vertexai.yml"
        )
    return validate_config(raw, _config_files(source, getattr(config_loader, "env", None), config_loader))


def validate_config(raw: dict[str, Any], files: list[Path] | None = None) -> PluginConfig:
    """Validate an already loaded mapping; ``files`` (lowest precedence first) name the file in errors."""
    try:
        return PluginConfig.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(str(part) for part in error["loc"])
        where = _file_defining(files or [], loc)
        raise ConfigError(f"{where}: {'.'.join(loc) or '(top level)'}: {_describe(error)}") from None


def _describe(error: dict[str, Any]) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "missing":
        return "required key is missing: add it"
    if kind == "extra_forbidden":
        return "unknown key: remove it or check its spelling (see the README's configuration reference)"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    if kind in {"value_error", "assertion_error"}:
        return message
    return f"expected {message[0].lower() + message[1:]}, got {value!r}"


def _config_files(source: Path, env: str | None, config_loader: Any) -> list[Path]:
    base = getattr(config_loader, "base_env", "base") or "base"
    default_run_env = getattr(config_loader, "default_run_env", "local") or "local"
    files: list[Path] = []
    for env_name in dict.fromkeys([base, env or default_run_env]):
        folder = source / env_name
        if folder.is_dir():
            files += sorted(p for p in folder.rglob("vertexai*") if p.suffix in {".yml", ".yaml"})
    return files


def _file_defining(files: list[Path], loc: tuple[str, ...]) -> str:
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
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def config_reference() -> str:
    """Markdown table of every key, generated from the models (used for the README)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            annotation = field.annotation
            nested = _nested_model(annotation)
            default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
            if nested is not None and not _is_mapping(annotation):
                rows.append(f"| `{key}` | mapping | | {field.description or ''} |")
                walk(nested, key + ".")
            elif nested is not None:
                rows.append(f"| `{key}` | mapping of name → settings | `{{}}` | {field.description or ''} |")
                walk(nested, key + ".<name>.")
            else:
                type_name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
                rows.append(f"| `{key}` | {type_name} | {default} | {field.description or ''} |")

    walk(PluginConfig, "")
    return "\n".join(rows)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        for inner in getattr(candidate, "__args__", ()):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return None


def _is_mapping(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is dict


__all__ = [
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
    "config_reference",
    "load_config",
    "normalise_root",
    "parse_duration",
    "validate_config",
    "validate_cron",
]
