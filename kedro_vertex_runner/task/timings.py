"""Node run times of runs: written by each task, read at compile time by the ``makespan`` grouping.

Each task of a job writes ``<root>/<run id>/timings/<task>.json``
(``{"pipeline": "<names>", "nodes": {"<node>": seconds}}``, the file named after the task's first node) once its
nodes have run, and records the run as the latest of its pipeline in the index ``<root>/timings/<names>.txt``
(``<names>``: the ``--pipeline`` names joined by ``+``, e.g. ``__default__``), which holds that run id. Compiling
the same pipeline later reads the timing files of that run. A task that knows its job's name (``--job-name``)
also writes ``<root>/timings/jobs/<job>.txt`` (``<job>``: the name's last ``/`` segment), holding the run id: a
rerun of that job finds the original's run folder by it (:func:`run_of_job`). A ``gs://`` or ``s3://`` root (a Vertex AI or
Kubeflow job's) gets the same files through fsspec, up to three small uploads per task; compiling reads them only when
there is no local run (see :func:`kedro_vertex_runner.project.recorded_timings`), each request bounded by the
network time limit.

Nothing is written through a link or outside the root: every folder below the root is opened with
``O_NOFOLLOW`` (a folder or file planted as a symbolic link is refused, never followed), and files are created
with the permissions the umask leaves (as ``open()`` would), then renamed into place. A record or index that
does not read as sane durations (not UTF-8, not JSON, NaN, infinite, negative or longer than
:data:`MAX_NODE_SECONDS`) is ignored with one warning line.

Imported by the in-task entrypoint: standard library only.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..files import NOFOLLOW, replace_file

TIMINGS_DIR = "timings"
#: ``<root>/timings/jobs/<job>.txt``: the run id of job ``<job>`` (its run folder's name)
JOBS_DIR = "jobs"
_SAFE = "-_.+"
#: a node time beyond this (30 days, the longest task timeout) is not a measurement
MAX_NODE_SECONDS = 30 * 86400.0
_MAX_RECORD_BYTES = 4 * 2**20  # a timing record larger than this is not one
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | NOFOLLOW
# timings need folders opened relative to their parent without following links (POSIX); elsewhere none are kept
_SAFE_PATHS = NOFOLLOW != 0 and {os.open, os.mkdir, os.stat, os.rename, os.unlink} <= os.supports_dir_fd


def pipeline_key(pipeline_names: Iterable[str]) -> str:
    """How a job's pipeline(s) are named in the index: ``__default__``, ``data_processing+model`` …"""
    return "+".join(pipeline_names) or "__default__"


def _local_root(root: str | None) -> Path | None:
    if not root:
        return None
    if root.startswith("file://"):
        return Path(root[len("file://") :])
    return None if "://" in root else Path(root)


def _open_dir(base: Path, parts: tuple[str, ...], create: bool) -> int:
    """A descriptor of ``base/<parts…>``, each part created if ``create`` (with the umask's permissions) and
    opened with ``O_NOFOLLOW`` relative to its parent: a part that is a symbolic link raises ``OSError``."""
    fd = os.open(base, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))  # the root itself may be a link the user made
    try:
        for part in parts:
            if part in {"", ".", ".."} or "/" in part:
                raise OSError(f"{part!r} is not one path segment")
            if create:
                try:
                    os.mkdir(part, 0o777, dir_fd=fd)
                except FileExistsError:
                    pass
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                if stat.S_ISLNK(os.lstat(part, dir_fd=fd).st_mode):
                    raise OSError(errno.ELOOP, f"{part} is a symbolic link (never followed): remove it") from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_inside(base: Path, parts: tuple[str, ...], text: str) -> None:
    """Write ``text`` to ``base/<parts…>`` atomically, never through a link below ``base`` (see the module
    docstring); the file gets the permissions ``open()`` would give (``0o666`` less the umask).

    Raises:
        OSError: a folder cannot be created, a part of the path is a symbolic link, or the write failed.
    """
    *folders, name = parts
    base.mkdir(parents=True, exist_ok=True)
    fd = _open_dir(base, tuple(folders), create=True)
    try:
        replace_file(name, text, dir_fd=fd)  # a link at `name` is replaced, not followed
    finally:
        os.close(fd)


def _read_inside(base: Path, parts: tuple[str, ...]) -> bytes:
    """The bytes of ``base/<parts…>``, never through a link below ``base``; ``OSError`` otherwise."""
    *folders, name = parts
    fd = _open_dir(base, tuple(folders), create=False)
    try:
        handle = os.open(name, os.O_RDONLY | NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(handle).st_mode):
        os.close(handle)
        raise OSError(errno.EINVAL, "not a regular file")
    with os.fdopen(handle, "rb") as stream:
        return stream.read(_MAX_RECORD_BYTES + 1)


