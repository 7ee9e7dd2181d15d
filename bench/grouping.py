"""How each grouping does under the makespan model: tasks, longest chain of tasks, modelled wall time.

For synthetic graphs (layered, fan-out/fan-in, long chains with side branches, random DAGs; 20 to 5000 nodes) and
the example project, prints per grouping the number of tasks, the number of tasks on the longest chain of
dependent tasks and the modelled makespan (a task costs ``task_startup`` plus its nodes' run times, with up to two
independent nodes of one task side by side, as the default ``run_config.task_runner`` runs them; see
``kedro_vertex_runner/compiler/grouping.py``). For graphs of at most 12 nodes it also computes the exact optimum
of the same model by enumerating every valid grouping, and reports how far ``makespan`` is from it.

Node run times are drawn (with a fixed seed) from two regimes: ``secs`` (1–20 s, what most Kedro nodes take) and
``mixed`` (log-uniform from 1 s to 30 min, so some branches are worth a task of their own).

    python bench/grouping.py             # everything (the 5000-node graphs take a few seconds)
    python bench/grouping.py --small     # only the graphs compared with the optimum
    python bench/grouping.py --sequential  # tasks run their nodes one after another (task_runner: sequential)
    python bench/grouping.py --runtimes  # only: `makespan` on cold machines against a persistent resource

The runtime comparison groups the example project and 1000-node graphs with ``makespan`` under the two start-up
costs of ``run_config.grouping_options``: ``task_startup`` (120 s, cold machines) and ``persistent_task_startup``
(20 s, ``run_config.persistent_resource``), and reports tasks, longest chain and modelled makespan for each.
"""

from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path

from kedro.pipeline import Pipeline, node

from kedro_vertex_runner.compiler.grouping import CostModel, TaskGroup, estimate, group_nodes, optimal_key_of
from kedro_vertex_runner.task.runners import MIN_WORKERS

MODES = ("makespan", "chains", "none")
STARTUP = 120.0
WORKERS = 1 if "--sequential" in sys.argv else MIN_WORKERS


def _step(*values: object) -> int:
    return 0


def _pipeline(parents: list[list[int]]) -> Pipeline:
    return Pipeline(
        [node(_step, [f"d{p}" for p in ps] or ["raw"], f"d{i}", name=f"n{i:04d}") for i, ps in enumerate(parents)]
    )


def layered(size: int, width: int, rng: random.Random) -> list[list[int]]:
    """Layers of ``width`` nodes, each reading one to three outputs of the layer before."""
    parents: list[list[int]] = []
    previous: list[int] = []
    while len(parents) < size:
        current = []
        for _ in range(min(width, size - len(parents))):
            ps = sorted(rng.sample(previous, min(len(previous), rng.randint(1, 3)))) if previous else []
            current.append(len(parents))
            parents.append(ps)
        previous = current
    return parents


def fan(size: int, width: int, rng: random.Random) -> list[list[int]]:
    """Stages of fan-out then fan-in: one node feeds ``width`` branches, which one node joins."""
    parents: list[list[int]] = [[]]
    while len(parents) < size:
        hub = len(parents) - 1
        branches = []
        for _ in range(min(rng.randint(2, width), size - len(parents))):
            branches.append(len(parents))
            parents.append([hub])
        if len(parents) < size:
            parents.append(branches)
    return parents


def chain_with_sides(size: int, width: int, rng: random.Random) -> list[list[int]]:
    """A long chain whose nodes each start a side branch of up to ``width`` nodes (reports, plots, exports)."""
    parents: list[list[int]] = [[]]
    spine = 0
    while len(parents) < size:
        for _ in range(min(rng.randint(0, width), size - len(parents))):
            parents.append([spine] if rng.random() < 0.6 or len(parents) - 1 == spine else [len(parents) - 1])
        if len(parents) < size:
            parents.append([spine])
            spine = len(parents) - 1
    return parents


def random_dag(size: int, width: int, rng: random.Random) -> list[list[int]]:
    """Each node reads zero to ``width`` earlier nodes, mostly recent ones."""
    parents: list[list[int]] = []
    for i in range(size):
        choices = list(range(max(0, i - 2 * width), i))
        parents.append(sorted(rng.sample(choices, min(len(choices), rng.randint(0, width)))) if choices else [])
    return parents


SHAPES = {"layered": layered, "fan": fan, "chain+sides": chain_with_sides, "random": random_dag}


def durations(count: int, regime: str, rng: random.Random) -> dict[str, float]:
    if regime == "secs":
        return {f"n{i:04d}": float(rng.randint(1, 20)) for i in range(count)}
    return {f"n{i:04d}": round(math.exp(rng.uniform(0, math.log(1800))), 1) for i in range(count)}


def describe(groups: list[TaskGroup], model: CostModel) -> tuple[int, int, float]:
    found = estimate(groups, model)
    return found.tasks, len(found.critical_path), found.makespan


def row(label: str, pipeline: Pipeline, model: CostModel, optimum: bool, fusable: object = None) -> list[float]:
    """Print one line per grouping; returns [makespan/optimum] when the optimum was computed."""
    cells = []
    ratio: list[float] = []
    for mode in MODES:
        start = time.perf_counter()
        groups = group_nodes(pipeline, mode, fusable=fusable, model=model)  # type: ignore[arg-type]
        seconds = time.perf_counter() - start
        tasks, chain, makespan = describe(groups, model)
        cells.append(f"{tasks:>5} {chain:>3} {makespan:>8.0f}")
        if mode == "makespan":
            took = seconds
            best = makespan
    line = f"{label:<28} {len(pipeline.nodes):>5}  " + "  ".join(cells) + f"  {took:>6.3f}"
    if optimum:
        opt_makespan, opt_tasks, _ = optimal_key_of(pipeline, fusable, model)  # type: ignore[arg-type]
        ratio.append(best / opt_makespan)
        line += f"  {opt_tasks:>5} {opt_makespan:>8.0f} {100 * (best / opt_makespan - 1):>6.1f}%"
    print(line)
    return ratio


