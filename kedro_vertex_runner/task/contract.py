"""The task contract: what one task of a compiled job runs, as one typed object, and the two ways it travels.

A task is ``python -m kedro_vertex_runner.entrypoint ARGS``. Three parts of the plugin meet at ``ARGS``: the compiler
renders them (:meth:`TaskContract.to_args`), the entrypoint parses them back (:meth:`TaskContract.from_args`) and
the local backend reads the nodes and the timeout of every task from them. All three go through this module, so
the format has one definition, and adding an option is one field line in :class:`TaskContract`.

Form: every option is one list item, ``--option=value``, never ``--option value`` — except ``--executor-input``,
whose value is KFP's ``{{$}}`` on an item of its own, as kfp's own components pass it. A value that starts with ``-``
(``--params title=-draft``, a node called ``--help``, a run id ``-x``), holds spaces, ``=``, quotes or nothing at
all arrives intact, because nothing after the first ``=`` is ever read as an option. Placeholders
(``{{$.pipeline_job_uuid}}``, ``{{$.inputs.parameters['p']}}``) sit inside the item and are substituted in place by
Vertex AI and by the local backend. An engine that substitutes the job's ids only in task inputs (Kubeflow Pipelines)
gets them as the input parameters :data:`JOB_ID_INPUTS` instead, and ``--run-id``/``--job-name`` read those
(:func:`input_placeholder`). Two options pack several values into one item:

* ``--param=TYPE:KEY=VALUE``: TYPE is one of :data:`PARAM_TYPES` (it never holds ``:``), KEY runs to the first
  ``=`` (a parameter name cannot hold ``=``; Kedro's ``--params`` never produces one), VALUE is the rest;
* ``--host-alias=IP=HOST1,HOST2``: IP runs to the first ``=``, the names are comma separated.

The task report is how a task tells its launcher which node failed, without anyone reading its log: when
:data:`TASK_REPORT_ENV` names a file, the entrypoint writes a small JSON object there (atomically) when it starts,
*before* each node runs (so a node that calls ``os._exit`` or a task killed by a signal still leaves the node's
name behind), and when it ends. See :class:`TaskReport`.

This module is imported by the task entrypoint before anything else: it must stay cheap (no Kedro, kfp,
aiplatform or mlflow).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..errors import PluginError
from ..values import PARAMETER_TYPE_WORDS, typed_parameter

if TYPE_CHECKING:
    import argparse
    from collections.abc import Collection, Sequence

#: a ``--param`` whose value is None (``--params k=null``): fixed in the task's args, as no Vertex AI pipeline
#: parameter type holds a null
NULL_PARAM = "NULL"
#: the Vertex AI parameter types a ``--param`` can carry, and :data:`NULL_PARAM`
PARAM_TYPES = (*PARAMETER_TYPE_WORDS, NULL_PARAM)
#: environment variable naming the file a task writes its :class:`TaskReport` to (set by the local backend)
TASK_REPORT_ENV = "KEDRO_VERTEX_TASK_REPORT"
#: how every placeholder a backend substitutes begins
PLACEHOLDER_START = "{{$."
#: placeholders the compiler puts into ``--run-id``/``--job-name``; the backend replaces them with the job's values
RUN_ID_PLACEHOLDER = "{{$.pipeline_job_uuid}}"
JOB_NAME_PLACEHOLDER = "{{$.pipeline_job_name}}"
#: for an engine that substitutes the job's ids only as ``runtimeValue`` constants of task inputs (Kubeflow
#: Pipelines' driver, never inside container args): the input parameter of every task that carries each id
RUN_ID_INPUT = "job_uuid"
JOB_NAME_INPUT = "job_name"
JOB_ID_INPUTS: dict[str, str] = {RUN_ID_INPUT: RUN_ID_PLACEHOLDER, JOB_NAME_INPUT: JOB_NAME_PLACEHOLDER}


def input_placeholder(name: str) -> str:
    """How a task's args read its input parameter ``name``: ``{{$.inputs.parameters['name']}}``."""
    return f"{{{{$.inputs.parameters['{name}']}}}}"


# --------------------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class TaskParam:
    """One runtime parameter: Kedro's (possibly dotted) key, its Vertex AI type and its text.

    ``text`` is what the command line carries: a placeholder in a compiled spec, the substituted value in a task
    (raw for strings, JSON for the other types).
    """

    key: str
    type: str
    text: str

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            known = ", ".join(PARAM_TYPES)
            raise PluginError(f"--param {self.key}: unknown type {self.type!r}; expected one of {known}")
        if "=" in self.key:
            raise PluginError(f"--params {self.key!r}: a parameter name cannot contain '='; rename the parameter")

    def render(self) -> str:
        return f"--param={self.type}:{self.key}={self.text}"

    @classmethod
    def parse(cls, item: str) -> TaskParam:
        type_name, colon, rest = item.partition(":")
        key, equals, text = rest.partition("=")
        if not colon or not equals:
            raise PluginError(f"--param={item}: expected --param=TYPE:KEY=VALUE, e.g. --param=STRING:title=draft")
        return cls(key, type_name.upper(), text)

    def value(self) -> Any:
        """The typed value; raises PluginError naming the parameter."""
        return parse_param(self.key, self.type, self.text)


