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

from .errors import PluginError
from .values import is_on

if TYPE_CHECKING:
    from .config import PluginConfig

_TAG = re.compile(r"^[a-z][a-z0-9_.-]{0,127}$", re.IGNORECASE)
_TIMEOUT = 60


def registry_url(config: PluginConfig) -> str:
    """``run_config.pipeline_registry``, or a one-line error saying how to set it."""
    url = config.run_config.pipeline_registry
    if not url:
        raise PluginError(
            "run_config.pipeline_registry is not set: set it to a Kubeflow Pipelines repository in Artifact "
            f"Registry, e.g. https://{config.region}-kfp.pkg.dev/{config.project_id}/pipelines"
        )
    return url.rstrip("/")


def check_tag(tag: str) -> str:
    if not _TAG.match(tag) or tag.startswith("sha256:"):
        raise PluginError(f"--tag {tag!r}: expected letters, digits, '-', '_' or '.', starting with a letter")
    return tag


def _bearer(url: str, config: PluginConfig) -> dict[str, str]:
    """The Authorization header for ``url`` (none for a local test server with anonymous credentials)."""
    from .backends.vertex.api import ANONYMOUS_ENV, _is_local_endpoint, load_credentials

    if is_on(os.environ.get(ANONYMOUS_ENV)):
        if not _is_local_endpoint(url):
            raise PluginError(f"{ANONYMOUS_ENV} is honoured only for a registry on localhost, not {url}: unset it")
        return {}
    credentials = load_credentials(config)
    import google.auth.transport.requests

    try:
        credentials.refresh(google.auth.transport.requests.Request())
    except Exception as exc:
        raise PluginError(f"cannot get a Google Cloud access token for {url} ({_brief(exc)})") from None
    return {"Authorization": f"Bearer {credentials.token}"}


def _brief(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:300]


def _http_error(exc: Exception, action: str, url: str) -> PluginError:
    response = getattr(exc, "response", None)
    if response is not None:
        detail = " ".join((response.text or "").split())[:200]
        hint = {401: "check your credentials", 403: "you need roles/artifactregistry.writer (upload) or .reader",
                404: "check the repository URL, package and tag"}.get(response.status_code, "try again")  # fmt: skip
        return PluginError(f"{action} {url}: HTTP {response.status_code} {detail}: {hint}")
    return PluginError(f"{action} {url}: {_brief(exc)}: check the URL and your network")


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
            package, version = client.upload_pipeline(path, tags=list(tags) or None)
        except Exception as exc:
            raise _http_error(exc, "uploading the pipeline to", url) from None
    return package, version, f"{url}/{package}/{version}"


class _NoAuth:
    """``requests`` auth that adds nothing (a local test registry)."""

    def __call__(self, request: Any) -> Any:
        return request


def template_uri(value: str, config: PluginConfig, package: str) -> str:
    """A full template URI as given, or ``<run_config.pipeline_registry>/<package>/<value>`` for a tag/version."""
    if "://" in value:
        if not value.startswith(("https://", "http://")):
            raise PluginError(f"template_uri {value!r}: expected an https:// URL of a template, or a tag")
        return value.rstrip("/")
    if not value.startswith("sha256:"):
        check_tag(value)
    return f"{registry_url(config)}/{package}/{value}"


def fetch_template(uri: str, config: PluginConfig) -> dict[str, Any]:
    """Download the PipelineSpec at ``uri`` (YAML or JSON)."""
    import requests
    import yaml

    headers = _bearer(uri, config)
    try:
        response = requests.get(uri, headers=headers, timeout=_TIMEOUT)
        response.raise_for_status()
    except Exception as exc:
        raise _http_error(exc, "fetching the pipeline template", uri) from None
    try:
        spec = yaml.safe_load(response.content)
    except yaml.YAMLError as exc:
        raise PluginError(f"template {uri}: not a pipeline spec ({_brief(exc)})") from None
    if isinstance(spec, dict) and "pipelineSpec" in spec:  # a PipelineJob-style wrapper
        spec = spec["pipelineSpec"]
    if not isinstance(spec, dict) or "root" not in spec or "pipelineInfo" not in spec:
        raise PluginError(f"template {uri}: not a pipeline spec (no root/pipelineInfo): check the URI")
    return spec