def _list_inside(base: Path, parts: tuple[str, ...]) -> list[str]:
    fd = _open_dir(base, parts, create=False)
    try:
        return sorted(os.listdir(fd))
    finally:
        os.close(fd)


def job_key(job_name: str | None) -> str | None:
    """The name of a job's index file (without ``.txt``): the last ``/`` segment of ``job_name`` (a job id or a
    resource name), quoted; None for no name or a placeholder the engine left."""
    name = str(job_name or "").rstrip("/").rsplit("/", 1)[-1]
    if not name or "{{" in name or name in {".", ".."}:
        return None
    return quote(name, safe=_SAFE)


def record_task(
    root: str | None,
    run_id: str,
    pipeline_names: Iterable[str],
    durations: Mapping[str, float],
    job_name: str | None = None,
) -> None:
    """Store one task's node run times and mark ``run_id`` as its pipeline's latest timed run, and as the run of job
    ``job_name``.

    Never fails the task: a root that cannot be written (or a symbolic link planted in it) only loses the timings,
    with one warning line in the task's log.
    """
    base = _local_root(root)
    if not durations or not root:
        return
    key = pipeline_key(pipeline_names)
    first = next(iter(durations))
    nodes = {k: round(v, 3) for k, v in durations.items() if _sane(v)}
    body = json.dumps({"pipeline": key, "nodes": nodes}, sort_keys=True, allow_nan=False)
    job = job_key(job_name)
    if base is None:
        _record_remote(root, (run_id, TIMINGS_DIR, f"{quote(first, safe=_SAFE)}.json"), body, key, run_id, job)
        return
    if not _SAFE_PATHS:
        return
    try:
        write_inside(base, (run_id, TIMINGS_DIR, f"{quote(first, safe=_SAFE)}.json"), body)
        write_inside(base, (TIMINGS_DIR, f"{quote(key, safe=_SAFE)}.txt"), run_id + "\n")
        if job:
            write_inside(base, (TIMINGS_DIR, JOBS_DIR, f"{job}.txt"), run_id + "\n")
    except OSError as exc:
        _warn(f"node timings not recorded under {base}: {exc.strerror or exc}")


def _remote_fs(root: str) -> tuple[Any, str]:
    from ..storage import bounded_options, url_to_fs

    return url_to_fs(root, **bounded_options(root))


def _record_remote(root: str, record: tuple[str, ...], body: str, key: str, run_id: str, job: str | None) -> None:
    """:func:`record_task` for a ``gs://`` or ``s3://`` root: the record, then the indexes naming the run."""
    try:
        fs, base = _remote_fs(root)
        base = base.rstrip("/")
        fs.pipe_file(f"{base}/{'/'.join(record)}", body.encode())
        fs.pipe_file(f"{base}/{TIMINGS_DIR}/{quote(key, safe=_SAFE)}.txt", (run_id + "\n").encode())
        if job:
            fs.pipe_file(f"{base}/{TIMINGS_DIR}/{JOBS_DIR}/{job}.txt", (run_id + "\n").encode())
    except Exception as exc:  # the task's work is done: its timings are not worth failing it
        _warn(f"node timings not recorded under {root}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")


def run_of_job(root: str, job_name: str) -> tuple[str | None, str]:
    """The run id job ``job_name``'s tasks recorded under ``root`` (see :func:`record_task`), or None and why not
    (nothing recorded, an index that holds no run id, storage that cannot be read)."""
    job = job_key(job_name)
    if job is None:
        return None, "the job has no name"
    parts = (TIMINGS_DIR, JOBS_DIR, f"{job}.txt")
    base = _local_root(root)
    where = f"{root.rstrip('/')}/{'/'.join(parts)}"
    try:
        if base is not None:
            data = _read_inside(base, parts) if _SAFE_PATHS else b""
        else:
            fs, remote = _remote_fs(root)
            data = fs.cat_file(f"{remote.rstrip('/')}/{'/'.join(parts)}")
    except FileNotFoundError:
        return None, f"its tasks recorded no run under {root} ({where} does not exist)"
    except Exception as exc:  # storage unreachable or refused
        return None, f"{where} cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    run_id = data[:256].decode("utf-8", "replace").strip()
    if not run_id or "/" in run_id or run_id in {".", ".."} or "{{" in run_id:
        return None, f"{where} does not hold a run id"
    return run_id, ""


def _sane(seconds: object) -> bool:
    return (
        isinstance(seconds, (int, float))
        and not isinstance(seconds, bool)
        and math.isfinite(seconds)
        and 0 <= seconds <= MAX_NODE_SECONDS
    )


def _warn(text: str) -> None:
    """One plain line on stderr (never wrapped by a logging handler): the task's log, or the compile's output."""
    print(f"Warning: {text}", file=sys.stderr, flush=True)


def _ignored(path: Path, reason: str) -> None:
    _warn(f"node timings {path} {reason}: ignored (delete it; it is written again by the next local run)")


