"""Loading ``vertexai.yml``: through the project's own ``OmegaConfigLoader``, then validated into
:class:`~.schema.PluginConfig`, with every problem turned into one line naming the file and the key path.
"""

from __future__ import annotations

import difflib
import logging
import re
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError
from .schema import PluginConfig, plugin_config_model, warn_ignored_keys
from .sources import _config_files, _display, _key_path, _short_repr, file_defining
from .table import _nested_model, _strip_optional

if TYPE_CHECKING:
    from kedro.config import AbstractConfigLoader
    from pydantic_core import ErrorDetails

logger = logging.getLogger(__name__)

CONFIG_KEY = "vertexai"
CONFIG_PATTERNS = ["vertexai*", "vertexai*/**", "**/vertexai*"]


def register_config_pattern(config_loader: Any) -> None:
    """Make ``config_loader["vertexai"]`` work without a ``settings.py`` edit.

    Also asks for a deep ("soft") merge of ``conf/<env>`` over ``conf/base``: with Kedro's default destructive
    merge, a ``conf/prod/vertexai.yml`` that only changes ``run_config.image`` would drop every other
    ``run_config`` key. A strategy the project chose in ``CONFIG_LOADER_ARGS`` is kept.
    """
    patterns = getattr(config_loader, "config_patterns", None)
    if isinstance(patterns, dict):
        patterns.setdefault(CONFIG_KEY, list(CONFIG_PATTERNS))
    strategies = getattr(config_loader, "merge_strategy", None)
    if isinstance(strategies, dict):
        strategies.setdefault(CONFIG_KEY, "soft")


def load_config(config_loader: AbstractConfigLoader, conf_source: str | Path | None = None) -> PluginConfig:
    """Load and validate ``vertexai.yml`` (or ``vertexai.yaml``) from the project's config loader.

    ``conf/<env>`` overrides ``conf/base`` key by key, as for any Kedro config; resolvers and ``conf_source`` work
    because the project's own loader reads the files.

    Raises:
        ConfigError: one line naming the file and key path, or saying to run ``kedro vertexai init``.
    """
    from kedro.config import MissingConfigException

    from ..task import resolvers  # noqa: F401 - ${vertex:…} values (e.g. the image init writes) resolve in any caller

    register_config_pattern(config_loader)
    source = Path(conf_source or getattr(config_loader, "conf_source", None) or "conf")
    files = _config_files(source, getattr(config_loader, "env", None), config_loader)
    try:
        raw = config_loader[CONFIG_KEY]
    except MissingConfigException as exc:
        if not str(exc).startswith("No files"):  # e.g. the env's folder does not exist
            raise ConfigError(f"{exc}: create it, or choose another env with --env") from None
        raw = None
    except Exception as exc:  # YAML syntax errors, interpolation errors, duplicate keys, a file not in UTF-8
        raise ConfigError(_not_utf8(files) or _loader_error(exc, files)) from None
    if not raw:
        raw, files = _other_plugin_config(config_loader, source, files)
    if not raw:
        raise ConfigError(
            f"no vertexai.yml found in {_display(source / 'base')} or the run env: run "
            "`kedro vertexai init PROJECT_ID REGION` in the project to create conf/base/vertexai.yml"
        )
    return validate_config(dict(raw), files)


def _other_plugin_config(config_loader: Any, source: Path, files: list[Path]) -> tuple[Any, list[Path]]:
    """Without a ``vertexai.yml``: the configuration another plugin wrote for a backend's engine, as the backend's
    settings module declares it (``OTHER_PLUGIN_CONFIG``: the ``kubeflow.yml`` of the Kedro Kubeflow plugin), for
    that backend unless it says otherwise (its keys are translated by the backend's ``translate_reference_keys``);
    else nothing."""
    from ..backends import names
    from ..backends.settings import settings_module

    for backend in names():
        declared = getattr(settings_module(backend), "OTHER_PLUGIN_CONFIG", None)
        if declared:
            raw, found = _plugin_config(config_loader, source, backend, *declared)
            if raw:
                return raw, found
    return None, files


