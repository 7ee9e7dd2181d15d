"""Refusals that come before anything runs, checks of what runs (not of every registered pipeline), and errors
that say what happened: a storage error while saving is reported as that error, not as a value that cannot be
pickled.

The runs are real ``kedro run --runner=VertexRunner`` commands on a copy of the example project (local backend);
the refusals run together in one ``kedro_batch``.
"""

from __future__ import annotations

import pickle
import resource
import subprocess
from pathlib import Path

import pytest
from conftest import kedro_batch, kedro_cmd, subprocess_env

# two alternative pipelines, both writing `alt_model` (legal in Kedro as long as they never run together), and an
# output nobody reads (`alt_blob_<x>`), which every run stores under <root>/<run id>/
ALTERNATIVE = '''
"""pipeline_{tag}: an alternative to its twin; both write `alt_model`."""
from pathlib import Path

from kedro.pipeline import Node, Pipeline


def make(raw, size):
    Path("data/made_{tag}.txt").write_text(repr(size))
    return {{"source": "{tag}", "rows": len(raw), "size": size}}, b"x" * (size or 1)


def show(model):
    Path("data/alt_{tag}.txt").write_text(repr(model))


def create_pipeline(**kwargs):
    return Pipeline([
        Node(make, ["raw_houses", "params:alt_size"], ["alt_model", "alt_blob_{tag}"], name="make_{tag}"),
        Node(show, "alt_model", None, name="show_{tag}"),
    ])
'''


@pytest.fixture
def project(demo_project: Path) -> Path:
    for tag in ("a", "b"):
        package = demo_project / "src" / "demo_project" / "pipelines" / f"pipeline_{tag}"
        package.mkdir()
        (package / "__init__.py").write_text(ALTERNATIVE.format(tag=tag))
    (demo_project / "conf" / "base" / "parameters_alt.yml").write_text("alt_size: 1\n")
    return demo_project


def _run(project: Path, *args: str, file_limit: int | None = None) -> subprocess.CompletedProcess[str]:
    def limit() -> None:  # a real OS limit on every file the run writes (its tasks inherit it)
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    return subprocess.run(
        kedro_cmd("run", "--runner=VertexRunner", *args),
        cwd=project,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=600,
        preexec_fn=limit,
    )


@pytest.mark.slow
def test_alternative_pipelines_writing_the_same_dataset_each_run_and_a_full_disk_is_named(project: Path):
    # --params k=null: the node gets None, as with Kedro's own runners
    first = _run(project, "--pipeline", "pipeline_a", "--params", "alt_size=null")
    assert first.returncode == 0, (first.stdout + first.stderr)[-3000:]
    assert (project / "data/made_a.txt").read_text() == "None"
    assert "'source': 'a'" in (project / "data/alt_a.txt").read_text()

    # the twin pipeline runs too; its 3 MB output meets a 1 MB file-size limit (ulimit -f): the OS error is
    # reported as such, with the dataset and the path, not as a value that cannot be pickled
    second = _run(project, "--pipeline", "pipeline_b", "--params", "alt_size=3000000", file_limit=1_000_000)
    output = second.stdout + second.stderr
    assert second.returncode != 0, output[-3000:]
    assert (project / "data/made_b.txt").read_text() == "3000000"  # pipeline_b compiled, started and ran make_b
    error = second.stderr.strip().splitlines()[-1]
    assert "node 'make_b' failed" in error, output[-3000:]
    assert "dataset 'alt_blob_b' could not be saved to " in error and "/alt_blob_b.pkl" in error
    assert "File too large (EFBIG); raise the file-size limit (ulimit -f)" in error
    assert "pickle" not in error
    assert "Traceback" not in second.stderr


