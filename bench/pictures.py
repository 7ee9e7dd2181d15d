"""Render the pictures of a plan and of a run in a real headless browser (Chromium), and check what it drew.

On a private copy of ``examples/demo_project``:

1. ``kedro vertexai compile --explain --html plan.html`` (the picture of the plan);
2. ``kedro run --runner=VertexRunner`` on the local backend (its run folder's ``report.html``);
3. a synthetic 1,000-node plan (``--nodes``, grouping ``none`` and ``makespan``), built in-process.

Each page is loaded by ``chromium --headless``: ``--dump-dom`` gives the document the browser built, which must
hold both SVG pictures (the task graph and the timeline) and name every task and node (the page lists a node past
a box's first six in its table); ``--screenshot`` renders it to a PNG (a blank page fails: the PNG must not be
one colour). The run fails, naming what is missing, if any check fails; it prints each page's size and how long
the browser took.

    python bench/pictures.py [--out DIR] [--docs] [--nodes 1000] [--chromium chromium]

``--docs`` also copies the two screenshots of the example to ``docs/images/plan.png`` and ``docs/images/run.png``
(the README shows them). Chromium comes from Debian: ``apt-get install -y chromium``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from bootstrap import BIN, EXAMPLE, REPO, _env

sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))
from picture_html import Picture, assert_self_contained, read_picture


def chromium(binary: str, *args: str, timeout: float = 120) -> tuple[str, float]:
    began = time.perf_counter()
    done = subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"FAILED: {binary} {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout, time.perf_counter() - began


def png_is_drawn(path: Path) -> tuple[int, int]:
    """(width, height) of a PNG that is not a single colour (decoded with zlib: no imaging library needed)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    chunks, position = [], 8
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind == b"IDAT":
            chunks.append(data[position + 8 : position + 8 + length])
        position += 12 + length
    pixels = zlib.decompress(b"".join(chunks))
    if len(set(pixels)) < 16:  # a blank page: a handful of byte values, whatever the row filters
        raise SystemExit(f"FAILED: {path} is blank ({len(set(pixels))} distinct bytes)")
    return width, height


def check(name: str, page: Path, tasks: set[str], nodes: set[str], out: Path, binary: str, size: str) -> Path:
    dom, dom_seconds = chromium(binary, "--dump-dom", page.resolve().as_uri())
    picture: Picture = read_picture(dom)
    problems = []
    for svg in ("graph", "gantt"):
        if not picture.tags(svg) >= {"svg", "g", "rect", "text"}:
            problems.append(f"the {svg} SVG is missing or empty")
    named_tasks = set(picture.attribute("data-task"))
    named_nodes = set(picture.attribute("data-node"))
    if tasks - named_tasks:
        problems.append(f"tasks not named: {sorted(tasks - named_tasks)[:10]}")
    if nodes - named_nodes:
        problems.append(f"nodes not named: {sorted(nodes - named_nodes)[:10]}")
    try:
        assert_self_contained(picture)
    except AssertionError as exc:
        problems.append(f"not self-contained: {exc}")
    if problems:
        raise SystemExit(f"FAILED {name} ({page}): " + "; ".join(problems))
    shot = out / f"{name}.png"
    _, shot_seconds = chromium(binary, f"--screenshot={shot}", f"--window-size={size}", page.resolve().as_uri())
    width, height = png_is_drawn(shot)
    print(
        f"{name:<12} {page.stat().st_size / 1024:>8.0f} KiB  {len(tasks):>5} tasks  {len(nodes):>5} nodes  "
        f"DOM {dom_seconds:5.1f} s  screenshot {shot_seconds:5.1f} s ({width}x{height}) -> {shot}"
    )
    return shot


