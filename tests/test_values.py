"""The value rules every module shares (kedro_vertex_runner.values): one answer for the same text everywhere."""

from __future__ import annotations

import pytest

from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.task.contract import parse_param
from kedro_vertex_runner.values import (
    check_run_id,
    memory_quantity,
    memory_quantity_bytes,
    parameter_type,
    switch,
    typed_parameter,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("1", True), (" TRUE ", True), ("yes", True), ("On", True), (True, True),
    ("0", False), ("false", False), ("NO", False), ("off", False), (False, False),
    (None, None), ("", None), ("ture", None), ("2", None),
])  # fmt: skip
def test_switch_words(text, expected):
    assert switch(text) is expected


@pytest.mark.parametrize(("value", "kind"), [
    (True, "BOOLEAN"), (3, "NUMBER_INTEGER"), (0.5, "NUMBER_DOUBLE"), ("x", "STRING"), ([1], "LIST"), ({}, "STRUCT"),
    (None, None),
])  # fmt: skip
def test_parameter_type_of_python_values(value, kind):
    assert parameter_type(value) == kind


def test_typed_parameter_reads_command_line_text_and_travelled_values():
    assert typed_parameter("3", "NUMBER_INTEGER") == 3
    assert typed_parameter(3.0, "NUMBER_INTEGER") == 3 and isinstance(typed_parameter(3.0, "NUMBER_INTEGER"), int)
    assert typed_parameter("yes", "BOOLEAN") is True
    assert typed_parameter('{"a": [1]}', "STRUCT") == {"a": [1]}
    for value, kind in (("3.5", "NUMBER_INTEGER"), ("true", "NUMBER_DOUBLE"), ("maybe", "BOOLEAN"), ("{}", "LIST")):
        with pytest.raises(ValueError):
            typed_parameter(value, kind)


def test_task_param_errors_say_what_was_expected():
    assert parse_param("n", "NUMBER_DOUBLE", "2") == 2.0
    with pytest.raises(PluginError, match=r"^--param n NUMBER_INTEGER: expected a whole number, got '2.5'$"):
        parse_param("n", "NUMBER_INTEGER", "2.5")


def test_memory_quantities():
    assert memory_quantity_bytes("4Gi") == 4 * 2**30
    assert memory_quantity_bytes("16g") == memory_quantity_bytes("16G") == 16 * 10**9
    assert memory_quantity("16g") == "16G" and memory_quantity("512Mi") == "512Mi"
    with pytest.raises(ValueError, match="expected a size such as"):
        memory_quantity_bytes("4gi")  # `vertexai.yml` refuses it too


def test_run_id_rule():
    assert check_run_id("local-20240101-120000-abc123") == "local-20240101-120000-abc123"
    for bad in ("..", "-x", "a/b", "x" * 129, ""):
        with pytest.raises(PluginError, match="expected an id such as"):
            check_run_id(bad)
