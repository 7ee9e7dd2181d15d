"""The configuration reference table (docs/reference.md), generated from the models so it never drifts from them."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel

from .schema import RetryPolicy, plugin_config_model

# fields whose accepted values are wider than their Python type
_TYPE_OVERRIDES = {
    "cpu": "number or string",
    "memory": "string",
    "timeout": "duration",
    "backoff": "duration",
    "max_backoff": "duration",
    "task_startup": "duration",
    "node_duration": "duration",
    "persistent_task_startup": "duration",
    "custom_job_startup": "duration",
    "max_wait": "duration",
    "wait": "duration",
}


def config_reference() -> str:
    """Markdown table of every key, generated from the models (pasted into docs/reference.md).

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

    walk(plugin_config_model(), "")
    return "\n".join(rows)


def runner_params_reference() -> str:
    """Markdown table of every ``--runner-params`` key, generated from the runner-params models: the keys every
    backend takes (:class:`~kedro_vertex_runner.backends.settings.RunnerParams`), then each backend's own ones (the
    ``RUNNER_PARAMS`` of its settings module)."""
    from ..backends import names
    from ..backends.settings import RunnerParams, params_model

    rows = ["| param | backend | type | meaning |", "|---|---|---|---|"]
    owners: dict[str, list[str]] = {}
    fields: dict[str, Any] = dict(RunnerParams.model_fields)
    for name in names():
        model = params_model(name)
        for key, field in (model.model_fields if model is not None else {}).items():
            owners.setdefault(key, []).append(name)
            fields.setdefault(key, field)
    for key, field in fields.items():
        where = ", ".join(f"`{name}`" for name in owners[key]) if key in owners else "every"
        kind = _type_name(_strip_optional(field.annotation))
        description = (field.description or "").replace("|", "/")
        rows.append(f"| `{key}=` | {where} | {kind} | {description} |")
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
