"""MLflow tracking: one run per job execution, joined by every task (kedro_vertex_runner.task.mlflow_run,
kedro_vertex_runner.mlflow_tracking).

Tasks are simulated by real subprocesses talking to a real ``mlflow server``; identity tokens come from a local
fake GCE metadata server through google-auth. The end-to-end test at the bottom needs the entrypoint, the
compiler and the local backend wired to this module (see its docstring).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import PYTHON, VERTEX_CONFIG_HEAD, kedro_cmd, subprocess_env
from fake_kfp import FakeKfp
from fake_logging import FakeLogging
from fake_metadata import FakeMetadataServer
from fake_vertex import FakeVertex

from kedro_vertex_runner import mlflow_tracking as mt
from kedro_vertex_runner.backends import get_backend
from kedro_vertex_runner.backends.base import JobFailed, JobHandle, JobRequest, SilentReporter, TaskState
from kedro_vertex_runner.backends.vertex.cloud_logging import LOGGING_ENDPOINT_ENV
from kedro_vertex_runner.config import validate_config
from kedro_vertex_runner.errors import PluginError, exit_with
from kedro_vertex_runner.project import close_mlflow_run
from kedro_vertex_runner.task import mlflow_run as mr

# the ``mlflow_server`` fixture
pytest_plugins = ("mlflow_fixtures",)

EXPERIMENT = "kedro-vertex-tests"

TASK_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import mlflow
    from kedro_vertex_runner.task import mlflow_run as mr

    spec = json.loads(sys.argv[1])
    mlflow.set_tracking_uri(spec["uri"])
    experiment = mlflow.get_experiment_by_name(spec["experiment"])
    time.sleep(spec.get("start_delay", 0))
    tags = mr.job_tags(job_id=spec["job_id"], job_name=spec["job_name"], kedro_env="base",
                       pipeline_names=["__default__"], commit_id="abc123",
                       console_url="https://console.example/runs/{job_name}")
    key = mr.task_key(spec["nodes"])
    run_id = mr.start_task(spec["job_id"], experiment_id=experiment.experiment_id, tags=tags, key=key,
                           create=spec["create"], exit_handler=spec.get("exit_handler", False), wait=60)
    ok = False
    try:
        mlflow.log_param("shared", 42)  # every task logs the same parameter with the same value
        mlflow.log_param("p_" + spec["name"], spec["name"])
        mlflow.log_metric("m_" + spec["name"], 1.5)
        mlflow.log_text(spec["name"], spec["name"] + ".txt")
        time.sleep(spec.get("work", 0))
        if spec.get("fail"):
            raise RuntimeError("node failed")
        ok = True
    finally:
        status = mr.end_task(run_id, key=key, ok=ok, expected_tasks=spec["expected"],
                             finalizer=spec.get("finalizer", "tasks"), exit_handler=spec.get("exit_handler", False))
        print(json.dumps({"run_id": run_id, "status": status}))
    """
)


@pytest.fixture(scope="module")
def experiment_id(mlflow_server: str) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    existing = client.get_experiment_by_name(EXPERIMENT)
    return existing.experiment_id if existing else client.create_experiment(EXPERIMENT)


@pytest.fixture
def client(mlflow_server: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(mlflow_server)


def _run_tasks(uri: str, job_id: str, tasks: list[dict], tmp_path: Path) -> list[dict]:
    """Run the simulated tasks of one job in parallel subprocesses; returns their outcomes."""
    script = tmp_path / "task.py"
    script.write_text(TASK_SCRIPT)
    expected = sum(1 for t in tasks if not t.get("exit_handler"))

    def run(task: dict) -> dict:
        spec = {
            "uri": uri,
            "experiment": EXPERIMENT,
            "job_id": job_id,
            "job_name": f"demo-{job_id[:8]}",
            "expected": expected,
            "nodes": [task["name"]],
            **task,
        }
        done = subprocess.run(
            [PYTHON, str(script), json.dumps(spec)], capture_output=True, text=True, env=subprocess_env(), timeout=120
        )
        outcome = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else {}
        return {"rc": done.returncode, "stderr": done.stderr, **outcome}

    parallel = [t for t in tasks if not t.get("after")]
    with ThreadPoolExecutor(len(parallel)) as pool:
        results = list(pool.map(run, parallel))
    results += [run(t) for t in tasks if t.get("after")]
    return results


def _job_runs(client, experiment_id: str, job_id: str) -> list:
    return client.search_runs([experiment_id], filter_string=f"tags.`{mr.TAG_JOB_ID}` = '{job_id}'")


def test_parallel_tasks_share_one_finished_run(mlflow_server, experiment_id, client, tmp_path):
    job_id = uuid.uuid4().hex
    tasks = [
        {"name": "train", "create": False},  # starts before the creator and waits for its run
        {"name": "split", "create": True, "start_delay": 1.5},
        {"name": "report", "create": False, "after": True},
    ]
    results = _run_tasks(mlflow_server, job_id, tasks, tmp_path)
    assert all(r["rc"] == 0 for r in results), [r["stderr"][-1500:] for r in results]
    runs = _job_runs(client, experiment_id, job_id)
    assert len(runs) == 1
    run = runs[0]
    assert {r["run_id"] for r in results} == {run.info.run_id}
    assert run.info.status == "FINISHED"
    assert results[-1]["status"] == "FINISHED" and {r["status"] for r in results[:-1]} == {"RUNNING"}
    assert run.data.params == {"shared": "42", "p_train": "train", "p_split": "split", "p_report": "report"}
    assert set(run.data.metrics) == {"m_train", "m_split", "m_report"}
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"train.txt", "split.txt", "report.txt"}
    tags = run.data.tags
    assert tags[mr.TAG_JOB_NAME] == f"demo-{job_id[:8]}" == run.info.run_name
    assert tags[mr.TAG_CONSOLE_URL] == f"https://console.example/runs/demo-{job_id[:8]}"
    assert tags[mr.TAG_ENV] == "base" and tags[mr.TAG_PIPELINE] == "__default__"
    assert tags[mr.TAG_COMMIT] == tags["mlflow.source.git.commit"] == "abc123"


