"""Which undeclared datasets cross a task boundary, and how ``PersistedDataset`` stores them."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.pipeline import Node, Pipeline

from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.persistence import (
    PersistedDataset,
    boundary_datasets,
    dataset_path,
    file_name,
    persist_undeclared,
)


def f(*args):
    return args[0] if args else 1


# a -> [n1] -> b -> [n2] -> c -> [n3] -> d ;  b -> [n4] -> e (free) ; declared: decl ; params
FULL = Pipeline(
    [
        Node(f, ["a", "params:x"], "b", name="n1"),
        Node(f, "b", "c", name="n2"),
        Node(f, "c", "d", name="n3"),
        Node(f, ["b", "decl"], "e", name="n4"),
        Node(f, None, "decl", name="n0"),
    ]
)


def group(*names: str) -> Pipeline:
    return FULL.filter(node_names=list(names))


def test_boundary_inside_outside_and_free_outputs():
    declared = {"decl"}.__contains__
    inputs, outputs = boundary_datasets(group("n1", "n2"), FULL, declared)
    assert inputs == {"a"}
    assert outputs == {"b", "c"}  # b is also read by n4 (another task); c by n3
    inputs, outputs = boundary_datasets(group("n2", "n3"), FULL, declared)
    assert (inputs, outputs) == ({"b"}, {"d"})  # c stays in memory; d is a free output
    inputs, outputs = boundary_datasets(FULL, FULL, declared)
    assert (inputs, outputs) == ({"a"}, {"d", "e"})
    inputs, outputs = boundary_datasets(group("n4"), FULL, declared)
    assert (inputs, outputs) == ({"b"}, {"e"})  # "decl" is declared: the project decides where it lives


def test_the_job_pipeline_is_loaded_only_for_datasets_kept_inside_a_task():
    declared = {"decl"}.__contains__
    calls = []

    def load_full() -> Pipeline:
        calls.append(1)
        return FULL

    # n4 alone: everything crosses the boundary, the job's pipeline is not needed
    assert boundary_datasets(group("n4"), load_full, declared) == ({"b"}, {"e"})
    assert calls == []
    # n1 + n2 produce and consume b inside; whether another task reads b needs the job's pipeline
    assert boundary_datasets(group("n1", "n2"), load_full, declared) == ({"a"}, {"b", "c"})
    assert calls == [1]


def test_persist_undeclared_respects_catalog_and_factory_patterns(tmp_path: Path):
    def fresh_catalog() -> DataCatalog:  # every task builds its own catalog
        catalog = DataCatalog.from_config(
            {
                "decl": {"type": "pickle.PickleDataset", "filepath": str(tmp_path / "decl.pkl")},
                "{name}_pattern": {"type": "pickle.PickleDataset", "filepath": str(tmp_path / "{name}.pkl")},
            }
        )
        catalog["params:x"] = 1
        return catalog

    pipeline = Pipeline([Node(f, ["in", "params:x"], "mid", name="p1"), Node(f, "mid", "x_pattern", name="p2")])
    catalog = fresh_catalog()
    placed = persist_undeclared(catalog, pipeline.filter(node_names=["p1"]), pipeline, str(tmp_path), "r1")
    assert placed == {"in": f"{tmp_path}/r1/in.pkl", "mid": f"{tmp_path}/r1/mid.pkl"}
    assert isinstance(catalog["mid"], PersistedDataset)
    placed = persist_undeclared(fresh_catalog(), pipeline.filter(node_names=["p2"]), pipeline, str(tmp_path), "r1")
    assert placed == {"mid": f"{tmp_path}/r1/mid.pkl"}  # x_pattern matches the user's pattern


def test_without_root_only_free_outputs_may_stay_in_memory():
    with pytest.raises(PluginError, match="'c' passes between tasks but no storage root"):
        persist_undeclared(DataCatalog(), group("n3"), FULL, None, "r")
    pipeline = Pipeline([Node(f, "params:x", "only_out", name="solo")])
    catalog = DataCatalog()
    catalog["params:x"] = 1
    assert persist_undeclared(catalog, pipeline, pipeline, None, "r") == {}


def test_file_names_are_one_safe_segment():
    assert file_name("model.X_train") == "model.X_train.pkl"
    assert file_name("a/b c") == "a%2Fb%20c.pkl"
    assert file_name("..") == "...pkl"
    assert dataset_path("gs://bucket/root/", "uuid-1", "x") == "gs://bucket/root/uuid-1/x.pkl"
    for bad in ("", "..", "a/b"):
        with pytest.raises(PluginError, match=r"^run id .*: expected an id such as local-20240101-120000-abc123"):
            dataset_path("/tmp", bad, "x")


def test_local_round_trip_is_atomic_and_overwrites(tmp_path: Path):
    path = tmp_path / "run" / "x.pkl"
    dataset = PersistedDataset(str(path), name="x")
    assert not dataset.exists()
    dataset.save({"v": 1})
    dataset.save({"v": 2})
    assert dataset.exists()
    assert dataset.load() == {"v": 2}
    assert [p.name for p in path.parent.iterdir()] == ["x.pkl"]


def test_failed_pickle_keeps_previous_value_and_no_temp(tmp_path: Path):
    path = tmp_path / "x.pkl"
    dataset = PersistedDataset(str(path), name="my.data")
    dataset.save("old")
    with pytest.raises(DatasetError, match=r"dataset 'my.data' cannot be pickled .*TypeError"):
        dataset.save([1, (i for i in range(3))])
    assert dataset.load() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.pkl"]


def test_missing_value_names_dataset_and_path(tmp_path: Path):
    dataset = PersistedDataset(str(tmp_path / "r" / "x.pkl"), name="x")
    with pytest.raises(DatasetError, match=r"dataset 'x' not found at .*/r/x.pkl: was the task producing it run"):
        dataset.load()


def test_gcs_round_trip(gcs_emulator: str):
    import gcsfs

    dataset = PersistedDataset("gs://test-bucket/unit/r1/df.pkl", name="df")
    assert not dataset.exists()
    dataset.save({"rows": list(range(1000))})
    assert dataset.exists()
    assert dataset.load() == {"rows": list(range(1000))}
    fs = gcsfs.GCSFileSystem(token="anon", endpoint_url=gcs_emulator)
    assert pickle.loads(fs.cat_file("test-bucket/unit/r1/df.pkl")) == {"rows": list(range(1000))}
    with pytest.raises(DatasetError, match="dataset 'gone' not found at gs://test-bucket/unit/r1/gone.pkl"):
        PersistedDataset("gs://test-bucket/unit/r1/gone.pkl", name="gone").load()
    with pytest.raises(DatasetError, match="cannot be pickled"):
        dataset.save(lambda: 1)
    assert dataset.load() == {"rows": list(range(1000))}


def test_memory_dataset_defaults_are_replaced(tmp_path: Path):
    catalog = DataCatalog({"raw": MemoryDataset(1)})
    pipeline = Pipeline([Node(f, "raw", "undeclared", name="only")])
    consumer = Pipeline([Node(f, "undeclared", "end", name="consumer")])
    placed = persist_undeclared(catalog, pipeline, pipeline + consumer, str(tmp_path), "r")
    assert placed == {"undeclared": f"{tmp_path}/r/undeclared.pkl"}
