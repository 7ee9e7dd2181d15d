"""End to end: ``kedro run --runner=VertexRunner`` on a copy of the example project, local backend.

Each test starts the real ``kedro`` command in a subprocess; the compiler, the task entrypoint and the local
backend all run for real. A full pipeline run costs several seconds, so each run checks several things.
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import installed_metadata, kedro_cmd, subprocess_env

from kedro_vertex_runner.task.artifacts import artifact_name

pytestmark = pytest.mark.slow

CATALOG_OUTPUTS = [
    "data/02_intermediate/houses_clean.parquet",
    "data/03_primary/houses_features.parquet",
    "data/04_feature/model_input_table.parquet",
    "data/05_model_input/X_train.parquet",
    "data/05_model_input/X_test.parquet",
    "data/05_model_input/y_train.parquet",
    "data/05_model_input/y_test.parquet",
    "data/06_models/regressor.pkl",
    "data/08_reporting/metrics.json",
    "data/08_reporting/price_buckets.csv",
    "data/08_reporting/report.json",
    "data/08_reporting/rooms_report.json",
]
VERSIONED = {"data/06_models/regressor.pkl"}  # a folder of versions: <path>/<version>/regressor.pkl
FINISHED = re.compile(
    r"^Run (\S+) finished: (\d+) tasks? succeeded(?: \(\d+ of them in an earlier run\))?; intermediate data in (.+)/; "
    r"logs in \3/logs/$",
    re.MULTILINE,
)


def kedro_run(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kedro_cmd("run", "--runner=VertexRunner", *args),
        cwd=project,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def written(project: Path, path: str) -> bool:
    """Whether a catalog output exists (for a versioned dataset: in some version)."""
    if path in VERSIONED:
        return any((project / path).glob(f"*/{Path(path).name}"))
    return (project / path).is_file()


def clear_outputs(project: Path, keep: tuple[str, ...] = ()) -> None:
    import shutil

    for path in CATALOG_OUTPUTS:
        if path not in keep:
            if (project / path).is_dir():
                shutil.rmtree(project / path)
            else:
                (project / path).unlink(missing_ok=True)


def set_config(project: Path, **replacements: str) -> None:
    """Edit conf/base/vertexai.yml in place (or write a minimal one if the example has none)."""
    path = project / "conf" / "base" / "vertexai.yml"
    if not path.exists():
        path.write_text(
            "project_id: demo-project\nregion: europe-west1\nrun_config:\n  image: demo-project:latest\n"
            "  root: data/vertex_runs\n  backend: local\n"
        )
    text = path.read_text()
    for old, new in replacements.items():
        assert old in text, f"{old!r} not in {path}"
        text = text.replace(old, new)
    path.write_text(text)


@pytest.fixture
def project(demo_project: Path) -> Path:
    set_config(demo_project)  # make sure the copy has a vertexai.yml with the local backend
    clear_outputs(demo_project)
    return demo_project


def finished(result: subprocess.CompletedProcess[str]) -> tuple[str, int, str]:
    output = output_of(result)
    assert result.returncode == 0, output[-4000:]
    match = FINISHED.search(result.stdout)
    assert match, output[-4000:]
    return match.group(1), int(match.group(2)), match.group(3)


def test_whole_pipeline_runs_each_task_in_its_own_process(project: Path):
    # `chains` keeps count_rooms and create_rooms_report in tasks of their own, so that the declared MemoryDataset
    # between them has to travel through storage (the default `makespan` puts them into one task)
    set_config(project, **{"  grouping: makespan\n": "  grouping: chains\n"})
    result = kedro_run(project)
    run_id, succeeded, run_dir = finished(result)

    for path in CATALOG_OUTPUTS:
        assert written(project, path), f"{path} was not written"
    # the undeclared dataset travelled between tasks through <root>/<run id>/
    assert Path(run_dir) == (project / "data" / "vertex_runs" / run_id).resolve()
    assert list(Path(run_dir).glob("raw_data_summary*")), sorted(p.name for p in Path(run_dir).iterdir())
    # so did the declared MemoryDataset, with one warning naming it and both tasks
    assert (Path(run_dir) / "rooms_histogram.pkl").is_file()
    warning = [
        line for line in result.stderr.splitlines() if "'rooms_histogram' is declared as a MemoryDataset" in line
    ]
    assert len(warning) == 1 and "task 'count-rooms' writes it and task 'create-rooms-report' reads it" in warning[0]
    rooms = json.loads((project / "data/08_reporting/rooms_report.json").read_text())
    assert sum(rooms["houses_per_room_count"].values()) == 300 and rooms["n_price_buckets"] == 5
    # the versioned model: saved once, with the job's one version, which the evaluating task loaded
    (version,) = [p.name for p in (project / "data/06_models/regressor.pkl").iterdir()]
    assert (Path(run_dir) / "save_version").read_text() == version
    # each task told KFP what it wrote (its executor output, beside its log): the artifacts keep the URIs the
    # executor input gave (empty URIs), their metadata names the datasets' real locations — the model's versioned
    # file, the MemoryDataset stored between tasks — and the metrics' values; a pointer file at each artifact's
    # URI, inside the run folder, names the same
    artifacts = {}
    for path in (Path(run_dir) / "logs").glob("*.executor_output.json"):
        for key, entry in json.loads(path.read_text())["artifacts"].items():
            artifacts[key] = entry["artifacts"][0]
    assert artifacts and all(artifact["uri"] == "" for artifact in artifacts.values())
    metrics = json.loads((project / "data/08_reporting/metrics.json").read_text())
    assert artifacts["model_metrics"]["metadata"] == metrics and metrics
    model_file = (project / "data/06_models/regressor.pkl" / version / "regressor.pkl").resolve()
    model = artifacts[artifact_name("model.regressor")]["metadata"]
    assert model == {"kedro_dataset": "model.regressor", "data_uri": str(model_file)}
    assert artifacts["rooms_histogram"]["metadata"]["data_uri"] == str(Path(run_dir) / "rooms_histogram.pkl")
    pointers = {p.name: json.loads(p.read_text()) for p in (Path(run_dir) / "artifacts").glob("*/*")}
    assert set(pointers) == set(artifacts) and pointers[artifact_name("model.regressor")] == model
    logs = sorted(p.stem for p in (Path(run_dir) / "logs").glob("*.log"))
    assert len(logs) == succeeded >= 4  # parallel branches and the chain give several tasks
    for node in ("clean_houses", "summarize_raw_data", "model.train_model", "create_report"):
        assert re.search(rf"^\[\d\d:\d\d:\d\d\] \S+ \(.*{re.escape(node)}.*\): SUCCEEDED in ", result.stdout, re.M)
    report = json.loads((project / "data/08_reporting/report.json").read_text())
    assert report
    # every node's run time is kept for the makespan grouping, and this run is the pipeline's latest timed run
    timed = {}
    for path in (Path(run_dir) / "timings").glob("*.json"):
        timed.update(json.loads(path.read_text())["nodes"])
    assert {"clean_houses", "model.train_model", "create_report"} <= set(timed) and len(timed) == 11
    assert all(seconds >= 0 for seconds in timed.values())
    assert (project / "data/vertex_runs/timings/__default__.txt").read_text().strip() == run_id
    # and the run of this job (by its name), which a rerun of a cloud job reads
    jobs = {p.read_text().strip() for p in (project / "data/vertex_runs/timings/jobs").glob("*.txt")}
    assert run_id in jobs


def test_filtered_run_runs_only_the_selected_nodes(project: Path, demo_project_with_outputs: Path):
    # the selected nodes read the model inputs an earlier plain `kedro run` wrote
    for name in ("X_train", "y_train", "X_test", "y_test"):
        path = f"data/05_model_input/{name}.parquet"
        (project / path).write_bytes((demo_project_with_outputs / path).read_bytes())

    result = kedro_run(project, "--tags", "training", "--from-nodes", "model.train_model")
    _, succeeded, _ = finished(result)

    assert written(project, "data/06_models/regressor.pkl")
    assert (project / "data/08_reporting/metrics.json").is_file()
    for not_selected in (
        "data/02_intermediate/houses_clean.parquet",
        "data/08_reporting/report.json",
        "data/08_reporting/price_buckets.csv",
    ):
        assert not (project / not_selected).exists(), f"{not_selected} should not have been produced"
    assert "model.split_data" not in result.stdout
    assert "create_report" not in result.stdout
    assert succeeded <= 2


PROBE_PIPELINE = '''
"""Writes what its parameters look like inside the task, so the test can check their types."""
import json
from pathlib import Path

from kedro.pipeline import Node, Pipeline


def describe(options, items, text):
    import warnings

    from omegaconf import OmegaConf

    warnings.warn("probe: a warning of the node's own")
    OmegaConf.register_new_resolver("probe_resolver", lambda: 1, replace=True)  # deprecated, called by the user
    Path("data/probe.json").write_text(json.dumps({
        "options": options, "options_type": type(options).__name__,
        "items": items, "items_type": type(items).__name__,
        "text": text,
    }))
    return "described"


def mark(described):
    Path("data/odd_node_ran.txt").write_text(described)


def create_pipeline(**kwargs):
    return Pipeline([
        Node(describe, ["params:probe_options", "params:probe_items", "params:probe_text"], "probe_described",
             name="describe_params"),
        Node(mark, "probe_described", None, name="-odd.nämé_with-dashes"),
    ])
'''
SHELL_TEXT = "$(touch pwned); echo 'q' \"d\" | & > < * `id`"


def test_runtime_params_arrive_typed_and_odd_names_are_safe(project: Path):
    probe = project / "src" / "demo_project" / "pipelines" / "probe"
    probe.mkdir()
    (probe / "__init__.py").write_text("from .pipeline import create_pipeline\n")
    (probe / "pipeline.py").write_text(PROBE_PIPELINE)
    (project / "conf" / "base" / "parameters_probe.yml").write_text(
        textwrap.dedent(
            """
            probe_options: {alpha: 0.1, nested: {flag: false}, name: base}
            probe_items: [0]
            probe_text: plain
            """
        )
    )
    params = f"probe_options.alpha=0.5,probe_options.nested.flag=true,probe_items=[7],probe_text={SHELL_TEXT}"
    site = installed_metadata(project.parent / "site")  # the plugin as installed: its `kedro.init` entry point
    result = kedro_run(
        project, "--pipeline", "probe", "--params", params, KEDRO_VERTEXAI_DISABLE_CONFIG_HOOK="true", PYTHONPATH=site
    )
    output = output_of(result)

    described = json.loads((project / "data" / "probe.json").read_text())
    assert described["options_type"] == "dict" and described["items_type"] == "list"
    assert described["options"] == {"alpha": 0.5, "nested": {"flag": True}, "name": "base"}
    assert described["items"] == [7]
    assert described["text"] == SHELL_TEXT
    assert not (project / "pwned").exists()
    # the node whose name starts with a dash and is not ASCII ran too
    _, _, run_dir = finished(result)
    # a clean terminal and clean task logs: no deprecation warning about what Kedro or kedro-mlflow call; the node's
    # own warnings (its own call of the deprecated register_new_resolver too) are in its task's log
    logs = {path.name: path.read_text() for path in (Path(run_dir) / "logs").glob("*.log")}
    assert "register_new_resolver" not in output, output[-3000:]
    assert "Add type hints" not in output and "UserWarning" not in output, output[-3000:]
    (log,) = [text for text in logs.values() if "describe_params" in text]
    assert "UserWarning: probe: a warning of the node's own" in log
    assert log.count("register_new_resolver() is deprecated") == 1 and "pipeline.py" in log, log[-3000:]
    assert all("register_new_resolver" not in text for text in logs.values() if text is not log)
    assert (project / "data" / "odd_node_ran.txt").read_text() == "described"
    assert "-odd.nämé_with-dashes" in result.stdout
    # the config hook can be switched off, and says so
    assert "KEDRO_VERTEXAI_DISABLE_CONFIG_HOOK" in output


FUSED_PIPELINE = '''
"""A chain the `chains` grouping fuses into one task; its middle node ends the process without a word."""
import os
from pathlib import Path

from kedro.pipeline import Node, Pipeline


def first(title):
    Path("data/fused_title.txt").write_text(title)
    return title


def middle(value):
    os._exit(3)


def last(value):
    return value


def create_pipeline(**kwargs):
    return Pipeline([
        Node(first, "params:fused_title", "fused_a", name="fused_first"),
        Node(middle, "fused_a", "fused_b", name="fused_middle"),
        Node(last, "fused_b", "fused_c", name="fused_last"),
    ])
'''


def test_dash_parameter_arrives_and_a_hard_exit_inside_a_fused_task_names_its_node(project: Path):
    import shlex

    package = project / "src" / "demo_project" / "pipelines" / "fused"
    package.mkdir()
    (package / "__init__.py").write_text("from .pipeline import create_pipeline\n")
    (package / "pipeline.py").write_text(FUSED_PIPELINE)
    (project / "conf" / "base" / "parameters_fused.yml").write_text("fused_title: base\n")

    result = kedro_run(project, "--pipeline", "fused", "--params", "fused_title=-draft")
    output = output_of(result)

    assert result.returncode != 0, output[-3000:]
    # a value starting with a dash is a value, not an option, all the way into the node
    assert (project / "data" / "fused_title.txt").read_text() == "-draft"
    # the chain passes values in memory: one process runs it, and os._exit in the middle fails the task, named
    assert re.search(r"\(fused_first, fused_middle, fused_last\): FAILED \(exit \d+\)", result.stdout), output[-3000:]
    error = result.stderr.strip().splitlines()[-1]
    run_id = error.split()[2]
    assert error.startswith(f"Error: run {run_id} failed: task fused-first failed (exit "), error
    assert "node 'fused_middle' failed: the node called os._exit(3)" in error, error
    assert "0 succeeded, 1 failed" in error, error
    # the resume command repeats the run's options, the dash parameter included
    hint = re.search(r"^To resume .*?: (kedro run .*)$", result.stdout, re.M)
    assert hint, result.stdout[-3000:]
    assert shlex.split(hint.group(1)) == [
        "kedro", "run", "--runner=VertexRunner", "--pipeline", "fused", "--params", "fused_title=-draft",
        "--runner-params", f"resume={run_id}",
    ]  # fmt: skip


def test_failing_node_stops_its_dependents_and_a_resumed_run_reuses_its_data(project: Path):
    nodes = project / "src" / "demo_project" / "pipelines" / "data_processing" / "nodes.py"
    original = nodes.read_text()
    nodes.write_text(
        original.replace(
            '    """Add derived features."""\n',
            '    """Add derived features."""\n    raise ValueError("boom from the test")\n',
        )
    )
    # `chains` keeps the preprocessing chain, the price buckets and the raw data summary in tasks of their own, so
    # that the independent branches finish and the summary passes between tasks (`makespan` fuses them)
    set_config(
        project,
        **{"# on_exit_pipeline: notify": "on_exit_pipeline: notify", "  grouping: makespan\n": "  grouping: chains\n"},
    )
    # a catalog path templated with the run id: written by one task, read by another (and by the resumed run)
    catalog = project / "conf" / "base" / "catalog.yml"
    catalog.write_text(
        catalog.read_text().replace(
            "filepath: data/04_feature/model_input_table.parquet",
            "filepath: data/runs/${vertex:run_id}/model_input_table.parquet",
        )
    )

    result = kedro_run(project)
    output = output_of(result)

    assert result.returncode != 0, output[-4000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: run "), output[-4000:]
    assert "node 'add_features' failed: ValueError: boom from the test" in error
    assert "logs in " in error
    run_id = error.split()[2]
    # the failed task's log tail is printed before the error line: plain text, the user's frame, not Kedro's
    tail = result.stdout.split("last ", 1)[1]
    assert 'raise ValueError("boom from the test")' in tail and "nodes.py" in tail
    assert "kedro/runner" not in tail and "kedro/pipeline" not in tail
    assert not set("╭╰│─") & set(tail), tail
    # outputs written before the failure stay; dependents never ran; the independent branch finished
    assert (project / "data/02_intermediate/houses_clean.parquet").is_file()
    assert (project / "data/08_reporting/price_buckets.csv").is_file()
    for never in (
        f"data/runs/{run_id}/model_input_table.parquet",
        "data/06_models/regressor.pkl",
        "data/08_reporting/metrics.json",
        "data/08_reporting/report.json",
    ):
        assert not (project / never).exists(), f"{never} was written although its upstream failed"
    assert re.search(r"\(model\.train_model\): SKIPPED", result.stdout)
    # the exit handler ran whatever the outcome
    assert re.search(r"\(log_run_finished\): SUCCEEDED", result.stdout), result.stdout[-3000:]
    run_logs = list((project / "data" / "vertex_runs").glob("*/logs"))
    assert len(run_logs) == 1 and run_logs[0].parent.name == run_id
    assert any("Pipeline finished" in log.read_text() for log in run_logs[0].glob("*.log"))
    assert "Traceback" not in result.stderr.split("Error: ")[-1]

    # the printed resume command, after fixing the node, finishes the job with the failed run's stored data
    hint = re.search(r"^To resume .*: kedro run (.*)$", result.stdout, re.M)
    assert hint, result.stdout[-3000:]
    args = hint.group(1).split()
    assert args == ["--runner=VertexRunner", "--runner-params", f"resume={run_id}"]
    nodes.write_text(original)
    cleaned = (project / "data/02_intermediate/houses_clean.parquet").stat().st_mtime_ns  # not written again
    resumed = kedro_run(project, *args[1:])
    resumed_id, _, run_dir = finished(resumed)

    assert resumed_id == run_id and Path(run_dir).name == run_id
    assert (project / "data/02_intermediate/houses_clean.parquet").stat().st_mtime_ns == cleaned
    # the failed task starts at add_features (houses_clean is stored); the task that succeeded does not run again
    started = re.findall(r"^\[\d\d:\d\d:\d\d\] \S+ \((.*)\): RUNNING", resumed.stdout, re.M)
    assert started and not [nodes for nodes in started if re.search(r"clean_houses|summarize_raw_data", nodes)]
    assert re.search(r"\(.*summarize_raw_data.*\): SUCCEEDED \(earlier run\)$", resumed.stdout, re.M)
    # ${vertex:run_id} gave the writing task and the reading task the same path
    assert (project / f"data/runs/{run_id}/model_input_table.parquet").is_file()
    assert [p.name for p in (project / "data" / "runs").iterdir()] == [run_id]
    # create_report read raw_data_summary, which the failed run's summarize task stored
    assert json.loads((project / "data/08_reporting/report.json").read_text())


def test_resume_starts_at_the_first_node_of_a_fused_task(project: Path):
    """With ``--pipeline reporting`` create_report shares summarize_raw_data's task (raw_data_summary stays in
    memory, never stored). When create_report fails, the printed resume command keeps the pipeline, runs that task
    from its first node, and finishes once the cause is fixed."""
    metrics = project / "data/08_reporting/metrics.json"
    metrics.write_text("{ this is not json")
    result = kedro_run(project, "--pipeline", "reporting")
    assert result.returncode != 0, output_of(result)[-3000:]
    assert "node 'create_report' failed" in result.stderr.strip().splitlines()[-1]
    assert re.search(r"\(summarize_raw_data, create_report\): FAILED", result.stdout), result.stdout[-3000:]
    run_id = result.stderr.strip().splitlines()[-1].split()[2]
    hint = re.search(r"^To resume .*: kedro run (.*)$", result.stdout, re.M)
    assert hint, result.stdout[-3000:]
    args = hint.group(1).split()
    assert args == ["--runner=VertexRunner", "--pipeline", "reporting", "--runner-params", f"resume={run_id}"]

    metrics.write_text(json.dumps({"r2": 0.5, "mae": 1.0, "n_test": 3}))
    resumed = kedro_run(project, *args[1:])
    resumed_id, succeeded, _ = finished(resumed)
    assert resumed_id == run_id and succeeded == 2 and "(1 of them in an earlier run)" in resumed.stdout
    # the task that had succeeded did not run again
    assert re.search(
        r"\(bucket_prices\S*, count_rooms, create_rooms_report\): SUCCEEDED \(earlier run\)$", resumed.stdout, re.M
    )
    assert re.search(r"\(summarize_raw_data, create_report\): RUNNING", resumed.stdout), resumed.stdout[-3000:]
    report = json.loads((project / "data/08_reporting/report.json").read_text())
    assert report["model_metrics"]["r2"] == 0.5 and report["raw_data"]["n_rows"] > 0


def test_whole_pipeline_with_a_gcs_root(project: Path, gcs_emulator: str):
    import fsspec

    # `chains`: the undeclared raw_data_summary passes between two tasks through the bucket (`makespan` fuses them)
    set_config(
        project,
        **{"root: data/vertex_runs": "root: gs://test-bucket/runs", "  grouping: makespan\n": "  grouping: chains\n"},
    )
    result = kedro_run(project, STORAGE_EMULATOR_HOST=gcs_emulator)
    run_id, succeeded, run_dir = finished(result)

    assert run_dir == f"gs://test-bucket/runs/{run_id}"
    for path in CATALOG_OUTPUTS:
        assert written(project, path), f"{path} was not written"
    fs = fsspec.filesystem("gs")
    fs.invalidate_cache()
    stored = [Path(p).name for p in fs.find(f"test-bucket/runs/{run_id}")]
    assert any(name.startswith("raw_data_summary") for name in stored), stored
    assert sum(name.endswith(".log") for name in stored) == succeeded
    assert not (project / "data" / "vertex_runs").exists()
    assert not (project / "gs:").exists()
    # the tasks' artifact pointer files went beside the staged logs, never to /gcs/…
    assert "artifact pointer" not in result.stderr, result.stderr[-3000:]
    assert not Path(f"/gcs/test-bucket/runs/{run_id}").exists()


def _processes_in(directory: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if Path(entry / "cwd").resolve() == directory.resolve():
                    stat = (entry / "stat").read_text()
                    if stat.rsplit(")", 1)[1].split()[0] != "Z":
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs /proc")
def test_terminating_kedro_run_stops_the_task_processes(project: Path):
    import signal
    import time

    process = subprocess.Popen(
        kedro_cmd("run", "--runner=VertexRunner"),
        cwd=project,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    try:
        for line in process.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.rstrip().endswith(": RUNNING"):
                break
        time.sleep(0.5)
        # SIGTERM rather than SIGINT: a test runner started in the background may ignore SIGINT for its children
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines) + rest
    assert process.returncode == 130, output[-3000:]
    assert "Interrupted" in output and "CANCELLED" in output
    assert "Traceback" not in output
    deadline = time.monotonic() + 5
    while _processes_in(project) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_in(project) == []
    assert not (project / "data/08_reporting/report.json").exists()


VERSIONS_PIPELINE = '''
"""Two jobs that overlap: each versions `stamped` and a later task of the same job reads it back."""
import time
from pathlib import Path

from kedro.pipeline import Node, Pipeline


def stamp(job):
    return job


def hold(job, gate):
    if gate:  # this job waits here, after its `stamped` is saved, until the test opens the gate
        Path(f"data/holding_{job}").touch()
        deadline = time.time() + 120
        while not Path(gate).exists() and time.time() < deadline:
            time.sleep(0.05)
    return job


def read(stamped, held):
    Path(f"data/read_by_{held}.txt").write_text(stamped)


def create_pipeline(**kwargs):
    return Pipeline([
        Node(stamp, "params:job_tag", "stamped", name="stamp"),
        Node(hold, ["params:job_tag", "params:gate"], "held", name="hold"),
        Node(read, ["stamped", "held"], None, name="read"),
    ])
'''


def _start(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        kedro_cmd("run", "--runner=VertexRunner", *args),
        cwd=project,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_overlapping_jobs_read_their_own_versions_and_a_run_id_is_one_jobs_at_a_time(project: Path):
    """Job A saves its version of `stamped`, then waits; job B saves a later version and finishes; A's reading
    task must load A's version, not "latest". While A runs, a run with A's run id is refused with one line before
    any task starts; once A has ended, its run id resumes with A's data and version."""
    import time

    probe = project / "src" / "demo_project" / "pipelines" / "versions"
    probe.mkdir()
    (probe / "__init__.py").write_text("from .pipeline import create_pipeline\n")
    (probe / "pipeline.py").write_text(VERSIONS_PIPELINE)
    (project / "conf" / "base" / "parameters_versions.yml").write_text('job_tag: ${vertex:run_id}\ngate: ""\n')
    catalog = project / "conf" / "base" / "catalog.yml"
    catalog.write_text(
        catalog.read_text() + "\nstamped:\n  type: pickle.PickleDataset\n"
        "  filepath: data/stamped.pkl\n  versioned: true\n"
    )
    set_config(project, **{"  grouping: makespan\n": "  grouping: none\n"})  # stamp, hold and read: a task each
    gate = project / "data" / "go"
    versions = project / "data" / "stamped.pkl"

    job_a = _start(project, "--pipeline", "versions", "--params", f"gate={gate}", "--runner-params", "run_id=job-a")
    try:
        deadline = time.monotonic() + 120
        while not ((project / "data" / "holding_job-a").exists() and list(versions.glob("*/stamped.pkl"))):
            assert job_a.poll() is None and time.monotonic() < deadline, job_a.communicate()
            time.sleep(0.1)
        job_b = kedro_run(project, "--pipeline", "versions", "--runner-params", "run_id=job-b")
        finished(job_b)
        same_id = kedro_run(project, "--pipeline", "versions", "--runner-params", "run_id=job-a")
    finally:
        gate.touch()
        out, err = job_a.communicate(timeout=300)
    assert job_a.returncode == 0, (out + err)[-4000:]

    # each job read the version it saved itself, although job B's is the latest
    assert (project / "data" / "read_by_job-a.txt").read_text() == "job-a"
    assert (project / "data" / "read_by_job-b.txt").read_text() == "job-b"
    runs = project / "data" / "vertex_runs"
    recorded = {job: (runs / job / "save_version").read_text() for job in ("job-a", "job-b")}
    assert sorted(p.name for p in versions.iterdir()) == sorted(recorded.values())
    assert recorded["job-a"] < recorded["job-b"]

    # the second run with job A's id: one line naming the holder, non-zero, and no task of it started
    assert same_id.returncode != 0
    error = same_id.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: run id 'job-a' is in use by another run (pid "), error
    assert error.endswith("wait for it to end, or start this run with another run_id")
    assert "RUNNING" not in same_id.stdout and "Traceback" not in same_id.stderr

    # job A has ended: its id resumes with its stored data and its own version (not job B's later one)
    (project / "data" / "read_by_job-a.txt").unlink()
    resumed = kedro_run(project, "--pipeline", "versions", "--from-nodes", "read", "--runner-params", "run_id=job-a")
    assert finished(resumed)[1] == 1
    assert (project / "data" / "read_by_job-a.txt").read_text() == "job-a"