def test_concurrent_creators_converge_on_one_run(mlflow_server, experiment_id, client, tmp_path):
    """The fallback path: several tasks creating the run at once keep one and delete their duplicates."""
    job_id = uuid.uuid4().hex
    tasks = [{"name": f"root{i}", "create": True} for i in range(3)]
    results = _run_tasks(mlflow_server, job_id, tasks, tmp_path)
    assert all(r["rc"] == 0 for r in results), [r["stderr"][-1500:] for r in results]
    runs = _job_runs(client, experiment_id, job_id)
    assert len(runs) == 1 and {r["run_id"] for r in results} == {runs[0].info.run_id}
    assert runs[0].info.status == "FINISHED"
    assert set(runs[0].data.params) == {"shared", "p_root0", "p_root1", "p_root2"}


def test_failed_task_fails_the_run(mlflow_server, experiment_id, client, tmp_path):
    job_id = uuid.uuid4().hex
    tasks = [
        {"name": "ok", "create": True, "work": 2},  # still running when the other fails, ends after it
        {"name": "bad", "create": False, "fail": True},
    ]
    results = _run_tasks(mlflow_server, job_id, tasks, tmp_path)
    assert [r["rc"] != 0 for r in results] == [False, True]
    (run,) = _job_runs(client, experiment_id, job_id)
    assert run.info.status == "FAILED"
    assert {r["status"] for r in results} == {"FAILED"}


def test_exit_handler_decides_the_status(mlflow_server, experiment_id, client, tmp_path):
    job_id = uuid.uuid4().hex
    tasks = [
        {"name": "a", "create": True, "finalizer": "exit-handler"},
        {"name": "b", "create": False, "finalizer": "exit-handler"},
        {"name": "on_exit", "create": False, "exit_handler": True, "after": True, "finalizer": "exit-handler"},
    ]
    results = _run_tasks(mlflow_server, job_id, tasks, tmp_path)
    assert all(r["rc"] == 0 for r in results)
    assert [r["status"] for r in results] == ["RUNNING", "RUNNING", "FINISHED"]
    (run,) = _job_runs(client, experiment_id, job_id)
    assert run.info.status == "FINISHED" and "p_on_exit" in run.data.params


def test_two_executions_get_two_runs(mlflow_server, experiment_id, client, tmp_path):
    """Scheduled firings have distinct job uuids and must never share a run."""
    job_ids = [uuid.uuid4().hex, uuid.uuid4().hex]
    for job_id in job_ids:
        results = _run_tasks(mlflow_server, job_id, [{"name": "only", "create": True}], tmp_path)
        assert results[0]["rc"] == 0, results[0]["stderr"][-1500:]
    run_ids = {_job_runs(client, experiment_id, j)[0].info.run_id for j in job_ids}
    assert len(run_ids) == 2
    for job_id in job_ids:
        (run,) = _job_runs(client, experiment_id, job_id)
        assert run.info.status == "FINISHED"


def test_job_status_rules():
    assert mr.job_status({}, 2) == "RUNNING"
    assert mr.job_status({"a": "FINISHED"}, 2) == "RUNNING"
    assert mr.job_status({"a": "FINISHED", "b": "FINISHED"}, 2) == "FINISHED"
    assert mr.job_status({"a": "FINISHED", "b": "FINISHED"}, None) == "RUNNING"  # the exit handler decides
    assert mr.job_status({"a": "FAILED", "b": "FINISHED"}, 2) == "FAILED"
    assert mr.exit_handler_status({"a": "FINISHED"}, True) == "FINISHED"  # b cached or skipped: not counted
    assert mr.exit_handler_status({"a": "FINISHED", "b": "RUNNING"}, True) == "FAILED"  # b was killed
    assert mr.exit_handler_status({"a": "FINISHED"}, False) == "FAILED"  # the on-exit nodes failed


# ---------------------------------------------------------------------------------------------------------------
# identity tokens

