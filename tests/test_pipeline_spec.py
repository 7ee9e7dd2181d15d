"""The typed view of a compiled spec (pipeline_spec.SpecView) and the changes backends make to a spec, on the example
project compiled once for Vertex AI three ways: plain with a runtime parameter, with an exit handler (on-exit
pipeline, webhook and e-mail), and with a node on its own machine (a CustomJob task)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import _clean_example, kedro_batch

from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.pipeline_spec import (
    ENTRYPOINT_COMMAND,
    EXIT_HANDLER_COMPONENT,
    EXIT_HANDLER_TASK,
    RUN_ALWAYS,
    RUN_ON_SUCCESS,
    SpecView,
    looks_compiled,
    parameter_values,
    with_default_caching,
    with_job_ids,
)
from kedro_vertex_runner.task.contract import JOB_NAME_PLACEHOLDER, RUN_ID_PLACEHOLDER

_CONFIGS = {
    "exitmail": """\
run_config:
  on_exit_pipeline: notify
  notifications: {email: [a@example.com], webhook: projects/my-project/secrets/hook/versions/latest}
""",
    "machines": """\
run_config:
  resources:
    model.train_model: {machine_type: n1-highmem-8, spot: true}
""",
}


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The example compiled for Vertex AI: ``plain`` (``--params learning_rate=0.2``), ``exit`` and ``machine``."""
    project = _clean_example(tmp_path_factory.mktemp("spec_view"))
    for env, text in _CONFIGS.items():
        (project / "conf" / env).mkdir(exist_ok=True)
        (project / "conf" / env / "vertexai.yml").write_text(text)
    out = project.parent
    runs = {
        "plain": ["--params", "learning_rate=0.2"],
        "exit": ["-e", "exitmail"],
        "machine": ["-e", "machines"],
    }
    results = kedro_batch(
        [
            (project, ["vertexai", "compile", "--backend", "vertex", *args, "-o", str(out / f"{name}.json")])
            for name, args in runs.items()
        ]
    )
    for result in results:
        assert result.returncode == 0, result.stderr
    return {name: json.loads((out / f"{name}.json").read_text()) for name in runs}


def test_the_view_reads_every_task_of_the_compiled_example(specs: dict[str, dict[str, Any]]) -> None:
    spec = specs["plain"]
    view = SpecView.of(spec)
    assert view.name == "demo-project" and looks_compiled(spec)
    assert view.exit_handler is None
    raw = spec["root"]["dag"]["tasks"]
    assert list(view.root) == list(raw) and len(raw) > 1
    assert view.task_names() == {key: task["taskInfo"]["name"] for key, task in raw.items()}
    assert view.task_names()["model-train-model"] == "model.train_model"
    for task in view.tasks():
        assert task.dependencies == tuple(raw[task.key].get("dependentTasks", ()))
        assert task.trigger == RUN_ON_SUCCESS and not task.runs_always
        assert task.inputs["learning_rate"] == {"componentInputParameter": "learning_rate"}
        container = view.workload(task)
        executor = view.executor_of(task)
        assert executor is not None and container is executor.container and container is not None
        assert list(container.command) == ENTRYPOINT_COMMAND and container.image
        assert ("DO_NOT_TRACK", "1") in container.env
        assert any(arg.startswith("--node") for arg in container.args)
        assert f"--run-id={RUN_ID_PLACEHOLDER}" in container.args
        component = view.component_of(task)
        assert component is not None and component.dag is None
        assert component.parameters["learning_rate"].type == "NUMBER_DOUBLE"
    # the pipeline's one parameter, typed, with the value --params gave it; the one place that types values
    (parameter,) = view.parameters.values()
    assert (parameter.name, parameter.type, parameter.has_default, parameter.default) == (
        "learning_rate",
        "NUMBER_DOUBLE",
        True,
        0.2,
    )
    assert parameter_values(spec) == {"learning_rate": 0.2}
    assert parameter_values(spec, {"learning_rate": "3"}) == {"learning_rate": 3.0}
    with pytest.raises(PluginError, match=r"pipeline parameter 'learning_rate': expected a number, got 'fast'"):
        parameter_values(spec, {"learning_rate": "fast"})
    with pytest.raises(PluginError, match=r"unknown pipeline parameter 'rate': the pipeline declares learning_rate"):
        parameter_values(spec, {"rate": 1})