def test_refusals_before_anything_runs(project: Path, gcs_emulator: str, tmp_path: Path):
    import shutil

    import fsspec

    runs = project / "data" / "vertex_runs"
    # an earlier run that stored raw_data_summary (what a whole run leaves there), and one that did not
    stored = runs / "local-20240101-000000-aaaaaa"
    stored.mkdir(parents=True)
    (stored / "raw_data_summary.pkl").write_bytes(pickle.dumps({"n_rows": 1}))
    (runs / "local-20240101-000000-bbbbbb").mkdir()
    before = sorted(path.name for path in runs.iterdir())
    commands = {
        "new run": ["run", "--runner=VertexRunner", "--from-nodes", "create_report"],
        "run without it": [
            "run",
            "--runner=VertexRunner",
            "--from-nodes",
            "create_report",
            "--runner-params",
            "run_id=local-20240101-000000-bbbbbb",
        ],
        "stored nowhere": ["run", "--runner=VertexRunner", "--from-nodes", "create_rooms_report"],
        "vertex": [
            "run",
            "--runner=VertexRunner",
            "--from-nodes",
            "create_report",
            "--runner-params",
            "backend=vertex",
        ],
        "vertex run id": [
            "run",
            "--runner=VertexRunner",
            "--from-nodes",
            "create_report",
            "--runner-params",
            "backend=vertex,run_id=abc",
        ],
        "async": ["run", "--runner=VertexRunner", "--async"],
        "cron": ["vertexai", "schedule", "--cron", "every day"],
        "timezone": ["vertexai", "schedule", "--cron", "0 6 * * *", "--timezone", "Mars/Olympus"],
        "logs": ["vertexai", "logs", "Not A Job"],
    }
    # the same project with a bucket as its root, where one run stored rooms_histogram only
    remote = shutil.copytree(project, tmp_path / "remote" / "demo_project")
    config = remote / "conf" / "base" / "vertexai.yml"
    config.write_text(config.read_text().replace("root: data/vertex_runs", "root: gs://test-bucket/early"))
    bucket = fsspec.filesystem("gs", token="anon", endpoint_url=gcs_emulator)
    bucket.pipe_file("test-bucket/early/kept-1/rooms_histogram.pkl", pickle.dumps({"rooms": 1}))
    in_bucket = {
        "bucket, other run": [
            "run",
            "--runner=VertexRunner",
            "--from-nodes",
            "create_report",
            "--runner-params",
            "run_id=other-1",
        ],
        "bucket, no run id": ["run", "--runner=VertexRunner", "--from-nodes", "create_report"],
    }
    batch = [(project, args) for args in commands.values()] + [(remote, args) for args in in_bucket.values()]
    results = dict(zip([*commands, *in_bucket], kedro_batch(batch), strict=True))
    last = {name: result.stderr.strip().splitlines()[-1] for name, result in results.items()}
    assert all(result.returncode != 0 for result in results.values()), last
    assert all("Traceback" not in result.stderr for result in results.values()), last

    # a free input nobody stored: one line naming it and the run that holds it; nothing started
    assert last["new run"] == (
        "Error: input 'raw_data_summary' of the selected nodes (made by node 'summarize_raw_data', not selected) is "
        "stored by no catalog entry, and a new run has nothing stored: add --runner-params "
        "run_id=local-20240101-000000-aaaaaa (that run stored it)"
    )
    assert "run local-20240101-000000-bbbbbb did not store it under " in last["run without it"]
    assert last["run without it"].endswith(
        "use --runner-params run_id=local-20240101-000000-aaaaaa (that run stored it)"
    )
    # a declared memory dataset made by another task is read from storage too; no run holds it
    assert last["stored nowhere"].startswith("Error: input 'rooms_histogram' of the selected nodes (made by node ")
    assert last["stored nowhere"].endswith(
        "declare it in the catalog or give --runner-params run_id=ID of a run that stored it"
    )
    # on Vertex AI a run id cannot be chosen: no run id is suggested
    assert last["vertex"].endswith(": run node 'summarize_raw_data' too or declare it in the catalog")
    assert sorted(path.name for path in runs.iterdir()) == before  # no run folder, no task, no log
    assert last["vertex run id"] == (
        "Error: --runner-params run_id=abc: only the local backend takes a run id (on Vertex AI it is the job's "
        "uuid); add backend=local"
    )

    assert last["async"] == (
        "Error: --async: VertexRunner runs every task in its own process, which loads and saves that task's "
        "datasets itself; --async does not apply: drop it"
    )
    # offline inputs before credentials (there are none here: they would be the error otherwise)
    assert last["cron"] == "Error: --cron: expected a five-field cron expression like '0 6 * * 1', got 'every day'"
    assert last["timezone"] == (
        "Error: --timezone: expected an IANA time zone such as 'Europe/Warsaw' or 'UTC', got 'Mars/Olympus'"
    )
    assert last["logs"].startswith("Error: JOB_ID 'Not A Job' is not a job id: give the id printed on submit")
    assert not any("credentials" in line for line in last.values()), last

    # a bucket is asked only about the run id given (no earlier run is looked for there); with a new run id it is
    # not asked at all
    assert last["bucket, other run"] == (
        "Error: input 'raw_data_summary' of the selected nodes (made by node 'summarize_raw_data', not selected) is "
        "stored by no catalog entry, and run other-1 did not store it under gs://test-bucket/early/other-1/: run node "
        "'summarize_raw_data' too, declare it in the catalog or give --runner-params run_id=ID of a run that stored it"
    )
    assert last["bucket, no run id"].endswith(
        "a new run has nothing stored: run node 'summarize_raw_data' too, declare it in the catalog or give "
        "--runner-params run_id=ID of a run that stored it"
    )
    assert bucket.find("test-bucket/early/") == ["test-bucket/early/kept-1/rooms_histogram.pkl"]  # nothing written