TOKEN_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from kedro_vertex_runner.task import mlflow_run as mr
    from kedro_vertex_runner.errors import PluginError
    from mlflow.utils.credentials import get_default_host_creds
    try:
        mr.use_identity_token(sys.argv[1])
    except PluginError as exc:
        print("ERROR", exc)
        sys.exit(3)
    token = os.environ["MLFLOW_TRACKING_TOKEN"]
    assert get_default_host_creds("https://mlflow.example").token == token
    print(token)
    """
)


def test_identity_token_minted_from_metadata_server(tmp_path):
    audience = "https://mlflow-abc-ew.a.run.app"
    with FakeMetadataServer() as metadata:
        done = subprocess.run(
            [PYTHON, "-c", TOKEN_SCRIPT, audience],
            capture_output=True,
            text=True,
            env=subprocess_env(**metadata.env()),
            timeout=60,
        )
    assert done.returncode == 0, done.stderr[-2000:]
    token = done.stdout.strip()
    _, payload, _ = token.split(".")
    import base64

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == audience
    assert metadata.audiences == [audience]
    assert token not in done.stderr  # never logged


def test_identity_token_error_is_one_line():
    env = subprocess_env(
        GCE_METADATA_HOST="127.0.0.1:9",
        GCE_METADATA_IP="127.0.0.1:9",
        GCE_METADATA_TIMEOUT="1",
        GCE_METADATA_DETECT_RETRIES="1",
    )
    done = subprocess.run(
        [PYTHON, "-c", TOKEN_SCRIPT, "https://x.example"], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 3
    line = done.stdout.strip()
    assert "\n" not in line and "cannot mint a Google identity token" in line and "service_account" in line


def test_audience_only_in_compiled_env():
    env = mt.compiled_task_env(
        tasks=[["a"], ["b"]],
        roots=[["a"]],
        exit_handler=False,
        project_id="p",
        region="europe-west1",
        audience="https://mlflow.example",
    )
    assert env[mr.ENV_AUDIENCE] == "https://mlflow.example"
    assert env[mr.ENV_CREATOR] == mr.task_key(["a"]) and env[mr.ENV_TASKS] == "2"
    assert not any("TOKEN" in name for name in env)


# ---------------------------------------------------------------------------------------------------------------
# tracking URI checks, imports, launcher


@pytest.mark.parametrize("uri", [None, "mlruns", "./mlruns", "file:///tmp/mlruns", "/abs/mlruns"])
def test_file_store_gets_one_line(uri, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    with pytest.raises(PluginError) as info:
        mt.check_tracking_uri(uri)
    message = str(info.value)
    assert "\n" not in message and "sqlite:///mlflow.db" in message and "mlflow.yml" in message
    assert "task" not in message and "Vertex" not in message  # also guards plain `kedro run`: no runner assumed
    if uri is None:
        assert "(kedro-mlflow's default: mlflow.yml sets none)" in message


def test_file_store_message_names_where_the_uri_comes_from(monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "./mlruns")
    with pytest.raises(
        PluginError,
        match=r"^MLflow tracking URI './mlruns' is a local file store, which MLflow 3 "
        r"refuses \(from MLFLOW_TRACKING_URI\): set",
    ):
        mt.check_tracking_uri(None)
    with pytest.raises(
        PluginError,
        match=r"^MLflow tracking URI 'mlruns' is a local file store, which MLflow 3 refuses "
        r"and the job's tasks could not share \(set in mlflow.yml\): set",
    ):
        mt.check_tracking_uri("mlruns", backend="local")


def test_project_without_mlflow_yml_is_not_stopped(tmp_path, monkeypatch):
    """kedro-mlflow installed for other projects: a project with no mlflow.yml has not chosen MLflow, so the check
    lets kedro-mlflow's documented default work instead of stopping the run."""
    from kedro.config import OmegaConfigLoader

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE"):  # unset now, and as before after the test
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    # kedro-mlflow's hooks on, whichever project an earlier test of this process bootstrapped (settings are global)
    monkeypatch.setattr(mt, "kedro_mlflow_active", lambda: True)
    (tmp_path / "base").mkdir()
    (tmp_path / "local").mkdir()

    class Context:
        config_loader = OmegaConfigLoader(str(tmp_path), base_env="base", default_run_env="local")

    mt.check_project_tracking(Context())
    assert mt.os.environ["MLFLOW_ALLOW_FILE_STORE"] == "true"
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "false")  # a choice the user made is kept
    mt.check_project_tracking(Context())
    assert mt.os.environ["MLFLOW_ALLOW_FILE_STORE"] == "false"
    with pytest.raises(PluginError, match="the job's tasks could not share"):  # VertexRunner with tracking on
        mt.check_project_tracking(Context(), backend="local")


def test_server_and_sqlite_uris_pass():
    mt.check_tracking_uri("sqlite:///mlflow.db", backend="local")
    mt.check_tracking_uri("https://mlflow.example", backend="vertex")
    with pytest.raises(PluginError, match="not reachable from tasks on Vertex AI"):
        mt.check_tracking_uri("sqlite:///mlflow.db", backend="vertex")


def test_project_check_reads_mlflow_yml(tmp_path, monkeypatch):
    from kedro.config import OmegaConfigLoader

    monkeypatch.setattr(mt, "kedro_mlflow_active", lambda: True)  # whichever project an earlier test bootstrapped

    (tmp_path / "base").mkdir()
    (tmp_path / "local").mkdir()
    (tmp_path / "base" / "mlflow.yml").write_text("server:\n  mlflow_tracking_uri: mlruns\n")
    loader = OmegaConfigLoader(str(tmp_path), base_env="base", default_run_env="local")
    assert mt.project_tracking_uri(loader) == "mlruns"

    class Context:
        config_loader = loader

    with pytest.raises(PluginError, match="local file store"):
        mt.check_project_tracking(Context())


def _loader(tmp_path: Path, mlflow_yml: str):
    from kedro.config import OmegaConfigLoader

    (tmp_path / "base").mkdir()
    (tmp_path / "local").mkdir()
    (tmp_path / "base" / "mlflow.yml").write_text(mlflow_yml)

    class Context:
        env = None
        config_loader = OmegaConfigLoader(str(tmp_path), base_env="base", default_run_env="local")

    return Context()


