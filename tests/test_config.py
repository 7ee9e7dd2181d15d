"""vertexai.yml: what loads, and the one-line error every bad config gives (file, key path, what to do).

Most cases run in-process through a real ``OmegaConfigLoader`` over a temporary ``conf/`` folder; a few run
``kedro vertexai compile`` in a copy of the example project to check what the user sees on the terminal.
"""

from __future__ import annotations

import logging
import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import kedro_cmd, subprocess_env
from kedro.config import OmegaConfigLoader
from kedro.pipeline import Node, Pipeline

from kedro_vertex_runner.config import (
    ConfigError,
    check_against_pipeline,
    check_pipeline_names,
    config_reference,
    load_config,
    validate_config,
)
from kedro_vertex_runner.errors import PluginError

VALID = """\
project_id: my-project
region: europe-west1
run_config:
  image: europe-docker.pkg.dev/my-project/repo/img:1
  root: my-bucket/runs
"""


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "local").mkdir()
    return tmp_path / "conf"


def write(conf: Path, text: str, env: str = "base", name: str = "vertexai.yml") -> Path:
    path = conf / env / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def load(conf: Path, env: str | None = None):
    loader = OmegaConfigLoader(conf_source=str(conf), base_env="base", default_run_env="local", env=env)
    return load_config(loader)


def load_error(conf: Path, env: str | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(conf, env)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, PluginError) and info.value.exit_code != 0
    return message


def with_run_config(extra: str) -> str:
    return VALID + textwrap.indent(textwrap.dedent(extra), "  ")


# ----------------------------------------------------------------------------------------------------------------
# what loads


def test_minimal_config_loads_with_defaults(conf):
    write(conf, VALID)
    config = load(conf)
    assert config.project_id == "my-project"
    assert config.run_config.backend == "vertex"
    assert config.run_config.grouping == "makespan"
    assert config.run_config.grouping_options.task_startup == 120
    assert config.gcs_root == "gs://my-bucket/runs"
    assert config.source_files == [conf / "base" / "vertexai.yml"]


def test_yaml_numbers_for_cpu_gpu_memory_and_durations_are_accepted(conf):
    write(
        conf,
        with_run_config(
            """\
            timeout: 2h
            retries: 3
            resources:
              __default__: {cpu: 2, memory: 4Gi}
              train: {cpu: 0.5, gpu: 2, accelerator: NVIDIA_L4, timeout: 90, retries: {max_retries: 1, backoff: 5m}}
            """
        ),
    )
    run_config = load(conf).run_config
    train = run_config.resources["train"]
    assert (train.cpu, train.gpu, train.timeout) == ("0.5", 2, 90.0)
    assert train.retries.max_retries == 1 and train.retries.backoff == 300
    assert run_config.resources["__default__"].cpu == "2"
    assert run_config.timeout == 7200 and run_config.retries.max_retries == 3


@pytest.mark.parametrize(
    ("backend", "root", "expected"),
    [
        ("vertex", "my-bucket/runs", "gs://my-bucket/runs"),  # the reference plugin's shorthand
        ("vertex", "gs://my-bucket/runs", "gs://my-bucket/runs"),
        ("local", "data/vertex_runs", "data/vertex_runs"),  # a folder of the project
        ("local", "gs://my-bucket/runs", "gs://my-bucket/runs"),
        ("vertex", "/abs/runs", "/abs/runs"),  # left for the vertex backend to reject
    ],
)
def test_root_without_scheme_means_a_bucket_for_vertex_and_a_folder_for_local(conf, backend, root, expected):
    write(conf, VALID.replace("my-bucket/runs", f"{root}\n  backend: {backend}"))
    config = load(conf)
    assert config.run_config.root == config.gcs_root == expected


@pytest.mark.parametrize(
    ("backend", "root", "other", "expected"),
    [
        ("vertex", "my-bucket/runs", "local", "my-bucket/runs"),  # --runner-params backend=local: a folder
        ("local", "my-bucket/runs", "vertex", "gs://my-bucket/runs"),
        ("vertex", "gs://my-bucket/runs", "local", "gs://my-bucket/runs"),
    ],
)
def test_backend_override_reads_root_as_written(conf, backend, root, other, expected):
    write(conf, VALID.replace("my-bucket/runs", f"{root}\n  backend: {backend}"))
    config = load(conf)
    switched = config.with_backend(other)
    assert switched.run_config.backend == other and switched.run_config.root == expected
    assert switched.with_backend(backend).run_config.root == config.run_config.root
    assert switched.source_files == config.source_files  # errors still name the file


def test_yaml_alternative_extension_is_read(conf):
    write(conf, VALID, name="vertexai.yaml")
    assert load(conf).region == "europe-west1"


def test_env_file_overrides_base_key_by_key(conf):
    write(conf, with_run_config("grouping: none\nlabels: {team: ds}\n"))
    write(conf, "run_config:\n  image: override:2\n  labels: {stage: prod}\n", env="prod")
    config = load(conf, env="prod")
    assert config.run_config.image == "override:2"
    assert config.run_config.root == "gs://my-bucket/runs"  # from base
    assert config.run_config.grouping == "none"  # from base
    assert config.run_config.labels == {"team": "ds", "stage": "prod"}


def test_error_in_env_file_names_that_file(conf):
    write(conf, VALID)
    write(conf, "run_config:\n  grouping: chainz\n", env="prod")
    message = load_error(conf, env="prod")
    assert message.startswith("conf/prod/vertexai.yml: run_config.grouping: ")


def test_settings_precedence_node_over_tag_over_default_over_job_wide(conf):
    write(
        conf,
        with_run_config(
            """\
            caching: true
            timeout: 1h
            resources:
              __default__: {cpu: 1, memory: 1Gi, timeout: 10m}
              heavy: {memory: 8Gi, cpu: 4}
              train: {cpu: 16}
            """
        ),
    )
    run_config = load(conf).run_config
    train = run_config.settings_for("train", {"heavy"})
    assert (train.cpu, train.memory, train.timeout, train.caching) == ("16", "8Gi", 600.0, True)
    other = run_config.settings_for("other", set())
    assert (other.cpu, other.memory) == ("1", "1Gi")
    bare = run_config.model_copy(update={"resources": {}}).settings_for("x", ())
    assert bare.timeout == 3600 and bare.cpu is None


def test_accelerator_alone_means_one_gpu_and_reference_gpu_key_is_read(conf):
    write(
        conf,
        with_run_config(
            """\
            resources:
              train: {accelerator: NVIDIA_TESLA_T4}
              old: {"nvidia.com/gpu": 2, accelerator: NVIDIA_L4}
            """
        ),
    )
    run_config = load(conf).run_config
    assert run_config.settings_for("train").gpu == 1
    assert run_config.settings_for("old").gpu == 2