def example_project() -> tuple[Pipeline, CostModel, object] | None:
    """The example project's default pipeline and task settings, with its last local run's node times if any."""
    project = Path(__file__).resolve().parents[1] / "examples" / "demo_project"
    try:
        import yaml
        from kedro.framework.project import pipelines
        from kedro.framework.startup import bootstrap_project

        from kedro_vertex_runner.compiler.spec import task_settings
        from kedro_vertex_runner.config import validate_config
        from kedro_vertex_runner.task.timings import last_run_durations
    except ImportError:
        return None
    bootstrap_project(project)
    pipeline = pipelines["__default__"]
    config = validate_config(yaml.safe_load((project / "conf" / "base" / "vertexai.yml").read_text()))
    recorded = last_run_durations(str(project / config.run_config.root), ("__default__",))
    # as compile models it: nodes linked by a value kept in memory run in one process, one after another
    from kedro.framework.session import KedroSession

    from kedro_vertex_runner.task.persistence import held_in_memory
    from kedro_vertex_runner.task.runners import FORK_COST

    with KedroSession.create(project_path=project) as session:
        catalog = session.load_context().catalog
    transient = frozenset(
        name
        for name in pipeline.datasets()
        if not name.startswith("params:") and name != "parameters"
        and (name not in catalog or held_in_memory(catalog, name))
    )  # fmt: skip
    model = CostModel(
        task_startup=STARTUP, task_workers=WORKERS, durations=recorded, parallel_cost=FORK_COST, transient=transient
    )
    return pipeline, model, task_settings(config.run_config).same


PERSISTENT_STARTUP = 20.0  # the default of grouping_options.persistent_task_startup


def runtimes() -> None:
    """``makespan`` under both runtimes: a job on a persistent resource is split where a cold job is fused."""
    from dataclasses import replace

    print(f"{'graph (makespan grouping)':<34} {'nodes':>5}  {'cold: tasks chain makespan':>26}  {'persistent':>26}")
    cases: list[tuple[str, Pipeline, CostModel, object]] = []
    for shape, regime in (("layered", "secs"), ("layered", "mixed"), ("fan", "mixed"), ("chain+sides", "mixed")):
        rng = random.Random(f"{shape}-{regime}-1000")
        parents = SHAPES[shape](1000, 20 if shape == "layered" else 4, rng)
        model = CostModel(task_startup=STARTUP, task_workers=WORKERS, durations=durations(1000, regime, rng))
        cases.append((f"{shape} {regime}", _pipeline(parents), model, None))
    found = example_project()
    if found is not None:
        pipeline, model, fusable = found
        cases.append((f"example ({len(model.durations)} timed)", pipeline, model, fusable))
    for label, pipeline, model, fusable in cases:
        cells = []
        for startup in (STARTUP, PERSISTENT_STARTUP):
            runtime_model = replace(model, task_startup=startup)
            groups = group_nodes(pipeline, "makespan", fusable=fusable, model=runtime_model)  # type: ignore[arg-type]
            tasks, chain, makespan = describe(groups, runtime_model)
            cells.append(f"{tasks:>5} {chain:>5} {makespan:>14.0f}")
        print(f"{label:<34} {len(pipeline.nodes):>5}  " + "  ".join(f"{cell:>26}" for cell in cells))


def main(argv: list[str]) -> None:
    if "--runtimes" in argv:
        runtimes()
        return
    small_only = "--small" in argv
    header = "  ".join(f"{m + ' tasks chain makespan':>18}" for m in MODES)
    print(f"{'graph':<28} {'nodes':>5}  {header}  {'sec':>6}  {'opt tasks makespan gap':>22}")
    ratios: list[float] = []
    for regime in ("secs", "mixed"):
        for shape, build in SHAPES.items():
            for seed in range(3):
                for size in (8, 10, 12):
                    rng = random.Random(f"{shape}-{regime}-{seed}-{size}")
                    parents = build(size, 3, rng)
                    model = CostModel(
                        task_startup=STARTUP, task_workers=WORKERS, durations=durations(size, regime, rng)
                    )
                    ratios += row(f"{shape} {regime} #{seed}", _pipeline(parents), model, optimum=True)
    worst, mean = max(ratios), sum(ratios) / len(ratios)
    print(f"small graphs: {len(ratios)}, worst makespan/optimum {worst:.3f}, mean {mean:.3f}")
    if small_only:
        return
    for regime in ("secs", "mixed"):
        for shape, build in SHAPES.items():
            for size in (20, 100, 1000, 5000):
                rng = random.Random(f"{shape}-{regime}-{size}")
                parents = build(size, 20 if shape == "layered" else 4, rng)
                model = CostModel(task_startup=STARTUP, task_workers=WORKERS, durations=durations(size, regime, rng))
                row(f"{shape} {regime}", _pipeline(parents), model, optimum=False)
    found = example_project()
    if found is not None:
        pipeline, model, fusable = found
        row(f"example ({len(model.durations)} timed)", pipeline, model, len(pipeline.nodes) <= 12, fusable)
    runtimes()


if __name__ == "__main__":
    main(sys.argv[1:])
