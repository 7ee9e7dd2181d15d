"""Property-based tests: generated values for every key of ``vertexai.yml`` (the pydantic models of
``config/schema.py`` walked to generate them) and generated arguments for every ``kedro vertexai`` command either
validate or give one ``Error:`` line; never a traceback, never a network connection, never a started process.

Everything runs in this process (the plugin's own loading function, click's ``CliRunner``), derandomized, with
bounded examples, so the module stays within seconds.
"""

from __future__ import annotations

import shutil
import sys
import threading
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kedro.config import OmegaConfigLoader
from pydantic import BaseModel

from kedro_vertex_runner.config import ConfigError, load_config, validate_config
from kedro_vertex_runner.config.schema import PluginConfig, plugin_config_model


def profile(max_examples: int) -> settings:
    return settings(_PROFILE, max_examples=max_examples)


_PROFILE = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)

# ----------------------------------------------------------------------------------------------------------------
# what must never happen: a connection, a started process (git and uname, which Kedro and Python's platform module
# ask, excepted)

_EVENTS: list[tuple[str, Any]] | None = None
#: threads alive before the watch began: what an earlier test of this process left behind (a daemon uploading a
#: run's report, a storage client's loop) is not the command's doing
_BEFORE: frozenset[int] = frozenset()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _EVENTS is None or threading.get_ident() in _BEFORE:
        return
    if event == "socket.connect" or event in {"os.fork", "os.forkpty", "os.posix_spawn", "os.system", "os.exec"}:
        _EVENTS.append((event, args[1:2]))
    elif event == "subprocess.Popen":
        program = Path(str(args[0])).name
        if program not in {"git", "uname"}:  # Kedro's session info, Python's platform module
            _EVENTS.append((event, args[:2]))


sys.addaudithook(_audit)


@pytest.fixture
def watched() -> Iterator[list[tuple[str, Any]]]:
    """The connections and processes started while the test runs (the audit hook stays, switched off after)."""
    global _EVENTS, _BEFORE
    _BEFORE = frozenset(thread.ident for thread in threading.enumerate() if thread.ident is not None) - {
        threading.get_ident()
    }
    _EVENTS = []
    try:
        yield _EVENTS
    finally:
        _EVENTS = None


# ----------------------------------------------------------------------------------------------------------------
# values for every key, from the models