# ----------------------------------------------------------------------------------------------------------------
# one line per bad config: file, key path, what to do


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "imagee: x\n",
            "conf/base/vertexai.yml: run_config.imagee: unknown key: remove it or fix its spelling "
            "(did you mean 'image'?)",
        ),
        (
            "resources:\n  train: {memroy: 1Gi}\n",
            "conf/base/vertexai.yml: run_config.resources.train.memroy: unknown key",
        ),
        (
            "resources:\n  train: {cpu: [1]}\n",
            "conf/base/vertexai.yml: run_config.resources.train.cpu: expected a number of cores (8, 0.5) or a "
            "string like '500m', got [1]",
        ),
        ("resources:\n  train: {memory: lots}\n", "run_config.resources.train.memory: expected a size"),
        ("resources:\n  train: {gpu: many}\n", "run_config.resources.train.gpu: expected a whole number, got 'many'"),
        ("caching: maybe\n", "conf/base/vertexai.yml: run_config.caching: expected true or false, got 'maybe'"),
        ("timeout: soon\n", "run_config.timeout: expected a duration such as 3600, '30m' or '2h', got 'soon'"),
        ("retries: often\n", "run_config.retries: expected a number of retries (e.g. 3) or a mapping"),
        (
            "grouping: foo\n",
            "conf/base/vertexai.yml: run_config.grouping: expected one of 'makespan', 'chains', 'none', 'namespace', "
            "'tags', got 'foo'",
        ),
        (
            "grouping_options: {task_startup: soon}\n",
            "conf/base/vertexai.yml: run_config.grouping_options.task_startup: expected a duration such as 3600, "
            "'30m' or '2h', got 'soon'",
        ),
        ("backend: cloud\n", "run_config.backend: expected one of 'vertex', 'local', 'kubeflow', got 'cloud'"),
        (
            "schedules:\n  nightly: {cron: '0 6 * *'}\n",
            "conf/base/vertexai.yml: run_config.schedules.nightly.cron: expected a five-field cron expression",
        ),
        ("schedules:\n  nightly: {cron: '61 * * * *'}\n", "run_config.schedules.nightly.cron: cron field '61'"),
        ("schedules:\n  nightly: {}\n", "run_config.schedules.nightly.cron: required key is missing"),
        (
            "schedules:\n  nightly: {cron: '0 6 * * *', timezone: Mars/Olympus}\n",
            "run_config.schedules.nightly.timezone: expected an IANA time zone",
        ),
        (
            "labels: {Team: ds}\n",
            "conf/base/vertexai.yml: run_config.labels.Team: label key 'Team' must start with a lowercase letter",
        ),
        ("labels: {team: Data Science}\n", "run_config.labels.team: label value 'Data Science' may use only"),
        ("labels: {team: {a: 1}}\n", "run_config.labels.team: expected a string"),
        ("experiment_name: My_Experiment\n", "run_config.experiment_name: experiment name 'My_Experiment'"),
        ("network: {vpc: my-vpc}\n", "run_config.network.vpc: expected 'projects/<project number>/global/networks"),
        (
            "network:\n  host_aliases: [{ip: not-an-ip, hostnames: [mlflow.internal]}]\n",
            "run_config.network.host_aliases.0.ip: expected an IP address",
        ),
        # values Vertex AI (or the local backend) would only reject at run time
        ("resources:\n  __default__: {cpu: 0}\n", "run_config.resources.__default__.cpu: expected a positive number"),
        ("resources:\n  train: {memory: 0Gi}\n", "run_config.resources.train.memory: expected a positive size"),
        ("timeout: .inf\n", "run_config.timeout: expected a positive, finite duration"),
        ("timeout: .nan\n", "run_config.timeout: expected a positive, finite duration"),
        ("retries: {max_retries: 2, backoff: .inf}\n", "run_config.retries.backoff: expected a positive, finite"),
        (
            "retries: {max_retries: 2, backoff_factor: .inf}\n",
            "run_config.retries.backoff_factor: expected a finite number",
        ),
        ("schedules:\n  nightly: {cron: '*/0 3 * * *'}\n", "run_config.schedules.nightly.cron: bad step '0'"),
        (
            "schedules:\n  nightly: {cron: '0 3 * * *', params: {model: {alpha: null}}}\n",
            "conf/base/vertexai.yml: run_config.schedules.nightly.params: model.alpha: null cannot be a pipeline",
        ),
    ],
)
def test_bad_run_config_value_gives_one_line_naming_file_and_key(conf, extra, expected):
    write(conf, with_run_config(extra))
    assert expected in load_error(conf)


def test_missing_required_key(conf):
    write(conf, VALID.replace("  root: my-bucket/runs\n", ""))
    assert load_error(conf).startswith("conf/base/vertexai.yml: run_config.root: required key is missing: add it")


def test_bad_region_and_unknown_top_level_key(conf):
    write(conf, VALID.replace("europe-west1", "europe"))
    assert "conf/base/vertexai.yml: region: expected a Google Cloud region" in load_error(conf)
    write(conf, VALID + "projectid: x\n")
    assert "conf/base/vertexai.yml: projectid: unknown key" in load_error(conf)


def test_misspelt_required_key_reports_the_typo_not_the_missing_key(conf):
    write(conf, VALID.replace("  image:", "  imgae:"))
    message = load_error(conf)
    assert "run_config.imgae: unknown key" in message and "did you mean 'image'?" in message


def test_missing_file_says_to_run_init(conf):
    message = load_error(conf)
    assert "no vertexai.yml found" in message
    assert "kedro vertexai init PROJECT_ID REGION" in message


def test_missing_env_folder_is_named(conf):
    write(conf, VALID)
    message = load_error(conf, env="prod")
    assert "conf/prod" in message and "choose another env with --env" in message


def test_yaml_syntax_error_names_the_file(conf):
    write(conf, "project_id: [oops\nregion: x\n")
    message = load_error(conf)
    assert "conf/base/vertexai.yml" in message


def test_ignored_reference_keys_warn_once_each_on_one_line(conf, caplog):
    write(conf, with_run_config("image_pull_policy: Always\nttl: 604800\n"))
    with caplog.at_level(logging.WARNING, logger="kedro_vertex_runner"):
        config = load(conf)
    assert not hasattr(config.run_config, "ttl")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "conf/base/vertexai.yml: run_config.image_pull_policy is ignored: it has no meaning on Vertex AI "
        "Pipelines; remove it",
        "conf/base/vertexai.yml: run_config.ttl is ignored: it has no meaning on Vertex AI Pipelines; remove it",
    ]


def test_reference_networking_key_is_read(conf):
    write(
        conf,
        with_run_config(
            """\
            vertex_ai_networking:
              vpc: projects/12345/global/networks/main
              host_aliases: [{ip: 10.0.0.2, hostnames: [mlflow.internal]}]
            """
        ),
    )
    network = load(conf).run_config.network
    assert network.vpc == "projects/12345/global/networks/main"
    assert network.host_aliases[0].hostnames == ["mlflow.internal"]


def test_validate_config_without_files_still_gives_one_line():
    with pytest.raises(ConfigError, match=r"^vertexai.yml: run_config: required key is missing"):
        validate_config({"project_id": "proj-1", "region": "us-central1"})


# ----------------------------------------------------------------------------------------------------------------
# checks against the Kedro pipeline