@dataclass(frozen=True)
class HostAlias:
    """Hostnames that resolve to ``ip`` inside the task (``--host-alias=IP=HOST1,HOST2``)."""

    ip: str
    hostnames: tuple[str, ...]

    def render(self) -> str:
        return f"--host-alias={self.ip}={','.join(self.hostnames)}"

    @classmethod
    def parse(cls, item: str) -> HostAlias:
        ip, equals, names = item.partition("=")
        if not equals:
            raise PluginError(f"--host-alias={item}: expected --host-alias=IP=HOST1,HOST2")
        return cls(ip, tuple(names.split(",")) if names else ())


def parse_param(key: str, type_name: str, text: str) -> Any:
    """The typed value of a ``--param``; raises PluginError naming the parameter."""
    kind = type_name.upper()
    if kind not in PARAM_TYPES:
        raise PluginError(f"--param {key}: unknown type {type_name!r}; expected one of {', '.join(PARAM_TYPES)}")
    if kind == NULL_PARAM:
        if text:
            raise PluginError(f"--param {key} {kind}: expected no value, got {text!r}")
        return None
    try:
        value = typed_parameter(text, kind)
    except ValueError as exc:
        raise PluginError(f"--param {key} {kind}: expected {exc}, got {text!r}") from None
    return float(value) if kind == "NUMBER_DOUBLE" else value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise PluginError(f"--timeout {text!r}: expected a positive number of seconds")
    return value


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


# --------------------------------------------------------------------------------------------- the contract


def _option(flag: str, kind: str, doc: str, metavar: str | None = None, default: Any = None) -> Any:
    """A contract field and the command-line option carrying it. ``kind``: ``text`` (one string), ``many``
    (repeatable string), ``seconds``, ``flag``, ``param`` or ``host`` (repeatable, packed — see the module doc)."""
    return field(default=default, metadata={"flag": flag, "kind": kind, "help": doc, "metavar": metavar})


_REPEATED = frozenset({"many", "param", "host"})


