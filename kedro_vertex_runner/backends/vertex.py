"""Vertex AI Pipelines backend: submit a compiled PipelineSpec, follow it, schedule it, list jobs and schedules.

The spec arrives already compiled (see :mod:`kedro_vertex_runner.compiler`); this module only talks to Google
Cloud. It uses the Vertex AI v1 API clients that ship with ``google-cloud-aiplatform`` (``aiplatform_v1``) rather
than the high-level ``aiplatform.PipelineJob``, because the high-level class

* imports in ~3.8 s (the v1 clients in ~1 s), and every ``kedro vertexai`` command would pay for it;
* tries to create the pipeline-root bucket on submit (a stall against a private endpoint, and a surprise bucket
  in the wrong region when ``run_config.root`` has a typo) — we check the bucket exists and stop if it does not;
* returns from ``wait()`` on CANCELLED as if the job had succeeded, and shows no per-task progress.

Everything user-facing is one line: bad input, missing credentials, a missing bucket, a refused API call and a
job that did not succeed all become :class:`~kedro_vertex_runner.errors.PluginError`. Nothing is submitted until
credentials, the bucket and the experiment have been checked, so an error never leaves a half-submitted job: the
experiment is got-or-created *before* the job (a job refused afterwards leaves only an empty experiment, which the
next submit reuses), and once the job exists nothing about the experiment can fail the command (a failure to
link the job's run to the experiment is printed as a warning, and the job is followed as usual).

Tasks are shown as Vertex AI reports them: by their ``taskInfo.name`` (the Kedro node names the compiler put
there), the tasks inside the exit handler included and its sub-DAG entry left out. When a job fails, the last
lines of each failed task's log are read from Cloud Logging (:mod:`.cloud_logging`) and printed before the
one-line error; a log that cannot be read is one line and never replaces the job's own error.

Environment variables:
    ``KEDRO_VERTEX_POLL_INTERVAL``: seconds between status polls while waiting (default 10).
    ``KEDRO_VERTEX_ANONYMOUS_CREDENTIALS=1``: use anonymous credentials — honoured only when ``api_endpoint``
    points at this machine (``localhost``/``127.0.0.1``), for tests against a local fake of the API.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import string
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import urlsplit

import click

from ..compiler.spec import EXIT_HANDLER_TASK
from ..errors import PluginError
from .cloud_logging import (
    LOGGING_ENDPOINT_ENV,
    TAIL_LINES,
    LogsUnavailable,
    fetch_tail,
    logging_endpoint,
    logs_explorer_url,
    pipeline_log_filter,
    task_log_filter,
)

if TYPE_CHECKING:
    from ..config import PluginConfig

POLL_INTERVAL_ENV = "KEDRO_VERTEX_POLL_INTERVAL"
ANONYMOUS_ENV = "KEDRO_VERTEX_ANONYMOUS_CREDENTIALS"
DEFAULT_POLL_INTERVAL = 10.0
MAX_BACKOFF = 60.0
# how long a --no-wait submit waits for Vertex AI to create the run's metadata context (experiment link)
EXPERIMENT_ATTACH_TIMEOUT = 120.0
API_TIMEOUT = 60.0
MAX_LOGS_SHOWN = 3  # failed tasks whose log tail is printed when a job fails
BUCKET_CHECK_TIMEOUT = float(os.environ.get("KEDRO_VERTEX_BUCKET_CHECK_TIMEOUT", "30"))
CONSOLE = "https://console.cloud.google.com"
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
_EXPERIMENT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
_FINAL_STATES = {"SUCCEEDED", "FAILED", "CANCELLED", "PAUSED"}
# run_config.failure_policy → PipelineJob.runtimeConfig.failurePolicy
FAILURE_POLICIES = {"fast": "PIPELINE_FAILURE_POLICY_FAIL_FAST", "slow": "PIPELINE_FAILURE_POLICY_FAIL_SLOW"}
_LOGIN_HINT = (
    "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file"
)


# ------------------------------------------------------------------------------------------------------------------
# names and links


def job_id_for(pipeline_name: str, spec: dict[str, Any] | None = None, now: datetime | None = None) -> str:
    """A fresh, Vertex-valid job id: ``<pipeline>-<yyyymmddhhmmss>-<random>``.

    Vertex AI's default id is the name plus a second-resolution timestamp, which collides when two runs start
    in the same second; the random suffix makes it unique. ``__default__`` is named after the compiled
    pipeline (the project). Ids are lowercase ``[a-z0-9-]``, start with a letter and stay under 128 characters.
    """
    base = pipeline_name
    if pipeline_name == "__default__":
        base = ((spec or {}).get("pipelineInfo") or {}).get("name") or "kedro"
    base = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "kedro"
    if not base[0].isalpha():
        base = f"kedro-{base}"
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d%H%M%S")
    suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=6))
    return f"{base[:100].rstrip('-')}-{stamp}-{suffix}"


def console_url(config: PluginConfig, job_id: str) -> str:
    """The job's page in the Google Cloud console."""
    return f"{CONSOLE}/vertex-ai/locations/{config.region}/pipelines/runs/{job_id}?project={config.project_id}"


def pipelines_console_url(config: PluginConfig) -> str:
    """The Vertex AI Pipelines runs page of the project."""
    return f"{CONSOLE}/vertex-ai/pipelines/runs?project={config.project_id}"


def _short_state(state: Any) -> str:
    name = getattr(state, "name", str(state))
    return name.replace("PIPELINE_STATE_", "").replace("STATE_UNSPECIFIED", "UNKNOWN")


# ------------------------------------------------------------------------------------------------------------------
# credentials and clients


def api_endpoint(config: PluginConfig) -> str:
    """``api_endpoint`` from the config, else the regional endpoint."""
    return config.api_endpoint or f"{config.region}-aiplatform.googleapis.com"


def _is_local_endpoint(endpoint: str) -> bool:
    host = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}").hostname or ""
    return host in _LOCAL_HOSTS


