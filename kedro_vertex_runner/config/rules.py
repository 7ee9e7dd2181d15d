"""The rules of single values in ``vertexai.yml``: durations, project ids, regions, storage roots, cpu and memory,
labels, cron expressions, the KFP host and Kubernetes names.

Plain functions raising ``ValueError`` with what is wrong (the caller names the file and key), so the schema, the
``init`` scaffold, the compiler and the backends share one copy of each rule. No pydantic, no client library: the
in-container path imports this module too.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from ..values import MEMORY_QUANTITY, memory_quantity_bytes

_REGION = re.compile(r"^[a-z]+(-[a-z]+)+[0-9]+$")
# GCP project ids: 6-30 characters, lowercase letters, digits, hyphens, a letter first, no hyphen last; legacy
# domain-scoped projects carry a `domain:` prefix
_PROJECT_ID = re.compile(r"^(?:[a-z0-9][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOST_LABEL = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*\.?")
_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9_.-]{0,220}[a-z0-9])?$")
_S3_BUCKET = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{1,61}[a-z0-9])$")
# object stores whose roots are `<scheme>://bucket/path`: the bucket-name pattern, the length limit of a name
# without dots, and the rule in words
BUCKET_SCHEMES: dict[str, tuple[re.Pattern[str], int, str]] = {
    "gs": (
        _BUCKET,
        63,
        "a Cloud Storage bucket name (at most 63 lowercase letters, digits, '-', '_' or '.', "
        "starting and ending with a letter or digit)",
    ),
    "s3": (
        _S3_BUCKET,
        63,
        "an S3 bucket name (3 to 63 lowercase letters, digits, '-' or '.', starting and ending "
        "with a letter or digit, not an IP address)",
    ),
}
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
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
# Google Cloud's limits on labels and on a schedule's run count (int64); more concurrent runs than
# MAX_CONCURRENT_RUNS is a typo
MAX_LABELS = 64
MAX_CONCURRENT_RUNS = 1000
MAX_RUN_COUNT = 2**63 - 1
_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_KMS_KEY = re.compile(r"^projects/[^/\s]+/locations/(?P<location>[^/\s]+)/keyRings/[^/\s]+/cryptoKeys/[^/\s]+$")
_NETWORK_ATTACHMENT = re.compile(
    r"^(projects/[^/\s]+/regions/[a-z0-9-]+/networkAttachments/)?[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
)
_IP_RANGE_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
# label keys Vertex AI Pipelines or Google Cloud set themselves (a user value is overwritten or refused)
_RESERVED_LABEL_PREFIXES = ("goog", "vertex-ai-pipelines")
_CPU = re.compile(r"^\d+(\.\d+)?m?$")
_MEMORY = MEMORY_QUANTITY
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


def root_schemes(backend: str) -> tuple[str, ...]:
    """The storage schemes ``backend`` keeps job data in (``""`` is a local folder), as its class declares them."""
    from ..backends import backend_class

    return tuple(backend_class(backend).root_schemes)


def _backends_keeping(scheme: str) -> list[str]:
    from ..backends import backend_class, names

    # a backend whose tasks run elsewhere first: the likelier meaning of a remote root on a remote backend
    keeping = [name for name in names() if scheme in root_schemes(name)]
    return sorted(keeping, key=lambda name: not backend_class(name).remote_tasks)


def _root_shape(scheme: str) -> str:
    if scheme == "":
        return "a local folder"
    return f"{scheme}://bucket/path" if scheme in BUCKET_SCHEMES else f"{scheme}:///path"


def check_root(root: str, backend: str) -> str:
    """The storage root as ``backend`` reads it (:func:`normalise_root`), after the checks that need no network:
    not empty, not an option (``-x``), a scheme ``backend`` supports (its class's ``root_schemes``), a bucket named.

    Raises:
        ValueError: what is wrong, without the key (the caller names it).
    """
    supported = root_schemes(backend)
    shapes = " or ".join(_root_shape(scheme) for scheme in supported)
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
    if scheme == "" and "" not in supported:
        # an explicit local path: for `--runner-params backend=local`; a backend without local folders refuses it
        return normalised
    if scheme not in supported:
        shown = "a local folder" if scheme == "" else f"{scheme}://"
        others = [name for name in _backends_keeping(scheme) if name != backend]
        hint = f" (backend {others[0]!r} does)" if others else ""
        raise ValueError(f"{root!a}: backend {backend!r} cannot keep job data in {shown}{hint}; give {shapes}")
    if scheme == "file" and not rest.strip("/"):
        raise ValueError(f"{root!a} names no folder: give file:///path/to/folder")
    if scheme in BUCKET_SCHEMES:
        _check_bucket(root, scheme, rest.split("/", 1)[0])
    return normalised


def _check_bucket(root: str, scheme: str, bucket: str) -> None:
    """The bucket naming rule of the scheme's storage (Cloud Storage, S3)."""
    if not bucket:
        raise ValueError(f"{root!a} names no bucket: give {scheme}://bucket/path")
    pattern, limit, rules = BUCKET_SCHEMES[scheme]
    s3_only = scheme == "s3" and (".." in bucket or re.fullmatch(r"[\d.]+", bucket))  # S3 forbids both
    if not pattern.fullmatch(bucket) or ("." not in bucket and len(bucket) > limit) or s3_only:
        raise ValueError(f"{root!a}: {bucket!a} is not {rules}: give {scheme}://bucket/path")


def cpu_cores(cpu: str) -> float:
    """Cores of a validated cpu value (``'500m'`` → 0.5)."""
    return float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)