def test_check_stays_out_of_the_way_where_kedro_mlflow_would_not_fail(tmp_path, monkeypatch):
    """The hook runs for every Kedro command: it may only stop one kedro-mlflow is about to crash anyway."""
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    context = _loader(tmp_path, "server:\n  mlflow_tracking_uri: mlruns\n")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow accepts the file store then
    mt.check_project_tracking(context)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")

    class Mlflow:  # an MLflow run already active in the process: kedro-mlflow skips its set-up
        @staticmethod
        def active_run():
            return object()

    monkeypatch.setitem(sys.modules, "mlflow", Mlflow)
    mt.check_project_tracking(context)
    monkeypatch.delitem(sys.modules, "mlflow")
    monkeypatch.setattr(mt, "kedro_mlflow_active", lambda: False)  # not installed, or disabled in settings.py
    mt.check_project_tracking(context)


def test_check_leaves_a_broken_mlflow_yml_to_kedro_mlflow(tmp_path):
    mt.check_project_tracking(_loader(tmp_path, "server: [unclosed\n"))


def test_kedro_mlflow_default_env_tag(tmp_path):
    context = _loader(tmp_path, "{}\n")
    assert mr.kedro_env(context) == "local"
    context.env = "prod"
    assert mr.kedro_env(context) == "prod"