def _adc_file() -> str | None:
    try:
        from google.auth import _cloud_sdk

        path = _cloud_sdk.get_application_default_credentials_path()
    except Exception:  # pragma: no cover - layout of google-auth changed
        path = os.path.join(os.path.expanduser("~"), ".config", "gcloud", "application_default_credentials.json")
    return path if path and os.path.isfile(path) else None


def _maybe_on_google_cloud() -> bool:
    """Whether a metadata server can plausibly answer: a GCE VM (GKE, Cloud Build …), Cloud Run or Functions.

    Asking the metadata server elsewhere costs seconds of timeouts before google-auth gives up; this check is
    instant and lets us skip it, so missing credentials are reported at once.
    """
    if os.environ.get("NO_GCE_CHECK") == "true":
        return False
    if any(os.environ.get(v) for v in ("GCE_METADATA_HOST", "GCE_METADATA_IP", "K_SERVICE", "CLOUD_RUN_JOB",
                                       "FUNCTION_TARGET", "GAE_ENV", "KUBERNETES_SERVICE_HOST")):
        return True
    try:
        with open("/sys/class/dmi/id/product_name") as fh:
            return "Google" in fh.read()
    except OSError:
        return False


def _anonymous() -> bool:
    return os.environ.get(ANONYMOUS_ENV, "").strip().lower() in {"1", "true", "yes"}


def load_credentials(config: PluginConfig) -> Any:
    """Application Default Credentials for the Vertex AI and Storage APIs, checked without network calls.

    Raises:
        PluginError: one line saying what to run when there are no usable credentials.
    """
    if _anonymous():
        endpoint = api_endpoint(config)
        if not _is_local_endpoint(endpoint):
            raise PluginError(
                f"{ANONYMOUS_ENV} is honoured only when api_endpoint points at localhost (a local test server), "
                f"not {endpoint}: unset it"
            )
        from google.auth.credentials import AnonymousCredentials

        return AnonymousCredentials()

    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    key_file = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if key_file:
        if not os.path.isfile(key_file):
            raise PluginError(
                f"GOOGLE_APPLICATION_CREDENTIALS={key_file} does not exist: point it at a service-account key "
                "file, or unset it and run `gcloud auth application-default login`"
            )
    elif not _adc_file() and not _maybe_on_google_cloud():
        raise PluginError(f"no Google Cloud credentials found: {_LOGIN_HINT}")
    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except DefaultCredentialsError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        where = f"GOOGLE_APPLICATION_CREDENTIALS={key_file}: " if key_file else ""
        raise PluginError(f"{where}unusable Google Cloud credentials ({first}): {_LOGIN_HINT}") from None
    return credentials


@dataclass
class VertexApi:
    """The v1 API clients for one project/region, built lazily over REST with the same credentials."""

    config: PluginConfig
    credentials: Any
    _clients: dict[str, Any] = field(default_factory=dict)

    @property
    def parent(self) -> str:
        return f"projects/{self.config.project_id}/locations/{self.config.region}"

    def _client(self, kind: str) -> Any:
        if kind not in self._clients:
            from google.cloud import aiplatform_v1

            cls = {
                "pipeline": aiplatform_v1.PipelineServiceClient,
                "schedule": aiplatform_v1.ScheduleServiceClient,
                "metadata": aiplatform_v1.MetadataServiceClient,
            }[kind]
            self._clients[kind] = cls(
                credentials=self.credentials,
                transport="rest",
                client_options={"api_endpoint": api_endpoint(self.config)},
            )
        return self._clients[kind]

    @property
    def pipelines(self) -> Any:
        return self._client("pipeline")

    @property
    def schedules(self) -> Any:
        return self._client("schedule")

    @property
    def metadata(self) -> Any:
        return self._client("metadata")


def connect(config: PluginConfig) -> VertexApi:
    """Credentials checked, clients ready; no request is sent yet."""
    return VertexApi(config, load_credentials(config))


def _is_transient(exc: BaseException) -> bool:
    from google.api_core import exceptions as api
    from google.auth.exceptions import TransportError

    try:
        import requests

        network = (requests.exceptions.ConnectionError, requests.exceptions.Timeout)
    except ImportError:  # pragma: no cover
        network = ()
    transient = (
        api.TooManyRequests,
        api.InternalServerError,
        api.BadGateway,
        api.ServiceUnavailable,
        api.GatewayTimeout,
        api.DeadlineExceeded,
        TransportError,
        *network,
    )
    return isinstance(exc, transient)


