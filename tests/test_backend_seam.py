"""The backend seam: a new backend is one module plus one registry line, and nothing else names a backend.

``EchoBackend`` below is a whole backend: it is registered by adding one line to ``REGISTRY`` (in-process), then
driven through the real ``kedro vertexai`` click commands in a copy of the example project. A command it has no
capability for is refused in one line before anything is compiled.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner

from kedro_vertex_runner.backends import REGISTRY, backend_class
from kedro_vertex_runner.backends.base import (
    Backend,
    Capability,
    JobFailed,
    JobHandle,
    JobRequest,
    JobSummary,
    SilentReporter,
    TaskState,
)
from kedro_vertex_runner.errors import PluginError

PACKAGE = Path(__file__).resolve().parents[1] / "kedro_vertex_runner"


class EchoBackend(Backend):
    """Runs nothing: keeps every job it is given and says that it ran."""

    name: ClassVar[str] = "echo"
    title: ClassVar[str] = "Echo"
    root_schemes: ClassVar[tuple[str, ...]] = ("gs",)
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.RUN, Capability.SUBMIT, Capability.LIST, Capability.UI}
    )
    needs_gcp_project: ClassVar[bool] = False
    jobs: ClassVar[list[JobRequest]] = []

    def start(self, job: JobRequest) -> JobHandle:
        EchoBackend.jobs.append(job)
        handle = JobHandle(job_id=f"echo-{len(EchoBackend.jobs)}", url="echo://jobs", run_key={"job_id": "x"})
        self.reporter.info(f"Submitted echo job {handle.job_id}")
        return handle

    def follow(self, job: JobHandle, *, cancel_on_interrupt: bool = False) -> None:
        tasks = [
            TaskState(name=task["taskInfo"]["name"], state="SUCCEEDED")
            for task in EchoBackend.jobs[-1].spec["root"]["dag"]["tasks"].values()
        ]
        self.reporter.progress(job, tasks, "SUCCEEDED")

    def list_jobs(self, limit: int = 20) -> list[JobSummary]:
        return [JobSummary(job_id=f"echo-{n}", state="SUCCEEDED", url="echo://jobs") for n in range(1, 3)][:limit]

    def list_schedules(self) -> list[Any]:
        return []

    def ui_url(self) -> str:
        return "echo://ui"


@pytest.fixture
def echo(demo_project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setitem(REGISTRY, "echo", f"{__name__}:EchoBackend")  # the one registry line
    backend_class.cache_clear()
    EchoBackend.jobs.clear()
    config = demo_project / "conf" / "base" / "vertexai.yml"
    config.write_text(config.read_text() + "  mlflow:\n    enabled: false\n")
    monkeypatch.chdir(demo_project)
    monkeypatch.setenv("CI", "true")  # `ui` opens no browser
    yield demo_project
    backend_class.cache_clear()


def invoke(*args: str) -> Any:
    from kedro_vertex_runner.cli import commands

    return CliRunner().invoke(commands, ["vertexai", *args], catch_exceptions=False)


def test_a_registered_backend_is_driven_by_the_commands(echo: Path) -> None:
    ran = invoke("run-once", "--backend", "echo", "-p", "data_processing")
    assert ran.exit_code == 0, ran.output
    (job,) = EchoBackend.jobs
    assert job.pipeline_name == "data_processing" and job.spec["pipelineInfo"]["name"]
    assert "Submitted echo job echo-1" in ran.stdout
    assert "job echo-1: SUCCEEDED" in ran.stdout  # the CLI's reporter drew the backend's progress

    submitted = invoke("run-once", "--backend", "echo", "--no-wait")
    assert submitted.exit_code == 0 and "job echo-2: SUCCEEDED" not in submitted.stdout

    listed = invoke("list-pipelines", "--backend", "echo")
    assert listed.exit_code == 0 and "echo-1" in listed.stdout and "echo-2" in listed.stdout
    assert "No schedules." in listed.stdout

    ui = invoke("ui", "--backend", "echo")
    assert ui.exit_code == 0 and "echo://ui" in ui.stdout.splitlines()


def test_a_command_the_backend_cannot_do_is_one_line(echo: Path) -> None:
    refused = invoke("schedule", "--backend", "echo", "--cron", "0 6 * * *")
    assert refused.exit_code == 1
    assert [line for line in refused.stderr.splitlines() if line.startswith("Error:")] == [
        "Error: backend 'echo' cannot schedule recurring runs; set run_config.backend (or --runner-params "
        "backend=) to one that can: "
        + ", ".join(name for name in REGISTRY if Capability.SCHEDULE in backend_class(name).capabilities)
    ]
    assert EchoBackend.jobs == []
    unknown = invoke("ui", "--backend", "nope")
    assert unknown.exit_code == 1
    assert "Error: backend 'nope' is not known: use one of 'local', 'vertex'" in unknown.stderr


def test_the_shared_flow_tells_how_a_job_ended() -> None:
    from kedro_vertex_runner.config import validate_config

    config = validate_config(
        {"project_id": "proj-1", "region": "europe-west1", "run_config": {"image": "i", "root": "gs://b/r"}}
    )
    spec = {"root": {"dag": {"tasks": {"a": {"taskInfo": {"name": "a"}}}}}}
    ended: list[tuple[str, bool]] = []

    class Failing(EchoBackend):
        def follow(self, job: JobHandle, *, cancel_on_interrupt: bool = False) -> None:
            raise JobFailed(f"job {job.job_id} FAILED", job)

    def on_end(job: JobHandle, succeeded: bool) -> None:
        ended.append((job.job_id, succeeded))

    EchoBackend.jobs.clear()
    EchoBackend(config, SilentReporter()).run(JobRequest(spec=spec), on_end=on_end)
    with pytest.raises(JobFailed, match="echo-2 FAILED"):
        Failing(config).run(JobRequest(spec=spec), on_end=on_end)
    Failing(config).run(JobRequest(spec=spec), wait=False, on_end=on_end)
    assert ended == [("echo-1", True), ("echo-2", False)]  # a job left running has not ended
    with pytest.raises(PluginError, match="run_id=r1: only the local backend takes a run id"):
        EchoBackend(config).run(JobRequest(spec=spec, run_id="r1"))


def _backend_literals(path: Path) -> list[str]:
    """String constants of ``path`` (docstrings aside) that are a registered backend's name, quote one or set
    ``backend=`` to one, with their line (prose such as "a failed local run" is not a name)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value
            if any(
                text == name or f"'{name}'" in text or f'"{name}"' in text or f"backend={name}" in text
                for name in REGISTRY
            ):
                found.append(f"{path.name}:{node.lineno}: {text!r}")
    return found