def _identity(x):
    return x


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline(
        [
            Node(_identity, "a", "b", name="prepare", tags=["preprocessing"]),
            Node(_identity, "b", "c", name="train", tags=["training"]),
        ]
    )


def test_resources_entries_naming_nodes_tags_or_default_pass(conf, pipeline):
    write(conf, with_run_config("resources:\n  __default__: {cpu: 1}\n  train: {cpu: 4}\n  preprocessing: {cpu: 2}\n"))
    check_against_pipeline(load(conf), pipeline)


def test_resources_entry_naming_no_node_or_tag_is_an_error(conf, pipeline):
    write(conf, with_run_config("resources:\n  trian: {cpu: 4}\n"))
    with pytest.raises(ConfigError) as info:
        check_against_pipeline(load(conf), pipeline)
    assert str(info.value) == (
        "conf/base/vertexai.yml: run_config.resources.trian: names no node or tag of pipeline '__default__' "
        "(did you mean 'train'?)"
    )


def test_resources_entry_error_names_the_env_file_that_defines_it(conf, pipeline):
    write(conf, VALID)
    write(conf, "run_config:\n  resources:\n    zzz: {cpu: 4}\n", env="prod")
    with pytest.raises(
        ConfigError,
        match=r"^conf/prod/vertexai.yml: run_config.resources.zzz: names no node or tag "
        r"of pipeline 'model': use a node name, a tag or __default__$",
    ):
        check_against_pipeline(load(conf, env="prod"), pipeline, pipeline_name="model")


def test_resources_check_against_all_registered_pipelines_says_so(conf, pipeline):
    write(conf, with_run_config("resources:\n  trainn: {cpu: 4}\n"))
    with pytest.raises(ConfigError, match=r"trainn: names no node or tag of any registered pipeline \(did you mean"):
        check_against_pipeline(load(conf), pipeline, pipeline_name=None)


def test_gpu_count_without_accelerator_is_an_error(conf, pipeline):
    write(conf, with_run_config("resources:\n  training: {gpu: 1}\n"))
    with pytest.raises(ConfigError, match=r"run_config.resources.training.gpu: a GPU count needs an accelerator"):
        check_against_pipeline(load(conf), pipeline)


def test_on_exit_and_schedule_pipelines_must_be_registered(conf):
    write(conf, with_run_config("on_exit_pipeline: notfiy\n"))
    with pytest.raises(ConfigError) as info:
        check_pipeline_names(load(conf), ["__default__", "notify"])
    assert str(info.value) == (
        "conf/base/vertexai.yml: run_config.on_exit_pipeline: no pipeline 'notfiy' is registered "
        "(did you mean 'notify'?)"
    )
    write(conf, with_run_config("schedules:\n  nightly: {cron: '0 3 * * *', pipeline: other}\n"))
    with pytest.raises(ConfigError, match=r"run_config.schedules.nightly.pipeline: no pipeline 'other'"):
        check_pipeline_names(load(conf), ["__default__"])


# ----------------------------------------------------------------------------------------------------------------
# the configuration reference's key table (docs/reference.md)


def test_config_reference_is_a_well_formed_table_of_every_key():
    table = config_reference().splitlines()
    assert all(row.count("|") == 5 for row in table), [row for row in table if row.count("|") != 5]
    keys = [row.split("`")[1] for row in table[2:]]
    for key in (
        "project_id",
        "run_config.resources.<name>.cpu",
        "run_config.schedules.<name>.cron",
        "run_config.network.host_aliases[].ip",
        "run_config.retries.backoff",
        "run_config.local.max_workers",
    ):
        assert key in keys
    assert "| `run_config.description` | string, optional |" in config_reference()
    assert "one of `makespan`, `chains`, `none`, `namespace`, `tags`" in config_reference()
    assert "| `run_config.grouping_options.task_startup` | duration | `120` |" in config_reference()


# ----------------------------------------------------------------------------------------------------------------
# what the user sees on the terminal


def _compile(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        kedro_cmd("vertexai", "compile", "-o", "pipeline.json", *args),
        cwd=project,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_compile_with_bad_config_prints_one_error_line(demo_project):
    config = demo_project / "conf" / "base" / "vertexai.yml"
    config.write_text(config.read_text().replace("      timeout: 30m", "      timeout: [30m]"))
    result = _compile(demo_project)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().splitlines() == [
        "Error: conf/base/vertexai.yml: run_config.resources.model.train_model.timeout: expected a duration such "
        "as 3600, '30m' or '2h', got ['30m']"
    ]
    assert not (demo_project / "pipeline.json").exists()


@pytest.mark.slow
def test_compile_with_resources_entry_naming_no_node_prints_one_error_line(demo_project):
    config = demo_project / "conf" / "base" / "vertexai.yml"
    config.write_text(config.read_text().replace("    model.train_model:", "    model.trian_model:"))
    result = _compile(demo_project)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "Error: conf/base/vertexai.yml: run_config.resources.model.trian_model: names no node or tag of "
    )
    assert lines[0].endswith("(did you mean 'model.train_model'?)")


# the bad-config cases of the foundation issue, as `kedro run --runner=VertexRunner` reports them: (edit of the
# example's vertexai.yml, the one line expected on stderr)
# one case per way a config problem reaches `kedro run` (loading, the checks against the project's pipelines, a
# missing file, a file that is not text, a secret); every message of the schema itself is tested in-process above
RUN_CASES = {
    "unknown key": (
        ("  grouping: makespan\n", "  grouping: makespan\n  imagee: x\n"),
        "Error: conf/base/vertexai.yml: run_config.imagee: unknown key: remove it or fix its spelling (did you mean "
        "'image'?)",
    ),
    "resources entry naming no node or tag": (
        ("    model.train_model:", "    model.trian_model:"),
        "Error: conf/base/vertexai.yml: run_config.resources.model.trian_model: names no node or tag of any "
        "registered pipeline (did you mean 'model.train_model'?)",
    ),
    "no vertexai.yml": (
        None,
        "Error: no vertexai.yml found in conf/base or the run env: run `kedro vertexai init PROJECT_ID REGION` in "
        "the project to create conf/base/vertexai.yml",
    ),
    "root naming no bucket": (
        ("  root: data/vertex_runs", '  root: "gs://"'),
        "Error: conf/base/vertexai.yml: run_config.root: 'gs://' names no bucket: give gs://bucket/path",
    ),
    "secret in env": (
        ("  grouping: makespan\n", "  grouping: makespan\n  env: {DB_PASS: hunter2}\n"),
        "Error: conf/base/vertexai.yml: run_config.env.DB_PASS: looks like a secret (its name contains 'PASS') and "
        "must never be stored in the compiled pipeline",
    ),
    "on-exit pipeline sharing the job's nodes": (
        ("  # on_exit_pipeline: notify", "  on_exit_pipeline: data_processing"),
        "Error: conf/base/vertexai.yml: run_config.on_exit_pipeline: pipeline 'data_processing' shares node",
    ),
    "config file not in UTF-8": (
        ("conf/local/vertexai.yml", "run_config:\n  description: caf\u00e9\n".encode("latin-1")),
        "Error: conf/local/vertexai.yml: line 2: not UTF-8 text (byte 0xe9): save the file as UTF-8",
    ),
}


