"""How compile time and spec size grow with the number of Kedro nodes.

Builds synthetic layered pipelines (each layer's nodes read two outputs of the layer before, so the graph has both
fan-in and fan-out, plus a linear tail that ``chains`` can fuse), compiles them in-process with ``grouping: none``
and ``grouping: chains`` and prints the best of a few runs. Pipeline construction is not timed: it is Kedro's cost,
paid once per ``kedro run`` whatever the runner.

    python bench/compile_scaling.py            # 100, 1000 and 5000 nodes
    python bench/compile_scaling.py 200 2000   # other sizes
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from kedro.pipeline import Pipeline, node

from kedro_vertex_runner.compiler import CompileRequest, compile_spec
from kedro_vertex_runner.compiler.spec import write_spec
from kedro_vertex_runner.config import validate_config

WIDTH = 20
REPEATS = 3


def _step(*values: object) -> int:
    return 0


def layered_pipeline(size: int) -> Pipeline:
    """``size`` nodes: layers of ``WIDTH`` nodes, each reading two outputs of the previous layer; every fifth
    layer position continues in a short private chain."""
    nodes = []
    previous: list[str] = []
    count = 0
    layer = 0
    while count < size:
        current = []
        for i in range(WIDTH):
            if count >= size:
                break
            out = f"d_{layer}_{i}"
            if previous:
                inputs = sorted({previous[i % len(previous)], previous[(i + 1) % len(previous)]})
            else:
                inputs = ["params:seed"]
            if i % 5 == 4 and previous:
                inputs = [f"c_{layer - 1}_{i}"]  # chain: sole consumer of a sole producer
            nodes.append(node(_step, inputs, out, name=f"layer_{layer}.node_{i}", tags=[f"t{i % 3}"]))
            current.append(out)
            count += 1
            if i % 5 == 3 and count < size:
                nodes.append(node(_step, out, f"c_{layer}_{i + 1}", name=f"layer_{layer}.tail_{i}"))
                count += 1
        previous = current
        layer += 1
    return Pipeline(nodes)


def config(grouping: str):
    return validate_config(
        {
            "project_id": "bench-project",
            "region": "europe-west1",
            "run_config": {
                "image": "europe-docker.pkg.dev/bench/repo/image:1",
                "root": "bench-bucket/runs",
                "grouping": grouping,
                "resources": {
                    "__default__": {"cpu": "1", "memory": "2Gi"},
                    "t1": {"cpu": "2", "retries": 2},
                    "layer_3.node_4": {"memory": "8Gi"},
                },
                "network": {"host_aliases": [{"ip": "10.0.0.2", "hostnames": ["mlflow.internal"]}]},
            },
        }
    )


def measure(size: int, grouping: str, runtime_params: dict) -> tuple[float, int, int]:
    """Best of ``REPEATS`` compiles, each of a freshly built pipeline (so Kedro's own toposort and dependency
    maps, cached on the pipeline, are part of the time), and the size of the spec as ``write_spec`` writes it."""
    best = float("inf")
    spec: dict = {}
    plugin_config = config(grouping)
    for _ in range(REPEATS):
        request = CompileRequest(
            pipeline=layered_pipeline(size),
            config=plugin_config,
            runtime_params=runtime_params,
            project_name="bench",
            commit_id="0" * 40,
            branch_name="main",
            # nothing declared: every dataset passing between tasks is stored per run and declared as an artifact
            declared=frozenset(),
        )
        start = time.perf_counter()
        spec = compile_spec(request)
        best = min(best, time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as folder:
        size_bytes = write_spec(spec, Path(folder) / "pipeline.json").stat().st_size
    tasks = len(spec["deploymentSpec"]["executors"])
    return best, size_bytes, tasks


def main(sizes: list[int]) -> None:
    """Every task carries each runtime parameter three times (input definition, task input, argument), so the
    spec size is shown for one and for three ``--params``."""
    print(f"{'nodes':>6} {'grouping':>8} {'tasks':>6} {'compile s':>10} {'ms/node':>8} {'MB 1 param':>11} {'MB 3':>6}")
    for size in sizes:
        for grouping in ("none", "chains", "makespan"):
            seconds, size_one, tasks = measure(size, grouping, {"seed": 42})
            _, size_three, _ = measure(size, grouping, {"seed": 42, "alpha": 0.5, "name": "bench"})
            print(
                f"{size:>6} {grouping:>8} {tasks:>6} {seconds:>10.3f} {1000 * seconds / size:>8.3f} "
                f"{size_one / 1e6:>11.2f} {size_three / 1e6:>6.2f}"
            )


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]] or [100, 1000, 5000])
