"""Which undeclared datasets cross a task boundary, and how ``PersistedDataset`` stores them."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.pipeline import Node, Pipeline

from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.task.persistence import (
    PersistedDataset,
    TaskBoundary,
    boundary_datasets,
    dataset_path,
    file_name,
    held_in_memory,
    job_version,
    persist_undeclared,
    pin_versions,
    run_dir,
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
    # nothing a dataset name holds leads out of the run directory
    for name in ("..", ".", "../../etc/passwd", "/abs", "a\\..\\b", "nul\0byte", "~", "", "x/../../y"):
        path = dataset_path("/root", "run-1", name)
        assert Path(path).parent == Path("/root/run-1") and Path(path).name not in {".", ".."}, (name, path)
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


def test_a_storage_error_while_saving_is_reported_as_that_error_not_as_pickling(tmp_path: Path):
    """Real OS errors, also when the tests run as root (who may write into a chmod'ed folder): a file where the
    run folder should be, and a folder of sysfs, where nobody creates files."""
    (tmp_path / "taken").write_text("a file, not a folder")
    path = tmp_path / "taken" / "run-1" / "x.pkl"
    with pytest.raises(DatasetError) as error:
        PersistedDataset(str(path), name="my.data").save({"v": 1})
    message = str(error.value)
    assert message.startswith(f"dataset 'my.data' could not be saved to {path} ("), message
    assert "Not a directory (ENOTDIR)" in message and "pickle" not in message
    sysfs = Path("/sys/kernel")
    try:
        (sysfs / "kedro-vertex-probe").mkdir()
    except PermissionError:
        with pytest.raises(DatasetError) as error:
            PersistedDataset(str(sysfs / "run-1" / "x.pkl"), name="x").save(1)
        assert "Operation not permitted (EPERM); make the folder writable" in str(error.value)
    except OSError:  # another kind of refusal on this system: the first case stands alone
        pass
    else:  # pragma: no cover - a writable sysfs: leave it as it was
        (sysfs / "kedro-vertex-probe").rmdir()


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
    with pytest.raises(DatasetError, match=re.escape("dataset 'gone' not found at gs://test-bucket/unit/r1/gone.pkl")):
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


def test_declared_memory_datasets_cross_tasks_like_undeclared_ones():
    """A dataset declared as a MemoryDataset or SharedMemoryDataset — explicitly, or through a catch-all pattern —
    cannot leave its task's process either: it is persisted like an undeclared one; a memory dataset that no node
    of the job produces keeps what the catalog gave it."""
    catalog = DataCatalog.from_config(
        {"shared": {"type": "SharedMemoryDataset"}, "decl": {"type": "pickle.PickleDataset", "filepath": "d.pkl"}}
    )
    catalog["given"] = MemoryDataset(3)
    assert held_in_memory(catalog, "shared") and held_in_memory(catalog, "given")
    assert not held_in_memory(catalog, "decl") and not held_in_memory(catalog, "undeclared")
    pipeline = Pipeline([Node(f, ["given", "params:x"], "shared", name="p1"), Node(f, "shared", "decl", name="p2")])
    boundary = TaskBoundary.of_catalog(pipeline, catalog)
    assert boundary.crossing(pipeline.filter(node_names=["p1"]).nodes) == (set(), {"shared"})
    assert boundary.crossing(pipeline.filter(node_names=["p2"]).nodes) == ({"shared"}, set())
    assert boundary.kept_in_memory(pipeline.nodes) == {"shared"}  # both in one task: never stored

    def catch_all_catalog() -> DataCatalog:
        return DataCatalog.from_config({"{default}": {"type": "MemoryDataset"}})

    catch_all = catch_all_catalog()
    assert "anything" in catch_all and held_in_memory(catch_all, "anything")
    placed = persist_undeclared(catch_all, pipeline.filter(node_names=["p2"]), pipeline, "/r", "run")
    assert placed == {"shared": "/r/run/shared.pkl", "decl": "/r/run/decl.pkl"}  # the pattern matches decl too
    assert isinstance(catch_all["shared"], PersistedDataset)
    assert persist_undeclared(catch_all_catalog(), pipeline.filter(node_names=["p1"]), pipeline, "/r", "run") == {
        "shared": "/r/run/shared.pkl"
    }  # `given` is not produced in the job: the catalog's own value stays


def test_boundary_is_linear_in_the_group_for_a_big_job():
    import time

    nodes = [Node(f, f"d{i}", f"d{i + 1}", name=f"n{i}") for i in range(2000)]
    boundary = TaskBoundary(Pipeline(nodes), lambda name: False)
    started = time.perf_counter()
    for node in nodes:
        boundary.crossing([node])
    assert time.perf_counter() - started < 1.0  # quadratic would be 4 million set updates


class _SparkLikeFrame:
    """Pickles the way a Spark DataFrame does: its SparkContext refuses with a multi-line runtime error."""

    def __reduce__(self):
        raise RuntimeError(
            "[CONTEXT_ONLY_VALID_ON_DRIVER] It appears that you are attempting to reference\n"
            "SparkContext from a broadcast variable, action, or transformation."
        )


@pytest.mark.parametrize(
    "value",
    [_SparkLikeFrame(), __import__("threading").Lock(), (i for i in range(2))],
    ids=["spark-like", "lock", "generator"],
)
def test_unpicklable_values_fail_with_our_own_line(tmp_path: Path, value):
    dataset = PersistedDataset(str(tmp_path / "x.pkl"), name="features")
    with pytest.raises(DatasetError) as caught:
        dataset.save(value)
    message = str(caught.value)
    assert message.startswith("dataset 'features' cannot be pickled to pass it to the next task (a ")
    assert "declare it in the catalog with a dataset type that saves this value" in message
    assert "\n" not in message and "CONTEXT_ONLY_VALID_ON_DRIVER" not in message
    assert list(tmp_path.iterdir()) == []


def test_one_version_per_job_recorded_once(tmp_path: Path):
    """Every task of a job gets the first writer's version (Kedro's timestamp format); another job its own."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        versions = set(pool.map(lambda _: job_version(str(tmp_path), "job-a"), range(16)))
    assert len(versions) == 1
    (version,) = versions
    assert (tmp_path / "job-a" / "save_version").read_text() == version
    assert [p.name for p in (tmp_path / "job-a").iterdir()] == ["save_version"]  # no temporary file left
    assert job_version(str(tmp_path), "job-b") not in {version, ""}


