"""Pipeline templates in Artifact Registry: upload a compiled spec, and fetch one to run or schedule.

A Kubeflow Pipelines repository in Artifact Registry (``https://<region>-kfp.pkg.dev/<project>/<repo>``) keeps
versioned templates: every upload is a version named by its sha256 and may carry tags (the registry adds
``latest``). Production schedules can then point at a reviewed template (``template_uri``) instead of whatever the
local checkout compiles to. Uploading goes through kfp's :class:`kfp.registry.RegistryClient` (the registry's own
client: a multipart POST of the YAML to the repository URL); fetching is one GET of
``<repository>/<package>/<tag or sha256:…>``. Both authenticate with the same Application Default Credentials as
the Vertex AI calls (a bearer token). The package is named after the compiled pipeline (the project, then the
Kedro pipeline unless ``__default__``), so a bare tag such as ``prod`` names the template of this pipeline.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from typing import TYPE_CHECKING, Any

from ...errors import PluginError
from ...network import brief, is_loopback, network_timeout, no_answer, redact, refuse_userinfo, require_https
from ...pipeline_spec import looks_compiled
from ...values import is_on

if TYPE_CHECKING:
    from ...config import PluginConfig

_TAG = re.compile(r"^[a-z][a-z0-9_.-]{0,127}$", re.IGNORECASE)
_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$", re.IGNORECASE)  # a project, repository or package name
_VERSION = re.compile(r"^sha256:[0-9a-f]{64}$")
_FORM = "https://<region>-kfp.pkg.dev/<project>/<repository>"


def registry_url(config: PluginConfig) -> str:
    """``run_config.pipeline_registry``, or a one-line error saying how to set it."""
    url = config.run_config.pipeline_registry
    if not url:
        raise PluginError(
            "run_config.pipeline_registry is not set: set it to a Kubeflow Pipelines repository in Artifact "
            f"Registry, e.g. https://{config.region}-kfp.pkg.dev/{config.project_id}/pipelines"
        )
    return check_url(url.rstrip("/"), "run_config.pipeline_registry", 2)


def check_url(url: str, key: str, segments: int | None = None) -> str:
    """``url`` when it is a well-formed registry URL (``key`` names where it came from), checked before any request:
    no credentials in it, ``https://`` (``http://`` for loopback test servers only), no query, and path segments that
    are names (no ``..``, no empty segment, no other characters); ``segments`` is how many a repository URL has.

    Raises:
        PluginError: one line naming ``key`` and the documented form.
    """
    from urllib.parse import urlsplit

    refuse_userinfo(key, url)
    require_https(url, "your Google access token", key)
    parts = urlsplit(url)
    path = parts.path.strip("/").split("/") if parts.path.strip("/") else []
    bad = [s for s in path if not (_SEGMENT.match(s) or _VERSION.match(s)) or s in {".", ".."}]
    if parts.query or parts.fragment or not parts.hostname or "//" in parts.path or bad:
        what = ("an empty path segment" if bad[0] == "" else f"path segment {bad[0]!r}") if bad else "its form"
        raise PluginError(
            f"{key}: {redact(url)}: {what} is not allowed: expected {_FORM} (names of letters, digits, '-', '_', '.')"
            + ("" if segments else ", then /<package>/<tag or sha256:…>")
        )
    if segments is not None and len(path) != segments and not is_loopback(url):
        raise PluginError(f"{key}: {redact(url)}: expected {_FORM}")
    return url


def check_tag(tag: str) -> str:
    if not _TAG.match(tag) or tag.startswith("sha256:"):
        raise PluginError(f"--tag {tag!r}: expected letters, digits, '-', '_' or '.', starting with a letter")
    return tag


def _bearer(url: str, config: PluginConfig) -> dict[str, str]:
    """The Authorization header for ``url`` (none for a local test server with anonymous credentials)."""
    from .api import ANONYMOUS_ENV, _is_local_endpoint, load_credentials

    require_https(url, "your Google access token", "the template registry")
    if is_on(os.environ.get(ANONYMOUS_ENV)):
        if not _is_local_endpoint(url):
            raise PluginError(f"{ANONYMOUS_ENV} is honoured only for a registry on localhost, not {url}: unset it")
        return {}
    credentials = load_credentials(config)
    from ...network import timed_auth_request

    try:
        credentials.refresh(timed_auth_request())
    except Exception as exc:
        raise PluginError(
            f"cannot get a Google Cloud access token for {url} ({brief(exc, named=True, limit=300)})"
        ) from None
    return {"Authorization": f"Bearer {credentials.token}"}


def _http_error(exc: Exception, action: str, url: str) -> PluginError:
    import requests

    url = redact(url)
    if isinstance(exc, (requests.Timeout, TimeoutError)):
        return no_answer(url, "to the upload" if action.startswith("uploading") else "to the download")
    response = getattr(exc, "response", None)
    if response is not None:
        detail = " ".join((response.text or "").split())[:200]
        hint = {401: "check your credentials", 403: "you need roles/artifactregistry.writer (upload) or .reader",
                404: "check the repository URL, package and tag"}.get(response.status_code, "try again")  # fmt: skip
        return PluginError(f"{action} {url}: HTTP {response.status_code} {detail}: {hint}")
    return PluginError(f"{action} {url}: {brief(exc, named=True, limit=300)}: check the URL and your network")


def upload_template(spec: dict[str, Any], config: PluginConfig, tags: list[str]) -> tuple[str, str, str]:
    """Upload ``spec`` to the configured repository with ``tags``; returns ``(package, version, template URI)``."""
    from kfp.registry import RegistryClient
    from kfp.registry.registry_client import ApiAuth

    url = registry_url(config)
    for tag in tags:
        check_tag(tag)
    header = _bearer(url, config)
    token = header.get("Authorization", "").removeprefix("Bearer ")
    client = RegistryClient(host=url, auth=ApiAuth(token) if token else _NoAuth())
    with tempfile.TemporaryDirectory(prefix="kedro-vertex-template-") as folder:
        path = os.path.join(folder, "pipeline.yaml")
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(spec, stream, sort_keys=True)  # JSON is YAML: the registry and Vertex AI read either
        try:
            package, version = _bounded(client.upload_pipeline, path, tags=list(tags) or None)
        except Exception as exc:
            raise _http_error(exc, "uploading the pipeline to", url) from None
    return package, version, f"{url}/{package}/{version}"


def _bounded(func: Any, *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)`` given at most the network time limit to connect and as long to answer (kfp's
    registry client sets no timeout: it waits in a daemon thread that does not keep the process alive)."""
    import threading

    result: list[Any] = []
    failure: list[BaseException] = []

    def call() -> None:
        try:
            result.append(func(*args, **kwargs))
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=call, name="kedro-vertex-registry", daemon=True)
    worker.start()
    worker.join(2 * network_timeout())
    if worker.is_alive():
        raise TimeoutError("no answer")
    if failure:
        raise failure[0]
    return result[0]


