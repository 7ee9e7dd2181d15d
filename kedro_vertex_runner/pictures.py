"""Pictures of a plan and of a run: one self-contained HTML file each (inline SVG and CSS, no script, no network).

* :func:`plan_page` (``kedro vertexai compile --explain --html FILE``): the chosen grouping's tasks as boxes holding
  their nodes, the datasets between them, the longest chain of dependent tasks marked, and the modelled timeline
  (a Gantt chart of the makespan model: a task starts when the last task it depends on ends, and runs
  ``task_startup`` plus its nodes' span).
* :func:`run_page` (``<run folder>/report.html`` of every local run, ``kedro vertexai report RUN_OR_JOB``): the
  tasks' real timeline (start, end, state, attempts), each task's nodes with their run times, links to the logs.

Every name shown comes from the user (nodes, datasets, tasks, errors) and is escaped. Big pipelines stay readable:
a box lists at most :data:`NODES_PER_BOX` nodes and an arrow names at most :data:`DATA_PER_EDGE` datasets, each
followed by ``+N more``; the full lists are in the tables below the pictures.

Standard library only.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import PluginError
from .pipeline_spec import SpecView

#: node names listed in a task's box before ``+N more``
NODES_PER_BOX = 6
#: dataset names written on an arrow between two tasks before ``+N more``
DATA_PER_EDGE = 2
#: tasks a graph column shows before the rest of the column is summed up in one box
TASKS_PER_COLUMN = 60

_BOX_W, _LINE_H, _GAP_X, _GAP_Y, _PAD = 220, 15, 150, 18, 10
_NAME_CHARS = 30  # characters of a name a box shows (the full name is in its tooltip)
_ROW_H, _LABEL_W, _CHART_W = 20, 240, 760

STATE_COLOURS = {
    "PLANNED": "#4e79a7",
    "SUCCEEDED": "#59a14f",
    "FAILED": "#e15759",
    "RUNNING": "#f28e2b",
    "RETRYING": "#f28e2b",
    "SKIPPED": "#bab0ac",
    "CANCELLED": "#9c755f",
    "PENDING": "#d4d4d4",
}


@dataclass
class TaskBar:
    """One task in a picture.

    Attributes:
        name: the task's name (as the console shows it).
        nodes: the Kedro nodes it runs, in order.
        dependencies: names of the tasks it runs after.
        state: ``PLANNED`` in a plan; the task's last state in a run.
        start, end: seconds from the start of the plan or run (None: it never started / has not ended).
        startup: of the bar, the seconds spent before the first node (a plan's task start-up).
        attempts: how many times it was started.
        node_times: run time in seconds per node that has one.
        log: where its log is (a link relative to the page, a path or a URL); None: no log.
        note: why it failed or was skipped, in the engine's words.
    """

    name: str
    nodes: Sequence[str]
    dependencies: Sequence[str] = ()
    state: str = "PLANNED"
    start: float | None = None
    end: float | None = None
    startup: float = 0.0
    attempts: int = 0
    node_times: Mapping[str, float] = field(default_factory=dict)
    log: str | None = None
    note: str | None = None


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _short(text: str, chars: int = _NAME_CHARS) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, rest = divmod(round(seconds), 60)
    if minutes >= 60:
        return f"{minutes // 60}h{minutes % 60:02d}m{rest:02d}s"
    if minutes:
        return f"{minutes}m{rest:02d}s"
    return f"{seconds:.1f}s" if seconds < 10 else f"{rest}s"


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
p.meta{color:#555;margin:2px 0}
.scroll{overflow:auto;border:1px solid #ddd;max-height:80vh}
svg text{font:12px system-ui,sans-serif}
svg .task rect.box{fill:#f7f9fc;stroke:#4e79a7;stroke-width:1.2}
svg .task.critical rect.box{stroke:#d62728;stroke-width:3}
svg .task text.title{font-weight:600}
svg .task text.more,svg text.data{fill:#666;font-style:italic}
svg text.data{paint-order:stroke;stroke:#fff;stroke-width:3px}
svg path.edge{fill:none;stroke:#999;stroke-width:1.2}
svg path.edge.critical{stroke:#d62728;stroke-width:2.2}
svg .bar.critical rect{stroke:#d62728;stroke-width:2.5}
svg rect.startup{opacity:.45}
table{border-collapse:collapse;margin-top:8px}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.state{font-weight:600}
ul.nodes{margin:0;padding-left:18px}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
"""


# ------------------------------------------------------------------------------------------------------------------
# the task graph


def _layers(tasks: Sequence[TaskBar]) -> dict[str, int]:
    """Column of each task: one more than the deepest task it depends on (tasks come in topological order)."""
    column: dict[str, int] = {}
    for task in tasks:
        column[task.name] = 1 + max((column[d] for d in task.dependencies if d in column), default=-1)
    return column


def _box_lines(task: TaskBar) -> tuple[list[str], int]:
    shown = list(task.nodes[:NODES_PER_BOX])
    return shown, len(task.nodes) - len(shown)


def _graph_svg(tasks: Sequence[TaskBar], data: Mapping[tuple[str, str], Sequence[str]], critical: set[str]) -> str:
    """Tasks as boxes in columns (by dependency depth), arrows from a task to those that read its data."""
    column = _layers(tasks)
    columns: dict[int, list[TaskBar]] = {}
    for task in tasks:
        columns.setdefault(column[task.name], []).append(task)
    place: dict[str, tuple[float, float, float]] = {}  # name -> x, y, height
    hidden: dict[int, list[TaskBar]] = {}
    height = 0.0
    for index, members in sorted(columns.items()):
        x = float(_PAD + index * (_BOX_W + _GAP_X))
        y = float(_PAD)
        shown = sorted(members, key=lambda t: t.name not in critical)  # the longest chain's task stays in view
        if len(shown) > TASKS_PER_COLUMN:
            shown, hidden[index] = shown[: TASKS_PER_COLUMN - 1], shown[TASKS_PER_COLUMN - 1 :]
        for task in shown:
            lines, more = _box_lines(task)
            h = 6.0 + _LINE_H * (2 + len(lines) + (1 if more else 0))
            place[task.name] = (x, y, h)
            y += h + _GAP_Y
        if index in hidden:
            y += _LINE_H * 2 + 6 + _GAP_Y
        height = max(height, y)
    width = _PAD * 2 + (max(columns, default=0) + 1) * (_BOX_W + _GAP_X) - _GAP_X
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" width="{width:.0f}" height="{height + _PAD:.0f}" '
        f'viewBox="0 0 {width:.0f} {height + _PAD:.0f}" role="img" aria-label="tasks and the data between them">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0L10,5L0,10z" fill="#999"/></marker></defs>',
    ]
    label_edges = len(data) <= 400
    for (source, target), names in data.items():
        if source not in place or target not in place:
            continue
        sx, sy, sh = place[source]
        tx, ty, th = place[target]
        x1, y1, x2, y2 = sx + _BOX_W, sy + sh / 2, tx, ty + th / 2
        mid = (x1 + x2) / 2
        hot = " critical" if source in critical and target in critical else ""
        tip = _e(", ".join(names) if names else "(runs after)")
        out.append(
            f'<path class="edge{hot}" data-from="{_e(source)}" data-to="{_e(target)}" '
            f'd="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}" '
            f'marker-end="url(#arrow)"><title>{tip}</title></path>'
        )
        if label_edges and names:
            text = ", ".join(_short(n, 18) for n in names[:DATA_PER_EDGE])
            if len(names) > DATA_PER_EDGE:
                text += f" +{len(names) - DATA_PER_EDGE} more"
            out.append(
                f'<text class="data" x="{mid:.0f}" y="{(y1 + y2) / 2 - 3:.0f}" text-anchor="middle">{_e(text)}'
                f"<title>{tip}</title></text>"
            )
    for task in tasks:
        if task.name not in place:
            continue
        x, y, h = place[task.name]
        hot = " critical" if task.name in critical else ""
        lines, more = _box_lines(task)
        colour = STATE_COLOURS.get(task.state, "#4e79a7")
        out.append(f'<g class="task{hot}" data-task="{_e(task.name)}" data-state="{_e(task.state)}">')
        out.append(f"<title>{_e(task.name)}: {_e(', '.join(task.nodes))}</title>")
        out.append(f'<rect class="box" x="{x:.0f}" y="{y:.0f}" width="{_BOX_W}" height="{h:.0f}" rx="6"/>')
        out.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="6" height="{h:.0f}" fill="{colour}"/>')
        out.append(f'<text class="title" x="{x + 12:.0f}" y="{y + _LINE_H:.0f}">{_e(_short(task.name))}</text>')
        nodes_word = f"{len(task.nodes)} node{'s' if len(task.nodes) != 1 else ''}"
        out.append(
            f'<text class="more" x="{x + 12:.0f}" y="{y + 2 * _LINE_H:.0f}">{nodes_word} · {_e(task.state)}</text>'
        )
        for i, node in enumerate(lines):
            out.append(
                f'<text class="node" data-node="{_e(node)}" x="{x + 18:.0f}" y="{y + (3 + i) * _LINE_H:.0f}">'
                f"{_e(_short(node, _NAME_CHARS - 2))}</text>"
            )
        if more:
            out.append(
                f'<text class="more" x="{x + 18:.0f}" y="{y + (3 + len(lines)) * _LINE_H:.0f}">+{more} more</text>'
            )
        out.append("</g>")
    for index, rest in hidden.items():
        left = _PAD + index * (_BOX_W + _GAP_X)
        y = max(place[t.name][1] + place[t.name][2] for t in columns[index] if t.name in place) + _GAP_Y
        out.append(
            f'<g class="hidden-tasks"><rect x="{left}" y="{y:.0f}" width="{_BOX_W}" height="{_LINE_H * 2}" rx="6" '
            f'fill="#eee"/><text class="more" x="{left + 12}" y="{y + _LINE_H * 1.3:.0f}">+{len(rest)} more tasks '
            f"(see the table)</text></g>"
        )
    out.append("</svg>")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------------------------