@pytest.mark.slow
def test_kedro_run_with_bad_config_prints_one_error_line_per_case(demo_project, tmp_path):
    """Every case through `kedro run --runner=VertexRunner` (the command users run most), in one batch of kedro
    commands to keep the test short: one `Error:` line naming the file and key, a non-zero exit, no traceback,
    nothing run."""
    import shutil

    from conftest import kedro_batch

    projects = {}
    for index, (case, (edit, _)) in enumerate(RUN_CASES.items()):
        project = shutil.copytree(demo_project, tmp_path / f"case{index}" / "demo_project")
        config = project / "conf" / "base" / "vertexai.yml"
        if edit is None:
            config.unlink()
        elif isinstance(edit[1], bytes):  # a whole file, as bytes
            (project / edit[0]).write_bytes(edit[1])
        else:
            text = config.read_text()
            assert edit[0] in text, case
            config.write_text(text.replace(edit[0], edit[1], 1))
        projects[case] = project
    results = kedro_batch([(project, ["run", "--runner=VertexRunner"]) for project in projects.values()])
    problems = []
    for (case, project), result in zip(projects.items(), results, strict=True):
        stdout, stderr = result.stdout, result.stderr
        expected = RUN_CASES[case][1]
        errors = [line for line in stderr.splitlines() if line.startswith("Error")]
        if result.returncode == 0 or "Traceback" in stdout + stderr or len(errors) != 1 or "hunter2" in stderr:
            problems.append(f"{case}: exit {result.returncode}, stderr: {stderr[-2000:]}")
        elif not errors[0].startswith(expected):
            problems.append(f"{case}: {errors[0]!r} does not start with {expected!r}")
        elif (project / "data" / "vertex_runs").exists():
            problems.append(f"{case}: a job was started")
    assert problems == []


def test_duplicate_key_names_the_file_and_line(conf):
    write(conf, VALID)
    write(conf, "run_config:\n  image: a\n  image: b\n", env="prod")
    assert load_error(conf, "prod") == "conf/prod/vertexai.yml: line 3: found duplicate key image; fix the YAML there"
    write(conf, "run_config:\n  image: a\n", env="prod")
    write(conf, VALID + "  image: again\n")
    assert load_error(conf, "prod").startswith("conf/base/vertexai.yml: line 6: found duplicate key image")


def test_env_override_of_another_shape_names_the_key(conf):
    write(conf, VALID + "  resources:\n    __default__: {cpu: 1}\n")
    write(conf, "run_config:\n  resources: [a, b]\n", env="prod")
    assert load_error(conf, "prod") == (
        "conf/prod/vertexai.yml: run_config.resources: conf/base/vertexai.yml has a mapping here; overrides must "
        "keep the same shape"
    )


# ----------------------------------------------------------------------------------------------------------------
# storage root, project id, accelerators, bounds, names: refused before anything runs


@pytest.mark.parametrize(
    ("backend", "root", "expected"),
    [
        ("vertex", '"gs://"', "run_config.root: 'gs://' names no bucket: give gs://bucket/path"),
        ("local", '"gs://"', "run_config.root: 'gs://' names no bucket"),
        ("vertex", '"gs:///x"', "run_config.root: 'gs:///x' names no bucket"),
        (
            "vertex",
            "s3://bucket/runs",
            "run_config.root: 's3://bucket/runs': backend 'vertex' cannot keep job data "
            "in s3:// (backend 'kubeflow' does); give gs://bucket/path",
        ),
        ("vertex", "file:///tmp/runs", "backend 'vertex' cannot keep job data in file:// (backend 'local' does)"),
        (
            "local",
            "hdfs://nn/runs",
            "backend 'local' cannot keep job data in hdfs://; give a local folder or file:///path or gs://bucket/path",
        ),
        ("local", "-runs", "run_config.root: '-runs' starts with '-'"),
        ("vertex", "-bucket/runs", "run_config.root: '-bucket/runs' starts with '-'"),
        ("local", '"gs:/bucket/runs"', "looks like a URL without '//' after 'gs:'"),
        ("vertex", "gs://My_Bucket/x", "'My_Bucket' is not a Cloud Storage bucket name"),
        ("local", '" data/runs"', "starts or ends with a space"),
        ("local", '"file://"', "names no folder"),
    ],
)
def test_root_that_is_not_what_it_says_is_refused(conf, backend, root, expected):
    write(conf, VALID.replace("  root: my-bucket/runs", f"  root: {root}\n  backend: {backend}"))
    assert expected in load_error(conf)


@pytest.mark.parametrize(
    ("backend", "root", "expected"),
    [
        ("vertex", "gs://my-bucket/runs", "gs://my-bucket/runs"),
        ("vertex", "my.bucket.example.com/runs", "gs://my.bucket.example.com/runs"),
        ("local", "data/runs", "data/runs"),
        ("local", "file:///tmp/runs", "file:///tmp/runs"),
        ("local", "gs://my-bucket", "gs://my-bucket"),
    ],
)
def test_good_roots_pass(conf, backend, root, expected):
    write(conf, VALID.replace("  root: my-bucket/runs", f"  root: {root}\n  backend: {backend}"))
    assert load(conf).run_config.root == expected


def test_backend_override_checks_the_root_again(conf):
    write(conf, VALID.replace("  root: my-bucket/runs", "  root: file:///tmp/runs\n  backend: local"))
    config = load(conf)
    with pytest.raises(ConfigError) as info:
        config.with_backend("vertex")
    assert str(info.value).startswith(
        "conf/base/vertexai.yml: run_config.root: 'file:///tmp/runs': backend 'vertex' cannot keep job data in "
    )
    assert str(info.value).endswith("(the job runs on backend 'vertex')")


def test_local_root_is_where_the_local_backend_keeps_a_cloud_project_s_data(conf):
    """A project whose root is a bucket rehearses locally (``--runner-params backend=local``) in local.root."""
    write(conf, VALID.replace("  root: my-bucket/runs", "  root: gs://my-bucket/runs\n  local: {root: data/runs}"))
    config = load(conf)
    assert config.run_config.root == "gs://my-bucket/runs"  # vertex, as configured
    assert config.with_backend("local").run_config.root == "data/runs"
    # with backend: local in the file, local.root wins there too, and vertex still reads `root`
    write(conf, VALID.replace("  root: my-bucket/runs", "  root: my-bucket/runs\n  backend: local\n  local: {root: x}"))
    config = load(conf)
    assert config.run_config.root == "x"
    assert config.with_backend("vertex").run_config.root == "gs://my-bucket/runs"
    # a bad local.root is named as such
    write(conf, VALID + "  backend: local\n  local: {root: '-x'}\n")
    assert load_error(conf).startswith("conf/base/vertexai.yml: run_config.local.root: '-x' starts with '-'")