@dataclass(frozen=True)
class TaskContract:
    """What one task runs. Field order is the order of the rendered arguments."""

    pipelines: tuple[str, ...] = _option(
        "--pipeline", "many", "registered pipeline the nodes come from (repeatable; default __default__)", "NAME", ()
    )
    env: str | None = _option("--env", "text", "Kedro config environment (default: the project's)", "ENV")
    node_pipelines: tuple[str, ...] = _option(
        "--node-pipeline",
        "many",
        "a smaller registered pipeline holding every --node, loaded instead of --pipeline to start sooner (repeatable)",
        "NAME",
        (),
    )
    nodes: tuple[str, ...] = _option("--node", "many", "node to run (repeatable)", "NODE", ())
    run_id: str | None = _option("--run-id", "text", "the job's run id (default: KEDRO_VERTEX_RUN_ID or a new id)")
    job_name: str | None = _option("--job-name", "text", "the job's name (${vertex:job_name})")
    root: str | None = _option("--root", "text", "where undeclared intermediates live: gs://bucket/path or a folder")
    params: tuple[TaskParam, ...] = _option(
        "--param",
        "param",
        "a typed runtime parameter (repeatable); a dotted KEY sets a nested one",
        "TYPE:KEY=VALUE",
        (),
    )
    timeout: float | None = _option("--timeout", "seconds", "fail the task after this many seconds", "SECONDS")
    host_aliases: tuple[HostAlias, ...] = _option(
        "--host-alias", "host", "make the hostnames resolve to IP inside the task (repeatable)", "IP=HOST1,HOST2", ()
    )
    task_runner: str | None = _option(
        "--task-runner",
        "text",
        "how nodes that do not depend on each other run: processes, threads or sequential (default)",
        "MODE",
    )
    exit_handler: bool = _option("--exit-handler", "flag", "this task belongs to the on-exit pipeline", None, False)
    project_dir: str | None = _option("--project-dir", "text", "the Kedro project (default: the working directory)")
    code_uri: str | None = _option(
        "--code-uri", "text", "code upload: run the project's code and conf/ unpacked from this archive URI", "URI"
    )
    secrets: tuple[str, ...] = _option(
        "--secret",
        "many",
        "set env var NAME to the Secret Manager secret REFERENCE read at start-up (repeatable)",
        "NAME=REFERENCE",
        (),
    )
    final_status: str | None = _option(
        "--final-status", "text", "the job's final status (PipelineTaskFinalStatus JSON), for an exit task", "JSON"
    )
    webhook: str | None = _option(
        "--webhook", "text", "exit task: POST the final status to the URL held by this secret reference", "REFERENCE"
    )
    executor_input: str | None = _option(
        "--executor-input",
        "split",
        "KFP's executor input (JSON): where to write the task's output artifacts (executor_output.json)",
        "JSON",
    )

    # -- rendering ------------------------------------------------------------------------------------------

    def to_args(self, **changes: Any) -> list[str]:
        """The exec-form arguments of ``python -m kedro_vertex_runner.entrypoint``: one ``--option=value`` item
        per value, in field order; unset options are left out.

        ``changes`` render the contract with those fields replaced, as ``dataclasses.replace(self, **changes)
        .to_args()`` would, without building that object: the compiler renders every task of a job from one shared
        contract, and only what differs is rendered again.
        """
        args: list[str] = []
        for segment in self._layout(frozenset(changes)):
            if isinstance(segment, list):
                args += segment
            else:
                flag, kind, name = segment
                args += _render(flag, kind, changes[name])
        return args

    def _layout(self, changed: frozenset[str]) -> list[Any]:
        """The rendered items of the fields not in ``changed`` (runs of them joined into one list), with an
        ``(flag, kind, name)`` slot where a changed field goes; cached per set of changed fields."""
        cache: dict[frozenset[str], list[Any]] = self.__dict__.setdefault("_layouts", {})
        layout = cache.get(changed)
        if layout is None:
            unknown = changed - _NAMES
            if unknown:
                raise TypeError(f"TaskContract has no field {sorted(unknown)[0]!r}")
            layout = []
            for flag, kind, name in _OPTIONS:
                if name in changed:
                    layout.append((flag, kind, name))
                elif layout and isinstance(layout[-1], list):
                    layout[-1] += _render(flag, kind, getattr(self, name))
                else:
                    layout.append(_render(flag, kind, getattr(self, name)))
            cache[changed] = layout
        return layout

    # -- parsing --------------------------------------------------------------------------------------------

    @classmethod
    def from_args(cls, argv: Sequence[str], *, strict: bool = True) -> TaskContract:
        """Parse what :meth:`to_args` rendered. ``--option value`` (two items) is accepted too, for commands typed
        by hand: the item after the option is its value, whatever it looks like. ``-h``/``--help`` prints the
        options and exits.

        With ``strict=False`` (a launcher looking at a container it did not necessarily compile) items that are
        not options of the contract are skipped.

        Not argparse: it drops a value that is exactly ``--`` and reads ``--option -x`` as two options.

        Raises:
            PluginError: one line naming the option and value at fault.
        """
        collected: dict[str, Any] = {name: [] if kind in _REPEATED else None for _flag, kind, name in _OPTIONS}
        items = list(argv)
        index = 0
        while index < len(items):
            item = items[index]
            index += 1
            flag, equals, value = item.partition("=")
            known = _BY_FLAG.get(flag) if item.startswith("--") else None
            if known is None:
                if strict and item in ("-h", "--help"):
                    build_parser().print_help()
                    raise SystemExit(0)
                if strict:
                    raise PluginError(f"unknown argument {item!r}; see kedro-vertex-entrypoint --help", exit_code=2)
                continue
            kind, name = known
            if kind == "flag":
                if equals:
                    raise PluginError(f"{item!r}: {flag} takes no value", exit_code=2)
                collected[name] = True
                continue
            if not equals:
                if index >= len(items):
                    raise PluginError(f"{flag}: give a value, as {flag}=VALUE", exit_code=2)
                value = items[index]
                index += 1
            if kind in _REPEATED:
                collected[name].append(value)
            else:
                collected[name] = value
        return cls._from_texts(collected)

    @classmethod
    def _from_texts(cls, collected: dict[str, Any]) -> TaskContract:
        values: dict[str, Any] = {}
        for _flag, kind, name in _OPTIONS:
            raw = collected[name]
            if kind == "many":
                values[name] = tuple(raw)
            elif kind == "param":
                values[name] = tuple(TaskParam.parse(item) for item in raw)
            elif kind == "host":
                values[name] = tuple(HostAlias.parse(item) for item in raw)
            elif kind == "seconds":
                values[name] = None if raw is None else _seconds(raw)
            elif kind == "flag":
                values[name] = bool(raw)
            else:
                values[name] = raw
        return cls(**values)

    def runtime_params(self) -> dict[str, Any]:
        """The ``--param`` values as the nested dict Kedro takes as runtime params (dotted keys nest)."""
        result: dict[str, Any] = {}
        for param in self.params:
            key = param.key
            if not key or any(not part for part in key.split(".")):
                raise PluginError(f"--param {key!r}: a parameter name must not be empty")
            value = param.value()
            *parents, leaf = key.split(".")
            target = result
            for part in parents:
                child = target.get(part)
                if not isinstance(child, dict):
                    child = target[part] = {}
                target = child
            target[leaf] = value
        return result