# the timeline


def _gantt_svg(tasks: Sequence[TaskBar], critical: set[str], total: float) -> str:
    """One row per task: a bar from its start to its end, coloured by state (a plan's start-up lighter)."""
    rows = [t for t in tasks if t.start is not None]
    scale = _CHART_W / total if total > 0 else 0.0
    height = _PAD * 2 + _ROW_H * (len(rows) + 1)
    width = _LABEL_W + _CHART_W + _PAD * 2 + 60
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline of the tasks">'
    ]
    ticks = 6
    for i in range(ticks + 1):
        x = _LABEL_W + _CHART_W * i / ticks
        out.append(f'<line x1="{x:.0f}" y1="{_PAD}" x2="{x:.0f}" y2="{height - _PAD}" stroke="#eee"/>')
        out.append(f'<text class="tick" x="{x:.0f}" y="{height - 2}" text-anchor="middle">')
        out.append(f"{_e(_duration(total * i / ticks))}</text>")
    for row, task in enumerate(rows):
        y = _PAD + row * _ROW_H
        start = task.start or 0.0
        end = task.end if task.end is not None else total
        hot = " critical" if task.name in critical else ""
        colour = STATE_COLOURS.get(task.state, "#4e79a7")
        x = _LABEL_W + start * scale
        w = max(2.0, (end - start) * scale)
        tip = f"{task.name}: {task.state}, {_duration(start)} → {_duration(end)} ({_duration(end - start)})" + (
            f", {task.attempts} attempts" if task.attempts > 1 else ""
        )
        out.append(
            f'<g class="bar{hot}" data-task="{_e(task.name)}" data-state="{_e(task.state)}" '
            f'data-attempts="{task.attempts}">'
        )
        out.append(f"<title>{_e(tip)}</title>")
        out.append(f'<text x="{_LABEL_W - 6}" y="{y + 14}" text-anchor="end">{_e(_short(task.name, 34))}</text>')
        out.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{_ROW_H - 6}" fill="{colour}"/>')
        if task.startup and end > start:
            sw = min(w, task.startup * scale)
            out.append(
                f'<rect class="startup" x="{x:.1f}" y="{y + 3}" width="{sw:.1f}" height="{_ROW_H - 6}" fill="#fff"/>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------------------------
# pages


def _legend(states: Iterable[str]) -> str:
    items = [
        f'<span><i style="background:{STATE_COLOURS.get(s, "#4e79a7")}"></i>{_e(s)}</span>' for s in sorted(set(states))
    ]
    items.append('<span><i style="border:2px solid #d62728"></i>longest chain</span>')
    return f'<p class="legend">{"".join(items)}</p>'


def _table(tasks: Sequence[TaskBar], critical: set[str], run: bool) -> str:
    head = "<tr><th>task</th><th>state</th><th>start</th><th>end</th>"
    head += "<th>attempts</th><th>nodes</th><th>log</th></tr>" if run else "<th>after</th><th>nodes</th></tr>"
    rows = [head]
    for task in tasks:
        nodes = "".join(
            f'<li data-node="{_e(n)}">{_e(n)}'
            + (f" ({_e(_duration(task.node_times[n]))})" if n in task.node_times else "")
            + "</li>"
            for n in task.nodes
        )
        mark = " ★" if task.name in critical else ""
        state = f'<span class="state" style="color:{STATE_COLOURS.get(task.state, "#222")}">{_e(task.state)}</span>'
        if task.note:
            state += f"<br>{_e(task.note)}"
        cells = [
            f'<td data-task="{_e(task.name)}">{_e(task.name)}{mark}</td>',
            f"<td>{state}</td>",
            f"<td>{_e(_duration(task.start))}</td>",
            f"<td>{_e(_duration(task.end))}</td>",
        ]
        if run:
            cells.append(f"<td>{task.attempts}</td>")
            cells.append(f'<td><ul class="nodes">{nodes}</ul></td>')
            cells.append(f'<td><a href="{_e(task.log)}">log</a></td>' if task.log else "<td>–</td>")
        else:
            cells.append(f"<td>{_e(', '.join(task.dependencies)) or '–'}</td>")
            cells.append(f'<td><ul class="nodes">{nodes}</ul></td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="tasks">{"".join(rows)}</table>'


def _page(title: str, meta: Sequence[str], body: Sequence[str]) -> str:
    lines = "".join(f'<p class="meta">{_e(line)}</p>' for line in meta)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>{lines}{''.join(body)}</body></html>\n"
    )


def data_between(tasks: Sequence[tuple[str, Sequence[Any]]]) -> dict[tuple[str, str], list[str]]:
    """(producer task, consumer task) → the datasets one writes and the other reads, from Kedro nodes' ``outputs``
    and ``inputs``; ``tasks`` is (task name, nodes) in topological order."""
    producer: dict[str, str] = {}
    for name, nodes in tasks:
        for node in nodes:
            for output in node.outputs:
                producer[output] = name
    found: dict[tuple[str, str], list[str]] = {}
    for name, nodes in tasks:
        for node in nodes:
            for dataset in node.inputs:
                source = producer.get(dataset)
                if source is not None and source != name and dataset not in found.setdefault((source, name), []):
                    found[(source, name)].append(dataset)
    return found


def plan_tasks(report: Any, model: Any) -> list[TaskBar]:
    """The tasks of a grouping (a ``GroupingReport`` of ``compiler.explain``) with their modelled start and end:
    a task starts when the last task it depends on ends, and ends ``task_startup`` (plus the extra start-up of a
    task with machine settings) and its nodes' span later, as :func:`~.compiler.grouping.estimate` counts."""
    from .compiler.grouping import task_times
    from .compiler.spec import task_names

    groups = list(report.groups)
    names = task_names(groups)
    name_of = dict(zip((g.key for g in groups), names, strict=True))
    times = task_times(groups, model)
    tasks: list[TaskBar] = []
    for group, name in zip(groups, names, strict=True):
        start, startup, end = times[group.key]
        tasks.append(
            TaskBar(
                name=name,
                nodes=group.node_names,
                dependencies=[name_of[d] for d in group.dependencies],
                start=start,
                end=end,
                startup=startup,
                node_times={n.name: model.duration(n.name) for n in group.nodes},
            )
        )
    return tasks


def plan_page(report: Any, model: Any, title: str, source: str = "") -> str:
    """The HTML picture of a grouping (a ``GroupingReport`` of ``compiler.explain``) under ``model``."""
    from .compiler.spec import task_names

    groups = list(report.groups)
    name_of = dict(zip((g.key for g in groups), task_names(groups), strict=True))
    tasks = plan_tasks(report, model)
    critical = {name_of[key] for key in (report.estimate.critical_path if report.estimate else ())}
    data = data_between([(name_of[g.key], g.nodes) for g in groups])
    makespan = max((t.end or 0.0 for t in tasks), default=0.0)
    nodes = sum(len(g.nodes) for g in groups)
    measured = report.estimate.measured if report.estimate else 0
    path = [name_of[k] for k in (report.estimate.critical_path if report.estimate else ())]
    chain = " → ".join(path if len(path) <= 12 else [*path[:5], "…", *path[-5:]]) + f" ({len(path)} tasks)"
    meta = [
        f"Grouping {report.mode!r}: {len(tasks)} tasks, {nodes} nodes; estimated makespan {_duration(makespan)}",
        f"Cost model: {_duration(model.task_startup)} start-up per task; node run times: {measured} of {nodes} "
        f"from {source or 'the last local run'}, the others {_duration(model.node_duration)} each",
        f"Longest chain of dependent tasks: {chain}",
    ]
    body = [
        "<h2>Tasks and the data between them</h2>",
        _legend(["PLANNED"]),
        f'<div class="scroll">{_graph_svg(tasks, data, critical)}</div>',
        "<h2>Estimated timeline</h2>",
        '<p class="meta">Lighter part of a bar: the task\'s start-up; ★ and red: the longest chain.</p>',
        f'<div class="scroll">{_gantt_svg(tasks, critical, makespan)}</div>',
        "<h2>Tasks</h2>",
        _table(tasks, critical, run=False),
    ]
    return _page(title, meta, body)


def run_page(title: str, meta: Sequence[str], tasks: Sequence[TaskBar]) -> str:
    """The HTML picture of a run: ``tasks`` with their real start and end (seconds from the run's start)."""
    total = max((t.end if t.end is not None else t.start or 0.0) for t in tasks) if tasks else 0.0
    critical = _longest_chain(tasks)
    body = [
        "<h2>Timeline</h2>",
        _legend(t.state for t in tasks),
        f'<div class="scroll">{_gantt_svg(tasks, critical, total)}</div>',
        "<h2>Tasks and what they wait for</h2>",
        f'<div class="scroll">{_graph_svg(tasks, {(d, t.name): [] for t in tasks for d in t.dependencies}, critical)}'
        "</div>",
        "<h2>Tasks</h2>",
        _table(tasks, critical, run=True),
    ]
    return _page(title, meta, body)


def _longest_chain(tasks: Sequence[TaskBar]) -> set[str]:
    """The chain of tasks that ended last: from the last task to end, back through the dependency that ended last."""
    by_name = {t.name: t for t in tasks if t.end is not None}
    if not by_name:
        return set()
    key: str | None = max(by_name, key=lambda n: by_name[n].end or 0.0)
    chain: set[str] = set()
    while key is not None and key not in chain:
        chain.add(key)
        deps = [d for d in by_name[key].dependencies if d in by_name]
        key = max(deps, key=lambda n: by_name[n].end or 0.0) if deps else None
    return chain


# ------------------------------------------------------------------------------------------------------------------
# runs: local records and the engines' task details


def _stamp(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def local_run_tasks(
    spec: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]],
    node_times: Mapping[str, float],
    log_of: Mapping[str, str | None],
) -> tuple[list[TaskBar], float | None]:
    """TaskBars of a local run from its record's ``tasks`` (nodes, state, started_at, ended_at, attempts) and the
    spec's dependencies; and the run's start (epoch seconds; None when no task started)."""
    deps = _spec_dependencies(spec)
    starts = [float(t["started_at"]) for t in tasks.values() if isinstance(t.get("started_at"), int | float)]
    origin = min(starts) if starts else None
    bars = []
    for name, task in tasks.items():
        started, ended = task.get("started_at"), task.get("ended_at")
        nodes = [str(n) for n in task.get("nodes") or ()]
        bars.append(
            TaskBar(
                name=name,
                nodes=nodes,
                dependencies=[d for d in deps.get(name, ()) if d in tasks],
                state=str(task.get("state") or "PENDING"),
                start=float(started) - origin if origin is not None and isinstance(started, int | float) else None,
                end=float(ended) - origin if origin is not None and isinstance(ended, int | float) else None,
                attempts=int(task.get("attempts") or 0),
                node_times={n: node_times[n] for n in nodes if n in node_times},
                log=log_of.get(name),
                note=task.get("reason") if isinstance(task.get("reason"), str) else None,
            )
        )
    return bars, origin


