"""The one atomic file write (files.replace_file) every writer uses: it replaces, never writes through a link, gives
the umask's permissions, and a failed write keeps the previous file and leaves no temporary one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kedro_vertex_runner.files import replace_file
from kedro_vertex_runner.task.persistence import sweep_temp_files


def test_a_file_is_replaced_never_written_through_a_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").symlink_to(outside)
    previous = os.umask(0o027)
    try:
        replace_file(run / "run.json", b'{"a": 1}')
        replace_file(run / "notes.txt", "é")
    finally:
        os.umask(previous)
    assert outside.read_text() == "keep me"
    assert not (run / "run.json").is_symlink() and (run / "run.json").read_bytes() == b'{"a": 1}'
    assert (run / "notes.txt").read_text(encoding="utf-8") == "é"
    assert (run / "notes.txt").stat().st_mode & 0o777 == 0o640  # what open() gives: 0o666 less the umask
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt", "run.json"]


def test_a_failed_write_keeps_the_previous_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "data.pkl"
    target.write_bytes(b"old")

    def half(stream) -> None:  # type: ignore[no-untyped-def]
        stream.write(b"partial")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        replace_file(target, half)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["data.pkl"]
    with pytest.raises(IsADirectoryError):
        replace_file(tmp_path, b"x")  # the folder itself: refused, nothing left behind
    assert [p.name for p in tmp_path.iterdir()] == ["data.pkl"]


def test_what_a_kill_leaves_is_swept(tmp_path: Path) -> None:
    """A kill between create and rename leaves the temporary file: its name is one the local backend sweeps."""
    from kedro_vertex_runner.files import temp_name

    left = tmp_path / temp_name("model.pkl")
    left.write_bytes(b"partial")
    (tmp_path / "model.pkl").write_bytes(b"whole")
    assert sweep_temp_files(str(tmp_path)) == [left.name]
    assert [p.name for p in tmp_path.iterdir()] == ["model.pkl"]