_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "-x", "..", "a\u200bb", "0", "1e400", "nan", "NaN", "\u00e9t\u00e9", "x" * 300]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
# values by key name: (valid ones, ones at or beyond the edge of each documented limit)
_NAMED: dict[str, tuple[list[Any], list[Any]]] = {
    "project_id": (["my-project", "my-project-123"], ["ab", "My-Project", "a" * 31, "proj-"]),
    "region": (["europe-west1", "us-central1"], ["mars", "EU-WEST1"]),
    "root": (["gs://bucket/runs"], ["bucket/runs", "s3://b/x", "-r", "gs://", "file:///", "runs", " gs://b/x"]),
    "backend": (["vertex", "local"], ["kubeflow", "cloud"]),
    "image": (["europe-docker.pkg.dev/p/r/img:1"], ["", "a\nb"]),
    "host": (["https://kfp.example.com/pipeline"], ["ftp://x", "https://u:p@x", "http://x?q=1"]),
    "cron": (
        ["0 6 * * 1-5", "0 6 * * MON-SUN", "*/15 0-6 1,15 JAN-JUN *"],
        ["5-1 * * * *", "*/0 * * * *", "61 * * * *", "* * *", "0 0 * * 8", "1-2-3 * * * *", "0 0 * DEC-JAN *"],
    ),
    "timezone": (["Europe/Warsaw", "UTC"], ["Mars/Olympus", "../etc/passwd", ""]),
    "start_time": (["2025-01-31T06:00:00Z"], ["2025-01-31T06:00:00", "soon"]),
    "end_time": (["2026-01-31T06:00:00+01:00"], ["tomorrow"]),
    "max_run_count": ([1, 2**63 - 1], [2**63, 0, -5]),
    "max_concurrent_run_count": ([1, 1000], [1001, 0]),
    "encryption_key": (
        ["projects/p/locations/europe-west1/keyRings/r/cryptoKeys/k"],
        ["projects/p/locations/us-central1/keyRings/r/cryptoKeys/k", "projects/p/keyRings/r", "k\n"],
    ),
    "failure_policy": (["fast", "slow"], ["FAST", "never"]),
    "vpc": (["projects/123/global/networks/vpc-1"], ["my-vpc", "projects/1/global/networks/"]),
    "reserved_ip_ranges": ([["range-a"]], [["Range"], ["-x"], ["a" * 64]]),
    "network_attachment": (
        ["att-1", "projects/p/regions/europe-west1/networkAttachments/att"],
        ["Bad Name", "att-1/x", "-a", "a" * 64],
    ),
    "domain": (["corp.example.com."], ["corp", ".", "-a.b.", "a..b.", "x" * 70 + "."]),
    "target_project": (["host-project"], ["h", "Host"]),
    "target_network": (["shared-vpc", "projects/p/global/networks/n"], ["Bad Net"]),
    "ip": (["10.0.0.2", "::1"], ["10.0.0.256", "host"]),
    "hostnames": ([["mlflow.internal"]], [[], ["-x"], [".a"]]),
    "namespace": (["kubeflow-user"], ["Kubeflow", "a" * 64, "-x"]),
    "max_workers": ([1, 8, 1024], [1025, 10000, 0, -1]),
    "cpu": ([1, "500m", 0.5], [0, "0m", 2000, "abc"]),
    "memory": (["4Gi", "16g"], ["0Gi", "65Ti", "x"]),
    "gpu": ([1, 16], [17, -1]),
    "accelerator": (["NVIDIA_TESLA_T4"], ["nvidia-tesla-t4", "GPU"]),
    "timeout": (["30m", "2h", 60], [0, "31d", float("inf"), float("nan")]),
    "backoff": (["30s"], ["2d", -1]),
    "max_backoff": (["1h"], ["2d"]),
    "backoff_factor": ([2], [0.5, 101]),
    "max_retries": ([2], [11, -1]),
    "task_startup": (["2m"], ["never"]),
    "node_duration": ([10], [0]),
    "machine_type": (["n2-highmem-32", "e2-standard-4"], ["n9-standard-4", "A2-HIGHGPU-1G", "big"]),
    "max_wait": (["2h"], ["8d", 0]),
    "size_gb": ([100, 500], [99, 0, 64001]),
    "reservation": (["projects/p/zones/europe-west1-b/reservations/r"], ["r", "projects/p/zones/x/reservations/r"]),
    "experiment_name": (["exp-1"], ["", "My_Experiment"]),
    "pipeline_registry": (["https://europe-west1-kfp.pkg.dev/my-project/repo"], ["ftp://x"]),
    "template_uri": ([None], ["x y"]),
    "params": ([{"alpha": 0.5, "model": {"depth": 3}}], [{"a": None}, {"a": float("nan")}]),
    "api_endpoint": (["europe-west1-aiplatform.googleapis.com"], ["\u200b"]),
    "grouping": (["makespan", "chains"], [{"cls": "x"}, {"cls": 3}, {"cls": "kedro_vertexai.grouping.TagNodeGrouper"}]),
}
_LABEL_KEYS = ["team", "\u00e9quipe", "\u65e5\u672c"], ["Team", "goog-x", "vertex-ai-pipelines-x", "a" * 64, "", "1a"]
_LABEL_VALUES = ["ds", "", "\u00e9t\u00e9", 2, True], ["Data Science", "x" * 64, "A"]
# keys of the reference plugin, translated (or refused) before validation
_REFERENCE_KEYS: dict[str, st.SearchStrategy[Any]] = {
    "vertex_ai_networking": st.sampled_from([{"vpc": "projects/1/global/networks/n"}, "x"]),
    "image_pull_policy": st.just("Always"),
    "node_selectors": st.sampled_from(
        [{"train": {"cloud.google.com/gke-accelerator": "NVIDIA_TESLA_T4"}}, {"train": {"other": 1}}, [1], {"t": 1}]
    ),
    "dynamic_config_providers": st.sampled_from([[], [{"cls": "x"}], "x", [1], [{"params": [1]}]]),
    "unknown_key": _JUNK,
}