@pytest.mark.parametrize("project_id", ["my-project", "abcdef", "a" * 30, "p-123456", "example.com:my-project"])
def test_valid_project_ids_pass(conf, project_id):
    write(conf, VALID.replace("project_id: my-project", f"project_id: {project_id}"))
    assert load(conf).project_id == project_id


@pytest.mark.parametrize(
    "project_id", ["abcde", "a" * 31, "My-Project", "1project", "my-project-", "my_project", "my project"]
)
def test_project_id_breaking_gcp_rules_is_refused(conf, project_id):
    write(conf, VALID.replace("project_id: my-project", f"project_id: {project_id!r}"))
    message = load_error(conf)
    assert message.startswith("conf/base/vertexai.yml: project_id: expected a Google Cloud project id: 6 to 30 ")
    assert message.endswith(f"got {project_id!r}")


def test_accelerator_types_are_vertex_ai_s_own():
    """The list the config checks against is the client library's enum, so a new accelerator is never refused."""
    from google.cloud.aiplatform_v1.types import AcceleratorType

    from kedro_vertex_runner.config import ACCELERATOR_TYPES

    assert sorted(ACCELERATOR_TYPES) == sorted(
        name for name in AcceleratorType.__members__ if name != "ACCELERATOR_TYPE_UNSPECIFIED"
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "resources:\n  train: {accelerator: NVIDIA_TESLA_T5}\n",
            "conf/base/vertexai.yml: run_config.resources.train.accelerator: 'NVIDIA_TESLA_T5' is not a Vertex AI "
            "accelerator type (did you mean 'NVIDIA_TESLA_T4'?)",
        ),
        ("resources:\n  train: {accelerator: nvidia-l4}\n", "(did you mean 'NVIDIA_L4'?)"),
        ("resources:\n  train: {accelerator: tpu_v5_lite}\n", "(did you mean 'TPU_V5_LITEPOD'?)"),
        ("resources:\n  train: {accelerator: GPU}\n", "Vertex AI knows NVIDIA_TESLA_K80, "),
        (
            "resources:\n  train: {accelerator: NVIDIA_L4, gpu: 0}\n",
            "conf/base/vertexai.yml: run_config.resources.train.gpu: 0 contradicts accelerator NVIDIA_L4: remove",
        ),
        (
            "resources:\n  train: {gpu: 17, accelerator: NVIDIA_L4}\n",
            "run_config.resources.train.gpu: must be less than or equal to 16, got 17",
        ),
        ("resources:\n  train: {cpu: 5000}\n", "run_config.resources.train.cpu: 5000 is more than 1024 cores"),
        ("resources:\n  train: {memory: 1Pi}\n", "run_config.resources.train.memory: '1Pi' is more than 64Ti"),
        (
            "retries: {max_retries: 2, backoff_factor: 1e200}\n",
            "run_config.retries.backoff_factor: must be less than or equal to 100, got 1e+200",
        ),
        ("retries: {max_retries: 2, backoff: 2d}\n", "run_config.retries.backoff: '2d' is longer than the limit of 1d"),
        ("retries: {max_retries: 2, max_backoff: 1e9}\n", "run_config.retries.max_backoff: 1000000000.0 is longer"),
        ("timeout: 400d\n", "run_config.timeout: '400d' is longer than the limit of 30d"),
        ("local: {max_workers: 100000}\n", "run_config.local.max_workers: must be less than or equal to 1024"),
        ("env: {2FAST: x}\n", "run_config.env.2FAST: environment variable name '2FAST' must use only letters"),
        ("env: {MY-VAR: x}\n", "run_config.env.MY-VAR: environment variable name 'MY-VAR'"),
        (
            "network:\n  host_aliases: [{ip: 10.0.0.2, hostnames: ['-x']}]\n",
            "run_config.network.host_aliases.0.hostnames: expected host names such as 'mlflow.internal'",
        ),
        ("network:\n  host_aliases: [{ip: 10.0.0.2, hostnames: ['']}]\n", "expected host names such as"),
        ("network:\n  host_aliases: [{ip: 10.0.0.2, hostnames: [a b]}]\n", "got 'a b'"),
    ],
)
def test_out_of_range_or_unknown_values_are_refused(conf, extra, expected):
    write(conf, with_run_config(extra))
    assert expected in load_error(conf)


def test_gpu_zero_under_an_inherited_accelerator_is_a_contradiction(conf, pipeline):
    write(conf, with_run_config("resources:\n  __default__: {accelerator: NVIDIA_L4}\n  train: {gpu: 0}\n"))
    with pytest.raises(ConfigError) as info:
        check_against_pipeline(load(conf), pipeline)
    assert str(info.value) == (
        "conf/base/vertexai.yml: run_config.resources.train.gpu: 0 contradicts accelerator NVIDIA_L4 that node "
        "'train' gets from run_config.resources.__default__: set `accelerator` only in the entries of the nodes "
        "that need one"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a Cyrillic 'о' in 'lоcal' must not print as 'lоcal'
        (
            with_run_config("backend: l\u043ecal\n"),
            "run_config.backend: expected one of 'vertex', 'local', 'kubeflow', got 'l\\u043ecal'",
        ),
        (
            with_run_config("gr\u200bouping: chains\n"),
            "conf/base/vertexai.yml: run_config.'gr\\u200bouping': the key contains an invisible character "
            "('\\u200b' at position 3): retype it",
        ),
        (
            with_run_config("service_account: |\n    me@x.iam.gserviceaccount.com\n"),
            "run_config.service_account: 'me@x.iam.gserviceaccount.com\\n' contains an invisible character ('\\n' at "
            "position 29): remove it",
        ),
        (with_run_config('env: {LOG_LEVEL: "INFO\\u00a0"}\n'), "run_config.env.LOG_LEVEL: 'INFO\\xa0' contains"),
        (VALID.replace("europe-west1", "europe-west\u0031\u200b"), "region: 'europe-west1\\u200b' contains"),
    ],
    ids=["lookalike", "zero-width-key", "trailing-newline", "no-break-space", "zero-width-value"],
)
def test_invisible_or_lookalike_characters_are_shown_escaped(conf, text, expected):
    write(conf, text)
    message = load_error(conf)
    assert expected in message and message.isascii()


