"""``kedro vertexai compile`` on a copy of the example project, in a subprocess, without GCP credentials."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import installed_metadata, kedro_cmd, subprocess_env, task_by_node

pytestmark = pytest.mark.slow

FALLBACK_CONFIG = """\
project_id: demo-project
region: europe-west1
run_config:
  image: demo-project:latest
  root: ./data/vertex_runs
  resources:
    __default__: {cpu: 1, memory: 2Gi}
    model.train_model: {cpu: 4, memory: 8Gi, retries: 2, timeout: 30m}
"""

SECRETS = ("tok-3f9a-SECRET", "sa-key-SECRET", "db-pass-SECRET", "MLFLOW_TRACKING_TOKEN", "GOOGLE_APPLICATION_CRED")


def run_compile(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        kedro_cmd("vertexai", "compile", *args),
        cwd=project,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=180,
    )


def tasks_of(spec: dict) -> dict:
    root = spec["root"]["dag"]["tasks"]
    if "exit-handler-1" in root:
        return spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    return root


def node_args(spec: dict) -> list[list[str]]:
    """The ``--node`` values of every executor."""
    from kedro_vertex_runner.task.contract import TaskContract

    executors = spec["deploymentSpec"]["executors"].values()
    return [list(TaskContract.from_args(e["container"]["args"]).nodes) for e in executors]


@pytest.fixture
def project(demo_project: Path) -> Path:
    config = demo_project / "conf" / "base" / "vertexai.yml"
    if not config.exists():
        config.write_text(FALLBACK_CONFIG)
    return demo_project


NO_NETWORK = """
import os, socket

_log = os.environ["NETWORK_ATTEMPTS_LOG"]


def _record(what):
    with open(_log, "a") as handle:
        handle.write(f"{what}\\n")


def _local(address):
    host = address[0] if isinstance(address, tuple) else address
    return isinstance(host, str) and (host.startswith("127.") or host in ("localhost", "::1")) or not isinstance(
        address, tuple
    )


_connect = socket.socket.connect


def connect(self, address):
    if not _local(address):
        _record(f"connect {address}")
        raise OSError("network disabled by the test")
    return _connect(self, address)


_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host, *args, **kwargs):
    if host not in (None, "localhost") and not str(host).startswith("127."):
        _record(f"lookup {host}")
        raise socket.gaierror("network disabled by the test")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.getaddrinfo = getaddrinfo
