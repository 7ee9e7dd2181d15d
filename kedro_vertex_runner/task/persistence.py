"""Datasets that cross a task boundary, stored under ``<root>/<run id>/`` so separate processes share them.

On Vertex AI (and with the local backend) every task is its own process, so a dataset that lives only in memory —
one not declared in the catalog (Kedro would keep it in a ``MemoryDataset``), or one the catalog declares as a
``MemoryDataset``/``SharedMemoryDataset`` (explicitly or through a factory pattern such as
``"{default}": {type: MemoryDataset}``) — cannot travel from the task that produces it to the task that consumes
it. :class:`TaskBoundary` is the one rule deciding which of those datasets leave or enter a task's group of nodes
(the task entrypoint, the compiler's caching and memory-dataset checks and the resume hint all use it); the task
replaces them in its catalog with :class:`PersistedDataset`:

* datasets the catalog *stores itself* (declared with any other type, explicitly or by a factory pattern) and
  parameters (``parameters``, ``params:*``) are never touched — the project decides where they live;
* a dataset held in memory that is produced **and** consumed only inside the task's nodes stays in memory;
* one that enters the task (produced by another task) is read from storage, and one that leaves it (consumed by
  a node of the registered pipeline(s) outside the task, or consumed by nobody) is written to storage;
* a declared memory dataset that no node of the job produces (its value comes from the catalog) stays as it is.

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

A value that cannot be pickled (a Spark DataFrame, a lock, a generator) fails the node with this module's own
one-line message naming the dataset, the value's type and the fix, before anything is written — never with the
library's error (Spark's ``CONTEXT_ONLY_VALID_ON_DRIVER`` and the like).

Versioned datasets (``versioned: true``): Kedro gives every session its own save version, so with one process per
task each task would save with a different timestamp and a later task would load "latest" — with two jobs
overlapping, possibly the other job's. :func:`job_version` gives every task of a job the job's one version
(recorded once, first writer wins, at ``<root>/<run id>/save_version``) and :func:`pin_versions` makes the task save
with it and load exactly that version of every versioned input its own job wrote.
"""

from __future__ import annotations

import os
import pickle
import re
import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from kedro.io import AbstractDataset, DatasetError

from ..errors import PluginError
from ..files import replace_file

if TYPE_CHECKING:
    from kedro.pipeline import Pipeline
    from kedro.pipeline.node import Node

SUFFIX = ".pkl"
_SAFE = "-_."
_TEMP = re.compile(r"^\..+\.\d+\.[0-9a-f]{8}\.tmp$")  # what PersistedDataset._save_local writes first


def file_name(dataset_name: str) -> str:
    """The file (object) name for ``dataset_name``: percent-encoded, one path segment, ``.pkl`` suffix.

    ``/``, ``\\``, NUL and every other character outside letters, digits and ``-_.`` are encoded, and the suffix
    makes ``.`` and ``..`` ordinary names (``..pkl``, ``...pkl``): the result never leaves the run directory.
    """
    return quote(dataset_name, safe=_SAFE) + SUFFIX


def run_dir(root: str, run_id: str) -> str:
    """``<root>/<run id>``; the run id must be usable as a single path segment."""
    from ..values import check_run_id

    check_run_id(run_id)
    return f"{str(root).rstrip('/')}/{run_id}"


def dataset_path(root: str, run_id: str, dataset_name: str) -> str:
    """Where an undeclared dataset of run ``run_id`` is stored."""
    return f"{run_dir(root, run_id)}/{file_name(dataset_name)}"


