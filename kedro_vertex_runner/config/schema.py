"""The schema of ``vertexai.yml``: one pydantic model per mapping, each field with its default and the one-line
description the configuration reference (docs/reference.md) is generated from.

Value rules live in :mod:`.rules`; the keys of the reference plugin are translated (:mod:`.reference`) before a
model sees them; what depends on the backend (which keys it requires, which storage it can use, which keys it
ignores) is read from the backend's class in :mod:`kedro_vertex_runner.backends`, looked up when a config is
validated, never at import. So are the backends' own sections, ``run_config.<name>``: each backend declares its
model in its settings module, and :func:`plugin_config_model` mounts them on :class:`RunConfig`.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import ipaddress
import logging
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..errors import ConfigError
from ..task.secret_manager import check_reference
from .machines import (
    BootDisk,
    PersistentResource,
    check_machine_combination,
    check_machine_type,
    check_persistent_resource_region,
    check_reservation,
    check_reservation_region,
    persistent_resource_shorthand,
)
from .pod import (
    KUBERNETES_GPU,
    check_extended_resource,
    is_kubernetes_resource,
)
from .reference import _translate_reference_keys
from .rules import (
    _CPU,
    _HOSTNAME,
    _IP_RANGE_NAME,
    _KMS_KEY,
    _MEMORY,
    _NETWORK_ATTACHMENT,
    _VPC,
    ACCELERATOR_TYPES,
    MAX_BACKOFF_FACTOR,
    MAX_BACKOFF_SECONDS,
    MAX_CONCURRENT_RUNS,
    MAX_CPU_CORES,
    MAX_GPUS,
    MAX_MEMORY_BYTES,
    MAX_RUN_COUNT,
    _check_env_name,
    _check_label_key,
    _check_label_value,
    _leading_number,
    _scalar_text,
    check_dns_domain,
    check_host,
    check_label_count,
    check_network_name,
    check_project_id,
    check_region,
    check_root,
    check_timezone,
    cpu_cores,
    memory_bytes,
    parse_duration,
    validate_cron,
)
from .sources import file_defining

logger = logging.getLogger(__name__)

DEFAULT_KEY = "__default__"

_LabelKey = Annotated[str, AfterValidator(_check_label_key)]
_EnvName = Annotated[str, AfterValidator(_check_env_name)]
_LabelValue = Annotated[str, AfterValidator(_check_label_value)]
_SecretRef = Annotated[str, AfterValidator(check_reference)]
_SECRETS_DOC = (
    "Environment variables read from Secret Manager when each task starts: NAME → "
    "'projects/<p>/secrets/<s>/versions/<v>' (only the reference is compiled; see 'Secrets from Secret Manager' in the docs)."
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)


class RetryPolicy(_Model):
    """How often a failed task is retried and how long to wait between attempts."""

    max_retries: int = Field(0, ge=0, le=10, description="Retries after the first failed attempt (0 = none).")
    backoff: float = Field(
        30,
        description="Seconds (or '30s', '5m') before the first retry; at most a day.",
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
        None,
        ge=0,
        le=MAX_GPUS,
        description="Number of accelerators, at most 16 (on vertex it needs `accelerator`; on kubeflow and local "
        "a count alone means nvidia.com/gpu; 0 with an accelerator is refused).",
    )
    accelerator: str | None = Field(
        None,
        description="On vertex a Vertex AI accelerator type, e.g. NVIDIA_TESLA_T4, NVIDIA_L4, TPU_V5_LITEPOD (a "
        "name Vertex AI does not know is refused, with the closest one suggested); on kubeflow a Kubernetes extended "
        "resource name, e.g. nvidia.com/gpu, amd.com/gpu (the local backend takes either and runs no accelerator).",
    )
    retries: RetryPolicy | None = Field(None, description="Retry policy for these tasks: a count, or a mapping.")
    timeout: float | None = Field(
        None, description="Seconds (or '30m', '2h') before the task is killed; at most 30 days."
    )
    caching: bool | None = Field(None, description="Let Vertex AI reuse a previous identical task's result.")
    image: str | None = Field(None, description="Container image for these tasks instead of `run_config.image`.")
    machine_type: str | None = Field(
        None,
        description="Compute Engine machine type, e.g. 'n2-highmem-32', 'a2-highgpu-1g' (its GPU is implied); the "
        "task runs as a Vertex AI CustomJob (see Machines and cost).",
    )
    spot: bool | None = Field(None, description="Run the task on a Spot VM (cheaper, may be preempted).")
    boot_disk: BootDisk | None = Field(None, description="Boot disk of the task's machine: `{type, size_gb}`.")
    reservation: str | None = Field(
        None,
        description="Compute Engine reservation the machine comes from, "
        "'projects/<project>/zones/<zone>/reservations/<name>' (a zone of the job's region).",
    )
    max_wait: float | None = Field(
        None,
        description="Seconds (or '2h') the task waits for its machine (Vertex AI's FLEX_START); at most 7 days.",
    )

    @field_validator("machine_type")
    @classmethod
    def _machine_type(cls, value: str | None) -> str | None:
        return None if value is None else check_machine_type(value)

    @field_validator("reservation")
    @classmethod
    def _reservation(cls, value: str | None) -> str | None:
        return None if value is None else check_reservation(value)

    @field_validator("max_wait", mode="before")
    @classmethod
    def _max_wait(cls, value: Any) -> Any:
        from .machines import MAX_WAIT_SECONDS

        return None if value is None else parse_duration(value, MAX_WAIT_SECONDS)

    @model_validator(mode="after")
    def _machine_settings_agree(self) -> TaskSettings:
        problem = check_machine_combination(self.__dict__)
        if problem:
            raise PydanticCustomError("value_error_at", "{message}", {"key": problem[0], "message": problem[1]})
        return self

    secrets: dict[_EnvName, _SecretRef] | None = Field(
        None, description="Secrets for these tasks, added to `run_config.secrets` (same form)."
    )

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
        if is_kubernetes_resource(value):  # for backend kubeflow; check_for_backend says where it cannot run
            return check_extended_resource(value)
        close = [name for name in ACCELERATOR_TYPES if name == value.strip().upper().replace("-", "_")]
        close = close or difflib.get_close_matches(value.upper(), ACCELERATOR_TYPES, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"Vertex AI knows {', '.join(ACCELERATOR_TYPES)}"
        raise ValueError(
            f"{value!a} is not a Vertex AI accelerator type ({hint}) nor, for backend kubeflow, a Kubernetes "
            f"resource name such as {KUBERNETES_GPU}"
        )

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
        return check_dns_domain(value)

    @field_validator("target_project")
    @classmethod
    def _target_project(cls, value: str) -> str:
        return check_project_id(value)

    @field_validator("target_network")
    @classmethod
    def _target_network(cls, value: str) -> str:
        return check_network_name(value)


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
        if not _NETWORK_ATTACHMENT.fullmatch(value):
            raise ValueError(
                "expected a network attachment name or 'projects/<project>/regions/<region>/networkAttachments/"
                f"<name>', got {value!r}"
            )
        return value


class NetworkConfig(_Model):
    vpc: str | None = Field(None, description="Peered VPC network, `projects/<number>/global/networks/<name>`.")
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
            if not _IP_RANGE_NAME.fullmatch(name):
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
        if value is not None and not _VPC.fullmatch(value):
            raise ValueError(f"expected 'projects/<project number>/global/networks/<name>', got {value!r}")
        return value


class ScheduleConfig(_Model):
    cron: str = Field(description="Five-field cron expression, e.g. '0 6 * * 1-5'.")
    timezone: str | None = Field(None, description="IANA time zone for `cron`, e.g. 'Europe/Warsaw'.")
    start_time: str | None = Field(None, description="RFC 3339 time before which no run starts.")
    end_time: str | None = Field(None, description="RFC 3339 time after which no run starts.")
    max_run_count: int | None = Field(None, gt=0, le=MAX_RUN_COUNT, description="Stop after this many runs.")
    max_concurrent_run_count: int = Field(
        1,
        gt=0,
        le=MAX_CONCURRENT_RUNS,
        description=f"Runs of this schedule allowed at once (1 to {MAX_CONCURRENT_RUNS}).",
    )
    allow_queueing: bool = Field(
        False, description="Queue a run due while `max_concurrent_run_count` runs are active (else it is skipped)."
    )
    max_concurrent_active_run_count: int | None = Field(
        None,
        gt=0,
        le=MAX_CONCURRENT_RUNS,
        description="Runs of this schedule not yet ended at once, queued ones included (1 to "
        f"{MAX_CONCURRENT_RUNS}; Vertex AI's `maxConcurrentActiveRunCount`).",
    )
    catch_up: bool = Field(
        False,
        description="`kedro vertexai schedules resume NAME` starts the runs missed while the schedule was paused.",
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
            for key, nested in (
                item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
            ):
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
        return None if value is None else check_timezone(value)

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
    persistent_task_startup: float = Field(
        20.0,
        description="Seconds a task spends starting when the job runs on `persistent_resource` (its machines are "
        "already up).",
    )
    custom_job_startup: float = Field(
        180.0,
        description="Seconds a task with machine settings (a CustomJob) spends on top of `task_startup` getting "
        "its own machine.",
    )
    node_duration: float = Field(
        10.0, description="Seconds assumed for a node that the last local run of the pipeline did not time."
    )
    use_timings: bool = Field(
        True, description="Use the node run times of the pipeline's last local run (false: only node_duration)."
    )

    @field_validator("task_startup", "node_duration", "persistent_task_startup", "custom_job_startup", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value)


class CodeUploadConfig(_Model):
    max_file_size: int = Field(
        20_000_000,
        description="Largest file code upload ships, in bytes or a size such as '50M' or '1Gi': a bigger one is "
        "refused in one line naming it (leave it out with .gitignore, or raise this).",
    )

    @field_validator("max_file_size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, str)) or not _MEMORY.match(str(value).strip()):
            raise ValueError(f"expected a number of bytes or a size such as '50M' or '1Gi', got {value!r}")
        size = int(memory_bytes(str(value).strip()))
        if size <= 0:
            raise ValueError(f"expected a positive size such as '50M' or '1Gi', got {value!r}")
        return size


class NotificationsConfig(_Model):
    email: list[str] = Field(
        default_factory=list,
        description="At most 3 addresses Vertex AI e-mails when the job ends (Google's pipeline notification "
        "component, compiled as an exit task; Vertex AI only).",
    )
    webhook: str | None = Field(
        None,
        description="Secret Manager reference ('projects/<p>/secrets/<s>/versions/<v>') of a URL the exit task "
        "POSTs the job's final status to, as JSON.",
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: list[str]) -> list[str]:
        if len(value) > 3:
            raise ValueError(f"{len(value)} addresses: Vertex AI e-mails at most 3")
        for address in value:
            if not _EMAIL.fullmatch(address):
                raise ValueError(f"{address!a} is not an e-mail address")
        return value

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        return None if value is None else check_reference(value)


_EMAIL = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")


class RunConfig(_Model):
    image: str = Field(description="Container image every task runs in (e.g. 'europe-docker.pkg.dev/p/r/img:tag').")
    root: str = Field(
        min_length=1,
        description="Job storage root, 'gs://bucket/path'. With backend 'vertex' or 'kubeflow', 'bucket/path' means "
        "the same ('kubeflow' also takes 's3://bucket/path'); with backend 'local', a path without a scheme is a "
        "directory relative to the project (file://, gs:// and s3:// work too). A root naming no bucket, a scheme the "
        "backend cannot use or a value starting with '-' is refused. Undeclared datasets live under "
        "`<root>/<run id>/`.",
    )
    backend: str = Field(
        default_factory=lambda: _default_backend(),
        description="Where `kedro run --runner=VertexRunner` runs the job: 'vertex' (Vertex AI Pipelines), "
        "'kubeflow' (Kubeflow Pipelines at `host`) or 'local' (this machine).",
    )
    experiment_name: str | None = Field(
        None,
        description="Experiment the runs are attached to: a Vertex AI experiment (lowercase letters, digits, '-'), "
        "or a Kubeflow Pipelines experiment (any one-line name).",
    )
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
    persistent_resource: PersistentResource | None = Field(
        None,
        description="Vertex AI persistent resource the whole job runs on: its id (in the job's project and region), "
        "its full name, or `{name, when_busy, wait}`.",
    )
    preflight_validations: bool = Field(
        False, description="Ask Vertex AI to validate the job (quotas, machines) before it creates it."
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
        description="How a task runs its nodes that do not depend on each other: 'processes' at the same time where that "
        "pays, each group of nodes linked in memory in a process forked from the task (no global state shared; "
        "never slower than plain `kedro run`), 'threads' at the same time in one interpreter "
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
    secrets: dict[_EnvName, _SecretRef] = Field(default_factory=dict, description=_SECRETS_DOC)
    notifications: NotificationsConfig = Field(
        default_factory=NotificationsConfig, description="Who learns how the job ended."
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
    code_upload: CodeUploadConfig = Field(
        default_factory=CodeUploadConfig, description="What code upload (`code: upload`) ships."
    )
    schedules: dict[str, ScheduleConfig] = Field(default_factory=dict, description="Named schedules.")
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig, description="MLflow tracking through kedro-mlflow.")
    # run_config.<backend name>: each backend's own section, mounted by plugin_config_model() from its settings

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any:  # a backend's section, e.g. `run_config.local`
            ...

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

    @field_validator("persistent_resource", mode="before")
    @classmethod
    def _persistent_resource(cls, value: Any) -> Any:
        return persistent_resource_shorthand(value)

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        from ..backends import names

        if value not in names():
            raise ValueError(f"expected one of {', '.join(map(repr, _known_backends()))}, got {value!a}")
        return value

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

    @model_validator(mode="after")
    def _secret_names_unique(self) -> RunConfig:
        # a variable both in `env` and read from Secret Manager: the secret would silently replace the value
        for name in self.secrets:
            if name in self.env:
                raise PydanticCustomError(
                    "value_error_at",
                    "{message}",
                    {"key": f"secrets.{name}", "message": "also set in run_config.env: keep only one of the two"},
                )
        return self

    def root_as_written(self, backend: str) -> tuple[str, str]:
        """The key and the value, as written, of the storage root for ``backend``: the backend's own
        ``<backend>.root`` (``local.root``) if set, else ``root``."""
        own = getattr(getattr(self, backend, None), "root", None)
        if isinstance(own, str) and own:
            return f"{backend}.root", own
        return "root", self._written_root or self.root

    @field_validator("encryption_key")
    @classmethod
    def _encryption_key(cls, value: str | None) -> str | None:
        if value is not None and not _KMS_KEY.fullmatch(value):
            raise ValueError(
                "expected a Cloud KMS key name 'projects/<project>/locations/<region>/keyRings/<ring>/cryptoKeys/"
                f"<key>', got {value!r}"
            )
        return value

    @field_validator("experiment_name")
    @classmethod
    def _experiment(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("the experiment name is empty: give a name or remove the key")
        return value

    @field_validator("labels")
    @classmethod
    def _label_count(cls, value: dict[str, str]) -> dict[str, str]:
        return check_label_count(value)

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
        the order tags were declared in. An ``accelerator`` without a ``gpu`` count means one GPU; a ``gpu`` count
        without an ``accelerator`` means ``nvidia.com/gpu`` on every backend but vertex (which needs a type).
        """
        merged: dict[str, Any] = {"retries": self.retries, "timeout": self.timeout, "caching": self.caching}
        secrets = dict(self.secrets)  # merged name by name, each layer over the ones below
        for layer in self._layers(node_name, tags):
            merged.update(layer.model_dump(exclude_unset=True, exclude_none=True))
            if layer.retries is not None:
                merged["retries"] = layer.retries
            secrets.update(layer.secrets or {})
        merged["secrets"] = secrets or None
        if merged.get("accelerator") and not merged.get("gpu"):
            merged["gpu"] = 1
        if merged.get("gpu") and not merged.get("accelerator") and _backend_class(self.backend).gpu_count_alone:
            merged["accelerator"] = KUBERNETES_GPU
        if isinstance(merged.get("boot_disk"), dict):
            merged["boot_disk"] = BootDisk(**merged["boot_disk"])
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

    project_id: str | None = Field(
        None,
        min_length=1,
        description="Google Cloud project id: 6-30 lowercase letters, digits or '-', starting with a letter, not "
        "ending with '-' (a legacy `domain:` prefix is kept). Required by the backends that run in a Google Cloud "
        "project (vertex).",
    )
    region: str | None = Field(
        None,
        description="Vertex AI region, e.g. 'europe-west1' (checked for that form). Required with `project_id`.",
    )
    api_endpoint: str | None = Field(
        None, description="Override of the Vertex AI API endpoint (regional or Private Service Connect)."
    )
    host: str | None = Field(
        None,
        description="Kubeflow Pipelines API URL, e.g. 'https://<id>-dot-<region>.pipelines.googleusercontent.com' "
        "or 'https://kubeflow.example.com/pipeline' (http(s), no credentials, no query). Required by backend "
        "'kubeflow'.",
    )
    run_config: RunConfig = Field(description="How the pipeline is compiled and run.")

    # the files the config was read from, lowest precedence first (names the file in later errors)
    _files: list[Path] = PrivateAttr(default_factory=list)

    def with_backend(self, backend: str) -> PluginConfig:
        """This config run on ``backend`` (e.g. ``--runner-params backend=local``): ``root`` is read again as
        written, as it would be for that backend (``bucket/path`` is a folder locally, ``gs://bucket/path`` on
        Vertex AI), and the keys that backend requires are checked.

        Raises:
            ConfigError: an unknown backend, or a key ``backend`` needs that is missing or does not suit it.
        """
        if backend == self.run_config.backend:
            return self
        if backend not in _known_backends():
            known = ", ".join(map(repr, _known_backends()))
            raise ConfigError(f"backend {backend!a} is not known: use one of {known}")
        key, written = self.run_config.root_as_written(backend)
        try:
            root = check_root(written, backend)
        except ValueError as exc:
            where = file_defining(self.source_files, ("run_config", *key.split(".")))
            raise ConfigError(f"{where}: run_config.{key}: {exc} (the job runs on backend {backend!r})") from None
        run_config = self.run_config.model_copy(update={"backend": backend, "root": root})
        switched = self.model_copy(update={"run_config": run_config})
        check_for_backend(switched, self.source_files, f" (the job runs on backend {backend!r})")
        warn_ignored_keys(switched, self.source_files)
        return switched

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        return None if value is None else check_region(value)

    @field_validator("project_id")
    @classmethod
    def _project_id(cls, value: str | None) -> str | None:
        return None if value is None else check_project_id(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        return None if value is None else check_host(value)

    @model_validator(mode="after")
    def _key_in_region(self, info: ValidationInfo) -> PluginConfig:
        key = self.run_config.encryption_key
        location = _KMS_KEY.match(key).group("location") if key else None  # type: ignore[union-attr]  # checked
        if location and self.region and location != self.region:
            where = file_defining((info.context or {}).get("files") or [], ("run_config", "encryption_key"))
            raise ConfigError(
                f"{where}: run_config.encryption_key: the key is in location {location!r}, but Vertex AI needs a key "
                f"in the job's region {self.region!r}: use a key ring in {self.region}"
            )
        return self

    @model_validator(mode="after")
    def _persistent_resource_in_region(self, info: ValidationInfo) -> PluginConfig:
        resource = self.run_config.persistent_resource
        if resource is not None:
            try:
                check_persistent_resource_region(resource, self.project_id, self.region)
            except ValueError as exc:
                where = file_defining((info.context or {}).get("files") or [], ("run_config", "persistent_resource"))
                raise ConfigError(f"{where}: run_config.persistent_resource: {exc}") from None
        for name, settings in self.run_config.resources.items():
            problem = check_reservation_region(settings.reservation, self.region)
            if problem:
                files = (info.context or {}).get("files") or []
                where = file_defining(files, ("run_config", "resources", name, "reservation"))
                raise ConfigError(f"{where}: run_config.resources.{name}.reservation: {problem}")
        return self

    @model_validator(mode="after")
    def _keys_for_backend(self, info: ValidationInfo) -> PluginConfig:
        check_for_backend(self, (info.context or {}).get("files") or [])
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


def plugin_config_model() -> type[PluginConfig]:
    """:class:`PluginConfig` with each registered backend's section mounted at ``run_config.<name>`` (the
    ``SETTINGS`` model of its settings module, see :mod:`kedro_vertex_runner.backends.settings`): the model a
    ``vertexai.yml`` is validated with and the configuration reference is generated from."""
    from ..backends import REGISTRY

    return _plugin_config_model(tuple(REGISTRY.items()))


@functools.cache
def _plugin_config_model(registry: tuple[tuple[str, str], ...]) -> type[PluginConfig]:
    from ..backends.settings import section_model

    sections: dict[str, Any] = {}
    for name, _ in registry:
        model = section_model(name)
        if model is not None:
            description = inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")
            sections[name] = (model, Field(default_factory=model, description=description))
    run_config = create_model("RunConfig", __base__=RunConfig, __module__=__name__, **sections)
    return create_model(
        "PluginConfig",
        __base__=PluginConfig,
        __module__=__name__,
        run_config=(run_config, Field(description=PluginConfig.model_fields["run_config"].description)),
    )


def _backend_class(name: str) -> Any:
    from ..backends import backend_class

    return backend_class(name)


def _default_backend() -> str:
    from ..backends import DEFAULT_BACKEND

    return DEFAULT_BACKEND


def _known_backends() -> list[str]:
    """The registered backend names, the default first."""
    from ..backends import DEFAULT_BACKEND, names

    return [DEFAULT_BACKEND, *(name for name in names() if name != DEFAULT_BACKEND)]


def check_for_backend(config: PluginConfig, files: list[Path], context: str = "") -> None:
    """What ``config.run_config.backend`` needs of the file: ``project_id`` and ``region`` for a backend that runs
    in a Google Cloud project, the top-level keys its class lists in ``required_keys`` (``host``), and the rules
    of its engine (:meth:`~kedro_vertex_runner.backends.base.Backend.refuse_run_config`).

    Raises:
        ConfigError: one line naming the file and the key; ``context`` is appended (the backend switched to).
    """
    from ..backends import backend_class

    backend = config.run_config.backend
    cls = backend_class(backend)
    required = (("project_id", "region") if cls.needs_gcp_project else ()) + tuple(cls.required_keys)
    for key in required:
        if getattr(config, key) is None:
            raise ConfigError(
                f"{file_defining(files, ())}: {key}: required key is missing for backend {backend!r}: add it "
                f"(see the configuration reference, docs/reference.md){context}"
            )
    refused = cls.refuse_run_config(
        config.run_config
    )  # the engine's own rules (Vertex AI: no pods, its experiment names)
    if refused is not None:
        key, reason = refused
        where = file_defining(files, ("run_config", *key.split(".")))
        raise ConfigError(f"{where}: run_config.{key}: {reason}{context}")
    for name, settings in config.run_config.resources.items():
        problem = settings.accelerator and cls.refuse_accelerator(settings.accelerator, name)
        if problem:
            where = file_defining(files, ("run_config", "resources", name, "accelerator"))
            raise ConfigError(f"{where}: run_config.resources.{name}.accelerator: {problem}{context}")
    if cls.secrets_refused:
        rc = config.run_config
        keys: list[tuple[str, ...]] = [("secrets", name) for name in rc.secrets]
        keys += [("resources", key, "secrets") for key, entry in rc.resources.items() if entry.secrets]
        keys += [("notifications", "webhook")] if rc.notifications.webhook else []
        if keys:
            where = file_defining(files, ("run_config", *keys[0]))
            raise ConfigError(
                f"{where}: run_config.{'.'.join(keys[0])}: backend {backend!r} cannot read Secret Manager: "
                f"{cls.secrets_refused}{context}"
            )


def warn_ignored_keys(config: PluginConfig, files: list[Path]) -> None:
    """One warning line for each ``run_config`` key the user set that the backend lists in ``unsupported_keys``
    (a key set to its default counts as not set)."""
    from ..backends import backend_class

    backend = config.run_config.backend
    for key, reason in backend_class(backend).unsupported_keys.items():
        if _is_set(config.run_config, key.split(".")):
            logger.warning(
                "Warning: %s: run_config.%s: backend %r ignores it: %s",
                file_defining(files, ("run_config", *key.split("."))),
                key,
                backend,
                reason,
            )


def _is_set(model: BaseModel, path: list[str]) -> bool:
    name, rest = path[0], path[1:]
    field = type(model).model_fields.get(name)
    if field is None or name not in model.model_fields_set:
        return False
    value = getattr(model, name)
    if rest:
        return isinstance(value, BaseModel) and _is_set(value, rest)
    return bool(value != field.get_default(call_default_factory=True))
