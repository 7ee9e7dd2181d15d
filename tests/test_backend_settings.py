"""Each backend declares its settings: ``run_config.<name>`` and its runner params come from the models of its
``settings`` module, and so do the configuration reference and ``init``'s template.

``relay_backend`` (a package in tests/) is a whole backend with its own settings module; it is registered by one
line (in-process) and nothing shared is edited.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from kedro_vertex_runner.backends import REGISTRY, backend_class
from kedro_vertex_runner.backends.settings import read_runner_params
from kedro_vertex_runner.config import ConfigError, config_reference, runner_params_reference, validate_config
from kedro_vertex_runner.errors import PluginError


@pytest.fixture
def relay(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setitem(REGISTRY, "relay", "relay_backend:RelayBackend")  # the one registry line
    backend_class.cache_clear()
    yield "relay"
    backend_class.cache_clear()


def _config(run_config: dict[str, Any], **top: Any) -> Any:
    return validate_config({**top, "run_config": {"image": "i", "root": "gs://b/r", **run_config}})


def _error(run_config: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        _config(run_config)
    return str(info.value)


def test_a_backends_section_is_validated_by_its_model(relay: str) -> None:
    config = _config({"backend": "relay", "relay": {"queue": "fast", "priority": 3}})
    assert (config.run_config.relay.queue, config.run_config.relay.priority) == ("fast", 3)
    assert _config({"backend": "relay"}).run_config.relay.queue == "default"  # the model's default
    assert _error({"backend": "relay", "relay": {"priority": 10}}) == (
        "vertexai.yml: run_config.relay.priority: must be less than or equal to 9, got 10"
    )
    assert _error({"backend": "relay", "relay": {"priorty": 3}}) == (
        "vertexai.yml: run_config.relay.priorty: unknown key: remove it or fix its spelling (did you mean 'priority'?)"
    )
    assert _error({"backend": "relay", "relay": {"queue": "slow"}}) == (
        "vertexai.yml: run_config.relay.queue: expected one of 'default', 'fast', got 'slow'"
    )


def test_a_backends_entries_naming_nodes_are_checked_against_the_pipeline(relay: str) -> None:
    from kedro.pipeline import Pipeline, node

    from kedro_vertex_runner.config import check_against_pipeline

    def step(a: Any) -> Any:
        return a

    pipeline = Pipeline([node(step, "a", "b", name="train", tags=["gpu"])])
    check_against_pipeline(_config({"backend": "relay", "relay": {"lanes": {"train": 2, "gpu": 1}}}), pipeline)
    with pytest.raises(ConfigError) as info:
        check_against_pipeline(_config({"backend": "relay", "relay": {"lanes": {"trian": 2}}}), pipeline)
    assert str(info.value) == (
        "vertexai.yml: run_config.relay.lanes.trian: names no node or tag of pipeline '__default__' (did you mean "
        "'train'?)"
    )


def test_an_unregistered_backends_section_is_an_unknown_key() -> None:
    assert _error({"backend": "local", "relay": {"queue": "fast"}}).startswith(
        "vertexai.yml: run_config.relay: unknown key"
    )
    assert "run_config.relay" not in config_reference()


def test_a_backends_runner_params_are_read_through_its_model(relay: str) -> None:
    given = read_runner_params({"backend": "relay", "priority": "3", "express": "yes"})
    assert given.common.backend == "relay" and given.own == {"priority": 3, "express": True}
    given.refuse_foreign("relay")
    refusals = {
        "priority=x": ({"priority": "x"}, "--runner-params priority='x': expected a whole number"),
        "priority=0": ({"priority": "0"}, "--runner-params priority='0': expected greater than or equal to 1"),
        "express=maybe": ({"express": "maybe"}, "--runner-params express='maybe': expected true or false"),
        "priority=": ({"priority": ""}, "--runner-params priority=: give a value, e.g. priority=5"),
        "unknown": (
            {"priorty": "3"},
            "--runner-params: unknown key 'priorty'; VertexRunner takes backend, wait, cancel_on_interrupt, run_id, "
            "code, resume, resume_changed, max_workers, warm_start, priority, express",
        ),
    }
    for case, (params, expected) in refusals.items():
        with pytest.raises(PluginError) as info:
            read_runner_params(params)
        assert str(info.value) == expected, case
    with pytest.raises(PluginError) as info:
        read_runner_params({"priority": "3"}).refuse_foreign("vertex")
    assert str(info.value) == (
        "--runner-params priority=3: an option of backend 'relay', and this run is on backend 'vertex': drop it, or "
        "add backend=relay"
    )


def test_the_runner_refuses_a_backends_param_in_one_line(relay: str, capsys: pytest.CaptureFixture[str]) -> None:
    from kedro_vertex_runner.runner import VertexRunner

    with pytest.raises(SystemExit) as info:
        VertexRunner(backend="relay", priority="high")
    assert info.value.code == 1
    assert capsys.readouterr().err.strip() == "Error: --runner-params priority='high': expected a whole number"


def test_a_local_option_on_another_backend_names_the_backend_it_belongs_to() -> None:
    with pytest.raises(PluginError) as info:
        read_runner_params({"backend": "vertex", "max_workers": "4"}).refuse_foreign("vertex")
    assert str(info.value) == (
        "--runner-params max_workers=4: an option of backend 'local', and this run is on backend 'vertex': drop it, "
        "or add backend=local"
    )
    read_runner_params({"max_workers": "4", "warm_start": "false"}).refuse_foreign("local")


def test_the_reference_and_the_init_template_list_a_backends_section(relay: str) -> None:
    import yaml
    from conftest import REPO

    from kedro_vertex_runner.scaffold import backend_settings_template

    reference = config_reference().splitlines()
    assert "| `run_config.relay` | mapping |  | Relay backend settings. |" in reference
    assert (
        "| `run_config.relay.queue` | one of `default`, `fast` | `default` | Relay queue the jobs go to. |" in reference
    )
    assert "| `run_config.relay.priority` | integer, optional |  | Job priority, 1 to 9. |" in reference

    params = runner_params_reference().splitlines()
    assert "| `priority=` | `relay` | integer | Job priority for this run, 1 to 9. |" in params
    assert "| `express=` | `relay` | boolean | Skip the queue. |" in params
    assert "| `max_workers=` | `local` | integer | Tasks run at once, 1 to 1024 (default: " in "\n".join(params)

    # init's template has the sections where the backends' settings put them
    assert "\n{{ backend_settings }}\n" in (REPO / "conf_templates" / "vertexai.yml").read_text()
    text = backend_settings_template()
    section = text[text.index("  # Relay backend settings (`backend: relay`).") :].splitlines()
    assert section == [
        "  # Relay backend settings (`backend: relay`).",
        "  # relay:",
        '  #   queue: "default"   # Relay queue the jobs go to.',
        "  #   priority:   # Job priority, 1 to 9.",
        "  #   lanes: {}   # Lanes per node name, tag or __default__.",
    ]
    assert text.startswith("  # Local backend (`backend: local`") and "\n  # kubeflow:\n" in text  # their own text
    uncommented = "\n".join(line.replace("  # ", "  ", 1).split("   #")[0] for line in section[1:])
    config = _config({"backend": "relay", **yaml.safe_load(uncommented.replace("  ", "", 1))})
    assert config.run_config.relay.queue == "default"


def test_the_settings_modules_load_no_client_library() -> None:
    code = (
        "import sys\n"
        "import kedro_vertex_runner.backends.local.settings, kedro_vertex_runner.backends.kubeflow.settings\n"
        "from kedro_vertex_runner.config import config_reference\n"
        "config_reference()\n"
        "print(sorted(m for m in ('kfp', 'google.cloud.aiplatform', 'mlflow', 'kubernetes') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
