"""Every private Kedro name the plugin uses (kedro_vertex_runner.kedro_compat) is where the installed Kedro has it:
a Kedro upgrade that moves one fails here, naming it and the function to update."""

from __future__ import annotations

import pytest

from kedro_vertex_runner import kedro_compat


@pytest.mark.parametrize("name", sorted(kedro_compat.PRIVATE_NAMES))
def test_private_kedro_name_is_still_there(name: str) -> None:
    import kedro

    user = kedro_compat.PRIVATE_NAMES[name]
    assert kedro_compat.private_name_exists(name), (
        f"Kedro {kedro.__version__} has no {name}: kedro_vertex_runner.kedro_compat.{user} relies on it and must "
        "be updated for this Kedro release"
    )


def test_the_check_notices_a_name_that_is_gone() -> None:
    assert not kedro_compat.private_name_exists("kedro.framework.session.session:_no_such_name")
    assert not kedro_compat.private_name_exists("kedro.runner:AbstractRunner._no_such_method")


def test_nothing_outside_kedro_compat_uses_a_private_kedro_name() -> None:
    """The private names are used in kedro_compat only (their last part, as an attribute of anything but the
    plugin's own objects, an import or an override)."""
    import re
    from pathlib import Path

    package = Path(kedro_compat.__file__).parent
    names = {name.rpartition(".")[2].rpartition(":")[2] for name in kedro_compat.PRIVATE_NAMES}
    found = [
        f"{path.relative_to(package)}:{number}: {line.strip()}"
        for path in sorted(package.rglob("*.py"))
        if path.name != "kedro_compat.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if not line.lstrip().startswith("#")
        and any(re.search(rf"((?<!self)\.|import |def ){re.escape(name)}\b", line) for name in names)
    ]
    assert found == []
