"""The README's two copy-paste commands are what CI and users actually run."""

from __future__ import annotations

import re

from conftest import REPO


def _top_commands() -> list[str]:
    head = (REPO / "README.md").read_text().split("\n---\n", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", head, flags=re.S)]


def test_readme_starts_with_exactly_two_commands():
    commands = _top_commands()
    assert len(commands) == 2, commands
    main, tests = commands
    assert "kedro run --runner=VertexRunner" in main
    assert "examples/demo_project" in main
    assert "pytest" in tests


def test_ci_runs_the_readme_test_command_verbatim():
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert _top_commands()[1] in ci_lines


def test_the_configuration_reference_page_is_the_table_generated_from_the_models():
    from kedro_vertex_runner.config import config_reference, runner_params_reference

    page = (REPO / "docs" / "reference.md").read_text()
    keys, params = page.split("\n\n", 2)[2].split("\n\n## Runner params\n\n")
    assert keys == config_reference()
    assert params.split("\n\n", 1)[1] == runner_params_reference() + "\n"


def test_the_readme_is_a_front_page_whose_links_lead_to_files_that_exist():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert "docs/reference.md" in local
    assert [t for t in local if not (REPO / t).exists()] == []
