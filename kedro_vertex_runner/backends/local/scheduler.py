"""The local backend's scheduler: :func:`run_spec` runs a compiled spec's tasks as processes (at most
``max_workers`` at once, retries, time limits, Ctrl-C) and waits for the run to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import PluginError
from ...pipeline_spec import pipeline_name as spec_pipeline_name
from ...task.contract import TASK_REPORT_ENV, TaskReport, _number
from ...task.entrypoint import LAUNCHER_PID_ENV, TIMEOUT_EXIT_CODE
from ...values import check_run_id
from ..base import SilentReporter
from .display import (
    _Display,
    _report,
)
from .plan import (
    _FINAL_STATUS_MARK,
    _POSIX,
    CANCELLED,
    FAILED,
    MAX_LOCAL_BACKOFF,
    PENDING,
    RETRYING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    TERMINAL_STATES,
    LocalRunResult,
    _cpu_count,
    _handle,
    _keep_nodes,
    _load_spec,
    _mark_earlier,
    _plan,
    _Task,
    backoff_seconds,
    final_status,
)
from .storage import (
    _RecordWriter,
    _Storage,
)

if TYPE_CHECKING:
    from ..base import Reporter
    from .warm import WarmProcess, Zygote

#: Seconds a task's processes get to exit after SIGTERM (timeout, Ctrl-C) before they are killed.
KILL_GRACE = 3.0
_POLL_INTERVAL = 0.05


# ----------------------------------------------------------------------------------------------------------------
# public entry point


def run_spec(
    spec: Mapping[str, Any] | str | Path,
    *,
    project_dir: str | Path,
    root: str,
    run_id: str | None = None,
    max_workers: int | None = None,
    job_name: str | None = None,
    parameter_values: Mapping[str, Any] | None = None,
    extra_env: Mapping[str, str] | None = None,
    reporter: Reporter | None = None,
    max_backoff: float = MAX_LOCAL_BACKOFF,
    fail_fast: bool = False,
    warm_start: bool | None = None,
    record: Mapping[str, Any] | None = None,
    earlier: Mapping[str, Collection[str]] | None = None,
    resume_nodes: Mapping[str, Collection[str]] | None = None,
) -> LocalRunResult:
    """Run every task of ``spec`` as a local process and wait for the run to end.

    The container image is ignored: tasks run with this interpreter (``python`` at the start of a command becomes
    :data:`sys.executable`) and the packages installed next to it, in ``project_dir``.

    Args:
        spec: a PipelineSpec dict, or the path of its JSON file.
        project_dir: the Kedro project; every task starts there.
        root: the job's storage root: a local folder (relative to ``project_dir``) or an fsspec URL such as
            ``gs://bucket/runs``. The run's data and logs go to ``<root>/<run id>/``.
        run_id: the job's id (``{{$.pipeline_job_uuid}}``); a new UUID when not given.
        max_workers: tasks run at once; default: the number of CPUs available.
        job_name: ``{{$.pipeline_job_name}}``; default: ``<pipeline name>-<run id>``.
        parameter_values: pipeline parameters overriding the spec's defaults.
        extra_env: variables added to every task's environment (after the spec's own).
        reporter: who tells the user (each task's state changes, the table of tasks, the report); nobody when None.
        max_backoff: longest wait, in seconds, between attempts of a failing task.
        fail_fast: ``run_config.failure_policy: fast``: once a task has failed, start no further task (running
            ones finish; the exit handler still runs), as Vertex AI's PIPELINE_FAILURE_POLICY_FAIL_FAST does.
        warm_start: fork entrypoint tasks from a process that has preloaded the project (see :mod:`.warm`);
            default: on unless ``KEDRO_VERTEX_WARM_START`` is ``0``/``false``; always off without ``fork``.
        record: the ``kedro run`` options that define the run, kept in ``<root>/<run id>/run.json`` with the spec
            and every task's state (see :func:`read_run_record`), for resuming the run.
        earlier: tasks (name: nodes) that succeeded in an earlier run of this run id (a resumed run): they do not
            run again, unless a task they depend on runs (their stored outputs are read), and are shown as
            ``SUCCEEDED (earlier run)``.
        resume_nodes: failed tasks of that earlier run (name: nodes) that run only these of their nodes: the
            failed node and what follows it in the task (what ran before it stored its outputs).

    Returns:
        the run's :class:`LocalRunResult` when every task succeeded.

    Raises:
        PluginError: the spec or a parameter is invalid, or a folder cannot be written.
        LocalRunFailed: some task failed (its log tail has been reported).
        KeyboardInterrupt: after Ctrl-C has stopped every running task; nothing more was started.
    """
    reporter = reporter if reporter is not None else SilentReporter()
    spec = _load_spec(spec)
    project = Path(project_dir).resolve()
    max_workers = _check_max_workers(max_workers)
    run_id = str(run_id) if run_id else str(uuid.uuid4())
    check_run_id(run_id)
    if job_name is None:
        pipeline_name = spec_pipeline_name(spec, "pipeline")
        job_name = f"{pipeline_name}-{run_id}"[:128]

    held = _Held(_Storage(str(root), run_id, project))
    storage = held.storage
    try:
        tasks = _plan_tasks(spec, storage, run_id, job_name, parameter_values, extra_env)
        result = LocalRunResult(run_id=run_id, root=storage.root, run_dir=storage.run_dir)
        result.tasks = {name: task.result for name, task in tasks.items()}
        display = _Display(reporter, tasks, _handle(run_id))
        held.previous_sigterm = _sigterm_as_interrupt()
        storage.prepare()
        held.writer = _start_record(spec, tasks, storage, result, display, reporter, record, earlier, resume_nodes)
        from . import warm

        held.scheduler = _Scheduler(
            tasks,
            project,
            storage,
            display,
            max_workers,
            max_backoff,
            fail_fast=fail_fast,
            warm_start=warm.enabled(warm_start),
            on_task_end=held.writer.write,
        )
        held.scheduler.run()
        held.scheduler.close()
        warning = storage.finish()
        if warning:
            display.warn(warning)
        return _report(result, storage, display)
    finally:
        held.release()


def _check_max_workers(max_workers: int | None) -> int:
    """``max_workers`` as given, or the number of CPUs available; anything but a whole number ≥ 1 is refused."""
    if max_workers is None:
        max_workers = _cpu_count()
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise PluginError(f"max_workers={max_workers!r}: expected a whole number ≥ 1")
    return max_workers


def _plan_tasks(
    spec: Mapping[str, Any],
    storage: _Storage,
    run_id: str,
    job_name: str,
    parameter_values: Mapping[str, Any] | None,
    extra_env: Mapping[str, str] | None,
) -> dict[str, _Task]:
    """The spec's tasks in topological order, each with its command, its environment and the file in the run's
    storage where it reports its state."""
    tasks = _plan(
        spec,
        run_id=run_id,
        job_name=job_name,
        pipeline_root=storage.root,
        parameter_values=dict(parameter_values or {}),
        extra_env=dict(extra_env or {}),
        outputs_dir=str(storage.logs_dir),
        # local paths, so each task's artifact pointer files land in the run's folder (for a remote root: beside
        # the staged logs), never under /gcs
        artifacts_dir=str(storage.logs_dir / "artifacts") if storage.remote else f"{storage.run_dir}/artifacts",
    )
    for task in tasks.values():
        task.env[TASK_REPORT_ENV] = str(storage.report_path(task.name))
    return tasks


def _start_record(
    spec: Mapping[str, Any],
    tasks: dict[str, _Task],
    storage: _Storage,
    result: LocalRunResult,
    display: _Display,
    reporter: Reporter,
    record: Mapping[str, Any] | None,
    earlier: Mapping[str, Collection[str]] | None,
    resume_nodes: Mapping[str, Collection[str]] | None,
) -> _RecordWriter:
    """Apply a resume and write the run record before any task starts. The record keeps every task's nodes as
    the spec plans them; then tasks that succeeded in an earlier run of this run id count as done, and a failed
    one runs only from its failed node."""
    planned = {name: list(task.nodes) for name, task in tasks.items()}  # recorded: the spec's, never narrowed
    _mark_earlier(tasks, earlier or {}, display)
    _keep_nodes(tasks, resume_nodes or {})
    record_writer = _RecordWriter(storage, spec, dict(record or {}), result, planned, reporter)
    record_writer.write(first=True)
    return record_writer


class _Held:
    """What a local run has set up so far, so that :meth:`release` undoes it however the run ends."""

    def __init__(self, storage: _Storage):
        self.storage = storage
        self.previous_sigterm: Any = _NOT_INSTALLED
        self.scheduler: _Scheduler | None = None
        self.writer: _RecordWriter | None = None

    def release(self) -> None:
        """Stop the scheduler's warm-start process, write the run record a last time and the run report from it,
        put back SIGTERM's previous handler, then close the storage (its lock, its staged logs)."""
        storage = self.storage
        if self.scheduler is not None:
            self.scheduler.close()
        if self.writer is not None:
            self.writer.write(last=True)
            from ...pictures import write_run_report

            write_run_report(
                json.loads(self.writer.payload()),
                storage.run_dir,
                storage.logs_dir,
                storage.remote,
                storage._upload_error,
            )
        if self.previous_sigterm is not _NOT_INSTALLED:
            signal.signal(signal.SIGTERM, self.previous_sigterm)
        storage.close()


_NOT_INSTALLED = object()


def _sigterm_as_interrupt() -> Any:
    """Treat SIGTERM (a CI job cancelled, ``kill``) like Ctrl-C while tasks run.

    Tasks live in their own process groups, so without this they would outlive a terminated runner.
    """
    if not _POSIX or threading.current_thread() is not threading.main_thread():
        return _NOT_INSTALLED

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


# ----------------------------------------------------------------------------------------------------------------
# the scheduler: a single thread polling child processes


class _Scheduler:
    def __init__(
        self,
        tasks: dict[str, _Task],
        project_dir: Path,
        storage: _Storage,
        display: _Display,
        max_workers: int,
        max_backoff: float,
        fail_fast: bool = False,
        warm_start: bool = False,
        on_task_end: Any = None,
    ):
        self.on_task_end = on_task_end  # called once a task has succeeded or failed for good (the run record)
        self.fail_fast = fail_fast
        self.tasks = tasks
        self.project_dir = project_dir
        self.storage = storage
        self.display = display
        self.max_workers = max_workers
        self.max_backoff = max_backoff
        self.running: list[_Task] = []
        self.warm_start = warm_start
        self._zygote: Zygote | None = None
        self._news = 0  # the zygote's message count when the scheduler last looked

    def close(self) -> None:
        """Stop the warm-start process (if any), then remove what interrupted writes left in the run folder."""
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None
        from ...task.persistence import sweep_temp_files

        sweep_temp_files(self.storage.run_dir)

    def run(self) -> None:
        try:
            with self.display:
                while True:
                    now = time.monotonic()
                    self._reap(now)
                    self._start_ready(now)
                    if not self.running and all(t.result.state in TERMINAL_STATES for t in self.tasks.values()):
                        break
                    self.display.refresh()
                    if self._zygote is not None:  # woken as soon as a warm task has exited
                        self._news = self._zygote.wait_for_news(self._news, _POLL_INTERVAL)
                    else:
                        time.sleep(_POLL_INTERVAL)
                self.display.refresh(force=True)
        except KeyboardInterrupt:
            self._interrupt()
            raise
        finally:
            for task in self.running:  # only left here after an unexpected error
                _signal_group(task.process, signal.SIGKILL if _POSIX else signal.SIGTERM)

    # -- starting ---------------------------------------------------------------------------------------------

    def _start_ready(self, now: float) -> None:
        failed = next((t for t in self.tasks.values() if t.result.state == FAILED), None) if self.fail_fast else None
        for task in self.tasks.values():
            state = task.result.state
            if state == RETRYING and now >= task.retry_at and len(self.running) < self.max_workers:
                self._start(task)
            elif state == PENDING:
                if failed is not None and not task.run_always:
                    task.result.state = SKIPPED
                    task.result.reason = f"failure_policy fast: {failed.name} failed"
                    self.display.event(task, f"SKIPPED ({task.result.reason})")
                    continue
                deps = [self.tasks[name] for name in task.deps]
                if any(dep.result.state not in TERMINAL_STATES for dep in deps):
                    continue
                blocked = [dep for dep in deps if dep.result.state != SUCCEEDED]
                if blocked and not task.run_always:
                    task.result.state = SKIPPED
                    task.result.reason = f"{blocked[0].name} {blocked[0].result.state.lower()}"
                    self.display.event(task, f"SKIPPED ({task.result.reason})")
                elif len(self.running) < self.max_workers:
                    self._start(task)

    def _with_final_status(self, task: _Task) -> None:
        """Put the guarded DAG's outcome into an exit task's arguments, now that it is known."""
        if task.final_status_of is None:
            return
        producer, members = task.final_status_of
        status = final_status(producer, [self.tasks[name].result for name in members], task.job_name)
        text = json.dumps(status, separators=(",", ":"), ensure_ascii=False)
        mark = _FINAL_STATUS_MARK + producer
        task.argv = [part.replace(mark, text) for part in task.argv]

    def _start(self, task: _Task) -> None:
        self._with_final_status(task)
        result = task.result
        result.attempts += 1
        result.state = RUNNING
        result.log = self.storage.location(task.name)
        task.timed_out, task.kill_at, task.clock = False, None, None
        task.started = time.monotonic()
        result.started_at = result.started_at or time.time()
        log = self.storage.open_log(task.name)  # closed when the attempt ends
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        header = f"==> {stamp} task {task.label}, attempt {result.attempts} of {task.max_retries + 1}\n"
        log.write(header.encode())
        log.flush()
        task.log_file = log
        attempt = f" (attempt {result.attempts} of {task.max_retries + 1})" if result.attempts > 1 else ""
        try:
            task.process = self._start_warm(task) or subprocess.Popen(
                task.argv,
                cwd=self.project_dir,
                env={**task.env, LAUNCHER_PID_ENV: str(os.getpid())},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=_POSIX,
            )
        except OSError as exc:
            log.write(f"could not start {task.argv[0]}: {exc}\n".encode())
            task.process = None
            self.display.event(task, f"RUNNING{attempt}")
            self._attempt_ended(task, None, f"could not start {task.argv[0]}: {exc.strerror or exc}")
            return
        self.running.append(task)
        self.display.event(task, f"RUNNING{attempt}")

    def _start_warm(self, task: _Task) -> WarmProcess | None:
        """Fork ``task`` from the warm-start process if it runs the entrypoint; None: start it from nothing."""
        from . import warm

        args = warm.entrypoint_args(task.argv) if self.warm_start and task.warm else None
        if args is None:
            return None
        try:
            if self._zygote is None:
                self._zygote = warm.take(self.project_dir) or warm.Zygote(
                    self.project_dir, task.env, self.storage.remote
                )
                self._zygote.sweep_on_exit(self.storage.run_dir)
            return self._zygote.start(args, task.env, self.project_dir, self.storage.local_log(task.name))
        except OSError as exc:
            self.warm_start = False
            self.display.warn(f"Warm start unavailable ({exc}): starting the remaining tasks as fresh processes")
            return None

    # -- watching ---------------------------------------------------------------------------------------------

    def _reap(self, now: float) -> None:
        for task in list(self.running):
            assert task.process is not None
            code = task.process.poll()
            if code is None:
                if task.process.pid is None:
                    continue  # a warm task not forked yet (the warm-start process is still preloading)
                if task.clock is None:
                    task.clock = now
                task.tree.track(task.process.pid)
                if task.timeout is not None and not task.timed_out and now - task.clock >= task.timeout:
                    task.timed_out = True
                    task.kill_at = now + KILL_GRACE
                    _signal_group(task.process, signal.SIGTERM)
                elif task.kill_at is not None and now >= task.kill_at:
                    _signal_group(task.process, signal.SIGKILL if _POSIX else signal.SIGTERM)
                    task.kill_at = None
                continue
            # whatever the task left running in its process group goes too, as with a container, and so does
            # whatever it started in a session of its own
            _signal_group(task.process, signal.SIGKILL if _POSIX else signal.SIGTERM)
            task.tree.kill_left()
            self.running.remove(task)
            reason: str | None
            if task.timed_out or (code == TIMEOUT_EXIT_CODE and task.timeout is not None):
                # the entrypoint's own watchdog may see the same --timeout expire first
                reason = f"timed out after {_number(task.timeout or 0.0)} s"
            elif code == 0:
                reason = self._ended_mid_node(task)
            elif getattr(task.process, "error", None):
                reason = str(task.process.error)  # type: ignore[union-attr]
            elif code < 0:
                reason = f"killed by {_signal_name(-code)}"
            else:
                reason = f"exit {code}"
            self._attempt_ended(task, code, reason)

    def _ended_mid_node(self, task: _Task) -> str | None:
        """Why a task that exited with 0 failed all the same: its report still names a node as running (the
        process ended inside that node without a word, e.g. a C extension's ``_exit(0)``), else None."""
        from ...task.contract import RUNNING as NODE_RUNNING

        report = TaskReport.read(self.storage.report_path(task.name))
        if report is None or report.state != NODE_RUNNING:
            return None
        return f"exit 0 while node {report.node!r} was running: a node must return or raise, not end its process"

    def _attempt_ended(self, task: _Task, code: int | None, reason: str | None) -> None:
        result = task.result
        now = time.monotonic()
        result.exit_code = code
        result.duration = now - task.started
        result.ended_at = time.time()
        if task.log_file is not None:
            if reason is not None:
                task.log_file.write(f"==> attempt {result.attempts} failed: {reason}\n".encode())
            task.log_file.close()
            task.log_file = None
        if reason is None:
            result.state, result.reason = SUCCEEDED, None
            self._publish(task)
            self.display.event(task, f"SUCCEEDED in {result.duration:.1f}s")
            return
        result.reason = reason
        if result.attempts <= task.max_retries:
            wait = backoff_seconds(
                task.backoff, task.backoff_factor, task.backoff_max, result.attempts, self.max_backoff
            )
            result.state = RETRYING
            task.retry_at = now + wait
            self.display.event(
                task,
                f"FAILED ({reason}), retrying in {wait:.1f}s (attempt {result.attempts + 1} of {task.max_retries + 1})",
            )
            return
        result.state = FAILED
        self._publish(task)
        self.display.event(task, f"FAILED ({reason})")

    def _publish(self, task: _Task) -> None:
        warning = self.storage.publish(task.name)
        if warning:
            self.display.warn(warning)
        if self.on_task_end is not None:
            self.on_task_end()

    # -- Ctrl-C -----------------------------------------------------------------------------------------------

    def _interrupt(self) -> None:
        """Stop every running task (SIGTERM, then SIGKILL after a grace period); start nothing more."""
        running = list(self.running)
        for task in running:
            _signal_group(task.process, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE
        try:
            while time.monotonic() < deadline and any(t.process.poll() is None for t in running):  # type: ignore[union-attr]
                time.sleep(_POLL_INTERVAL)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: kill at once
        for task in running:
            _signal_group(task.process, signal.SIGKILL if _POSIX else signal.SIGTERM)
            task.tree.kill_left()
            try:
                task.process.wait(timeout=5)  # type: ignore[union-attr]
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                pass
            if task.log_file is not None:
                task.log_file.write(b"==> interrupted (Ctrl-C)\n")
                task.log_file.close()
                task.log_file = None
        self.running.clear()
        for task in self.tasks.values():
            if task.result.state not in TERMINAL_STATES:
                was_running = task in running
                task.result.state = CANCELLED
                task.result.reason = "interrupted"
                if was_running:
                    self.display.event(task, "CANCELLED (interrupted)")
        self.display.stop()
        self.display.warn(
            f"Interrupted: stopped {len(running)} running task(s); nothing else was started. "
            f"Logs in {self.storage.logs_location}/"
        )


def _signal_group(process: subprocess.Popen[bytes] | WarmProcess | None, sig: int) -> None:
    if process is None:
        return
    if not isinstance(process, subprocess.Popen):
        process.signal_group(sig)
        return
    try:
        if _POSIX:
            os.killpg(process.pid, sig)
        elif process.poll() is None:
            process.send_signal(sig)
    except (ProcessLookupError, PermissionError, OSError):
        pass


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
