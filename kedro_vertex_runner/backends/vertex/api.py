"""Vertex AI API access: names and links, credentials and clients, one-line errors, pre-flight checks.

It uses the Vertex AI v1 API clients that ship with ``google-cloud-aiplatform`` (``aiplatform_v1``) rather than the
high-level ``aiplatform.PipelineJob``, because the high-level class

* imports in ~3.8 s (the v1 clients in ~1 s), and every ``kedro vertexai`` command would pay for it;
* tries to create the pipeline-root bucket on submit (a stall against a private endpoint, and a surprise bucket
  in the wrong region when ``run_config.root`` has a typo) — we check the bucket exists and stop if it does not;
* returns from ``wait()`` on CANCELLED as if the job had succeeded, and shows no per-task progress.

Everything user-facing is one line: bad input, missing credentials, a missing bucket and a refused API call all
become :class:`~kedro_vertex_runner.errors.PluginError`.

Environment variables:
    ``KEDRO_VERTEX_POLL_INTERVAL``: seconds between status polls while waiting (default 10).
    ``KEDRO_VERTEX_ANONYMOUS_CREDENTIALS=1``: use anonymous credentials — honoured only when ``api_endpoint``
    points at this machine (``localhost``/``127.0.0.1``), for tests against a local fake of the API.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ...errors import PluginError
from ...network import brief, refuse_userinfo, require_https, timeout_setting
from ...values import is_on

if TYPE_CHECKING:
    from ...config import PluginConfig

ANONYMOUS_ENV = "KEDRO_VERTEX_ANONYMOUS_CREDENTIALS"
# how long a --no-wait submit waits for Vertex AI to create the run's metadata context (experiment link)
EXPERIMENT_ATTACH_TIMEOUT = 120.0
API_TIMEOUT = timeout_setting()  # KEDRO_VERTEX_NETWORK_TIMEOUT, default 60 s
MAX_LOGS_SHOWN = 3  # failed tasks whose log tail is printed when a job fails
BUCKET_CHECK_TIMEOUT_ENV = "KEDRO_VERTEX_BUCKET_CHECK_TIMEOUT"
DEFAULT_BUCKET_CHECK_TIMEOUT = 30.0
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
    if is_on(os.environ.get("NO_GCE_CHECK")):
        return False
    if any(
        os.environ.get(v)
        for v in (
            "GCE_METADATA_HOST",
            "GCE_METADATA_IP",
            "K_SERVICE",
            "CLOUD_RUN_JOB",
            "FUNCTION_TARGET",
            "GAE_ENV",
            "KUBERNETES_SERVICE_HOST",
        )
    ):
        return True
    try:
        with open("/sys/class/dmi/id/product_name") as fh:
            return "Google" in fh.read()
    except OSError:
        return False


def _anonymous() -> bool:
    return is_on(os.environ.get(ANONYMOUS_ENV))


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
    def project_id(self) -> str:
        """``project_id`` of the config (the Vertex backend requires it when the config is loaded)."""
        if self.config.project_id is None:  # pragma: no cover - refused when vertexai.yml is read
            raise PluginError("vertexai.yml: project_id is missing: add the Google Cloud project to run on")
        return self.config.project_id

    @property
    def parent(self) -> str:
        return f"projects/{self.config.project_id}/locations/{self.config.region}"

    def _client(self, kind: str) -> Any:
        if kind not in self._clients:
            from google.cloud import aiplatform_v1

            from .runtime import uses_v1beta1

            module = aiplatform_v1
            if kind != "metadata" and uses_v1beta1(self.config):  # the persistent resource runtime is v1beta1's
                from google.cloud import aiplatform_v1beta1 as module  # type: ignore[no-redef]
            cls = {
                "pipeline": module.PipelineServiceClient,
                "schedule": module.ScheduleServiceClient,
                "metadata": module.MetadataServiceClient,
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
    """Credentials checked, clients ready; no request is sent yet. An ``api_endpoint`` written as a URL must be
    https:// (the Google token goes with every call), or a loopback test server."""
    endpoint = api_endpoint(config)
    if "://" in endpoint:
        refuse_userinfo("api_endpoint", endpoint)
        require_https(endpoint, "your Google access token", "api_endpoint")
    return VertexApi(config, load_credentials(config))


def _is_transient(exc: BaseException) -> bool:
    from google.api_core import exceptions as api
    from google.auth.exceptions import TransportError

    network: tuple[type[BaseException], ...]
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


def _api_error(exc: BaseException, action: str, config: PluginConfig) -> PluginError:
    """One line for a refused or failed API call."""
    from google.api_core import exceptions as api
    from google.auth.exceptions import RefreshError

    message = brief(exc)
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

    from ...values import env_seconds

    timeout = env_seconds(BUCKET_CHECK_TIMEOUT_ENV, DEFAULT_BUCKET_CHECK_TIMEOUT)
    client = storage.Client(project=config.project_id, credentials=credentials)
    try:
        list(
            client.list_blobs(
                bucket,
                prefix=prefix or None,
                max_results=1,
                timeout=20,
                retry=DEFAULT_RETRY.with_timeout(timeout),
            )
        )
    except (api.RetryError, TransportError) as exc:  # offline, or the credentials' token endpoint is unreachable
        cause = getattr(exc, "cause", None) or exc
        raise PluginError(
            f"checking bucket gs://{bucket}: no answer from Google Cloud within {timeout:.0f} s "
            f"({brief(cause, named=True)}): check the network connection and credentials "
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
