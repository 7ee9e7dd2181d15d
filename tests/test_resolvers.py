"""``${vertex:…}`` values resolved through a real OmegaConf / Kedro config loader."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, subprocess_env
from omegaconf import OmegaConf

from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.task import resolvers


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    names = ("KEDRO_VERTEX_RUN_ID", "KEDRO_VERTEX_JOB_NAME", "KEDRO_VERTEXAI_DISABLE_CONFIG_HOOK",
             "KEDRO_CONFIG_COMMIT_ID", "KEDRO_CONFIG_BRANCH_NAME")  # fmt: skip
    saved = {name: os.environ.pop(name, None) for name in names}
    monkeypatch.setattr(resolvers, "_git_cache", {})
    resolvers.register_resolvers()
    yield
    for name, value in saved.items():  # set_run_context writes os.environ directly
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


def resolve(value: str):
    return OmegaConf.to_container(OmegaConf.create({"v": value}), resolve=True)["v"]


def test_run_id_is_stable_for_the_process_and_a_path_segment():
    first = resolvers.current_run_id()
    assert first == resolvers.current_run_id() == resolve("${vertex:run_id}")
    assert re.fullmatch(r"local-\d{8}-\d{6}-[0-9a-f]{6}", first)


def test_run_context_wins_and_reaches_child_processes(monkeypatch):
    resolvers.set_run_context("6f1c0a2e-uuid", "my-pipeline-20250101")
    assert resolve("gs://b/${vertex:run_id}/x") == "gs://b/6f1c0a2e-uuid/x"
    assert resolve("${vertex:job_name}") == "my-pipeline-20250101"
    child = subprocess.run(
        [PYTHON, "-c", "from kedro_vertex_runner.task.resolvers import current_run_id; print(current_run_id())"],
        env=subprocess_env(KEDRO_VERTEX_RUN_ID="6f1c0a2e-uuid"), capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert child.stdout.strip() == "6f1c0a2e-uuid"


def test_job_name_is_derived_when_not_given(monkeypatch):
    monkeypatch.setenv("KEDRO_VERTEX_RUN_ID", "Run_42")
    name = resolve("${vertex:job_name}")
    assert name.endswith("-run-42")
    assert re.fullmatch(r"[a-z0-9-]+", name)


def test_forwarded_variables_and_defaults(monkeypatch):
    monkeypatch.setenv("KEDRO_CONFIG_MY_BUCKET", "bucket-a")
    assert resolve("${vertex:my_bucket}") == "bucket-a"
    assert resolve("${vertex:MY_BUCKET}") == "bucket-a"
    assert resolve("${vertex:other_thing, fallback}") == "fallback"
    assert resolve("${vertex:other_thing, 3}") == 3


def test_commit_and_branch_from_variables_then_git_then_default(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("KEDRO_CONFIG_COMMIT_ID", "c0ffee")
    assert resolve("${vertex:commit_id, dirty}") == "c0ffee"
    monkeypatch.delenv("KEDRO_CONFIG_COMMIT_ID")

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q", "-b", "feature-x"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "c"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    monkeypatch.chdir(repo)
    assert resolve("${vertex:commit_id, dirty}") == head
    assert resolve("${vertex:branch_name, main}") == "feature-x"

    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setattr(resolvers, "_git_cache", {})
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert resolve("${vertex:commit_id, dirty}") == "dirty"
    assert resolve("${vertex:branch_name, main}") == "main"


def test_missing_value_without_default_names_the_key():
    with pytest.raises(Exception) as info:
        resolve("${vertex:nothing_here}")
    message = str(info.value)
    assert "${vertex:nothing_here} has no value: set KEDRO_CONFIG_NOTHING_HERE or give a default" in message
    with pytest.raises(PluginError, match="has no value"):
        resolvers.resolve("nothing_here")


def test_bad_key_is_rejected():
    with pytest.raises(PluginError, match="expected a key"):
        resolvers.resolve("not a name")


def test_disable_switch_keeps_literal_text_and_warns(monkeypatch, caplog):
    monkeypatch.setenv("KEDRO_VERTEXAI_DISABLE_CONFIG_HOOK", "true")
    monkeypatch.setattr(resolvers, "_warned_disabled", False)
    with caplog.at_level("WARNING"):
        assert resolve("a/${vertex:run_id}/b") == "a/${vertex:run_id}/b"
        assert resolve("${vertex:commit_id, dirty}") == "${vertex:commit_id, dirty}"
    warnings = [r.getMessage() for r in caplog.records if "KEDRO_VERTEXAI_DISABLE_CONFIG_HOOK" in r.getMessage()]
    assert len(warnings) == 1
    assert "will not be substituted" in warnings[0]


def test_works_in_a_kedro_config_loader(tmp_path: Path, monkeypatch):
    from kedro.config import OmegaConfigLoader

    conf = tmp_path / "conf"
    (conf / "base").mkdir(parents=True)
    (conf / "local").mkdir()
    (conf / "base" / "catalog.yml").write_text(
        "out:\n  type: pickle.PickleDataset\n  filepath: gs://b/${vertex:run_id}/${vertex:team, core}/out.pkl\n"
    )
    monkeypatch.setenv("KEDRO_VERTEX_RUN_ID", "abc")
    loader = OmegaConfigLoader(str(conf), base_env="base", default_run_env="local")
    assert loader["catalog"]["out"]["filepath"] == "gs://b/abc/core/out.pkl"


@pytest.mark.parametrize("run_id", ["local-20240101-120000-abc123", "6f1c0a2e-1b2c-4d5e-8f90-123456789abc", "R1.2_x"])
def test_run_ids_that_name_one_folder_pass(run_id):
    assert resolvers.check_run_id(run_id) == run_id


@pytest.mark.parametrize(
    "run_id",
    [
        "",
        "-x",
        "--root=/tmp",
        "..",
        ".hidden",
        "a/b",
        "a\\b",
        "a b",
        "x\n",
        "{{$.pipeline_job_uuid}}",
        "r" * 129,
        "caf\u00e9",
    ],
)
def test_run_ids_that_could_be_misread_are_refused_in_one_line(run_id):
    """One rule for every place a run id enters (runner params, local backend, entrypoint): a single safe path
    segment that can never be taken for an option."""
    with pytest.raises(PluginError) as info:
        resolvers.check_run_id(run_id, "--runner-params run_id=")
    message = str(info.value)
    assert message.startswith(f"--runner-params run_id={run_id!a}: expected an id such as local-20240101-120000-")
    assert message.isascii() and "\n" not in message