@pytest.mark.parametrize("module", ["runner.py", "project.py", "cli.py", "mlflow_tracking.py"])
def test_no_backend_is_named_outside_the_backends(module: str) -> None:
    assert _backend_literals(PACKAGE / module) == []


def test_the_literal_check_sees_a_name() -> None:
    sample = PACKAGE.parent / "tests" / "test_backend_seam.py"
    assert any("'local'" in hit for hit in _backend_literals(sample))


def _backend_branches(source: str, where: str) -> list[str]:
    """The places of ``source`` that decide something by a registered backend's name: a comparison of a backend
    with a name (``backend == "local"``, ``run_config.backend not in ("vertex", …)``), a backend looked up or
    passed by a literal name (``open_backend(config, "vertex")``, ``backend="kubeflow"``), a mapping setting
    ``"backend": "kubeflow"``, or a ``match`` case on one."""

    def names_one(node: ast.AST | None) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in REGISTRY
        return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(names_one(item) for item in node.elts)

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            hit = "backend" in ast.unparse(node) and any(names_one(side) for side in [node.left, *node.comparators])
        elif isinstance(node, ast.Call):
            hit = ("backend" in ast.unparse(node.func).lower() and any(names_one(arg) for arg in node.args)) or any(
                "backend" in (keyword.arg or "") and names_one(keyword.value) for keyword in node.keywords
            )
        elif isinstance(node, ast.Dict):
            hit = any(
                isinstance(key, ast.Constant) and key.value == "backend" and names_one(value)
                for key, value in zip(node.keys, node.values, strict=True)
            )
        elif isinstance(node, ast.match_case):
            hit = isinstance(node.pattern, ast.MatchValue) and names_one(node.pattern.value)
        else:
            continue
        if hit:
            line = node.pattern.lineno if isinstance(node, ast.match_case) else node.lineno
            found.append(f"{where}:{line}: {ast.unparse(node)}")
    return found


def test_no_module_outside_the_backends_branches_on_a_backend_name() -> None:
    """What differs between backends is a class attribute, a hook or a settings module of the backend itself."""
    outside = [path for path in sorted(PACKAGE.rglob("*.py")) if "backends" not in path.relative_to(PACKAGE).parts]
    assert len(outside) > 30  # the whole package, not a chosen few
    found = [
        hit
        for path in outside
        for hit in _backend_branches(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE)))
    ]
    assert found == []


def test_the_branch_check_sees_each_kind_of_branch() -> None:
    sample = """
if run_config.backend != "vertex": pass
if value.get("backend") == "kubeflow": pass
if backend in ("local", "other"): pass
open_backend(config, "vertex")
get(backend="kubeflow")
raw = {"backend": "kubeflow", **raw}
match backend:
    case "local": pass
if protocol not in ("file", "local"): pass  # fsspec's "local", not a backend
resolver = "vertex"
"""
    assert [hit.split(":")[1] for hit in _backend_branches(sample, "sample")] == [
        "2", "3", "4", "5", "6", "7", "9"
    ]  # fmt: skip
