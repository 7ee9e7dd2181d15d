"""Which nodes share a task in each ``run_config.grouping`` mode, and which groupings are refused."""

from __future__ import annotations

import pytest
from kedro.pipeline import Pipeline, node

from kedro_vertex_runner.compiler.grouping import group_nodes
from kedro_vertex_runner.errors import PluginError


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
    pipeline = DIAMOND + Pipeline(
        [node(step, "l2", "l3", name="left_more"), node(step, "l3", "l4", name="left_last")]
    )
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
        [node(step, "x", "y", name="prep"), node(step, "y", "z", name="fit")], namespace="model", inputs={"x"},
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
