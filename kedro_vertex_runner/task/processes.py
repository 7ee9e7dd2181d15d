"""Process-tree helpers for a task and the local backend: a task is its process and everything descended from it.

A task's processes must never outlive it, as when Vertex AI tears down a task's container. Killing the task's
process group is not enough: a child that calls ``setsid`` (a daemon, a server started with
``start_new_session=True``) leaves the group. These helpers find a process's descendants through
``/proc/<pid>/task/<tid>/children`` (Linux) and set the Linux ``prctl`` flags that keep the tree together:

* ``PR_SET_CHILD_SUBREAPER``: an orphaned descendant is re-parented to the nearest subreaper ancestor instead of
  init, so it stays visible (and killable) as a descendant of the task;
* ``PR_SET_PDEATHSIG``: the kernel signals a process when its parent dies, so a task never runs on after the
  process that started it was killed (SIGKILL included).

Everything degrades to a no-op where ``/proc`` or ``prctl`` is missing (macOS, Windows): process groups still apply.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PROC = Path("/proc")


def _prctl(option: int, value: int) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send ``sig`` to this process when its parent dies (Linux); returns whether it is set."""
    return _prctl(_PR_SET_PDEATHSIG, int(sig))


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants (Linux); returns whether it is set."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (empty where ``/proc`` cannot tell)."""
    found: list[int] = []
    try:
        threads = list((_PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for thread in threads:
        try:
            found.extend(int(child) for child in (thread / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every living descendant of ``pid``, parents before their children."""
    found: list[int] = []
    todo = children(pid)
    seen = {pid}
    while todo:
        child = todo.pop(0)
        if child in seen:
            continue
        seen.add(child)
        found.append(child)
        todo.extend(children(child))
    return found


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot): with the pid, it names one process for good."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal ``pid`` and all its descendants (descendants found first, so none escapes by re-parenting)."""
    tree = descendants(pid)
    kill(pid, sig)
    for child in tree:
        kill(child, sig)


class Descendants:
    """Remembers the descendants of one task process seen while it ran, to kill those left when it ends.

    Identities are ``(pid, start time)`` pairs, so a pid the system reused for an unrelated process is never hit.
    """

    def __init__(self) -> None:
        self._seen: dict[int, int] = {}

    def track(self, pid: int) -> None:
        for child in descendants(pid):
            started = start_time(child)
            if started is not None:
                self._seen.setdefault(child, started)

    def kill_left(self, sig: int = signal.SIGKILL) -> None:
        for child, started in self._seen.items():
            if start_time(child) == started:
                kill_tree(child, sig)
        self._seen.clear()


#: how long a task's exit handlers may take before the task ends without them (never a library's idle timeout)
EXIT_GRACE = 10.0


def finish(code: int, inherited_hooks: int = 0) -> NoReturn:
    """End this process as a fresh interpreter's exit would shut its libraries down, without waiting for them.

    What ``Py_Finalize`` runs, in its order: the shutdown hooks libraries register with ``threading`` (loky's and
    ``concurrent.futures``' executors stop their workers there), then the :mod:`atexit` handlers (multiprocessing
    terminates its pools, mlflow ends its run, logging flushes). Unlike an interpreter it never joins a thread left
    running, and gives the handlers at most :data:`EXIT_GRACE` seconds; then it kills every process still
    descended from this one (a worker, a resource tracker, a JVM) and leaves with ``os._exit(code)``.

    ``inherited_hooks``: the number of ``threading`` shutdown hooks this process inherited through a fork and must
    not run (they belong to the parent's executors); 0 in a process that runs its own.
    """
    import atexit
    import threading

    def overdue() -> None:
        _write_stderr(f"exit handlers still running after {EXIT_GRACE:g} s: ending without them\n")
        _end(code)

    timer = threading.Timer(EXIT_GRACE, overdue)
    timer.daemon = True
    try:
        timer.start()
        hooks = list(getattr(threading, "_threading_atexits", []))[inherited_hooks:]
        threading._SHUTTING_DOWN = True  # type: ignore[attr-defined]  # no new executor from here on
        for hook in reversed(hooks):
            try:
                hook()
            except BaseException:
                pass
        atexit._run_exitfuncs()
    except BaseException:
        pass
    _end(code)


def _write_stderr(text: str) -> None:
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _end(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    for child in children(os.getpid()):
        kill_tree(child)
    real_exit: Callable[[int], NoReturn] = getattr(os._exit, "__wrapped__", os._exit)  # even while a task guards it
    real_exit(code)


__all__ = [
    "Descendants",
    "become_subreaper",
    "children",
    "descendants",
    "die_with_parent",
    "finish",
    "kill",
    "kill_tree",
]
