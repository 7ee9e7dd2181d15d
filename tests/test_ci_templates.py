"""What ``kedro vertexai init --with-github-actions`` and ``--with-docker`` write, checked by real linters:
actionlint and check-jsonschema's GitHub-workflow schema for the workflow, hadolint for the Dockerfile.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import BIN, EXAMPLE
from kedro.config import OmegaConfigLoader

from kedro_vertex_runner.cli import commands
from kedro_vertex_runner.config import load_config
from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.scaffold import init_project

PYPROJECT = """\
[project]
name = "my_proj"
dependencies = ["pandas>=2", "scikit-learn~=1.5"]

[tool.kedro]
package_name = "my_proj"
project_name = "My Proj"
kedro_init_version = "1.7.0"
"""
WORKFLOW = Path(".github") / "workflows" / "vertexai.yml"
IMAGE_BASE = "europe-west4-docker.pkg.dev/my-gcp-project/my-proj/my-proj"
# current major versions, pinned
ACTIONS = {
    "actions/checkout@v6",
    "actions/setup-python@v6",
    "google-github-actions/auth@v3",
    "docker/setup-buildx-action@v4",
    "docker/login-action@v4",
    "docker/build-push-action@v7",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "my-proj"
    (root / "conf" / "base").mkdir(parents=True)
    (root / "conf" / "local").mkdir()
    (root / "pyproject.toml").write_text(PYPROJECT)
    return root


@pytest.fixture
def workflow(project: Path) -> dict:
    init_project(project, "my-gcp-project", "europe-west4", with_github_actions=True)
    return yaml.safe_load((project / WORKFLOW).read_text())


def _tool(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _steps(job: dict) -> dict[str, dict]:
    return {step["name"]: step for step in job["steps"]}


def test_generated_workflow_passes_actionlint_and_the_workflow_schema(project, workflow):
    linted = _tool("actionlint", "-no-color", str(WORKFLOW), cwd=project)
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")
    checked = _tool("check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW), cwd=project)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_workflow_authenticates_by_workload_identity_federation_with_pinned_current_actions(project, workflow):
    text = (project / WORKFLOW).read_text()
    assert "credentials_json" not in text and "secrets." not in text  # no long-lived key anywhere
    assert workflow["permissions"] == {"contents": "read", "id-token": "write"}
    used = {step["uses"] for job in workflow["jobs"].values() for step in job["steps"] if "uses" in step}
    assert used == ACTIONS
    for job in workflow["jobs"].values():
        auth = _steps(job)["Authenticate to Google Cloud"]
        assert auth["with"]["workload_identity_provider"] == "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}"
        assert auth["with"]["service_account"] == "${{ vars.GCP_SERVICE_ACCOUNT }}"
    assert "{{ " not in re.sub(r"\$\{\{[^}]*\}\}", "", text)  # every init placeholder filled


def test_workflow_builds_the_commit_image_then_runs_branches_and_schedules_main(workflow):
    env = workflow["env"]
    assert (env["GCP_PROJECT"], env["GCP_REGION"]) == ("my-gcp-project", "europe-west4")
    assert env["KEDRO_CONFIG_IMAGE"] == f"{IMAGE_BASE}:${{{{ github.sha }}}}"
    assert env["KEDRO_CONFIG_COMMIT_ID"] == "${{ github.sha }}"
    assert env["KEDRO_CONFIG_BRANCH_NAME"] == "${{ github.ref_name }}"
    assert workflow[True]["push"]["branches"] == ["**"]  # YAML 1.1 reads the key `on` as True

    jobs = workflow["jobs"]
    image = _steps(jobs["image"])
    assert image["Authenticate to Google Cloud"]["with"]["token_format"] == "access_token"
    login = image["Log in to Artifact Registry"]["with"]
    assert login == {
        "registry": "${{ env.REGISTRY }}",
        "username": "oauth2accesstoken",
        "password": "${{ steps.auth.outputs.access_token }}",
    }
    assert env["REGISTRY"] == "europe-west4-docker.pkg.dev"
    build = image["Build and push the image"]["with"]
    assert (build["push"], build["tags"]) == (True, "${{ env.KEDRO_CONFIG_IMAGE }}")

    run_once, schedule = jobs["run-once"], jobs["schedule"]
    assert (run_once["needs"], schedule["needs"]) == ("image", "image")
    assert run_once["if"] == "github.ref_name != 'main'"
    assert schedule["if"] == "github.ref_name == 'main'"
    assert run_once["steps"][-1]["run"].startswith("kedro vertexai run-once ")
    assert schedule["steps"][-1]["run"].startswith("kedro vertexai schedule ")
    assert '--cron "$SCHEDULE_CRON"' in schedule["steps"][-1]["run"]
    for job in (run_once, schedule):
        assert "python -m pip install ." in _steps(job)["Install the project"]["run"]


def test_the_config_init_writes_takes_the_image_the_workflow_built(project, workflow, monkeypatch):
    def image() -> str:
        loader = OmegaConfigLoader(conf_source=str(project / "conf"), base_env="base", default_run_env="local")
        return load_config(loader).run_config.image

    monkeypatch.delenv("KEDRO_CONFIG_IMAGE", raising=False)
    assert image() == f"{IMAGE_BASE}:latest"  # on a laptop: the default
    monkeypatch.setenv("KEDRO_CONFIG_IMAGE", f"{IMAGE_BASE}:0123abc")
    assert image() == f"{IMAGE_BASE}:0123abc"  # in the workflow: the image of the commit


def test_main_branch_is_configurable_and_checked(project):
    init_project(project, "my-gcp-project", "europe-west4", with_github_actions=True, main_branch="release/v2")
    jobs = yaml.safe_load((project / WORKFLOW).read_text())["jobs"]
    assert jobs["schedule"]["if"] == "github.ref_name == 'release/v2'"
    with pytest.raises(PluginError, match=r"^--main-branch \"it's\": expected a git branch name"):
        init_project(project, "my-gcp-project", "europe-west4", with_github_actions=True, main_branch="it's")


def test_init_refuses_to_overwrite_a_workflow_without_force(project):
    (project / WORKFLOW).parent.mkdir(parents=True)
    (project / WORKFLOW).write_text("name: mine\n")
    with pytest.raises(PluginError) as info:
        init_project(project, "my-gcp-project", "europe-west4", with_github_actions=True)
    assert str(info.value) == (
        ".github/workflows/vertexai.yml already exists: edit it, or run `kedro vertexai init` again with --force "
        "to overwrite it"
    )
    assert (project / WORKFLOW).read_text() == "name: mine\n"
    assert not (project / "conf" / "base" / "vertexai.yml").exists()  # nothing written
    init_project(project, "my-gcp-project", "europe-west4", with_github_actions=True, force=True)
    assert (project / WORKFLOW).read_text().startswith("# Continuous deployment of my_proj")


def test_init_command_takes_the_ci_flags(project, monkeypatch):
    monkeypatch.chdir(project)
    args = ["vertexai", "init", "my-gcp-project", "europe-west4", "--with-github-actions", "--main-branch", "trunk"]
    result = CliRunner().invoke(commands, args)
    assert result.exit_code == 0, result.output
    assert f"Wrote {project / WORKFLOW}" in result.output
    assert "github.ref_name == 'trunk'" in (project / WORKFLOW).read_text()
    again = CliRunner().invoke(commands, args)
    assert again.exit_code != 0
    assert again.output.strip().splitlines() == [
        "Error: conf/base/vertexai.yml already exists: edit it, or run `kedro vertexai init` again with --force "
        "to overwrite it"
    ]


# ----------------------------------------------------------------------------------------------------------------
# Dockerfile


@pytest.fixture
def dockerfile(project: Path) -> str:
    init_project(project, "my-gcp-project", "europe-west4", with_docker=True)
    return (project / "Dockerfile").read_text()


def test_dockerfile_passes_hadolint(project, dockerfile):
    linted = _tool("hadolint", "--no-color", "Dockerfile", cwd=project)
    assert (linted.returncode, linted.stdout + linted.stderr) == (0, "")


def test_dockerfile_has_a_dependencies_only_target_for_code_upload(dockerfile):
    stages = re.split(r"^FROM ", dockerfile, flags=re.M)[1:]
    assert [stage.splitlines()[0] for stage in stages] == ["python:3.11-slim AS deps", "deps AS project"]
    deps, project_stage = stages
    assert "COPY pyproject.toml requirements.tx[t] ./" in deps
    assert not re.search(r"^COPY .*\. \.$", deps, re.M)  # no project code in the dependencies image
    assert re.search(r"^COPY --chown=1000:1000 \. \.$", project_stage, re.M)
    assert re.search(r"^RUN pip install --no-cache-dir --no-deps \.$", project_stage, re.M)
    assert re.findall(r"^USER .*$", dockerfile, re.M)[-1] == "USER 1000"
    assert f"docker build --target deps -t {IMAGE_BASE}-deps:latest ." in dockerfile


def test_dockerfile_installs_the_dependencies_pyproject_declares(dockerfile, tmp_path):
    """The deps stage's one-liner, run on the example project's pyproject.toml, lists exactly its dependencies."""
    code = re.search(r'^RUN python -c "(.*)" \\$', dockerfile, re.M).group(1)  # the shell passes it as is
    (tmp_path / "pyproject.toml").write_bytes((EXAMPLE / "pyproject.toml").read_bytes())
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=30)
    listed = (tmp_path / ".dependencies.txt").read_text().split()
    assert listed == ["kedro~=1.7.0", "kedro-datasets>=9.0", "numpy", "pandas", "pyarrow", "scikit-learn"]
