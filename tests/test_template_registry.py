"""Pipeline templates in Artifact Registry: ``kedro vertexai upload-pipeline`` and ``run-once`` / ``schedule`` with
``--template-uri``, against a fake of the registry's KFP endpoint (tests/fake_registry.py) and the fake Vertex AI.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import VERTEX_CONFIG_HEAD, kedro_cmd, subprocess_env
from fake_registry import FakeRegistry

from kedro_vertex_runner.backends.vertex.template_registry import fetch_template, template_uri, upload_template
from kedro_vertex_runner.config import validate_config
from kedro_vertex_runner.errors import PluginError

SPEC = {"pipelineInfo": {"name": "demo-project"}, "root": {"dag": {"tasks": {"a": {}}}}, "schemaVersion": "2.1.0"}


@pytest.fixture(scope="module")
def registry():
    server = FakeRegistry().start()
    try:
        yield server
    finally:
        server.stop()


def _config(registry_url: str | None):
    run_config = {"image": "img:1", "root": "gs://b/r"}
    if registry_url:
        run_config["pipeline_registry"] = registry_url
    return validate_config({"project_id": "demo-gcp", "region": "europe-west1", "run_config": run_config})


def test_upload_then_fetch_by_tag_and_by_version(registry, monkeypatch):
    monkeypatch.setenv("KEDRO_VERTEX_ANONYMOUS_CREDENTIALS", "1")
    config = _config(registry.url)
    package, version, uri = upload_template(SPEC, config, ["prod"])
    assert package == "demo-project" and version.startswith("sha256:")
    assert uri == f"{registry.url}/demo-project/{version}"
    assert fetch_template(uri, config) == SPEC
    by_tag = template_uri("prod", config, "demo-project")
    assert by_tag == f"{registry.url}/demo-project/prod"
    assert fetch_template(by_tag, config) == SPEC
    with pytest.raises(PluginError, match=r"^fetching the pipeline template .*/demo-project/nope: HTTP 404 .*: check"):
        fetch_template(template_uri("nope", config, "demo-project"), config)


def test_bad_registry_settings_are_one_line(monkeypatch):
    with pytest.raises(PluginError, match=r"^run_config.pipeline_registry is not set: set it to .*https://europe-"):
        template_uri("prod", _config(None), "demo-project")
    with pytest.raises(PluginError, match=r"^--tag 'no tags!': expected letters"):
        template_uri("no tags!", _config("https://europe-west1-kfp.pkg.dev/p/r"), "demo-project")
    monkeypatch.setenv("KEDRO_VERTEX_ANONYMOUS_CREDENTIALS", "1")
    with pytest.raises(PluginError, match=r"honoured only for a registry on localhost"):
        upload_template(SPEC, _config("https://europe-west1-kfp.pkg.dev/p/r"), [])


# ----------------------------------------------------------------------------------------------------------------
# the commands, in a copy of the example project


def _kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = subprocess_env(KEDRO_VERTEX_ANONYMOUS_CREDENTIALS="1", KEDRO_VERTEX_POLL_INTERVAL="0.05")
    return subprocess.run(kedro_cmd(*args), cwd=project, env=env, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def commands(tmp_path_factory, registry, fake, gcs_emulator):
    from conftest import _clean_example

    project = _clean_example(tmp_path_factory.mktemp("templates"))
    config = project / "conf" / "base" / "vertexai.yml"
    head = VERTEX_CONFIG_HEAD.format(endpoint=fake.endpoint) + f"  pipeline_registry: {registry.url}\n"
    config.write_text(head + "  grouping: chains\n")
    fake.reset()
    uploaded = _kedro(project, "vertexai", "upload-pipeline", "--tag", "prod")
    config.write_text(head + "  grouping: none\n")  # what a local compile would now give differs from the template
    ran = _kedro(project, "vertexai", "run-once", "--template-uri", "prod", "--no-wait")
    version = next(v for (p, t), v in registry.tags.items() if t == "prod")
    full = f"{registry.url}/demo-project/{version}"
    scheduled = _kedro(project, "vertexai", "schedule", "--cron", "0 6 * * *", "--template-uri", full)
    assert fake.unknown == []
    return {
        "uploaded": uploaded,
        "ran": ran,
        "scheduled": scheduled,
        "full": full,
        "jobs": fake.calls("POST", r"/pipelineJobs$"),
        "schedules": fake.calls("POST", r"/schedules$"),
    }


@pytest.mark.slow
def test_upload_pipeline_stores_the_compiled_spec_with_its_tags(commands, registry):
    result = commands["uploaded"]
    assert result.returncode == 0, result.stderr
    version = commands["full"].rsplit("/", 1)[1]
    assert f"Uploaded pipeline template demo-project version {version} (tags: prod)" in result.stdout
    assert f"Template URI: {commands['full']}" in result.stdout
    assert registry.tags[("demo-project", "latest")] == version


@pytest.mark.slow
def test_run_once_and_schedule_run_the_template_not_a_local_compile(commands, registry):
    import yaml

    assert commands["ran"].returncode == 0, commands["ran"].stderr
    assert commands["scheduled"].returncode == 0, commands["scheduled"].stderr
    template = yaml.safe_load(registry.versions[("demo-project", commands["full"].rsplit("/", 1)[1])])
    (job,) = commands["jobs"]
    assert job["body"]["templateUri"] == f"{registry.url}/demo-project/prod"
    assert job["body"]["pipelineSpec"]["root"]["dag"]["tasks"].keys() == template["root"]["dag"]["tasks"].keys()
    assert "clean-houses" in template["root"]["dag"]["tasks"]  # chains, as uploaded; `none` would split it
    (schedule,) = commands["schedules"]
    scheduled_job = schedule["body"]["createPipelineJobRequest"]["pipelineJob"]
    assert scheduled_job["templateUri"] == commands["full"]
    assert scheduled_job["pipelineSpec"]["root"] == template["root"]
