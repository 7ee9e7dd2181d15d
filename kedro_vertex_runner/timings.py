"""Node run times of local runs: written by each task, read at compile time by the ``makespan`` grouping.

Each task of a job whose root is a local directory writes ``<root>/<run id>/timings/<task>.json``
(``{"pipeline": "<names>", "nodes": {"<node>": seconds}}``, the file named after the task's first node) once its
nodes have run, and records the run as the latest of its pipeline in the index ``<root>/timings/<names>.txt``
(``<names>``: the ``--pipeline`` names joined by ``+``, e.g. ``__default__``), which holds that run id. Compiling
the same pipeline later reads the timing files of that run. Only local roots are used: compiling never touches
the network, and Vertex AI tasks do not spend an upload on it.

Imported by the in-task entrypoint: standard library only.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

TIMINGS_DIR = "timings"
_SAFE = "-_.+"


def pipeline_key(pipeline_names: Iterable[str]) -> str:
    """How a job's pipeline(s) are named in the index: ``__default__``, ``data_processing+model`` …"""
    return "+".join(pipeline_names) or "__default__"


def _local_root(root: str | None) -> Path | None:
    if not root:
        return None
    if root.startswith("file://"):
        return Path(root[len("file://") :])
    return None if "://" in root else Path(root)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def record_task(root: str | None, run_id: str, pipeline_names: Iterable[str], durations: Mapping[str, float]) -> None:
    """Store one task's node run times and mark ``run_id`` as its pipeline's latest timed run (local roots only).

    Never fails the task: a root that cannot be written only loses the timings.
    """
    base = _local_root(root)
    if base is None or not durations:
        return
    key = pipeline_key(pipeline_names)
    first = next(iter(durations))
    body = json.dumps({"pipeline": key, "nodes": {k: round(v, 3) for k, v in durations.items()}}, sort_keys=True)
    try:
        _write_atomic(base / run_id / TIMINGS_DIR / f"{quote(first, safe=_SAFE)}.json", body)
        _write_atomic(base / TIMINGS_DIR / f"{quote(key, safe=_SAFE)}.txt", run_id + "\n")
    except OSError:
        pass


def last_run_durations(root: str | None, pipeline_names: Iterable[str]) -> dict[str, float]:
    """Node → seconds from the latest local run of ``pipeline_names`` under ``root``; empty when there is none."""
    base = _local_root(root)
    if base is None:
        return {}
    key = pipeline_key(pipeline_names)
    try:
        run_id = (base / TIMINGS_DIR / f"{quote(key, safe=_SAFE)}.txt").read_text(encoding="utf-8").strip()
    except OSError:
        return {}
    if not run_id or "/" in run_id or run_id in {".", ".."}:
        return {}
    found: dict[str, float] = {}
    for path in sorted((base / run_id / TIMINGS_DIR).glob("*.json")):
        try:
            nodes = json.loads(path.read_text(encoding="utf-8")).get("nodes", {})
        except (OSError, ValueError, AttributeError):
            continue
        for name, seconds in nodes.items() if isinstance(nodes, dict) else ():
            if isinstance(seconds, (int, float)) and seconds >= 0:
                found[str(name)] = float(seconds)
    return found