def test_free_text_keeps_its_line_breaks(conf):
    write(conf, with_run_config("description: |\n    Line one.\n    Line two.\n"))
    assert load(conf).run_config.description == "Line one.\nLine two.\n"


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        ("env: {DB_PASS: hunter2}\n", "run_config.env.DB_PASS", "its name contains 'PASS'"),
        ("env: {dbPwd: hunter2}\n", "run_config.env.dbPwd", "its name contains 'PWD'"),
        ("env: {AWS_CREDS: hunter2}\n", "run_config.env.AWS_CREDS", "its name contains 'CREDS'"),
        (
            "env: {DB: 'postgresql://app:hunter2@db/x'}\n",
            "run_config.env.DB",
            "its value looks like a URL with a password",
        ),
        (
            'env: {KEY_FILE: "-----BEGIN PRIVATE KEY-----\\nhunter2\\n-----END PRIVATE KEY-----"}\n',
            "run_config.env.KEY_FILE",
            "its value looks like a private key",
        ),
        ("description: 'uses AKIAHUNTER2HUNTER2XX'\n", "run_config.description", "its value looks like an AWS"),
        (
            "env: {X: AIzahunter2hunter2hunter2hunter2hunter2h}\n",
            "run_config.env.X",
            "its value looks like a Google API key",
        ),
        (
            "env: {X: ya29.hunter2hunter2hunter2hunter2}\n",
            "run_config.env.X",
            "its value looks like a Google OAuth token",
        ),
        (
            "env: {X: ghp_hunter2hunter2hunter2hunter2hunter2hu}\n",
            "run_config.env.X",
            "its value looks like a GitHub token",
        ),
        (
            "mlflow: {audience: 'https://u:hunter2@mlflow.example.com'}\n",
            "run_config.mlflow.audience",
            "its value looks like a URL with a password",
        ),
        (
            "schedules:\n  nightly: {cron: '0 3 * * *', params: {db: {password: hunter2}}}\n",
            "run_config.schedules.nightly.params.db.password",
            "its name contains 'PASSW'",
        ),
    ],
)
def test_secrets_in_the_config_are_refused_without_echoing_them(conf, extra, key, reason):
    write(conf, with_run_config(extra))
    message = load_error(conf)
    assert message.startswith(f"conf/base/vertexai.yml: {key}: looks like a secret ({reason}")
    assert "Secret Manager" in message and "credentials" in message
    assert "hunter2" not in message and "HUNTER2" not in message


@pytest.mark.parametrize("name", ["BYPASS_CACHE", "COMPASS_URL", "LOG_LEVEL", "PATH_PREFIX", "KEYBOARD"])
def test_ordinary_names_are_not_taken_for_secrets(conf, name):
    write(conf, with_run_config(f"env: {{{name}: x}}\n"))
    assert load(conf).run_config.env == {name: "x"}


def test_on_exit_pipeline_may_not_be_or_overlap_the_job(conf):
    from kedro_vertex_runner.config import check_on_exit_pipeline

    write(conf, with_run_config("on_exit_pipeline: training\n"))
    config = load(conf)
    with pytest.raises(ConfigError) as info:
        check_on_exit_pipeline(config, ["training"], ["a", "b"], ["a", "b"])
    assert str(info.value) == (
        "conf/base/vertexai.yml: run_config.on_exit_pipeline: 'training' is the pipeline this job runs, so it would "
        "run twice: name a separate pipeline (notifications, clean-up) that shares no node with the job"
    )
    with pytest.raises(ConfigError, match=r"pipeline 'training' shares node 'b' and 1 more with the pipeline this"):
        check_on_exit_pipeline(config, ["__default__"], ["b", "c", "x"], ["c", "b"])
    check_on_exit_pipeline(config, ["__default__"], ["a", "b"], ["notify"])


def test_config_file_not_in_utf8_is_named(conf):
    write(conf, VALID)
    (conf / "local" / "vertexai.yml").write_bytes("run_config:\n  description: caf\u00e9\n".encode("latin-1"))
    assert load_error(conf) == (
        "conf/local/vertexai.yml: line 2: not UTF-8 text (byte 0xe9): save the file as UTF-8 (e.g. `iconv -f latin1 "
        "-t utf-8`)"
    )


def test_runner_params_show_lookalike_letters_escaped(capsys):
    from kedro_vertex_runner.runner import VertexRunner

    with pytest.raises(SystemExit):
        VertexRunner(backend="l\u043ecal")  # a Cyrillic 'о'
    assert (
        capsys.readouterr().err.strip()
        == "Error: --runner-params backend='l\\u043ecal': expected 'local', 'vertex' or 'kubeflow'"
    )


# ----------------------------------------------------------------------------------------------------------------
# production job settings: encryption key, failure policy, private networking, labels


def test_production_job_settings_load(conf):
    write(
        conf,
        with_run_config("""\
        encryption_key: projects/kms-proj/locations/europe-west1/keyRings/ml/cryptoKeys/pipelines
        failure_policy: fast
        labels: {team: pricing}
        network:
          vpc: projects/123/global/networks/private
          reserved_ip_ranges: [vertex-ai-range]
          psc_interface:
            network_attachment: projects/p/regions/europe-west1/networkAttachments/att-1
            dns_peering: [{domain: corp.example.com., target_project: host-project, target_network: shared}]
        schedules:
          nightly: {cron: "0 2 * * *", allow_queueing: true}
        """),
    )
    run_config = load(conf).run_config
    assert run_config.failure_policy == "fast"
    assert run_config.network.reserved_ip_ranges == ["vertex-ai-range"]
    assert run_config.network.psc_interface.dns_peering[0].target_network == "shared"
    assert run_config.schedules["nightly"].allow_queueing is True


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "encryption_key: my-key\n",
            "run_config.encryption_key: expected a Cloud KMS key name 'projects/<project>/locations/<region>/keyRings/",
        ),
        (
            "encryption_key: projects/k/locations/us-east1/keyRings/r/cryptoKeys/c\n",
            "run_config.encryption_key: the key is in location 'us-east1', but Vertex AI needs a key in the job's "
            "region 'europe-west1'",
        ),
        ("failure_policy: quick\n", "run_config.failure_policy: expected one of 'fast', 'slow', got 'quick'"),
        (
            "labels: {vertex-ai-pipelines-run-billing-id: x}\n",
            "label key 'vertex-ai-pipelines-run-billing-id' is reserved",
        ),
        ("labels: {goog-managed: x}\n", "label key 'goog-managed' is reserved"),
        (
            "network: {reserved_ip_ranges: [r1]}\n",
            "run_config.network: reserved_ip_ranges are ranges of the peered VPC: set network.vpc too",
        ),
        (
            "network: {psc_interface: {network_attachment: 'Bad Name'}}\n",
            "run_config.network.psc_interface.network_attachment: expected a network attachment name",
        ),
        (
            "network: {psc_interface: {network_attachment: att, dns_peering: [{domain: corp, target_project: p, "
            "target_network: n}]}}\n",
            "run_config.network.psc_interface.dns_peering.0.domain: expected a DNS suffix ending with a dot",
        ),
    ],
)
def test_bad_production_job_settings_are_one_line(conf, extra, expected):
    write(conf, with_run_config(extra))
    message = load_error(conf)
    assert message.startswith("conf/base/vertexai.yml: ") and expected in message, message


# ----------------------------------------------------------------------------------------------------------------
# kedro-vertexai 1.x configs


