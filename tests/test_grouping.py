"""Which nodes share a task in each ``run_config.grouping`` mode, which groupings are refused, and how close
``makespan`` comes to the exact optimum of its cost model."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from kedro.pipeline import Pipeline, node

from kedro_vertex_runner.compiler.grouping import (
    SAME_ESTIMATE,
    CostModel,
    _build_groups,
    estimate,
    group_nodes,
    optimal_key_of,
)
from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.task.timings import last_run_durations, record_task


def step(*values):
    return 1


def two(*values):
    return 1, 2


def shape(groups):
    """``{group key: ([node names], [dependency keys])}`` — easy to compare."""
    return {g.key: (g.node_names, list(g.dependencies)) for g in groups}


LINEAR = Pipeline(
    [
        node(step, "raw", "a", name="load"),
        node(step, "a", "b", name="clean"),
        node(step, "b", "c", name="train"),
    ]
)

DIAMOND = Pipeline(
    [
        node(two, "raw", ["l", "r"], name="split"),
        node(step, "l", "l2", name="left"),
        node(step, "r", "r2", name="right"),
        node(step, ["l2", "r2"], "out", name="join"),
    ]
)


def test_none_gives_one_group_per_node_with_graph_dependencies():
    assert shape(group_nodes(DIAMOND, "none")) == {
        "split": (["split"], []),
        "left": (["left"], ["split"]),
        "right": (["right"], ["split"]),
        "join": (["join"], ["left", "right"]),
    }


def test_chains_fuses_a_linear_pipeline_into_one_group_in_run_order():
    assert shape(group_nodes(LINEAR, "chains")) == {"load": (["load", "clean", "train"], [])}


def test_chains_never_fuses_across_a_diamond():
    # split has two consumers and join two producers: fusing anything would serialise left and right
    assert shape(group_nodes(DIAMOND, "chains")) == shape(group_nodes(DIAMOND, "none"))


def test_chains_fuses_branch_tails_but_keeps_branches_parallel():
    pipeline = DIAMOND + Pipeline([node(step, "l2", "l3", name="left_more"), node(step, "l3", "l4", name="left_last")])
    # left now has two consumers (join, left_more); left_more → left_last is an exclusive chain
    groups = shape(group_nodes(pipeline, "chains"))
    assert groups["left_more"] == (["left_more", "left_last"], ["left"])
    assert groups["right"] == (["right"], ["split"])
    assert len(groups) == 5


def test_chains_respects_the_fusable_callback():
    groups = group_nodes(LINEAR, "chains", fusable=lambda parent, child: child.name != "train")
    assert shape(groups) == {"load": (["load", "clean"], []), "train": (["train"], ["load"])}


def test_namespace_uses_the_top_level_namespace():
    inner = Pipeline(
        [node(step, "x", "y", name="prep"), node(step, "y", "z", name="fit")],
        namespace="model",
        inputs={"x"},
        outputs={"z"},
    )
    pipeline = Pipeline([node(step, "raw", "x", name="load")]) + inner + Pipeline([node(step, "z", "r", name="report")])
    assert shape(group_nodes(pipeline, "namespace")) == {
        "load": (["load"], []),
        "model": (["model.prep", "model.fit"], ["load"]),
        "report": (["report"], ["model"]),
    }


def test_namespace_grouping_that_would_form_a_cycle_is_rejected():
    pipeline = Pipeline(
        [
            node(step, "raw", "a", name="first", namespace="ns"),
            node(step, "a", "b", name="outside"),
            node(step, "b", "c", name="second", namespace="ns"),
        ]
    )
    with pytest.raises(PluginError) as error:
        group_nodes(pipeline, "namespace")
    message = str(error.value)
    assert "cycle" in message and "ns (ns.first, ns.second)" in message and "outside" in message
    assert "\n" not in message


def test_tags_group_nodes_by_group_tag_and_leave_the_rest_alone():
    pipeline = Pipeline(
        [
            node(step, "raw", "a", name="load", tags=["group.prep"]),
            node(step, "a", "b", name="clean", tags=["group.prep", "other"]),
            node(step, "b", "c", name="train", tags=["group.fit"]),
            node(step, "c", "d", name="report"),
        ]
    )
    groups = group_nodes(pipeline, "tags")
    assert shape(groups) == {
        "group.prep": (["load", "clean"], []),
        "group.fit": (["train"], ["group.prep"]),
        "report": (["report"], ["group.fit"]),
    }
    assert [g.name for g in groups] == ["prep", "fit", "report"]


def test_tag_group_that_would_form_a_cycle_names_the_nodes():
    pipeline = Pipeline(
        [
            node(step, "raw", "a", name="load", tags=["group.io"]),
            node(step, "a", "b", name="transform"),
            node(step, "b", "c", name="save", tags=["group.io"]),
        ]
    )
    with pytest.raises(PluginError) as error:
        group_nodes(pipeline, "tags")
    message = str(error.value)
    assert message.startswith("run_config.grouping:")
    assert "group.io (load, save) -> transform -> group.io (load, save)" in message


def test_a_node_with_two_group_tags_is_rejected():
    pipeline = Pipeline([node(step, "raw", "a", name="load", tags=["group.a", "group.b"])])
    with pytest.raises(PluginError, match=r"node 'load' has several group tags \(group.a, group.b\)"):
        group_nodes(pipeline, "tags")


def test_unknown_mode_is_rejected():
    with pytest.raises(PluginError, match="unknown mode 'layers'"):
        group_nodes(LINEAR, "layers")


@pytest.mark.parametrize("mode", ["none", "chains", "namespace", "tags"])
def test_groups_come_in_dependency_order(mode):
    pipeline = DIAMOND + LINEAR
    groups = group_nodes(pipeline, mode)
    seen: set[str] = set()
    for group in groups:
        assert set(group.dependencies) <= seen
        seen.add(group.key)
    assert sorted(n for g in groups for n in g.node_names) == sorted(n.name for n in pipeline.nodes)


# ---------------------------------------------------------------------------------------------------------------
# makespan: the default grouping, under the cost model (task start-up + its nodes' run times)


def graph(edges: dict[str, list[str]], settings: dict[str, str] | None = None) -> Pipeline:
    """``{node: [producers]}`` as a pipeline: each node writes its own dataset; ``settings`` tags nodes."""
    return Pipeline(
        [
            node(
                step,
                [f"d_{p}" for p in producers] or ["raw"],
                f"d_{name}",
                name=name,
                tags=[(settings or {}).get(name, "std")],
            )
            for name, producers in edges.items()
        ]
    )


def by_tag(a, b):
    return a.tags == b.tags


def model(**durations: float) -> CostModel:
    return CostModel(task_startup=120.0, node_duration=10.0, durations=durations)


def groups_of(pipeline, cost, fusable=None):
    return sorted(sorted(g.node_names) for g in group_nodes(pipeline, "makespan", fusable=fusable, model=cost))


def test_makespan_is_the_default_and_puts_a_serial_pipeline_into_one_task():
    groups = group_nodes(LINEAR)
    assert shape(groups) == {"load": (["load", "clean", "train"], [])}
    assert estimate(groups, CostModel()).makespan == 120 + 3 * 10


def test_makespan_merges_a_diamond_of_short_nodes_that_chains_keeps_apart():
    cost = model()
    assert len(group_nodes(DIAMOND, "chains")) == 4
    groups = group_nodes(DIAMOND, model=cost)
    assert shape(groups) == {"split": (["split", "left", "right", "join"], [])}
    assert estimate(groups, cost).makespan == 160


def test_makespan_keeps_long_branches_parallel_and_short_ones_together():
    pipeline = graph({"root": [], "h1": ["root"], "h2": ["root"], "l1": ["root"], "l2": ["root"], "l3": ["root"]})
    cost = model(root=10, h1=1000, h2=1000, l1=5, l2=5, l3=5)
    # the optimum: root alone (its readers start early), each long branch in its own task, the short ones in one
    assert groups_of(pipeline, cost) == [["h1"], ["h2"], ["l1", "l2", "l3"], ["root"]]
    found = estimate(group_nodes(pipeline, model=cost), cost)
    assert (found.makespan, found.tasks) == optimal_key_of(pipeline, model=cost)[:2] == (1250, 4)
    assert found.critical_path in (("root", "h1"), ("root", "h2"))


def test_makespan_breaks_a_chain_where_a_long_side_branch_would_wait_for_it():
    pipeline = graph({"a": [], "b": ["a"], "c": ["b"], "side": ["a"]})
    cost = model(a=10, b=600, c=600, side=900)
    # one task would take 120 + 2110 s, and the side branch cannot wait for the whole chain: the chain is cut
    # right after `a`, which both readers need
    assert groups_of(pipeline, cost) == [["a"], ["b", "c"], ["side"]]
    found = estimate(group_nodes(pipeline, model=cost), cost)
    assert (found.makespan, found.tasks) == optimal_key_of(pipeline, model=cost)[:2] == (1450, 3)


def test_makespan_never_shares_a_task_between_nodes_with_different_settings():
    pipeline = graph({"load": [], "train": ["load"], "report": ["train"]}, settings={"train": "gpu"})
    assert groups_of(pipeline, model(), by_tag) == [["load"], ["report"], ["train"]]


def random_pipeline(rng: random.Random, size: int) -> tuple[Pipeline, CostModel]:
    edges = {}
    for i in range(size):
        earlier = list(edges)[-6:]
        edges[f"n{i:02d}"] = sorted(rng.sample(earlier, min(len(earlier), rng.randint(0, 3))))
    settings = {name: rng.choice(["std", "std", "std", "big"]) for name in edges}
    durations = {name: float(rng.choice([1, 5, 20, 60, 300, 1200])) for name in edges}
    return graph(edges, settings), model(**durations)


@pytest.mark.parametrize("seed", range(40))
def test_makespan_groups_are_valid_and_never_slower_than_chains(seed):
    rng = random.Random(seed)
    pipeline, cost = random_pipeline(rng, rng.randint(1, 40))
    groups = group_nodes(pipeline, "makespan", fusable=by_tag, model=cost)
    task_of = {n: g.key for g in groups for n in g.node_names}
    assert sorted(task_of) == sorted(n.name for n in pipeline.nodes)  # every node in exactly one task
    assert sum(len(g.nodes) for g in groups) == len(pipeline.nodes)
    position = {g.key: i for i, g in enumerate(groups)}
    deps = {g.key: set(g.dependencies) for g in groups}
    for child, parents in pipeline.node_dependencies.items():
        for parent in parents:  # every data dependency is inside a task or a direct task dependency
            a, b = task_of[parent.name], task_of[child.name]
            assert a == b or (a in deps[b] and position[a] < position[b])
    for g in groups:
        assert len({tuple(n.tags) for n in g.nodes}) == 1  # settings respected
        assert all(position[d] < position[g.key] for d in g.dependencies)  # acyclic, in dependency order
    chains = estimate(group_nodes(pipeline, "chains", fusable=by_tag), cost)
    found = estimate(groups, cost)
    # never slower than chains, unless by less than a second (the same estimate) with fewer tasks
    assert found.makespan <= chains.makespan or (
        found.makespan <= chains.makespan + SAME_ESTIMATE and found.tasks < chains.tasks
    )


@pytest.mark.parametrize("seed", range(25))
def test_makespan_is_within_ten_percent_of_the_exhaustive_optimum_on_small_graphs(seed):
    rng = random.Random(1000 + seed)
    pipeline, cost = random_pipeline(rng, rng.randint(2, 8))
    best, best_tasks, key_of = optimal_key_of(pipeline, by_tag, cost)
    found = estimate(group_nodes(pipeline, "makespan", fusable=by_tag, model=cost), cost)
    assert best <= found.makespan <= 1.1 * best
    # the optimum is itself a valid grouping (no cycle) whose estimate is what the solver says
    optimum = _build_groups(pipeline, key_of, {})
    assert estimate(optimum, cost).makespan == best and len(optimum) == best_tasks


def test_exhaustive_optimum_of_small_hand_made_graphs():
    chain = graph({"a": [], "b": ["a"], "c": ["b"]})
    assert optimal_key_of(chain, model=model())[:2] == (150, 1)
    fork = graph({"a": [], "b": ["a"], "c": ["a"]})
    assert optimal_key_of(fork, model=model(a=10, b=1000, c=1000))[:2] == (1250, 3)
    assert optimal_key_of(fork, model=model(a=10, b=10, c=10))[:2] == (150, 1)
    # a → x → b with a and b alike and x different: {a, b} would be a cycle around x, so three tasks
    sandwich = graph({"a": [], "x": ["a"], "b": ["x"]}, settings={"x": "gpu"})
    assert optimal_key_of(sandwich, by_tag, model())[:2] == (390, 3)
    assert estimate(group_nodes(sandwich, fusable=by_tag, model=model()), model()).makespan == 390
    # the example project's shape: a preprocessing chain and a training node with settings of their own
    example = graph(
        {
            "bucket": [],
            "clean": [],
            "summarize": [],
            "add": ["clean"],
            "select": ["add"],
            "split": ["select"],
            "train": ["split"],
            "evaluate": ["train", "split"],
            "report": ["summarize", "evaluate"],
        },
        settings={"clean": "prep", "add": "prep", "select": "prep", "train": "gpu"},
    )
    assert optimal_key_of(example, by_tag, model())[:2] == (550, 5)
    found = estimate(group_nodes(example, fusable=by_tag, model=model()), model())
    assert (found.makespan, found.tasks) == (550, 5)
    assert found.critical_path == ("clean", "split", "train", "evaluate")
    # with run times measured in milliseconds the independent reporting nodes share one task, and the preprocessing
    # chain joins them: 0.06 s longer than the optimum's five tasks, the same estimate to the second, one task fewer
    tiny = CostModel(
        durations={
            "bucket": 0.06,
            "clean": 0.05,
            "summarize": 0.002,
            "add": 0.002,
            "select": 0.003,
            "split": 0.01,
            "train": 0.7,
            "evaluate": 0.6,
            "report": 0.0,
        }
    )
    found = estimate(group_nodes(example, fusable=by_tag, model=tiny), tiny)
    best, best_tasks, _ = optimal_key_of(example, by_tag, tiny)
    assert best_tasks == 5 and best < found.makespan <= best + SAME_ESTIMATE and found.tasks == 4
    with pytest.raises(PluginError, match="limited to 12 nodes"):
        optimal_key_of(graph({f"n{i}": [] for i in range(13)}))


def test_a_tie_between_groupings_goes_to_fewer_tasks():
    # two independent 10 s nodes: side by side in one task (2 workers) they end when two tasks would, so one task
    pair = graph({"a": [], "b": []})
    side_by_side = CostModel(task_workers=2)
    assert shape(group_nodes(pair, model=side_by_side)) == {"a": (["a", "b"], [])}
    assert estimate(group_nodes(pair, model=side_by_side), side_by_side).makespan == 130
    # one after another they would take 10 s more: two tasks
    assert len(group_nodes(pair, model=CostModel(task_workers=1))) == 2
    # a fan-out of three 10 s branches and a join: a task of three nodes after a task of one ties with three
    # tasks that run the branches apart (2 workers: the third branch waits 10 s, the join's start-up is saved)
    fan = graph({"root": [], "x": ["root"], "y": ["root"], "z": ["root"], "join": ["x", "y", "z"]})
    found = group_nodes(fan, model=side_by_side)
    assert estimate(found, side_by_side).makespan == optimal_key_of(fan, model=side_by_side)[0]
    assert len(found) == optimal_key_of(fan, model=side_by_side)[1]


def spaceflights_pandas() -> Pipeline:
    """The shape of Kedro's spaceflights-pandas starter: data processing, data science and reporting."""
    return Pipeline(
        [
            node(step, "companies", "preprocessed_companies", name="preprocess_companies_node"),
            node(step, "shuttles", "preprocessed_shuttles", name="preprocess_shuttles_node"),
            node(
                step,
                ["preprocessed_shuttles", "preprocessed_companies", "reviews"],
                "model_input_table",
                name="create_model_input_table_node",
            ),
            node(
                lambda *values: (1, 2, 3, 4),
                ["model_input_table", "params:model_options"],
                ["X_train", "X_test", "y_train", "y_test"],
                name="split_data_node",
            ),
            node(step, ["X_train", "y_train"], "regressor", name="train_model_node"),
            node(step, ["regressor", "X_test", "y_test"], "metrics", name="evaluate_model_node"),
            node(step, "preprocessed_shuttles", "plot_exp", name="compare_passenger_capacity_exp"),
            node(step, "preprocessed_shuttles", "plot_go", name="compare_passenger_capacity_go"),
            node(step, "companies", "dummy_confusion_matrix", name="create_confusion_matrix"),
        ]
    )