def _spec_dependencies(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    return {task.key: list(task.dependencies) for task in SpecView.of(spec).tasks()}


def read_node_times(run_dir: Path) -> dict[str, float]:
    """Node run times a local run's tasks recorded in ``<run dir>/timings/*.json`` (unreadable files skipped)."""
    import json

    times: dict[str, float] = {}
    folder = run_dir / "timings"
    for file in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            nodes = json.loads(file.read_text(encoding="utf-8")).get("nodes") or {}
        except (OSError, ValueError, AttributeError):
            continue
        times.update({str(k): float(v) for k, v in nodes.items() if isinstance(v, int | float)})
    return times


def local_run_page(record: Mapping[str, Any], run_dir: Path, logs_dir: Path, page_dir: Path | None = None) -> str:
    """The picture of a local run from its record (run.json) and the node times in ``run_dir``: each task's log in
    ``logs_dir`` linked relative to ``page_dir`` (default: as ``logs/<task>.log``, the page being in the run
    folder)."""
    tasks = record.get("tasks") or {}
    log_of: dict[str, str | None] = {}
    for name in tasks:
        log = logs_dir / f"{name}.log"
        if not log.is_file():
            log_of[name] = None
        elif page_dir is None:
            log_of[name] = f"logs/{name}.log"
        else:
            log_of[name] = os.path.relpath(log, page_dir)
    bars, origin = local_run_tasks(record.get("spec") or {}, tasks, read_node_times(run_dir), log_of)
    states: dict[str, int] = {}
    for bar in bars:
        states[bar.state] = states.get(bar.state, 0) + 1
    ended = [b.end for b in bars if b.end is not None]
    run_id = record.get("run_id") or run_dir.name
    meta = [
        f"Local run {run_id}: " + ", ".join(f"{count} {state}" for state, count in sorted(states.items())),
        f"Started {_stamp(origin)}; wall time {_duration(max(ended) if ended else None)}",
    ]
    return run_page(f"Run {run_id}", meta, bars)


def _seconds(value: Any) -> float | None:
    """Epoch seconds of a timestamp as the APIs return it: a datetime, an RFC 3339 string, or nothing."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    else:
        text = str(value).replace("Z", "+00:00")
        try:
            stamp = datetime.fromisoformat(text)
        except ValueError:
            return None
        stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    seconds = stamp.timestamp()
    return seconds if seconds > 0 else None  # protobuf's empty timestamp is the epoch


def cloud_run_page(
    engine: str, job_id: str, state: str, spec: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]
) -> str:
    """The picture of a Vertex AI or Kubeflow job from its task details: ``rows`` of key (the spec's task key, or
    its display name), name, state, start, end, error."""
    names = _spec_names(spec)
    nodes_of = _spec_nodes(spec)
    deps = _spec_dependencies(spec)
    key_of_name = {name: key for key, name in names.items()}
    starts = [s for s in (_seconds(r.get("start")) for r in rows) if s is not None]
    origin = min(starts) if starts else None
    bars, seen = [], set()
    for row in rows:  # named by the spec's task keys, as compile --explain and local runs name them
        key = str(row.get("key") or "")
        key = key if key in names else key_of_name.get(key, key)
        seen.add(key)
        start, end = _seconds(row.get("start")), _seconds(row.get("end"))
        bars.append(
            TaskBar(
                name=key,
                nodes=nodes_of.get(key, ()),
                dependencies=list(deps.get(key, ())),
                state=str(row.get("state") or "PENDING"),
                start=start - origin if start is not None and origin is not None else None,
                end=end - origin if end is not None and origin is not None else None,
                attempts=1 if start is not None else 0,
                note=str(row.get("error") or "") or None,
            )
        )
    for key in names:  # tasks the engine has not reported (not started yet)
        if key not in seen and key in nodes_of:
            bars.append(TaskBar(name=key, nodes=nodes_of[key], dependencies=list(deps.get(key, ())), state="PENDING"))
    ended = [b.end for b in bars if b.end is not None]
    meta = [
        f"{engine} job {job_id}: {state}",
        f"Started {_stamp(origin)}; wall time {_duration(max(ended) if ended else None)}",
        f"Task logs: kedro vertexai logs {job_id} --task NAME",
    ]
    return run_page(f"Job {job_id}", meta, bars)


def _spec_names(spec: Mapping[str, Any]) -> dict[str, str]:
    return SpecView.of(spec).task_names()


def _spec_nodes(spec: Mapping[str, Any]) -> dict[str, list[str]]:
    """Task key → the Kedro nodes its container runs (its ``--node`` / ``--nodes`` arguments)."""
    from .task.contract import TaskContract

    view = SpecView.of(spec)
    found: dict[str, list[str]] = {}
    for task in view.tasks():
        container = view.workload(task)
        try:
            nodes = TaskContract.from_args(list(container.args if container else ()), strict=False).nodes
        except Exception:
            continue
        if nodes:
            found[task.key] = list(nodes)
    return found


def write_page(text: str, path: Path, what: str = "-o") -> Path:
    """Write ``text`` to ``path``; one line naming the file when it cannot be written."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise PluginError(f"{what} {path}: cannot write it ({exc.strerror or exc}); choose a writable file") from None
    return path


#: the picture of a local run, next to its run.json
RUN_REPORT = "report.html"
#: seconds the upload of a remote run's picture may take
UPLOAD_TIMEOUT = 10.0


def write_run_report(
    record: Mapping[str, Any], run_dir: str, logs_dir: Path, remote: bool, unreachable: str | None = None
) -> None:
    """Leave ``<run dir>/report.html`` at the end of a local run (uploaded for a remote root, waiting at most
    :data:`UPLOAD_TIMEOUT` seconds, and not tried when ``unreachable`` says why storage could not be reached); a
    failure to write it is one warning line, never the run's failure."""
    import sys
    import threading

    try:
        text = local_run_page(record, Path(run_dir) if not remote else logs_dir, logs_dir)
        if not remote:
            (Path(run_dir) / RUN_REPORT).write_text(text, encoding="utf-8")
            return
        if unreachable:
            raise OSError(f"storage unreachable: {unreachable}")
        from .storage import url_to_fs

        options = {"requests_timeout": UPLOAD_TIMEOUT} if run_dir.startswith(("gs://", "gcs://")) else {}
        fs, path = url_to_fs(f"{run_dir}/{RUN_REPORT}", skip_instance_cache=True, **options)
        failure: list[BaseException] = []

        def upload() -> None:
            try:
                fs.pipe_file(path, text.encode("utf-8"))
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=upload, name="kedro-vertex-report", daemon=True)
        worker.start()
        worker.join(UPLOAD_TIMEOUT)  # a storage call cannot be cancelled: it is left behind, never waited for
        if worker.is_alive():
            raise TimeoutError(f"no answer in {UPLOAD_TIMEOUT:g} s")
        if failure:
            raise failure[0]
    except Exception as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
        print(f"Could not write the run's picture {run_dir}/{RUN_REPORT} ({problem})", file=sys.stderr, flush=True)


