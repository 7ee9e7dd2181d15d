"""Where a local run keeps its things: ``<root>/<run id>/`` (a local folder or a remote root, logs uploaded in the
background), the run lock, and the run record (``run.json``) a resumed run reads."""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from ...errors import PluginError
from ...files import replace_file
from ...values import check_run_id
from ..base import Reporter
from .plan import (
    _POSIX,
    LocalRunResult,
)

#: The run record in ``<root>/<run id>/``: the run's options, its spec and every task's state (resume=).
RUN_RECORD = "run.json"


def read_run_record(root: str, project_dir: str | Path, run_id: str) -> dict[str, Any] | None:
    """The run record (``<root>/<run id>/run.json``) of an earlier run, or None when there is none.

    It holds ``options`` (the ``kedro run`` options that defined the run: pipelines, env, filters, ``--params``),
    ``spec`` (the compiled PipelineSpec the run ran) and ``tasks`` (each task's nodes and last state).

    Raises:
        PluginError: the record exists but cannot be read or is not a run record.
    """
    check_run_id(run_id)
    if "://" in root:
        from ...storage import url_to_fs

        fs, path = url_to_fs(f"{root.rstrip('/')}/{run_id}/{RUN_RECORD}")
        where = f"{root.rstrip('/')}/{run_id}/{RUN_RECORD}"
        try:
            data = fs.cat_file(path)
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise PluginError(f"cannot read {where}: {type(exc).__name__}: {exc}") from None
    else:
        base = Path(root).expanduser()
        file = (base if base.is_absolute() else Path(project_dir) / base) / run_id / RUN_RECORD
        where = str(file)
        try:
            with os.fdopen(os.open(file, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)), "rb") as stream:
                data = stream.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise PluginError(f"cannot read {where}: {exc.strerror or exc}") from None
    try:
        loaded = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        loaded = None
    if not (
        isinstance(loaded, dict)
        and isinstance(loaded.get("options"), dict)
        and isinstance(loaded.get("spec"), dict)
        and isinstance(loaded.get("tasks"), dict)
    ):
        raise PluginError(f"{where} is not a run record (expected a JSON object with options, spec and tasks)")
    return loaded


@dataclass
class _RecordWriter:
    """Keeps ``<root>/<run id>/run.json`` (:data:`RUN_RECORD`) up to date: written when the run starts, again each
    time a task has succeeded or failed for good (a local root), and when the run ends.

    A local record is replaced atomically (a new file created next to it, never through a link, with the
    process's umask, then renamed onto it); for a remote root it is uploaded when the run starts and ends."""

    storage: _Storage
    spec: Mapping[str, Any]
    options: dict[str, Any]
    result: LocalRunResult
    nodes: dict[str, list[str]]
    reporter: Reporter
    warning: str | None = None

    def payload(self) -> bytes:
        tasks = {
            name: {
                "nodes": self.nodes[name],
                "state": task.state,
                "failed_node": task.failed_node,
                **{key: getattr(task, key) for key in ("attempts", "reason", "started_at", "ended_at")},
            }
            for name, task in self.result.tasks.items()
        }
        record = {"run_id": self.result.run_id, "options": self.options, "tasks": tasks, "spec": self.spec}
        return json.dumps(record, indent=1, default=str).encode("utf-8")

    def write(self, first: bool = False, last: bool = False) -> None:
        if self.storage.remote and not (first or last):
            return
        try:
            self.storage.write_record(self.payload())
        except Exception as exc:
            problem = f"{exc.strerror or exc}" if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
            where = f"{self.storage.run_dir}/{RUN_RECORD}"
            if first and not self.storage.remote:
                raise PluginError(f"cannot write the run record {where}: {problem}") from None
            if self.warning is None:
                self.warning = f"Could not write the run record {where} ({problem}): this run cannot be resumed"
                self.reporter.notice(self.warning)


# ----------------------------------------------------------------------------------------------------------------
# where logs (and the run's data) live