def test_the_spaceflights_pandas_starter_is_one_task_after_a_local_run():
    # run times as a local run of the starter records them: sub-second nodes, the plots the slowest. The confusion
    # matrix (a part of the pipeline of its own) in a second task would end the job 0.05 s sooner: the same
    # estimate to the second (2m01s), so one task
    measured = {
        "preprocess_companies_node": 0.05,
        "preprocess_shuttles_node": 0.04,
        "create_model_input_table_node": 0.21,
        "split_data_node": 0.02,
        "train_model_node": 0.08,
        "evaluate_model_node": 0.03,
        "compare_passenger_capacity_exp": 1.2,
        "compare_passenger_capacity_go": 0.3,
        "create_confusion_matrix": 0.4,
    }
    for workers in (2, 1):
        cost = CostModel(durations=measured, task_workers=workers)
        groups = group_nodes(spaceflights_pandas(), model=cost)
        assert len(groups) == 1, shape(groups)
        best, best_tasks, _ = optimal_key_of(spaceflights_pandas(), model=cost)
        assert best_tasks == 2 and estimate(groups, cost).makespan <= best + SAME_ESTIMATE
    # before any run (every node 10 s), the confusion matrix in a task of its own saves 10 s: two tasks
    assert len(group_nodes(spaceflights_pandas(), model=CostModel(task_workers=2))) == 2


