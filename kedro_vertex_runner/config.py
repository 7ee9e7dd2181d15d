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
from pydantic_core import PydanticCustomError

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
# GCP project ids: 6-30 characters, lowercase letters, digits, hyphens, a letter first, no hyphen last; legacy
# domain-scoped projects carry a `domain:` prefix
_PROJECT_ID = re.compile(r"^(?:[a-z0-9][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOST_LABEL = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9_.-]{0,220}[a-z0-9])?$")
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# the storage schemes each backend keeps job data under ("" is a local path); one row per backend
ROOT_SCHEMES: dict[str, tuple[str, ...]] = {"vertex": ("gs",), "local": ("", "file", "gs")}
# Vertex AI's accelerator types (google.cloud.aiplatform_v1.types.AcceleratorType, without UNSPECIFIED); a test
# compares this list with the installed client library, which the config must not import (it is slow to import)
ACCELERATOR_TYPES = (
    "NVIDIA_TESLA_K80",
    "NVIDIA_TESLA_P100",
    "NVIDIA_TESLA_V100",
    "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_T4",
    "NVIDIA_TESLA_A100",
    "NVIDIA_A100_80GB",
    "NVIDIA_L4",
    "NVIDIA_H100_80GB",
    "NVIDIA_H100_MEGA_80GB",
    "NVIDIA_H200_141GB",
    "NVIDIA_B200",
    "NVIDIA_GB200",
    "NVIDIA_RTX_PRO_6000",
    "TPU_V2",
    "TPU_V3",
    "TPU_V4_POD",
    "TPU_V5_LITEPOD",
)
# sane upper bounds: beyond them a value is a typo (and 1e200 would overflow the retry arithmetic)
MAX_CPU_CORES = 1024
MAX_MEMORY_BYTES = 64 * 2**40  # 64 TiB
MAX_GPUS = 16
MAX_BACKOFF_FACTOR = 100
MAX_BACKOFF_SECONDS = 86400  # a wait of more than a day between retries is a typo
MAX_TIMEOUT_SECONDS = 30 * 86400
_VPC = re.compile(r"^projects/[^/\s]+/global/networks/[^/\s]+$")
_EXPERIMENT = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_KMS_KEY = re.compile(r"^projects/[^/\s]+/locations/(?P<location>[^/\s]+)/keyRings/[^/\s]+/cryptoKeys/[^/\s]+$")
_NETWORK_ATTACHMENT = re.compile(
    r"^(projects/[^/\s]+/regions/[a-z0-9-]+/networkAttachments/)?[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
)
_IP_RANGE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
# label keys Vertex AI Pipelines or Google Cloud set themselves (a user value is overwritten or refused)
_RESERVED_LABEL_PREFIXES = ("goog", "vertex-ai-pipelines")
_CPU = re.compile(r"^\d+(\.\d+)?m?$")
_MEMORY = re.compile(r"^\d+(\.\d+)?([KMGTPE]i?|[kmgtpe])?$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any, maximum: float = MAX_TIMEOUT_SECONDS) -> float:
    """Seconds from an int/float or a string such as ``"90"``, ``"30s"``, ``"15m"``, ``"2h"``; at most ``maximum``."""
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
    if seconds > maximum:
        raise ValueError(f"{value!r} is longer than the limit of {_duration_text(maximum)}; give a shorter duration")
    return seconds


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def check_project_id(value: str) -> str:
    """``value`` if it is a valid Google Cloud project id, else ``ValueError`` saying the rules."""
    if not isinstance(value, str) or not _PROJECT_ID.fullmatch(value):
        raise ValueError(
            f"expected a Google Cloud project id: 6 to 30 lowercase letters, digits or '-', starting with a letter "
            f"and not ending with '-' (e.g. 'my-project-123'), got {value!a}"
        )
    return value


def check_region(value: str) -> str:
    """``value`` if it has the form of a Google Cloud region (``europe-west1``), else ``ValueError``."""
    if not isinstance(value, str) or not _REGION.fullmatch(value):
        raise ValueError(f"expected a Google Cloud region such as 'europe-west1' or 'us-central1', got {value!a}")
    return value


def check_root(root: str, backend: str) -> str:
    """The storage root as ``backend`` reads it (:func:`normalise_root`), after the checks that need no network:
    not empty, not an option (``-x``), a scheme ``backend`` supports (:data:`ROOT_SCHEMES`), a bucket named.

    Raises:
        ValueError: what is wrong, without the key (the caller names it).
    """
    supported = ROOT_SCHEMES.get(backend, ())
    shapes = " or ".join("a local folder" if scheme == "" else f"{scheme}://bucket/path" if scheme == "gs"
                         else f"{scheme}:///path" for scheme in supported)
    if not root.strip():
        raise ValueError(f"the root is empty: give {shapes}")
    if root != root.strip():
        raise ValueError(f"{root!a} starts or ends with a space: remove it")
    if root.startswith("-"):
        raise ValueError(f"{root!a} starts with '-': give {shapes}")
    normalised = normalise_root(root, backend)
    scheme, sep, rest = normalised.partition("://")
    if not sep:
        looks_like_url = _URL_SCHEME.match(normalised)
        if looks_like_url and len(looks_like_url.group(1)) > 1:  # C:\… is a drive, gs:/x a broken URL
            raise ValueError(f"{root!a} looks like a URL without '//' after {looks_like_url.group(0)!a}: give {shapes}")
        scheme = ""
    scheme = scheme.lower()
    if scheme == "" and backend != "local":
        return normalised  # an explicit local path: for `--runner-params backend=local`; the vertex backend refuses it
    if scheme not in supported:
        shown = "a local folder" if scheme == "" else f"{scheme}://"
        others = [name for name, schemes in ROOT_SCHEMES.items() if scheme in schemes and name != backend]
        hint = f" (backend {others[0]!r} does)" if others else ""
        raise ValueError(f"{root!a}: backend {backend!r} cannot keep job data in {shown}{hint}; give {shapes}")
    if scheme == "file" and not rest.strip("/"):
        raise ValueError(f"{root!a} names no folder: give file:///path/to/folder")
    if scheme == "gs":
        bucket = rest.split("/", 1)[0]
        if not bucket:
            raise ValueError(f"{root!a} names no bucket: give gs://bucket/path")
        if not _BUCKET.fullmatch(bucket) or ("." not in bucket and len(bucket) > 63):
            raise ValueError(
                f"{root!a}: {bucket!a} is not a Cloud Storage bucket name (at most 63 lowercase letters, digits, "
                "'-', '_' or '.', starting and ending with a letter or digit): give gs://bucket/path"
            )
    return normalised


_MEMORY_UNITS = {
    "": 1,
    "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def cpu_cores(cpu: str) -> float:
    """Cores of a validated cpu value (``'500m'`` → 0.5)."""
    return float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)


def memory_bytes(memory: str) -> float:
    """Bytes of a validated memory value (``'4Gi'`` → 4 * 2**30; ``16g`` means ``16G``)."""
    match = re.match(r"^(\d+(?:\.\d+)?)([KMGTPEkmgtpe]i?)?$", memory)
    if not match:
        raise ValueError(f"expected a size such as '512Mi', '4Gi' or '16G', got {memory!r}")
    unit = match.group(2) or ""
    return float(match.group(1)) * _MEMORY_UNITS[unit[:1].upper() + unit[1:]]


def _leading_number(value: Any) -> float:
    """The number a cpu/memory value starts with (``'500m'`` → 500.0), for the must-be-positive check."""
    return float(re.match(r"\d+(?:\.\d+)?", str(value)).group())  # type: ignore[union-attr]  # format checked


def _check_label_key(key: str) -> str:
    if not _LABEL_KEY.match(key):
        raise ValueError(
            f"label key {key!r} must start with a lowercase letter and use only lowercase letters, digits, '_' or "
            "'-' (at most 63 characters)"
        )
    if key.startswith(_RESERVED_LABEL_PREFIXES):
        raise ValueError(
            f"label key {key!r} is reserved (keys starting with {' or '.join(map(repr, _RESERVED_LABEL_PREFIXES))} "
            "are set by Google Cloud and Vertex AI Pipelines): choose another key"
        )
    return key


def _check_label_value(value: str) -> str:
    if not _LABEL_VALUE.match(value):
        raise ValueError(
            f"label value {value!r} may use only lowercase letters, digits, '_' or '-' (at most 63 characters)"
        )
    return value


def _check_env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(
            f"environment variable name {name!a} must use only letters, digits and '_', and not start with a digit"
        )
    return name


_LabelKey = Annotated[str, AfterValidator(_check_label_key)]
_EnvName = Annotated[str, AfterValidator(_check_env_name)]
_LabelValue = Annotated[str, AfterValidator(_check_label_value)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class RetryPolicy(_Model):
    """How often a failed task is retried and how long to wait between attempts."""

    max_retries: int = Field(0, ge=0, le=10, description="Retries after the first failed attempt (0 = none).")
    backoff: float = Field(
        30, description="Seconds (or '30s', '5m') before the first retry; at most a day.",
        json_schema_extra={"example": "30s"},
    )
    backoff_factor: float = Field(
        2.0, ge=1, le=MAX_BACKOFF_FACTOR, description="Each further wait is multiplied by this factor (1 to 100)."
    )
    max_backoff: float = Field(3600, description="Upper bound for one wait, in seconds (or '1h'); at most a day.")

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
        return parse_duration(value, MAX_BACKOFF_SECONDS)


class TaskSettings(_Model):
    """Settings for the tasks of one node name, one tag, or ``__default__``; unset fields fall through."""

    cpu: str | None = Field(
        None, description="CPU limit: a number of cores (8, 0.5) or millicores ('500m'); at most 1024 cores."
    )
    memory: str | None = Field(None, description="Memory limit, e.g. '512Mi', '4Gi', '16G'; at most 64Ti.")
    gpu: int | None = Field(
        None, ge=0, le=MAX_GPUS, description="Number of accelerators, at most 16 (needs `accelerator`; 0 with one "
        "is refused)."
    )
    accelerator: str | None = Field(
        None, description="Vertex AI accelerator type, e.g. NVIDIA_TESLA_T4, NVIDIA_L4, TPU_V5_LITEPOD (a name "
        "Vertex AI does not know is refused, with the closest one suggested)."
    )
    retries: RetryPolicy | None = Field(None, description="Retry policy for these tasks: a count, or a mapping.")
    timeout: float | None = Field(
        None, description="Seconds (or '30m', '2h') before the task is killed; at most 30 days."
    )
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
        if cpu_cores(str(value)) > MAX_CPU_CORES:
            raise ValueError(f"{value!r} is more than {MAX_CPU_CORES} cores, more than any machine has")
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
        if memory_bytes(str(value)) > MAX_MEMORY_BYTES:
            raise ValueError(f"{value!r} is more than 64Ti, more than any machine has")
        return str(value)

    @field_validator("accelerator")
    @classmethod
    def _accelerator(cls, value: str | None) -> str | None:
        if value is None or value in ACCELERATOR_TYPES:
            return value
        close = [name for name in ACCELERATOR_TYPES if name == value.strip().upper().replace("-", "_")]
        close = close or difflib.get_close_matches(value.upper(), ACCELERATOR_TYPES, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"Vertex AI knows {', '.join(ACCELERATOR_TYPES)}"
        raise ValueError(f"{value!a} is not a Vertex AI accelerator type ({hint})")

    @model_validator(mode="after")
    def _gpu_with_accelerator(self) -> TaskSettings:
        if self.accelerator and self.gpu == 0:
            raise PydanticCustomError(
                "value_error_at",
                "0 contradicts accelerator {accelerator}: remove `accelerator` for a task without one, or ask for at "
                "least 1",
                {"key": "gpu", "accelerator": self.accelerator},
            )
        return self

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)



class HostAlias(_Model):
    ip: str = Field(description="IP address the hostnames resolve to inside the task.")
    hostnames: list[str] = Field(
        min_length=1, description="Hostnames that resolve to `ip` (letters, digits, '-', '.'; not starting with '-')."
    )

    @field_validator("hostnames")
    @classmethod
    def _hostnames(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _HOSTNAME.fullmatch(name):
                raise ValueError(
                    f"expected host names such as 'mlflow.internal' (letters, digits, '-' and '.', not starting with "
                    f"'-' or '.'), got {name!a}"
                )
        return value

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"expected an IP address such as '10.0.0.2', got {value!r}") from None
        return value


class DnsPeering(_Model):
    domain: str = Field(description="DNS suffix resolved through the target network, ending with a dot.")
    target_project: str = Field(description="Project hosting the Cloud DNS zone of `domain`.")
    target_network: str = Field(description="VPC network of `target_project` where that zone is visible.")

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not value.endswith(".") or len(value) < 2:
            raise ValueError(f"expected a DNS suffix ending with a dot, such as 'corp.example.com.', got {value!r}")
        return value


class PscInterface(_Model):
    network_attachment: str = Field(
        description="Network attachment the tasks connect through: its name (in the job's project and region) or "
        "`projects/<project>/regions/<region>/networkAttachments/<name>`."
    )
    dns_peering: list[DnsPeering] = Field(
        default_factory=list, description="Private DNS zones of the attached network the tasks resolve."
    )

    @field_validator("network_attachment")
    @classmethod
    def _attachment(cls, value: str) -> str:
        if not _NETWORK_ATTACHMENT.match(value):
            raise ValueError(
                "expected a network attachment name or 'projects/<project>/regions/<region>/networkAttachments/"
                f"<name>', got {value!r}"
            )
        return value


class NetworkConfig(_Model):
    vpc: str | None = Field(
        None, description="Peered VPC network, `projects/<number>/global/networks/<name>`."
    )
    reserved_ip_ranges: list[str] = Field(
        default_factory=list,
        description="Names of reserved IP ranges of `vpc` the tasks get their addresses from (needs `vpc`).",
    )
    psc_interface: PscInterface | None = Field(
        None, description="Private Service Connect interface: reach a VPC through a network attachment."
    )
    host_aliases: list[HostAlias] = Field(
        default_factory=list, description="Extra name → IP mappings applied inside each task."
    )

    @field_validator("reserved_ip_ranges")
    @classmethod
    def _ranges(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _IP_RANGE_NAME.match(name):
                raise ValueError(f"expected the name of a reserved IP range such as 'vertex-ai-range', got {name!r}")
        return value

    @model_validator(mode="after")
    def _ranges_need_vpc(self) -> NetworkConfig:
        if self.reserved_ip_ranges and not self.vpc:
            raise ValueError(
                "reserved_ip_ranges are ranges of the peered VPC: set network.vpc too, or remove reserved_ip_ranges"
            )
        return self

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
    allow_queueing: bool = Field(
        False, description="Queue a run due while `max_concurrent_run_count` runs are active (else it is skipped)."
    )
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


class GroupingOptions(_Model):
    task_startup: float = Field(
        120.0, description="Seconds (or '2m') each Vertex AI task spends starting before its first node."
    )
    node_duration: float = Field(
        10.0, description="Seconds assumed for a node that the last local run of the pipeline did not time."
    )
    use_timings: bool = Field(
        True, description="Use the node run times of the pipeline's last local run (false: only node_duration)."
    )

    @field_validator("task_startup", "node_duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)


class LocalConfig(_Model):
    max_workers: int | None = Field(
        None, gt=0, le=1024, description="Tasks run at once by the local backend (default: CPUs)."
    )
    warm_start: bool | None = Field(
        None,
        description="Fork tasks from a process that has already imported the project (default: "
        "`KEDRO_VERTEX_WARM_START`, else on where `fork` exists).",
    )
    root: str | None = Field(
        None,
        min_length=1,
        description="Storage root of the local backend (a folder relative to the project, file:// or gs://) in "
        "place of `root`, so a project whose `root` is on Cloud Storage rehearses on a machine without access to it.",
    )


class RunConfig(_Model):
    image: str = Field(description="Container image every task runs in (e.g. 'europe-docker.pkg.dev/p/r/img:tag').")
    root: str = Field(
        min_length=1,
        description="Job storage root, 'gs://bucket/path'. With backend 'vertex', 'bucket/path' means the same; "
        "with backend 'local', a path without a scheme is a directory relative to the project (file:// and gs:// "
        "work too). A root naming no bucket, a scheme the backend cannot use or a value starting with '-' is "
        "refused. Undeclared datasets live under `<root>/<run id>/`.",
    )
    backend: Literal["vertex", "local"] = Field(
        "vertex", description="Where `kedro run --runner=VertexRunner` runs the job: 'vertex' or 'local'."
    )
    experiment_name: str | None = Field(None, description="Vertex AI experiment the runs are attached to.")
    experiment_description: str | None = Field(None, description="Description of that experiment.")
    scheduled_run_name: str | None = Field(None, description="Display name of scheduled runs (default: pipeline).")
    description: str | None = Field(None, description="Description of the compiled pipeline.")
    service_account: str | None = Field(None, description="Service account email the tasks run as.")
    labels: dict[_LabelKey, _LabelValue] = Field(
        default_factory=dict, description="Labels attached to every job, scheduled runs included."
    )
    encryption_key: str | None = Field(
        None,
        description="Cloud KMS key encrypting the job and its outputs (CMEK), "
        "`projects/<p>/locations/<region>/keyRings/<ring>/cryptoKeys/<key>`, in the job's region.",
    )
    failure_policy: Literal["fast", "slow"] | None = Field(
        None,
        description="After a task fails: 'fast' starts no further task, 'slow' (Vertex AI's default) runs every task "
        "that does not depend on the failed one.",
    )
    network: NetworkConfig = Field(
        default_factory=NetworkConfig, description="VPC peering, Private Service Connect and host aliases."
    )
    resources: dict[str, TaskSettings] = Field(
        default_factory=dict,
        description="Task settings per node name or tag, and `__default__`; node name beats tag beats default.",
    )
    retries: RetryPolicy = Field(default_factory=RetryPolicy, description="Job-wide retry policy (count or mapping).")
    timeout: float | None = Field(None, description="Job-wide task timeout in seconds (or '30m', '2h'); at most 30d.")
    caching: bool = Field(False, description="Job-wide Vertex AI task caching.")
    grouping: Literal["makespan", "chains", "none", "namespace", "tags"] = Field(
        "makespan",
        description="How nodes become tasks: 'makespan' the grouping with the shortest modelled job time, then "
        "the fewest tasks; 'chains' fuses linear chains only, 'none' one task per node, 'namespace' one task per "
        "top-level namespace, 'tags' nodes tagged `group.<name>`.",
    )
    grouping_options: GroupingOptions = Field(
        default_factory=GroupingOptions, description="The cost model of `makespan` (and of `compile --explain`)."
    )
    task_runner: Literal["processes", "threads", "sequential"] = Field(
        "processes",
        description="How a task runs its nodes that do not depend on each other: 'processes' at the same time, each "
        "in a process forked from the task (no global state shared), 'threads' at the same time in one interpreter "
        "(module variables, env vars, matplotlib state shared), 'sequential' one after another. A node tagged "
        "`task_runner.<mode>` sets it for its task (the most conservative mode of the task's nodes wins).",
    )
    on_exit_pipeline: str | None = Field(
        None, description="Kedro pipeline run after the job, whatever its outcome; it may share no node with the job."
    )
    env: dict[_EnvName, str] = Field(
        default_factory=dict,
        description="Extra environment variables for every task (valid names; never secrets: they are refused).",
    )
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
    schedules: dict[str, ScheduleConfig] = Field(default_factory=dict, description="Named schedules.")
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig, description="MLflow tracking through kedro-mlflow.")
    local: LocalConfig = Field(default_factory=LocalConfig, description="Local backend settings.")

    @model_validator(mode="before")
    @classmethod
    def _compat(cls, value: Any, info: ValidationInfo) -> Any:
        # keys of the reference plugin: a config written for it keeps working (see _translate_reference_keys)
        if not isinstance(value, dict):
            return value
        return _translate_reference_keys(value, (info.context or {}).get("files") or [])

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
        key, written = self.root_as_written(self.backend)
        try:
            self.root = check_root(written, self.backend)
        except ValueError as exc:
            raise PydanticCustomError("value_error_at", "{message}", {"key": key, "message": str(exc)}) from None
        return self

    def root_as_written(self, backend: str) -> tuple[str, str]:
        """The key and the value, as written, of the storage root for ``backend``: ``local.root`` if set for the
        local backend, else ``root``."""
        if backend == "local" and self.local.root:
            return "local.root", self.local.root
        return "root", self._written_root or self.root

    @field_validator("encryption_key")
    @classmethod
    def _encryption_key(cls, value: str | None) -> str | None:
        if value is not None and not _KMS_KEY.match(value):
            raise ValueError(
                "expected a Cloud KMS key name 'projects/<project>/locations/<region>/keyRings/<ring>/cryptoKeys/"
                f"<key>', got {value!r}"
            )
        return value

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

    project_id: str = Field(
        min_length=1,
        description="Google Cloud project id: 6-30 lowercase letters, digits or '-', starting with a letter, not "
        "ending with '-' (a legacy `domain:` prefix is kept).",
    )
    region: str = Field(description="Vertex AI region, e.g. 'europe-west1' (checked for that form).")
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
        key, written = self.run_config.root_as_written(backend)
        try:
            root = check_root(written, backend)
        except ValueError as exc:
            where = file_defining(self.source_files, ("run_config", *key.split(".")))
            raise ConfigError(f"{where}: run_config.{key}: {exc} (the job runs on backend {backend!r})") from None
        run_config = self.run_config.model_copy(update={"backend": backend, "root": root})
        return self.model_copy(update={"run_config": run_config})

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        return check_region(value)

    @field_validator("project_id")
    @classmethod
    def _project_id(cls, value: str) -> str:
        return check_project_id(value)

    @model_validator(mode="after")
    def _key_in_region(self, info: ValidationInfo) -> PluginConfig:
        key = self.run_config.encryption_key
        location = _KMS_KEY.match(key).group("location") if key else None  # type: ignore[union-attr]  # checked
        if location and location != self.region:
            where = file_defining((info.context or {}).get("files") or [], ("run_config", "encryption_key"))
            raise ConfigError(
                f"{where}: run_config.encryption_key: the key is in location {location!r}, but Vertex AI needs a key "
                f"in the job's region {self.region!r}: use a key ring in {self.region}"
            )
        return self

    @property
    def gcs_root(self) -> str:
        """``run_config.root``: already a ``gs://`` URL for the vertex backend (``bucket/path`` was expanded when
        the config was validated); a local directory stays one, and the vertex backend rejects it."""
        return self.run_config.root

    @property
    def source_files(self) -> list[Path]:
        """The ``vertexai.yml`` files this config was read from, lowest precedence first (may be empty)."""
        return list(self._files)


# --------------------------------------------------------------------------------------------------------------
# kedro-vertexai (the reference plugin) keys
#
# A team moving from kedro-vertexai keeps its vertexai.yml: each of its keys that has an equivalent here is
# translated with one warning line saying what to write instead; a key without one is one error line. Everything
# is translated here, before validation, so the models below only ever see this plugin's own keys.

_REFERENCE_GROUPERS = {
    "kedro_vertexai.grouping.IdentityNodeGrouper": "none",
    "kedro_vertexai.grouping.TagNodeGrouper": "tags",
}
_REFERENCE_TOKEN_PROVIDERS = (
    "kedro_vertexai.auth.gcp.MLFlowGoogleOAuthCredentialsProvider",
    "kedro_vertexai.auth.gcp.MLFlowGoogleIAMCredentialsProvider",
)
_ACCELERATOR_SELECTOR = "cloud.google.com/gke-accelerator"
_GPU_RESOURCE = "nvidia.com/gpu"


class _Translation:
    """Moves reference keys to this plugin's; warns once per moved key, raises ConfigError for the untranslatable."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def where(self, loc: tuple[str, ...]) -> str:
        return file_defining(self.files, ("run_config", *loc))

    def warn(self, loc: tuple[str, ...], instead: str) -> None:
        logger.warning("%s: run_config.%s is a kedro-vertexai key: write %s instead", self.where(loc),
                       ".".join(loc), instead)

    def fail(self, loc: tuple[str, ...], reason: str) -> typing.NoReturn:
        raise ConfigError(f"{self.where(loc)}: run_config.{'.'.join(loc)}: {reason}")

    def mapping(self, item: Any, loc: tuple[str, ...]) -> dict[str, Any]:
        """``item`` as a dict (``None`` is empty); anything else is one error line."""
        if item is None:
            return {}
        if not isinstance(item, dict):
            self.fail(loc, f"expected a mapping, got {_short_repr(item)}")
        return dict(item)


def _translate_reference_keys(value: dict[str, Any], files: list[Path]) -> dict[str, Any]:
    value = dict(value)
    tr = _Translation(files)
    for key in IGNORED_RUN_CONFIG_KEYS:
        if key in value:
            value.pop(key)
            logger.warning(
                "%s: run_config.%s is ignored: it has no meaning on Vertex AI Pipelines; remove it", tr.where((key,)),
                key,
            )
    if "vertex_ai_networking" in value and "network" not in value:
        tr.warn(("vertex_ai_networking",), "run_config.network")
        value["network"] = value.pop("vertex_ai_networking")
    if isinstance(value.get("grouping"), dict):
        value["grouping"] = _translate_grouping(value["grouping"], tr)
    if isinstance(value.get("resources"), dict):
        value["resources"] = {
            name: _translate_resources(name, entry, tr) if isinstance(entry, dict) else entry
            for name, entry in value["resources"].items()
        }
    if "node_selectors" in value:
        _translate_node_selectors(value, tr)
    if "dynamic_config_providers" in value:
        _translate_config_providers(value, tr)
    if isinstance(value.get("mlflow"), dict):
        value["mlflow"] = _translate_mlflow(value["mlflow"], tr)
    if isinstance(value.get("schedules"), dict):
        value["schedules"] = {
            name: _translate_schedule(str(name), entry, tr) if isinstance(entry, dict) else entry
            for name, entry in value["schedules"].items()
        }
    return value


def _is_none_text(item: Any) -> bool:
    # the reference template writes `start_time: none`, and its docs `cpu: None`: YAML reads both as strings
    return isinstance(item, str) and item.strip().lower() in {"none", "null", "~"}


def _drop_none_texts(entry: dict[str, Any], loc: tuple[str, ...], tr: _Translation) -> dict[str, Any]:
    for key in [k for k, item in entry.items() if _is_none_text(item)]:
        tr.warn((*loc, str(key)), f"`{key}: null` (YAML reads {entry[key]!r} as a string) or remove the key")
        entry.pop(key)
    return entry


def _translate_grouping(grouping: dict[str, Any], tr: _Translation) -> Any:
    cls_name = str(grouping.get("cls", "kedro_vertexai.grouping.IdentityNodeGrouper"))
    mode = _REFERENCE_GROUPERS.get(cls_name)
    if mode is None:
        tr.fail(("grouping", "cls"), f"{cls_name!r} has no equivalent: use grouping: chains, none, namespace or tags")
    params = tr.mapping(grouping.get("params"), ("grouping", "params"))
    prefix = params.pop("tag_prefix", "group.")
    if params:
        tr.fail(("grouping", "params"), f"{sorted(params)[0]!r} has no equivalent: remove it")
    if mode == "tags" and prefix != "group.":
        tr.fail(("grouping", "params", "tag_prefix"),
                f"{prefix!r}: tag grouping reads tags `group.<name>`: rename the tags and use grouping: tags")
    tr.warn(("grouping",), f"`grouping: {mode}`")
    return mode


def _translate_resources(name: Any, entry: dict[str, Any], tr: _Translation) -> dict[str, Any]:
    entry = _drop_none_texts(dict(entry), ("resources", str(name)), tr)
    if _GPU_RESOURCE in entry:
        tr.warn(("resources", str(name), _GPU_RESOURCE), f"run_config.resources.{name}.gpu")
        gpus = entry.pop(_GPU_RESOURCE)
        entry.setdefault("gpu", gpus)
    return entry


def _translate_node_selectors(value: dict[str, Any], tr: _Translation) -> None:
    selectors = tr.mapping(value.pop("node_selectors"), ("node_selectors",))
    resources = dict(value.get("resources") or {})
    for name, entry in selectors.items():
        for selector, accelerator in tr.mapping(entry, ("node_selectors", str(name))).items():
            loc = ("node_selectors", str(name), str(selector))
            if selector != _ACCELERATOR_SELECTOR:
                tr.fail(loc, "has no equivalent on Vertex AI Pipelines (only the accelerator type can be chosen): "
                             "remove it")
            tr.warn(loc, f"run_config.resources.{name}.accelerator: {accelerator}")
            resources[name] = {**tr.mapping(resources.get(name), ("resources", str(name))), "accelerator": accelerator}
    value["resources"] = resources


def _translate_config_providers(value: dict[str, Any], tr: _Translation) -> None:
    providers = value.pop("dynamic_config_providers") or []
    if not isinstance(providers, list):
        tr.fail(("dynamic_config_providers",), f"expected a list, got {_short_repr(providers)}")
    if not providers:
        logger.warning("%s: run_config.dynamic_config_providers is ignored: it is empty; remove it",
                       tr.where(("dynamic_config_providers",)))
        return
    for index, provider in enumerate(providers):
        loc = ("dynamic_config_providers", str(index))
        provider = tr.mapping(provider, loc)
        params = tr.mapping(provider.get("params"), (*loc, "params"))
        if provider.get("cls") not in _REFERENCE_TOKEN_PROVIDERS or "client_id" not in params:
            tr.fail(loc, f"{provider.get('cls')!r} has no equivalent: tasks mint MLflow identity tokens themselves "
                         "with run_config.mlflow.audience; write other files in a Kedro hook")
        tr.warn(loc, f"run_config.mlflow.audience: {params['client_id']}")
        _set_audience(value, str(params["client_id"]), loc, tr)


def _translate_mlflow(mlflow: dict[str, Any], tr: _Translation) -> dict[str, Any]:
    mlflow = dict(mlflow)
    for key in ("request_header_provider_params", "request_header_provider"):
        if key not in mlflow:
            continue
        loc = ("mlflow", key)
        params = tr.mapping(mlflow.pop(key), loc)
        if "init_kwargs" in params:  # kedro-mlflow's shape: {type: <provider class>, pass_context, init_kwargs}
            params = tr.mapping(params["init_kwargs"], (*loc, "init_kwargs"))
        params.pop("service_account", None)  # tasks mint the token as the job's service account
        client_id = params.pop("client_id", None) or params.pop("audience", None)
        if params or not client_id:
            tr.fail(loc, "has no equivalent besides `client_id`: set run_config.mlflow.audience to the OAuth client "
                         "id of the MLflow server and remove the other keys")
        tr.warn(loc, f"run_config.mlflow.audience: {client_id}")
        mlflow.setdefault("audience", client_id)
    return mlflow


def _set_audience(value: dict[str, Any], audience: str, loc: tuple[str, ...], tr: _Translation) -> None:
    mlflow = dict(value.get("mlflow") or {})
    if mlflow.get("audience") not in (None, audience):
        tr.fail(loc, f"its client_id differs from run_config.mlflow.audience {mlflow['audience']!r}: keep one")
    mlflow["audience"] = audience
    value["mlflow"] = mlflow


def _translate_schedule(name: str, entry: dict[str, Any], tr: _Translation) -> dict[str, Any]:
    entry = _drop_none_texts(dict(entry), ("schedules", name), tr)
    if "cron_expression" in entry:
        tr.warn(("schedules", name, "cron_expression"), f"run_config.schedules.{name}.cron")
        cron = entry.pop("cron_expression")
        entry.setdefault("cron", cron)
    return entry


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
    except Exception as exc:  # YAML syntax errors, interpolation errors, duplicate keys, a file not in UTF-8
        raise ConfigError(_not_utf8(files) or _loader_error(exc, files)) from None
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
    _check_values(raw, files)
    try:
        config = PluginConfig.model_validate(raw, context={"files": files})
    except ValidationError as exc:
        # a misspelt key also makes the real one "missing": the unknown key is the better clue
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        error = errors[0]
        loc = tuple(str(part) for part in error["loc"] if part != "[key]")
        if error["type"] == "value_error_at":  # raised by a model validator about one of its fields
            loc += tuple(str(error["ctx"]["key"]).split("."))
        where = file_defining(files, loc)
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        message = _describe(error, loc)
        if isinstance(error.get("input"), str):  # a lookalike letter must show: 'l\u043ecal', not 'lоcal'
            message = message.replace(repr(error["input"]), ascii(error["input"]))
        raise ConfigError(f"{where}: {_key_path(loc) or '(top level)'}: {message}{more}") from None
    config._files = files
    return config


# free text, where any character is at home (runtime parameters too); elsewhere an invisible one is a mistake
_FREE_TEXT_KEYS = {"description", "experiment_description"}


def _check_values(raw: Any, files: list[Path]) -> None:
    """Refuse, before the models see them, what no message could show faithfully or what must never reach a
    compiled spec: invisible characters (zero-width spaces, a trailing newline) in keys and values, and secrets.

    Raises:
        ConfigError: one line naming the file and key, showing invisible characters escaped (``\\u200b``).
    """
    from .secret_check import secret_message, secret_reason

    def walk(node: Any, loc: tuple[str, ...], names_secret: bool) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            here = (*loc, str(key))
            # a secret first: the other messages show the value
            reason = secret_reason(str(key) if names_secret and not isinstance(node, list) else None, value)
            if reason:
                raise ConfigError(f"{file_defining(files, here)}: {secret_message(_key_path(here), reason)}")
            if isinstance(key, str) and _invisible(key):
                raise ConfigError(
                    f"{file_defining(files, loc)}: {_key_path(here)}: the key contains an invisible character "
                    f"({_invisible(key)}): retype it"
                )
            if isinstance(value, str) and str(key) not in _FREE_TEXT_KEYS and "params" not in loc:
                bad = _invisible(value)
                if bad:
                    raise ConfigError(
                        f"{file_defining(files, here)}: {_key_path(here)}: {ascii(value)} contains an invisible "
                        f"character ({bad}): remove it (a YAML `|` block keeps the final line break: use `|-`)"
                    )
            walk(value, here, names_secret or here[-2:] == ("run_config", "env") or here[-1:] == ("params",))

    walk(raw, (), False)


def _invisible(text: str) -> str | None:
    """A description of the first invisible character of ``text`` (``"'\\u200b' at position 3"``), or None."""
    import unicodedata

    for index, char in enumerate(text):
        if unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp", "Co", "Cn"} or (char.isspace() and char != " "):
            return f"{ascii(char)} at position {index + 1}"
    return None


def _key_path(loc: tuple[str, ...]) -> str:
    """``run_config.resources.train``, with a key that is not plain printable ASCII shown escaped."""
    return ".".join(part if part.isascii() and part.isprintable() else ascii(part) for part in loc)


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
        _check_no_gpu_with_accelerator(run_config, node, settings.accelerator, files)
        if settings.gpu and not settings.accelerator:
            keys = [k for k in run_config._layer_keys(node.name, node.tags) if run_config.resources[k].gpu]
            key = keys[-1]
            where = file_defining(files, ("run_config", "resources", key, "gpu"))
            raise ConfigError(
                f"{where}: run_config.resources.{key}.gpu: a GPU count needs an accelerator type: add e.g. "
                f"`accelerator: NVIDIA_TESLA_T4` to this entry (node {node.name!r} has none)"
            )


def _check_no_gpu_with_accelerator(
    run_config: RunConfig, node: Any, accelerator: str | None, files: list[Path]
) -> None:
    """``gpu: 0`` for a node that gets an accelerator from another entry (e.g. ``__default__``) is a contradiction:
    the accelerator would win and the node would get a GPU anyway."""
    if not accelerator:
        return
    keys = run_config._layer_keys(node.name, node.tags)
    gpu_keys = [key for key in keys if run_config.resources[key].gpu is not None]
    if gpu_keys and run_config.resources[gpu_keys[-1]].gpu == 0:
        source = [key for key in keys if run_config.resources[key].accelerator][-1]
        where = file_defining(files, ("run_config", "resources", gpu_keys[-1], "gpu"))
        raise ConfigError(
            f"{where}: run_config.resources.{_key_path((gpu_keys[-1],))}.gpu: 0 contradicts accelerator "
            f"{accelerator} that node {node.name!a} gets from run_config.resources.{_key_path((source,))}: set "
            "`accelerator` only in the entries of the nodes that need one"
        )


def check_on_exit_pipeline(
    config: PluginConfig,
    job_pipelines: Any,
    job_nodes: Any,
    exit_nodes: Any,
    files: list[Path] | None = None,
) -> None:
    """``run_config.on_exit_pipeline`` must not be a pipeline the job runs, nor share a node with it: its nodes
    would run a second time after the job (and, when the job failed, run again what just failed).

    Raises:
        ConfigError: one line naming the file, the key and a shared node.
    """
    name = config.run_config.on_exit_pipeline
    if name is None:
        return
    files = config.source_files if files is None else list(files)
    where = f"{file_defining(files, ('run_config', 'on_exit_pipeline'))}: run_config.on_exit_pipeline"
    fix = "name a separate pipeline (notifications, clean-up) that shares no node with the job"
    if name in set(job_pipelines):
        raise ConfigError(f"{where}: {name!a} is the pipeline this job runs, so it would run twice: {fix}")
    shared = sorted(set(job_nodes) & set(exit_nodes))
    if shared:
        more = f" and {len(shared) - 1} more" if len(shared) > 1 else ""
        raise ConfigError(
            f"{where}: pipeline {name!a} shares node {shared[0]!a}{more} with the pipeline this job runs, which "
            f"would run again after the job: {fix}"
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
    if kind in {"value_error", "assertion_error", "value_error_at"}:
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
    text = ascii(value)
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


def _not_utf8(files: list[Path]) -> str | None:
    """``<file>: line N: not UTF-8 text …`` for the first config file that cannot be decoded, or None."""
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            return (
                f"{_display(path)}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as "
                "UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
            )
    return None


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
            loaded.append((path, yaml.safe_load(path.read_text(encoding="utf-8")) or {}))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
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
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
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
    "task_startup": "duration",
    "node_duration": "duration",
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
    "check_on_exit_pipeline",
    "check_pipeline_names",
    "check_project_id",
    "check_region",
    "check_root",
    "config_reference",
    "load_config",
    "normalise_root",
    "parse_duration",
    "validate_config",
    "validate_cron",
]