def open_new(path: str) -> Any:
    """A new file opened for binary writing: never an existing file, never through a link planted at that name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.fdopen(os.open(path, flags, 0o666), "wb")


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def _local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


class MissingStoredData(DatasetError):
    """A dataset this task had to read from the run's storage was never stored there (for the task report)."""

    def __init__(self, dataset_name: str, message: str):
        super().__init__(message)
        self.dataset_name = dataset_name


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
        from ..storage import url_to_fs

        return url_to_fs(self._path, **self._storage_options)

    def _missing(self) -> DatasetError:
        return MissingStoredData(
            self._name or "",
            f"dataset {self._name!r} not found at {self._path}: was the task producing it run in this job "
            f"(same run id and root)? A filtered local run can reuse an earlier run's data with "
            f"--runner-params run_id=<that run's id>",
        )

    def _unpicklable(self, data: Any, exc: BaseException) -> DatasetError:
        """Our own one line, whatever the library raised (Spark's is a multi-line CONTEXT_ONLY_VALID_ON_DRIVER)."""
        kind = type(data)
        return DatasetError(
            f"dataset {self._name!r} cannot be pickled to pass it to the next task (a {kind.__module__}."
            f"{kind.__qualname__} value, {type(exc).__name__}); declare it in the catalog with a dataset type that "
            f"saves this value (e.g. spark.SparkDataset for a Spark DataFrame), or run its producer and consumers "
            f"in one task (run_config.grouping)"
        )

    def _not_saved(self, exc: OSError) -> DatasetError:
        """The storage's own error (no space, a file-size limit, permissions, a read-only filesystem), named as
        such with the dataset and the path: never mistaken for a value that cannot be pickled."""
        import errno

        code = errno.errorcode.get(exc.errno or 0)
        reason = exc.strerror or str(exc) or type(exc).__name__
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != self._path else ""
        fix = {
            errno.ENOSPC: "free space there",
            errno.EDQUOT: "free space there (a disk quota is reached)",
            errno.EFBIG: "raise the file-size limit (ulimit -f)",
            errno.EACCES: "make the folder writable",
            errno.EPERM: "make the folder writable",
            errno.EROFS: "it is on a read-only filesystem",
        }.get(exc.errno or 0, "check that storage")
        return DatasetError(
            f"dataset {self._name!r} could not be saved to {self._path}{where}: {reason}"
            f"{f' ({code})' if code else ''}; {fix}, or set run_config.root to a writable place with room"
        )

    def _pickled(self, data: Any, stream: Any = None) -> bytes | None:
        try:
            if stream is None:
                return pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump(data, stream, protocol=pickle.HIGHEST_PROTOCOL)
            return None
        except OSError as exc:
            if stream is not None and exc.errno is not None:  # writing the file failed, not pickling the value
                raise self._not_saved(exc) from None
            raise self._unpicklable(data, exc) from None
        except Exception as exc:  # PicklingError, TypeError, Spark's PySparkRuntimeError, a failing __reduce__ …
            raise self._unpicklable(data, exc) from None

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
        try:
            if _is_local(self._path):
                self._save_local(data)
            else:
                self._save_remote(data)
        except OSError as exc:  # creating the folder, the file, flushing, renaming, uploading
            raise self._not_saved(exc) from None

    def _save_local(self, data: Any) -> None:
        target = _local(self._path)
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        replace_file(target, lambda stream: self._pickled(data, stream))

    def _save_remote(self, data: Any) -> None:
        payload = self._pickled(data)
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
    removed: list[str] = []
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


#: dataset types whose value lives in the process that saved it (as the catalog config names them, any prefix)
_MEMORY_TYPES = frozenset({"MemoryDataset", "SharedMemoryDataset"})


def held_in_memory(catalog: Any, name: str) -> bool:
    """Whether ``catalog`` declares ``name`` (explicitly or by a factory pattern) as a ``MemoryDataset`` or
    ``SharedMemoryDataset``: its value cannot leave the process that saved it.

    A dataset object already in the catalog is judged by its class (subclasses count); a catalog entry or pattern
    by the ``type`` its config names, so the launcher never imports every dataset class just to ask.
    """
    from kedro.io import MemoryDataset, SharedMemoryDataset

    built = getattr(catalog, "_datasets", None)
    if isinstance(built, dict) and name in built:
        return isinstance(built[name], (MemoryDataset, SharedMemoryDataset))
    resolver = getattr(catalog, "config_resolver", None)
    if resolver is None or name not in catalog:
        return False
    config = resolver.config.get(name)
    if config is None:
        try:
            config = resolver.resolve_pattern(name)
        except Exception:  # a pattern Kedro cannot resolve: the catalog reports it when the task uses it
            return False
    kind = config.get("type") if isinstance(config, dict) else None
    if isinstance(kind, type):
        return issubclass(kind, (MemoryDataset, SharedMemoryDataset))
    return str(kind or "").rpartition(".")[2] in _MEMORY_TYPES


