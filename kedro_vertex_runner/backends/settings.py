"""What a backend declares about its configuration, and the runner params every backend takes.

Each backend package has a light ``settings`` module (pydantic and the plugin's config rules only; it loads no
client library, and neither does the package's ``__init__``, which Python imports first) that may define:

* ``SETTINGS``: the model of ``run_config.<name>`` (e.g. ``run_config.local``), its docstring the section's one-line
  description; :func:`~kedro_vertex_runner.config.schema.plugin_config_model` mounts it there;
* ``RUNNER_PARAMS``: the model of the backend's own ``--runner-params`` keys (``max_workers=`` of the local
  backend), next to :class:`RunnerParams`, the keys every backend takes;
* ``TEMPLATE``: the lines ``kedro vertexai init`` writes for ``run_config.<name>`` (default: generated from
  ``SETTINGS``, every key commented out with its description);
* ``translate_reference_keys(value, tr)``: translate another plugin's ``run_config`` keys that mean something on
  this backend, before the models see them;
* ``OTHER_PLUGIN_CONFIG``: ``(config key, plugin)`` of the file another plugin wrote for this engine (kedro-kubeflow's
  ``kubeflow.yml``), read for this backend when a project has no ``vertexai.yml``.

:func:`settings_module` finds it as ``<the registered module>.settings``; a backend without one has no section and
no runner params of its own. From these models come validation, ``docs/reference.md`` and ``init``'s template.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import PluginError
from ..values import check_max_workers, check_run_id, switch


class SettingsModel(BaseModel):
    """Base of a ``run_config.<name>`` model: unknown keys refused, no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)
    #: mapping fields whose entries name a node, a tag or ``__default__``, like ``run_config.resources`` (a name
    #: that is none of them is refused in one line when the config is checked against the pipeline)
    node_keyed: ClassVar[tuple[str, ...]] = ()


def flag(key: str, value: Any) -> bool:
    """An on/off runner param (``true``/``false``, ``1``/``0``, ``yes``/``no``…).

    Raises:
        PluginError: ``--runner-params <key>=<value>: expected true or false``.
    """
    on = switch(value)
    if on is None:
        raise PluginError(f"--runner-params {key}={value!a}: expected true or false")
    return on


def run_id(key: str, value: Any) -> str:
    return check_run_id(str(value).strip(), f"--runner-params {key}=")


def workers(key: str, value: Any) -> int:
    return check_max_workers(value, f"--runner-params {key}=")


class ParamsModel(BaseModel):
    """Base of a runner-params model: every field optional (None: not given), with an ``example`` value (in
    ``json_schema_extra``) for ``give a value, e.g. key=…``. A field is checked by its type and constraints, or by
    the rule ``json_schema_extra["check"]`` names (``flag``, ``workers``, ``run_id``…, or a function ``(key,
    value)`` raising :class:`~kedro_vertex_runner.errors.PluginError`), whose one error line is the rule's own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def example(cls, key: str) -> str:
        extra = cls.model_fields[key].json_schema_extra
        return str(extra.get("example", "")) if isinstance(extra, Mapping) else ""

    @field_validator("*", mode="before")
    @classmethod
    def _check(cls, value: Any, info: Any) -> Any:
        if value is None:
            return None
        extra = cls.model_fields[info.field_name].json_schema_extra
        check = extra.get("check") if isinstance(extra, Mapping) else None
        if callable(check):
            return check(info.field_name, value)
        return _CHECKS[str(check)](info.field_name, value) if check else value

    @classmethod
    def read(cls, given: Mapping[str, Any]) -> ParamsModel:
        """The model of the keys of ``given`` it declares.

        Raises:
            PluginError: ``--runner-params <key>=<value>: <what is expected>`` for the first value it refuses.
        """
        try:
            return cls(**{key: value for key, value in given.items() if key in cls.model_fields})
        except ValidationError as exc:
            error = exc.errors()[0]
            key = str(error["loc"][0])
            words = _TYPE_WORDS.get(error["type"])
            message = f"expected {words}" if words else str(error["msg"]).removeprefix("Value error, ")
            message = message.replace("Input should be", "expected").replace("Input", "the value")
            raise PluginError(f"--runner-params {key}={given[key]!a}: {message}") from None


_TYPE_WORDS = {
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
}


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    text = str(value).strip()
    if text not in choices:
        raise PluginError(f"--runner-params {key}={value!r}: expected {' or '.join(map(repr, choices))}")
    return text


def _backend(key: str, value: Any) -> str:
    from . import REGISTRY, names

    if value not in REGISTRY:
        known = [repr(name) for name in names()]
        expected = known[0] if len(known) == 1 else ", ".join(known[:-1]) + " or " + known[-1]
        raise PluginError(f"--runner-params {key}={value!a}: expected {expected}")
    return str(value)


_CHECKS = {
    "flag": flag,
    "run_id": run_id,
    "workers": workers,
    "backend": _backend,
    "code": lambda key, value: _choice(key, value, ("image", "upload")),
}


class RunnerParams(ParamsModel):
    """The runner params every backend takes (a backend refuses what it cannot do, e.g. ``run_id`` on Vertex AI)."""

    backend: str | None = Field(
        None,
        description="Override `run_config.backend`: a registered backend's name.",
        json_schema_extra={"check": "backend"},
    )
    wait: bool | None = Field(
        None,
        description="Follow the job until it ends (default: true); `false` on a backend that only runs jobs to their "
        "end is refused.",
        json_schema_extra={"check": "flag", "example": "false"},
    )
    cancel_on_interrupt: bool | None = Field(
        None,
        description="Cancel the job on Ctrl-C without asking (a backend that submits jobs).",
        json_schema_extra={"check": "flag", "example": "true"},
    )
    run_id: str | None = Field(
        None,
        description="The run id (default: a new one), on a backend that takes one (local): up to 128 letters, digits, "
        "`-`, `_` or `.`, starting with a letter or digit. Reuse a failed run's id with `--from-nodes` to re-run nodes "
        "by hand: tasks read its stored intermediates (refused while another run holds that id).",
        json_schema_extra={"check": "run_id", "example": "local-20240101-120000-abc123"},
    )
    code: Literal["image", "upload"] | None = Field(
        None,
        description="Override `run_config.code`: `upload` ships the project's code and `conf/` with the job "
        "([Code upload](deployment.md#code-upload)).",
        json_schema_extra={"check": "code", "example": "upload"},
    )
    resume: str | None = Field(
        None,
        description="Resume failed run `ID` (the command printed after a failure), on a backend that resumes runs "
        "(local): only its failed tasks and what depends on them run, with its recorded options and tasks "
        "([Failures](local.md)).",
        json_schema_extra={"check": "run_id", "example": "local-20240101-120000-abc123"},
    )
    resume_changed: bool | None = Field(
        None,
        description="With `resume=`: resume even though `--params`, `--env`, the pipeline or a filter differs from the "
        "recorded run.",
        json_schema_extra={"check": "flag", "example": "true"},
    )

    @classmethod
    def example(cls, key: str) -> str:
        if key == "backend":  # the backend whose tasks run on this machine: the usual `backend=` a user types
            from . import DEFAULT_BACKEND, backend_class, names

            return next((name for name in names() if not backend_class(name).remote_tasks), DEFAULT_BACKEND)
        return super().example(key)


@dataclass(frozen=True)
class GivenParams:
    """``--runner-params``, validated: the common ones, and each backend's own ones given (key → value)."""

    common: RunnerParams
    own: dict[str, Any]
    #: each key of ``own`` → the backends whose runner-params model declares it
    owners: dict[str, tuple[str, ...]]

    def refuse_foreign(self, backend: str) -> None:
        """Refuse a backend's own runner param on another backend (``max_workers=`` with ``backend=vertex``).

        Raises:
            PluginError: one line naming the key and the backend(s) that take it.
        """
        for key, value in self.own.items():
            owners = self.owners[key]
            if backend not in owners:
                takers = " or ".join(repr(name) for name in owners)
                raise PluginError(
                    f"--runner-params {key}={value}: an option of backend {takers}, and this run is on backend "
                    f"{backend!r}: drop it, or add backend={owners[0]}"
                )