def test_estimate_reports_the_longest_chain_of_tasks():
    cost = model(split=1, left=500, right=5, join=1)
    found = estimate(group_nodes(DIAMOND, "none"), cost)
    assert found.critical_path == ("split", "left", "join")
    assert found.makespan == 3 * 120 + 502 and found.tasks == 4 and found.measured == 4


def test_makespan_grouping_is_the_same_whatever_the_hash_seed():
    script = (
        "import random, sys; sys.path.insert(0, 'tests'); import test_grouping as t;"
        "rng = random.Random(7); p, c = t.random_pipeline(rng, 60);"
        "print([g.node_names for g in t.group_nodes(p, 'makespan', fusable=t.by_tag, model=c)])"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            cwd=str(Path(__file__).parents[1]),
        ).stdout
        for seed in ("1", "2", "3")
    }
    assert len(outputs) == 1 and outputs.pop().startswith("[[")


def test_local_runs_record_node_times_and_the_latest_run_of_a_pipeline_is_read(tmp_path):
    root = str(tmp_path / "runs")
    record_task(root, "local-1", ["__default__"], {"a": 1.0, "b": 2.0})
    record_task(root, "local-2", ["__default__"], {"a": 3.0})
    record_task(root, "local-2", ["__default__"], {"b": 4.5, "c f": 0.25})
    record_task(root, "local-3", ["model"], {"m": 9.0})
    assert last_run_durations(root, ["__default__"]) == {"a": 3.0, "b": 4.5, "c f": 0.25}
    assert last_run_durations(root, ["model"]) == {"m": 9.0}
    assert last_run_durations(root, ["reporting"]) == {}
    stored = json.loads((tmp_path / "runs" / "local-2" / "timings" / "a.json").read_text())
    assert stored == {"nodes": {"a": 3.0}, "pipeline": "__default__"}
    # a task that knows its job's name records its run for that job too (what a rerun of the job reads)
    from kedro_vertex_runner.task.timings import run_of_job

    record_task(root, "8412", ["model"], {"m": 8.0}, "projects/p/locations/l/pipelineJobs/job-7")
    assert run_of_job(root, "job-7") == ("8412", "")
    assert run_of_job(root, "projects/p/locations/l/pipelineJobs/job-7") == ("8412", "")
    missing, why = run_of_job(root, "job-8")
    assert missing is None and why.startswith(f"its tasks recorded no run under {root} ")
    record_task(root, "local-4", ["model"], {"m": 1.0}, "{{$.pipeline_job_name}}")  # a placeholder: not a name
    assert not list((tmp_path / "runs" / "timings" / "jobs").glob("{*"))