class _Storage:
    """``<root>/<run id>/``: its lock, and its ``logs/`` — written in place for a local root, staged and uploaded
    for a remote one.

    **One job per run id.** :meth:`prepare` takes an exclusive ``flock`` on ``<root>/<run id>/.lock`` (for a remote
    root, on a file named after the run directory in the machine's temp folder) and writes the holder's pid, host
    and start time into it. A second run with the same run id is refused with one line naming the holder, before
    any task starts. The kernel drops the lock when the holder exits, however it dies, so a lock left by a dead
    process is simply taken over, and resuming a finished or failed run re-uses its data but never its lock.

    **Nothing outside the run directory.** Log files are opened with ``O_NOFOLLOW`` (a link planted at a log's name
    is refused, never written through), a ``logs`` folder that is a link is refused, and a task name must be one
    plain path segment.
    """

    LOCK_FILE = ".lock"

    def __init__(self, root: str, run_id: str, project_dir: Path):
        self.run_id = run_id
        self.remote = "://" in root
        if self.remote:
            self.root = root.rstrip("/")
            # staged in the user's cache folder, not a temp folder: if storage fails they stay where we say they are
            self._staging: Path | None = _staging_folder(run_id)
            self.logs_dir = self._staging
        else:
            path = Path(root).expanduser()
            self.root = str(path if path.is_absolute() else (project_dir / path).resolve())
            self._staging = None
            self.logs_dir = Path(self.root) / run_id / "logs"
        self.run_dir = f"{self.root}/{run_id}"
        self._remote_logs = f"{self.run_dir}/logs"
        # the tasks' reports (task.contract.TaskReport): private to this run, gone when it ends
        self._reports = tempfile.TemporaryDirectory(prefix="vertex-reports-")
        self._lock_fd: int | None = None
        self._uploads: queue.Queue[str | None] | None = None
        self._upload_thread: threading.Thread | None = None
        self._upload_error: str | None = None
        self._warned = False
        self._keep_local = False

    @property
    def logs_location(self) -> str:
        """Where the logs are: the run's ``logs/`` folder, or the local copies once a remote root failed."""
        return str(self.logs_dir) if self._keep_local else self._remote_logs

    def prepare(self) -> None:
        """Lock the run directory for this run (see the class docstring) and create the log folder.

        Raises:
            PluginError: another run holds the run id, a folder cannot be created or is a link, or a remote root's
                storage package (s3fs for ``s3://``) is not installed.
        """
        if self.remote:
            from ...storage import require

            require(self.root)
        try:
            self.logs_dir.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PluginError(f"cannot create the run folder {self.logs_dir.parent}: {exc.strerror or exc}") from None
        self._lock()
        if self.logs_dir.is_symlink():
            raise PluginError(
                f"{self.logs_dir} is a symbolic link: task logs are only written inside the run folder; remove it"
            )
        try:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PluginError(f"cannot create the log folder {self.logs_dir}: {exc.strerror or exc}") from None

    def _lock_path(self) -> Path:
        if not self.remote:
            return Path(self.run_dir) / self.LOCK_FILE
        import hashlib

        digest = hashlib.sha256(self.run_dir.encode("utf-8")).hexdigest()[:24]
        folder = Path(tempfile.gettempdir()) / "kedro-vertex-runs"
        folder.mkdir(mode=0o700, exist_ok=True)
        return folder / f"{digest}.lock"

    def _lock(self) -> None:
        if not _POSIX:  # pragma: no cover - flock is POSIX
            return
        import fcntl
        import socket

        path = self._lock_path()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)  # the umask decides
        except OSError as exc:
            raise PluginError(f"cannot create the run lock {path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise PluginError(
                f"run id {self.run_id!r} is in use by another run ({holder}; lock {path}): wait for it to end, or "
                "start this run with another run_id"
            ) from None
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {stamp}\n".encode(), 0)
        self._lock_fd = fd

    def write_record(self, data: bytes) -> None:
        """Replace ``<run dir>/run.json`` with ``data``: atomically and never through a link (local root)."""
        if self.remote:
            fs = self._filesystem()
            fs.pipe_file(fs._strip_protocol(f"{self.run_dir}/{RUN_RECORD}"), data)
            return
        # a link at the record's name is replaced, never written through; a kill leaves a temporary file, swept
        replace_file(Path(self.run_dir) / RUN_RECORD, data)

    def local_log(self, task: str) -> Path:
        if not task or task in {".", ".."} or "/" in task or "\\" in task or "\0" in task:
            raise PluginError(f"task name {task!r} cannot name a log file: use letters, digits and '-'")
        return self.logs_dir / f"{task}.log"

    def report_path(self, task: str) -> Path:
        return Path(self._reports.name) / f"{task}.json"

    def open_log(self, task: str) -> IO[bytes]:
        """The task's log, opened for appending; never through a symbolic link."""
        path = self.local_log(task)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            return os.fdopen(os.open(path, flags, 0o666), "ab")
        except OSError as exc:
            if path.is_symlink():
                raise PluginError(
                    f"{path} is a symbolic link: task logs are never written through a link; remove it"
                ) from None
            raise PluginError(f"cannot write the task log {path}: {exc.strerror or exc}") from None

    def location(self, task: str) -> str:
        return f"{self.logs_location}/{task}.log" if self.remote else str(self.local_log(task))

    def publish(self, task: str) -> str | None:
        """Queue a finished task's log for upload to a remote root (never waits for storage).

        Returns the one warning that storage could not be reached, the first time it is known (the run goes on).
        """
        if self.remote and self.local_log(task).exists():
            self._uploader().put(task)
        return self._new_warning()

    def finish(self, timeout: float | None = None) -> str | None:
        """Wait (at most ``timeout``, default :data:`LOG_UPLOAD_TIMEOUT` per log left) for the queued uploads."""
        if self._uploads is not None:
            self._uploads.put(None)
            assert self._upload_thread is not None
            self._upload_thread.join(LOG_UPLOAD_TIMEOUT * (self._uploads.qsize() + 1) if timeout is None else timeout)
            if self._upload_thread.is_alive() and self._upload_error is None:
                self._upload_error = f"no answer in {LOG_UPLOAD_TIMEOUT:g} s"
        return self._new_warning()

    def _uploader(self) -> queue.Queue[str | None]:
        if self._uploads is None:
            self._uploads = queue.Queue()
            self._upload_thread = threading.Thread(target=self._upload_all, name="kedro-vertex-logs", daemon=True)
            self._upload_thread.start()
        return self._uploads

    def _upload_all(self) -> None:
        assert self._uploads is not None
        fs: Any = None
        quiet = _QuietStorageLogs()
        try:
            while (task := self._uploads.get()) is not None:
                if self._upload_error is not None:
                    continue  # unreachable: the warning has said so, the local copies stay
                try:
                    if fs is None:
                        fs = self._filesystem()
                    done = threading.Event()
                    failure: list[BaseException] = []
                    # a storage call cannot be cancelled: bound it by waiting for it in a helper thread
                    worker = threading.Thread(target=self._put, args=(fs, task, done, failure), daemon=True)
                    worker.start()
                    if not done.wait(LOG_UPLOAD_TIMEOUT):
                        raise TimeoutError(f"no answer in {LOG_UPLOAD_TIMEOUT:g} s")
                    if failure:
                        raise failure[0]
                except Exception as exc:  # a lost log must not fail the run
                    self._upload_error = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        finally:
            quiet.remove()

    def _filesystem(self) -> Any:
        from ...storage import url_to_fs

        options: dict[str, Any] = {"skip_instance_cache": True}
        if self.root.startswith(("gs://", "gcs://")):
            options["requests_timeout"] = LOG_UPLOAD_TIMEOUT  # gcsfs: no minute of retries per log
        return url_to_fs(self.root, **options)[0]

    def _put(self, fs: Any, task: str, done: threading.Event, failure: list[BaseException]) -> None:
        try:
            fs.put_file(str(self.local_log(task)), fs._strip_protocol(self.location(task)))
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    def _new_warning(self) -> str | None:
        if self._upload_error is None or self._warned:
            return None
        self._warned = True
        self._keep_local = True
        return (
            f"Storage unreachable: could not upload task logs to {self._remote_logs}/ ({self._upload_error}); "
            f"the remaining uploads are skipped and every log is kept in {self.logs_dir}/"
        )

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock; the file stays, with the last holder's details
            self._lock_fd = None
        if self._staging is not None and not self._keep_local:
            shutil.rmtree(self._staging, ignore_errors=True)
        self._reports.cleanup()


def _staging_folder(run_id: str) -> Path:
    """A new folder for a run's logs on their way to a remote root: under ``$XDG_CACHE_HOME`` (default
    ``~/.cache``) ``/kedro-vertex-runner/logs/``, kept when the upload fails, removed after a run that uploaded
    them."""
    from ...values import cache_dir

    base = cache_dir("logs")
    prefix = "".join(c if c.isalnum() or c in "-_." else "-" for c in run_id)[:80] + "-"
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    except OSError as exc:
        raise PluginError(f"cannot create a folder for the task logs in {base}: {exc.strerror or exc}") from None


#: Seconds one log upload may take before storage is taken as unreachable.
LOG_UPLOAD_TIMEOUT = 10.0


class _QuietStorageLogs(logging.Filter):
    """While logs upload, the storage libraries' own retry tracebacks stay out of the launcher's output: the
    launcher reports an unreachable storage once, in one line."""

    _LOGGERS = ("gcsfs", "fsspec", "google.auth", "urllib3")

    def __init__(self) -> None:
        super().__init__()
        for name in self._LOGGERS:
            logging.getLogger(name).addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        return False

    def remove(self) -> None:
        for name in self._LOGGERS:
            logging.getLogger(name).removeFilter(self)