def _brief(exc: BaseException) -> str:
    """The error's message on one line, without the request line the REST transport puts in front."""
    message = " ".join(str(getattr(exc, "message", None) or exc).split())
    return re.sub(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ", "", message)


def _api_error(exc: BaseException, action: str, config: PluginConfig) -> PluginError:
    """One line for a refused or failed API call."""
    from google.api_core import exceptions as api
    from google.auth.exceptions import RefreshError

    message = _brief(exc)
    if isinstance(exc, RefreshError):
        return PluginError(f"{action}: Google Cloud credentials could not be refreshed ({message}): {_LOGIN_HINT}")
    if isinstance(exc, api.Unauthorized):
        return PluginError(f"{action}: not authenticated ({message}): {_LOGIN_HINT}")
    if isinstance(exc, api.Forbidden):
        return PluginError(
            f"{action}: permission denied ({message}); the account needs roles/aiplatform.user on project "
            f"{config.project_id} (and roles/iam.serviceAccountUser on the job's service account)"
        )
    if isinstance(exc, api.NotFound):
        return PluginError(
            f"{action}: not found ({message}); check project_id {config.project_id!r} and region "
            f"{config.region!r} in vertexai.yml and that the Vertex AI API is enabled"
        )
    if isinstance(exc, api.GoogleAPICallError):
        return PluginError(f"{action}: Vertex AI answered {exc.code}: {message}")
    if _is_transient(exc):
        return PluginError(f"{action}: cannot reach Vertex AI at {api_endpoint(config)} ({message})")
    return PluginError(f"{action}: {type(exc).__name__}: {message}")


def _call(action: str, config: PluginConfig, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one API call; any failure becomes a one-line PluginError."""
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    try:
        return func(*args, timeout=API_TIMEOUT, **kwargs)
    except (GoogleAPIError, GoogleAuthError, OSError) as exc:
        raise _api_error(exc, action, config) from None
    except Exception as exc:
        if _is_transient(exc):
            raise _api_error(exc, action, config) from None
        raise


# ------------------------------------------------------------------------------------------------------------------
# pre-flight checks


def check_root_bucket(config: PluginConfig, credentials: Any) -> str:
    """Make sure ``run_config.root`` is a ``gs://`` path in an existing bucket we may list; return the root.

    Listing (``storage.objects.list``) rather than reading the bucket's metadata (``storage.buckets.get``)
    because the storage role jobs need — Storage Object Admin on the bucket — grants the former only.
    """
    root = config.gcs_root
    if not root.startswith("gs://"):
        raise PluginError(
            f"run_config.root {config.run_config.root!r} must be a Cloud Storage path like gs://bucket/path "
            "to run on Vertex AI (local paths work only with backend: local)"
        )
    bucket, _, prefix = root[len("gs://") :].partition("/")
    if not bucket:
        raise PluginError(f"run_config.root {root!r} names no bucket: use gs://bucket/path")
    from google.api_core import exceptions as api
    from google.auth.exceptions import TransportError
    from google.cloud import storage
    from google.cloud.storage.retry import DEFAULT_RETRY

    client = storage.Client(project=config.project_id, credentials=credentials)
    try:
        list(client.list_blobs(bucket, prefix=prefix or None, max_results=1, timeout=20,
                               retry=DEFAULT_RETRY.with_timeout(BUCKET_CHECK_TIMEOUT)))
    except (api.RetryError, TransportError) as exc:  # offline, or the credentials' token endpoint is unreachable
        cause = getattr(exc, "cause", None) or exc
        raise PluginError(
            f"checking bucket gs://{bucket}: no answer from Google Cloud within {BUCKET_CHECK_TIMEOUT:.0f} s "
            f"({type(cause).__name__}: {_brief(cause)}): check the network connection and credentials "
            "(`gcloud auth application-default login`); nothing was submitted"
        ) from None
    except api.NotFound:
        raise PluginError(
            f"bucket gs://{bucket} of run_config.root does not exist: create it with `gcloud storage buckets "
            f"create {shlex.quote(f'gs://{bucket}')} {shlex.quote(f'--location={config.region}')}` or fix "
            "run_config.root; nothing was submitted"
        ) from None
    except api.Forbidden as exc:
        raise PluginError(
            f"no permission to list gs://{bucket} ({' '.join(str(exc.message).split())}): grant "
            "roles/storage.objectAdmin on the bucket; nothing was submitted"
        ) from None
    except Exception as exc:
        raise _api_error(exc, f"checking bucket gs://{bucket}", config) from None
    return root


def _ensure_experiment(api: VertexApi, name: str, description: str | None) -> str:
    """Get or create the experiment's metadata context (as ``aiplatform`` does); return its resource name."""
    from google.api_core import exceptions as gexc

    if not _EXPERIMENT_NAME.match(name):
        raise PluginError(
            f"run_config.experiment_name {name!r}: use lowercase letters, digits and '-' (at most 128), "
            "starting with a letter or digit"
        )
    config = api.config
    store = f"{api.parent}/metadataStores/default"
    context_name = f"{store}/contexts/{name}"
    action = f"preparing experiment {name!r}"
    try:
        context = api.metadata.get_context(name=context_name, timeout=API_TIMEOUT)
    except gexc.NotFound:
        context = None
    except Exception as exc:
        raise _api_error(exc, action, config) from None
    if context is not None:
        if context.schema_title != "system.Experiment":
            raise PluginError(
                f"run_config.experiment_name {name!r} is already used by a {context.schema_title} metadata "
                "context, not an experiment: choose another name"
            )
        return context_name
    try:
        api.metadata.get_metadata_store(name=store, timeout=API_TIMEOUT)
    except gexc.NotFound:
        operation = _call(action, config, api.metadata.create_metadata_store, parent=api.parent,
                          metadata_store={}, metadata_store_id="default")
        try:
            operation.result(timeout=300)
        except Exception as exc:
            raise _api_error(exc, action, config) from None
    except Exception as exc:
        raise _api_error(exc, action, config) from None
    try:
        api.metadata.create_context(
            parent=store,
            context_id=name,
            context={
                "display_name": name,
                "schema_title": "system.Experiment",
                "schema_version": "0.0.1",
                "description": description or "",
                "metadata": {"experiment_deleted": False},
            },
            timeout=API_TIMEOUT,
        )
    except gexc.AlreadyExists:
        pass
    except Exception as exc:
        raise _api_error(exc, action, config) from None
    return context_name


def _attach_to_experiment(api: VertexApi, experiment_context: str, run_context: str) -> bool:
    """Link the job's run context to the experiment; a failure is a warning, never an error.

    The job exists and runs by now: failing the command here would make users resubmit it (a second job) for
    the sake of a link in the console. Returns whether the link was made.
    """
    experiment = experiment_context.rsplit("/", 1)[-1]
    try:
        _call(
            f"attaching the job to experiment {experiment!r}",
            api.config,
            api.metadata.add_context_children,
            context=experiment_context,
            child_contexts=[run_context],
        )
    except PluginError as exc:
        job_id = run_context.rsplit("/", 1)[-1]
        click.echo(f"Warning: job {job_id} was submitted and runs, but {exc}", err=True)
        return False
    return True


# ------------------------------------------------------------------------------------------------------------------
# the job


_CASTS: dict[str, tuple[str, Callable[[Any], Any]]] = {}


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise ValueError(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)


def _to_type(kind: type) -> Callable[[Any], Any]:
    def cast(value: Any) -> Any:
        if isinstance(value, str):
            import json

            value = json.loads(value)
        if not isinstance(value, kind):
            raise ValueError(value)
        return value

    return cast


_CASTS.update(
    {
        "NUMBER_INTEGER": ("an integer", _to_int),
        "NUMBER_DOUBLE": ("a number", _to_float),
        "BOOLEAN": ("true or false", _to_bool),
        "STRING": ("a string", str),
        "STRUCT": ("a mapping", _to_type(dict)),
        "LIST": ("a list", _to_type(list)),
    }
)


def parameter_values(spec: dict[str, Any], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job's pipeline parameters, typed as the spec declares them (Vertex rejects e.g. "3" for an integer).

    Values come from the spec's defaults (the compiler records ``--params`` there) and ``overrides``.
    """
    declared = ((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    overrides = dict(overrides or {})
    values: dict[str, Any] = {}
    for name, definition in declared.items():
        if name in overrides:
            value = overrides.pop(name)
        elif "defaultValue" in definition:
            value = definition["defaultValue"]
        elif definition.get("isOptional"):
            continue
        else:
            raise PluginError(f"pipeline parameter {name!r} has no value: pass it with --params {name}=…")
        kind = definition.get("parameterType")
        if kind in _CASTS and value is not None:
            expected, cast = _CASTS[kind]
            try:
                value = cast(value)
            except (ValueError, TypeError):
                raise PluginError(f"pipeline parameter {name!r}: expected {expected}, got {value!r}") from None
        values[name] = value
    if overrides:
        known = ", ".join(sorted(declared)) or "none"
        raise PluginError(f"unknown pipeline parameter {sorted(overrides)[0]!r}: the pipeline declares {known}")
    return values


def _with_default_caching(spec: dict[str, Any], enabled: bool) -> dict[str, Any]:
    """``run_config.caching`` for every task the compiler left without its own ``cachingOptions``.

    Unlike ``aiplatform``'s ``enable_caching`` this never overrides a per-node setting from ``resources``.
    """
    def fill(dag: dict[str, Any]) -> None:
        for task in (dag.get("tasks") or {}).values():
            task.setdefault("cachingOptions", {"enableCache": enabled})

    import copy

    spec = copy.deepcopy(spec)
    fill((spec.get("root") or {}).get("dag") or {})
    for component in (spec.get("components") or {}).values():
        fill(component.get("dag") or {})
    return spec


def build_pipeline_job(
    spec: dict[str, Any],
    config: PluginConfig,
    *,
    display_name: str,
    params: dict[str, Any] | None = None,
    template_uri: str | None = None,
) -> dict[str, Any]:
    """The ``PipelineJob`` body (v1 API field names) for ``spec`` under ``config``; ``template_uri`` records the
    registry template ``spec`` was fetched from."""
    run_config = config.run_config
    job: dict[str, Any] = {
        "display_name": display_name[:128],
        "pipeline_spec": _with_default_caching(spec, run_config.caching),
        "labels": dict(run_config.labels),
        "runtime_config": {
            "gcs_output_directory": config.gcs_root,
            "parameter_values": parameter_values(spec, params),
        },
    }
    if run_config.failure_policy:
        job["runtime_config"]["failure_policy"] = FAILURE_POLICIES[run_config.failure_policy]
    if run_config.service_account:
        job["service_account"] = run_config.service_account
    if run_config.encryption_key:
        job["encryption_spec"] = {"kms_key_name": run_config.encryption_key}
    network = run_config.network
    if network.vpc:
        job["network"] = network.vpc
    if network.reserved_ip_ranges:
        job["reserved_ip_ranges"] = list(network.reserved_ip_ranges)
    if network.psc_interface:
        job["psc_interface_config"] = {
            "network_attachment": network.psc_interface.network_attachment,
            "dns_peering_configs": [peering.model_dump() for peering in network.psc_interface.dns_peering],
        }
    if template_uri:
        job["template_uri"] = template_uri
    return job


def _display_name(spec: dict[str, Any]) -> str:
    """The compiled pipeline's name: the project, then the Kedro pipeline unless ``__default__``."""
    return (spec.get("pipelineInfo") or {}).get("name") or "kedro"


def submit(
    spec: dict[str, Any],
    config: PluginConfig,
    *,
    pipeline_name: str = "__default__",
    wait: bool = True,
    cancel_on_interrupt: bool = False,
    params: dict[str, Any] | None = None,
    template_uri: str | None = None,
) -> str:
    """Submit ``spec`` as one Vertex AI PipelineJob; with ``wait``, follow it until it ends.

    Args:
        spec: the compiled PipelineSpec.
        config: the validated ``vertexai.yml``.
        pipeline_name: the Kedro pipeline's name; names the job.
        wait: follow the job, showing per-task states, until it ends.
        cancel_on_interrupt: on Ctrl-C while waiting, cancel the job without asking.
        params: pipeline parameter values overriding the spec's defaults.
        template_uri: the registry template ``spec`` came from (recorded on the job).

    Returns:
        The job id.

    Raises:
        PluginError: bad input, missing credentials or bucket, a refused API call (nothing submitted then); or,
            with ``wait``, the job ended FAILED, CANCELLED or PAUSED.
    """
    api = connect(config)
    job_body = build_pipeline_job(
        spec, config, display_name=_display_name(spec), params=params, template_uri=template_uri
    )
    check_root_bucket(config, api.credentials)
    experiment = config.run_config.experiment_name
    experiment_context = (
        _ensure_experiment(api, experiment, config.run_config.experiment_description) if experiment else None
    )
    job_id = job_id_for(pipeline_name, spec)
    job = _create_job(api, job_body, job_id)
    url = console_url(config, job_id)
    click.echo(f"Submitted Vertex AI pipeline job {job_id}")
    click.echo(f"View it at {url}")
    if wait:
        wait_for_job(api, job.name, cancel_on_interrupt=cancel_on_interrupt, experiment_context=experiment_context)
    elif experiment_context:
        try:
            _attach_when_ready(api, job.name, experiment_context)
        except PluginError as exc:  # the job runs: never make the user resubmit it over the experiment link
            click.echo(f"Warning: job {job_id} was submitted and runs, but it was not attached to its experiment "
                       f"({exc})", err=True)
    return job_id


def _create_job(api: VertexApi, body: dict[str, Any], job_id: str, attempts: int = 4) -> Any:
    """Create the job, retrying transient errors (429, 5xx, network).

    The explicit job id makes a retry safe: if an earlier attempt did create the job and only its answer was
    lost, Vertex AI answers ALREADY_EXISTS and we take that job instead of submitting a second one.
    """
    from google.api_core import exceptions as gexc

    action = "submitting the pipeline job"
    for attempt in range(attempts):
        try:
            return api.pipelines.create_pipeline_job(
                parent=api.parent, pipeline_job=body, pipeline_job_id=job_id, timeout=API_TIMEOUT
            )
        except gexc.AlreadyExists as exc:
            if attempt == 0:
                raise _api_error(exc, action, api.config) from None
            name = f"{api.parent}/pipelineJobs/{job_id}"
            return _call(action, api.config, api.pipelines.get_pipeline_job, name=name)
        except Exception as exc:
            if attempt == attempts - 1 or not _is_transient(exc):
                raise _api_error(exc, action, api.config) from None
            delay = min(_poll_interval(), 2.0**attempt)
            click.echo(f"Vertex AI did not answer ({_brief(exc)[:200]}); retrying in {delay:g}s", err=True)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _attach_when_ready(api: VertexApi, job_name: str, experiment_context: str) -> None:
    """Vertex AI creates the run's metadata context shortly after the job starts; link it once it exists."""
    deadline = time.monotonic() + EXPERIMENT_ATTACH_TIMEOUT
    failures = [0]
    while True:
        job = _poll(api, job_name, failures)
        run_context = job.job_detail.pipeline_run_context.name if job else ""
        if run_context:
            if _attach_to_experiment(api, experiment_context, run_context):
                click.echo(f"Attached to experiment {experiment_context.rsplit('/', 1)[-1]}")
            return
        if (job and _short_state(job.state) in _FINAL_STATES) or time.monotonic() > deadline:
            click.echo(
                f"Warning: job {job_name.rsplit('/', 1)[-1]} has no run context yet; it was not attached to "
                "the experiment",
                err=True,
            )
            return
        time.sleep(_poll_interval())


# ------------------------------------------------------------------------------------------------------------------
# following a job


def _poll_interval() -> float:
    raw = os.environ.get(POLL_INTERVAL_ENV)
    if not raw:
        return DEFAULT_POLL_INTERVAL
    try:
        value = float(raw)
        if value <= 0:
            raise ValueError
        return value
    except ValueError:
        raise PluginError(f"{POLL_INTERVAL_ENV}={raw!r}: expected a positive number of seconds") from None


def _poll(api: VertexApi, job_name: str, failures: list[int] | None = None) -> Any:
    """One GET of the job; transient errors (429, 5xx, network) are reported and answered with None.

    ``failures`` counts consecutive transient failures (for the backoff); it is reset by an answer.
    """
    failures = failures if failures is not None else [0]
    try:
        job = api.pipelines.get_pipeline_job(name=job_name, timeout=API_TIMEOUT)
    except Exception as exc:
        if not _is_transient(exc):
            raise _api_error(exc, f"following job {job_name.rsplit('/', 1)[-1]}", api.config) from None
        failures[0] += 1
        delay = min(_poll_interval() * 2 ** failures[0], MAX_BACKOFF)
        code = getattr(exc, "code", None)
        status = f"{int(code)} " if isinstance(code, int) else ""
        click.echo(f"Vertex AI did not answer ({status}{_brief(exc)[:200]}); retrying in {delay:g}s", err=True)
        time.sleep(delay)
        return None
    failures[0] = 0
    return job


def _task_details(job: Any) -> list[Any]:
    """The job's container tasks as Vertex AI reports them (``taskName`` is the spec's ``taskInfo.name``).

    Left out: the root entry that stands for the whole pipeline (no parent), and the sub-DAG entries (the exit
    handler's group), which are parents of other tasks — the tasks inside the exit handler are listed.
    """
    details = list(job.job_detail.task_details)
    parents = {d.parent_task_id for d in details if d.parent_task_id}
    return [d for d in details if d.parent_task_id and d.task_id not in parents and d.task_name != EXIT_HANDLER_TASK]


def _task_error(detail: Any) -> str:
    return " ".join(str(detail.error.message).split()) if detail.error and detail.error.message else ""


def _task_states(job: Any) -> list[tuple[str, str, str]]:
    """``(task, state, error)`` for the job's container tasks, named as the console shows them."""
    return [(detail.task_name, detail.state.name, _task_error(detail)) for detail in _task_details(job)]


def _custom_job(detail: Any) -> str:
    """The CustomJob that ran the task's container (its last attempt), or "" when none was started."""
    executor = detail.executor_detail
    return executor.container_detail.main_job if executor and executor.container_detail else ""


class _Progress:
    """Live per-task states: a rich table on a terminal, one ``task: STATE`` line per change otherwise."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.tty = sys.stdout.isatty()
        self.seen: dict[str, str] = {}
        self.job_state = ""
        self.live: Any = None

    def __enter__(self) -> _Progress:
        if self.tty:
            from rich.live import Live

            self.live = Live(self._table([], "PENDING"), refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None

    def _table(self, rows: list[tuple[str, str, str]], state: str) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table()
        table.add_column("Task")
        table.add_column("State")
        with_errors = any(error for _, _, error in rows)
        if with_errors:
            table.add_column("Error", overflow="fold")
        colours = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "cyan", "CANCELLED": "yellow"}
        for task, task_state, error in rows:
            colour = colours.get(task_state)
            cells = [task, f"[{colour}]{task_state}[/]" if colour else task_state]
            table.add_row(*cells, *([error] if with_errors else []))
        return Group(Text(f"job {self.job_id}: {state}"), table)

    def update(self, job: Any) -> None:
        state = _short_state(job.state)
        rows = _task_states(job)
        if self.live is not None:
            self.live.update(self._table(rows, state))
            return
        if state != self.job_state:
            click.echo(f"job {self.job_id}: {state}")
            self.job_state = state
        for task, task_state, _ in rows:
            if self.seen.get(task) != task_state:
                click.echo(f"{task}: {task_state}")
                self.seen[task] = task_state


def wait_for_job(
    api: VertexApi,
    job_name: str,
    *,
    cancel_on_interrupt: bool = False,
    experiment_context: str | None = None,
) -> Any:
    """Poll the job until it ends, showing per-task states; return it when it SUCCEEDED.

    Raises:
        PluginError: the job ended FAILED (naming the failed task and its error), CANCELLED or PAUSED; or the
            wait was interrupted (exit code 130, after cancelling the job if the user said so).
    """
    job_id = job_name.rsplit("/", 1)[-1]
    url = console_url(api.config, job_id)
    attached = experiment_context is None
    failures = [0]
    with _Progress(job_id) as progress:
        try:
            while True:
                job = _poll(api, job_name, failures)
                if job is None:
                    continue
                progress.update(job)
                if not attached and job.job_detail.pipeline_run_context.name:
                    _attach_to_experiment(api, experiment_context, job.job_detail.pipeline_run_context.name)
                    attached = True
                state = _short_state(job.state)
                if state in _FINAL_STATES:
                    break
                time.sleep(_poll_interval())
        except KeyboardInterrupt:
            progress.stop()
            _interrupted(api, job_name, cancel_on_interrupt)
    if state == "SUCCEEDED":
        click.echo(f"Job {job_id} succeeded")
        return job
    if state == "FAILED":
        failed_details = [d for d in _task_details(job) if d.state.name == "FAILED"]
        for detail in failed_details[:MAX_LOGS_SHOWN]:
            show_task_log(api, job, detail)
        failed = [(task, error) for task, task_state, error in _task_states(job) if task_state == "FAILED"]
        failed.sort(key=lambda item: not item[1])  # a task with an error message first
        job_error = " ".join(str(job.error.message).split())
        if failed:
            task, error = failed[0]
            reason = f"task {task} failed: {error or job_error or 'no error message'}"
        else:
            reason = job_error or "no error message"
        raise _job_error(f"job {job_id} FAILED: {reason} (details: {url})", job_id)
    if state == "CANCELLED":
        raise _job_error(f"job {job_id} was CANCELLED (details: {url})", job_id)
    # not ended: no .job_id, so its MLflow run stays open for when the job is resumed
    raise PluginError(f"job {job_id} is PAUSED: resume or cancel it in the console: {url}")


def _job_error(message: str, job_id: str) -> PluginError:
    """The error for a job that ended without succeeding; ``.job_id`` lets callers (MLflow bookkeeping) find it."""
    error = PluginError(message)
    error.job_id = job_id  # type: ignore[attr-defined]
    return error


def _interrupted(api: VertexApi, job_name: str, cancel: bool) -> None:
    job_id = job_name.rsplit("/", 1)[-1]
    click.echo("", err=True)
    if not cancel and sys.stdin.isatty() and sys.stdout.isatty():
        try:
            cancel = click.confirm(f"Cancel job {job_id} on Vertex AI?", default=False, err=True)
        except click.Abort:
            cancel = False
    if cancel:
        _call(f"cancelling job {job_id}", api.config, api.pipelines.cancel_pipeline_job, name=job_name)
        raise PluginError(f"interrupted: cancellation of job {job_id} requested", exit_code=130)
    endpoint = api_endpoint(api.config)
    endpoint = endpoint if "://" in endpoint else f"https://{endpoint}"
    click.echo(
        f"Job {job_id} keeps running. Cancel it in the console ({console_url(api.config, job_id)}) or with:\n"
        f'  curl -X POST -H "Authorization: Bearer $(gcloud auth print-access-token)" '
        f"{shlex.quote(f'{endpoint}/v1/{job_name}:cancel')}",
        err=True,
    )
    raise PluginError(f"interrupted: job {job_id} keeps running on Vertex AI", exit_code=130)


# ------------------------------------------------------------------------------------------------------------------
# task logs


def _job_start(job: Any) -> str | None:
    """The job's creation time as RFC 3339 (bounds the log query), if known."""
    created = job.create_time
    try:
        return created.strftime("%Y-%m-%dT%H:%M:%SZ") if created else None
    except AttributeError:  # pragma: no cover - proto-plus returns datetimes
        return None


def task_log_lines(api: VertexApi, job: Any, detail: Any, lines: int = TAIL_LINES) -> tuple[list[str], str]:
    """The last ``lines`` lines of one task's log and the Logs Explorer link for all of it.

    Raises:
        LogsUnavailable: the log cannot be read (no CustomJob ran, no permission, API error); one line.
    """
    project = api.config.project_id
    custom_job = _custom_job(detail)
    if not custom_job:
        url = logs_explorer_url(project, pipeline_log_filter(job.name.rsplit("/", 1)[-1]))
        raise LogsUnavailable(f"Vertex AI started no container for it, so it has no log; the job's events: {url}")
    log_filter = task_log_filter(custom_job, since=_job_start(job))
    url = logs_explorer_url(project, log_filter)
    if _anonymous() and not _is_local_endpoint(logging_endpoint()):
        raise LogsUnavailable(f"{ANONYMOUS_ENV} is set, so logs are read only from a local {LOGGING_ENDPOINT_ENV}; "
                              f"the log is at {url}")
    try:
        tail = fetch_tail(api.credentials, project, log_filter, lines)
    except LogsUnavailable as exc:
        raise LogsUnavailable(f"{exc}; the log is at {url}") from None
    return [line.text for line in tail], url


def show_task_log(api: VertexApi, job: Any, detail: Any, lines: int = TAIL_LINES) -> None:
    """Print a task's log tail and its Logs Explorer link; a log that cannot be read is one line, never an error."""
    name = detail.task_name
    try:
        tail, url = task_log_lines(api, job, detail, lines)
    except LogsUnavailable as exc:
        click.echo(f"Task {name} ({detail.state.name}): its log cannot be shown: {exc}")
        return
    if not tail:
        click.echo(f"Task {name} ({detail.state.name}): no log lines in Cloud Logging yet; the log: {url}")
        return
    click.echo(f"Task {name} ({detail.state.name}); last {len(tail)} lines of its log:")
    for line in tail:
        click.echo(f"  {line}")
    click.echo(f"Full log: {url}")


def show_logs(config: PluginConfig, job_ref: str, task: str | None = None, lines: int = TAIL_LINES) -> None:
    """``kedro vertexai logs JOB_ID [--task NAME]``: the log tail of the named task, else of every failed task.

    Raises:
        PluginError: unknown job or task, or a job without failed tasks when no ``--task`` is given.
    """
    if not 1 <= lines <= 1000:  # Cloud Logging's largest page
        raise PluginError(f"--lines {lines}: expected a whole number from 1 to 1000")
    api = connect(config)
    job_id = job_ref.rstrip("/").rsplit("/", 1)[-1]
    job = _call(f"reading job {job_id}", config, api.pipelines.get_pipeline_job,
                name=f"{api.parent}/pipelineJobs/{job_id}")
    details = _task_details(job)
    names = ", ".join(repr(d.task_name) for d in details) or "none yet"
    if task is not None:
        chosen = [d for d in details if task in (d.task_name, d.task_unique_name)]
        if not chosen:
            raise PluginError(f"--task {task!r}: job {job_id} has no such task (its tasks: {names})")
    else:
        chosen = [d for d in details if d.state.name == "FAILED"]
        if not chosen:
            raise PluginError(
                f"job {job_id} ({_short_state(job.state)}) has no failed task: choose one with --task NAME "
                f"(its tasks: {names})"
            )
    for detail in chosen:
        show_task_log(api, job, detail, lines)


# ------------------------------------------------------------------------------------------------------------------
# schedules


def _parse_time(value: str | None, key: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise PluginError(f"{key} {value!r}: expected an RFC 3339 time like 2030-01-31T06:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _list_schedules(api: VertexApi) -> list[Any]:
    pager = _call("listing schedules", api.config, api.schedules.list_schedules, parent=api.parent)
    try:
        return list(pager)
    except Exception as exc:
        raise _api_error(exc, "listing schedules", api.config) from None


def create_schedule(
    spec: dict[str, Any],
    config: PluginConfig,
    *,
    cron: str,
    timezone_name: str | None = None,
    start_time: str | None = None,
    end_time: str | None = None,
    max_run_count: int | None = None,
    max_concurrent_run_count: int = 1,
    allow_queueing: bool = False,
    params: dict[str, Any] | None = None,
    template_uri: str | None = None,
) -> str:
    """Create a schedule running ``spec`` on ``cron``; delete earlier schedules with the same display name.

    The display name is ``run_config.scheduled_run_name`` or the compiled pipeline's name. Earlier active
    schedules are paused first, then the new one is created, then the earlier ones are deleted: a refused request
    never leaves the pipeline unscheduled (paused schedules are resumed if the new one cannot be created), and an
    earlier schedule that cannot be deleted stays paused, so the pipeline never fires twice.

    Returns:
        The new schedule's resource name.
    """
    from ..config import validate_cron

    try:
        validate_cron(cron)
    except ValueError as exc:
        raise PluginError(f"--cron: {exc}") from None
    if timezone_name:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(timezone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise PluginError(f"unknown time zone {timezone_name!r}: use an IANA name like Europe/Warsaw") from None
    display_name = config.run_config.scheduled_run_name or _display_name(spec)
    api = connect(config)
    job_body = build_pipeline_job(spec, config, display_name=display_name, params=params, template_uri=template_uri)
    schedule: dict[str, Any] = {
        "display_name": display_name,
        "cron": f"TZ={timezone_name} {cron}" if timezone_name else cron,
        "max_concurrent_run_count": max_concurrent_run_count,
        "create_pipeline_job_request": {"parent": api.parent, "pipeline_job": job_body},
    }
    if max_run_count:
        schedule["max_run_count"] = max_run_count
    if allow_queueing:
        schedule["allow_queueing"] = True
    for key, value in (("start_time", start_time), ("end_time", end_time)):
        parsed = _parse_time(value, key)
        if parsed:
            schedule[key] = parsed
    check_root_bucket(config, api.credentials)
    earlier = [s for s in _list_schedules(api) if s.display_name == display_name]
    paused: list[Any] = []
    try:
        for old in earlier:
            if old.state.name == "ACTIVE":
                _call(f"pausing earlier schedule {old.name}", config, api.schedules.pause_schedule, name=old.name)
                paused.append(old)
        created = _call("creating the schedule", config, api.schedules.create_schedule, parent=api.parent,
                        schedule=schedule)
    except PluginError:
        for old in paused:  # put things back as they were; best effort, the original error is the news
            try:
                api.schedules.resume_schedule(name=old.name, timeout=API_TIMEOUT)
            except Exception:
                click.echo(f"Warning: could not resume earlier schedule {old.name}: resume it in the console",
                           err=True)
        raise
    click.echo(f"Created schedule {display_name!r} ({schedule['cron']}): {created.name}")
    failures: list[str] = []
    for old in earlier:
        try:
            operation = _call(f"deleting earlier schedule {old.name}", config, api.schedules.delete_schedule,
                              name=old.name)
            try:
                operation.result(timeout=120)
            except Exception as exc:
                raise _api_error(exc, f"deleting earlier schedule {old.name}", config) from None
        except PluginError as exc:
            failures.append(str(exc))
            continue
        click.echo(f"Replaced earlier schedule {old.name} ({old.cron}, {old.state.name})")
    if failures:
        raise PluginError(
            f"the new schedule {created.name} is active, but {len(failures)} earlier one(s) named {display_name!r} "
            f"could not be deleted and stay paused (they will not run): {failures[0]}; delete them in the console"
        )
    return created.name


def schedule_from_cli(
    env: str | None,
    pipeline_name: str,
    params: dict[str, Any],
    *,
    cron: str | None,
    timezone: str | None,
    schedule_name: str | None,
    open_job: Callable[[str | None, str, dict[str, Any]], Any],
    pipeline_given: bool = False,
) -> str:
    """``kedro vertexai schedule``: ``--cron``/``--timezone``, or a named entry of ``run_config.schedules``.

    A named schedule's ``pipeline`` applies unless ``--pipeline`` names another; ``--params`` override its
    ``params``; ``pipeline_given`` says ``--pipeline`` was on the command line (even as ``__default__``).
    ``open_job(env, pipeline, params)`` opens the Kedro session (``.config``, ``.spec()``,
    ``.close()``).
    """
    job = open_job(env, pipeline_name, params)
    try:
        config = job.config
        options: dict[str, Any] = {}
        if schedule_name:
            if cron:
                raise PluginError("give either --cron or --schedule, not both")
            entry = config.run_config.schedules.get(schedule_name)
            if entry is None:
                known = ", ".join(sorted(config.run_config.schedules)) or "none"
                raise PluginError(f"--schedule {schedule_name!r}: run_config.schedules defines {known}")
            cron = entry.cron
            timezone = timezone or entry.timezone
            options = {
                "start_time": entry.start_time,
                "end_time": entry.end_time,
                "max_run_count": entry.max_run_count,
                "max_concurrent_run_count": entry.max_concurrent_run_count,
                "allow_queueing": entry.allow_queueing,
            }
            wanted_pipeline = entry.pipeline if entry.pipeline and not pipeline_given else pipeline_name
            wanted_params = {**entry.params, **params}
            if wanted_pipeline != pipeline_name or wanted_params != params:
                job.close()
                pipeline_name, params = wanted_pipeline, wanted_params
                job = open_job(env, pipeline_name, params)
                config = job.config
        elif not cron:
            known = ", ".join(sorted(config.run_config.schedules))
            hint = f" (run_config.schedules defines {known})" if known else ""
            raise PluginError(f"give --cron EXPRESSION or --schedule NAME{hint}")
        spec = job.spec()
    finally:
        job.close()
    template = getattr(job, "template_uri", None)  # set when the job runs a registry template
    return create_schedule(spec, config, cron=cron, timezone_name=timezone, template_uri=template, **options)


# ------------------------------------------------------------------------------------------------------------------
# list and ui


def _when(value: Any) -> str:
    if not value:
        return ""
    try:
        return value.strftime("%Y-%m-%d %H:%M")
    except AttributeError:
        return str(value)


def list_jobs_and_schedules(config: PluginConfig, limit: int = 20) -> None:
    """Print the project's most recent pipeline jobs (state, console link) and its schedules as tables."""
    from rich.console import Console
    from rich.table import Table

    if limit < 1:
        raise PluginError(f"--limit {limit}: expected a whole number ≥ 1")
    api = connect(config)
    request = {"parent": api.parent, "page_size": min(limit, 100), "order_by": "create_time desc"}
    pager = _call("listing pipeline jobs", config, api.pipelines.list_pipeline_jobs, request=request)
    jobs: list[Any] = []
    try:
        for job in pager:
            jobs.append(job)
            if len(jobs) >= limit:
                break
    except Exception as exc:
        raise _api_error(exc, "listing pipeline jobs", config) from None
    schedules = _list_schedules(api)

    # piped output (scripts, CI logs) gets natural widths so links are never folded across lines
    console = Console() if sys.stdout.isatty() else Console(width=1000)
    table = Table(title=f"Pipeline jobs in {config.project_id}/{config.region} (latest {limit})", title_justify="left")
    for column in ("Job", "Display name", "State", "Created", "Link"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        job_id = job.name.rsplit("/", 1)[-1]
        table.add_row(job_id, job.display_name, _short_state(job.state), _when(job.create_time),
                      console_url(config, job_id))
    console.print(table if jobs else "No pipeline jobs yet.")
    table = Table(title="Schedules", title_justify="left")
    for column in ("Schedule", "State", "Cron", "Next run", "Id"):
        table.add_column(column, overflow="fold")
    for item in schedules:
        table.add_row(item.display_name, item.state.name, item.cron, _when(item.next_run_time),
                      item.name.rsplit("/", 1)[-1])
    console.print(table if schedules else "No schedules.")


def open_ui(config: PluginConfig, opener: Callable[[str], bool] | None = None) -> str:
    """Open the Vertex AI Pipelines console page in a browser; print the URL in any case (CI, no browser)."""
    url = pipelines_console_url(config)
    click.echo(url)
    if os.environ.get("CI"):
        return url
    if opener is None:
        import webbrowser

        opener = webbrowser.open
    try:
        opened = opener(url)
    except Exception:
        opened = False
    if not opened:
        click.echo("No browser available: open the URL above.", err=True)
    return url


from typing import ClassVar  # noqa: E402

from .base import Backend, Capability  # noqa: E402


class VertexBackend(Backend):
    """Vertex AI Pipelines, declared by its facts (the configuration reads them)."""

    name: ClassVar[str] = "vertex"
    title: ClassVar[str] = "Vertex AI Pipelines (project_id, region)"
    root_schemes: ClassVar[tuple[str, ...]] = ("gs",)
    capabilities: ClassVar[frozenset[Capability]] = frozenset(Capability)
    needs_gcp_project: ClassVar[bool] = True