def _plugin_config(config_loader: Any, source: Path, backend: str, key: str, plugin: str) -> tuple[Any, list[Path]]:
    """The files ``<key>*`` of ``conf/<env>`` (another plugin's configuration), read for ``backend``."""
    from kedro.config import MissingConfigException

    patterns = getattr(config_loader, "config_patterns", None)
    found = _config_files(source, getattr(config_loader, "env", None), config_loader, key)
    if not isinstance(patterns, dict) or not found:
        return None, []
    patterns.setdefault(key, [f"{key}*", f"{key}*/**", f"**/{key}*"])
    strategies = getattr(config_loader, "merge_strategy", None)
    if isinstance(strategies, dict):
        strategies.setdefault(key, "soft")
    try:
        raw = config_loader[key]
    except MissingConfigException:
        return None, []
    except Exception as exc:
        raise ConfigError(_not_utf8(found) or _loader_error(exc, found)) from None
    if not raw:
        return None, []
    raw = dict(raw)
    if isinstance(raw.get("run_config"), dict):
        raw["run_config"] = {"backend": backend, **raw["run_config"]}
    logger.warning(
        "%s: read as this plugin's configuration (written for %s, and there is no vertexai.yml): "
        "rename it to vertexai.yml once its keys are translated",
        _display(found[-1]),
        plugin,
    )
    return raw, found


def validate_config(raw: dict[str, Any], files: list[Path] | None = None) -> PluginConfig:
    """Validate an already loaded mapping; ``files`` (lowest precedence first) name the file in errors.

    Raises:
        ConfigError: one line: ``<file>: <key path>: <what is wrong and what to do>``.
    """
    files = list(files or [])
    _check_values(raw, files)
    try:
        config = plugin_config_model().model_validate(raw, context={"files": files})
    except ValidationError as exc:
        # a misspelt key also makes the real one "missing": the unknown key is the better clue
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        error = errors[0]
        loc = tuple(str(part) for part in error["loc"] if part != "[key]")
        if error["type"] == "value_error_at":  # raised by a model validator about one of its fields
            loc += tuple(str(error["ctx"]["key"]).split("."))
        where = file_defining(files, loc)
        more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
        message = _describe(error, loc)
        if isinstance(error.get("input"), str):  # a lookalike letter must show: 'l\u043ecal', not 'lоcal'
            message = message.replace(repr(error["input"]), ascii(error["input"]))
        raise ConfigError(f"{where}: {_key_path(loc) or '(top level)'}: {message}{more}") from None
    config._files = files
    warn_ignored_keys(config, files)
    return config


# free text, where any character is at home (runtime parameters too); elsewhere an invisible one is a mistake
_FREE_TEXT_KEYS = {"description", "experiment_description"}


def _check_values(raw: Any, files: list[Path]) -> None:
    """Refuse, before the models see them, what no message could show faithfully or what must never reach a
    compiled spec: invisible characters (zero-width spaces, a trailing newline) in keys and values, and secrets.

    Raises:
        ConfigError: one line naming the file and key, showing invisible characters escaped (``\\u200b``).
    """
    from ..secret_check import secret_message, secret_reason

    def walk(node: Any, loc: tuple[str, ...], names_secret: bool) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            here = (*loc, str(key))
            # a secret first: the other messages show the value
            reason = secret_reason(str(key) if names_secret and not isinstance(node, list) else None, value)
            if reason:
                raise ConfigError(f"{file_defining(files, here)}: {secret_message(_key_path(here), reason)}")
            if isinstance(key, str) and _invisible(key):
                raise ConfigError(
                    f"{file_defining(files, loc)}: {_key_path(here)}: the key contains an invisible character "
                    f"({_invisible(key)}): retype it"
                )
            if isinstance(value, str) and str(key) not in _FREE_TEXT_KEYS and "params" not in loc:
                bad = _invisible(value)
                if bad:
                    raise ConfigError(
                        f"{file_defining(files, here)}: {_key_path(here)}: {value!a} contains an invisible "
                        f"character ({bad}): remove it (a YAML `|` block keeps the final line break: use `|-`)"
                    )
            # a kedro-kubeflow volume's `params` name Kubernetes objects (secret_name: a Secret's name), not values
            named = here[-2:] == ("run_config", "env") or (here[-1:] == ("params",) and "extra_volumes" not in here)
            walk(value, here, names_secret or named)

    walk(raw, (), False)


def _invisible(text: str) -> str | None:
    """A description of the first invisible character of ``text`` (``"'\\u200b' at position 3"``), or None."""
    import unicodedata

    for index, char in enumerate(text):
        if unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp", "Co", "Cn"} or (char.isspace() and char != " "):
            return f"{char!a} at position {index + 1}"
    return None


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}


