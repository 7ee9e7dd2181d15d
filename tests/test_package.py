"""The package as users meet it: cheap to import, and the runner's short name resolves in packaged mode too."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import tomllib
from conftest import PYTHON, subprocess_env

HEAVY = ("kfp", "google.cloud.aiplatform", "mlflow", "kedro_mlflow")


def test_importing_the_plugin_does_not_import_kfp_aiplatform_or_mlflow():
    code = (
        "import json, sys\n"
        "import kedro_vertex_runner, kedro_vertex_runner.cli, kedro_vertex_runner.hooks\n"
        "import kedro_vertex_runner.runner, kedro_vertex_runner.config, kedro_vertex_runner.project\n"
        "kedro_vertex_runner.VertexRunner\n"
        "from kedro_vertex_runner.backends import REGISTRY, backend_class\n"
        "[backend_class(name) for name in REGISTRY]\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=subprocess_env(), check=True)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert [m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY)] == []


@pytest.mark.slow
def test_short_runner_name_resolves_when_the_project_runs_as_a_package(demo_project):
    # `python -m demo_project` skips the kedro CLI; the project_commands entry point still registers the name
    result = subprocess.run(
        [PYTHON, "-m", "demo_project", "--runner=VertexRunner", "--runner-params", "backend=bogus"],
        cwd=demo_project,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert (
        result.stderr.strip().splitlines()[-1]
        == "Error: --runner-params backend='bogus': expected 'local', 'vertex' or 'kubeflow'"
    )


def test_every_package_directory_ships_in_the_wheel():
    # setuptools installs only the packages pyproject lists: a subpackage missing there works from a checkout
    # (editable install) and is absent from the wheel users get from PyPI
    repo = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(init.parent.relative_to(repo).parts) for init in (repo / "kedro_vertex_runner").rglob("__init__.py")
    }
    assert on_disk - listed == set()


def test_backends_import_neither_the_compiler_nor_the_commands():
    """A backend runs a compiled spec and talks to the user through a Reporter: importing every module of every
    backend loads no compiler, no CLI and no console module (the format it reads is kedro_vertex_runner.pipeline_spec)."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import kedro_vertex_runner.backends as backends\n"
        "for module in pkgutil.walk_packages(backends.__path__, 'kedro_vertex_runner.backends.'):\n"
        "    importlib.import_module(module.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=subprocess_env(), check=True)
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert "kedro_vertex_runner.backends.local.warm" in loaded  # every module was imported
    forbidden = ("kedro_vertex_runner.compiler", "kedro_vertex_runner.cli", "kedro_vertex_runner.console")
    assert [m for m in loaded if m.startswith(forbidden)] == []


def test_the_version_is_defined_once_in_the_package():
    # pyproject.toml takes the version from kedro_vertex_runner.__version__: a second copy would drift from it
    from packaging.version import Version

    import kedro_vertex_runner

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "kedro_vertex_runner.__version__"}
    assert str(Version(kedro_vertex_runner.__version__)) == kedro_vertex_runner.__version__
