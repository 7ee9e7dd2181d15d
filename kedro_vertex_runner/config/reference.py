"""kedro-vertexai (the reference plugin) keys.

A team moving from kedro-vertexai keeps its vertexai.yml: each of its keys that has an equivalent here is
translated with one warning line saying what to write instead; a key without one is one error line. Everything
is translated here, before validation, so the models in :mod:`.schema` only ever see this plugin's own keys.
"""

from __future__ import annotations

import logging
import typing
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .sources import _short_repr, file_defining

logger = logging.getLogger(__name__)

# keys of the reference plugin that mean nothing on Vertex AI: accepted, warned about, dropped
IGNORED_RUN_CONFIG_KEYS = ("image_pull_policy", "ttl")
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
        logger.warning(
            "%s: run_config.%s is a kedro-vertexai key: write %s instead", self.where(loc), ".".join(loc), instead
        )

    def fail(self, loc: tuple[str, ...], reason: str) -> typing.NoReturn:
        raise ConfigError(f"{self.where(loc)}: run_config.{'.'.join(loc)}: {reason}")

    def moved(self, entry: dict[str, Any], loc: tuple[str, ...], new: str, parent: tuple[str, ...]) -> None:
        """Move ``entry[loc[-1]]`` (a reference key) to ``entry[new]`` with one warning line; both set to different
        values is one error line (which one was meant cannot be known)."""
        old = loc[-1]
        value = entry.pop(old)
        instead = f"run_config.{'.'.join((*parent, new))}"
        if new in entry and entry[new] != value:
            self.fail(
                loc,
                f"contradicts {instead} ({_short_repr(value)} against {_short_repr(entry[new])}): keep only {instead}",
            )
        self.warn(loc, instead)
        entry[new] = value

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
    translate = _backend_translation(value.get("backend"))
    if translate is not None:  # another plugin's keys that mean something on this backend (kedro-kubeflow's)
        translate(value, tr)
    for key in IGNORED_RUN_CONFIG_KEYS:
        if key in value:
            value.pop(key)
            logger.warning(
                "%s: run_config.%s is ignored: it has no meaning on Vertex AI Pipelines; remove it",
                tr.where((key,)),
                key,
            )
    if "vertex_ai_networking" in value:
        tr.moved(value, ("vertex_ai_networking",), "network", ())
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
    cls_name = grouping.get("cls", "kedro_vertexai.grouping.IdentityNodeGrouper")
    if not isinstance(cls_name, str):
        tr.fail(
            ("grouping", "cls"),
            f"expected a class name, got {_short_repr(cls_name)}: use grouping: chains, none, namespace or tags",
        )
    mode = _REFERENCE_GROUPERS.get(cls_name)
    if mode is None:
        tr.fail(("grouping", "cls"), f"{cls_name!r} has no equivalent: use grouping: chains, none, namespace or tags")
    params = tr.mapping(grouping.get("params"), ("grouping", "params"))
    prefix = params.pop("tag_prefix", "group.")
    if params:
        tr.fail(("grouping", "params"), f"{sorted(map(str, params))[0]!r} has no equivalent: remove it")
    if mode == "tags" and prefix != "group.":
        tr.fail(
            ("grouping", "params", "tag_prefix"),
            f"{prefix!r}: tag grouping reads tags `group.<name>`: rename the tags and use grouping: tags",
        )
    tr.warn(("grouping",), f"`grouping: {mode}`")
    return mode


def _translate_resources(name: Any, entry: dict[str, Any], tr: _Translation) -> dict[str, Any]:
    entry = _drop_none_texts(dict(entry), ("resources", str(name)), tr)
    if _GPU_RESOURCE in entry:
        tr.moved(entry, ("resources", str(name), _GPU_RESOURCE), "gpu", ("resources", str(name)))
    return entry


def _translate_node_selectors(value: dict[str, Any], tr: _Translation) -> None:
    selectors = tr.mapping(value.pop("node_selectors"), ("node_selectors",))
    resources = dict(value.get("resources") or {})
    for name, entry in selectors.items():
        for selector, accelerator in tr.mapping(entry, ("node_selectors", str(name))).items():
            loc = ("node_selectors", str(name), str(selector))
            if selector != _ACCELERATOR_SELECTOR:
                tr.fail(
                    loc, "has no equivalent on Vertex AI Pipelines (only the accelerator type can be chosen): remove it"
                )
            tr.warn(loc, f"run_config.resources.{name}.accelerator: {accelerator}")
            resources[name] = {**tr.mapping(resources.get(name), ("resources", str(name))), "accelerator": accelerator}
    value["resources"] = resources


def _translate_config_providers(value: dict[str, Any], tr: _Translation) -> None:
    providers = value.pop("dynamic_config_providers") or []
    if not isinstance(providers, list):
        tr.fail(("dynamic_config_providers",), f"expected a list, got {_short_repr(providers)}")
    if not providers:
        logger.warning(
            "%s: run_config.dynamic_config_providers is ignored: it is empty; remove it",
            tr.where(("dynamic_config_providers",)),
        )
        return
    for index, provider in enumerate(providers):
        loc = ("dynamic_config_providers", str(index))
        provider = tr.mapping(provider, loc)
        params = tr.mapping(provider.get("params"), (*loc, "params"))
        if provider.get("cls") not in _REFERENCE_TOKEN_PROVIDERS or "client_id" not in params:
            tr.fail(
                loc,
                f"{provider.get('cls')!r} has no equivalent: tasks mint MLflow identity tokens themselves "
                "with run_config.mlflow.audience; write other files in a Kedro hook",
            )
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
            tr.fail(
                loc,
                "has no equivalent besides `client_id`: set run_config.mlflow.audience to the OAuth client "
                "id of the MLflow server and remove the other keys",
            )
        if mlflow.get("audience") not in (None, client_id):
            tr.fail(loc, f"its client_id contradicts run_config.mlflow.audience {mlflow['audience']!r}: keep one")
        tr.warn(loc, f"run_config.mlflow.audience: {client_id}")
        mlflow["audience"] = client_id
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
        tr.moved(entry, ("schedules", name, "cron_expression"), "cron", ("schedules", name))
    return entry


def _backend_translation(backend: Any) -> Any:
    """The ``translate_reference_keys`` hook of backend ``backend``'s settings module, if it has one."""
    from ..backends import REGISTRY
    from ..backends.settings import settings_module

    if not isinstance(backend, str) or backend not in REGISTRY:
        return None
    return getattr(settings_module(backend), "translate_reference_keys", None)
