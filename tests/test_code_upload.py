"""Code upload (``run_config.code: upload``): what is packaged, that it is content-addressed and deterministic, and
that tasks run the code they fetched from storage — end to end on the local backend with a ``gs://`` root.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, kedro_cmd, subprocess_env
from kedro.pipeline import Pipeline, node

from kedro_vertex_runner import code_upload
from kedro_vertex_runner.code_upload import package_project, project_files, unpack, upload
from kedro_vertex_runner.compiler import CompileRequest, compile_spec
from kedro_vertex_runner.config import validate_config
from kedro_vertex_runner.errors import PluginError


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    _write(root, {
        "pyproject.toml": '[project]\nname = "pkg"\ndependencies = ["pandas>=2"]\n[tool.kedro]\npackage_name = "pkg"\n'
                          'project_name = "pkg"\nkedro_init_version = "1.7.0"\n',
        "requirements.txt": "numpy  # arrays\n",
        "src/pkg/__init__.py": "",
        "src/pkg/nodes.py": "def f(): return 1\n",
        "src/pkg/__pycache__/nodes.cpython-311.pyc": "x",
        "src/pkg/scratch.ipynb": "{}",
        "src/tests/test_nodes.py": "",
        "conf/base/catalog.yml": "a: 1\n",
        "conf/base/credentials.yml": "token: s3cr3t\n",
        "conf/base/gcp-credentials.json": "{}",
        "conf/prod/parameters.yml": "alpha: 1\n",
        "conf/local/credentials.yml": "token: s3cr3t\n",
        "conf/local/parameters.yml": "alpha: 2\n",
        "conf/base/notes.local.yml": "b: 1\n",
        "data/01_raw/x.csv": "a\n1\n",
        "notebooks/n.ipynb": "{}",
        ".gitignore": "*.ipynb\n!conf/local/credentials.yml\n!conf/base/credentials.yml\n",
        ".dockerignore": "conf/**/*.local.yml\n",
    })  # fmt: skip
    return root


def test_packages_code_and_conf_without_local_conf_credentials_or_ignored_files(tree):
    assert project_files(tree, "pkg") == [
        "conf/base/catalog.yml",
        "conf/prod/parameters.yml",
        "pyproject.toml",
        "requirements.txt",
        "src/pkg/__init__.py",
        "src/pkg/nodes.py",
    ]  # a `!pattern` in .gitignore cannot bring credentials or conf/local back


def test_missing_package_is_one_line(tree):
    with pytest.raises(PluginError, match=r"^run_config.code: upload: no package at .*/src/other: check"):
        project_files(tree, "other")


def test_archive_is_deterministic_and_content_addressed(tree):
    first = package_project(tree, "pkg")
    os.utime(tree / "src" / "pkg" / "nodes.py", (1, 1))  # touching a file changes nothing
    assert package_project(tree, "pkg") == first
    (tree / "src" / "pkg" / "nodes.py").write_text("def f(): return 2\n")
    changed = package_project(tree, "pkg")
    assert changed.digest != first.digest
    assert first.uri("gs://b/root/") == f"gs://b/root/code/{first.digest}/code.tar.gz"


def test_upload_stores_once_and_unpack_restores_the_files(tree, tmp_path):
    package = package_project(tree, "pkg")
    uri = package.uri(str(tmp_path / "root"))
    assert upload(package, uri) is True
    assert upload(package, uri) is False  # unchanged: nothing stored again
    unpacked = unpack(uri, tree, scratch=tmp_path)
    assert unpacked.parent == tmp_path and unpacked != tree
    assert (unpacked / "src" / "pkg" / "nodes.py").read_text() == "def f(): return 1\n"
    assert not (unpacked / "conf" / "base" / "credentials.yml").exists()
    # what the archive does not hold comes from the working directory: data, and conf/local on this machine
    assert (unpacked / "data").is_symlink() and (unpacked / "data" / "01_raw" / "x.csv").is_file()
    assert (unpacked / "conf" / "local").resolve() == (tree / "conf" / "local").resolve()
    assert not (unpacked / "src" / "pkg").is_symlink()


def test_unpack_refuses_a_tampered_or_foreign_archive(tree, tmp_path):
    package = package_project(tree, "pkg")
    uri = package.uri(str(tmp_path / "root"))
    upload(package, uri)
    Path(uri).write_bytes(package.data + b"x")
    with pytest.raises(PluginError, match=r"sha256 does not match its name: submit the job again$"):
        unpack(uri, tree, scratch=tmp_path)
    with pytest.raises(PluginError, match=r"^--code-uri=gs://b/x.tar.gz: expected <root>/code/<sha256>/code.tar.gz"):
        unpack("gs://b/x.tar.gz", tree)
    missing = package_project(tree, "pkg").uri(str(tmp_path / "elsewhere"))
    with pytest.raises(PluginError, match=r"no such archive: it is uploaded when the job is submitted"):
        unpack(missing, tree)


def test_requirements_change_since_the_last_upload_is_one_warning(tree, tmp_path):
    root = str(tmp_path / "root")
    package = package_project(tree, "pkg")
    assert code_upload.requirements(tree) == ["numpy", "pandas>=2"]
    assert code_upload.requirements_warning(tree, root, package) is None  # first upload: nothing to compare
    assert code_upload.requirements_warning(tree, root, package) is None  # unchanged
    (tree / "requirements.txt").write_text("numpy\nxgboost>=2\n")
    warning = code_upload.requirements_warning(tree, root, package)
    assert warning.startswith("the project's requirements changed since the last code upload (added xgboost>=2)")
    assert "rebuild and push the image" in warning and "\n" not in warning


def test_requirements_this_environment_lacks_are_named():
    assert code_upload.unsatisfied_warning(["kedro>=1", "pytest"]) is None
    warning = code_upload.unsatisfied_warning(["kedro>=99", "surely-not-installed-pkg"])
    assert warning.startswith("the project requires kedro>=99 (installed: ")
    assert "surely-not-installed-pkg, which this environment does not have" in warning


def test_every_task_gets_the_code_uri_as_one_argument():
    pipeline = Pipeline([node(lambda: 1, None, "a", name="a"), node(lambda a: 1, "a", "b", name="b")])
    config = validate_config({"project_id": "proj-1", "region": "europe-west1", "run_config": {
        "image": "img:1", "root": "gs://b/r", "code": "upload"}})  # fmt: skip
    uri = "gs://b/r/code/" + "0" * 64 + "/code.tar.gz"
    spec = compile_spec(CompileRequest(pipeline=pipeline, config=config, code_uri=uri))
    for executor in spec["deploymentSpec"]["executors"].values():
        assert executor["container"]["args"].count(f"--code-uri={uri}") == 1
    plain = compile_spec(CompileRequest(pipeline=pipeline, config=config))
    assert not any("--code-uri" in json.dumps(e) for e in plain["deploymentSpec"]["executors"].values())


def test_config_and_runner_param_name_the_mode():
    from kedro_vertex_runner.errors import ConfigError

    with pytest.raises(ConfigError, match=r"run_config.code: expected one of 'image', 'upload'"):
        validate_config({"project_id": "proj-1", "region": "europe-west1", "run_config": {
            "image": "img:1", "root": "gs://b/r", "code": "uploaded"}})  # fmt: skip


@pytest.mark.slow
def test_task_whose_image_lacks_a_module_the_uploaded_code_imports_is_one_line(tree, tmp_path):
    _write(tree, {
        "src/pkg/settings.py": "",
        "src/pkg/pipeline_registry.py": "import not_in_the_image_mod\n\ndef register_pipelines():\n    return {}\n",
    })  # fmt: skip
    package = package_project(tree, "pkg")
    uri = package.uri(str(tmp_path / "root"))
    upload(package, uri)
    workdir = tmp_path / "image-workdir"
    workdir.mkdir()
    result = subprocess.run(
        [PYTHON, "-m", "kedro_vertex_runner.entrypoint", "--node", "n", f"--code-uri={uri}"],
        cwd=workdir, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: the uploaded code imports 'not_in_the_image_mod', which this task's image does not have: add it to "
        "the project's dependencies, rebuild and push the image (run_config.image), then submit again"
    )


# ----------------------------------------------------------------------------------------------------------------
# end to end: the example project, local backend, gs:// root on the storage emulator

ROOT = "gs://test-bucket/code-upload"
NOTIFY = "src/demo_project/pipelines/notify/nodes.py"
NODE_CODE = """
import logging