def test_cloud_runs_record_node_times_under_a_gs_root(gcs_emulator, demo_project, tmp_path, capsys, monkeypatch):
    """A Vertex AI task's times land under its gs:// root; compiling the pipeline later reads the last run's, and
    `compile --explain` names that run."""
    from conftest import VERTEX_CONFIG_HEAD, kedro_batch, subprocess_env

    from kedro_vertex_runner.task.timings import last_run

    root = f"gs://test-bucket/timings-{tmp_path.name}"
    assert last_run(root, ["__default__"]) == (None, {})
    record_task(root, "111", ["__default__"], {"a": 1.0})
    record_task(root, "222", ["__default__"], {"clean_houses": 300.0})
    record_task(root, "222", ["__default__"], {"model.train_model": 60.5})
    assert last_run(root, ["__default__"]) == ("222", {"clean_houses": 300.0, "model.train_model": 60.5})
    assert last_run_durations(root, ["model"]) == {}
    # a record that is not one is skipped with one warning line naming it
    import gcsfs

    gcsfs.GCSFileSystem(token="anon").pipe_file(f"{root}/222/timings/broken.json", b"{not json")
    capsys.readouterr()
    assert last_run(root, ["__default__"]) == ("222", {"clean_houses": 300.0, "model.train_model": 60.5})
    warning = capsys.readouterr().err.strip()
    assert warning == f"Warning: node timings {root}/222/timings/broken.json is not JSON: ignored"

    project = demo_project
    config = VERTEX_CONFIG_HEAD.format(endpoint="http://127.0.0.1:9").replace("gs://test-bucket/root", root)
    (project / "conf" / "base" / "vertexai.yml").write_text(config)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # where the copy of cloud times is kept
    env = subprocess_env(XDG_CACHE_HOME=str(tmp_path / "cache"))
    # compile is offline: it never reads the root, so before any job command it knows no cloud run
    (explained,) = kedro_batch([(project, ["vertexai", "compile", "--explain"])], env)
    assert explained.returncode == 0, explained.stderr
    assert "node run times: 0 of 11" in " ".join(explained.stdout.split())
    # a command that runs or schedules a job reads the last cloud run's times, and keeps a copy on this machine
    import yaml

    from kedro_vertex_runner.config import validate_config
    from kedro_vertex_runner.project import recorded_timings

    plugin_config = validate_config(yaml.safe_load(config))
    durations, source = recorded_timings(project, plugin_config, ["__default__"], online=True)
    assert durations == {"clean_houses": 300.0, "model.train_model": 60.5}
    assert source == f"cloud run 222 under {root}"
    assert list((tmp_path / "cache" / "kedro-vertex-runner" / "cloud-timings").glob("*/__default__.json"))
    (explained,) = kedro_batch([(project, ["vertexai", "compile", "--explain"])], env)
    assert explained.returncode == 0, explained.stderr
    assert (
        f"node run times: 2 of 11 from cloud run 222 under {root} (as last read by a job command), the others 10s "
        "each" in " ".join(explained.stdout.split())
    )
