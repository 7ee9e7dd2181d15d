"""Undeclared datasets that cross a task boundary, stored under ``<root>/<run id>/`` so separate processes share them.

On Vertex AI (and with the local backend) every task is its own process, so a dataset that is not declared in the
catalog — Kedro would keep it in a ``MemoryDataset`` — cannot travel from the task that produces it to the task
that consumes it. This module decides which of those datasets leave or enter a task's group of nodes and replaces
them in the task's catalog with :class:`PersistedDataset`:

* *declared* datasets (catalog entries, matches of the project's dataset-factory patterns including a user
  catch-all, ``parameters`` and ``params:*``) are never touched — the project decides where they live;
* an undeclared dataset produced **and** consumed only inside the task's nodes stays in memory;
* one that enters the task (produced by another task) is read from storage, and one that leaves it (consumed by
  a node of the registered pipeline(s) outside the task, or consumed by nobody) is written to storage.

Where: ``<root>/<run id>/<encoded dataset name>.pkl``. The name is percent-encoded except for letters, digits and
``-_.`` (so ``model.X_train`` stays readable and ``a/b`` becomes ``a%2Fb``: one object, never a sub-directory).
Values are written with :mod:`pickle` (highest protocol); ``.pkl`` says so.

Atomicity — a task killed mid-write (SIGKILL, OOM, preemption) must never leave something a later task would read
as complete:

* local directories: the value is streamed into a temporary file next to the target
  (``.<file>.<pid>.<random>.tmp``), flushed and fsync'ed, then ``os.replace``'d onto the final name — a rename
  within one directory is atomic on POSIX. A kill leaves at most a stray ``*.tmp`` file, never a partial target,
  and the local backend removes those (:func:`sweep_temp_files`) when the run ends, even when its launcher was
  killed;
* object stores (``gs://`` through gcsfs, and other fsspec URLs): the value is pickled in memory first and sent
  as one object upload. A GCS object becomes visible only when its upload (simple, or the last chunk of a resumable
  one) is committed, so an interrupted upload leaves either no object or the previous complete one. A temporary
  object plus ``mv`` would add a server-side copy and delete without being any more atomic than that. The cost is
  one in-memory copy of the pickled bytes.

A value that cannot be pickled fails the node with a message naming the dataset, before anything is written.
"""

from __future__ import annotations

import os
import pickle
import re
import secrets
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import quote

from kedro.io import AbstractDataset, DatasetError

from .errors import PluginError

if TYPE_CHECKING:
    from kedro.pipeline import Pipeline

SUFFIX = ".pkl"
_SAFE = "-_."
_TEMP = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")  # what PersistedDataset._save_local writes first


def file_name(dataset_name: str) -> str:
    """The file (object) name for ``dataset_name``: percent-encoded, one path segment, ``.pkl`` suffix."""
    return quote(dataset_name, safe=_SAFE) + SUFFIX


def run_dir(root: str, run_id: str) -> str:
    """``<root>/<run id>``; the run id must be usable as a single path segment."""
    if not run_id or run_id in {".", ".."} or "/" in run_id or "\\" in run_id:
        raise PluginError(f"run id {run_id!r} cannot be used as a directory name: use letters, digits, '-' or '_'")
    return f"{str(root).rstrip('/')}/{run_id}"


def dataset_path(root: str, run_id: str, dataset_name: str) -> str:
    """Where an undeclared dataset of run ``run_id`` is stored."""
    return f"{run_dir(root, run_id)}/{file_name(dataset_name)}"


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


class PersistedDataset(AbstractDataset[Any, Any]):
    """A pickled value at ``path`` (a local path or an fsspec URL such as ``gs://bucket/run/x.pkl``).

    Writes are atomic (see the module docstring); ``load`` of a missing path says which dataset is missing and
    where it was looked for, because the usual cause is a producing task that did not run in this job.
    """

    def __init__(self, path: str, name: str | None = None, storage_options: dict[str, Any] | None = None):
        """Args:
        path: where the value lives.
        name: the Kedro dataset name, used in error messages.
        storage_options: passed to fsspec for remote paths.
        """
        self._path = str(path)
        self._name = name or os.path.basename(self._path)
        self._storage_options = dict(storage_options or {})

    @property
    def path(self) -> str:
        return self._path

    def _describe(self) -> dict[str, Any]:
        return {"name": self._name, "path": self._path}

    def _fs(self) -> tuple[Any, str]:
        from fsspec.core import url_to_fs

        return url_to_fs(self._path, **self._storage_options)

    def _missing(self) -> DatasetError:
        return DatasetError(
            f"dataset {self._name!r} not found at {self._path}: was the task producing it run in this job "
            f"(same run id and root)? A filtered local run can reuse an earlier run's data with "
            f"--runner-params run_id=<that run's id>"
        )

    def _unpicklable(self, exc: BaseException) -> DatasetError:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        return DatasetError(
            f"dataset {self._name!r} cannot be pickled to pass it to the next task ({reason}); declare it in the "
            f"catalog with a dataset type that can save this value"
        )

    def load(self) -> Any:
        if _is_local(self._path):
            try:
                with open(_local(self._path), "rb") as stream:
                    return pickle.load(stream)
            except FileNotFoundError:
                raise self._missing() from None
        fs, path = self._fs()
        try:
            with fs.open(path, "rb") as stream:
                return pickle.load(stream)
        except FileNotFoundError:
            raise self._missing() from None

    def save(self, data: Any) -> None:
        if data is None:
            raise DatasetError(f"node output {self._name!r} is None: Kedro cannot save None to a dataset")
        if _is_local(self._path):
            self._save_local(data)
        else:
            self._save_remote(data)

    def _save_local(self, data: Any) -> None:
        target = _local(self._path)
        directory, base = os.path.split(target)
        os.makedirs(directory or ".", exist_ok=True)
        temp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with open(temp, "wb") as stream:
                try:
                    pickle.dump(data, stream, protocol=pickle.HIGHEST_PROTOCOL)
                except (pickle.PicklingError, TypeError, AttributeError) as exc:
                    raise self._unpicklable(exc) from exc
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temp, target)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise

    def _save_remote(self, data: Any) -> None:
        try:
            payload = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise self._unpicklable(exc) from exc
        fs, path = self._fs()
        # one upload of the whole object: visible only once complete (see module docstring)
        fs.pipe_file(path, payload)

    def _exists(self) -> bool:
        if _is_local(self._path):
            return os.path.isfile(_local(self._path))
        fs, path = self._fs()
        return fs.exists(path)


