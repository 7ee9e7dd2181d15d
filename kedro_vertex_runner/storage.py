"""Opening a job's storage (a folder, ``gs://``, ``s3://``) through fsspec: one way, used by every module.

fsspec imports a scheme's implementation when a URL first uses it: gcsfs for ``gs://`` (installed with the plugin)
and s3fs for ``s3://`` (the optional extra ``kedro-vertex-runner[s3]``, for the MinIO or S3 storage of Kubeflow
Pipelines clusters). Without it, fsspec's ImportError would surface as a traceback from deep inside a dataset save
in some task; here it is one line naming the root and the command that fixes it, said before anything runs.

s3fs finds its endpoint and credentials the way botocore does: ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``)
for MinIO and other S3-compatible stores, ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE`` and
``~/.aws/``, or the machine's role. Nothing of that is configured, stored or compiled by the plugin.

Imported by the task entrypoint: standard library only at import time.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from .errors import PluginError

#: scheme → (the package fsspec opens it with, the plugin's extra that installs that package)
_PACKAGES: dict[str, tuple[str, str | None]] = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", None),
    "gcs": ("gcsfs", None),
}


def scheme(url: str) -> str:
    """``s3`` for ``s3://bucket/path``; ``""`` for a local path."""
    head, separator, _ = url.partition("://")
    return head.lower() if separator else ""


def missing_package(url: str, what: str = "root") -> str | None:
    """The one line saying what to install to open ``url`` (``what`` names it), when its scheme's package is not
    installed; None when nothing is missing."""
    package = _PACKAGES.get(scheme(url), ("", None))[0]
    try:
        if not package or importlib.util.find_spec(package) is not None:
            return None
    except (ImportError, ValueError):  # a broken or blocked install counts as missing
        pass
    return _install_line(url, what)


def _install_line(url: str, what: str) -> str | None:
    known = _PACKAGES.get(scheme(url))
    if known is None:
        return None
    package, extra = known
    how = f"pip install 'kedro-vertex-runner[{extra}]'" if extra else f"pip install {package}"
    return f"{what} {url}: install {package} ({how})"


def require(root: str | None) -> None:
    """Refuse, in one line, a storage root whose scheme's package is not installed.

    Raises:
        PluginError: ``root s3://…: install s3fs (pip install 'kedro-vertex-runner[s3]')``.
    """
    line = missing_package(root) if root else None
    if line:
        raise PluginError(line)


def url_to_fs(url: str, **options: Any) -> tuple[Any, str]:
    """fsspec's ``url_to_fs``; a scheme whose package cannot be imported is the one line of :func:`require`.

    Raises:
        PluginError: the package for ``url``'s scheme is missing.
    """
    from fsspec.core import url_to_fs as fsspec_url_to_fs

    try:
        return fsspec_url_to_fs(url, **options)
    except ImportError:
        line = _install_line(url, "storage")
        if line is None:
            raise
        raise PluginError(line) from None


def bounded_options(url: str) -> dict[str, Any]:
    """fsspec options that make each request to ``url``'s storage wait at most the network time limit
    (``KEDRO_VERTEX_NETWORK_TIMEOUT``), for the launcher's own calls (code upload): gcsfs's ``requests_timeout``,
    botocore's connect and read timeouts with one retry. Nothing for a local path."""
    from .network import network_timeout

    limit = network_timeout()
    kind = _PACKAGES.get(scheme(url), ("", None))[0]
    if kind == "gcsfs":
        return {"requests_timeout": limit}
    if kind == "s3fs":
        return {
            "config_kwargs": {
                "connect_timeout": limit,
                "read_timeout": limit,
                "retries": {"max_attempts": 2, "mode": "standard"},
            }
        }
    return {}