HOOK_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro_vertex_runner import mlflow_tracking as mt

    project = Path.cwd()
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        context = session.load_context()       # every plugin hook fired: no exit
        before = {m for m in sys.modules if m.split(".")[0] in ("mlflow", "kedro_mlflow")}
        started = time.perf_counter()
        mt.check_project_tracking(context)     # what the plugin's after_context_created adds to every command
        took = time.perf_counter() - started
        after = {m for m in sys.modules if m.split(".")[0] in ("mlflow", "kedro_mlflow")}
        session.run(pipeline_names=["data_processing"])  # a plain `kedro run`: Kedro's SequentialRunner
    print("NEW_IMPORTS", sorted(after - before), "TOOK", took)
    """
)


@pytest.mark.slow
def test_plain_kedro_run_is_untouched_without_kedro_mlflow(demo_project):
    """The example as shipped (kedro-mlflow disabled in settings.py) with an mlflow.yml on the old ./mlruns default:
    the plugin's hook neither stops nor slows a plain session run, and imports nothing MLflow-related."""
    (demo_project / "conf" / "base" / "mlflow.yml").write_text("server:\n  mlflow_tracking_uri: mlruns\n")
    done = subprocess.run(
        [PYTHON, "-c", HOOK_SCRIPT], cwd=demo_project, capture_output=True, text=True, env=subprocess_env(), timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [x for x in done.stdout.splitlines() if x.startswith("NEW_IMPORTS")][-1]
    assert line.startswith("NEW_IMPORTS [] TOOK"), line
    assert float(line.split()[-1]) < 0.5
    assert not (demo_project / "mlruns").exists()


@pytest.mark.slow
def test_plain_kedro_run_without_mlflow_yml_runs_with_kedro_mlflow_installed(demo_project):
    """The extras put kedro-mlflow and MLflow 3 into the environment; an unrelated project without mlflow.yml still
    runs with plain `kedro run` (Kedro's SequentialRunner), with one warning instead of MLflow's file-store error."""
    for settings in (demo_project / "src").glob("*/settings.py"):  # kedro-mlflow on, as in any other project
        lines = settings.read_text().splitlines(keepends=True)
        settings.write_text("".join(line for line in lines if not line.startswith("DISABLE_HOOKS_FOR_PLUGINS")))
    (demo_project / "conf" / "base" / "mlflow.yml").unlink()
    env = subprocess_env()
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("MLFLOW_ALLOW_FILE_STORE", None)
    done = subprocess.run(
        kedro_cmd("run", "--pipeline", "data_processing"),
        cwd=demo_project,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert "Traceback" not in output and "MlflowException" not in output and "Error:" not in output
    assert "Pipeline execution completed successfully" in output
    assert "has no mlflow.yml" in " ".join(output.split())


@pytest.mark.slow
def test_old_mlruns_default_is_one_line(demo_project):
    """kedro-mlflow on, mlflow.yml left on ./mlruns: `kedro run --runner=VertexRunner` says what to change, in one
    line."""
    project = _track(demo_project, "mlruns", "demo", LOCAL_YML)
    done = subprocess.run(
        kedro_cmd("run", "--runner=VertexRunner"),
        cwd=project,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
    )
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "MlflowException" not in output
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, done.stderr[-2000:]
    assert "'mlruns' is a local file store" in errors[0] and "sqlite:///mlflow.db" in errors[0]
    assert "conf/<env>/mlflow.yml" in errors[0]
    assert not (project / "data" / "vertex_runs").exists() and not (project / "mlruns").exists()


def test_compile_path_imports_no_mlflow():
    code = textwrap.dedent(
        """
        import sys
        from kedro_vertex_runner import mlflow_tracking as mt
        from kedro_vertex_runner.task import mlflow_run as mr
        mt.compiled_task_env(tasks=[["a"]], roots=[["a"]], exit_handler=True, project_id="p", region="r")
        with mr.task_run(None, job_id="j", job_name="n", node_names=["a"], environ={}) as run:
            assert run is None
        bad = [m for m in sys.modules if m.split(".")[0] in ("mlflow", "kedro_mlflow") or m.startswith("google.auth")]
        assert not bad, bad
        """
    )
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]


def test_launcher_run_is_suppressed():
    from kedro_mlflow.config.kedro_mlflow_config import KedroMlflowConfig
    from kedro_mlflow.framework.hooks.utils import _assert_mlflow_enabled

    class Context:
        mlflow = KedroMlflowConfig()

    mt.suppress_launcher_run(Context(), ["__default__"])
    assert not _assert_mlflow_enabled(["__default__"], Context.mlflow)
    mt.suppress_launcher_run(None, ["x"])  # no kedro-mlflow: nothing to do


# ---------------------------------------------------------------------------------------------------------------
# end to end: the example project with kedro-mlflow switched on


def _track(project: Path, tracking_uri: str, experiment: str, vertexai_yml: str) -> Path:
    """Switch kedro-mlflow on in a copy of the example (it ships disabled) and point it at ``tracking_uri``."""
    for settings in (project / "src").glob("*/settings.py"):
        lines = settings.read_text().splitlines(keepends=True)
        settings.write_text("".join(line for line in lines if not line.startswith("DISABLE_HOOKS_FOR_PLUGINS")))
    conf = project / "conf" / "base"
    (conf / "mlflow.yml").write_text(
        f"server:\n  mlflow_tracking_uri: {tracking_uri}\ntracking:\n  experiment:\n    name: {experiment}\n"
    )
    (conf / "vertexai.yml").write_text(vertexai_yml)
    return project


LOCAL_YML = (
    "project_id: test-project\nregion: europe-west1\nrun_config:\n  image: demo:latest\n  root: data/vertex_runs\n"
    "  backend: local\n"
    "  grouping: chains\n"  # several tasks share the run (makespan would give this settings-free project two)
)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.slow
def test_e2e_vertex_runner_local_backend_one_run_per_execution(mlflow_server, client, demo_project):
    """``kedro run --runner=VertexRunner`` (local backend, tasks in parallel processes) on the example project with
    kedro-mlflow: one run per execution holding every task's parameters, tagged, FINISHED; a second execution with
    a failing node gets a second run, FAILED."""
    experiment_name = f"{EXPERIMENT}-e2e-{uuid.uuid4().hex[:6]}"
    project = _track(demo_project, mlflow_server, experiment_name, LOCAL_YML)
    # outputs of three different tasks become artifacts of the run (conf/local overrides these catalog entries)
    artifacts = {
        "model_metrics": ("json.JSONDataset", "data/08_reporting/metrics.json"),
        "price_buckets": ("pandas.CSVDataset", "data/08_reporting/price_buckets.csv"),
        "report": ("json.JSONDataset", "data/08_reporting/report.json"),
    }
    (project / "conf" / "local" / "catalog.yml").write_text(
        "".join(
            f"{name}:\n  type: kedro_mlflow.io.artifacts.MlflowArtifactDataset\n  dataset:\n    type: {kind}\n"
            f"    filepath: {path}\n"
            for name, (kind, path) in artifacts.items()
        )
    )
    env = subprocess_env(KEDRO_CONFIG_COMMIT_ID=COMMIT, MLFLOW_TRACKING_TOKEN="launcher-secret-token")

    def kedro_run(*extra: str) -> subprocess.CompletedProcess:
        args = kedro_cmd("run", "--runner=VertexRunner", "--runner-params", "backend=local,max_workers=3", *extra)
        return subprocess.run(args, cwd=project, capture_output=True, text=True, env=env, timeout=600)

    done = kedro_run()
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    experiment = client.get_experiment_by_name(experiment_name)
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1, [r.data.tags for r in runs]  # no launcher run, no per-task runs
    run = runs[0]
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    job_id = tags[mr.TAG_JOB_ID]
    assert job_id.startswith("local-") and run.info.run_name == tags[mr.TAG_JOB_NAME]
    assert tags[mr.TAG_PIPELINE] == "__default__" and tags[mr.TAG_ENV] == "local"
    assert tags[mr.TAG_COMMIT] == tags["mlflow.source.git.commit"] == COMMIT
    assert mr.TAG_CONSOLE_URL not in tags  # a local run has no console page (the Vertex part is tested below)
    # several tasks, the independent ones started together: each reported, each logged its nodes' parameters
    succeeded = re.search(r"finished: (\d+) tasks succeeded", done.stdout + done.stderr)
    assert succeeded and int(succeeded[1]) > 3, done.stdout[-2000:]
    task_tags = {k: v for k, v in tags.items() if k.startswith(mr.TASK_TAG_PREFIX)}
    assert len(task_tags) == int(succeeded[1]) and set(task_tags.values()) == {"FINISHED"}
    params = run.data.params
    for name in ("max_age", "n_price_buckets", "model.model_options", "report_title"):  # from four tasks
        assert name in params, sorted(params)
    logged = {item.path for item in client.list_artifacts(run.info.run_id)}
    assert {Path(path).name for _, path in artifacts.values()} <= logged, logged
    assert f"MLflow run: {run.info.run_id}" in done.stderr
    assert "launcher-secret-token" not in done.stdout + done.stderr

    # a second execution, whose model.split_data node fails: a second run, FAILED
    failed = kedro_run("--params", "model.model_options.test_size=1.5")
    assert failed.returncode != 0 and "Traceback (most recent call last)" not in failed.stderr.split("Error:")[-1]
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    assert len(runs) == 2, [r.data.tags for r in runs]
    assert runs[0].info.run_id == run.info.run_id and runs[0].info.status == "FINISHED"
    second = runs[1]
    assert second.info.status == "FAILED" and second.data.tags[mr.TAG_JOB_ID] != job_id
    assert "FAILED" in {v for k, v in second.data.tags.items() if k.startswith(mr.TASK_TAG_PREFIX)}


VERTEX_YML = (
    VERTEX_CONFIG_HEAD
    + """\
  service_account: tasks@demo-gcp.iam.gserviceaccount.com
  mlflow:
    audience: https://mlflow-abc123-ew.a.run.app
"""
)


@pytest.mark.slow
def test_run_once_on_vertex_compiles_tracking_and_no_token(mlflow_server, client, demo_project, fake, gcs_emulator):
    """`kedro vertexai run-once` with kedro-mlflow on, against the fake Vertex AI: every task is told to join the
    job's run (creator, task count, audience, console link); no token reaches the job, and the launcher neither
    mints one nor opens a run."""
    fake.reset()
    experiment_name = f"{EXPERIMENT}-vertex-{uuid.uuid4().hex[:6]}"
    project = _track(demo_project, mlflow_server, experiment_name, VERTEX_YML.format(endpoint=fake.endpoint))
    fake.script_next_job("RUNNING", "SUCCEEDED")
    with FakeMetadataServer() as metadata:  # any identity token minted on the launcher would come from here
        env = subprocess_env(
            KEDRO_VERTEX_ANONYMOUS_CREDENTIALS="1",
            KEDRO_VERTEX_POLL_INTERVAL="0.05",
            MLFLOW_TRACKING_TOKEN="launcher-secret-token",
            **metadata.env(),
        )
        done = subprocess.run(
            kedro_cmd("vertexai", "run-once"), cwd=project, capture_output=True, text=True, env=env, timeout=300
        )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert metadata.audiences == []
    assert fake.unknown == []
    (create,) = fake.calls("POST", r"/pipelineJobs$")
    body = create["body"]
    text = json.dumps(body)
    assert "launcher-secret-token" not in text and "MLFLOW_TRACKING_TOKEN" not in text and "eyJ" not in text
    spec = body["pipelineSpec"]
    tasks = spec["root"]["dag"]["tasks"]
    roots = sorted(name for name, task in tasks.items() if not task.get("dependentTasks"))
    executors = spec["deploymentSpec"]["executors"].values()
    envs = [{e["name"]: e["value"] for e in executor["container"]["env"]} for executor in executors]
    assert len(envs) == len(tasks) > 1
    for task_env in envs:
        assert task_env[mr.ENV_ENABLED] == "1" and task_env[mr.ENV_TASKS] == str(len(tasks))
        assert task_env[mr.ENV_AUDIENCE] == "https://mlflow-abc123-ew.a.run.app"
        assert task_env[mr.ENV_CONSOLE_URL] == (
            "https://console.cloud.google.com/vertex-ai/locations/europe-west1/pipelines/runs/{job_name}"
            "?project=demo-gcp"
        )
        assert task_env[mr.ENV_FINALIZER] == "tasks"
    assert len({e[mr.ENV_CREATOR] for e in envs}) == 1 and len(roots) >= 1
    # the tasks find the job's run by the job's uuid: a new one for every execution (schedules included)
    commands = json.dumps(spec["deploymentSpec"])
    assert "{{$.pipeline_job_uuid}}" in commands and "{{$.pipeline_job_name}}" in commands
    experiment = client.get_experiment_by_name(experiment_name)
    assert experiment is None or client.search_runs([experiment.experiment_id]) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [("run", "--runner=VertexRunner", "--runner-params", "backend=vertex"), ("vertexai", "run-once")],
    ids=["kedro-run", "run-once"],
)
def test_failed_vertex_job_marks_its_run_failed(command, mlflow_server, client, demo_project, fake, gcs_emulator):
    """A command waiting on a Vertex AI job that fails: the job's MLflow run (opened by its tasks, here by the fake
    on creation) ends FAILED even though no task could report, and the command fails."""
    fake.reset()
    experiment_name = f"{EXPERIMENT}-vertex-fail-{uuid.uuid4().hex[:6]}"
    project = _track(demo_project, mlflow_server, experiment_name, VERTEX_YML.format(endpoint=fake.endpoint))
    opened: list[str] = []

    def open_run_like_a_task(job_id: str) -> None:
        experiment = client.get_experiment_by_name(experiment_name)  # prepared by the launcher before creating
        run = client.create_run(experiment.experiment_id, tags={mr.TAG_JOB_NAME: job_id, mr.TAG_JOB_ID: "uuid-1"})
        opened.append(run.info.run_id)

    fake.on_create = open_run_like_a_task
    fake.script_next_job("RUNNING", {"state": "FAILED", "error": "task train failed"})
    env = subprocess_env(KEDRO_VERTEX_ANONYMOUS_CREDENTIALS="1", KEDRO_VERTEX_POLL_INTERVAL="0.05")
    done = subprocess.run(kedro_cmd(*command), cwd=project, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode != 0 and "FAILED" in done.stderr, (done.stdout[-2000:], done.stderr[-2000:])
    assert fake.unknown == []
    (run_id,) = opened
    assert client.get_run(run_id).info.status == "FAILED"
    assert f"MLflow run: {run_id}" in done.stderr


def test_enabled_without_kedro_mlflow_is_one_line(demo_project):
    """`mlflow.enabled: true` in a project whose kedro-mlflow is disabled (settings.py): compile refuses in one line
    naming the file and key, instead of compiling tasks that would all fail to join a run."""
    (demo_project / "conf" / "base" / "vertexai.yml").write_text(LOCAL_YML + "  mlflow:\n    enabled: true\n")
    done = subprocess.run(
        kedro_cmd("vertexai", "compile", "-o", "spec.json"),
        cwd=demo_project,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    (line,) = [x for x in done.stderr.splitlines() if "run_config.mlflow.enabled" in x]
    assert "conf/base/vertexai.yml: run_config.mlflow.enabled: true needs kedro-mlflow" in line
    assert not (demo_project / "spec.json").exists()


@pytest.mark.slow
def test_vertex_commands_refuse_a_tracking_uri_tasks_cannot_reach(demo_project, fake):
    """`kedro vertexai run-once`/`schedule` with kedro-mlflow on a sqlite file: one line saying tasks on Vertex AI
    cannot reach it, and nothing is created (the same check as `kedro run --runner=VertexRunner`, backend vertex)."""
    from conftest import kedro_batch

    fake.reset()
    project = _track(demo_project, "sqlite:///mlflow.db", "any", VERTEX_YML.format(endpoint=fake.endpoint))
    env = subprocess_env(KEDRO_VERTEX_ANONYMOUS_CREDENTIALS="1")
    commands = [["vertexai", "run-once"], ["vertexai", "schedule", "--cron", "0 1 * * *"]]
    for done in kedro_batch([(project, command) for command in commands], env):
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.args
        (line,) = [x for x in done.stderr.splitlines() if x.startswith("Error:")]
        assert "'sqlite:///mlflow.db' is not reachable from tasks on Vertex AI" in line
    assert [r for r in fake.requests if r["method"] != "GET"] == []


# ------------------------------------------------------------------------------------------------------------------
# how a job ends, the same on every backend
#
# Every backend ends a job the same way, because the algorithms that follow a job live once in ``Backend``: a job
# that succeeds, one that fails, a Ctrl-C that cancels it and a Ctrl-C that leaves it running give the same exit code, the same kind of
# one-line message and the same state of the job's MLflow run on Vertex AI (the fake API, tests/fake_vertex.py),
# Kubeflow Pipelines (the fake API, tests/fake_kfp.py, through the real ``kfp.Client``) and the local backend (real
# task processes). The MLflow run is a real one on a real ``mlflow server``, opened as a task would open it and
# closed by the launcher's own code (:func:`kedro_vertex_runner.project.close_mlflow_run`).

SUCCEEDS = "import sys; sys.exit(0)"
FAILS = "import sys; sys.exit(1)"
WAITS = "import time; time.sleep(60)"


def make_spec(code: str) -> dict[str, Any]:
    """One task, ``work``, running ``code`` (the local backend runs it; the fakes only name it)."""
    return {
        "pipelineInfo": {"name": "outcomes"},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kedro-vertex-runner",
        "root": {
            "inputDefinitions": {"parameters": {}},
            "dag": {"tasks": {"work": {"taskInfo": {"name": "work"}, "componentRef": {"name": "comp-work"}}}},
        },
        "components": {"comp-work": {"executorLabel": "exec-work"}},
        "deploymentSpec": {
            "executors": {
                "exec-work": {
                    "container": {
                        "image": "img:1",
                        "command": ["python", "-c", code],
                        "args": ["--node=work"],
                    }
                }
            }
        },
    }


class Task(SilentReporter):
    """The reporter of a followed job: at the first report the job exists, so its MLflow run is opened there, as
    the job's first task would; with ``interrupt`` that report is then cut short by Ctrl-C."""

    def __init__(self, open_run: Any, interrupt: bool) -> None:
        super().__init__()
        self.open_run, self.interrupt, self.opened = open_run, interrupt, False

    def progress(self, job: JobHandle, tasks: Sequence[TaskState], job_state: str) -> None:
        if not self.opened:
            self.opened = True
            self.open_run(job)
        if self.interrupt:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def servers(fake: FakeVertex, fake_logging: FakeLogging, gcs_emulator: str) -> Iterator[dict[str, Any]]:
    kfp = FakeKfp().start()
    try:
        yield {"vertex": fake, "kubeflow": kfp, "logging": fake_logging}
    finally:
        kfp.stop()


@pytest.fixture
def tracking(mlflow_server: str) -> dict[str, Any]:
    """A fresh experiment, and the launcher's context as kedro-mlflow leaves it (``context.mlflow``)."""
    from mlflow.tracking import MlflowClient

    name = f"outcomes-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(mlflow_server)
    experiment_id = client.create_experiment(name)
    settings = SimpleNamespace(
        server=SimpleNamespace(mlflow_tracking_uri=mlflow_server),
        tracking=SimpleNamespace(experiment=SimpleNamespace(name=name)),
    )
    return {"client": client, "experiment_id": experiment_id, "context": SimpleNamespace(mlflow=settings)}


def drive(
    name: str,
    scenario: str,
    servers: dict[str, Any],
    tracking: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> dict[str, Any]:
    """Run one job on backend ``name`` through ``scenario`` (``fail``, ``cancel``: Ctrl-C that cancels, ``leave``:
    Ctrl-C that does not); returns the exit code, the output and the state of the job's MLflow run."""
    client, opened = tracking["client"], []

    def open_run(job: JobHandle) -> None:
        key, value = next(iter(job.run_key.items()))
        tag = mr.TAG_JOB_ID if key == "job_id" else mr.TAG_JOB_NAME
        opened.append(client.create_run(tracking["experiment_id"], tags={tag: value}).info.run_id)

    monkeypatch.setenv("KEDRO_VERTEX_POLL_INTERVAL", "0.02")
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    for variable in ("IAP_CLIENT_ID", "DEX_USERNAME", "DEX_PASSWORD", "GOOGLE_APPLICATION_CREDENTIALS", "CI"):
        monkeypatch.delenv(variable, raising=False)
    spec = make_spec({"succeed": SUCCEEDS, "fail": FAILS}.get(scenario, WAITS))
    raw: dict[str, Any] = {"image": "registry.example.com/demo:1", "backend": name}
    request = JobRequest(spec=spec, cancel_on_interrupt=scenario == "cancel")
    if name == "vertex":
        vertex = servers["vertex"]
        vertex.reset()
        servers["logging"].reset()
        monkeypatch.setenv(LOGGING_ENDPOINT_ENV, servers["logging"].endpoint)
        monkeypatch.setenv("KEDRO_VERTEX_ANONYMOUS_CREDENTIALS", "1")
        ends = {"succeed": ["SUCCEEDED"], "fail": [{"state": "FAILED", "error": "x"}]}.get(scenario, [])
        vertex.script_next_job("RUNNING", *ends)  # interrupted: it runs until cancelled
        config = {"project_id": "outcomes-1", "region": "europe-west1", "api_endpoint": vertex.endpoint}
        raw["root"] = "gs://test-bucket/root"
    elif name == "kubeflow":
        kfp = servers["kubeflow"]
        kfp.reset()
        final = {"state": "FAILED", "tasks": {"work": ("FAILED", "boom")}}
        ends = {"succeed": [{"state": "SUCCEEDED"}], "fail": [final]}.get(scenario, [])
        kfp.script_next_run({"state": "RUNNING"}, *ends)
        config = {"host": kfp.base_url}
        raw["root"] = "gs://kfp-bucket/runs"
    else:
        config, raw["root"] = {}, str(tmp_path / "runs")
        run_id = f"outcomes-{uuid.uuid4().hex[:8]}"
        request = JobRequest(
            spec=spec, run_id=run_id, project_dir=tmp_path, options={"warm_start": False, "max_workers": 1}
        )
    interrupt = scenario not in ("succeed", "fail")
    backend = get_backend(name, validate_config({**config, "run_config": raw}), Task(open_run, interrupt))
    code, outcome = 0, "succeeded"
    try:
        backend.run(
            request,
            on_end=lambda job, ok: close_mlflow_run(True, tracking["context"], succeeded=ok, **job.run_key),
        )
    except PluginError as exc:
        outcome = "JobFailed" if isinstance(exc, JobFailed) else "PluginError"
        try:
            exit_with(exc)  # as the commands and VertexRunner end on it
        except SystemExit as done:
            code = int(done.code or 0)
    (run_id,) = opened
    err = capsys.readouterr().err
    return {
        "code": code,
        "outcome": outcome,
        "error": [line for line in err.splitlines() if line.startswith("Error: ")],
        "err": err,
        "mlflow": client.get_run(run_id).info.status,
        "mlflow_line": f"MLflow run: {run_id}" in err,
    }


BACKENDS = ["vertex", "kubeflow", "local"]


@pytest.mark.parametrize("name", BACKENDS)
def test_jobs_end_the_same_way_on_every_backend(
    name: str,
    servers: dict[str, Any],
    tracking: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    succeeded = drive(name, "succeed", servers, tracking, tmp_path / "succeed", monkeypatch, capsys)
    assert succeeded["outcome"] == "succeeded" and succeeded["code"] == 0 and not succeeded["error"], succeeded
    assert succeeded["mlflow"] == "FINISHED" and succeeded["mlflow_line"], succeeded

    failed = drive(name, "fail", servers, tracking, tmp_path / "fail", monkeypatch, capsys)
    assert failed["outcome"] == "JobFailed" and failed["code"] == 1, failed
    assert len(failed["error"]) == 1 and "failed" in failed["error"][0].lower(), failed
    assert failed["mlflow"] == "FAILED" and failed["mlflow_line"], failed

    cancelled = drive(name, "cancel", servers, tracking, tmp_path / "cancel", monkeypatch, capsys)
    assert cancelled["outcome"] == "JobFailed" and cancelled["code"] == 130, cancelled
    (line,) = cancelled["error"]
    assert line.startswith("Error: interrupted: ") and ("cancellation" in line or "cancelled" in line), line
    assert cancelled["mlflow"] == "FAILED" and cancelled["mlflow_line"], cancelled
    assert "Traceback" not in failed["err"] + cancelled["err"]
    if name == "vertex":
        assert len(servers["vertex"].calls("POST", r"/pipelineJobs/[^/]+:cancel$")) == 1
    if name == "kubeflow":
        assert servers["kubeflow"].requests_to("POST", r"/apis/v2beta1/runs/[^/]+:terminate$")


@pytest.mark.parametrize("name", ["vertex", "kubeflow"])
def test_ctrl_c_that_does_not_cancel_leaves_the_job_and_its_mlflow_run_running(
    name: str,
    servers: dict[str, Any],
    tracking: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """A remote job outlives its launcher: left running, its MLflow run stays open for its tasks to close. (A local
    job dies with the launcher, so Ctrl-C always cancels it: the test above.)"""
    left = drive(name, "leave", servers, tracking, tmp_path, monkeypatch, capsys)
    assert left["outcome"] == "PluginError" and left["code"] == 130, left
    (line,) = left["error"]
    assert line.startswith("Error: interrupted: ") and "keeps running on" in line and "stop it at http" in line, line
    assert left["mlflow"] == "RUNNING" and not left["mlflow_line"], left