logger = logging.getLogger(__name__)


def log_run_finished(report_title: str) -> None:
    print(f"CODE {VERSION} title={report_title} file={__file__}")
"""


def _kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        kedro_cmd(*args), cwd=project, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _set_version(project: Path, version: str) -> None:
    (project / NOTIFY).write_text(NODE_CODE.replace("{VERSION}", version))
    params = project / "conf" / "base" / "parameters.yml"
    lines = [line for line in params.read_text().splitlines() if not line.startswith("report_title:")]
    params.write_text("\n".join([*lines, f"report_title: title-{version}"]) + "\n")


def _task_log(fs, run_id: str) -> str:
    (log,) = fs.glob(f"{ROOT}/{run_id}/logs/*.log")
    return fs.cat_file(log).decode()


@pytest.fixture(scope="module")
def uploaded(tmp_path_factory, gcs_emulator):
    """compile twice (v1), edit the project (v2), run the v1 spec, then `kedro run` the v2 project."""
    import gcsfs
    from conftest import _clean_example

    project = _clean_example(tmp_path_factory.mktemp("code_upload"))
    config = project / "conf" / "base" / "vertexai.yml"
    config.write_text(
        config.read_text()
        .replace("root: data/vertex_runs", f"root: {ROOT}")
        .replace("  backend: local\n", "  backend: local\n  code: upload\n")
    )
    _write(project, {
        "conf/local/credentials.yml": "api_token: s3cr3t\n",
        "conf/base/credentials.yml": "api_token: s3cr3t\n",
        "conf/base/draft.yml": "draft: true\n",
        ".dockerignore": "conf/base/draft.yml\n",
    })  # fmt: skip
    _set_version(project, "v1")
    fs = gcsfs.GCSFileSystem(token="anon", endpoint_url=gcs_emulator)
    first = _kedro(project, "vertexai", "compile", "-p", "notify", "-o", "v1.json")
    objects_after_first = sorted(fs.find(f"{ROOT}/code"))
    # the same project again (in-process: what compile, run-once and schedule call)
    with contextlib.redirect_stderr(io.StringIO()) as second:
        second_uri = code_upload.prepare(project, "demo_project", "src", ROOT, "local")
    objects_after_second = sorted(fs.find(f"{ROOT}/code"))

    _set_version(project, "v2")  # the project changes after the upload
    script = (
        "import sys; from kedro_vertex_runner.backends.local import run_spec; "
        f"run_spec('v1.json', project_dir='.', root={ROOT!r}, run_id='v1-run', max_workers=1)"
    )
    old_spec_run = subprocess.run(
        [PYTHON, "-c", script], cwd=project, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert old_spec_run.returncode == 0, old_spec_run.stderr[-3000:]
    # the runner param alone switches code upload on
    config.write_text(config.read_text().replace("  code: upload\n", "  code: image\n"))
    run = _kedro(
        project, "run", "--runner=VertexRunner", "-p", "notify", "--runner-params", "run_id=v2-run,code=upload"
    )
    return {
        "project": project, "fs": fs, "first": first, "second": second.getvalue(), "second_uri": second_uri,
        "run": run,
        "after_first": objects_after_first, "after_second": objects_after_second,
    }  # fmt: skip


@pytest.mark.slow
def test_the_code_is_uploaded_once_content_addressed_and_the_spec_is_deterministic(uploaded):
    (archive,) = uploaded["after_first"]
    assert archive.startswith("test-bucket/code-upload/code/") and archive.endswith("/code.tar.gz")
    uri = f"gs://{archive}"
    assert "Uploaded the project's code (" in uploaded["first"].stderr and uri in uploaded["first"].stderr
    # (the emulator serves from this process's threads: its own messages may share stderr, so look for the line)
    assert f"The project's code is unchanged: using {uri}\n" in uploaded["second"]
    assert "Uploaded" not in uploaded["second"]
    assert uploaded["second_uri"] == uri
    assert uploaded["after_second"] == uploaded["after_first"]  # nothing new stored
    spec = json.loads((uploaded["project"] / "v1.json").read_text())
    for executor in spec["deploymentSpec"]["executors"].values():
        assert f"--code-uri={uri}" in executor["container"]["args"]


@pytest.mark.slow
def test_credentials_local_conf_and_ignored_files_never_reach_storage(uploaded):
    import tarfile

    fs = uploaded["fs"]
    for path in fs.find(ROOT):
        assert "credentials" not in path
    for archive in fs.glob(f"{ROOT}/code/*/code.tar.gz"):
        with tarfile.open(fileobj=io.BytesIO(fs.cat_file(archive)), mode="r:gz") as tar:
            names = tar.getnames()
            contents = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
        assert "src/demo_project/pipelines/notify/nodes.py" in names and "conf/base/catalog.yml" in names
        assert not [n for n in names if n.startswith("conf/local") or "credentials" in n or n.endswith("draft.yml")]
        assert b"s3cr3t" not in contents


@pytest.mark.slow
def test_tasks_run_the_uploaded_code_from_a_scratch_directory(uploaded):
    fs, project = uploaded["fs"], uploaded["project"]
    old = _task_log(fs, "v1-run")  # the spec compiled before the edit runs the code uploaded then
    assert "CODE v1 title=title-v1 file=" in old
    ran_from = old.split("CODE v1 title=title-v1 file=")[1].split()[0]
    assert not Path(ran_from).resolve().is_relative_to(project.resolve())
    assert "/kedro-code-" in ran_from

    new = _task_log(fs, "v2-run")  # `kedro run` uploads the edited project and runs it
    assert "CODE v2 title=title-v2" in new
    assert "Uploaded the project's code (" in uploaded["run"].stderr
    assert len(fs.glob(f"{ROOT}/code/*/code.tar.gz")) == 2