def synthetic(nodes: int, out: Path) -> list[tuple[str, Path, set[str], set[str]]]:
    from kedro.pipeline import Pipeline, node

    from kedro_vertex_runner.compiler import GroupingReport
    from kedro_vertex_runner.compiler.grouping import CostModel, estimate, group_nodes
    from kedro_vertex_runner.compiler.spec import task_names
    from kedro_vertex_runner.pictures import plan_page

    def work(*values):  # pragma: no cover - never run
        return values[0]

    width = 10  # layers of `width` nodes, each reading two nodes of the layer before
    made = []
    for i in range(nodes):
        layer, slot = divmod(i, width)
        inputs = (
            ["raw"]
            if layer == 0
            else [f"d{(layer - 1) * width + slot}", f"d{(layer - 1) * width + (slot + 1) % width}"]
        )
        made.append(node(work, inputs, f"d{i}", name=f"n{i:04d}"))
    pipeline = Pipeline(made)
    model = CostModel()
    pages = []
    for mode in ("none", "makespan"):
        began = time.perf_counter()
        groups = group_nodes(pipeline, mode, model=model)
        report = GroupingReport(mode, tuple(groups), estimate(groups, model))
        page = out / f"plan-{nodes}-{mode}.html"
        page.write_text(plan_page(report, model, f"{nodes} nodes, grouping {mode}"), encoding="utf-8")
        print(
            f"  {nodes} nodes, grouping {mode}: {len(groups)} tasks, page written in {time.perf_counter() - began:.1f} s"
        )
        pages.append((f"plan-{nodes}-{mode}", page, set(task_names(groups)), {n.name for n in pipeline.nodes}))
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="where pages and screenshots go (default: a temp dir)")
    parser.add_argument("--docs", action="store_true", help="copy the example's screenshots to docs/images/")
    parser.add_argument("--nodes", type=int, default=1000, help="nodes of the synthetic plan (0: none)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    options = parser.parse_args()
    out = options.out or Path(tempfile.mkdtemp(prefix="pictures-"))
    out.mkdir(parents=True, exist_ok=True)
    project = Path(tempfile.mkdtemp(prefix="pictures-project-")) / "demo"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("data/vertex_runs", "*.pyc", "__pycache__"))
    env = {**_env(), "PYTHONPATH": str(REPO)}
    kedro = str(BIN / "kedro")
    for args in (
        ["vertexai", "compile", "--explain", "--html", str(out / "plan.html"), "-o", "spec.json"],
        ["run", "--runner=VertexRunner"],
    ):
        done = subprocess.run([kedro, *args], cwd=project, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"FAILED: kedro {' '.join(args)}: {done.stderr[-2000:]}")
    spec = json.loads((project / "spec.json").read_text())
    tasks = set(spec["root"]["dag"]["tasks"])
    (record,) = (project / "data" / "vertex_runs").glob("*/run.json")
    recorded = json.loads(record.read_text())["tasks"]
    nodes = {n for task in recorded.values() for n in task["nodes"]}
    shutil.copy(record.parent / "report.html", out / "run.html")
    shutil.copytree(record.parent / "logs", out / "logs", dirs_exist_ok=True)  # its links, next to it
    print(f"Chromium: {subprocess.run([options.chromium, '--version'], capture_output=True, text=True).stdout.strip()}")
    plan = check("plan", out / "plan.html", tasks, nodes, out, options.chromium, "1300,720")
    run = check("run", out / "run.html", set(recorded), nodes, out, options.chromium, "1300,720")
    if options.nodes:
        for name, page, big_tasks, big_nodes in synthetic(options.nodes, out):
            check(name, page, big_tasks, big_nodes, out, options.chromium, "1600,1200")
    if options.docs:
        images = REPO / "docs" / "images"
        images.mkdir(parents=True, exist_ok=True)
        shutil.copy(plan, images / "plan.png")
        shutil.copy(run, images / "run.png")
        print(f"Copied the screenshots to {images}/")
    print(f"OK: every page rendered, with both pictures and every task and node named ({out})")


if __name__ == "__main__":
    main()