# shaped like kedro-vertexai's `init` template and configuration docs (their keys, our example's nodes)
KEDRO_VERTEXAI_CONFIG = """\
project_id: my-project
region: europe-west1
run_config:
  image: europe-docker.pkg.dev/my-project/repo/img:1
  root: my-bucket/runs
  experiment_name: demo-experiment
  scheduled_run_name: demo-scheduled
  grouping:
    cls: kedro_vertexai.grouping.TagNodeGrouper
    params:
      tag_prefix: "group."
  ttl: 604800
  resources:
    clean_houses:
      memory: 4Gi
    train_model:
      cpu: 8
      memory: 8Gi
      gpu: 1
    training:
      "nvidia.com/gpu": 2
    __default__:
      cpu: 1000m
      memory: 2048Mi
  node_selectors:
    train_model:
      cloud.google.com/gke-accelerator: NVIDIA_TESLA_T4
  dynamic_config_providers:
    - cls: kedro_vertexai.auth.gcp.MLFlowGoogleOAuthCredentialsProvider
      params:
        client_id: iap-client-id.apps.googleusercontent.com
  schedules:
    default_schedule:
      cron_expression: "0 * * * *"
      timezone: Etc/UTC
      start_time: none
      end_time: none
      allow_queueing: false
      max_run_count: none
      max_concurrent_run_count: 1
"""

KEDRO_VERTEXAI_WARNINGS = [
    "run_config.ttl is ignored: it has no meaning on Vertex AI Pipelines; remove it",
    "run_config.grouping is a kedro-vertexai key: write `grouping: tags` instead",
    "run_config.resources.training.nvidia.com/gpu is a kedro-vertexai key: write run_config.resources.training.gpu "
    "instead",
    "run_config.node_selectors.train_model.cloud.google.com/gke-accelerator is a kedro-vertexai key: write "
    "run_config.resources.train_model.accelerator: NVIDIA_TESLA_T4 instead",
    "run_config.dynamic_config_providers.0 is a kedro-vertexai key: write run_config.mlflow.audience: "
    "iap-client-id.apps.googleusercontent.com instead",
    *[
        f"run_config.schedules.default_schedule.{key} is a kedro-vertexai key: write `{key}: null` (YAML reads 'none' "
        "as a string) or remove the key instead"
        for key in ("start_time", "end_time", "max_run_count")
    ],
    "run_config.schedules.default_schedule.cron_expression is a kedro-vertexai key: write "
    "run_config.schedules.default_schedule.cron instead",
]


def test_kedro_vertexai_config_loads_with_one_warning_per_translated_key(conf, caplog):
    write(conf, KEDRO_VERTEXAI_CONFIG)
    with caplog.at_level(logging.WARNING, logger="kedro_vertex_runner"):
        config = load(conf)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"conf/base/vertexai.yml: {w}" for w in KEDRO_VERTEXAI_WARNINGS]
    run_config = config.run_config
    assert run_config.grouping == "tags"
    train = run_config.settings_for("train_model", ["training"])
    assert (train.cpu, train.gpu, train.accelerator) == ("8", 1, "NVIDIA_TESLA_T4")  # node name beats tag
    assert run_config.resources["training"].gpu == 2
    assert run_config.mlflow.audience == "iap-client-id.apps.googleusercontent.com"
    schedule = run_config.schedules["default_schedule"]
    assert (schedule.cron, schedule.timezone, schedule.start_time, schedule.max_run_count) == (
        "0 * * * *",
        "Etc/UTC",
        None,
        None,
    )


def test_kedro_vertexai_request_header_provider_in_kedro_mlflow_shape(conf):
    write(
        conf,
        with_run_config("""\
        mlflow:
          request_header_provider:
            type: kedro_vertexai.auth.gcp.MLFlowGoogleIAMRequestHeaderProvider
            pass_context: true
            init_kwargs: {client_id: my-client-id, service_account: sa@p.iam.gserviceaccount.com}
        """),
    )
    assert load(conf).run_config.mlflow.audience == "my-client-id"


def test_kedro_vertexai_mlflow_header_params_and_identity_grouper(conf, caplog):
    write(
        conf,
        with_run_config("""\
        grouping: {cls: kedro_vertexai.grouping.IdentityNodeGrouper}
        mlflow:
          request_header_provider_params: {client_id: my-client-id}
        dynamic_config_providers: []
        resources:
          __default__: {cpu: None, memory: None}
        """),
    )
    with caplog.at_level(logging.WARNING, logger="kedro_vertex_runner"):
        run_config = load(conf).run_config
    assert run_config.grouping == "none"
    assert run_config.mlflow.audience == "my-client-id"
    assert run_config.resources["__default__"].cpu is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 5, warnings
    assert (
        "conf/base/vertexai.yml: run_config.mlflow.request_header_provider_params is a kedro-vertexai key: write "
        "run_config.mlflow.audience: my-client-id instead" in warnings
    )


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "grouping: {cls: my_project.MyGrouper}\n",
            "run_config.grouping.cls: 'my_project.MyGrouper' has no equivalent: use grouping: chains, none, namespace",
        ),
        (
            "grouping: {cls: kedro_vertexai.grouping.TagNodeGrouper, params: {tag_prefix: 'g:'}}\n",
            "run_config.grouping.params.tag_prefix: 'g:': tag grouping reads tags `group.<name>`",
        ),
        (
            "node_selectors: {train: {cloud.google.com/gke-nodepool: big}}\n",
            "run_config.node_selectors.train.cloud.google.com/gke-nodepool: has no equivalent on Vertex AI Pipelines",
        ),
        (
            "dynamic_config_providers: [{cls: my_project.Secrets, params: {a: b}}]\n",
            "run_config.dynamic_config_providers.0: 'my_project.Secrets' has no equivalent",
        ),
        (
            "mlflow: {request_header_provider_params: {token: x}}\n",
            "run_config.mlflow.request_header_provider_params: has no equivalent besides `client_id`",
        ),
        (
            "node_selectors: {train: NVIDIA_TESLA_T4}\n",
            "run_config.node_selectors.train: expected a mapping, got 'NVIDIA_TESLA_T4'",
        ),
        (
            "dynamic_config_providers: [{cls: kedro_vertexai.auth.gcp.MLFlowGoogleOAuthCredentialsProvider, "
            "params: [x]}]\n",
            "run_config.dynamic_config_providers.0.params: expected a mapping, got ['x']",
        ),
    ],
)
def test_kedro_vertexai_keys_without_an_equivalent_are_one_line(conf, extra, expected):
    write(conf, with_run_config(extra))
    message = load_error(conf)
    assert message == f"conf/base/vertexai.yml: {expected}" or expected in message, message
    assert message.startswith("conf/base/vertexai.yml: run_config."), message


# ----------------------------------------------------------------------------------------------------------------
# backends from the registry; Kubeflow Pipelines keys

KUBEFLOW = """\
host: https://kubeflow.example.com/pipeline
run_config:
  backend: kubeflow
  image: registry.example.com/img:1
  root: s3://pipelines/runs
"""


def test_unknown_backend_names_the_key_the_file_and_every_registered_backend(conf):
    write(conf, with_run_config("backend: argo\n"))
    assert load_error(conf) == (
        "conf/base/vertexai.yml: run_config.backend: expected one of 'vertex', 'local', 'kubeflow', got 'argo'"
    )


def test_kubeflow_config_needs_no_project_and_reads_its_keys(conf):
    write(conf, KUBEFLOW + "  experiment_name: House prices (nightly)\n  kubeflow: {namespace: kubeflow-user-a}\n")
    config = load(conf)
    assert (config.project_id, config.region) == (None, None)
    assert config.host == "https://kubeflow.example.com/pipeline"
    assert config.run_config.root == "s3://pipelines/runs"
    assert config.run_config.experiment_name == "House prices (nightly)"  # Vertex AI's naming rule is not KFP's
    assert config.run_config.kubeflow.namespace == "kubeflow-user-a"


