"""The compiled PipelineSpec: tasks, dependencies, per-node settings, parameters, exit handler, names, safety."""

from __future__ import annotations

import json
import math
import re

import pytest
from conftest import task_by_node
from kedro.pipeline import Pipeline, node

from kedro_vertex_runner.compiler import CompileRequest, compile_spec
from kedro_vertex_runner.compiler.spec import write_spec
from kedro_vertex_runner.config import validate_config
from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.task.contract import HostAlias, TaskContract, TaskParam

IMAGE = "europe-docker.pkg.dev/proj/repo/image:1"


def step(*values):
    return 1


def two(*values):
    return 1, 2


def make_config(**run_config):
    run_config = {"image": IMAGE, "root": "my-bucket/runs", **run_config}
    return validate_config({"project_id": "proj-1", "region": "europe-west1", "run_config": run_config})


def compile_(pipeline, grouping="none", request_args=None, **run_config):
    config = make_config(grouping=grouping, **run_config)
    return compile_spec(CompileRequest(pipeline=pipeline, config=config, **(request_args or {})))


def dag_tasks(spec):
    """The normal tasks, wherever they sit (root or the exit handler's sub-DAG)."""
    root = spec["root"]["dag"]["tasks"]
    if "exit-handler-1" in root:
        return spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    return root


def container(spec, task):
    return spec["deploymentSpec"]["executors"][f"exec-{task}"]["container"]


def contract(spec, task):
    """What the task runs, parsed back from its args as the entrypoint parses them."""
    return TaskContract.from_args(container(spec, task)["args"])


def nodes_of(spec, task):
    return list(contract(spec, task).nodes)


DIAMOND = Pipeline(
    [
        node(two, "raw", ["l", "r"], name="split", tags=["prep"]),
        node(step, "l", "l2", name="left", tags=["train"]),
        node(step, "r", "r2", name="right", tags=["train", "gpu"]),
        node(step, ["l2", "r2", "params:alpha"], "out", name="join"),
    ]
)


# ---------------------------------------------------------------------------------------------------------------
# structure


def test_one_task_per_node_with_dependencies_from_the_graph():
    spec = compile_(DIAMOND)
    tasks = spec["root"]["dag"]["tasks"]
    assert set(tasks) == {"split", "left", "right", "join"}
    assert "dependentTasks" not in tasks["split"]
    assert tasks["left"]["dependentTasks"] == ["split"]
    assert tasks["join"]["dependentTasks"] == ["left", "right"]
    for name, task in tasks.items():
        assert task["componentRef"] == {"name": f"comp-{name}"}
        assert spec["components"][f"comp-{name}"]["executorLabel"] == f"exec-{name}"
    assert spec["schemaVersion"] == "2.1.0"
    assert spec["sdkVersion"].startswith("kedro-vertex-runner-")


def test_container_runs_the_entrypoint_with_exec_form_arguments():
    spec = compile_(
        DIAMOND,
        request_args={"env": "prod", "pipeline_names": ("data", "model")},
        network={"host_aliases": [{"ip": "10.1.2.3", "hostnames": ["mlflow.internal", "db.internal"]}]},
    )
    c = container(spec, "join")
    assert c["image"] == IMAGE
    assert c["command"] == ["python", "-m", "kedro_vertex_runner.entrypoint"]
    task = contract(spec, "join")
    assert task.pipelines == ("data", "model")
    assert task.env == "prod"
    assert task.nodes == ("join",)
    assert task.run_id == "{{$.pipeline_job_uuid}}"
    assert task.job_name == "{{$.pipeline_job_name}}"
    assert task.root == "gs://my-bucket/runs"
    assert task.host_aliases == (HostAlias("10.1.2.3", ("mlflow.internal", "db.internal")),)
    assert not task.exit_handler and task.timeout is None
    # one `--option=value` item per value: a value can never be taken for an option
    assert all(arg.startswith("--") and ("=" in arg or arg == "--exit-handler") for arg in c["args"])
    assert task.to_args() == c["args"]


def test_env_option_is_omitted_without_an_env_and_local_roots_stay_local(tmp_path):
    spec = compile_(DIAMOND, root=str(tmp_path))
    assert contract(spec, "split").env is None
    assert contract(spec, "split").root == str(tmp_path)


def test_task_env_holds_telemetry_opt_out_git_info_and_extra_env():
    spec = compile_(
        DIAMOND,
        request_args={"commit_id": "abc123", "branch_name": "main", "extra_env": {"KEDRO_CONFIG_X": "1", "A": "b"}},
    )
    env = {item["name"]: item["value"] for item in container(spec, "left")["env"]}
    assert env == {
        "DO_NOT_TRACK": "1",
        "KEDRO_CONFIG_COMMIT_ID": "abc123",
        "KEDRO_CONFIG_BRANCH_NAME": "main",
        "KEDRO_CONFIG_X": "1",
        "A": "b",
    }


def test_multiple_nodes_of_a_task_are_listed_in_run_order():
    pipeline = Pipeline(
        [node(step, "b", "c", name="second"), node(step, "a", "b", name="first"), node(step, "c", "d", name="third")]
    )
    spec = compile_(pipeline, grouping="chains")
    (task,) = dag_tasks(spec)
    assert nodes_of(spec, task) == ["first", "second", "third"]
    assert dag_tasks(spec)[task]["taskInfo"]["name"] == "first + second + third"


# ---------------------------------------------------------------------------------------------------------------
# names


