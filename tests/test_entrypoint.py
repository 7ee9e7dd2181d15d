"""The task entrypoint, run as real subprocesses in a private copy of the example project.

The copy gets an extra ``vtest`` pipeline (written below) with nodes that report their parameters, fail, sleep,
fetch a URL or write slowly, so the tests can watch what a task does from the outside.
"""

from __future__ import annotations

import http.server
import json
import pickle
import re
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import PYTHON, subprocess_env
from test_task_package import SHARED

pytestmark = pytest.mark.slow

ENTRYPOINT = [PYTHON, "-m", "kedro_vertex_runner.entrypoint"]
SHARED_MODULES = tuple(f"kedro_vertex_runner.{name}" for name in SHARED)

VTEST_NODES = '''
"""Test-only nodes: report values, fail, sleep, fetch, write slowly."""
import time
import urllib.request


def param_types(p_list, p_dict, p_int, p_bool, p_float, p_str):
    values = {"p_list": p_list, "p_dict": p_dict, "p_int": p_int, "p_bool": p_bool, "p_float": p_float,
              "p_str": p_str}
    return {name: [type(value).__name__, value] for name, value in values.items()}


def resolved(run, job, commit, custom):
    return {"run": run, "job": job, "commit": commit, "custom": custom}


def explode(title):
    raise ValueError("boom: the input was bad")


def sleepy(title):
    time.sleep(120)
    return "never"


def fetch(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


class Slow:
    """Pickling this takes a long time: the task can be killed mid-write."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        open(self.marker, "w").close()
        time.sleep(120)
        return (Slow, (self.marker,))


def slow_value(marker):
    return [b"x" * (4 * 2**20), Slow(marker)]


def unpicklable(title):
    return (line for line in ["a generator cannot be pickled"])


def nap(value):
    time.sleep(120)
    return value
'''

VTEST_PIPELINE = """
from kedro.pipeline import Node, Pipeline

from .nodes import explode, fetch, nap, param_types, resolved, slow_value, sleepy, unpicklable


def create_pipeline(**kwargs):
    return Pipeline([
        Node(param_types, ["params:p_list", "params:p_dict", "params:p_int", "params:p_bool", "params:p_float",
                           "params:p_str"], "param_types", name="param_types"),
        Node(resolved, ["params:vt_run", "params:vt_job", "params:vt_commit", "params:vt_custom"], "resolved",
             name="resolved"),
        Node(explode, "params:report_title", "exploded", name="explode"),
        Node(sleepy, "params:report_title", "slept", name="sleepy"),
        Node(fetch, "params:vt_url", "fetched", name="fetch"),
        Node(slow_value, "params:vt_marker", "slow_blob", name="slow_value"),
        Node(unpicklable, "params:report_title", "generator_out", name="unpicklable"),
        Node(nap, "resolved", "napped", name="nap_after_resolved"),
    ])
"""

VTEST_PARAMS = """
p_list: [0]
p_dict: {}
p_int: 0
p_bool: false
p_float: 0.0
p_str: ""
vt_url: "http://localhost:1/"
vt_marker: "marker"
vt_run: ${vertex:run_id}
vt_job: ${vertex:job_name}
vt_commit: ${vertex:commit_id, dirty}
vt_custom: ${vertex:my_var, fallback}
"""


@pytest.fixture
def project(demo_project_with_outputs: Path) -> Path:
    # single nodes run here read catalog datasets (e.g. model_metrics) that a user's earlier `kedro run` wrote
    demo_project = demo_project_with_outputs
    package = demo_project / "src" / "demo_project" / "pipelines" / "vtest"
    package.mkdir()
    (package / "__init__.py").write_text("from .pipeline import create_pipeline\n")
    (package / "nodes.py").write_text(textwrap.dedent(VTEST_NODES))
    (package / "pipeline.py").write_text(textwrap.dedent(VTEST_PIPELINE))
    (demo_project / "conf" / "base" / "parameters_vtest.yml").write_text(VTEST_PARAMS)
    return demo_project