def _versioned_catalog(tmp_path: Path) -> DataCatalog:
    return DataCatalog.from_config(
        {
            "model": {"type": "pickle.PickleDataset", "filepath": str(tmp_path / "model.pkl"), "versioned": True},
            "earlier": {"type": "pickle.PickleDataset", "filepath": str(tmp_path / "earlier.pkl"), "versioned": True},
        }
    )


def test_tasks_save_the_jobs_version_and_load_their_own_jobs_writes(tmp_path: Path):
    train = Pipeline([Node(f, "earlier", "model", name="train")])
    evaluate = Pipeline([Node(f, "model", "score", name="evaluate")])
    _versioned_catalog(tmp_path).save("earlier", "from an earlier job")  # no node of the jobs below produces it

    def run_task(group: Pipeline, job: str, *inputs: str):
        catalog = _versioned_catalog(tmp_path)  # every task builds its own catalog
        pin_versions(catalog, group, lambda: job_version(str(tmp_path / "runs"), job))
        for name in inputs:
            yield catalog.load(name)
        for name in group.all_outputs():
            if name in catalog:
                catalog.save(name, f"{name} of {job}")

    list(run_task(train, "job-a"))
    list(run_task(train, "job-b"))  # a later job saves a later version in between
    assert next(run_task(evaluate, "job-a", "model")) == "model of job-a"  # not "latest"
    assert next(run_task(evaluate, "job-b", "model")) == "model of job-b"
    # a version not written by the job: Kedro's latest, as always
    assert next(run_task(train, "job-c", "earlier")) == "from an earlier job"
    versions = sorted(p.name for p in (tmp_path / "model.pkl").iterdir())
    assert versions == sorted(job_version(str(tmp_path / "runs"), job) for job in ("job-a", "job-b"))
    assert not pin_versions(DataCatalog(), evaluate, lambda: pytest.fail("no versioned dataset: never asked"))


def test_run_dir_is_one_segment():
    assert run_dir("gs://b/root/", "r") == "gs://b/root/r"


def test_one_version_per_job_on_gcs(gcs_emulator: str):
    import gcsfs

    first = job_version("gs://test-bucket/versions", "job-1")
    assert job_version("gs://test-bucket/versions", "job-1") == first
    fs = gcsfs.GCSFileSystem(token="anon", endpoint_url=gcs_emulator)
    assert fs.cat_file("test-bucket/versions/job-1/save_version").decode() == first
    assert job_version("gs://test-bucket/versions", "job-2") != first