def test_task_names_are_sanitised_unique_and_keep_node_names_for_display():
    names = [
        "prep_data",
        "prep-data",
        "Prep.Data",
        "x" * 100,
        "y" * 100 + "1",
        "y" * 100 + "2",
        "9lives",
        "exit-handler-1",
        "données_été",
        "__",
    ]
    pipeline = Pipeline([node(step, f"in{i}", f"out{i}", name=name) for i, name in enumerate(names)])
    spec = compile_(pipeline)
    tasks = dag_tasks(spec)
    assert len(tasks) == len(names)
    for task_name in tasks:
        assert len(task_name) <= 63
        assert task_name[0].isalpha() and set(task_name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
        assert "--" not in task_name and not task_name.endswith("-")
    assert "exit-handler-1" not in tasks
    for name in names:
        assert tasks[task_by_node(spec, name)]["taskInfo"]["name"] == name


def test_task_names_do_not_depend_on_which_other_nodes_are_compiled():
    alone = compile_(Pipeline([node(step, "a", "b", name="prep_data")]))
    assert list(dag_tasks(alone)) == ["prep-data"]
    together = compile_(Pipeline([node(step, "a", "b", name="prep_data"), node(step, "c", "d", name="prep-data")]))
    clashing = task_by_node(together, "prep_data")
    assert clashing.startswith("prep-data-") and clashing != task_by_node(together, "prep-data")
    reordered = compile_(Pipeline([node(step, "c", "d", name="prep-data"), node(step, "a", "b", name="prep_data")]))
    assert task_by_node(reordered, "prep_data") == clashing


# Kedro 1.7 allows letters (any script), digits, '_', '.', '-' in node names: a name may look like an option
@pytest.mark.parametrize("name", ["--help", "-rf", "model.v2-final", "données.été", "a" * 300])
def test_awkward_node_names_arrive_intact_through_the_entrypoint_parser(name):
    spec = compile_(Pipeline([node(step, "a", "b", name=name), node(step, "b", "c", name="next")]), grouping="chains")
    (task,) = dag_tasks(spec)
    parsed = contract(spec, task)
    assert parsed.nodes == (name, "next")
    assert parsed.pipelines == ("__default__",)
    assert dag_tasks(spec)[task]["taskInfo"]["name"] == f"{name} + next"


# Kedro 1.7 rejects such names, but older Kedro auto-generated them and a custom Node subclass may still produce
# them: the compiler must pass them on as plain values, never through a shell
SHELL_HOSTILE = [
    "f([a;b]) -> [c]",
    "name with spaces",
    'it\'s "quoted"',
    "x; rm -rf / $(touch pwned) `id` | cat > out &",
    "UPPER.Name [1]",
]


@pytest.mark.parametrize("name", SHELL_HOSTILE)
def test_shell_hostile_node_names_arrive_intact_and_inert(name, tmp_path):
    import shlex
    import subprocess
    import sys

    odd = node(step, "a", "b", name="placeholder")
    odd._name = name  # bypass Kedro 1.7's validation, as an older Kedro or a Node subclass would
    spec = compile_(Pipeline([odd, node(step, "b", "c", name="next")]), grouping="none")
    task = task_by_node(spec, name)
    assert re.fullmatch(r"[a-z][a-z0-9-]{0,62}", task)
    assert dag_tasks(spec)[task]["taskInfo"]["name"] == name
    args = container(spec, task)["args"]
    assert TaskContract.from_args(args).nodes == (name,)
    # exec form: run exactly these words (argv, no shell) and the name comes back byte for byte, nothing executed
    echo = [sys.executable, "-c", "import sys; print(sys.argv[1:])"]
    out = subprocess.run(echo + args, cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.strip() == repr(args)
    assert not list(tmp_path.iterdir())  # no `pwned`, no `out`
    assert shlex.join(args) != " ".join(args)  # the name would have needed quoting in a shell string


# ---------------------------------------------------------------------------------------------------------------
# the task contract: what the compiler renders, the entrypoint and the local backend parse back

# characters that break naive command lines: option dashes, the contract's own separators, quotes, shell syntax,
# whitespace, placeholders' braces, non-ASCII
AWKWARD = [
    "-",
    "--",
    "=",
    ":",
    ",",
    " ",
    "\t",
    "\n",
    "'",
    '"',
    "$(",
    "`",
    ";",
    "{{$.",
    "}}",
    "é",
    "日本",
    "\u200b",
    "a",
    "Z9",
]


def awkward_text(rng, allow_empty=True, forbid=""):
    size = rng.randint(0 if allow_empty else 1, 5)
    text = "".join(rng.choice(AWKWARD) for _ in range(size))
    for char in forbid:
        text = text.replace(char, "x")
    return text if text or allow_empty else "x"


def random_contract(rng):
    from kedro_vertex_runner.task.contract import PARAM_TYPES

    def some(make, most=3):
        return tuple(make() for _ in range(rng.randint(0, most)))

    def maybe(value):
        return value if rng.random() < 0.7 else None

    return TaskContract(
        pipelines=some(lambda: awkward_text(rng)),
        env=maybe(awkward_text(rng)),
        node_pipelines=some(lambda: awkward_text(rng)),
        nodes=some(lambda: awkward_text(rng), most=4),
        run_id=maybe(awkward_text(rng)),
        job_name=maybe(awkward_text(rng)),
        root=maybe(awkward_text(rng)),
        params=some(lambda: TaskParam(awkward_text(rng, forbid="="), rng.choice(PARAM_TYPES), awkward_text(rng))),
        timeout=maybe(rng.choice([0.001, 1.0, 90.0, 2.5, 1e-7, 1e9, 3600.25])),
        host_aliases=some(lambda: HostAlias(
            awkward_text(rng, forbid="="), some(lambda: awkward_text(rng, allow_empty=False, forbid=","), most=3)
        )),
        exit_handler=rng.random() < 0.5,
        project_dir=maybe(awkward_text(rng)),
    )  # fmt: skip


def test_task_contract_carries_any_value_intact():
    import random
    from dataclasses import replace

    rng = random.Random(20240101)
    for _ in range(400):
        task = random_contract(rng)
        args = task.to_args()
        assert TaskContract.from_args(args) == task, args
        assert TaskContract.from_args(args, strict=False) == task
        # how the compiler renders each task from the job's shared contract
        other = random_contract(rng)
        changes = {"nodes": other.nodes, "timeout": other.timeout, "exit_handler": other.exit_handler}
        assert task.to_args(**changes) == replace(task, **changes).to_args()
    # the values that break `--option value` forms in particular
    task = TaskContract(nodes=("--help", "-rf", ""), run_id="-x", root="-", env="--node=y", job_name="",
                        params=(TaskParam("title", "STRING", "-draft"), TaskParam("a:b", "STRING", "=x=")),
                        host_aliases=(HostAlias("10.0.0.1", ("-h", "a=b")),))  # fmt: skip
    assert TaskContract.from_args(task.to_args()) == task
    assert task.runtime_params() == {"title": "-draft", "a:b": "=x="}


def test_a_string_parameter_starting_with_a_dash_reaches_the_task():
    spec = compile_(DIAMOND, request_args={"runtime_params": {"title": "-draft", "n": 3}})
    args = container(spec, "join")["args"]
    # what Vertex AI and the local backend do: substitute the value inside the arg string
    substituted = [arg.replace("{{$.inputs.parameters['title']}}", "-draft").replace(
        "{{$.inputs.parameters['n']}}", "3") for arg in args]  # fmt: skip
    assert TaskContract.from_args(substituted).runtime_params() == {"title": "-draft", "n": 3}


def test_a_parameter_name_holding_an_equals_sign_is_refused():
    with pytest.raises(PluginError) as caught:
        compile_(DIAMOND, request_args={"runtime_params": {"a=b": 1}})
    assert str(caught.value) == "--params 'a=b': a parameter name cannot contain '='; rename the parameter"


def test_bad_task_arguments_are_one_line_errors():
    for args, expected in (
        (["--param=NUMBER_INTEGER"], "--param=NUMBER_INTEGER: expected --param=TYPE:KEY=VALUE"),
        (["--param=FLOAT:x=1"], "--param x: unknown type 'FLOAT'"),
        (["--host-alias=10.0.0.1"], "--host-alias=10.0.0.1: expected --host-alias=IP=HOST1,HOST2"),
        (["--timeout=0"], "--timeout '0': expected a positive number of seconds"),
        (["--timeout=nan"], "--timeout 'nan': expected a positive number of seconds"),
        (["--node"], "--node: give a value, as --node=VALUE"),
        (["--bogus=1"], "unknown argument '--bogus=1'"),
        (["--exit-handler=yes"], "'--exit-handler=yes': --exit-handler takes no value"),
    ):
        with pytest.raises(PluginError) as caught:
            TaskContract.from_args(args)
        assert str(caught.value).startswith(expected), (args, str(caught.value))
        assert "\n" not in str(caught.value)


def test_no_shell_anywhere():
    spec = compile_(DIAMOND, request_args={"runtime_params": {"alpha": 1}})
    for executor in spec["deploymentSpec"]["executors"].values():
        c = executor["container"]
        assert c["command"][0] == "python"
        for word in c["command"] + c["args"]:
            assert word not in {"sh", "bash", "/bin/sh", "/bin/bash", "-c"}


def test_pipeline_name_comes_from_project_and_pipeline():
    spec = compile_(DIAMOND, request_args={"project_name": "Demo_Project", "pipeline_names": ("data_processing",)})
    assert spec["pipelineInfo"]["name"] == "demo-project-data-processing"
    spec = compile_(DIAMOND, description="Nightly model", request_args={"project_name": "demo_project"})
    assert spec["pipelineInfo"] == {"name": "demo-project", "description": "Nightly model"}


# ---------------------------------------------------------------------------------------------------------------
# per-node settings


RESOURCES = {
    "__default__": {"cpu": "1", "memory": "2Gi", "retries": 1},
    "train": {"cpu": "2", "memory": "8Gi", "timeout": "30m"},
    "gpu": {"gpu": 2, "accelerator": "NVIDIA_L4"},
    "right": {"cpu": "500m", "caching": True, "retries": {"max_retries": 4, "backoff": "1m", "backoff_factor": 3}},
}


def test_node_name_beats_tag_beats_default():
    spec = compile_(DIAMOND, resources=RESOURCES)
    split = container(spec, "split")["resources"]
    assert split == {"cpuLimit": 1.0, "resourceCpuLimit": "1", "memoryLimit": 2**31 / 1e9, "resourceMemoryLimit": "2Gi"}
    left = container(spec, "left")["resources"]
    assert (left["cpuLimit"], left["resourceMemoryLimit"]) == (2.0, "8Gi")
    right = container(spec, "right")["resources"]
    assert (right["cpuLimit"], right["resourceCpuLimit"], right["resourceMemoryLimit"]) == (0.5, "500m", "8Gi")
    assert right["accelerator"] == {
        "count": "2",
        "resourceCount": "2",
        "resourceType": "NVIDIA_L4",
        "type": "NVIDIA_L4",
    }
    assert "accelerator" not in left


def test_retries_caching_and_timeout_per_node():
    spec = compile_(DIAMOND, resources=RESOURCES, caching=False)
    tasks = dag_tasks(spec)
    assert tasks["split"]["retryPolicy"] == {
        "backoffDuration": "30s",
        "backoffFactor": 2.0,
        "backoffMaxDuration": "3600s",
        "maxRetryCount": 1,
    }
    assert tasks["right"]["retryPolicy"] == {
        "backoffDuration": "60s",
        "backoffFactor": 3.0,
        "backoffMaxDuration": "3600s",
        "maxRetryCount": 4,
    }
    assert tasks["right"]["cachingOptions"] == {"enableCache": True}
    assert tasks["left"]["cachingOptions"] == {"enableCache": False}
    assert contract(spec, "left").timeout == 1800
    assert contract(spec, "split").timeout is None


def test_no_retry_policy_without_retries_and_job_wide_defaults_apply():
    spec = compile_(DIAMOND, caching=True, timeout=90)
    task = dag_tasks(spec)["left"]
    assert "retryPolicy" not in task and task["cachingOptions"] == {"enableCache": True}
    assert contract(spec, "left").timeout == 90
    assert "resources" not in container(spec, "left")


def test_grouped_task_takes_the_most_of_every_setting():
    pipeline = Pipeline(
        [
            node(step, "a", "b", name="load", tags=["group.all"]),
            node(step, "b", "c", name="fit", tags=["group.all", "big"]),
        ]
    )
    resources = {
        "load": {"cpu": "3", "memory": "1Gi", "retries": 5, "timeout": 60, "caching": True},
        "big": {"cpu": "2500m", "memory": "16G", "gpu": 1, "accelerator": "NVIDIA_TESLA_T4", "timeout": "2h"},
    }
    spec = compile_(pipeline, grouping="tags", resources=resources, caching=True)
    (name,) = dag_tasks(spec)
    task = dag_tasks(spec)[name]
    res = container(spec, name)["resources"]
    assert (res["cpuLimit"], res["resourceCpuLimit"]) == (3.0, "3")
    assert (res["memoryLimit"], res["resourceMemoryLimit"]) == (16.0, "16G")
    assert res["accelerator"]["type"] == "NVIDIA_TESLA_T4"
    assert task["retryPolicy"]["maxRetryCount"] == 5
    assert task["cachingOptions"] == {"enableCache": True}
    assert contract(spec, name).timeout == 7200
    assert task["taskInfo"]["name"] == "all: load + fit"


def test_caching_in_a_group_only_if_every_node_allows_it():
    pipeline = Pipeline(
        [node(step, "a", "b", name="load", tags=["group.g"]), node(step, "b", "c", name="fit", tags=["group.g"])]
    )
    spec = compile_(pipeline, grouping="tags", caching=True, resources={"fit": {"caching": False}})
    (task,) = dag_tasks(spec).values()
    assert task["cachingOptions"] == {"enableCache": False}


def test_a_group_whose_nodes_need_different_images_is_an_error():
    pipeline = Pipeline(
        [node(step, "a", "b", name="load", tags=["group.g"]), node(step, "b", "c", name="fit", tags=["group.g"])]
    )
    with pytest.raises(PluginError) as error:
        compile_(pipeline, grouping="tags", resources={"fit": {"image": "other:1"}})
    message = str(error.value)
    assert "task group 'g'" in message and "other:1 for fit" in message and f"{IMAGE} for load" in message


def test_chains_keeps_nodes_with_their_own_settings_in_their_own_task():
    pipeline = Pipeline([node(step, "a", "b", name="load"), node(step, "b", "c", name="train")])
    assert len(dag_tasks(compile_(pipeline, grouping="chains"))) == 1
    spec = compile_(pipeline, grouping="chains", resources={"train": {"gpu": 1, "accelerator": "NVIDIA_L4"}})
    assert set(dag_tasks(spec)) == {"load", "train"}
    assert dag_tasks(spec)["train"]["dependentTasks"] == ["load"]


@pytest.mark.parametrize("grouping", ["makespan", "chains"])
def test_nodes_asking_for_different_cpu_or_memory_share_a_task_that_gets_the_most(grouping: str):
    pipeline = Pipeline([node(step, "a", "b", name="load"), node(step, "b", "c", name="train")])
    resources = {"__default__": {"cpu": 1, "memory": "2Gi"}, "train": {"cpu": 4, "memory": "8Gi"}}
    spec = compile_(pipeline, grouping=grouping, resources=resources)
    (name,) = dag_tasks(spec)
    res = container(spec, name)["resources"]
    assert (res["resourceCpuLimit"], res["resourceMemoryLimit"]) == ("4", "8Gi")
    # what changes how a task runs, not only its machine's size, still keeps a node apart
    for own in ({"retries": 2}, {"timeout": "30m"}, {"image": "other:1"}, {"caching": False}):
        spec = compile_(pipeline, grouping=grouping, caching=True, resources={**resources, "train": {"cpu": 4, **own}})
        assert set(dag_tasks(spec)) == {"load", "train"}, own


def test_gpu_without_accelerator_type_is_an_error():
    with pytest.raises(PluginError, match="node 'left' asks for gpu: 1 but no accelerator type"):
        compile_(DIAMOND, resources={"left": {"gpu": 1}})


# ---------------------------------------------------------------------------------------------------------------
# parameters


RUNTIME = {
    "alpha": 0.5,
    "epochs": 3,
    "debug": True,
    "name": "run",
    "features": ["a", "b"],
    "model": {"depth": 4, "opts": {"x": None}},
    "Learning-Rate": 1,
}


def test_runtime_params_become_typed_pipeline_parameters_with_defaults():
    spec = compile_(DIAMOND, request_args={"runtime_params": RUNTIME})
    definitions = spec["root"]["inputDefinitions"]["parameters"]
    assert {name: (d["parameterType"], d["defaultValue"]) for name, d in definitions.items()} == {
        "alpha": ("NUMBER_DOUBLE", 0.5),
        "epochs": ("NUMBER_INTEGER", 3),
        "debug": ("BOOLEAN", True),
        "name": ("STRING", "run"),
        "features": ("LIST", ["a", "b"]),
        "model": ("STRUCT", {"depth": 4, "opts": {"x": None}}),
        "learning_rate": ("NUMBER_INTEGER", 1),
    }
    for name, task in dag_tasks(spec).items():
        assert task["inputs"]["parameters"] == {p: {"componentInputParameter": p} for p in definitions}
        component_inputs = spec["components"][f"comp-{name}"]["inputDefinitions"]["parameters"]
        assert component_inputs == {p: {"parameterType": d["parameterType"]} for p, d in definitions.items()}
        params = contract(spec, name).params
        assert TaskParam("Learning-Rate", "NUMBER_INTEGER", "{{$.inputs.parameters['learning_rate']}}") in params
        assert TaskParam("model", "STRUCT", "{{$.inputs.parameters['model']}}") in params
        assert len(params) == len(RUNTIME)


def test_project_parameters_are_not_copied_into_the_spec():
    spec = compile_(DIAMOND)  # `join` reads params:alpha, but only --params become pipeline parameters
    assert "inputDefinitions" not in spec["root"]
    assert contract(spec, "join").params == ()
    assert "inputs" not in dag_tasks(spec)["join"]


def test_parameter_names_that_sanitise_alike_get_distinct_names():
    spec = compile_(DIAMOND, request_args={"runtime_params": {"a-b": 1, "a_b": 2, "A.B": 3, "1x": 4}})
    names = spec["root"]["inputDefinitions"]["parameters"]
    assert sorted(names) == ["a_b", "a_b_2", "a_b_3", "p_1x"]
    assert TaskParam("A.B", "NUMBER_INTEGER", "{{$.inputs.parameters['a_b']}}") in contract(spec, "split").params


def test_a_null_runtime_param_reaches_every_task_as_none_without_a_pipeline_parameter():
    spec = compile_(DIAMOND, request_args={"runtime_params": {"gone": None, "kept": 2}})
    assert sorted(spec["root"]["inputDefinitions"]["parameters"]) == ["kept"]
    task = contract(spec, "split")
    assert TaskParam("gone", "NULL", "") in task.params
    assert [param.value() for param in task.params if param.key == "gone"] == [None]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(math.nan, "--params bad: nan is not a finite number"), ({1: 2}, "key 1")],
)
def test_unusable_runtime_params_are_one_line_errors(value, fragment):
    with pytest.raises(PluginError) as error:
        compile_(DIAMOND, request_args={"runtime_params": {"bad": value}})
    assert fragment in str(error.value)