def last_run_durations(root: str | None, pipeline_names: Iterable[str]) -> dict[str, float]:
    """Node → seconds from the latest local run of ``pipeline_names`` under ``root``; empty when there is none.

    A record or index that is not sane (see the module docstring) is skipped with one warning line naming it."""
    return last_run(root, pipeline_names)[1]


def last_run(root: str | None, pipeline_names: Iterable[str]) -> tuple[str | None, dict[str, float]]:
    """The latest run of ``pipeline_names`` under ``root`` (a local folder, ``gs://`` or ``s3://``) and its node
    run times; ``(None, {})`` when there is none. Insane records are skipped as :func:`last_run_durations` says."""
    if root and _local_root(root) is None:
        return _last_remote_run(root, pipeline_key(pipeline_names))
    return _last_local_run(_local_root(root), pipeline_names)


def _last_remote_run(root: str, key: str) -> tuple[str | None, dict[str, float]]:
    try:
        fs, base = _remote_fs(root)
        base = base.rstrip("/")
        index = f"{base}/{TIMINGS_DIR}/{quote(key, safe=_SAFE)}.txt"
        try:
            data = fs.cat_file(index)
        except FileNotFoundError:
            return None, {}
        run_id = data[:256].decode("utf-8", "replace").strip()
        if not run_id or "/" in run_id or run_id in {".", ".."}:
            _warn(f"node timings {root}/{TIMINGS_DIR}/{key}.txt does not hold a run id: ignored")
            return None, {}
        try:
            names = [
                p for p in fs.ls(f"{base}/{run_id}/{TIMINGS_DIR}", detail=False, refresh=True) if p.endswith(".json")
            ]
        except FileNotFoundError:
            return run_id, {}
        found: dict[str, float] = {}
        for path in sorted(names):
            try:
                record = json.loads(fs.cat_file(path)[: _MAX_RECORD_BYTES + 1].decode("utf-8"))
                nodes = record.get("nodes") if isinstance(record, dict) else None
                if not isinstance(nodes, dict) or not all(_sane(v) for v in nodes.values()):
                    raise ValueError("holds no sane node times")
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                reason = "is not JSON" if isinstance(exc, json.JSONDecodeError) else "is not a timing record"
                _warn(f"node timings {fs.unstrip_protocol(path)} {reason}: ignored")
                continue
            found.update({str(node): float(seconds) for node, seconds in nodes.items()})
        return run_id, found
    except Exception as exc:  # storage unreachable or refused: compile with the default times
        _warn(f"node timings under {root} cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})")
        return None, {}


def _last_local_run(base: Path | None, pipeline_names: Iterable[str]) -> tuple[str | None, dict[str, float]]:
    if base is None or not _SAFE_PATHS:
        return None, {}
    key = pipeline_key(pipeline_names)
    index = (TIMINGS_DIR, f"{quote(key, safe=_SAFE)}.txt")
    try:
        data = _read_inside(base, index)
    except FileNotFoundError:
        return None, {}
    except OSError as exc:
        _ignored(base.joinpath(*index), f"cannot be read ({exc.strerror or exc})")
        return None, {}
    try:
        run_id = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        _ignored(base.joinpath(*index), "is not UTF-8 text")
        return None, {}
    if not run_id or len(run_id) > 128 or "/" in run_id or "\\" in run_id or run_id in {".", ".."}:
        _ignored(base.joinpath(*index), f"does not hold a run id ({run_id[:40]!a})")
        return None, {}
    try:
        names = [name for name in _list_inside(base, (run_id, TIMINGS_DIR)) if name.endswith(".json")]
    except OSError:
        return run_id, {}
    found: dict[str, float] = {}
    for name in names:
        path = base / run_id / TIMINGS_DIR / name
        try:
            data = _read_inside(base, (run_id, TIMINGS_DIR, name))
            if len(data) > _MAX_RECORD_BYTES:
                raise ValueError("is larger than any timing record")
            record = json.loads(data.decode("utf-8"))
            nodes = record.get("nodes") if isinstance(record, dict) else None
            if not isinstance(nodes, dict):
                raise ValueError("has no 'nodes' mapping")
            bad = next((str(v) for v in nodes.values() if not _sane(v)), None)
            if bad is not None:
                raise ValueError(f"holds {bad[:20]!a}, not a duration from 0 to {MAX_NODE_SECONDS:.0f} s")
        except OSError as exc:
            _ignored(path, f"cannot be read ({exc.strerror or exc})")
            continue
        except UnicodeDecodeError:
            _ignored(path, "is not UTF-8 text")
            continue
        except (ValueError, RecursionError) as exc:  # json.JSONDecodeError included
            reason = str(exc) if not isinstance(exc, json.JSONDecodeError) else "is not JSON"
            _ignored(path, reason)
            continue
        for node, seconds in nodes.items():
            found[str(node)] = float(seconds)
    return run_id, found