def sweep_temp_files(directory: str) -> list[str]:
    """Remove the temporary files that writes interrupted by a kill left in ``directory`` (a local run folder).

    Call it only when no task of the run can still be writing. URLs are left alone: object uploads leave nothing.
    Returns the names removed.
    """
    if not _is_local(directory):
        return []
    folder = _local(directory)
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        if _TEMP.match(name):
            try:
                os.unlink(os.path.join(folder, name))
                removed.append(name)
            except OSError:
                continue
    return removed


def _is_parameter(name: str) -> bool:
    return name == "parameters" or name.startswith("params:")


def _consumed_outside(group: Pipeline, full: Pipeline) -> set[str]:
    group_names = {node.name for node in group.nodes}
    consumed: set[str] = set()
    for node in full.nodes:
        if node.name not in group_names:
            consumed.update(node.inputs)
    return consumed


def _resolve(full: Any) -> Pipeline:
    return full if hasattr(full, "nodes") else full()


def boundary_datasets(group: Pipeline, full: Any, is_declared: Callable[[str], bool]) -> tuple[set, set]:
    """``(inputs, outputs)``: the undeclared datasets that enter and leave ``group`` (a sub-pipeline of ``full``).

    Args:
        group: the nodes one task runs.
        full: every node of the job's pipeline(s), or a function returning them. It is only needed (and the
            function only called) when an undeclared dataset is both produced and consumed inside ``group``:
            whether another task reads it too decides if it is written. Loading the job's pipelines can import
            every node module of the project, so a task whose datasets all cross its boundary skips that.
        is_declared: whether a name is declared in the catalog (explicitly, or by a factory pattern).
    """
    produced = set(group.all_outputs())
    free_outputs = set(group.outputs())
    inputs: set[str] = set()
    outputs: set[str] = set()
    internal: set[str] = set()
    for name in group.datasets():
        if _is_parameter(name) or is_declared(name):
            continue
        if name not in produced:
            inputs.add(name)
        elif name in free_outputs:
            outputs.add(name)
        else:
            internal.add(name)
    if internal:
        outputs |= internal & _consumed_outside(group, _resolve(full))
    return inputs, outputs


def persist_undeclared(
    catalog: Any,
    group: Pipeline,
    full: Any,
    root: str | None,
    run_id: str,
) -> dict[str, str]:
    """Put a :class:`PersistedDataset` into ``catalog`` for every undeclared dataset crossing ``group``'s boundary.

    ``full`` is the job's pipeline, or a function returning it (see :func:`boundary_datasets`).

    Returns ``{dataset name: path}`` of what was replaced.

    Raises:
        PluginError: a dataset another task reads (or this task reads) crosses the boundary and ``root`` is empty.
    """
    inputs, outputs = boundary_datasets(group, full, lambda name: name in catalog)
    crossing = sorted(inputs | outputs)
    if not crossing:
        return {}
    if not root:
        # without a root, outputs nobody reads stay in memory as plain Kedro would keep them; data another task
        # needs cannot
        needed = sorted(inputs | (outputs & _consumed_outside(group, _resolve(full))))
        if needed:
            raise PluginError(
                f"undeclared dataset {needed[0]!r} passes between tasks but no storage root was given "
                f"(run_config.root / --root)"
            )
        return {}
    placed: dict[str, str] = {}
    for name in crossing:
        path = dataset_path(root, run_id, name)
        catalog[name] = PersistedDataset(path, name=name)
        placed[name] = path
    return placed


__all__ = [
    "PersistedDataset",
    "boundary_datasets",
    "dataset_path",
    "file_name",
    "persist_undeclared",
    "run_dir",
    "sweep_temp_files",
]