class TaskBoundary:
    """The one rule for which datasets travel between tasks through ``<root>/<run id>/``.

    A dataset is *transient* when it lives in memory: not declared in the catalog, or declared as a memory dataset
    (:func:`held_in_memory`). Transient datasets that leave or enter a group of nodes (one task) are stored; those
    produced and consumed only inside it stay in memory; everything else is the catalog's business. The task
    entrypoint (what to persist), the compiler (which tasks may be cached, which declared memory datasets cross
    tasks) and the resume hint (what a failed task never stored) all ask this class, so they always agree.

    Linear: the readers of every dataset are indexed once (and only when needed); each question then costs time
    proportional to the group's own nodes, so the compiler can ask it for every task of a 1000-node job.
    """

    def __init__(
        self,
        full: Pipeline | Callable[[], Pipeline],
        declared: Callable[[str], bool],
        in_memory: Callable[[str], bool] = lambda name: False,
    ):
        """Args:
        full: every node of the job's pipeline(s), or a function returning them. It is only needed (and the
            function only called) when a transient dataset is produced and consumed inside a group (whether
            another task reads it too decides if it is written), or a declared memory dataset enters one (whether
            the job produces it). Loading the job's pipelines can import every node module of the project.
        declared: whether a name is declared in the catalog (explicitly, or by a factory pattern).
        in_memory: whether a declared name is a memory dataset (see :func:`held_in_memory`).
        """
        self._full = full
        self._declared = declared
        self._in_memory = in_memory
        self._readers: dict[str, set[str]] | None = None
        self._produced: set[str] | None = None

    @classmethod
    def of_catalog(cls, full: Pipeline | Callable[[], Pipeline], catalog: Any) -> TaskBoundary:
        """The rule for a Kedro catalog (``name in catalog`` is declared; memory types per :func:`held_in_memory`)."""
        return cls(full, catalog.__contains__, lambda name: held_in_memory(catalog, name))

    def _index(self) -> None:
        if self._readers is None:
            full = self._full if hasattr(self._full, "nodes") else self._full()
            readers: dict[str, set[str]] = {}
            produced: set[str] = set()
            for node in full.nodes:
                for name in node.inputs:
                    readers.setdefault(name, set()).add(node.name)
                produced.update(node.outputs)
            self._readers, self._produced = readers, produced

    def readers(self, name: str) -> set[str]:
        """The nodes of the job that read ``name``."""
        self._index()
        return self._readers.get(name, set())  # type: ignore[union-attr]

    def read_outside(self, name: str, own: set[str]) -> set[str]:
        """The nodes of the job outside ``own`` (node names) that read ``name``."""
        return self.readers(name) - own

    def transient(self, name: str) -> bool:
        """Whether ``name`` lives only in memory (undeclared, or declared as a memory dataset); never a parameter."""
        if _is_parameter(name):
            return False
        return not self._declared(name) or self._in_memory(name)

    def crossing(self, nodes: Iterable[Node]) -> tuple[set[str], set[str]]:
        """``(inputs, outputs)``: the transient datasets that enter and leave the group ``nodes`` (one task)."""
        nodes = list(nodes)
        own = {node.name for node in nodes}
        produced: set[str] = set()
        consumed: set[str] = set()
        for node in nodes:
            produced.update(node.outputs)
            consumed.update(node.inputs)
        inputs: set[str] = set()
        outputs: set[str] = set()
        for name in produced | consumed:
            if not self.transient(name):
                continue
            if name not in produced:
                # a declared memory dataset no node of the job produces holds what the catalog gave it
                if not self._declared(name) or self._produced_in_job(name):
                    inputs.add(name)
            elif name not in consumed or self.read_outside(name, own):
                outputs.add(name)
        return inputs, outputs

    def kept_in_memory(self, nodes: Iterable[Node]) -> set[str]:
        """The transient datasets produced and consumed inside the group ``nodes``, which no other task reads:
        never stored, so gone when the task ends."""
        nodes = list(nodes)
        produced = {name for node in nodes for name in node.outputs}
        consumed = {name for node in nodes for name in node.inputs}
        _, outputs = self.crossing(nodes)
        return {name for name in produced & consumed if self.transient(name)} - outputs

    def _produced_in_job(self, name: str) -> bool:
        self._index()
        return name in self._produced  # type: ignore[operator]


def boundary_datasets(group: Pipeline, full: Any, is_declared: Callable[[str], bool]) -> tuple[set, set]:
    """``(inputs, outputs)``: the undeclared datasets that enter and leave ``group`` (a sub-pipeline of ``full``);
    :meth:`TaskBoundary.crossing` with every declared dataset stored by the catalog."""
    return TaskBoundary(full, is_declared).crossing(group.nodes)


def persist_undeclared(
    catalog: Any,
    group: Pipeline,
    full: Any,
    root: str | None,
    run_id: str,
) -> dict[str, str]:
    """Put a :class:`PersistedDataset` into ``catalog`` for every transient dataset crossing ``group``'s boundary
    (undeclared, or declared as a memory dataset: see :class:`TaskBoundary`).

    ``full`` is the job's pipeline, or a function returning it.

    Returns ``{dataset name: path}`` of what was replaced.

    Raises:
        PluginError: a dataset another task reads (or this task reads) crosses the boundary and ``root`` is empty.
    """
    boundary = TaskBoundary.of_catalog(full, catalog)
    inputs, outputs = boundary.crossing(group.nodes)
    crossing = sorted(inputs | outputs)
    if not crossing:
        return {}
    if not root:
        # without a root, outputs nobody reads stay in memory as plain Kedro would keep them; data another task
        # needs cannot
        own = {node.name for node in group.nodes}
        needed = sorted(inputs | {name for name in outputs if boundary.read_outside(name, own)})
        if needed:
            raise PluginError(
                f"dataset {needed[0]!r} passes between tasks but no storage root was given (run_config.root / --root)"
            )
        return {}
    placed: dict[str, str] = {}
    for name in crossing:
        path = dataset_path(root, run_id, name)
        if name in catalog:
            import logging

            logging.getLogger(__name__).warning(
                "dataset %r is declared as a memory dataset but passes between tasks: stored at %s", name, path
            )
        catalog[name] = PersistedDataset(path, name=name)
        placed[name] = path
    return placed