def test_the_view_finds_the_exit_handler_and_the_tasks_inside_it(specs: dict[str, dict[str, Any]]) -> None:
    view = SpecView.of(specs["exit"])
    # the e-mail's handler outside (Google's task runs last), ours inside a sub-pipeline task, as kfp nests them
    outer, inner = view.exit_handlers
    assert view.exit_handler == inner
    assert (outer.group, outer.component) == (EXIT_HANDLER_TASK, EXIT_HANDLER_COMPONENT)
    assert outer.exit_tasks == ("vertex-pipelines-notification-email",)
    assert inner.exit_tasks == ("on-exit-notify",) and inner.component != outer.component
    assert set(view.root) == {EXIT_HANDLER_TASK, *outer.exit_tasks}
    sub_pipeline = next(iter(view.components[outer.component].dag.values()))  # type: ignore[union-attr]
    ours = view.components[sub_pipeline.component].dag  # type: ignore[index]
    assert ours is not None and set(ours) == {EXIT_HANDLER_TASK, "on-exit-notify"}
    for dag, key in ((view.root, "vertex-pipelines-notification-email"), (ours, "on-exit-notify")):
        assert dag[key].trigger == RUN_ALWAYS and dag[key].dependencies == (EXIT_HANDLER_TASK,)
    assert ours["on-exit-notify"].name == "on exit: log_run_finished"
    assert ours["on-exit-notify"].inputs["status"] == {"taskFinalStatus": {"producerTask": EXIT_HANDLER_TASK}}
    # the pipeline's tasks sit in the inner handler's sub-DAG, and every listing includes them
    inside = view.components[inner.component].dag
    assert inside is not None and "model-train-model" in inside
    assert view.task_names()["model-train-model"] == "model.train_model"
    assert {"model-train-model", "on-exit-notify", "vertex-pipelines-notification-email"} <= {
        task.key for task in view.tasks()
    }
    # the e-mail task runs Google's notification component, not a task of ours
    email = view.executor_of(view.root["vertex-pipelines-notification-email"])
    assert email is not None and email.container is not None
    assert list(email.container.command) != ENTRYPOINT_COMMAND


def test_a_machine_task_runs_in_its_custom_job_and_a_rerun_fixes_its_ids(specs: dict[str, dict[str, Any]]) -> None:
    spec = specs["machine"]
    view = SpecView.of(spec)
    task = view.root["model-train-model"]
    launcher = view.executor_of(task)
    workload = view.workload(task)
    assert launcher is not None and launcher.container is not None and workload is not None
    assert "custom_job.launcher" in " ".join(launcher.container.command)
    assert list(workload.command) == ENTRYPOINT_COMMAND and "--node=model.train_model" in workload.args
    assert view.components["comp-model-train-model"].parameters["strategy"].default == "SPOT"

    original = copy.deepcopy(spec)
    fixed = with_job_ids(spec, {RUN_ID_PLACEHOLDER: "1234", JOB_NAME_PLACEHOLDER: "job-1"})
    assert spec == original  # a changed copy
    fixed_view = SpecView.of(fixed)
    for each in fixed_view.tasks():
        container = fixed_view.workload(each)
        assert container is not None
        assert "--run-id=1234" in container.args and "--job-name=job-1" in container.args, each.key
    assert RUN_ID_PLACEHOLDER not in json.dumps(fixed) and JOB_NAME_PLACEHOLDER not in json.dumps(fixed)

    # the job-wide caching default fills in only what the compiler left unset
    raw = copy.deepcopy(spec)
    del raw["root"]["dag"]["tasks"]["clean-houses"]["cachingOptions"]
    cached = with_default_caching(raw, False)
    tasks = cached["root"]["dag"]["tasks"]
    assert tasks["clean-houses"]["cachingOptions"] == {"enableCache": False}
    assert (
        tasks["model-train-model"]["cachingOptions"]
        == spec["root"]["dag"]["tasks"]["model-train-model"]["cachingOptions"]
    )
    assert "cachingOptions" not in raw["root"]["dag"]["tasks"]["clean-houses"]


@pytest.mark.parametrize(
    ("spec", "missing"),
    [
        ([], "everything (it is not a mapping)"),
        ({"components": {}}, "root.dag"),
        ({"root": {"dag": {}}}, "components"),
        ({"root": {"dag": {}}, "components": {}, "deploymentSpec": {}}, "deploymentSpec.executors"),
        ({"root": {"dag": {}}, "components": {}, "deploymentSpec": {"executors": {}}}, None),
    ],
)
def test_the_view_names_what_a_spec_lacks(spec: Any, missing: str | None) -> None:
    assert SpecView.missing(spec) == missing


def test_the_local_backend_refuses_what_is_not_a_compiled_spec(tmp_path: Path) -> None:
    from kedro_vertex_runner.backends.local.plan import _plan

    with pytest.raises(PluginError, match=r"not a compiled pipeline spec: missing deploymentSpec\.executors"):
        _plan(
            {"root": {"dag": {}}, "components": {}},
            run_id="r",
            job_name="j",
            pipeline_root=str(tmp_path),
            parameter_values={},
            extra_env={},
        )