class _NoAuth:
    """``requests`` auth that adds nothing (a local test registry)."""

    def __call__(self, request: Any) -> Any:
        return request


def template_uri(value: str, config: PluginConfig, package: str) -> str:
    """A full template URI as given, or ``<run_config.pipeline_registry>/<package>/<value>`` for a tag/version."""
    if "://" in value:
        if not value.startswith(("https://", "http://")):
            raise PluginError(f"template_uri {redact(value)!r}: expected an https:// URL of a template, or a tag")
        return check_url(value.rstrip("/"), "template_uri", 4)
    if value.startswith("sha256:"):
        if not _VERSION.match(value):
            raise PluginError(f"template_uri {value!r}: expected sha256: and 64 lower-case hex digits, or a tag")
    else:
        check_tag(value)
    if not _SEGMENT.match(package):
        raise PluginError(f"pipeline name {package!r} cannot name a template package: use letters, digits and '-'")
    return f"{registry_url(config)}/{package}/{value}"


def fetch_template(uri: str, config: PluginConfig) -> dict[str, Any]:
    """Download the PipelineSpec at ``uri`` (YAML or JSON)."""
    import requests
    import yaml

    check_url(uri, "template_uri")
    headers = _bearer(uri, config)
    limit = network_timeout()
    try:
        response = requests.get(uri, headers=headers, timeout=(limit, limit))
        response.raise_for_status()
    except Exception as exc:
        raise _http_error(exc, "fetching the pipeline template", uri) from None
    try:
        spec = yaml.safe_load(response.content)
    except yaml.YAMLError as exc:
        raise PluginError(
            f"template {redact(uri)}: not a pipeline spec ({brief(exc, named=True, limit=300)})"
        ) from None
    if isinstance(spec, dict) and "pipelineSpec" in spec:  # a PipelineJob-style wrapper
        spec = spec["pipelineSpec"]
    if not isinstance(spec, dict) or not looks_compiled(spec):
        raise PluginError(f"template {redact(uri)}: not a pipeline spec (no root/pipelineInfo): check the URI")
    return spec
