"""``kedro vertexai init`` and the templates it writes, plus the plugin's entry points as a user meets them:
the command group's help and ``kedro run --runner=VertexRunner`` (short and dotted name).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import EXAMPLE, kedro_cmd, subprocess_env
from kedro.config import OmegaConfigLoader

from kedro_vertex_runner.config import config_reference, load_config
from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.scaffold import init_project, render, template_values

PYPROJECT = """\
[project]
name = "my_proj"

[tool.kedro]
package_name = "my_proj"
project_name = "My Proj"
kedro_init_version = "1.7.0"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The smallest folder ``init`` accepts as a Kedro project."""
    root = tmp_path / "my-proj"
    (root / "conf" / "base").mkdir(parents=True)
    (root / "conf" / "local").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    return root


def _load(project: Path):
    loader = OmegaConfigLoader(conf_source=str(project / "conf"), base_env="base", default_run_env="local")
    return load_config(loader)


def test_init_writes_a_config_that_validates_as_is(project):
    written = init_project(project, "my-gcp-project", "europe-west4")
    assert written == [project / "conf" / "base" / "vertexai.yml"]
    config = _load(project)
    assert (config.project_id, config.region) == ("my-gcp-project", "europe-west4")
    assert config.run_config.image == "europe-west4-docker.pkg.dev/my-gcp-project/my-proj/my-proj:latest"
    assert config.gcs_root == "gs://my-gcp-project-vertex-pipelines/my-proj"
    assert not (project / "Dockerfile").exists()


def test_init_refuses_to_overwrite_without_force(project):
    path = project / "conf" / "base" / "vertexai.yml"
    path.write_text("# mine\n")
    with pytest.raises(PluginError) as info:
        init_project(project, "my-gcp-project", "europe-west4")
    assert str(info.value) == (
        "conf/base/vertexai.yml already exists: edit it, or run `kedro vertexai init` again with --force to "
        "overwrite it"
    )
    assert path.read_text() == "# mine\n"


def test_init_counts_the_yaml_spelling_as_existing(project):
    (project / "conf" / "base" / "vertexai.yaml").write_text("# mine\n")
    with pytest.raises(PluginError, match=r"^conf/base/vertexai.yaml already exists"):
        init_project(project, "my-gcp-project", "europe-west4")


def test_init_force_overwrites(project):
    path = project / "conf" / "base" / "vertexai.yml"
    path.write_text("# mine\n")
    init_project(project, "other-project", "us-central1", force=True)
    assert _load(project).project_id == "other-project"


def test_init_with_docker_writes_dockerfile_and_dockerignore(project):
    written = init_project(project, "my-gcp-project", "europe-west4", with_docker=True)
    assert {p.name for p in written} == {"vertexai.yml", "Dockerfile", ".dockerignore"}
    dockerfile = (project / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim AS deps$", dockerfile, re.M)
    assert re.search(r"^ENV DO_NOT_TRACK=1", dockerfile, re.M)
    assert re.search(r"^WORKDIR /home/kedro/project$", dockerfile, re.M)
    assert "kedro-vertex-runner" in dockerfile and re.search(r"^RUN pip install .*--no-deps \.$", dockerfile, re.M)
    assert re.search(r'^CMD \["kedro", "run"\]$', dockerfile, re.M)  # exec form
    assert not re.search(r"^ENTRYPOINT", dockerfile, re.M)
    assert "{{" not in dockerfile
    ignored = (project / ".dockerignore").read_text().splitlines()
    for entry in (".venv", "mlruns", "conf/local", "data/08_reporting", "**/credentials*.json"):
        assert entry in ignored


def test_init_with_docker_refuses_to_overwrite_a_dockerfile(project):
    (project / "Dockerfile").write_text("FROM scratch\n")
    with pytest.raises(PluginError, match=r"^Dockerfile already exists"):
        init_project(project, "my-gcp-project", "europe-west4", with_docker=True)
    assert not (project / "conf" / "base" / "vertexai.yml").exists()  # nothing written
    init_project(project, "my-gcp-project", "europe-west4", with_docker=True, force=True)
    assert (project / "Dockerfile").read_text().startswith("# Image for the tasks of my_proj")


def test_init_outside_a_kedro_project_is_one_line(tmp_path):
    with pytest.raises(PluginError, match=r"no pyproject.toml here: run `kedro vertexai init` from the root of"):
        init_project(tmp_path, "my-gcp-project", "europe-west4")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(PluginError, match=r"pyproject.toml: no \[tool.kedro\] table"):
        init_project(tmp_path, "my-gcp-project", "europe-west4")


def test_init_with_a_bad_region_writes_nothing(project):
    with pytest.raises(PluginError) as info:
        init_project(project, "my-gcp-project", "europe")
    assert str(info.value) == (
        "kedro vertexai init: REGION: expected a Google Cloud region such as 'europe-west1' or 'us-central1', got "
        "'europe'"
    )
    assert not (project / "conf" / "base" / "vertexai.yml").exists()


@pytest.mark.parametrize(
    ("project_id", "region", "shown"),
    [
        ("my-gcp-project\nregion: x", "europe-west1", "PROJECT_ID: expected a Google Cloud project id: 6 to 30 "),
        ("my-gcp-project #2", "europe-west1", "got 'my-gcp-project #2'"),
        ("my-gcp-project#2", "europe-west1", "got 'my-gcp-project#2'"),
        ("MyProject", "europe-west1", "got 'MyProject'"),
        ("abc", "europe-west1", "got 'abc'"),
        ("my-gcp-project", "europe-west1 # eu", "REGION: expected a Google Cloud region"),
        ("my-gcp-project", "europe-west1\n", "got 'europe-west1\\n'"),
    ],
)
def test_init_refuses_what_the_yaml_could_not_hold_and_writes_nothing(project, project_id, region, shown):
    """A newline or '#' would break the YAML or cut the value there: refused before anything is rendered."""
    with pytest.raises(PluginError) as info:
        init_project(project, project_id, region)
    message = str(info.value)
    assert message.startswith("kedro vertexai init: ") and shown in message and "\n" not in message
    assert not (project / "conf" / "base" / "vertexai.yml").exists()


def test_init_writes_values_that_read_back_exactly(project):
    init_project(project, "example.com:my-gcp-project", "us-central1")
    config = _load(project)
    assert (config.project_id, config.region) == ("example.com:my-gcp-project", "us-central1")


def test_template_mentions_every_key_of_the_models():
    """Every key appears in the template, set or commented out, so the file documents itself."""
    text = render("vertexai.yml", template_values("p-1234", "europe-west1", "pkg"))
    keys = {row.split("`")[1].split(".")[-1] for row in config_reference().splitlines()[2:]}
    keys = {key.removeprefix("host_aliases[]") for key in keys} - {""}
    missing = sorted(key for key in keys if not re.search(rf"^\s*(#\s*(-\s*)?)?(- )?{re.escape(key)}:", text, re.M))
    assert missing == []


# ----------------------------------------------------------------------------------------------------------------
# subprocesses in a copy of the example project


def _kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        kedro_cmd(*args), cwd=project, env=subprocess_env(), capture_output=True, text=True, timeout=180
    )


@pytest.mark.slow
def test_init_then_help_then_compile_in_the_example_project(demo_project):
    config = demo_project / "conf" / "base" / "vertexai.yml"
    config.unlink()
    refused = _kedro(demo_project, "vertexai", "init", "my-proj\nregion: x #", "europe-west4")
    assert refused.returncode != 0 and "Traceback" not in refused.stdout + refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "Error: kedro vertexai init: PROJECT_ID: expected a Google Cloud project id: 6 to 30 lowercase letters, "
        "digits or '-', starting with a letter and not ending with '-' (e.g. 'my-project-123'), got "
        "'my-proj\\nregion: x #'"
    ]
    assert not config.exists()
    result = _kedro(demo_project, "vertexai", "init", "my-proj", "europe-west4")
    assert result.returncode == 0, result.stderr
    assert f"Wrote {config}" in result.stdout
    assert "project_id: my-proj" in config.read_text()

    helped = _kedro(demo_project, "vertexai", "--help")
    assert helped.returncode == 0, helped.stderr
    commands = helped.stdout.split("Commands:")[1]
    for command in ("init", "compile", "run-once", "schedule", "list-pipelines", "ui"):
        assert re.search(rf"^\s+{command}\s", commands, re.M), command

    again = _kedro(demo_project, "vertexai", "init", "my-proj", "europe-west4")
    assert again.returncode != 0
    assert again.stderr.strip().splitlines() == [
        "Error: conf/base/vertexai.yml already exists: edit it, or run `kedro vertexai init` again with --force "
        "to overwrite it"
    ]

    compiled = _kedro(demo_project, "vertexai", "compile", "-o", "pipeline.json")
    assert compiled.returncode == 0, compiled.stderr
    assert (demo_project / "pipeline.json").exists()


REFUSALS = dict(
    zip(
        [
            "empty-run-id",
            "empty-backend",
            "fractional-workers",
            "only-missing",
            "load-versions",
            "conf-source",
            "option-like-run-id",
            "secret-param",
            "other-backends-param",
        ],
        [
            (["--runner-params", "run_id="], "Error: --runner-params run_id=: give a value, e.g. run_id=local-"),
            (["--runner-params", "backend="], "Error: --runner-params backend=: give a value, e.g. backend=local"),
            (["--runner-params", "max_workers=1.5"], "Error: --runner-params max_workers=1.5: expected a whole number"),
            (["--only-missing-outputs"], "Error: --only-missing-outputs: VertexRunner cannot use it"),
            (["--load-versions", "houses_clean:2024-01-01T00.00.00.000Z"], "Error: --load-versions: VertexRunner does"),
            (
                ["--conf-source", "elsewhere"],
                ("Error: --conf-source ", "/elsewhere: VertexRunner tasks read the project's own conf/"),
            ),
            (
                ["--runner-params", "backend=local,run_id=-x"],
                "Error: --runner-params run_id='-x': expected an id such as local-20240101-120000-abc123 (at most 128 ",
            ),
            (
                ["--params", "db_password=hunter2"],
                (
                    "Error: --params db_password: looks like a secret (its name contains 'PASSW') and must never be stored",
                    "Secret Manager",
                ),
            ),
            (
                ["--runner-params", "backend=vertex,max_workers=4"],
                "Error: --runner-params max_workers=4: an option of backend 'local', and this run is on backend "
                "'vertex': drop it, or add backend=local",
            ),
        ],
        strict=True,
    )
)
RUNNERS = ["VertexRunner", "kedro_vertex_runner.VertexRunner"]


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Every refusal case (and both runner names with a bad runner param) through `kedro run`, in one batch."""
    from conftest import _copy_project, kedro_batch

    project = _copy_project(EXAMPLE, tmp_path_factory.mktemp("refusals") / "demo_project")
    shutil.copytree(project / "conf", project / "elsewhere")
    commands = {
        f"runner-{runner}": ["run", f"--runner={runner}", "--runner-params", "backend=bogus"] for runner in RUNNERS
    }
    commands |= {case: ["run", "--runner=VertexRunner", *args] for case, (args, _) in REFUSALS.items()}
    results = kedro_batch([(project, args) for args in commands.values()])
    assert not (project / "data" / "vertex_runs").exists()  # no task ran
    return dict(zip(commands, results, strict=True))


@pytest.mark.slow
@pytest.mark.parametrize("runner", RUNNERS)
def test_kedro_run_resolves_the_runner_and_reports_bad_runner_params_in_one_line(refused, runner):
    result = refused[f"runner-{runner}"]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "backend" in lines[0], result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("case", list(REFUSALS))
def test_kedro_run_refuses_what_tasks_could_not_honour(refused, case):
    """Options the tasks could not honour are one `Error:` line before anything runs, not silently dropped."""
    result = refused[case]
    expected = REFUSALS[case][1]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    line = result.stderr.strip().splitlines()[-1]
    first, *rest = (expected,) if isinstance(expected, str) else expected
    assert line.startswith(first) and all(part in line for part in rest), result.stderr[-2000:]
    assert "hunter2" not in result.stderr + result.stdout