def _either(name: str, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, sometimes one beyond a limit, rarely anything at all."""
    # hypothesis leans towards small numbers: they pick the valid value
    return st.integers(0, 99).flatmap(lambda n: good if n < 94 else bad if n < 99 else _JUNK)


def _strip_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return options[0] if len(options) == 1 else annotation
    return annotation


@st.composite
def _model(draw: st.DrawFn, model: type[BaseModel], depth: int = 0) -> dict[str, Any]:
    """A mapping for ``model``: its required fields (mostly) and a random subset of the others."""
    fields = model.model_fields
    required = {name for name, field in fields.items() if field.is_required()}
    if issubclass(model, PluginConfig):
        required |= {"project_id", "region"}  # what the default backend needs
    chosen = set(draw(st.lists(st.sampled_from(sorted(fields)), max_size=6, unique=True)))
    if draw(st.integers(0, 19)) < 19:
        chosen |= required
    out = {name: draw(_value(name, fields[name].annotation, depth)) for name in sorted(chosen)}
    if model.__name__ == "RunConfig" and draw(st.integers(0, 5)) == 5:
        key = draw(st.sampled_from(sorted(_REFERENCE_KEYS)))
        out[key] = draw(_REFERENCE_KEYS[key])
    if model.__name__ == "TaskSettings" and draw(st.integers(0, 5)) == 5:
        out["nvidia.com/gpu"] = draw(st.sampled_from([1, 2, "x"]))
    if model.__name__ == "ScheduleConfig" and draw(st.integers(0, 5)) == 5:
        out["cron_expression"] = draw(st.sampled_from(["0 6 * * *", "5-1 * * * *", 5]))
    return out


def _value(name: str, annotation: Any, depth: int) -> st.SearchStrategy[Any]:
    inner = _strip_optional(annotation)
    if name == "labels":
        keys, values = (st.sampled_from(_LABEL_KEYS[0]), st.sampled_from(_LABEL_VALUES[0]))
        good = st.dictionaries(keys, values, max_size=3)
        every_key, every_value = [*_LABEL_KEYS[0], *_LABEL_KEYS[1]], [*_LABEL_VALUES[0], *_LABEL_VALUES[1]]
        bad = st.dictionaries(st.sampled_from(every_key), st.sampled_from(every_value), max_size=3)
        return _either(name, good, bad | st.just({f"k{n}": "v" for n in range(65)}))
    if name in _NAMED:
        good_values, bad_values = _NAMED[name]
        return _either(name, st.sampled_from(good_values), st.sampled_from(bad_values))
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return _either(name, _model(inner, depth + 1) if depth < 4 else st.just({}), st.just("not a mapping"))
    if typing.get_origin(inner) is typing.Literal:
        return _either(name, st.sampled_from(typing.get_args(inner)), st.just("nope"))
    if typing.get_origin(inner) is dict:
        _, value_type = typing.get_args(inner)
        keys = {"env": ["A_VAR", "DEBUG"], "schedules": ["nightly"]}.get(
            name, ["__default__", "train", "preprocessing"]
        )
        items = _value(name + "[]", value_type, depth + 1)
        return _either(name, st.dictionaries(st.sampled_from(keys), items, max_size=2), st.just({"1 bad": {}}))
    if typing.get_origin(inner) is list:
        (item,) = typing.get_args(inner)
        return _either(name, st.lists(_value(name + "[]", item, depth + 1), max_size=2), st.just({}))
    if inner is bool:
        return _either(name, st.booleans(), st.sampled_from(["maybe", 2]))
    if inner in (int, float):
        return _either(name, st.sampled_from([1, 3]), st.sampled_from([-1, 10**30, float("inf"), "2x"]))
    return _either(name, st.sampled_from(["text", "ok-name"]), st.sampled_from(["", "a\nb", "-x", "x\u200b"]))


def _configs() -> st.SearchStrategy[dict[str, Any]]:
    return _model(plugin_config_model())  # with the backends' sections (run_config.local, …)


def _one_line_or_valid(raw: dict[str, Any], loader: Any) -> None:
    try:
        loader(raw)
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message, message


@profile(250)
@given(raw=_configs())
def test_every_generated_config_validates_or_is_one_error_line(raw: dict[str, Any], watched: list[Any]) -> None:
    _one_line_or_valid(raw, validate_config)
    assert watched == []


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "local").mkdir()
    return tmp_path / "conf"


@profile(40)
@given(raw=_configs())
def test_generated_vertexai_yml_files_load_or_are_one_error_line(raw: dict[str, Any], conf_dir: Path) -> None:
    """The same through the files and Kedro's own config loader, as ``kedro run`` reads them."""
    (conf_dir / "base" / "vertexai.yml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")

    def load(_: Any) -> PluginConfig:
        loader = OmegaConfigLoader(conf_source=str(conf_dir), base_env="base", default_run_env="local")
        return load_config(loader)

    _one_line_or_valid(raw, load)


# ----------------------------------------------------------------------------------------------------------------
# arguments for every `kedro vertexai` command

_TEXT = st.sampled_from(["", "x", "-", "--", "..", "-x", "a b", "\u00e9", "a\u200bb", "\x00", "1e400", "-1", "0"])
_BACKENDS = st.sampled_from(["vertex", "kubeflow", "nope", ""])  # never local for commands that run a job here
_OPTIONS: dict[str, list[tuple[str, st.SearchStrategy[str] | None]]] = {
    "compile": [
        ("--pipeline", st.sampled_from(["__default__", "data_processing", "nope"]) | _TEXT),
        ("--params", st.sampled_from(["a=1", "a", "=1", "a=[", "a.b=2,c=x"]) | _TEXT),
        ("--output", st.sampled_from(["out.json", "out.yaml", "out.txt", "dir/", "x.json/y"]) | _TEXT),
        ("--backend", st.sampled_from(["vertex", "local", "kubeflow", "nope"])),
        ("--explain", None),
    ],
    "run-once": [
        ("--pipeline", st.sampled_from(["__default__", "nope"]) | _TEXT),
        ("--params", st.sampled_from(["a=1", "a", "a=["]) | _TEXT),
        ("--backend", _BACKENDS),
        ("--template-uri", st.sampled_from(["https://x-kfp.pkg.dev/p/r/pkg/v1", "tag", "ftp://x"]) | _TEXT),
        ("--no-wait", None),
    ],
    "schedule": [
        ("--cron", st.sampled_from(["0 6 * * *", "5-1 * * * *", "* * *", "*/0 * * * *", "0 6 * * MON-SUN"]) | _TEXT),
        ("--timezone", st.sampled_from(["Europe/Warsaw", "Mars/Olympus", "UTC"]) | _TEXT),
        ("--schedule", st.sampled_from(["nightly", "nope"]) | _TEXT),
        ("--backend", _BACKENDS),
        ("--pipeline", st.sampled_from(["__default__", "nope"])),
    ],
    "upload-pipeline": [("--tag", st.sampled_from(["prod", "v1", "Bad Tag"]) | _TEXT), ("--backend", _BACKENDS)],
    "list-pipelines": [
        ("--limit", st.sampled_from(["1", "20", "0", "-1", "x", "100000000000000000000"])),
        ("--backend", _BACKENDS),
    ],
    "logs": [
        ("--task", st.sampled_from(["train", ""]) | _TEXT),
        ("--lines", st.sampled_from(["1", "1000", "1001", "0", "x", "-5"])),
        ("--backend", _BACKENDS),
    ],
    "ui": [("--backend", _BACKENDS)],
    "init": [("--main-branch", st.sampled_from(["main", "-x"]) | _TEXT)],
}
_ARGUMENTS = {
    "logs": [st.sampled_from(["..", "abc-123", "ABC", "projects/p/locations/l/pipelineJobs/j", "a/b"]) | _TEXT],
    "init": [
        st.sampled_from(["my-project", "ab", "-x"]) | _TEXT,
        st.sampled_from(["europe-west1", "mars"]) | _TEXT,
    ],
}
_BAD_ENVIRONMENT = st.sampled_from(
    [
        {"KEDRO_VERTEX_WARM_START": "maybe"},
        {"KEDRO_VERTEX_POLL_INTERVAL": "nan"},
        {"KEDRO_VERTEX_POLL_INTERVAL": "1e400"},
        {"KEDRO_VERTEX_BUCKET_CHECK_TIMEOUT": "-3"},
        {"KEDRO_VERTEX_PLAIN_LOGS": "2"},
    ]
)
_ENVIRONMENT = st.integers(0, 9).flatmap(lambda n: st.just({}) if n < 8 else _BAD_ENVIRONMENT)


@st.composite
def _command_lines(draw: st.DrawFn) -> tuple[list[str], dict[str, str]]:
    command = draw(st.sampled_from(sorted(_OPTIONS)))
    args = [draw(strategy) for strategy in _ARGUMENTS.get(command, [])]
    for option, value in draw(st.lists(st.sampled_from(_OPTIONS[command]), max_size=3, unique_by=lambda o: o[0])):
        args += [option] if value is None else [option, draw(value)]
    if draw(st.integers(0, 7)) == 7:
        args.append(draw(st.sampled_from(["--unknown", "extra-arg", "--lines"])))
    return ["vertexai", command, *args], draw(_ENVIRONMENT)


@pytest.fixture(scope="module")
def cli_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example whose jobs go to Vertex AI, on a machine without Google credentials."""
    from tests.conftest import EXAMPLE

    project = tmp_path_factory.mktemp("properties") / "demo_project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "vertex_runs", "mlruns", "*.db"))
    config = project / "conf" / "base" / "vertexai.yml"
    text = (
        config.read_text()
        .replace("backend: local", "backend: vertex")
        .replace("root: data/vertex_runs", "root: gs://bucket/runs")
    )
    config.write_text(text + "  mlflow:\n    enabled: false\n  schedules:\n    nightly: {cron: '0 6 * * *'}\n")
    return project


@profile(45)
@given(command=_command_lines())
def test_every_generated_command_line_is_done_or_one_error_line(
    command: tuple[list[str], dict[str, str]], cli_project: Path, watched: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kedro_vertex_runner.cli import commands

    args, environ = command
    home = cli_project.parent / "home"  # no gcloud credentials there
    home.mkdir(exist_ok=True)
    with monkeypatch.context() as patch:
        patch.chdir(cli_project)
        for name in ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "KEDRO_VERTEX_ANONYMOUS_CREDENTIALS"):
            patch.delenv(name, raising=False)
        patch.setenv("HOME", str(home))
        patch.setenv("NO_GCE_CHECK", "true")
        patch.setenv("CI", "true")  # `ui` opens no browser
        patch.setenv("KEDRO_VERTEX_WARM_START", "0")
        for name, value in environ.items():
            patch.setenv(name, value)
        result = CliRunner().invoke(commands, args)
    shown = f"kedro {' '.join(args)} ({environ}):\n{result.output}"
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), (
        f"{shown}\n{result.exception!r}"
    )
    assert "Traceback" not in result.output, shown
    if result.exit_code != 0:
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, shown
    assert watched == [], shown