def _describe(error: ErrorDetails, loc: tuple[str, ...] = ()) -> str:
    kind = error["type"]
    got = _short_repr(error.get("input"))
    if kind == "missing":
        return (
            "required key is missing: add it (see `kedro vertexai init` or the configuration reference, "
            "docs/reference.md)"
        )
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1) if model and loc else []
        hint = f"did you mean {close[0]!r}?" if close else "see the configuration reference, docs/reference.md"
        return f"unknown key: remove it or fix its spelling ({hint})"
    if kind == "literal_error":
        expected = str(error.get("ctx", {}).get("expected", ""))
        expected = ", ".join(part.strip() for part in re.split(r",| or ", expected) if part.strip())
        return f"expected one of {expected}, got {got}"
    if kind in {"model_type", "model_attributes_type"} and loc and loc[-1] == "retries":
        return f"expected a number of retries (e.g. 3) or a mapping with max_retries, backoff, …, got {got}"
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {got}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in {"value_error", "assertion_error", "value_error_at"}:
        return message
    message = message.replace("Input should be", "must be").replace("Input", "value")
    return f"{message[0].lower() + message[1:]}, got {got}"


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    """The model that validates the mapping at ``loc`` (to suggest the key a typo meant)."""
    model: Any = plugin_config_model()
    parts = list(loc)
    while parts:
        field = (
            model.model_fields.get(parts.pop(0)) if isinstance(model, type) and issubclass(model, BaseModel) else None
        )
        if field is None:
            return None
        inner = _strip_optional(field.annotation)
        if typing.get_origin(inner) in (dict, list) and parts:
            parts.pop(0)  # the entry's name or index
        model = _nested_model(inner)
    return model


def _loader_error(exc: Exception, files: list[Path]) -> str:
    """One line for an error the config loader raised while reading the files (syntax, interpolation)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:  # YAML error without a file name (e.g. a duplicate key): find the file
        where = _file_with_yaml_error(files) or (_display(files[-1]) if files else "vertexai.yml")
        return f"{where}: line {mark.line + 1}: {problem}; fix the YAML there"
    if "incompatible container types" in first:  # conf/<env> has a list or value where conf/base has a mapping
        clash = _type_clash(files)
        if clash:
            return clash
    full_key = getattr(exc, "full_key", None)
    if full_key:
        return f"{file_defining(files, tuple(str(full_key).split('.')))}: {full_key}: {first}"
    if any(str(path) in first for path in files):
        for path in files:
            first = first.replace(str(path), _display(path))
        return first
    return f"{_display(files[-1]) if files else 'vertexai.yml'}: {first}"


def _not_utf8(files: list[Path]) -> str | None:
    """``<file>: line N: not UTF-8 text …`` for the first config file that cannot be decoded, or None."""
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            return (
                f"{_display(path)}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}): save the file as "
                "UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
            )
    return None


def _file_with_yaml_error(files: list[Path]) -> str | None:
    import yaml
    from omegaconf import OmegaConf

    for path in reversed(files):
        try:
            OmegaConf.load(path)  # the YAML dialect Kedro's loader reads (duplicate keys are errors)
        except yaml.YAMLError:
            return _display(path)
        except Exception:
            continue
    return None


def _type_clash(files: list[Path]) -> str | None:
    """``<file>: <key path>: …`` for the first key that is a mapping in one file and not in a later one."""
    import yaml

    loaded = []
    for path in files:
        try:
            loaded.append((path, yaml.safe_load(path.read_text(encoding="utf-8")) or {}))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue

    def walk(earlier: Any, later: Any, loc: tuple[str, ...]) -> tuple[str, ...] | None:
        if isinstance(earlier, dict) and isinstance(later, dict):
            for key in later:
                if key in earlier:
                    found = walk(earlier[key], later[key], (*loc, str(key)))
                    if found:
                        return found
            return None
        if isinstance(earlier, dict) != isinstance(later, dict):
            return loc
        return None

    for index, (path, data) in enumerate(loaded):
        for earlier_path, earlier in loaded[:index]:
            loc = walk(earlier, data, ())
            if loc:
                kind = "a mapping" if isinstance(_get(earlier, loc), dict) else "a single value or list"
                return (
                    f"{_display(path)}: {'.'.join(loc)}: {_display(earlier_path)} has {kind} here; "
                    "overrides must keep the same shape"
                )
    return None


def _get(data: Any, loc: tuple[str, ...]) -> Any:
    for part in loc:
        data = data[part]
    return data
