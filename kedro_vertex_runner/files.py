"""Replacing a local file atomically, the one way every writer of the plugin does it (a task's stored datasets,
report and node times, the local run record, an uploaded code archive, the compiled spec).

Imported by the in-task entrypoint: standard library only.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import IO

#: flags that never follow a link at the last path component (``O_NOFOLLOW``; 0 where the OS has none)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def temp_name(name: str) -> str:
    """The temporary name a write of file ``name`` uses first: ``.<name>.<pid>.<8 hex digits>.tmp``, in the same
    folder (what :func:`kedro_vertex_runner.task.persistence.sweep_temp_files` removes after a kill)."""
    return f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def replace_file(
    path: str | os.PathLike[str],
    content: bytes | str | Callable[[IO[bytes]], object],
    *,
    dir_fd: int | None = None,
    durable: bool = True,
) -> None:
    """Replace the file at ``path`` with ``content`` (bytes, text written as UTF-8, or a function that writes to
    the binary stream it is given), atomically.

    The content goes to a new file (:func:`temp_name`) in the same folder, created exclusively and never through a
    link (``O_EXCL | O_NOFOLLOW``) with the permissions ``open()`` would give (``0o666`` less the umask), flushed and,
    when ``durable``, fsync'ed; then it is renamed onto ``path``, which is atomic on POSIX: a link at ``path`` is
    replaced, never written through, and a reader sees the old file or the new one, never part of one. A kill
    leaves at most the temporary file; any other failure removes it. ``dir_fd``: ``path`` is a name in the folder
    open as that descriptor (see :func:`kedro_vertex_runner.task.timings.write_inside`). ``durable=False`` skips the
    fsync, for a file that matters only while the machine is up (a task's progress report, rewritten per node).

    Raises:
        OSError: the temporary file cannot be created or written, or the rename failed.
    """
    target = os.fspath(path)
    folder, name = os.path.split(target)
    temp = os.path.join(folder, temp_name(name))
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o666, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as stream:
            if callable(content):
                content(stream)
            else:
                stream.write(content.encode("utf-8") if isinstance(content, str) else content)
            stream.flush()
            if durable:
                os.fsync(stream.fileno())
        os.replace(temp, target, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(temp, dir_fd=dir_fd)
        except OSError:
            pass
        raise


__all__ = ["NOFOLLOW", "replace_file", "temp_name"]