def memory_bytes(memory: str) -> float:
    """Bytes of a validated memory value (``'4Gi'`` → 4 * 2**30; ``16g`` means ``16G``)."""
    return memory_quantity_bytes(memory)


def _leading_number(value: Any) -> float:
    """The number a cpu/memory value starts with (``'500m'`` → 500.0), for the must-be-positive check."""
    return float(re.match(r"\d+(?:\.\d+)?", str(value)).group())  # type: ignore[union-attr]  # format checked


def _label_characters_ok(text: str) -> bool:
    """Only lowercase letters (international ones included), digits, ``_`` and ``-``, as Google Cloud labels take."""
    return all(c in "_-" or (c.isdecimal() and c.isascii()) or (c.isalpha() and not c.isupper()) for c in text)


def _check_label_key(key: str) -> str:
    first = key[:1]
    if not (1 <= len(key) <= 63 and first.isalpha() and not first.isupper() and _label_characters_ok(key)):
        raise ValueError(
            f"label key {key!a} must start with a lowercase letter and use only lowercase letters (international ones "
            "too), digits, '_' or '-' (at most 63 characters)"
        )
    if key.startswith(_RESERVED_LABEL_PREFIXES):
        raise ValueError(
            f"label key {key!a} is reserved (keys starting with {' or '.join(map(repr, _RESERVED_LABEL_PREFIXES))} "
            "are set by Google Cloud and Vertex AI Pipelines): choose another key"
        )
    return key


def _check_label_value(value: str) -> str:
    if len(value) > 63 or not _label_characters_ok(value):
        raise ValueError(
            f"label value {value!a} may use only lowercase letters (international ones too), digits, '_' or '-' (at "
            "most 63 characters)"
        )
    return value


def check_label_count(labels: dict[str, Any]) -> dict[str, Any]:
    """At most :data:`MAX_LABELS` labels: Google Cloud refuses a resource with more."""
    if len(labels) > MAX_LABELS:
        raise ValueError(f"{len(labels)} labels: Google Cloud allows at most {MAX_LABELS} per job; remove some")
    return labels


def check_dns_domain(value: str) -> str:
    """A DNS suffix ending with a dot (``corp.example.com.``): labels of letters, digits and ``-``, at most 253
    characters."""
    labels = value[:-1].split(".") if value.endswith(".") else []
    if not labels or len(value) > 254 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"expected a DNS suffix ending with a dot, such as 'corp.example.com.' (labels of letters, digits and '-', "
            f"not starting or ending with '-'), got {value!a}"
        )
    return value


def check_network_name(value: str) -> str:
    """A VPC network name (``my-vpc``), or its resource name ``projects/<project>/global/networks/<name>``."""
    if not (_IP_RANGE_NAME.fullmatch(value) or _VPC.fullmatch(value)):
        raise ValueError(
            "expected a VPC network name such as 'corp-vpc' (lowercase letters, digits and '-', at most 63, starting "
            f"with a letter) or 'projects/<project>/global/networks/<name>', got {value!a}"
        )
    return value


# a Vertex AI pipeline job id (as `kedro vertexai logs` takes it), or its full resource name
_JOB_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
_JOB_NAME = re.compile(r"^projects/[^/\s]+/locations/[a-z0-9-]+/pipelineJobs/(?P<id>[^/\s]+)$")


def check_job_id(value: str) -> str:
    """The job id of ``value``: a pipeline job id (lowercase letters, digits and ``-``, at most 128) or the job's
    resource name ``projects/<p>/locations/<region>/pipelineJobs/<id>``; ``ValueError`` otherwise."""
    text = str(value).strip().rstrip("/")
    match = _JOB_NAME.fullmatch(text)
    job_id = match.group("id") if match else text
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(
            f"{value!a} is not a job id: give the id printed on submit (lowercase letters, digits and '-', e.g. "
            "'my-pipeline-20240101120000') or 'projects/<p>/locations/<region>/pipelineJobs/<id>'"
        )
    return job_id


def _check_env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(
            f"environment variable name {name!a} must use only letters, digits and '_', and not start with a digit"
        )
    return name


def _scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value  # strings stay; mappings and lists fail validation with a clear message