"""


def test_compile_the_example_project_without_credentials_network_or_secrets(project, tmp_path):
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NO_NETWORK)  # every process of the command: no outbound traffic
    attempts = tmp_path / "network-attempts.log"
    key_file = tmp_path / "sa-key-SECRET.json"
    key_file.write_text('{"type": "service_account", "private_key": "sa-key-SECRET"}')
    (project / "conf" / "local").mkdir(parents=True, exist_ok=True)
    (project / "conf" / "local" / "credentials.yml").write_text(
        "db:\n  con: postgresql://user:db-pass-SECRET@host/db\nmlflow:\n  token: tok-3f9a-SECRET\n"
    )
    result = run_compile(
        project,
        "--params",
        "max_age=50,model.model_options.alpha=2.5",
        "-o",
        "build/pipeline.json",
        MLFLOW_TRACKING_TOKEN="tok-3f9a-SECRET",
        GOOGLE_APPLICATION_CREDENTIALS=str(key_file),
        PYTHONPATH=str(guard),
        NETWORK_ATTEMPTS_LOG=str(attempts),
    )
    assert result.returncode == 0, result.stderr
    assert not attempts.exists(), attempts.read_text()
    assert "build/pipeline.json" in result.stdout
    text = (project / "build" / "pipeline.json").read_text()
    for secret in SECRETS:
        assert secret not in text
    spec = json.loads(text)

    preprocessing = next(nodes for nodes in node_args(spec) if "clean_houses" in nodes)
    chain = ["clean_houses", "add_features", "select_features"]
    assert [n for n in preprocessing if n in chain] == chain  # a linear chain: one task, in order
    all_nodes = sorted(n for nodes in node_args(spec) for n in nodes)
    assert "model.train_model" in all_nodes and "create_report" in all_nodes
    assert any(n.startswith("bucket_prices") for n in all_nodes)  # the auto-named node

    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["max_age"]["parameterType"] == "NUMBER_INTEGER" and params["max_age"]["defaultValue"] == 50
    assert params["model"]["parameterType"] == "STRUCT"
    assert params["model"]["defaultValue"] == {"model_options": {"alpha": 2.5}}
    assert set(params) == {"max_age", "model"}  # only --params, not the project's whole parameter set

    tasks = tasks_of(spec)
    train = next(name for name, task in tasks.items() if "model.train_model" in task["taskInfo"]["name"])
    container = spec["deploymentSpec"]["executors"][f"exec-{train}"]["container"]
    assert container["resources"]["cpuLimit"] == 4.0
    assert tasks[train]["retryPolicy"]["maxRetryCount"] == 2
    env = {item["name"] for item in container["env"]}
    assert "DO_NOT_TRACK" in env and not env & {"MLFLOW_TRACKING_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS"}

    from google.protobuf.json_format import ParseDict
    from kfp.pipeline_spec import pipeline_spec_pb2

    ParseDict(spec, pipeline_spec_pb2.PipelineSpec())


def test_compile_a_named_pipeline_in_an_env_to_yaml_with_an_exit_handler(project):
    env_dir = project / "conf" / "ci"
    env_dir.mkdir()
    (env_dir / "vertexai.yml").write_text("run_config:\n  grouping: none\n  on_exit_pipeline: notify\n")
    result = run_compile(project, "--env", "ci", "-p", "data_processing", "-o", "pipeline.yaml")
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load((project / "pipeline.yaml").read_text())
    assert sorted(n for nodes in node_args(spec) for n in nodes) == sorted(
        ["clean_houses", "add_features", "select_features", "log_run_finished"]
    )
    root = spec["root"]["dag"]["tasks"]
    exit_name = next(name for name in root if name != "exit-handler-1")
    assert root[exit_name]["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    args = spec["deploymentSpec"]["executors"][f"exec-{exit_name}"]["container"]["args"]
    assert args[:2] == ["--pipeline=notify", "--env=ci"] and "--exit-handler" in args
    assert len(tasks_of(spec)) == 3  # grouping: none from conf/ci


@pytest.mark.parametrize(
    ("args", "expected", "before_session"),
    [
        (
            ["-p", "no_such_pipeline"],
            "Error: unknown pipeline 'no_such_pipeline': the project registers __default__, data_processing, model, "
            "notify, reporting (see pipeline_registry.py)",
            False,
        ),
        (
            ["-o", "data/01_raw/houses.csv/pipeline.json"],
            "Error: cannot write the compiled pipeline to 'data/01_raw/houses.csv/pipeline.json': "
            "'data/01_raw/houses.csv' is a file, not a directory; choose another -o/--output path",
            True,
        ),
        (
            ["--params", "max_age"],
            "Error: --params 'max_age': item 'max_age' must contain a key and a value separated by '='. Use KEY=VALUE "
            "items separated by commas, e.g. --params alpha=0.5,model.depth=3",
            True,
        ),
    ],
)
def test_bad_input_is_a_one_line_error(project, args, expected, before_session):
    """One line on stderr, exit 1, nothing written. Output path and --params are checked before the project is
    loaded: with vertexai.yml removed, their error still comes first (and without the session's start-up time)."""
    assert (project / "data" / "01_raw" / "houses.csv").is_file()  # the unwritable case writes below a file
    if before_session:
        (project / "conf" / "base" / "vertexai.yml").unlink()
    result = run_compile(project, *args)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert not list(project.glob("pipeline*")) and not list(project.glob("**/.pipeline*.tmp"))


@pytest.mark.parametrize(
    ("output", "params", "expected"),
    [
        ("data", None, "output file 'data': unknown suffix ''; use .json, .yaml or .yml"),
        ("pipeline.txt", None, "output file 'pipeline.txt': unknown suffix '.txt'; use .json, .yaml or .yml"),
        ("pipeline.json", "features=[a", "--params 'features=[a': cannot parse it ("),
    ],
)
def test_more_bad_output_paths_and_params_are_one_line_errors(tmp_path, output, params, expected):
    """The checks the CLI runs before the session, in-process (the CLI path is proven by the cases above)."""
    import click

    from kedro_vertex_runner.cli import _parse_params
    from kedro_vertex_runner.compiler.spec import check_output_path
    from kedro_vertex_runner.errors import PluginError

    with pytest.raises((PluginError, click.ClickException)) as raised:
        check_output_path(tmp_path / output) if params is None else _parse_params(None, None, params)
    message = raised.value.message if isinstance(raised.value, click.ClickException) else str(raised.value)
    assert message.replace(str(tmp_path / output), output).startswith(expected), message
    assert len(message.splitlines()) == 1


def test_compiled_bytes_do_not_depend_on_the_process(project):
    """Set and dict ordering can differ between interpreter runs (hash randomisation): two CLI processes with
    different hash seeds must write the same bytes."""
    args = ("--params", "max_age=50,model.model_options.alpha=2.5,model.test_size=0.3,flag=true,label=x")
    outputs = []
    for seed in ("1", "2"):
        result = run_compile(project, *args, "-o", f"pipeline-{seed}.json", PYTHONHASHSEED=seed)
        assert result.returncode == 0, result.stderr
        outputs.append((project / f"pipeline-{seed}.json").read_bytes())
    assert outputs[0] == outputs[1]
    spec = json.loads(outputs[0])
    assert spec["root"]["inputDefinitions"]["parameters"]["flag"] == {
        "defaultValue": True,
        "isOptional": True,
        "parameterType": "BOOLEAN",
    }


@pytest.mark.parametrize(
    ("yaml_extra", "expected"),
    [
        (
            "  env: {API_TOKEN: abc}\n",
            "Error: conf/local/vertexai.yml: run_config.env.API_TOKEN: looks like a secret (its name contains 'TOKEN')",
        ),
        (
            "  grouping: namespace\n  resources:\n    model.train_model: {image: other:1}\n",
            "Error: conf/local/vertexai.yml: run_config.resources: the nodes of task group 'model' run in one task",
        ),
    ],
    ids=["secret-env", "group-conflict"],
)
def test_problems_found_while_compiling_name_the_file(project, yaml_extra, expected):
    """A config problem only the compiler can see (a secret in run_config.env, nodes of one task asking for
    different images) still names the file that sets the key, as validation errors do."""
    (project / "conf" / "local" / "vertexai.yml").write_text("run_config:\n" + yaml_extra)
    result = run_compile(project)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
    assert not list(project.glob("pipeline*"))


def test_caching_skips_only_tasks_whose_per_run_outputs_others_read(project):
    """With `caching: true` the example compiles every task cached except those writing data stored per run:
    summarize_raw_data's (`raw_data_summary` is not in the catalog), count_rooms' (`rooms_histogram` is a declared
    MemoryDataset read by another task; one more warning names it and both tasks) and, here, the feature chain's and
    bucket_prices', whose outputs the catalog puts under `${vertex:run_id}` (directly, and through globals.yml).
    One caching warning says so."""
    # `chains` keeps these writers and their readers in tasks of their own (`makespan` would fuse most of them)
    (project / "conf" / "local" / "vertexai.yml").write_text("run_config:\n  caching: true\n  grouping: chains\n")
    (project / "conf" / "base" / "globals.yml").write_text("reports: data/runs/${vertex:job_name}/reporting\n")
    catalog = project / "conf" / "base" / "catalog.yml"
    catalog.write_text(
        catalog.read_text()
        .replace(
            "filepath: data/04_feature/model_input_table.parquet",
            "filepath: data/runs/${vertex:run_id}/model_input_table.parquet",
        )
        .replace("filepath: data/08_reporting/price_buckets.csv", "filepath: ${globals:reports}/price_buckets.csv")
    )
    result = run_compile(project, "-o", "pipeline.json")
    assert result.returncode == 0, result.stderr
    spec = json.loads((project / "pipeline.json").read_text())
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: caching is off")]
    assert len(warnings) == 1 and "and 3 more" in warnings[0], result.stderr
    memory = [line for line in result.stderr.splitlines() if "declared as a MemoryDataset" in line]
    assert memory == [
        f"Warning: dataset 'rooms_histogram' is declared as a MemoryDataset, but task "
        f"{task_by_node(spec, 'count_rooms')!r} writes it and task {task_by_node(spec, 'create_rooms_report')!r} "
        "reads it: it is stored under <root>/<run id>/ like an undeclared dataset; declare a persistent type for it "
        "in the catalog, or group the nodes into one task (run_config.grouping)"
    ]
    cached = {name: task["cachingOptions"]["enableCache"] for name, task in tasks_of(spec).items()}
    bucket_prices = next(n for nodes in node_args(spec) for n in nodes if n.startswith("bucket_prices"))
    for writer in ("summarize_raw_data", "count_rooms", "select_features", bucket_prices):
        assert cached.pop(task_by_node(spec, writer)) is False, writer
    assert set(cached.values()) == {True}
    assert "kedro-vertex-per-run" not in json.dumps(spec)  # the probe value never reaches the spec


# a vertexai.yml as kedro-vertexai 1.x users have it (its `init` template and documented keys, rewritten for the
# example project's nodes and tags)
KEDRO_VERTEXAI_CONFIG = """\
project_id: demo-project
region: europe-west1
run_config:
  image: europe-docker.pkg.dev/demo-project/images/demo:1
  root: demo-bucket/kedro-runs
  experiment_name: demo-experiment
  scheduled_run_name: demo-scheduled
  grouping:
    cls: kedro_vertexai.grouping.IdentityNodeGrouper
  ttl: 604800
  resources:
    preprocessing:
      memory: 4Gi
    model.train_model:
      cpu: 8
      memory: 8Gi
      gpu: 1
    __default__:
      cpu: 1000m
      memory: 2048Mi
  node_selectors:
    model.train_model:
      cloud.google.com/gke-accelerator: NVIDIA_TESLA_T4
  dynamic_config_providers: []
  schedules:
    default_schedule:
      cron_expression: "0 * * * *"
      timezone: Etc/UTC
      start_time: none
      allow_queueing: false
      max_concurrent_run_count: 1
"""


def test_a_kedro_vertexai_config_compiles_with_one_warning_per_translated_key(project, tmp_path):
    (project / "conf" / "base" / "vertexai.yml").write_text(KEDRO_VERTEXAI_CONFIG)
    result = run_compile(project, "-o", str(tmp_path / "spec.json"), COLUMNS="1000")  # no wrapped log lines
    assert result.returncode == 0, result.stderr
    text = result.stdout + result.stderr  # Kedro's log handler writes to stdout
    for warning in (
        "run_config.ttl is ignored: it has no meaning on Vertex AI Pipelines; remove it",
        "run_config.grouping is a kedro-vertexai key: write `grouping: none` instead",
        "run_config.node_selectors.model.train_model.cloud.google.com/gke-accelerator is a kedro-vertexai key: write "
        "run_config.resources.model.train_model.accelerator: NVIDIA_TESLA_T4 instead",
        "run_config.dynamic_config_providers is ignored: it is empty; remove it",
        "run_config.schedules.default_schedule.start_time is a kedro-vertexai key: write `start_time: null`",
        "run_config.schedules.default_schedule.cron_expression is a kedro-vertexai key: write "
        "run_config.schedules.default_schedule.cron instead",
    ):
        assert text.count(warning) == 1, (warning, text)
    spec = json.loads((tmp_path / "spec.json").read_text())
    tasks = tasks_of(spec)
    assert len(tasks) == sum(len(nodes) for nodes in node_args(spec))  # IdentityNodeGrouper: a task per node
    train = spec["deploymentSpec"]["executors"][f"exec-{task_by_node(spec, 'model.train_model')}"]
    resources = train["container"]["resources"]
    assert resources["accelerator"]["type"] == "NVIDIA_TESLA_T4" and int(resources["accelerator"]["count"]) == 1
    assert resources["cpuLimit"] == 8


def explained(result: subprocess.CompletedProcess) -> dict[str, tuple[int, int, str]]:
    """``{grouping: (tasks, longest chain, makespan)}`` from the table ``compile --explain`` prints."""
    table = result.stdout.split("estimated makespan\n", 1)[1]
    rows = {}
    for line in table.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[1].isdigit():
            rows[fields[0]] = (int(fields[1]), int(fields[2]), fields[3])
    return rows


def test_compile_explain_with_the_default_grouping(project, tmp_path):
    config = project / "conf" / "base" / "vertexai.yml"
    config.write_text(config.read_text().replace("  grouping: makespan\n", ""))  # the default all the same

    # as installed: the plugin's `kedro.init` entry point hides library warnings before any plugin loads
    result = run_compile(project, "--explain", PYTHONPATH=installed_metadata(tmp_path / "site"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # a clean terminal: neither OmegaConf's deprecation of what Kedro calls nor MLflow's note on kedro-mlflow's model
    for noise in ("register_new_resolver", "is deprecated", "Add type hints", "UserWarning"):
        assert noise not in out + result.stderr, noise
    # every line fits in 100 columns (output is not a terminal); node lists wrap under their task
    explanation = out[out.index("Cost model: ") :].splitlines()
    assert max(len(line) for line in explanation) <= 100 and explanation[-1].startswith("Compiled pipeline")
    assert "Cost model: 2m00s start-up per task; node run times: 0 of 11 from the last local run, the others 10s" in out
    assert "Tasks (grouping 'makespan'):" in out
    # the example's four tasks, by number and name: the preprocessing chain (which passes values in memory, so one
    # process runs it node after node) beside the branches that read the raw data; split_data (2Gi) joins nodes
    # asking for 4Gi in a 4Gi task. Three tasks would make one process run seven nodes in a row: 20 s longer
    assert (
        "  task 1 'bucket-prices-feb3c851' (4 nodes): bucket_prices__feb3c851, count_rooms,\n"
        "      summarize_raw_data, create_rooms_report\n"
        "  task 2 'clean-houses' (4 nodes): clean_houses, add_features, select_features, model.split_data\n"
        "  task 3 'model-train-model' (1 node): model.train_model; after task 2\n"
        "  task 4 'model-evaluate-model' (2 nodes): model.evaluate_model, create_report; after tasks 1, 2, 3\n"
    ) in out
    chain = out.split("Longest chain of dependent tasks: ", 1)[1].splitlines()[0].split(" -> ")
    assert chain == ["clean-houses", "model-train-model", "model-evaluate-model"]
    rows = explained(result)
    assert list(rows) == ["makespan", "chains", "none", "namespace"]
    assert "  tags       the same tasks as none\n" in out  # no group tags: one task per node, as `none`
    spec = json.loads((project / "pipeline.json").read_text())
    assert rows["makespan"][0] == len(tasks_of(spec)) < rows["chains"][0] < rows["none"][0] == 11
    assert rows["makespan"][1] == len(chain) < rows["chains"][1]
    preprocessing = spec["deploymentSpec"]["executors"][f"exec-{task_by_node(spec, 'model.split_data')}"]
    assert preprocessing["container"]["resources"]["resourceMemoryLimit"] == "4Gi"
    # a node with its own retries and timeout keeps its own task
    assert rows["makespan"] == (4, 3, "7m10s") and (rows["chains"][0], rows["chains"][1]) == (8, 4)
    assert [["model.train_model"]] == [n for n in node_args(spec) if "model.train_model" in n]

    # a serial pipeline (clean_houses → add_features → select_features, one settings group) is one task
    result = run_compile(project, "-p", "data_processing", "--explain", "-o", "serial.json")
    assert result.returncode == 0, result.stderr
    assert node_args(json.loads((project / "serial.json").read_text())) == [
        ["clean_houses", "add_features", "select_features"]
    ]
    assert explained(result)["makespan"] == (1, 1, "2m30s")