# ---------------------------------------------------------------------------------------------------------------
# one dataset version per job

#: where the job's save version is recorded, next to the job's stored datasets (never a ``.pkl`` dataset name)
VERSION_FILE = "save_version"


def job_version(root: str, run_id: str) -> str:
    """The save version of every versioned dataset of job ``run_id``: the same in every task of the job.

    Recorded at ``<root>/<run id>/save_version`` by the first task that needs it (a timestamp in Kedro's version
    format, to the microsecond, so versions still sort by time and two jobs never share one); the record is created exclusively (``O_EXCL`` locally, a GCS ``ifGenerationMatch=0``
    upload), so tasks starting at once agree on the first writer's value. A resumed run re-uses its record.
    """
    from datetime import datetime, timezone

    from kedro.io.core import VERSION_FORMAT

    path = f"{run_dir(root, run_id)}/{VERSION_FILE}"
    recorded = _read_version(path)
    if recorded:
        return recorded
    # Kedro's format with the microseconds its own timestamps drop: two jobs never share a version
    candidate = datetime.now(tz=timezone.utc).strftime(VERSION_FORMAT)
    if _create_exclusive(path, candidate.encode()) and _is_local(path):
        return candidate
    recorded = _read_version(path)  # read back on object stores: the record is what every task will read
    if not recorded:  # pragma: no cover - someone removed it between our two reads
        raise PluginError(f"cannot read the job's dataset version at {path}: remove it and run again")
    return recorded


def _read_version(path: str) -> str | None:
    try:
        if _is_local(path):
            with open(_local(path), "rb") as stream:
                text = stream.read()
        else:
            from ..storage import url_to_fs

            fs, remote = url_to_fs(path)
            text = fs.cat_file(remote)
    except FileNotFoundError:
        return None
    return text.decode("utf-8", "replace").strip() or None


def _create_exclusive(path: str, payload: bytes) -> bool:
    """Write ``payload`` at ``path`` unless something is there already; False when another writer was first."""
    if not _is_local(path):
        from ..storage import url_to_fs

        fs, remote = url_to_fs(path)
        try:
            fs.pipe_file(remote, payload, mode="create")
        except (FileExistsError, OSError) as exc:
            if isinstance(exc, FileExistsError) or fs.exists(remote):
                return False
            raise
        return True
    target = _local(path)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    temp = f"{target}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    with open_new(temp) as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(temp, target)  # atomic and exclusive: the record appears complete, or not at all
    except FileExistsError:
        return False
    finally:
        os.unlink(temp)
    return True


def pin_versions(catalog: Any, group: Pipeline, version: Callable[[], str]) -> dict[str, str]:
    """Make the versioned datasets of ``group`` save with the job's version and load the job's own writes.

    Outputs save (and, inside the task, load) ``version()``; an input loads ``version()`` when that version exists
    — a task of this job wrote it — and otherwise Kedro's "latest", as a dataset no node of this job produces (a
    model trained by an earlier job) always is. ``version`` is only called when the task has a versioned dataset.

    Returns ``{dataset name: version}`` of the pinned datasets.
    """
    from kedro.io.core import Version

    from ..kedro_compat import dataset_version, is_versioned, pin_version

    produced = set(group.all_outputs())
    pinned: dict[str, str] = {}
    for name in sorted(group.datasets()):
        if _is_parameter(name) or name not in catalog:
            continue
        dataset = catalog.get(name) if hasattr(catalog, "get") else catalog[name]
        if not is_versioned(dataset):
            continue
        job = version()
        previous = dataset_version(dataset)
        pin_version(dataset, Version(job, job))
        if name in produced or _safe_exists(dataset):
            pinned[name] = job
        else:
            pin_version(dataset, previous)
    return pinned


def _safe_exists(dataset: Any) -> bool:
    try:
        return bool(dataset.exists())
    except Exception:
        return False


def clear_version(dataset: Any, version: str) -> None:
    """Remove what an earlier attempt of this job saved at ``version`` (a retried task, a resumed run): Kedro
    refuses to save a version that exists, and that data came from this very job."""
    from ..kedro_compat import remove_version

    remove_version(dataset, version)


__all__ = [
    "PersistedDataset",
    "TaskBoundary",
    "boundary_datasets",
    "dataset_path",
    "file_name",
    "held_in_memory",
    "job_version",
    "persist_undeclared",
    "pin_versions",
    "run_dir",
    "sweep_temp_files",
]