def normalise_root(root: str, backend: str | None = None) -> str:
    """The storage root as ``backend`` reads it.

    For a backend that keeps no job data in local folders (vertex), ``bucket/path`` is the reference plugin's
    shorthand for a bucket of the backend's first storage scheme: ``gs://bucket/path``. URLs and explicit local
    paths (absolute, ``./…``, ``~/…``) stay. Otherwise (the local backend, or ``backend=None`` for a root already
    normalised when the config was validated) ``root`` is returned unchanged: a scheme-less path is a local folder.
    """
    if backend is None or "://" in root or root.startswith(("/", ".", "~")):
        return root
    schemes = root_schemes(backend)
    if "" in schemes or not schemes:
        return root
    return f"{schemes[0]}://{root}"


_CRON_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_CRON_LIMITS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_NAMES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {name: number for number, name in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split(), 1)},
    {name: number for number, name in enumerate("SUN MON TUE WED THU FRI SAT".split())},
)


def validate_cron(expression: str) -> None:
    """Raise ``ValueError`` unless ``expression`` is a five-field cron expression (Vertex AI's dialect): each field
    ``*``, a number in the field's range (minute 0-59, hour 0-23, day 1-31, month 1-12 or JAN-DEC, day of week 0-7
    or SUN-SAT), a range ``a-b`` with ``a <= b``, a list of those, each optionally with a step ``/n`` (n >= 1)."""
    text = str(expression)
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"expected a five-field cron expression like '0 6 * * 1', got {text!a}")
    for index, field in enumerate(fields):
        (low, high), names, what = _CRON_LIMITS[index], _CRON_NAMES[index], _CRON_FIELDS[index]
        allowed = f"'*' or numbers from {low} to {high}" + (f" (or {', '.join(names)})" if names else "")
        for part in field.split(","):
            base, slash, step = part.partition("/")
            if slash and (not step.isdigit() or not step.isascii() or not 1 <= int(step) <= high):
                raise ValueError(
                    f"bad step {step!a} in cron expression {text!a}: the {what} step must be a whole number from 1 "
                    f"to {high}"
                )
            if base == "*":
                continue
            bounds = base.split("-")
            if len(bounds) > 2 or not all(bounds):
                raise ValueError(f"cron field {field!a} in {text!a}: the {what} must be {allowed}, or a range a-b")
            values = []
            for position, bound in enumerate(bounds):
                name = bound.upper()
                if name in names:
                    # SUN ends a range as 7 (MON-SUN); anywhere else it is 0
                    values.append(7 if index == 4 and name == "SUN" and position == 1 else names[name])
                elif bound.isdigit() and bound.isascii() and low <= int(bound) <= high:
                    values.append(int(bound))
                else:
                    raise ValueError(f"cron field {field!a} in {text!a}: the {what} must be {allowed}")
            if len(values) == 2 and values[0] > values[1]:
                raise ValueError(
                    f"cron field {field!a} in {text!a}: the {what} range {base!a} runs backwards ({values[0]} > "
                    f"{values[1]}): write the smaller bound first, e.g. {bounds[1]}-{bounds[0]}"
                )


def check_timezone(value: str) -> str:
    """``value`` if it is an IANA time zone (``Europe/Warsaw``, ``UTC``) the zoneinfo database knows, else
    ``ValueError``; without a tz database on this machine the check is left to the backend."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        if zoneinfo.available_timezones():
            raise ValueError(f"expected an IANA time zone such as 'Europe/Warsaw' or 'UTC', got {value!a}") from None
    return value


# a Kubernetes namespace is a DNS label (RFC 1123)
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_host(value: str) -> str:
    """``value`` if it is the address of a Kubeflow Pipelines API (``https://kubeflow.example.com/pipeline``), else
    ``ValueError``: http(s), a host name, no ``user:password@`` (credentials come from the environment, never the
    file) and no ``?query`` or ``#fragment``. A trailing ``/`` is dropped."""
    example = (
        "e.g. 'https://kubeflow.example.com/pipeline' or 'https://<id>-dot-<region>.pipelines.googleusercontent.com'"
    )
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise ValueError(f"expected the URL of the Kubeflow Pipelines API, {example}; got {value!a}") from None
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL of the Kubeflow Pipelines API, {example}; got {value!a}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "the URL carries credentials ('user:password@'): remove them and log in with DEX_USERNAME and "
            "DEX_PASSWORD (or IAP_CLIENT_ID) in the environment"
        )
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ValueError(f"{value!a} has a query or fragment ('?…', '#…'): give the API's address only, {example}")
    return value.rstrip("/")


def check_namespace(value: str) -> str:
    """``value`` if it is a Kubernetes namespace name (a DNS label), else ``ValueError`` saying the rule."""
    if not isinstance(value, str) or not _NAMESPACE.fullmatch(value):
        raise ValueError(
            f"expected a Kubernetes namespace: at most 63 lowercase letters, digits or '-', starting and ending with "
            f"a letter or digit (e.g. 'kubeflow-user-example-com'), got {value!a}"
        )
    return value


def check_vertex_experiment(value: str) -> str:
    """``value`` if Vertex AI takes it as an experiment name, else ``ValueError``."""
    if not _EXPERIMENT.match(value):
        raise ValueError(
            f"experiment name {value!r} may use only lowercase letters, digits and '-' (at most 128 characters)"
        )
    return value