def run_report(config: Any, backend: str, ref: str, path: Path) -> Path:
    """``kedro vertexai report RUN_OR_JOB``: the picture of run or job ``ref`` as ``backend`` draws it
    (:meth:`~.backends.base.Backend.report_page`: a local run from its run.json under ``run_config.root``, a Vertex
    AI job or a Kubeflow run from its API), written to ``path``.

    Raises:
        PluginError: an unknown run or job, an unreachable API, or a file that cannot be written.
    """
    if path.is_dir():
        raise PluginError(f"-o {path}: it is a folder; give a file name, e.g. {path / 'report.html'}")
    from .console import open_backend

    return write_page(open_backend(config, backend).report_page(ref, path), path)


def local_report(config: Any, ref: str, path: Path) -> str:
    """The page of local run ``ref`` (:meth:`.backends.local.LocalBackend.report_page`)."""
    from .backends.local import read_run_record
    from .values import check_run_id

    check_run_id(ref, "RUN_OR_JOB ")
    root = str(config.run_config.root)
    record = read_run_record(root, Path.cwd(), ref)
    if record is None:
        raise PluginError(
            f"RUN_OR_JOB {ref!r}: no local run with that id under {root} (no {ref}/run.json there); give the run id "
            "a local run printed, or --backend vertex / kubeflow for a job"
        )
    if "://" in root:
        return run_page(f"Run {ref}", [f"Local run {ref} (root {root}): logs in {root}/{ref}/logs/"], _bars(record))
    base = Path(root).expanduser()
    run_dir = (base if base.is_absolute() else Path.cwd() / base) / ref
    return local_run_page(record, run_dir, run_dir / "logs", path.resolve().parent)


