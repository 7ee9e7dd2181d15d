"""What a local run tells the user while it runs and when it ends, through the caller's Reporter: each task's state
changes and the table of every task, and the report of the run: a summary, or each failed task's log tail and the
one-line error."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...task.contract import TASK_REPORT_ENV, TaskReport
from ..base import JobHandle, TaskLog, TaskState
from .plan import (
    EARLIER_RUN,
    FAILED,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    TERMINAL_STATES,
    LocalRunFailed,
    LocalRunResult,
    _Task,
)

if TYPE_CHECKING:
    from ..base import Reporter
    from .storage import (
        _Storage,
    )

#: Lines of a failed task's log shown when the run ends.
LOG_TAIL_LINES = 20


# ----------------------------------------------------------------------------------------------------------------
# status display and the final report, through the caller's Reporter


class _Display:
    """The run's tasks as the caller's :class:`~kedro_vertex_runner.backends.base.Reporter` shows them: each state
    change as an event (a timestamped line where no live table shows it), and the table of every task
    (:meth:`refresh`, at most every half second unless something changed)."""

    def __init__(self, reporter: Reporter, tasks: dict[str, _Task], job: JobHandle):
        self.reporter = reporter
        self.tasks = tasks
        self.job = job
        self._dirty = True
        self._last_refresh = 0.0

    def __enter__(self) -> _Display:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self.refresh(force=True)

    def event(self, task: _Task, text: str) -> None:
        self._dirty = True
        self.reporter.task_event(self.job, task.label, text)

    def warn(self, text: str) -> None:
        self.reporter.notice(text)

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or self._dirty or now - self._last_refresh > 0.5:
            self.reporter.progress(self.job, self.rows(now), RUNNING)
            self._dirty = False
            self._last_refresh = now

    def rows(self, now: float | None = None) -> list[TaskState]:
        """Every task as a row: its nodes, its state with why (and the node it is at while it runs), how long it
        ran and how many attempts it took."""
        now = time.monotonic() if now is None else now
        rows = []
        for task in self.tasks.values():
            result = task.result
            if result.state == RUNNING:
                elapsed = f"{now - task.started:.0f}s"
            elif result.duration is not None and result.state in TERMINAL_STATES:
                elapsed = f"{result.duration:.1f}s"
            else:
                elapsed = ""
            state = result.state if not result.reason else f"{result.state} ({result.reason})"
            node = _running_node(task) if result.state == RUNNING else None
            if node:
                state = f"{state}: {node}"
            rows.append(
                TaskState(
                    task.name, result.state, nodes=task.nodes, detail=state, elapsed=elapsed, attempts=result.attempts
                )
            )
        return rows


def _running_node(task: _Task) -> str | None:
    """The node the task's report names as running (None before its first node, or without a report)."""
    path = task.env.get(TASK_REPORT_ENV)
    report = TaskReport.read(path) if path else None
    return report.node if report is not None and report.state == "running" else None  # TaskReport's state


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    found = text.splitlines()
    while found and found[-1].startswith("==> attempt"):  # our own footer says nothing the summary does not
        found.pop()
    return found[-lines:]


def _report(result: LocalRunResult, storage: _Storage, display: _Display) -> LocalRunResult:
    reporter = display.reporter
    failed = [task for task in result.tasks.values() if task.state == FAILED]
    succeeded = result.count(SUCCEEDED)
    if not failed:
        noun = "task" if succeeded == 1 else "tasks"
        earlier = sum(task.state == SUCCEEDED and task.reason == EARLIER_RUN for task in result.tasks.values())
        then = f" ({earlier} of them in an earlier run)" if earlier else ""
        reporter.info(
            f"Run {result.run_id} finished: {succeeded} {noun} succeeded{then}; intermediate data in {result.run_dir}/; "
            f"logs in {storage.logs_location}/"
        )
        return result
    last_lines: dict[str, str] = {}
    reasons: dict[str, str | None] = {}
    for task in failed:
        tail = _tail(storage.local_log(task.name))
        nodes = ", ".join(task.nodes)
        noun = "node" if len(task.nodes) == 1 else "nodes"
        title = f"Task {task.name} ({noun} {nodes}) failed ({task.reason}); last {len(tail)} lines of {task.log}:"
        reporter.task_log(TaskLog(task=task.name, lines=tail, source=task.log or "", state=FAILED, title=title))
        # the last line the task itself wrote (not our "attempt failed" footer) usually holds the exception
        own = [line for line in tail if line.strip() and not line.startswith("==> ")]
        last_lines[task.name] = own[-1].strip() if own else ""
        report = TaskReport.read(storage.report_path(task.name))
        task.failed_node = report.failed_node if report and report.failed_node in task.nodes else None
        reasons[task.name] = report.reason if report and task.failed_node else None
        task.missing_data = report.missing_data if report and task.failed_node else None
        if task.failed_node is None and len(task.nodes) == 1:
            task.failed_node = task.nodes[0]
    first = failed[0]
    detail = last_lines[first.name].removeprefix("Error: ")
    more = f" (and {len(failed) - 1} more failed task(s))" if len(failed) > 1 else ""
    counts = f"{succeeded} succeeded, {len(failed)} failed, {result.count(SKIPPED)} skipped"
    reason = reasons[first.name]
    if first.failed_node is not None and reason is not None:
        what = f"task {first.name} failed ({first.reason}): node {first.failed_node!r} failed: {reason}"
    elif first.failed_node is not None and len(first.nodes) > 1:
        # the task ended while this node ran, without a word (os._exit, a signal): its log may say more
        what = f"node {first.failed_node!r} (task {first.name}) failed ({first.reason})"
        what += f": {detail}" if detail else ""
    else:
        noun = "node" if len(first.nodes) == 1 else "nodes"
        what = f"{noun} {', '.join(first.nodes)} (task {first.name}) failed ({first.reason})"
        what += f": {detail}" if detail else ""
    message = f"run {result.run_id} failed: {what}{more}; {counts}; logs in {storage.logs_location}/"
    raise LocalRunFailed(message, result)