def run(project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        [*ENTRYPOINT, *args],
        cwd=project,
        env=subprocess_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def load(path: Path):
    with open(path, "rb") as stream:
        return pickle.load(stream)


def test_next_task_reads_the_persisted_intermediate(project: Path, tmp_path: Path):
    root = tmp_path / "root"
    first = run(project, "--pipeline", "__default__", "--node", "summarize_raw_data", "--run-id", "run-1",
                "--root", str(root))  # fmt: skip
    assert first.returncode == 0, first.stderr
    stored = root / "run-1" / "raw_data_summary.pkl"
    assert stored.is_file()
    assert not list((root / "run-1").glob("*.tmp"))

    report = project / "data" / "08_reporting" / "report.json"
    report.unlink()
    second = run(project, "--pipeline", "__default__", "--node", "create_report", "--run-id", "run-1",
                 "--root", str(root))  # fmt: skip
    assert second.returncode == 0, second.stderr
    summary = load(stored)
    assert report.is_file()
    assert summary  # the value produced by the first process


def test_a_retried_task_saves_its_versioned_output_again_with_the_jobs_version(project: Path, tmp_path: Path):
    """`model.regressor` is versioned: the task saves it with the job's recorded version, and a second attempt of
    the same job (a retry, a resumed run) replaces that version instead of failing on Kedro's "must not exist"."""
    import shutil

    models = project / "data" / "06_models" / "regressor.pkl"
    shutil.rmtree(models, ignore_errors=True)
    args = ("--pipeline", "__default__", "--node", "model.train_model", "--run-id", "job-1", "--root", str(tmp_path))
    for attempt in (1, 2):
        result = run(project, *args)
        assert result.returncode == 0, (attempt, result.stderr[-3000:])
    version = (tmp_path / "job-1" / "save_version").read_text()
    assert [p.name for p in models.iterdir()] == [version]
    assert (models / version / "regressor.pkl").is_file()


def test_intermediate_inside_one_task_stays_in_memory(project: Path, tmp_path: Path):
    root = tmp_path / "root"
    result = run(project, "--pipeline", "reporting", "--node", "summarize_raw_data", "--node", "create_report",
                 "--run-id", "run-2", "--root", "relative-root")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert not (project / "relative-root" / "run-2" / "raw_data_summary.pkl").exists()
    assert not root.exists()


def test_missing_intermediate_names_dataset_and_path(project: Path, tmp_path: Path):
    result = run(project, "--pipeline", "__default__", "--node", "create_report", "--run-id", "run-3",
                 "--root", str(tmp_path / "root"))  # fmt: skip
    assert result.returncode == 1
    line = last_line(result.stderr)
    expected = str(tmp_path / "root" / "run-3" / "raw_data_summary.pkl")
    assert line.startswith("Error: node 'create_report' failed: DatasetError:"), line
    assert "'raw_data_summary'" in line and expected in line and "run in this job" in line
    assert "Traceback" not in result.stderr


def test_runtime_params_arrive_typed(project: Path, tmp_path: Path):
    root = tmp_path / "root"
    result = run(
        project, "--pipeline", "vtest", "--node", "param_types", "--run-id", "typed", "--root", str(root),
        '--param=LIST:p_list=[1, "two", 3.5]',
        '--param=STRUCT:p_dict={"a": {"b": [1, 2]}, "c": null}',
        "--param=NUMBER_INTEGER:p_int=42",
        "--param=BOOLEAN:p_bool=true",
        "--param=NUMBER_DOUBLE:p_float=2",
        "--param=STRING:p_str=  spaced; $HOME 'quoted' ",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert load(root / "typed" / "param_types.pkl") == {
        "p_list": ["list", [1, "two", 3.5]],
        "p_dict": ["dict", {"a": {"b": [1, 2]}, "c": None}],
        "p_int": ["int", 42],
        "p_bool": ["bool", True],
        "p_float": ["float", 2.0],
        "p_str": ["str", "  spaced; $HOME 'quoted' "],
    }


def test_bad_param_value_is_one_line(project: Path):
    result = run(project, "--pipeline", "vtest", "--node", "param_types", "--param=NUMBER_INTEGER:p_int=4x")
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: --param p_int NUMBER_INTEGER: expected a whole number, got '4x'"


def test_failing_node_exit_code_and_final_line(project: Path, tmp_path: Path):
    result = run(project, "--pipeline", "vtest", "--node", "explode", "--run-id", "f", "--root", str(tmp_path))
    assert result.returncode == 1
    assert last_line(result.stderr) == "Error: node 'explode' failed: ValueError: boom: the input was bad"
    # the node's own error keeps its traceback, above the final line: the user's frame, not Kedro's machinery
    assert "Traceback (most recent call last; frames of Kedro left out" in result.stderr
    assert 'vtest/nodes.py", line' in result.stderr and 'raise ValueError("boom' in result.stderr
    assert "kedro/runner/" not in result.stderr and "kedro/pipeline/node.py" not in result.stderr
    # output to a file or pipe is plain logging, one record per line, no rich boxes or column padding
    output = result.stdout + result.stderr
    assert not set("╭╰│─") & set(output), output
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - kedro\.pipeline\.node - INFO - Running node: explode", output, re.M
    ), output
    assert "register_new_resolver" not in output

    debug = run(project, "--pipeline", "vtest", "--node", "explode", "--run-id", "f", "--root", str(tmp_path),
                env={"KEDRO_VERTEX_DEBUG": "1"})  # fmt: skip
    assert "kedro/runner/" in debug.stderr and last_line(debug.stderr) == last_line(result.stderr)


def test_unknown_pipeline_is_one_line(project: Path):
    result = run(project, "--pipeline", "nope", "--node", "clean_houses")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Error: unknown pipeline 'nope': the project registers ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_unknown_node_is_one_line_even_with_shell_metacharacters_in_its_name(project: Path, tmp_path: Path):
    pwned = tmp_path / "pwned"
    name = f"x; touch {pwned} && echo $(id) | cat `true` 'q' \"d\""
    result = run(project, "--pipeline", "data_processing", "--pipeline", "model", "--node", name)
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: unknown node {name!r}: not in pipeline(s) data_processing, model"
    assert not pwned.exists()


def test_timeout_kills_the_task_and_names_the_node(project: Path):
    started = time.monotonic()
    result = run(project, "--pipeline", "vtest", "--node", "sleepy", "--timeout", "4", timeout=60)
    assert result.returncode == 124
    assert last_line(result.stderr) == "Error: node 'sleepy' timed out after 4 s"
    assert time.monotonic() - started < 30


def test_unpicklable_output_names_the_dataset(project: Path, tmp_path: Path):
    result = run(project, "--pipeline", "vtest", "--node", "unpicklable", "--run-id", "u", "--root", str(tmp_path))
    assert result.returncode == 1
    line = last_line(result.stderr)
    assert line.startswith("Error: node 'unpicklable' failed: DatasetError:"), line
    assert "dataset 'generator_out' cannot be pickled" in line and "TypeError" in line
    assert not list((tmp_path / "u").glob("*"))


def test_host_alias_resolves_inside_the_task(project: Path, tmp_path: Path):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"hello from {self.headers['Host']}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        result = run(
            project, "--pipeline", "vtest", "--node", "fetch", "--run-id", "h", "--root", str(tmp_path),
            "--host-alias=127.0.0.1=mlflow.vertex-test.invalid,other.invalid",
            f"--param=STRING:vt_url=http://mlflow.vertex-test.invalid:{port}/",
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert load(tmp_path / "h" / "fetched.pkl") == f"hello from mlflow.vertex-test.invalid:{port}"


def test_resolvers_see_run_context_and_forwarded_variables(project: Path, tmp_path: Path):
    result = run(
        project, "--pipeline", "vtest", "--node", "resolved", "--run-id", "ctx-1", "--job-name", "my-job",
        "--root", str(tmp_path),
        env={"KEDRO_CONFIG_MY_VAR": "hello", "KEDRO_CONFIG_COMMIT_ID": "abc123"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert load(tmp_path / "ctx-1" / "resolved.pkl") == {
        "run": "ctx-1", "job": "my-job", "commit": "abc123", "custom": "hello",
    }  # fmt: skip


def test_disable_switch_leaves_values_literal_with_a_warning(project: Path, tmp_path: Path):
    result = run(
        project, "--pipeline", "vtest", "--node", "resolved", "--run-id", "off", "--root", str(tmp_path),
        env={"KEDRO_VERTEXAI_DISABLE_CONFIG_HOOK": "true"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert load(tmp_path / "off" / "resolved.pkl") == {
        "run": "${vertex:run_id}", "job": "${vertex:job_name}", "commit": "${vertex:commit_id, dirty}",
        "custom": "${vertex:my_var, fallback}",
    }  # fmt: skip
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "DISABLE_CONFIG_HOOK" in line]
    assert len(warnings) == 1, warnings  # once per process, on one line
    assert "KEDRO_VERTEXAI_DISABLE_CONFIG_HOOK is set" in warnings[0]
    assert "${vertex:…} values in the config will not be substituted" in warnings[0]


def test_missing_resolver_value_is_one_line(project: Path, tmp_path: Path):
    (project / "conf" / "base" / "parameters_vtest2.yml").write_text("vt_needed: ${vertex:not_set_anywhere}\n")
    result = run(project, "--pipeline", "vtest", "--node", "explode", "--root", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("Error: ${vertex:not_set_anywhere} has no value: set "
                                            "KEDRO_CONFIG_NOT_SET_ANYWHERE or give a default")  # fmt: skip
    assert len(result.stderr.strip().splitlines()) == 1


def test_sigkill_mid_write_leaves_no_partial_dataset(project: Path, tmp_path: Path):
    marker = tmp_path / "pickling-started"
    run_dir = tmp_path / "root" / "kill"
    target = run_dir / "slow_blob.pkl"

    def start_and_kill() -> None:
        proc = subprocess.Popen(
            [*ENTRYPOINT, "--pipeline", "vtest", "--node", "slow_value", "--run-id", "kill",
             "--root", str(tmp_path / "root"), f"--param=STRING:vt_marker={marker}"],
            cwd=project, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert proc.poll() is None, "the task ended before it started writing"
                assert time.monotonic() < deadline
                time.sleep(0.05)
            # the 4 MiB before the slow object are already streaming into a temporary file
            temps = list(run_dir.glob(".slow_blob.pkl.*.tmp"))
            assert temps and temps[0].stat().st_size >= 4 * 2**20
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    start_and_kill()
    assert not target.exists()

    # with a complete value from an earlier attempt, the kill leaves that value in place
    target.write_bytes(pickle.dumps("previous complete value"))
    marker.unlink()
    start_and_kill()
    assert load(target) == "previous complete value"


def test_undeclared_dataset_on_gcs(project: Path, gcs_emulator: str):
    import gcsfs

    env = {"STORAGE_EMULATOR_HOST": gcs_emulator}
    root = "gs://test-bucket/vertex-runs"
    first = run(project, "--pipeline", "__default__", "--node", "summarize_raw_data", "--run-id", "gcs-1",
                "--root", root, env=env)  # fmt: skip
    assert first.returncode == 0, first.stderr
    fs = gcsfs.GCSFileSystem(token="anon", endpoint_url=gcs_emulator)
    path = "test-bucket/vertex-runs/gcs-1/raw_data_summary.pkl"
    assert fs.exists(path)
    summary = pickle.loads(fs.cat_file(path))

    report = project / "data" / "08_reporting" / "report.json"
    report.unlink()
    second = run(project, "--pipeline", "__default__", "--node", "create_report", "--run-id", "gcs-1",
                 "--root", root, env=env)  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert report.is_file()
    assert summary  # a real value went through the bucket


WRAPPER = """
import json, sys
from kedro_vertex_runner.task.entrypoint import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    json.dump(sorted(sys.modules), out)
sys.exit(code)
"""


#: WRAPPER, then every module of kedro_vertex_runner.task imported as well
TASK_PACKAGE_WRAPPER = WRAPPER.replace(
    "with open(sys.argv[1]",
    "import importlib, pkgutil, kedro_vertex_runner.task as task\n"
    "ran = sorted(sys.modules)\n"
    "for found in pkgutil.iter_modules(task.__path__):\n"
    "    importlib.import_module(f'kedro_vertex_runner.task.{found.name}')\n"
    "with open(sys.argv[1]",
).replace("json.dump(sorted(sys.modules), out)", "json.dump([ran, sorted(sys.modules)], out)")


def test_task_never_imports_kfp_aiplatform_or_mlflow(project: Path, tmp_path: Path):
    # nor the launcher, the compiler, the CLI or a backend: what a task loads of the plugin is task/ and the shared
    # modules (tests/test_task_package.py reads the same rule from the source)
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(TASK_PACKAGE_WRAPPER)
    dump = tmp_path / "modules.json"
    result = subprocess.run(
        [PYTHON, str(wrapper), str(dump), "--pipeline", "__default__", "--node", "summarize_raw_data",
         "--run-id", "imports", "--root", str(tmp_path / "root")],
        cwd=project, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ran, modules = json.loads(dump.read_text())
    assert "demo_project.pipelines.reporting.nodes" in ran  # the task did run
    assert {"kedro_vertex_runner.task.mlflow_run", "kedro_vertex_runner.task.code_unpack"} <= set(modules)
    unwanted = [m for m in modules if m.split(".")[0] in {"kfp", "mlflow", "kedro_mlflow"}]
    unwanted += [m for m in modules if m.startswith("google.cloud.aiplatform")]
    assert unwanted == []
    plugin = [m for m in ran if m.startswith("kedro_vertex_runner.")]
    allowed = ("kedro_vertex_runner.task", *SHARED_MODULES)
    assert [m for m in plugin if m not in allowed and not m.startswith(tuple(f"{a}." for a in allowed))] == []


def test_node_pipeline_imports_only_the_node_modules_it_needs(project: Path, tmp_path: Path):
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    root = tmp_path / "root"

    def task(run_id: str, *nodes: str, source: str = "reporting") -> tuple[subprocess.CompletedProcess, list]:
        dump = tmp_path / f"{run_id}.json"
        node_args = [arg for node in nodes for arg in ("--node", node)]
        result = subprocess.run(
            [PYTHON, str(wrapper), str(dump), "--pipeline", "__default__", "--node-pipeline", source, *node_args,
             "--run-id", run_id, "--root", str(root)],
            cwd=project, env=subprocess_env(), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result, json.loads(dump.read_text())

    # every dataset crosses the task's boundary: the job's pipeline (and scikit-learn, via `model`) is never loaded
    _, modules = task("alone", "summarize_raw_data")
    assert (root / "alone" / "raw_data_summary.pkl").is_file()
    assert "demo_project.pipelines.reporting.nodes" in modules
    assert not [m for m in modules if m.startswith(("sklearn", "demo_project.pipelines.model"))]

    # produced and consumed inside: the job's pipeline decides whether another task reads it (none does here)
    _, modules = task("inside", "summarize_raw_data", "create_report")
    assert "demo_project.pipelines.model.nodes" in modules
    assert not (root / "inside" / "raw_data_summary.pkl").exists()

    # a --node-pipeline that lacks a node falls back to the job's pipeline, with a warning
    result, _ = task("fallback", "clean_houses")
    assert "--node-pipeline reporting does not hold every node of this task: loading __default__" in result.stdout


def test_help_is_cheap():
    result = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "kedro_vertex_runner.entrypoint", "--help"],
        env=subprocess_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0
    assert "--host-alias" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not {m for m in imported if m.split(".")[0] in {"kfp", "mlflow", "kedro"}}


def test_exit_handler_task_runs_like_any_other(project: Path, tmp_path: Path):
    result = run(project, "--pipeline", "notify", "--node", "log_run_finished", "--exit-handler",
                 "--run-id", "exit-1", "--job-name", "job-x", "--root", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Completed node: log_run_finished" in " ".join(result.stdout.split())


def test_project_dir_option_and_console_script(project: Path, tmp_path: Path):
    script = Path(PYTHON).parent / "kedro-vertex-entrypoint"
    result = subprocess.run(
        [str(script), "--project-dir", str(project), "--pipeline", "reporting", "--node", "summarize_raw_data",
         "--run-id", "pd", "--root", "runs"],
        cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (project / "runs" / "pd" / "raw_data_summary.pkl").is_file()


def test_mlflow_hooks_follow_project_config(tmp_path: Path, monkeypatch):
    from kedro_vertex_runner.task.entrypoint import mlflow_wanted

    conf = tmp_path / "conf"
    (conf / "base").mkdir(parents=True)
    monkeypatch.delenv("KEDRO_VERTEX_MLFLOW", raising=False)
    monkeypatch.delenv("KEDRO_VERTEX_JOB_NAME", raising=False)
    assert not mlflow_wanted(conf)
    (conf / "local").mkdir()
    (conf / "local" / "mlflow.yml").write_text("server: {}\n")
    assert mlflow_wanted(conf)
    # inside a compiled job only the compiler's switch turns tracking on
    monkeypatch.setenv("KEDRO_VERTEX_JOB_NAME", "demo-job")
    assert not mlflow_wanted(conf)
    monkeypatch.setenv("KEDRO_VERTEX_MLFLOW", "1")
    assert mlflow_wanted(conf)
    monkeypatch.setenv("KEDRO_VERTEX_MLFLOW", "0")
    assert not mlflow_wanted(conf)


def test_values_starting_with_a_dash_arrive_intact(project: Path, tmp_path: Path):
    result = run(
        project, "--pipeline=vtest", "--node=resolved", "--node=param_types", "--run-id=run-1", "--job-name=--job",
        f"--root={tmp_path}", "--param=STRING:p_str=-draft", "--param=NUMBER_INTEGER:p_int=-3",
        "--host-alias=127.0.0.1=-odd.invalid",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert load(tmp_path / "run-1" / "resolved.pkl")["run"] == "run-1"
    assert load(tmp_path / "run-1" / "resolved.pkl")["job"] == "--job"
    types = load(tmp_path / "run-1" / "param_types.pkl")
    assert types["p_str"] == ["str", "-draft"] and types["p_int"] == ["int", -3]


def test_a_run_id_starting_with_a_dash_is_one_line(capsys: pytest.CaptureFixture[str]):
    """It arrives intact, and is refused: a run id names a folder and must start with a letter or digit."""
    from kedro_vertex_runner.task.entrypoint import main

    assert main(["--node=x", "--run-id=-run"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("Error: run id '-run': expected an id such as ") and len(error.splitlines()) == 1


@pytest.mark.parametrize("flag", ["--run-id", "--job-name"])
def test_an_unsubstituted_placeholder_is_refused(flag: str, capsys: pytest.CaptureFixture[str]):
    from kedro_vertex_runner.task.entrypoint import main

    value = "{{$.pipeline_job_uuid}}" if flag == "--run-id" else "{{$.pipeline_job_name}}"
    assert main(["--node=x", f"{flag}={value}"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"Error: {flag}={value}: the placeholder was not substituted")
    assert "every job would share one folder" in error and len(error.splitlines()) == 1


def test_a_killed_task_leaves_the_running_node_in_its_report(project: Path, tmp_path: Path):
    from kedro_vertex_runner.task.contract import TASK_REPORT_ENV, TaskReport

    report = tmp_path / "report.json"
    proc = subprocess.Popen(
        [*ENTRYPOINT, "--pipeline=vtest", "--node=resolved", "--node=nap_after_resolved", "--run-id=k",
         f"--root={tmp_path}"],
        cwd=project, env=subprocess_env(**{TASK_REPORT_ENV: str(report)}), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while TaskReport.read(report) != TaskReport("running", "nap_after_resolved"):
            assert proc.poll() is None, "the task ended before its second node started"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert TaskReport.read(report).failed_node == "nap_after_resolved"

    # a task that ends by itself says how
    done = run(project, "--pipeline=vtest", "--node=explode", f"--root={tmp_path}", env={TASK_REPORT_ENV: str(report)})
    assert done.returncode == 1
    assert TaskReport.read(report) == TaskReport("failed", "explode", "ValueError: boom: the input was bad")
