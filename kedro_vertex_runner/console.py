"""What the user sees: the terminal side of the backends, for the ``kedro vertexai`` commands and ``VertexRunner``.

:class:`ConsoleReporter` is the :class:`~kedro_vertex_runner.backends.base.Reporter` on a terminal (a live table of
task states, plain lines when piped, questions only when someone can answer them), and the functions below are the
commands' work: pick the backend, call it, print what it returned (job and schedule tables, log tails, the UI
address).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from .backends import DEFAULT_BACKEND, backend_class, get_backend
from .backends.base import JobHandle, JobRequest, JobSummary, ScheduleRequest, ScheduleSummary, TaskLog
from .pipeline_spec import pipeline_name as spec_pipeline_name

if TYPE_CHECKING:
    from .backends.base import Backend, TaskState
    from .config import PluginConfig


# ------------------------------------------------------------------------------------------------------------------
# the reporter


#: a table of more tasks than this shows only the running, retrying and failed ones (and the counts)
FULL_TABLE_ROWS = 25
_COLOURS = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "cyan", "CANCELLED": "yellow"}
_TASK_COLOURS = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "cyan", "RETRYING": "yellow", "SKIPPED": "dim"}


class _Progress:
    """Live per-task states: a rich table on a terminal, one ``task: STATE`` line per change otherwise."""

    def __init__(self, job_id: str, reporter: ConsoleReporter) -> None:
        self.job_id = job_id
        self.reporter = reporter
        self.tty = reporter.tty
        self.seen: dict[str, str] = {}
        self.job_state = ""
        self.live: Any = None

    def __enter__(self) -> _Progress:
        if self.tty:
            from rich.live import Live

            self.live = Live(
                self._table([], "PENDING"), console=self.reporter.console, refresh_per_second=4, transient=False
            )
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None

    def _table(self, rows: Sequence[TaskState], state: str) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        if any(row.nodes for row in rows):
            return task_table(rows)
        table = Table()
        table.add_column("Task")
        table.add_column("State")
        with_errors = any(row.error for row in rows)
        if with_errors:
            table.add_column("Error", overflow="fold")
        for row in rows:
            colour = _COLOURS.get(row.state)
            cells = [row.name, f"[{colour}]{row.state}[/]" if colour else row.state]
            table.add_row(*cells, *([row.error] if with_errors else []))
        return Group(Text(f"job {self.job_id}: {state}"), table)

    def update(self, rows: Sequence[TaskState], state: str) -> None:
        if self.live is not None:
            self.live.update(self._table(rows, state))
            return
        if self.job_id in self.reporter.evented or any(row.nodes for row in rows):  # its task events say it
            return
        if state != self.job_state:
            self.reporter.echo(f"job {self.job_id}: {state}")
            self.job_state = state
        for row in rows:
            if self.seen.get(row.name) != row.state:
                self.reporter.echo(f"{row.name}: {row.state}")
                self.seen[row.name] = row.state


def task_table(rows: Sequence[TaskState]) -> Any:
    """The table of a job whose tasks carry their nodes (the local backend): task, nodes, state (with why, and the
    node it is at), time and attempts, and the count of each state below."""
    from rich.markup import escape
    from rich.table import Table

    states = [row.state for row in rows]
    counts = {state: states.count(state) for state in dict.fromkeys(states)}
    caption = ", ".join(f"{n} {state.lower()}" for state, n in counts.items())
    table = Table(caption=caption, caption_justify="left")
    for column in ("task", "nodes", "state", "time", "attempt"):
        table.add_column(column, no_wrap=column != "nodes")
    shown = list(rows)
    if len(shown) > FULL_TABLE_ROWS:
        shown = [row for row in shown if row.state in {"RUNNING", "RETRYING", "FAILED"}]
    for row in shown:
        text = escape(row.detail or row.state)
        style = _TASK_COLOURS.get(row.state)
        table.add_row(
            row.name,
            ", ".join(row.nodes),
            f"[{style}]{text}[/]" if style else text,
            row.elapsed,
            str(row.attempts or ""),
        )
    return table


class ConsoleReporter:
    """The :class:`~kedro_vertex_runner.backends.base.Reporter` of the CLI and the runner: news on stdout, warnings
    and the launcher's own notices on stderr; any line ends a live progress table first. Use it as a context
    manager (or call :meth:`close`) so a live table never outlives the job.

    ``console``: a rich console to write everything to instead (a file, a test's buffer); a live table is drawn
    only where it is a terminal."""

    def __init__(self, console: Any = None) -> None:
        self.console = console
        self.tty = (
            (console.is_terminal and not console.is_dumb_terminal) if console is not None else sys.stdout.isatty()
        )
        self.evented: set[str] = set()  # jobs whose task events are shown line by line
        self._progress: _Progress | None = None

    def __enter__(self) -> ConsoleReporter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def echo(self, text: str, err: bool = False) -> None:
        if self.console is None:
            click.echo(text, err=err)
        else:
            self.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()

    def info(self, text: str) -> None:
        self.close()
        self.echo(text)

    def warn(self, text: str) -> None:
        self.close()
        self.echo(f"Warning: {text}", err=True)

    def notice(self, text: str) -> None:
        self.close()
        self.echo(text, err=True)

    def progress(self, job: JobHandle, tasks: Sequence[TaskState], job_state: str) -> None:
        if self._progress is None or self._progress.job_id != job.job_id:
            self.close()
            self._progress = _Progress(job.job_id, self).__enter__()
        elif self._progress.live is None and self.tty:  # a line ended the table: draw it again below
            self._progress.__enter__()
        self._progress.update(tasks, job_state)

    def task_event(self, job: JobHandle, task: str, text: str) -> None:
        """A line ``[HH:MM:SS] task: text`` where no live table shows the change."""
        self.evented.add(job.job_id)
        if not self.tty:
            self.echo(f"[{datetime.now():%H:%M:%S}] {task}: {text}")

    def task_log(self, log: TaskLog) -> None:
        self.close()
        print_task_log(log, self.echo)

    def confirm(self, question: str) -> bool:
        """Ask only where someone can answer (stdin and stdout a terminal); otherwise no."""
        self.close()
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            return False
        try:
            return bool(click.confirm(question, default=False, err=True))
        except click.Abort:
            return False


# ------------------------------------------------------------------------------------------------------------------
# choosing the backend


def command_backend(config: PluginConfig, chosen: str | None = None) -> str:
    """The backend a ``kedro vertexai`` job command targets: ``--backend NAME``, else ``run_config.backend`` when
    it runs jobs elsewhere, else :data:`~kedro_vertex_runner.backends.DEFAULT_BACKEND`."""
    if chosen:
        return backend_class(chosen).name
    configured = config.run_config.backend
    return configured if backend_class(configured).remote_tasks else DEFAULT_BACKEND


def open_backend(config: PluginConfig, chosen: str | None = None, reporter: Any = None) -> Backend:
    name = command_backend(config, chosen)
    return get_backend(name, config.with_backend(name), reporter or ConsoleReporter())


# ------------------------------------------------------------------------------------------------------------------
# the commands' work


def create_schedule(
    spec: Mapping[str, Any],
    config: PluginConfig,
    *,
    cron: str,
    timezone_name: str | None = None,
    start_time: str | None = None,
    end_time: str | None = None,
    max_run_count: int | None = None,
    max_concurrent_run_count: int = 1,
    max_concurrent_active_run_count: int | None = None,
    allow_queueing: bool = False,
    params: Mapping[str, Any] | None = None,
    template_uri: str | None = None,
    backend: str | None = None,
) -> str:
    """Schedule ``spec`` on ``cron``, replacing schedules of the same display name (``run_config.scheduled_run_name``
    or the compiled pipeline's name); returns the new schedule's id."""
    name = config.run_config.scheduled_run_name or spec_pipeline_name(spec)
    request = ScheduleRequest(
        spec=spec,
        name=name,
        cron=cron,
        timezone=timezone_name,
        params=dict(params or {}),
        template_uri=template_uri,
        start_time=start_time,
        end_time=end_time,
        max_run_count=max_run_count,
        max_concurrent_runs=max_concurrent_run_count,
        max_concurrent_active_runs=max_concurrent_active_run_count,
        allow_queueing=allow_queueing,
    )
    with ConsoleReporter() as reporter:
        return open_backend(config, backend, reporter).schedule(request)


def list_jobs_and_schedules(config: PluginConfig, limit: int = 20, backend: str | None = None) -> None:
    """Print the most recent jobs (state, link) and the schedules of the backend as tables."""
    with ConsoleReporter() as reporter:
        chosen = open_backend(config, backend, reporter)
        jobs = chosen.list_jobs(limit)
        schedules = chosen.list_schedules()
    print_listing(chosen.where(), jobs, schedules, limit)


def print_listing(where: str, jobs: Sequence[JobSummary], schedules: Sequence[ScheduleSummary], limit: int) -> None:
    from rich.console import Console
    from rich.table import Table

    # piped output (scripts, CI logs) gets natural widths so links are never folded across lines
    console = Console() if sys.stdout.isatty() else Console(width=1000)
    table = Table(title=f"Pipeline jobs in {where} (latest {limit})", title_justify="left")
    for column in ("Job", "Display name", "State", "Created", "Link"):
        table.add_column(column, overflow="fold")
    for job in jobs:
        table.add_row(job.job_id, job.pipeline, job.state, job.created, job.url or "")
    console.print(table if jobs else "No pipeline jobs yet.")
    table = Table(title="Schedules", title_justify="left")
    for column in ("Schedule", "State", "Cron", "Next run", "Id"):
        table.add_column(column, overflow="fold")
    for item in schedules:
        table.add_row(item.name, item.state, item.cron, item.next_run, item.schedule_id)
    console.print(table if schedules else "No schedules.")


def show_logs(
    config: PluginConfig, job_ref: str, task: str | None = None, lines: int = 20, backend: str | None = None
) -> None:
    """``kedro vertexai logs JOB_ID [--task NAME]``: the log tail of the named task, else of every failed task."""
    with ConsoleReporter() as reporter:
        logs = open_backend(config, backend, reporter).task_logs(job_ref, task=task, lines=lines)
    for log in logs:
        print_task_log(log)


def print_task_log(log: TaskLog, echo: Callable[[str], None] = click.echo) -> None:
    """A task's log tail and where the whole log is; a log without lines is its one-line note. A log with its own
    ``title`` (which says where it is) shows that above its lines."""
    if log.title:
        echo(log.title)
        for line in log.lines:
            echo(f"  {line}")
        return
    if not log.lines:
        echo(f"Task {log.task} ({log.state}): {log.note or 'no log lines'}")
        return
    echo(f"Task {log.task} ({log.state}); last {len(log.lines)} lines of its log:")
    for line in log.lines:
        echo(f"  {line}")
    if log.source:
        echo(f"Full log: {log.source}")


def open_ui(config: PluginConfig, opener: Callable[[str], bool] | None = None, backend: str | None = None) -> str:
    """Open the backend's web page in a browser; print the URL in any case (CI, no browser)."""
    with ConsoleReporter() as reporter:
        url = open_backend(config, backend, reporter).ui_url()
    click.echo(url)
    if os.environ.get("CI"):
        return url
    if opener is None:
        import webbrowser

        opener = webbrowser.open
    try:
        opened = opener(url)
    except Exception:
        opened = False
    if not opened:
        click.echo("No browser available: open the URL above.", err=True)
    return url


def rerun_failed(
    spec: Mapping[str, Any],
    config: PluginConfig,
    job_id: str,
    *,
    pipeline_name: str = "__default__",
    params: Mapping[str, Any] | None = None,
    wait: bool = True,
    cancel_on_interrupt: bool = False,
    backend: str | None = None,
) -> str:
    """``kedro vertexai rerun JOB_ID``: a job running the failed tasks of ``job_id`` with its stored data, followed
    like any job when ``wait``; returns the new job's id."""
    request = JobRequest(
        spec=spec, pipeline_name=pipeline_name, params=dict(params or {}), cancel_on_interrupt=cancel_on_interrupt
    )
    with ConsoleReporter() as reporter:
        return open_backend(config, backend, reporter).rerun(job_id, request, wait=wait).job_id


def cancel_job(config: PluginConfig, job_id: str, backend: str | None = None) -> None:
    """``kedro vertexai cancel JOB_ID``."""
    with ConsoleReporter() as reporter:
        line = open_backend(config, backend, reporter).cancel(job_id)
    click.echo(line)


def change_schedule(
    config: PluginConfig, name: str, action: str, *, catch_up: bool = False, backend: str | None = None
) -> None:
    """``kedro vertexai schedules pause|resume|delete NAME``."""
    with ConsoleReporter() as reporter:
        lines = open_backend(config, backend, reporter).change_schedule(name, action, catch_up=catch_up)
    for line in lines:
        click.echo(line)