def test_kubeflow_reads_a_root_without_scheme_as_a_bucket(conf):
    write(conf, KUBEFLOW.replace("s3://pipelines/runs", "my-bucket/runs"))
    assert load(conf).run_config.root == "gs://my-bucket/runs"


def test_kubeflow_config_without_host_is_one_line(conf):
    write(conf, KUBEFLOW.replace("host: https://kubeflow.example.com/pipeline\n", ""))
    assert load_error(conf) == (
        "conf/base/vertexai.yml: host: required key is missing for backend 'kubeflow': add it (see the "
        "configuration reference, docs/reference.md)"
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        # refused as a secret before anything else looks at it
        (
            "https://admin:s3cret@kubeflow.example.com/pipeline",
            "host: looks like a secret (its value looks like a URL with a password)",
        ),
        ("https://admin@kubeflow.example.com", "host: the URL carries credentials"),
        ("ftp://kubeflow.example.com", "host: expected an http:// or https:// URL of the Kubeflow Pipelines API"),
        ("kubeflow.example.com/pipeline", "host: expected an http:// or https:// URL"),
        ("https://kubeflow.example.com/pipeline?ns=x", "has a query or fragment"),
        ("https://kubeflow.example.com/pipeline#runs", "has a query or fragment"),
        ("https://kubeflow.example.com:port", "host: expected the URL of the Kubeflow Pipelines API"),
    ],
)
def test_host_must_be_a_plain_http_url(conf, host, expected):
    write(conf, KUBEFLOW.replace("https://kubeflow.example.com/pipeline", f"'{host}'"))
    message = load_error(conf)
    assert message.startswith("conf/base/vertexai.yml: host: ") and expected in message
    assert "s3cret" not in message  # a password is never repeated back


def test_host_of_ai_platform_pipelines_passes_without_its_trailing_slash(conf):
    write(
        conf,
        KUBEFLOW.replace(
            "https://kubeflow.example.com/pipeline", "https://1a2b3c-dot-europe-west1.pipelines.googleusercontent.com/"
        ),
    )
    assert load(conf).host == "https://1a2b3c-dot-europe-west1.pipelines.googleusercontent.com"


@pytest.mark.parametrize("namespace", ["Team-A", "-team", "team-", "team_a", "a" * 64, ""])
def test_namespace_must_be_a_kubernetes_name(conf, namespace):
    write(conf, KUBEFLOW + f"  kubeflow: {{namespace: '{namespace}'}}\n")
    message = load_error(conf)
    assert message.startswith("conf/base/vertexai.yml: run_config.kubeflow.namespace: expected a Kubernetes namespace")
    assert message.endswith(f"got {namespace!r}")


@pytest.mark.parametrize("namespace", ["kubeflow", "kubeflow-user-example-com", "a", "team1"])
def test_good_namespaces_pass(conf, namespace):
    write(conf, KUBEFLOW + f"  kubeflow: {{namespace: {namespace}}}\n")
    assert load(conf).run_config.kubeflow.namespace == namespace


def test_kubeflow_experiment_name_must_not_be_blank(conf):
    write(conf, KUBEFLOW + "  experiment_name: ' '\n")
    assert load_error(conf) == (
        "conf/base/vertexai.yml: run_config.experiment_name: the experiment name is empty: give a name or remove "
        "the key"
    )


def test_switching_a_kubeflow_config_to_vertex_asks_for_the_project(conf):
    write(conf, KUBEFLOW.replace("s3://pipelines/runs", "gs://pipelines/runs"))
    config = load(conf)
    with pytest.raises(ConfigError) as info:
        config.with_backend("vertex")
    assert str(info.value) == (
        "conf/base/vertexai.yml: project_id: required key is missing for backend 'vertex': add it (see the "
        "configuration reference, docs/reference.md) (the job runs on backend 'vertex')"
    )
    write(conf, "project_id: my-project\nregion: europe-west1\n" + KUBEFLOW.replace("s3://", "gs://"))
    switched = load(conf).with_backend("vertex")
    assert (switched.run_config.backend, switched.run_config.root) == ("vertex", "gs://pipelines/runs")


def test_switching_to_vertex_applies_its_experiment_name_rule(conf):
    write(
        conf,
        "project_id: my-project\nregion: europe-west1\n"
        + KUBEFLOW.replace("s3://", "gs://")
        + "  experiment_name: House prices\n",
    )
    with pytest.raises(
        ConfigError,
        match=r"^conf/base/vertexai.yml: run_config.experiment_name: experiment name "
        r"'House prices' may use only .* \(the job runs on backend 'vertex'\)$",
    ):
        load(conf).with_backend("vertex")


def test_switching_to_an_unknown_backend_is_one_line(conf):
    write(conf, VALID)
    with pytest.raises(ConfigError, match=r"^backend 'argo' is not known: use one of 'vertex', 'local', 'kubeflow'$"):
        load(conf).with_backend("argo")


def test_switching_to_kubeflow_needs_its_host(conf):
    write(conf, VALID)
    with pytest.raises(
        ConfigError,
        match=r"^conf/base/vertexai.yml: host: required key is missing for backend "
        r"'kubeflow'.*\(the job runs on backend 'kubeflow'\)$",
    ):
        load(conf).with_backend("kubeflow")


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_keys_kubeflow_cannot_honour_warn_once_each_naming_file_and_key(conf, caplog):
    write(conf, KUBEFLOW + "  service_account: me@p.iam.gserviceaccount.com\n  labels: {}\n")
    write(conf, "run_config:\n  failure_policy: fast\n", env="local")
    with caplog.at_level(logging.WARNING, logger="kedro_vertex_runner"):
        config = load(conf)
        config.with_backend("kubeflow")  # the backend it already has: nothing new to say
    assert _warnings(caplog) == [
        "Warning: conf/base/vertexai.yml: run_config.service_account: backend 'kubeflow' ignores it: set the "
        "pipeline runner's service account in the KFP installation instead",
        "Warning: conf/local/vertexai.yml: run_config.failure_policy: backend 'kubeflow' ignores it: KFP applies its "
        "own failure handling",
    ]  # `labels: {}` is the default: not a setting KFP ignores


def test_switching_to_kubeflow_warns_about_the_keys_it_ignores(conf, caplog):
    network = "network: {vpc: projects/1/global/networks/n}\n"
    write(conf, "host: https://kubeflow.example.com\n" + with_run_config(network))
    with caplog.at_level(logging.WARNING, logger="kedro_vertex_runner"):
        config = load(conf)
        assert _warnings(caplog) == []  # vertex honours it
        config.with_backend("kubeflow")
    assert _warnings(caplog) == [
        "Warning: conf/base/vertexai.yml: run_config.network: backend 'kubeflow' ignores it: KFP runs tasks on the "
        "cluster's own network"
    ]