def read_runner_params(given: Mapping[str, Any]) -> GivenParams:
    """``given`` (``--runner-params`` as Kedro passes them) checked against :class:`RunnerParams` and each
    registered backend's ``RUNNER_PARAMS`` model.

    Raises:
        PluginError: one line: an unknown key (listing the known ones), an empty value (``give a value, e.g.
            key=<the model's example>``) or a value its rule refuses.
    """
    from . import names

    models: dict[str, type[ParamsModel]] = {}  # backend → its own runner-params model
    owners: dict[str, tuple[str, ...]] = {}
    for name in names():
        model = params_model(name)
        if model is not None:
            models[name] = model
            for key in model.model_fields:
                owners[key] = (*owners.get(key, ()), name)
    known = [*RunnerParams.model_fields, *(key for key in owners if key not in RunnerParams.model_fields)]
    unknown = sorted(key for key in given if key not in known)
    if unknown:
        raise PluginError(f"--runner-params: unknown key {unknown[0]!a}; VertexRunner takes {', '.join(known)}")
    for key in known:
        value = given.get(key, "")
        if key in given and (value is None or (isinstance(value, str) and not value.strip())):
            model = RunnerParams if key in RunnerParams.model_fields else models[owners[key][0]]
            raise PluginError(f"--runner-params {key}=: give a value, e.g. {key}={model.example(key)}")
    common = cast(RunnerParams, RunnerParams.read(given))
    own: dict[str, Any] = {}
    for model in models.values():
        own.update(model.read(given).model_dump(exclude_unset=True))
    return GivenParams(common, own, {key: owners[key] for key in own})


@cache
def _settings_module(target: str) -> ModuleType | None:
    module_name = target.split(":")[0] + ".settings"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:  # this backend declares no settings
            return None
        raise


def settings_module(name: str) -> ModuleType | None:
    """The ``settings`` module of registered backend ``name`` (None: it declares none)."""
    from . import REGISTRY

    return _settings_module(REGISTRY[name])


def section_model(name: str) -> type[BaseModel] | None:
    """The model of ``run_config.<name>``, if backend ``name`` has one."""
    return getattr(settings_module(name), "SETTINGS", None)


def params_model(name: str) -> type[ParamsModel] | None:
    """The model of backend ``name``'s own runner params, if it has any."""
    return getattr(settings_module(name), "RUNNER_PARAMS", None)


__all__ = [
    "GivenParams",
    "ParamsModel",
    "RunnerParams",
    "SettingsModel",
    "flag",
    "params_model",
    "read_runner_params",
    "section_model",
    "settings_module",
]