def _bars(record: Mapping[str, Any]) -> list[TaskBar]:
    return local_run_tasks(record.get("spec") or {}, record.get("tasks") or {}, {}, {})[0]


def vertex_report(backend: Any, ref: str) -> str:
    """The page of Vertex AI job ``ref`` (:meth:`.backends.vertex.VertexBackend.report_page`)."""
    from google.protobuf.json_format import MessageToDict

    from .backends.vertex.api import _call, _short_state
    from .backends.vertex.jobs import _task_details, _task_error
    from .config.rules import check_job_id

    try:
        job_id = check_job_id(ref)
    except ValueError as exc:
        raise PluginError(f"RUN_OR_JOB {exc}") from None
    config, api = backend.config, backend.api
    job = _call(
        f"reading job {job_id}", config, api.pipelines.get_pipeline_job, name=f"{api.parent}/pipelineJobs/{job_id}"
    )
    spec = MessageToDict(type(job).pb(job).pipeline_spec)
    rows = [
        {
            "key": detail.task_name,
            "state": detail.state.name,
            "start": detail.start_time if detail.start_time else None,
            "end": detail.end_time if detail.end_time else None,
            "error": _task_error(detail),
        }
        for detail in _task_details(job)
    ]
    return cloud_run_page("Vertex AI", job_id, _short_state(job.state), spec, rows)


def kubeflow_report(backend: Any, ref: str) -> str:
    """The page of Kubeflow run ``ref`` (:meth:`.backends.kubeflow.KubeflowBackend.report_page`)."""
    from .backends.kubeflow import _state, _task_rows

    run = backend._call(f"reading run {ref}", backend.client().get_run, run_id=ref)
    spec = getattr(run, "pipeline_spec", None) or {}
    if "pipeline_spec" in spec:  # {pipeline_spec, platform_spec}
        spec = spec["pipeline_spec"]
    times = {
        detail.display_name: (detail.start_time, detail.end_time)
        for detail in getattr(getattr(run, "run_details", None), "task_details", None) or []
    }
    rows = [
        {"key": key, "state": state, "start": times.get(key, (None, None))[0], "end": times.get(key, (None, None))[1]}
        | {"error": error}
        for key, state, error, _ in _task_rows(run)
    ]
    return cloud_run_page("Kubeflow", ref, _state(run.state), spec, rows)
