"""Code upload (``run_config.code: upload``): what is packaged, that it is content-addressed and deterministic, and
that tasks run the code they fetched from storage — end to end on the local backend with a ``gs://`` root.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import PYTHON, kedro_cmd, subprocess_env
from kedro.pipeline import Pipeline, node

from kedro_vertex_runner import code_upload
from kedro_vertex_runner.code_upload import package_project, project_files, upload
from kedro_vertex_runner.compiler import CompileRequest, compile_spec
from kedro_vertex_runner.config import validate_config
from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.task.code_unpack import unpack


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


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    """A project inside a git repository, with what must never ship next to what must."""
    repo = tmp_path / "repo"
    root = repo / "proj"
    _write(repo, {
        ".git/config": "[core]\n",
        ".git/info/exclude": "proj/conf/base/excluded_by_info.yml\n",
        ".gitignore": "*.bak\n",  # the repository's top, above the project
    })  # fmt: skip
    _write(root, {
        "pyproject.toml": '[tool.kedro]\npackage_name = "pkg"\nproject_name = "pkg"\nkedro_init_version = "1.7.0"\n',
        ".gitignore": "*.log\nbuild/\n",
        ".dockerignore": "logs\n",  # Docker anchors it: the project's top logs/ only
        "src/pkg/__init__.py": "",
        "src/pkg/nodes.py": "def f(): return 1\n",
        "src/pkg/.gitignore": "generated/\n!generated/keep.py\n*.tmp\n!keep.tmp\n/local_only.py\n",
        "src/pkg/generated/keep.py": "",  # its folder is ignored: a negation cannot bring it back (git)
        "src/pkg/a.tmp": "", "src/pkg/keep.tmp": "",
        "src/pkg/local_only.py": "", "src/pkg/sub/local_only.py": "",  # the pattern is anchored to src/pkg/
        "src/pkg/sub/build/x.py": "", "src/pkg/build": "",  # build/ matches folders only
        "src/pkg/sub/run.log": "", "src/pkg/old.py.bak": "",
        "src/pkg/logs/handler.py": "",
        # key material
        "src/pkg/id_rsa": "PRIVATE s3cr3t", "src/pkg/.ssh/config": "IdentityFile s3cr3t", "src/pkg/a.pem": "s3cr3t",
        "conf/base/.netrc": "machine x password s3cr3t", "conf/base/my-service-account.json": '{"k": "s3cr3t"}',
        "conf/.env.prod": "TOKEN=s3cr3t", "conf/base/credentials.yml": "token: s3cr3t\n",
        # vendored repositories: their code ships, their .git never
        "src/pkg/vendor/lib/__init__.py": "", "src/pkg/vendor/lib/.git/config": "url = https://tok:s3cr3t@h/r\n",
        "src/pkg/vendor/other/mod.py": "", "src/pkg/vendor/other/.git": "gitdir: ../../../../.git/modules/o\n",
        "conf/base/catalog.yml": "a: 1\n",
        "conf/base/.gitignore": "*.local.yml\n", "conf/base/mine.local.yml": "",
        "conf/base/excluded_by_info.yml": "",
        "conf/local/parameters.yml": "alpha: 2\n", "conf/local/credentials.yml": "token: s3cr3t\n",
        "elsewhere/notes.md": "",  # neither code nor conf/
    })  # fmt: skip
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.yml").write_text("s3cr3t")
    (root / "src/pkg/outside").symlink_to(tmp_path / "outside", target_is_directory=True)
    (root / "conf/base/linked.yml").symlink_to(tmp_path / "outside" / "secret.yml")
    (root / "src/pkg/alias.py").symlink_to("nodes.py")  # inside the project: followed
    (root / "src/pkg/sub/loop").symlink_to("..", target_is_directory=True)
    (root / "conf/base/sneaky.yml").symlink_to("../local/credentials.yml")
    (root / "src/pkg/dangling.py").symlink_to("missing.py")
    (root / "src/pkg/out.log").symlink_to(tmp_path / "outside" / "secret.yml")  # ignored (*.log): not a word
    with open(root / "conf/base/big.bin", "wb") as big:  # sparse: 200 MB that take no room
        big.truncate(200_000_000)
    return root


SHIPPED = [
    "conf/base/.gitignore",
    "conf/base/catalog.yml",
    "pyproject.toml",
    "src/pkg/.gitignore",
    "src/pkg/__init__.py",
    "src/pkg/alias.py",
    "src/pkg/build",
    "src/pkg/keep.tmp",
    "src/pkg/logs/handler.py",
    "src/pkg/nodes.py",
    "src/pkg/sub/local_only.py",
    "src/pkg/vendor/lib/__init__.py",
    "src/pkg/vendor/other/mod.py",
]


def test_code_upload_ships_exactly_what_git_sees_without_keys_git_dirs_or_links_out(hostile, tmp_path):
    import tarfile

    assert project_files(hostile, "pkg") == sorted([*SHIPPED, "conf/base/big.bin"])
    # a file over the limit: one line naming it, its size, the limit and what to do
    with pytest.raises(PluginError) as refused:
        package_project(hostile, "pkg")
    assert str(refused.value) == (
        "run_config.code: upload: conf/base/big.bin is 200.0 MB (200,000,000 bytes), over the 20.0 MB limit for one "
        "file: add it to .gitignore (or keep it out of conf/ and src/), or raise run_config.code_upload.max_file_size"
    )
    (hostile / "conf/base/big.bin").unlink()
    (hostile / "conf/base/big.bin").write_bytes(b"x" * 2000)
    with pytest.raises(PluginError, match=r"conf/base/big.bin is 2,000 bytes, over the 1,000 bytes limit"):
        package_project(hostile, "pkg", max_file_size=1000)
    (hostile / "conf/base/big.bin").unlink()

    package = package_project(hostile, "pkg")
    assert package.files == tuple(SHIPPED)
    with tarfile.open(fileobj=io.BytesIO(package.data), mode="r:gz") as tar:
        assert tar.getnames() == SHIPPED and all(member.isfile() for member in tar.getmembers())
        contents = b"".join(tar.extractfile(member).read() for member in tar.getmembers())
        assert tar.extractfile("src/pkg/alias.py").read() == b"def f(): return 1\n"
    assert b"s3cr3t" not in contents
    assert package.size == len(contents)
    outside = tmp_path / "outside"
    assert package.warnings() == [
        "code upload left out 7 files or folders that look like credentials or keys: conf/.env.prod, "
        "conf/base/.netrc, conf/base/credentials.yml, conf/base/my-service-account.json, src/pkg/.ssh/, "
        "src/pkg/a.pem, src/pkg/id_rsa",
        f"code upload did not follow 5 links: conf/base/linked.yml -> {outside}/secret.yml (leaves the project), "
        "conf/base/sneaky.yml -> ../local/credentials.yml (its target is not shipped itself), "
        "src/pkg/dangling.py -> missing.py (leads nowhere), "
        f"src/pkg/outside -> {outside} (leaves the project), src/pkg/sub/loop -> .. (a loop)",
    ]
    assert package.summary() == f"13 files, {package.size:,} bytes, sha256 {package.digest[:12]}"


def test_info_exclude_of_a_linked_work_tree_applies(tree, tmp_path):
    # the project is a linked work tree (`git worktree add`): .git is a file, info/exclude is the main repository's
    _write(tmp_path, {"main/.git/worktrees/proj/commondir": "../..\n", "main/.git/info/exclude": "/conf/prod/\n"})
    (tree / ".git").write_text(f"gitdir: {tmp_path}/main/.git/worktrees/proj\n")
    assert "conf/prod/parameters.yml" not in project_files(tree, "pkg")
    assert "conf/base/catalog.yml" in project_files(tree, "pkg")


def test_a_package_the_ignore_files_exclude_whole_is_one_line(hostile):
    (hostile / ".gitignore").write_text("src/\n")
    with pytest.raises(PluginError, match=r"^run_config.code: upload: no file of src/pkg/ would be shipped: the "):
        project_files(hostile, "pkg")


def test_max_file_size_takes_bytes_or_a_size():
    from kedro_vertex_runner.errors import ConfigError

    def limit(value):
        return validate_config(
            {
                "project_id": "proj-1",
                "region": "europe-west1",
                "run_config": {"image": "img:1", "root": "gs://b/r", "code_upload": {"max_file_size": value}},
            }
        ).run_config.code_upload

    assert limit(1000).max_file_size == 1000
    assert limit("50M").max_file_size == 50_000_000 and limit("1Gi").max_file_size == 2**30
    with pytest.raises(ConfigError, match=r"run_config.code_upload.max_file_size: expected a number of bytes or a "):
        limit("big")


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


def test_compile_list_code_lists_what_would_ship_without_storage_and_refuses_a_big_file(tmp_path):
    from conftest import _clean_example, free_port, kedro_batch

    listed = _clean_example(tmp_path / "listed")
    config = listed / "conf" / "base" / "vertexai.yml"
    # a gs:// root whose storage is not there: listing never contacts it
    config.write_text(config.read_text().replace("root: data/vertex_runs", "root: gs://no-such-bucket/runs")
                      .replace("  backend: local\n", "  backend: local\n  code: upload\n"))  # fmt: skip
    _write(listed, {"conf/base/credentials.yml": "api_token: s3cr3t\n", "conf/local/credentials.yml": "x: s3cr3t\n"})
    big = _clean_example(tmp_path / "big")
    config = big / "conf" / "base" / "vertexai.yml"
    config.write_text(config.read_text() + "  code_upload:\n    max_file_size: 10k\n")
    (big / "conf" / "base" / "model.bin").write_bytes(b"x" * 10_001)

    dead = f"http://127.0.0.1:{free_port()}"
    env = subprocess_env(STORAGE_EMULATOR_HOST=dead)
    listing, refused = kedro_batch([
        (listed, ["vertexai", "compile", "--list-code"]), (big, ["vertexai", "compile", "--list-code"])
    ], env=env)  # fmt: skip
    assert listing.returncode == 0, listing.stderr[-2000:]
    package = package_project(listed, "demo_project")
    lines = listing.stdout.strip().splitlines()  # (Kedro's own log lines may come first)
    assert lines[-len(package.files) - 1 : -1] == list(package.files)
    assert "conf/base/catalog.yml" in package.files and not [line for line in lines if "credentials" in line]
    assert lines[-1] == f"Code upload would ship {package.summary()} (nothing uploaded)"
    assert "Warning: code upload left out 1 files or folders that look like credentials or keys: " \
        "conf/base/credentials.yml\n" in listing.stderr  # fmt: skip
    assert not (listed / "pipeline.json").exists()

    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        "Error: run_config.code: upload: conf/base/model.bin is 10,001 bytes, over the 10,000 bytes limit "
        "for one file: add it to .gitignore (or keep it out of conf/ and src/), or raise "
        "run_config.code_upload.max_file_size"
    )


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
    digest = archive.split("/")[-2]
    shipped = re.search(rf"Uploaded the project's code \((\d+) files, ([\d,]+) bytes, sha256 {digest[:12]}\) to {uri}\n",
                        uploaded["first"].stderr)  # fmt: skip
    assert shipped, uploaded["first"].stderr[-2000:]
    # (the emulator serves from this process's threads: its own messages may share stderr, so look for the line)
    assert f"The project's code is unchanged ({shipped[1]} files, {shipped[2]} bytes, sha256 {digest[:12]}): using " \
        f"{uri}\n" in uploaded["second"]  # fmt: skip
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