# ---------------------------------------------------------------------------------------------------------------
# exit handler


def test_caching_never_skips_a_task_whose_per_run_outputs_other_tasks_read(capsys):
    """A cached task does not run, so it would not store its undeclared outputs under the new job's run id: such a
    task is compiled uncached, with one warning; a task whose shared outputs are all in the catalog stays cached.
    The exit handler is never cached: it must run after every execution."""
    on_exit = Pipeline([node(step, "params:title", None, name="notify")])
    declared = frozenset({"raw", "l", "out"})  # r, l2, r2 are undeclared
    spec = compile_(
        DIAMOND, caching=True, on_exit_pipeline="notify", request_args={"declared": declared, "on_exit": on_exit}
    )
    tasks = dag_tasks(spec)
    cached = {name: task["cachingOptions"]["enableCache"] for name, task in tasks.items()}
    assert cached == {"split": False, "left": False, "right": False, "join": True}
    assert spec["root"]["dag"]["tasks"]["on-exit-notify"]["cachingOptions"] == {"enableCache": False}
    (warning,) = capsys.readouterr().err.strip().splitlines()
    assert warning.startswith("Warning: caching is off for task ") and "and 2 more" in warning
    # everything shared is declared: every task may be cached; unknown catalog (None): the configured value
    for known in (frozenset({"raw", "l", "r", "l2", "r2", "out"}), None):
        spec = compile_(DIAMOND, caching=True, request_args={"declared": known})
        assert {t["cachingOptions"]["enableCache"] for t in dag_tasks(spec).values()} == {True}
    assert capsys.readouterr().err == ""