def keep_nodes(argv: Sequence[str], nodes: Collection[str]) -> list[str]:
    """``argv`` (a task's command line) running only those of its ``--node`` items that are in ``nodes``: a resumed
    run's failed task starts again from its failed node, not from its first."""
    flag = _option_flag("nodes")
    kept: list[str] = []
    items = list(argv)
    index = 0
    while index < len(items):
        item = items[index]
        index += 1
        name, equals, value = item.partition("=")
        if name != flag:
            kept.append(item)
            continue
        if not equals and index < len(items):  # `--node NAME`, as typed by hand
            value = items[index]
            index += 1
            item = f"{flag}={value}"
        if value in nodes:
            kept.append(item)
    return kept


def _option_flag(field_name: str) -> str:
    return next(flag for flag, _kind, name in _OPTIONS if name == field_name)


_OPTIONS: tuple[tuple[str, str, str], ...] = tuple(
    (f.metadata["flag"], f.metadata["kind"], f.name) for f in fields(TaskContract)
)
_BY_FLAG = {flag: (kind, name) for flag, kind, name in _OPTIONS}
_NAMES = frozenset(name for _flag, _kind, name in _OPTIONS)


def _render(flag: str, kind: str, value: Any) -> list[str]:
    """The items of one field: see :meth:`TaskContract.to_args`."""
    if kind == "text":
        return [] if value is None else [f"{flag}={value}"]
    if kind == "split":  # the value on its own item, as kfp passes ``{{$}}``: an engine substitutes the whole item
        return [] if value is None else [flag, value]
    if kind == "many":
        return [f"{flag}={item}" for item in value]
    if kind in ("param", "host"):
        return [item.render() for item in value]
    if kind == "seconds":
        return [] if value is None else [f"{flag}={_number(value)}"]
    return [flag] if value else []  # flag


def build_parser() -> argparse.ArgumentParser:
    """An argparse description of the contract's options, for ``--help`` (parsing is :meth:`TaskContract.from_args`)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="kedro-vertex-entrypoint",
        description="Run named nodes of a Kedro project as one task of a Vertex AI / local pipeline job. Give "
        "every option as --option=VALUE: the value is then never taken for an option, whatever it starts with.",
    )
    for f in fields(TaskContract):
        meta = f.metadata
        if meta["kind"] == "flag":
            parser.add_argument(meta["flag"], action="store_true", help=meta["help"])
        else:
            parser.add_argument(meta["flag"], metavar=meta["metavar"] or f.name.upper(), help=meta["help"])
    return parser


# --------------------------------------------------------------------------------------------- the task report

STARTED = "started"
RUNNING = "running"
FAILED = "failed"
SUCCEEDED = "succeeded"


@dataclass(frozen=True)
class TaskReport:
    """What a task says about itself, in ``$KEDRO_VERTEX_TASK_REPORT`` (one JSON object, replaced atomically).

    Attributes:
        state: ``started`` (no node yet), ``running`` (``node`` had started; if the process is gone, it ended
            there — a crash, ``os._exit``, a signal), ``failed`` or ``succeeded``.
        node: the node running or that failed (None: outside any node, e.g. loading the catalog).
        reason: for ``failed``, one line: ``<Type>: <message>`` or ``timed out after N s``.
        missing_data: for ``failed``, a dataset the node had to read from the run's storage that this run never
            stored (a filtered run started without the earlier run's id).
    """

    state: str
    node: str | None = None
    reason: str | None = None
    missing_data: str | None = None

    @property
    def failed_node(self) -> str | None:
        """The node that ended the task: the failed one, or the one running when the process ended."""
        return self.node if self.state in (FAILED, RUNNING) else None

    def write(self, path: str | os.PathLike[str] | None) -> None:
        """Replace the report at ``path`` (nothing when None); never raises: a lost report must not fail a task."""
        if not path:
            return
        from ..files import replace_file

        text = json.dumps({k: v for k, v in self.__dict__.items() if v is not None}, ensure_ascii=False)
        try:
            replace_file(path, text, durable=False)  # rewritten at each node: only the launcher reads it, now
        except OSError:
            pass

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> TaskReport | None:
        """The report at ``path``; None when there is none or it is not one."""
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("state"), str):
            return None
        known = {f.name for f in fields(cls)} - {"state"}
        values = {k: v for k, v in data.items() if k in known and (v is None or isinstance(v, str))}
        return cls(state=data["state"], **values)


def report_path() -> str | None:
    """Where this task writes its report (``$KEDRO_VERTEX_TASK_REPORT``), or None."""
    return os.environ.get(TASK_REPORT_ENV) or None
