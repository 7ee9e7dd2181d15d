"""What a local run shows while it runs and when it ends: the live table on a terminal (one line per state change
elsewhere), and the report of the run: a summary, or each failed task's log tail and the one-line error."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...task_contract import TASK_REPORT_ENV, TaskReport
from .plan import (
    EARLIER_RUN,
    FAILED,
    RETRYING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    TERMINAL_STATES,
    LocalRunFailed,
    LocalRunResult,
    _Task,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from .storage import (
        _Storage,
    )

#: Lines of a failed task's log printed when the run ends.
LOG_TAIL_LINES = 20
# Live-table rows shown in full up to this many tasks; bigger jobs show only active rows plus counts
_FULL_TABLE_ROWS = 25


# ----------------------------------------------------------------------------------------------------------------
# status display and the final report


class _Display:
    """A rich live table on a terminal; otherwise one timestamped line per state change (CI logs, pipes)."""

    def __init__(self, console: Console, tasks: dict[str, _Task]):
        self.console = console
        self.tasks = tasks
        self.live_mode = console.is_terminal and not console.is_dumb_terminal
        self._live: Any = None
        self._dirty = True
        self._last_refresh = 0.0

    def __enter__(self) -> _Display:
        if self.live_mode:
            from rich.live import Live

            self._live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False)
            self._live.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self._table(), refresh=True)
            self._live.stop()
            self._live = None

    def event(self, task: _Task, text: str) -> None:
        self._dirty = True
        if not self.live_mode:
            stamp = datetime.now().strftime("%H:%M:%S")
            self.console.print(f"[{stamp}] {task.label}: {text}", markup=False, highlight=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True, style="yellow")

    def refresh(self, force: bool = False) -> None:
        if self._live is None:
            return
        now = time.monotonic()
        if force or self._dirty or now - self._last_refresh > 0.5:
            self._live.update(self._table())
            self._dirty = False
            self._last_refresh = now

    def _table(self) -> RenderableType:
        from rich.table import Table

        states = [task.result.state for task in self.tasks.values()]
        counts = {state: states.count(state) for state in dict.fromkeys(states)}
        caption = ", ".join(f"{n} {state.lower()}" for state, n in counts.items())
        table = Table(caption=caption, caption_justify="left")
        for column in ("task", "nodes", "state", "time", "attempt"):
            table.add_column(column, no_wrap=column != "nodes")
        shown = list(self.tasks.values())
        if len(shown) > _FULL_TABLE_ROWS:
            shown = [t for t in shown if t.result.state in {RUNNING, RETRYING, FAILED}]
        now = time.monotonic()
        styles = {SUCCEEDED: "green", FAILED: "red", RUNNING: "cyan", RETRYING: "yellow", SKIPPED: "dim"}
        for task in shown:
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
            table.add_row(
                task.name,
                ", ".join(task.nodes),
                f"[{styles.get(result.state, '')}]{_escape(state)}[/]" if styles.get(result.state) else _escape(state),
                elapsed,
                str(result.attempts or ""),
            )
        return table


def _running_node(task: _Task) -> str | None:
    """The node the task's report names as running (None before its first node, or without a report)."""
    path = task.env.get(TASK_REPORT_ENV)
    report = TaskReport.read(path) if path else None
    return report.node if report is not None and report.state == "running" else None  # TaskReport's state


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


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
    console = display.console
    failed = [task for task in result.tasks.values() if task.state == FAILED]
    succeeded = result.count(SUCCEEDED)
    if not failed:
        noun = "task" if succeeded == 1 else "tasks"
        earlier = sum(task.state == SUCCEEDED and task.reason == EARLIER_RUN for task in result.tasks.values())
        then = f" ({earlier} of them in an earlier run)" if earlier else ""
        console.print(
            f"Run {result.run_id} finished: {succeeded} {noun} succeeded{then}; intermediate data in {result.run_dir}/; "
            f"logs in {storage.logs_location}/",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return result
    last_lines: dict[str, str] = {}
    reasons: dict[str, str | None] = {}
    for task in failed:
        tail = _tail(storage.local_log(task.name))
        nodes = ", ".join(task.nodes)
        noun = "node" if len(task.nodes) == 1 else "nodes"
        console.print(
            f"Task {task.name} ({noun} {nodes}) failed ({task.reason}); last {len(tail)} lines of {task.log}:",
            markup=False,
            highlight=False,
            soft_wrap=True,
            style="red",
        )
        for line in tail:
            console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
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