def test_per_run_catalog_paths_and_memory_datasets_are_never_cached(capsys):
    """A declared dataset whose catalog entry uses ${vertex:run_id} lives under a per-run path: its producer is
    compiled uncached even if nobody else reads it; a declared MemoryDataset crossing tasks is stored per run like
    an undeclared one (uncached producer, plus one warning naming it and both tasks)."""
    everything = frozenset({"raw", "l", "r", "l2", "r2", "out"})
    spec = compile_(DIAMOND, caching=True, request_args={"declared": everything, "per_run": frozenset({"out"})})
    cached = {name: task["cachingOptions"]["enableCache"] for name, task in dag_tasks(spec).items()}
    assert cached == {"split": True, "left": True, "right": True, "join": False}
    (warning,) = capsys.readouterr().err.strip().splitlines()
    assert warning.startswith(
        "Warning: caching is off for task 'join': its output 'out' is stored under a per-run "
        "path (its catalog entry uses ${vertex:run_id} or ${vertex:job_name})"
    )

    spec = compile_(DIAMOND, caching=True, request_args={"declared": everything, "in_memory": frozenset({"l2"})})
    cached = {name: task["cachingOptions"]["enableCache"] for name, task in dag_tasks(spec).items()}
    assert cached == {"split": True, "left": False, "right": True, "join": True}
    memory, caching = capsys.readouterr().err.strip().splitlines()
    assert memory == (
        "Warning: dataset 'l2' is declared as a MemoryDataset, but task 'left' writes it and task 'join' reads it: "
        "it is stored under <root>/<run id>/ like an undeclared dataset; declare a persistent type for it in the "
        "catalog, or group the nodes into one task (run_config.grouping)"
    )
    assert caching.startswith(
        "Warning: caching is off for task 'left': its output 'l2' is read by other tasks and "
        "stored per run (it is declared as a memory dataset)"
    )
    # in one task, the memory dataset never leaves memory: no warning, cached
    chain = Pipeline([node(step, "raw", "m", name="first"), node(step, "m", "end", name="second")])
    spec = compile_(
        chain,
        grouping="chains",
        caching=True,
        request_args={"declared": frozenset({"raw", "m", "end"}), "in_memory": frozenset({"m"})},
    )
    assert [task["cachingOptions"]["enableCache"] for task in dag_tasks(spec).values()] == [True]
    assert capsys.readouterr().err == ""


