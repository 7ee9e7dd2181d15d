"""The layout says where code runs: what runs inside a task (``kedro_vertex_runner/task/``) never imports the
launcher, the compiler, the CLI or a backend, read from the source (imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "kedro_vertex_runner"
#: modules of the package root that both sides use; they import only each other
SHARED = ("errors", "values", "network", "storage", "kedro_compat", "files")
ALLOWED = ("kedro_vertex_runner.task", *(f"kedro_vertex_runner.{name}" for name in SHARED))


def _module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str, package: Path) -> bool:
    path = package.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imported(node: ast.AST, importer: str, is_package: bool, package: Path) -> list[str]:
    """The plugin modules one import statement (or ``__import__``/``import_module`` call) loads."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = importer.split(".")[: None if is_package else -1]
            base = base[: len(base) - (node.level - 1)]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        submodules = [f"{module}.{alias.name}" for alias in node.names]
        return [name for name in submodules if _is_module(name, package)] or [module]
    if (
        isinstance(node, ast.Call)
        and (getattr(node.func, "id", None) == "__import__" or getattr(node.func, "attr", None) == "import_module")
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    ):
        return [node.args[0].value]
    return []


def forbidden_imports(package: Path) -> list[str]:
    """One line per import, by a module under ``task/`` or a shared module, of plugin code outside them."""
    checked = [*sorted((package / "task").rglob("*.py")), *(package / f"{name}.py" for name in SHARED)]
    found = []
    for path in checked:
        importer = _module_name(path, package)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            for name in _imported(node, importer, path.name == "__init__.py", package):
                inside = name == "kedro_vertex_runner" or name.startswith(tuple(f"{a}." for a in ALLOWED))
                if name.startswith("kedro_vertex_runner") and not inside and name not in ALLOWED:
                    found.append(
                        f"{path.relative_to(package.parent)}:{node.lineno} imports {name}: code that runs in a task "
                        f"imports only kedro_vertex_runner.task and the shared modules ({', '.join(SHARED)}), never "
                        "the launcher, the compiler, the CLI or a backend"
                    )
    return found


def test_task_code_imports_neither_launcher_compiler_cli_nor_backend_code() -> None:
    assert (PACKAGE / "task" / "entrypoint.py").is_file()  # the check reads the real package
    problems = forbidden_imports(PACKAGE)
    assert not problems, "\n".join(problems)


def test_the_import_check_names_the_module_and_the_import(tmp_path: Path) -> None:
    package = tmp_path / "kedro_vertex_runner"
    for folder in (package, package / "task", package / "backends"):
        folder.mkdir()
        (folder / "__init__.py").write_text("")
    for name in SHARED:
        (package / f"{name}.py").write_text("from .errors import PluginError\n")
    (package / "cli.py").write_text("")
    (package / "task" / "runners.py").write_text(
        "from ..errors import PluginError\nfrom . import contract\n\n\ndef go():\n    from ..backends import base\n"
        "    from .. import cli\n    __import__('kedro_vertex_runner.compiler')\n"
    )
    (package / "task" / "contract.py").write_text("from ..values import is_on\n")
    (package / "backends" / "base.py").write_text("")
    found = sorted(forbidden_imports(package))
    assert [line.split(": code that runs in a task")[0] for line in found] == [
        "kedro_vertex_runner/task/runners.py:6 imports kedro_vertex_runner.backends.base",
        "kedro_vertex_runner/task/runners.py:7 imports kedro_vertex_runner.cli",
        "kedro_vertex_runner/task/runners.py:8 imports kedro_vertex_runner.compiler",
    ]
    assert found[0].endswith("never the launcher, the compiler, the CLI or a backend")