def test_on_exit_pipeline_runs_as_an_exit_handler():
    on_exit = Pipeline([node(step, "params:title", None, name="notify"), node(step, "params:x", None, name="alert")])
    spec = compile_(
        DIAMOND,
        on_exit_pipeline="notify_pipeline",
        request_args={"on_exit": on_exit, "runtime_params": {"alpha": 1.0}, "env": "prod"},
    )
    root = spec["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "on-exit-notify-pipeline"}
    handler = root["exit-handler-1"]
    assert handler["componentRef"] == {"name": "comp-exit-handler-1"}
    assert handler["inputs"]["parameters"] == {"alpha": {"componentInputParameter": "alpha"}}
    sub = spec["components"]["comp-exit-handler-1"]
    assert set(sub["dag"]["tasks"]) == {"split", "left", "right", "join"}
    assert sub["inputDefinitions"]["parameters"] == {"alpha": {"parameterType": "NUMBER_DOUBLE"}}
    exit_task = root["on-exit-notify-pipeline"]
    assert exit_task["dependentTasks"] == ["exit-handler-1"]
    assert exit_task["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert exit_task["taskInfo"]["name"] == "on exit: alert + notify"
    args = container(spec, "on-exit-notify-pipeline")["args"]
    exit_contract = contract(spec, "on-exit-notify-pipeline")
    assert exit_contract.pipelines == ("notify_pipeline",)
    assert exit_contract.env == "prod"
    assert exit_contract.nodes == ("alert", "notify")
    assert args[-2:] == ["--exit-handler", "--final-status={{$.inputs.parameters['status']}}"]
    assert exit_contract.exit_handler
    for name in sub["dag"]["tasks"]:
        assert not contract(spec, name).exit_handler


def test_without_on_exit_pipeline_tasks_sit_in_the_root_dag():
    spec = compile_(DIAMOND)
    assert "exit-handler-1" not in spec["root"]["dag"]["tasks"]
    assert "comp-exit-handler-1" not in spec["components"]


# ---------------------------------------------------------------------------------------------------------------
# the job's ids on an engine that substitutes them only in task inputs (Kubeflow Pipelines)


def on_backend(config, backend):
    """``config`` as run on ``backend`` (the compiler reads the backend from run_config.backend)."""
    return config.model_copy(update={"run_config": config.run_config.model_copy(update={"backend": backend})})


def compile_for(backend, pipeline, request_args=None, grouping="none", **run_config):
    config = on_backend(make_config(grouping=grouping, **run_config), backend)
    return compile_spec(CompileRequest(pipeline=pipeline, config=config, **(request_args or {})))


JOB_IDS = {
    "job_uuid": {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}},
    "job_name": {"runtimeValue": {"constant": "{{$.pipeline_job_name}}"}},
}
EXIT_AND_PARAMS = {
    "on_exit_pipeline": "notify",
    "request_args": {
        "on_exit": Pipeline([node(step, "params:title", None, name="notify")]),
        "runtime_params": {"alpha": 0.5, "job_uuid": "mine"},
    },
}


def container_tasks(spec):
    """Every task that runs a container, with its DAG: the normal ones and the exit task."""
    root = spec["root"]["dag"]["tasks"]
    found = {name: task for name, task in dag_tasks(spec).items()}
    found.update({name: task for name, task in root.items() if name != "exit-handler-1"})
    return found


def test_a_kubeflow_spec_passes_the_job_ids_as_task_inputs_never_inside_args():
    spec = compile_for("kubeflow", DIAMOND, **EXIT_AND_PARAMS)
    tasks = container_tasks(spec)
    assert set(tasks) == {"split", "left", "right", "join", "on-exit-notify"}
    for name, task in tasks.items():
        inputs = task["inputs"]["parameters"]
        assert {key: inputs[key] for key in JOB_IDS} == JOB_IDS
        # the user's own `job_uuid` parameter keeps its value under another name
        assert inputs["alpha"] == {"componentInputParameter": "alpha"}
        assert inputs["job_uuid_2"] == {"componentInputParameter": "job_uuid_2"}
        definitions = spec["components"][f"comp-{name}"]["inputDefinitions"]["parameters"]
        assert definitions["job_uuid"] == definitions["job_name"] == {"parameterType": "STRING"}
        c = container(spec, name)
        assert not any("{{$.pipeline_job_" in item for item in c["args"] + [e["value"] for e in c["env"]])
        task_contract = contract(spec, name)
        assert task_contract.run_id == "{{$.inputs.parameters['job_uuid']}}"
        assert task_contract.job_name == "{{$.inputs.parameters['job_name']}}"
        assert TaskParam("job_uuid", "STRING", "{{$.inputs.parameters['job_uuid_2']}}") in task_contract.params
    assert spec["root"]["inputDefinitions"]["parameters"]["job_uuid_2"]["defaultValue"] == "mine"
    # the pipeline's own parameters stay pipeline parameters: the job ids are no input of the job
    assert "job_uuid" not in spec["components"]["comp-exit-handler-1"]["inputDefinitions"]["parameters"]
    _parse_with_kfp(spec)


def test_the_vertex_and_local_specs_keep_the_job_ids_inside_the_args():
    vertex = compile_for("vertex", DIAMOND, **EXIT_AND_PARAMS)
    assert compile_for("local", DIAMOND, **EXIT_AND_PARAMS) == vertex
    kubeflow = compile_for("kubeflow", DIAMOND, **EXIT_AND_PARAMS)
    for name, task in container_tasks(vertex).items():
        assert contract(vertex, name).run_id == "{{$.pipeline_job_uuid}}"
        assert contract(vertex, name).job_name == "{{$.pipeline_job_name}}"
        sources = task["inputs"]["parameters"].values()  # the params, and the exit task's final status
        assert all("componentInputParameter" in source or "taskFinalStatus" in source for source in sources)
    # the two forms differ only in how the ids reach the tasks
    for name, task in container_tasks(kubeflow).items():
        for key in JOB_IDS:
            task["inputs"]["parameters"].pop(key)
            kubeflow["components"][f"comp-{name}"]["inputDefinitions"]["parameters"].pop(key)
    text = json.dumps(kubeflow).replace("{{$.inputs.parameters['job_uuid']}}", "{{$.pipeline_job_uuid}}")
    text = text.replace("{{$.inputs.parameters['job_name']}}", "{{$.pipeline_job_name}}")
    assert json.loads(text.replace("job_uuid_2", "job_uuid")) == vertex


def test_a_kubeflow_spec_without_runtime_params_still_gives_every_task_the_job_ids():
    spec = compile_for("kubeflow", DIAMOND)
    assert "inputDefinitions" not in spec["root"]
    for name, task in container_tasks(spec).items():
        assert task["inputs"]["parameters"] == JOB_IDS
        assert contract(spec, name).params == ()


def test_s3_credentials_in_run_config_env_are_refused_and_the_endpoint_is_kept():
    endpoint = {"AWS_ENDPOINT_URL": "http://minio.kubeflow:9000"}
    spec = compile_for("kubeflow", DIAMOND, env=endpoint, request_args={"extra_env": endpoint})
    assert {"name": "AWS_ENDPOINT_URL", "value": "http://minio.kubeflow:9000"} in container(spec, "join")["env"]
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        env = {**endpoint, name: "minio123"}
        with pytest.raises(PluginError, match=f"^vertexai.yml: run_config.env.{name}: looks like a secret"):
            compile_for("kubeflow", DIAMOND, env=env, request_args={"extra_env": env})


# ---------------------------------------------------------------------------------------------------------------
# validity, determinism, safety


def _parse_with_kfp(spec):
    from google.protobuf.json_format import ParseDict
    from kfp.pipeline_spec import pipeline_spec_pb2

    return ParseDict(spec, pipeline_spec_pb2.PipelineSpec())


def test_kfp_parses_the_spec():
    on_exit = Pipeline([node(step, "params:title", None, name="notify")])
    spec = compile_(
        DIAMOND,
        grouping="chains",
        resources=RESOURCES,
        on_exit_pipeline="notify",
        network={"host_aliases": [{"ip": "10.0.0.1", "hostnames": ["h"]}]},
        request_args={"on_exit": on_exit, "runtime_params": RUNTIME, "commit_id": "c0ffee"},
    )
    parsed = _parse_with_kfp(spec)
    assert parsed.pipeline_info.name == "kedro-pipeline"
    assert parsed.root.input_definitions.parameters["model"].default_value.struct_value["depth"] == 4
    executor = parsed.deployment_spec.fields["executors"].struct_value["exec-right"]
    assert executor["container"]["resources"]["accelerator"]["count"] == "2"


def test_same_inputs_give_byte_identical_files(tmp_path):
    def build():
        pipeline = Pipeline(
            [node(step, f"d{i}", f"d{i + 1}", name=f"n{i}", tags=[f"t{i % 3}"]) for i in range(30)]
            + [node(step, "d3", "side", name="side")]
        )
        return compile_(pipeline, grouping="chains", resources=RESOURCES, request_args={"runtime_params": RUNTIME})

    for suffix in (".json", ".yaml"):
        first = write_spec(build(), tmp_path / f"a{suffix}").read_bytes()
        second = write_spec(build(), tmp_path / f"b{suffix}").read_bytes()
        assert first == second and first.endswith(b"\n")
    text = (tmp_path / "a.json").read_text()
    assert json.loads(text) == build()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


DETERMINISM_SCRIPT = """
import hashlib, json, warnings
from kedro.pipeline import Pipeline, node
from kedro_vertex_runner.compiler import CompileRequest, compile_spec
from kedro_vertex_runner.config import validate_config

warnings.simplefilter("ignore")

def f(*a):
    return 1

# three namespaced branches (a chain each, with side nodes fanning out), joined at the end
nodes = []
for b in range(3):
    for i in range(8):
        tags = {f"t{i % 4}", f"group.g{b}", "zeta", "alpha"}
        nodes.append(node(f, f"b{b}_d{i}", f"b{b}_d{i + 1}", name=f"n{i}", tags=tags, namespace=f"ns{b}"))
        if i % 3 == 1:
            nodes.append(node(f, f"b{b}_d{i}", f"b{b}_side{i}", name=f"side_{b}_{i}", tags={"zeta", "beta"}))
nodes.append(node(f, [f"b{b}_d8" for b in range(3)], "out", name="join", tags={"alpha", "beta"}))
cyclic = Pipeline([node(f, "x", "y", name="a", tags={"group.g"}), node(f, "y", "z", name="mid"),
                   node(f, "z", "w", name="b", tags={"group.g"})])
for mode, pipeline in [(m, Pipeline(nodes)) for m in ("none", "chains", "namespace", "tags")] + [("tags", cyclic)]:
    config = validate_config({"project_id": "proj-1", "region": "europe-west1", "run_config": {
        "image": "img:1", "root": "b/r", "grouping": mode, "labels": {"b": "1", "a": "2"},
        "env": {"Z_VAR": "1", "A_VAR": "2"},
        "resources": {"t1": {"cpu": 2}, "alpha": {"memory": "1Gi"}, "zeta": {"memory": "2Gi"}}}})
    try:
        spec = compile_spec(CompileRequest(pipeline=pipeline, config=config, runtime_params={
            "z": {"b": 1, "a": [3, 2]}, "a": 1.5, "m": "x"}, extra_env={"KEDRO_CONFIG_Y": "1", "KEDRO_CONFIG_B": "2"}))
        text = json.dumps(spec)  # insertion order counts too: it is what a YAML dump or a reader shows
        tasks = len(spec["deploymentSpec"]["executors"])
    except Exception as exc:
        text, tasks = f"{type(exc).__name__}: {exc}", "error"
    print(mode, tasks, hashlib.sha256(text.encode()).hexdigest())
"""


def test_same_inputs_give_the_same_spec_in_processes_with_different_hash_seeds():
    """Set iteration order changes between interpreter runs: the spec (even its key order) must not."""
    import os
    import subprocess
    import sys

    outputs = []
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", DETERMINISM_SCRIPT], env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    modes = [line.split()[:2] for line in outputs[0].splitlines()]
    assert modes == [["none", "34"], ["chains", "22"], ["namespace", "13"], ["tags", "13"], ["tags", "error"]]
    assert outputs[0] == outputs[1] == outputs[2]


def test_yaml_output_loads_back_to_the_same_spec(tmp_path):
    import yaml

    spec = compile_(DIAMOND, request_args={"runtime_params": RUNTIME})
    path = write_spec(spec, tmp_path / "pipeline.yml")
    text = path.read_text()
    assert "&id" not in text and yaml.safe_load(text) == spec


def test_secrets_in_the_environment_never_reach_the_spec(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-SECRET-123")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "sa-key-SECRET.json"))
    spec = compile_(DIAMOND, request_args={"runtime_params": {"alpha": 1}})
    text = json.dumps(spec)
    assert "SECRET" not in text and "MLFLOW_TRACKING_TOKEN" not in text and "GOOGLE_APPLICATION" not in text


@pytest.mark.parametrize("name", ["MLFLOW_TRACKING_TOKEN", "DB_PASSWORD", "KEDRO_CONFIG_API_KEY", "AWS_SECRET"])
def test_secret_looking_task_env_is_refused(name):
    with pytest.raises(PluginError, match=f"environment variable {name}: looks like a secret"):
        compile_(DIAMOND, request_args={"extra_env": {name: "x"}})


@pytest.mark.parametrize(
    ("params", "where", "reason"),
    [
        ({"db_password": "hunter2"}, "--params db_password", "its name contains 'PASSW'"),
        ({"api_token": "hunter2"}, "--params api_token", "its name contains 'TOKEN'"),
        ({"model": {"pwd": "hunter2"}}, "--params model.pwd", "its name contains 'PWD'"),
        (
            {"source": "https://me:hunter2@example.com/data"},
            "--params source",
            "its value looks like a URL with a password",
        ),
        (
            {"keys": ["-----BEGIN OPENSSH PRIVATE KEY----- hunter2"]},
            "--params keys[0]",
            "its value looks like a private key",
        ),
    ],
)
def test_secret_looking_runtime_params_are_refused_without_echoing_them(params, where, reason):
    with pytest.raises(PluginError) as info:
        compile_(DIAMOND, request_args={"runtime_params": params})
    message = str(info.value)
    assert message.startswith(f"{where}: looks like a secret ({reason}) and must never be stored in the compiled")
    assert "Secret Manager" in message and "hunter2" not in message


def test_secret_looking_env_value_is_refused():
    with pytest.raises(PluginError, match=r"^environment variable KEDRO_CONFIG_DB: looks like a secret \(its value"):
        compile_(DIAMOND, request_args={"extra_env": {"KEDRO_CONFIG_DB": "mysql://root:hunter2@db/x"}})


@pytest.mark.parametrize("umask", [0o077, 0o002])
def test_written_spec_honours_the_umask(tmp_path, umask):
    import os

    previous = os.umask(umask)
    try:
        path = write_spec(compile_(DIAMOND), tmp_path / f"pipeline-{umask:o}.json")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_empty_pipeline_is_an_error():
    with pytest.raises(PluginError, match="has no nodes to compile"):
        compile_(Pipeline([]))


def test_unwritable_output_path_is_an_error_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = blocker / "pipeline.json"
    with pytest.raises(PluginError, match=f"cannot write the compiled pipeline to '{target}'"):
        write_spec(compile_(DIAMOND), target)
    with pytest.raises(PluginError, match=re.escape("unknown suffix '.txt'; use .json, .yaml or .yml")):
        write_spec(compile_(DIAMOND), tmp_path / "pipeline.txt")
    directory = tmp_path / "dir.json"
    directory.mkdir()
    with pytest.raises(PluginError, match=re.escape("dir.json")):
        write_spec(compile_(DIAMOND), directory)


def test_compiling_does_not_import_kfp():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from kedro.pipeline import Pipeline, node\n"
        "from kedro_vertex_runner.compiler import CompileRequest, compile_spec\n"
        "from kedro_vertex_runner.config import validate_config\n"
        "cfg = validate_config({'project_id': 'proj-1', 'region': 'europe-west1', "
        "'run_config': {'image': 'i', 'root': 'b/r'}})\n"
        "compile_spec(CompileRequest(pipeline=Pipeline([node(len, 'a', 'b', name='n')]), config=cfg))\n"
        "print(sorted(m for m in sys.modules if m == 'kfp' or m.startswith(('kfp.', 'google.cloud.aiplatform'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_mlflow_tracking_tells_every_task_about_the_shared_run():
    from kedro_vertex_runner.task.mlflow_run import task_key

    on_exit = Pipeline([node(step, "params:title", None, name="notify")])
    spec = compile_(DIAMOND, on_exit_pipeline="notify", request_args={"mlflow": True, "on_exit": on_exit})
    envs = [
        {item["name"]: item["value"] for item in executor["container"]["env"]}
        for executor in spec["deploymentSpec"]["executors"].values()
    ]
    assert len(envs) == 5
    for env in envs:
        assert env["KEDRO_VERTEX_MLFLOW"] == "1"
        assert env["KEDRO_VERTEX_MLFLOW_TASKS"] == "4"  # the exit task is not counted
        assert env["KEDRO_VERTEX_MLFLOW_CREATOR"] == task_key(["split"])
        assert env["KEDRO_VERTEX_MLFLOW_FINALIZER"] == "exit-handler"
    assert "KEDRO_VERTEX_MLFLOW" not in json.dumps(compile_(DIAMOND))


def test_task_is_pointed_at_the_smallest_registered_pipeline_holding_its_nodes():
    registered = {
        "__default__": frozenset({"split", "left", "right", "join"}),
        "prep": frozenset({"split"}),
        "sides": frozenset({"left", "right"}),
        "left_only": frozenset({"left"}),
    }
    spec = compile_(DIAMOND, request_args={"registered": registered})

    def node_pipeline(node_name):
        return contract(spec, task_by_node(spec, node_name)).node_pipelines

    assert node_pipeline("split") == ("prep",)
    assert node_pipeline("left") == ("left_only",)  # smallest of sides/left_only
    assert node_pipeline("right") == ("sides",)
    assert node_pipeline("join") == ()  # only the job's own pipeline holds it


def test_no_node_pipeline_when_the_jobs_pipeline_is_not_registered():
    spec = compile_(DIAMOND, request_args={"registered": {"prep": frozenset({"split"})}})
    assert "--node-pipeline" not in json.dumps(spec)


def test_makespan_grouping_uses_the_last_local_runs_node_times(tmp_path):
    from kedro_vertex_runner.compiler import explain
    from kedro_vertex_runner.project import recorded_durations
    from kedro_vertex_runner.task.timings import record_task

    fork = Pipeline(
        [
            node(step, "raw", "a", name="prepare"),
            node(step, "a", "b", name="train_big"),
            node(step, "a", "c", name="train_other"),
        ]
    )
    # tasks that run their nodes one after another (a task running them side by side is tests/test_task_runners.py)
    config = make_config(grouping="makespan", root="data/vertex_runs", task_runner="sequential")
    # no timings yet: three 10 s nodes are cheaper in one task than in three
    assert len(dag_tasks(compile_spec(CompileRequest(pipeline=fork, config=config)))) == 1

    record_task(str(tmp_path / "data" / "vertex_runs"), "local-1", ["__default__"], {"prepare": 2.0})
    record_task(str(tmp_path / "data" / "vertex_runs"), "local-1", ["__default__"], {"train_big": 900.0})
    record_task(str(tmp_path / "data" / "vertex_runs"), "local-1", ["__default__"], {"train_other": 800.0})
    durations = recorded_durations(tmp_path, config, ("__default__",))
    assert durations == {"prepare": 2.0, "train_big": 900.0, "train_other": 800.0}
    request = CompileRequest(pipeline=fork, config=config, durations=durations)
    # two long trainings: each gets its own task and they run side by side
    assert len(dag_tasks(compile_spec(request))) == 3
    reports = {r.mode: r for r in explain(request)}
    assert next(iter(reports)) == "makespan" and reports["makespan"].estimate.measured == 3
    assert reports["makespan"].estimate.makespan == 2 * 120 + 2 + 900
    assert reports["chains"].estimate.tasks == 3

    ignored = make_config(
        grouping="makespan", root="data/vertex_runs", task_runner="sequential", grouping_options={"use_timings": False}
    )
    assert recorded_durations(tmp_path, ignored, ("__default__",)) == {}
    request = CompileRequest(pipeline=fork, config=ignored, durations=durations)
    assert len(dag_tasks(compile_spec(request))) == 1
