"""The local backend runs hand-written PipelineSpecs whose tasks are small ``python -c`` programs.

Every task is a real process; the tests look at what the processes wrote (timestamps, argv, environment) and at
what the backend printed, never at the backend's internals.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import subprocess_env
from picture_html import assert_self_contained, read_picture
from rich.console import Console

from kedro_vertex_runner.backends.local import (
    LocalRunFailed,
    backoff_seconds,
    run_spec,
)
from kedro_vertex_runner.console import ConsoleReporter
from kedro_vertex_runner.errors import PluginError

# A task program: records its argv, a few env vars, cwd and start/end times in $OUT/<task>.json, then runs BODY.
RECORDER = textwrap.dedent(
    """
    import json, os, sys, time
    name = os.environ["TASK"]
    record = {"argv": sys.argv[1:], "cwd": os.getcwd(), "exe": sys.executable, "start": time.time(),
              "env": {k: os.environ.get(k) for k in ("EXTRA", "WHO", "DO_NOT_TRACK")}}
    def save():
        record["end"] = time.time()
        with open(os.path.join(os.environ["OUT"], name + ".json"), "w") as f:
            json.dump(record, f)
    """
)


def program(body: str = "") -> str:
    return RECORDER + textwrap.dedent(body) + "\nsave()\n"


def executor(code: str, args: list[str] | None = None, env: dict[str, str] | None = None) -> dict:
    return {
        "container": {
            "image": "ignored:latest",
            "command": ["python", "-c", code],
            "args": args or [],
            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
        }
    }


def make_spec(
    tasks: dict[str, dict],
    *,
    params: dict[str, tuple[str, object]] | None = None,
    exit_tasks: dict[str, dict] | None = None,
) -> dict:
    """A spec in the compiler's format. ``tasks``: name -> dict(code, deps, args, env, retry, inputs).

    With ``exit_tasks`` the normal tasks sit in ``exit-handler-1``'s sub-DAG, as the compiler emits them.
    """
    components: dict = {}
    executors: dict = {}

    def dag_tasks(group: dict[str, dict], parent_inputs: bool) -> dict:
        out = {}
        for name, t in group.items():
            components[f"comp-{name}"] = {"executorLabel": f"exec-{name}"}
            args = ["--run-id={{$.pipeline_job_uuid}}", f"--node={t.get('node', f'node_{name}')}", *t.get("args", [])]
            executors[f"exec-{name}"] = executor(t["code"], args, {"TASK": name, **t.get("env", {})})
            task = {
                "taskInfo": {"name": name},
                "componentRef": {"name": f"comp-{name}"},
                "dependentTasks": list(t.get("deps", [])),
                "cachingOptions": {},
                "inputs": {"parameters": {p: {"componentInputParameter": p} for p in t.get("inputs", [])}},
            }
            if "retry" in t:
                task["retryPolicy"] = t["retry"]
            if t.get("always"):
                task["triggerPolicy"] = {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
            out[name] = task
        return out

    definitions = {
        name: {"parameterType": kind, "defaultValue": value} for name, (kind, value) in (params or {}).items()
    }
    root_tasks = dag_tasks(tasks, False)
    if exit_tasks:
        components["comp-exit-handler-1"] = {
            "dag": {"tasks": root_tasks},
            "inputDefinitions": {
                "parameters": {name: {"parameterType": d["parameterType"]} for name, d in definitions.items()}
            },
        }
        root_tasks = {
            "exit-handler-1": {
                "taskInfo": {"name": "exit-handler-1"},
                "componentRef": {"name": "comp-exit-handler-1"},
                "inputs": {"parameters": {p: {"componentInputParameter": p} for p in definitions}},
            }
        }
        for name, task in dag_tasks(exit_tasks, False).items():
            task["dependentTasks"] = ["exit-handler-1"]
            task["triggerPolicy"] = {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
            root_tasks[name] = task
    return {
        "pipelineInfo": {"name": "test-pipeline"},
        "root": {"inputDefinitions": {"parameters": definitions}, "dag": {"tasks": root_tasks}},
        "components": components,
        "deploymentSpec": {"executors": executors},
        "schemaVersion": "2.1.0",
        "sdkVersion": "kfp-2.17.0",
    }


class Run:
    """One run_spec call in a temp project dir, with its console output captured."""

    def __init__(self, tmp_path: Path):
        self.project = tmp_path / "project"
        self.out = tmp_path / "out"
        self.project.mkdir()
        self.out.mkdir()
        self.buffer = io.StringIO()

    def __call__(self, spec: dict, **kwargs):
        kwargs.setdefault("root", "runs")
        kwargs.setdefault("run_id", "run-1")
        kwargs.setdefault("max_workers", 2)
        env = {"OUT": str(self.out), **kwargs.pop("extra_env", {})}
        console = kwargs.pop("console", None) or Console(file=self.buffer, width=200, force_terminal=False)
        return run_spec(spec, project_dir=self.project, extra_env=env, reporter=ConsoleReporter(console), **kwargs)

    @property
    def output(self) -> str:
        return self.buffer.getvalue()

    def record(self, task: str) -> dict:
        return json.loads((self.out / f"{task}.json").read_text())

    def ran(self, task: str) -> bool:
        return (self.out / f"{task}.json").exists()


@pytest.fixture
def run(tmp_path: Path) -> Run:
    return Run(tmp_path)


def test_independent_tasks_overlap_and_dependencies_wait(run: Run):
    sleepy = program("time.sleep(0.8)")
    spec = make_spec(
        {
            "left": {"code": sleepy},
            "right": {"code": sleepy},
            "join": {"code": program(), "deps": ["left", "right"]},
            "last": {"code": program(), "deps": ["join"]},
        }
    )
    result = run(spec, max_workers=2)

    left, right, join, last = (run.record(t) for t in ("left", "right", "join", "last"))
    assert left["start"] < right["end"] and right["start"] < left["end"], "independent tasks did not overlap"
    assert join["start"] >= max(left["end"], right["end"])
    assert last["start"] >= join["end"]
    assert result.succeeded and result.run_id == "run-1"
    assert {t.state for t in result.tasks.values()} == {"SUCCEEDED"}
    run_dir = run.project / "runs" / "run-1"
    assert result.run_dir == str(run_dir)
    assert (
        f"Run run-1 finished: 4 tasks succeeded; intermediate data in {run_dir}/; logs in {run_dir}/logs/" in run.output
    )
    assert sorted(p.name for p in (run_dir / "logs").glob("*.log")) == ["join.log", "last.log", "left.log", "right.log"]
    # plain status lines: one per state change, with the task's node
    assert "left (node_left): RUNNING" in run.output
    assert "last (node_last): SUCCEEDED in " in run.output


def test_max_workers_one_runs_tasks_one_at_a_time(run: Run):
    sleepy = program("time.sleep(0.3)")
    run(make_spec({"a": {"code": sleepy}, "b": {"code": sleepy}}), max_workers=1)
    a, b = run.record("a"), run.record("b")
    assert a["end"] <= b["start"] or b["end"] <= a["start"]


def test_placeholders_parameters_environment_and_interpreter(run: Run):
    params = {
        "text": ("STRING", 'it\'s $(rm -rf /); echo "hi" | cat'),
        "count": ("NUMBER_INTEGER", 3.0),  # protobuf Struct numbers come back as doubles
        "ratio": ("NUMBER_DOUBLE", 0.5),
        "flag": ("BOOLEAN", True),
        "items": ("LIST", ["a", 1, None]),
        "options": ("STRUCT", {"alpha": 1.0, "name": "x y", "nested": {"k": [1, 2]}}),
    }
    args = ["--job-name={{$.pipeline_job_name}}", "--task", "{{$.pipeline_task_name}}", "--root={{$.pipeline_root}}"]
    for name, (kind, _) in params.items():
        args.append(f"--param={kind}:{name}={{{{$.inputs.parameters['{name}']}}}}")
    spec = make_spec(
        {
            "probe": {
                "code": program(),
                "args": args,
                "inputs": list(params),
                "env": {"WHO": "{{$.pipeline_task_name}}@{{$.pipeline_job_uuid}}"},
            }
        },
        params=params,
    )
    run(spec, run_id="abc-123", job_name="my-job", parameter_values={"ratio": 2.5}, extra_env={"EXTRA": "yes"})

    record = run.record("probe")
    assert record["argv"] == [
        "--run-id=abc-123", "--node=node_probe",
        "--job-name=my-job", "--task", "probe", f"--root={run.project / 'runs'}",
        "--param=STRING:text=it's $(rm -rf /); echo \"hi\" | cat",
        "--param=NUMBER_INTEGER:count=3",
        "--param=NUMBER_DOUBLE:ratio=2.5",
        "--param=BOOLEAN:flag=true",
        '--param=LIST:items=["a",1,null]',
        '--param=STRUCT:options={"alpha":1.0,"name":"x y","nested":{"k":[1,2]}}',
    ]  # fmt: skip
    assert record["env"] == {"EXTRA": "yes", "WHO": "probe@abc-123", "DO_NOT_TRACK": "1"}
    assert Path(record["cwd"]) == run.project.resolve()
    assert record["exe"] == sys.executable
    log = run.project / "runs" / "abc-123" / "logs" / "probe.log"
    assert "attempt 1 of 1" in log.read_text()


def test_runtime_value_constants_of_task_inputs_take_the_jobs_values_as_on_kubeflow(run: Run):
    """The form compiled for Kubeflow Pipelines: the job's ids reach a task only as input constants, which the
    engine's driver replaces when a constant is exactly one job placeholder (other constants pass as they are)."""
    constants = {"job_uuid": "{{$.pipeline_job_uuid}}", "job_name": "{{$.pipeline_job_name}}",
                 "task": "{{$.pipeline_task_name}}", "plain": "x {{$.pipeline_job_uuid}}"}  # fmt: skip
    args = [f"--{key}={{{{$.inputs.parameters['{key}']}}}}" for key in constants]
    spec = make_spec(
        {"probe": {"code": program(), "args": args}}, exit_tasks={"after": {"code": program(), "args": args}}
    )
    for dag in (spec["components"]["comp-exit-handler-1"]["dag"], spec["root"]["dag"]):
        for name, task in dag["tasks"].items():
            if name == "exit-handler-1":
                continue
            task["inputs"]["parameters"] = {k: {"runtimeValue": {"constant": v}} for k, v in constants.items()}
            spec["components"][f"comp-{name}"]["inputDefinitions"] = {
                "parameters": {key: {"parameterType": "STRING"} for key in constants}
            }
    run(spec, run_id="abc-123", job_name="my-job")
    for task in ("probe", "after"):
        assert run.record(task)["argv"][2:] == [
            "--job_uuid=abc-123",
            "--job_name=my-job",
            f"--task={task}",
            "--plain=x {{$.pipeline_job_uuid}}",
        ]


def test_failure_skips_dependents_lets_siblings_finish_and_runs_exit_handler(run: Run):
    noisy_failure = program(
        """
        for i in range(1, 31):
            print(f"line-{i:02d}")
        print("ValueError: the data is bad", flush=True)
        sys.exit(3)
        """
    )
    spec = make_spec(
        {
            "first": {"code": program()},
            "broken": {"code": noisy_failure, "deps": ["first"], "node": "model.train"},
            "after": {"code": program(), "deps": ["broken"]},
            "after-after": {"code": program(), "deps": ["after"]},
            "sibling": {"code": program("time.sleep(1.0)"), "deps": ["first"]},
        },
        exit_tasks={"notify": {"code": program()}},
    )
    with pytest.raises(LocalRunFailed) as caught:
        run(spec, max_workers=3)

    message = str(caught.value)
    assert "\n" not in message
    assert "node model.train" in message and "exit 3" in message
    assert "ValueError: the data is bad" in message
    assert "logs in " in message and "run-1" in message
    assert caught.value.exit_code != 0
    states = {name: task.state for name, task in caught.value.result.tasks.items()}
    assert states == {
        "first": "SUCCEEDED",
        "broken": "FAILED",
        "after": "SKIPPED",
        "after-after": "SKIPPED",
        "sibling": "SUCCEEDED",
        "notify": "SUCCEEDED",
    }
    assert run.ran("sibling") and run.ran("notify")
    assert not run.ran("after") and not run.ran("after-after")
    assert run.record("notify")["start"] >= run.record("sibling")["end"]  # exit handler runs after everything
    # the tail of the failed task's log is printed: the last 20 lines, not the first ones
    output = run.output
    assert "broken (model.train): FAILED (exit 3)" in output
    assert "after (node_after): SKIPPED (broken failed)" in output
    assert "line-30" in output and "line-12" in output
    assert "line-11" not in output
    assert "ValueError: the data is bad" in output
    # the run folder's picture: every task with its state, on the timeline if it ran, its log linked
    picture = read_picture(run.project / "runs" / "run-1" / "report.html")
    assert picture.states("graph") == states
    assert picture.states("gantt") == {name: state for name, state in states.items() if state != "SKIPPED"}
    assert set(picture.attribute("data-node")) >= {"model.train", "node_first", "node_after", "node_notify"}
    assert "exit 3" in picture.text
    assert "logs/broken.log" in picture.links()
    assert_self_contained(picture)


def test_fail_fast_starts_no_task_after_a_failure_but_runs_the_exit_handler(run: Run):
    """run_config.failure_policy: fast, as Vertex AI's FAIL_FAST: the running sibling finishes, nothing new starts."""
    spec = make_spec(
        {
            "broken": {"code": program("open(os.path.join(os.environ['OUT'], 'failing'), 'w').close(); sys.exit(2)")},
            # still running when broken fails: waits for it, then a little longer than the scheduler's poll
            "slow-sibling": {
                "code": program(
                    "while not os.path.exists(os.path.join(os.environ['OUT'], 'failing')): time.sleep(0.02)\n"
                    "time.sleep(0.5)"
                )
            },
            "later": {"code": program()},  # independent, but waits for a free worker
        },
        exit_tasks={"notify": {"code": program()}},
    )
    with pytest.raises(LocalRunFailed) as caught:
        run(spec, max_workers=2, fail_fast=True)
    states = {name: task.state for name, task in caught.value.result.tasks.items()}
    assert states == {"broken": "FAILED", "slow-sibling": "SUCCEEDED", "later": "SKIPPED", "notify": "SUCCEEDED"}
    assert not run.ran("later") and run.ran("notify")
    assert "later (node_later): SKIPPED (failure_policy fast: broken failed)" in run.output


# a task says which node failed, or was running when it ended, in its report file (task.contract.TaskReport)
REPORTS = "from kedro_vertex_runner.task.contract import TaskReport, report_path\n"


def test_failed_node_of_a_multi_node_task_is_named(run: Run):
    spec = make_spec(
        {
            "chain": {
                "code": program(
                    REPORTS + 'TaskReport("failed", "b.second", "RuntimeError: x").write(report_path())\n'
                    "print(\"Error: node 'b.second' failed: RuntimeError: x\", file=sys.stderr); sys.exit(1)"
                ),
                "node": "a.first",
                "args": ["--node=b.second"],
            }
        }
    )
    with pytest.raises(LocalRunFailed) as caught:
        run(spec)

    assert caught.value.result.tasks["chain"].failed_node == "b.second"
    assert "task chain failed (exit 1): node 'b.second' failed: RuntimeError: x;" in str(caught.value)
    assert "Task chain (nodes a.first, b.second) failed (exit 1); last " in run.output


def test_node_running_when_its_task_is_killed_is_named(run: Run):
    killed = (
        REPORTS
        + """
TaskReport("running", "a.first").write(report_path())
TaskReport("running", "b.second").write(report_path())
print("b.second is working", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
    )
    spec = make_spec({"chain": {"code": "import signal\n" + program(killed), "node": "a.first",
                                "args": ["--node=b.second", "--node=c.third"]}})  # fmt: skip
    with pytest.raises(LocalRunFailed) as caught:
        run(spec)

    assert caught.value.result.tasks["chain"].failed_node == "b.second"
    assert "node 'b.second' (task chain) failed (killed by SIGKILL): b.second is working;" in str(caught.value)
    # a task that reports nothing (not the entrypoint) still fails with its nodes listed
    silent = make_spec({"chain": {"code": program("sys.exit(2)"), "node": "a.first", "args": ["--node=b.second"]}})
    with pytest.raises(LocalRunFailed) as caught:
        run(silent, run_id="run-2")
    assert caught.value.result.tasks["chain"].failed_node is None
    assert "nodes a.first, b.second (task chain) failed (exit 2)" in str(caught.value)


def test_retry_succeeds_on_second_attempt_and_gives_up_after_the_last(run: Run):
    flaky = program(
        """
        marker = os.path.join(os.environ["OUT"], "flaky.marker")
        if not os.path.exists(marker):
            open(marker, "w").close()
            print("transient failure")
            sys.exit(1)
        print("worked this time")
        """
    )
    always_fails = program("print('still broken'); sys.exit(2)")
    retry = {"maxRetryCount": 1, "backoffDuration": "0.2s", "backoffFactor": 2.0, "backoffMaxDuration": "3600s"}
    spec = make_spec({"flaky": {"code": flaky, "retry": retry}, "hopeless": {"code": always_fails, "retry": retry}})
    with pytest.raises(LocalRunFailed) as caught:
        run(spec)

    tasks = caught.value.result.tasks
    assert (tasks["flaky"].state, tasks["flaky"].attempts) == ("SUCCEEDED", 2)
    assert (tasks["hopeless"].state, tasks["hopeless"].attempts) == ("FAILED", 2)
    log = (run.project / "runs" / "run-1" / "logs" / "flaky.log").read_text()
    assert log.index("transient failure") < log.index("attempt 2 of 2") < log.index("worked this time")
    assert "flaky (node_flaky): FAILED (exit 1), retrying in 0.2s (attempt 2 of 2)" in run.output
    assert "node node_hopeless" in str(caught.value)
    picture = read_picture(run.project / "runs" / "run-1" / "report.html")
    assert picture.states() == {"flaky": "SUCCEEDED", "hopeless": "FAILED"}
    assert picture.attribute("data-attempts", "gantt") == ["2", "2"]
    assert "exit 2" in picture.text  # why the last attempt failed


def test_backoff_honours_the_policy_but_local_waits_are_capped():
    assert backoff_seconds(1, 2, 3600, attempt=1, cap=5) == 1
    assert backoff_seconds(1, 2, 3600, attempt=3, cap=5) == 4
    assert backoff_seconds(1, 2, 3, attempt=3, cap=5) == 3
    assert backoff_seconds(30, 2, 3600, attempt=1, cap=5) == 5


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is dead, just not reaped by its new parent


SPAWNS_AND_SLEEPS = program(
    """
    import subprocess
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    with open(os.path.join(os.environ["OUT"], name + ".pids"), "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(60)
    """
)


def test_timeout_kills_the_task_and_everything_it_started(run: Run):
    spec = make_spec(
        {
            "slow": {"code": SPAWNS_AND_SLEEPS, "args": ["--timeout=1"]},
            "after": {"code": program(), "deps": ["slow"]},
        }
    )
    started = time.monotonic()
    with pytest.raises(LocalRunFailed) as caught:
        run(spec)
    assert time.monotonic() - started < 15
    assert "timed out after 1 s" in str(caught.value)
    assert "slow (node_slow): FAILED (timed out after 1 s)" in run.output
    assert caught.value.result.tasks["after"].state == "SKIPPED"
    pids = [int(p) for p in (run.out / "slow.pids").read_text().split()]
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


DRIVER = textwrap.dedent(
    """
    import json, signal, sys
    from rich.console import Console
    from kedro_vertex_runner.backends.local import run_spec
    from kedro_vertex_runner.console import ConsoleReporter
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if our parent ignores SIGINT
    spec = json.load(open(sys.argv[1]))
    try:
        run_spec(spec, project_dir=sys.argv[2], root="runs", run_id="ctrl-c", max_workers=2,
                 extra_env={"OUT": sys.argv[3]}, reporter=ConsoleReporter(Console(width=200)))
    except KeyboardInterrupt:
        print("driver saw KeyboardInterrupt", flush=True)
        sys.exit(130)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_every_task_process_and_starts_nothing_more(run: Run, tmp_path: Path, sig: int):
    spec = make_spec(
        {
            "one": {"code": SPAWNS_AND_SLEEPS},
            "two": {"code": SPAWNS_AND_SLEEPS},
            "later": {"code": program(), "deps": ["one"]},
        },
        exit_tasks={"notify": {"code": program()}},
    )
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "driver.py").write_text(DRIVER)
    driver = subprocess.Popen(
        [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "spec.json"), str(run.project), str(run.out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=subprocess_env(),
    )
    try:
        deadline = time.monotonic() + 30
        while not all((run.out / f"{t}.pids").exists() for t in ("one", "two")):
            assert driver.poll() is None, driver.stdout.read()
            assert time.monotonic() < deadline, "tasks did not start"
            time.sleep(0.05)
        time.sleep(0.2)
        driver.send_signal(sig)
        output, _ = driver.communicate(timeout=30)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 130, output
    assert "driver saw KeyboardInterrupt" in output
    assert "Interrupted: stopped 2 running task(s)" in output
    assert "CANCELLED" in output
    assert "Traceback" not in output
    pids = [int(p) for t in ("one", "two") for p in (run.out / f"{t}.pids").read_text().split()]
    assert len(pids) == 4
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)
    assert not run.ran("later") and not run.ran("notify")


def test_logs_go_under_root_run_id_logs(run: Run, tmp_path: Path):
    spec = make_spec({"talker": {"code": program("print('hello from the task'); print('to stderr', file=sys.stderr)")}})
    absolute_root = tmp_path / "elsewhere"
    result = run(spec, root=str(absolute_root), run_id="logs-run")
    log = absolute_root / "logs-run" / "logs" / "talker.log"
    text = log.read_text()
    assert "hello from the task" in text and "to stderr" in text
    assert result.tasks["talker"].log == str(log)


def test_logs_are_uploaded_to_a_gcs_root(run: Run, gcs_emulator: str):
    import fsspec

    spec = make_spec(
        {
            "ok": {"code": program("print('uploaded ok')")},
            "bad": {"code": program("print('uploaded failure'); sys.exit(1)")},
        }
    )
    with pytest.raises(LocalRunFailed) as caught:
        run(spec, root="gs://test-bucket/unit-runs", run_id="gcs-run")
    assert "logs in gs://test-bucket/unit-runs/gcs-run/logs/" in str(caught.value)
    fs = fsspec.filesystem("gs")
    fs.invalidate_cache()
    assert "uploaded ok" in fs.cat("test-bucket/unit-runs/gcs-run/logs/ok.log").decode()
    assert "uploaded failure" in fs.cat("test-bucket/unit-runs/gcs-run/logs/bad.log").decode()
    assert "uploaded failure" in run.output  # the tail is printed from the local copy
    assert not (run.project / "gs:").exists()


def test_live_table_on_a_terminal(run: Run):
    buffer = io.StringIO()
    console = Console(file=buffer, width=150, force_terminal=True, color_system=None)
    run(make_spec({"a": {"code": program()}, "b": {"code": program(), "deps": ["a"]}}), console=console)
    output = buffer.getvalue()
    assert "SUCCEEDED" in output and "node_b" in output
    assert "a (node_a): RUNNING" not in output  # no plain lines on a terminal
    assert "Run run-1 finished: 2 tasks succeeded" in output


@pytest.mark.parametrize(
    ("mutate", "kwargs", "expected"),
    [
        (lambda s: None, {"parameter_values": {"nope": 1}}, "unknown pipeline parameter 'nope'"),
        (lambda s: None, {"max_workers": 0}, "max_workers=0"),
        (lambda s: s["root"]["dag"]["tasks"]["a"].update(dependentTasks=["b"]), {}, "cycle"),
        (lambda s: s["root"]["dag"]["tasks"]["a"].update(dependentTasks=["ghost"]), {}, "'ghost'"),
        (lambda s: s["deploymentSpec"]["executors"].pop("exec-a"), {}, "executor 'exec-a'"),
        (
            lambda s: s["deploymentSpec"]["executors"]["exec-a"]["container"]["args"].append("{{$.outputs.x}}"),
            {},
            "not supported",
        ),
        (
            lambda s: s["deploymentSpec"]["executors"]["exec-a"]["container"]["args"].append("--timeout=soon"),
            {},
            "--timeout 'soon'",
        ),
        (
            lambda s: s["root"]["inputDefinitions"]["parameters"]["p"].pop("defaultValue"),
            {},
            "has no value: pass it with --params p=",
        ),
        (lambda s: None, {"run_id": "../escape"}, "run id '../escape': expected an id such as"),
    ],
)
def test_bad_input_is_one_plugin_error_line_and_runs_nothing(run: Run, mutate, kwargs, expected):
    spec = make_spec(
        {"a": {"code": program()}, "b": {"code": program(), "deps": ["a"]}},
        params={"p": ("STRING", "x")},
    )
    mutate(spec)
    with pytest.raises(PluginError) as caught:
        run(spec, **kwargs)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
    assert not run.ran("a") and not run.ran("b")


def test_a_spec_file_path_is_accepted(run: Run, tmp_path: Path):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(make_spec({"only": {"code": program()}})))
    assert run(path).succeeded
    with pytest.raises(PluginError, match="cannot read pipeline spec"):
        run(tmp_path / "missing.json")


def test_environment_of_the_caller_reaches_tasks(run: Run, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WHO", "caller")
    run(make_spec({"a": {"code": program()}}))
    assert run.record("a")["env"]["WHO"] == "caller"
    assert os.environ["WHO"] == "caller"


def test_a_run_id_belongs_to_one_run_at_a_time(run: Run, tmp_path: Path):
    """While a run holds its run id, another run with that id is refused with one line naming the holder, before
    any of its tasks starts; once the holder has ended (however it ended), the id can be reused (resumed)."""
    gate = tmp_path / "gate"
    waiter = program(f"""
        import pathlib
        pathlib.Path({str(tmp_path / "started")!r}).touch()
        while not pathlib.Path({str(gate)!r}).exists():
            time.sleep(0.02)
    """)
    import threading

    holder: dict = {}
    thread = threading.Thread(target=lambda: holder.update(result=run(make_spec({"slow": {"code": waiter}}))))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        (tmp_path / "second").mkdir()
        second = Run(tmp_path / "second")
        with pytest.raises(PluginError) as caught:
            second(make_spec({"other": {"code": program()}}), root=str(run.project / "runs"))
        message = str(caught.value)
        assert "\n" not in message
        assert message.startswith(f"run id 'run-1' is in use by another run (pid {os.getpid()} on ")
        assert "start this run with another run_id" in message
        assert not second.ran("other")
    finally:
        gate.touch()
        thread.join(timeout=60)
    assert holder["result"].succeeded
    # the holder has ended: the same id runs again (a resumed run re-uses the data, never the lock)
    assert run(make_spec({"again": {"code": program()}})).succeeded and run.ran("again")


def test_a_lock_left_by_a_dead_process_is_taken_over(run: Run):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    run_dir = run.project / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / ".lock").write_text(f"pid {dead.stdout.strip()} on somewhere, started 2020-01-01 00:00:00\n")
    assert run(make_spec({"a": {"code": program()}})).succeeded
    assert f"pid {os.getpid()} on " in (run_dir / ".lock").read_text()


def test_task_logs_are_never_written_through_a_link(run: Run, tmp_path: Path):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    logs = run.project / "runs" / "run-1" / "logs"
    logs.mkdir(parents=True)
    (logs / "a.log").symlink_to(outside)
    with pytest.raises(PluginError) as caught:
        run(make_spec({"a": {"code": program()}}))
    assert str(caught.value) == (
        f"{logs / 'a.log'} is a symbolic link: task logs are never written through a link; remove it"
    )
    assert outside.read_text() == "precious\n" and not run.ran("a")
    # a logs folder that is a link is refused before anything runs
    (logs / "a.log").unlink()
    logs.rmdir()
    logs.symlink_to(tmp_path)
    with pytest.raises(PluginError, match="is a symbolic link: task logs are only written inside the run folder"):
        run(make_spec({"a": {"code": program()}}))
    assert not run.ran("a")


def test_unreachable_storage_never_delays_a_timeout_and_is_reported_once(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    import gc
    import socket

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    # a storage endpoint that accepts connections and never answers
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(64)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{hole.getsockname()[1]}")
        spec = make_spec(
            {
                "quick": {"code": program("print('quick log line')")},
                "also-quick": {"code": program()},
                "slow": {"code": program("time.sleep(60)"), "args": ["--timeout", "1"]},
            }
        )
        started = time.monotonic()
        with pytest.raises(LocalRunFailed) as caught:
            run(spec, root="gs://test-bucket/unreachable", run_id="hole-run", max_workers=3)
        elapsed = time.monotonic() - started

    slow = caught.value.result.tasks["slow"]
    assert slow.reason == "timed out after 1 s"
    # the upload of quick's log hangs, yet slow's timeout is enforced on time, and the run ends without retrying
    assert slow.duration is not None and slow.duration < 1 + 3.0 + 2
    assert elapsed < 40
    warnings = [line for line in run.output.splitlines() if "Storage unreachable" in line]
    assert len(warnings) == 1, run.output
    assert "gs://test-bucket/unreachable/hole-run/logs/" in warnings[0]
    assert "Traceback" not in run.output
    kept = Path(warnings[0].rsplit(" kept in ", 1)[1].rstrip("/"))
    # the failure names the same folder, which is in the user's cache, and it outlives the run and its objects
    assert str(caught.value).endswith(f"; logs in {kept}/")
    assert kept.parent == tmp_path / "cache" / "kedro-vertex-runner" / "logs"
    del caught
    gc.collect()
    assert "quick log line" in (kept / "quick.log").read_text()


def test_run_record_keeps_options_spec_and_states_and_is_never_written_through_a_link(run: Run, tmp_path: Path):
    outside = tmp_path / "outside.json"
    outside.write_text("precious\n")
    run_dir = run.project / "runs" / "run-1"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").symlink_to(outside)
    spec = make_spec(
        {
            "ok": {"code": program()},
            "bad": {"code": program("sys.exit(1)"), "deps": ["ok"]},
            "after": {"code": program(), "deps": ["bad"]},
        }
    )
    previous = os.umask(0o002)
    try:
        with pytest.raises(LocalRunFailed):
            run(spec, record={"env": "prod", "runtime_params": {"alpha": 0.5}})
    finally:
        os.umask(previous)
    assert outside.read_text() == "precious\n"  # the link was replaced, never followed
    path = run_dir / "run.json"
    assert not path.is_symlink() and path.stat().st_mode & 0o777 == 0o664  # 0o666 less the umask
    # the logs and the run lock too: group-writable where the umask says so
    assert {p.stat().st_mode & 0o777 for p in [*(run_dir / "logs").iterdir(), run_dir / ".lock"]} == {0o664}
    record = json.loads(path.read_text())
    assert record["options"] == {"env": "prod", "runtime_params": {"alpha": 0.5}} and record["spec"] == spec
    assert {name: (task["nodes"], task["state"]) for name, task in record["tasks"].items()} == {
        "ok": (["node_ok"], "SUCCEEDED"), "bad": (["node_bad"], "FAILED"), "after": (["node_after"], "SKIPPED"),
    }  # fmt: skip
    assert record["tasks"]["bad"]["failed_node"] == "node_bad"
    assert not list(run_dir.glob(".run.json.*"))


def test_a_resumed_run_runs_the_failed_task_from_its_node_and_what_depends_on_it(run: Run):
    spec = make_spec(
        {
            "ok": {"code": program()},
            "other": {"code": program()},
            "fused": {"code": program(), "deps": ["ok"], "args": ["--node=second", "--node=third"]},
            "after": {"code": program(), "deps": ["fused"]},
        }
    )
    earlier = {"ok": ["node_ok"], "other": ["node_other_was_different"], "after": ["node_after"]}
    result = run(spec, earlier=earlier, resume_nodes={"fused": ["second", "third"]})
    # `ok` succeeded earlier; `other` did too but with other nodes, and `after` depends on a task that runs now
    assert not run.ran("ok") and run.ran("other") and run.ran("fused") and run.ran("after")
    assert "ok (node_ok): SUCCEEDED (earlier run)" in run.output
    assert "SUCCEEDED (earlier run)" not in run.output.replace("ok (node_ok): SUCCEEDED (earlier run)", "")
    # the failed task runs only the nodes it is given: its first node had stored its output
    assert [a for a in run.record("fused")["argv"] if a.startswith("--node")] == ["--node=second", "--node=third"]
    assert result.tasks["fused"].nodes == ("second", "third")
    assert "Run run-1 finished: 4 tasks succeeded (1 of them in an earlier run); " in run.output
    record = json.loads((run.project / "runs" / "run-1" / "run.json").read_text())
    assert record["tasks"]["fused"]["nodes"] == ["node_fused", "second", "third"]  # the spec's, for the next resume


def test_the_run_record_of_a_gcs_root_is_uploaded_and_read_back(run: Run, gcs_emulator: str):
    from kedro_vertex_runner.backends.local import read_run_record

    spec = make_spec({"ok": {"code": program()}, "bad": {"code": program("sys.exit(1)")}})
    with pytest.raises(LocalRunFailed):
        run(spec, root="gs://test-bucket/record-runs", run_id="gcs-record", record={"tags": ["t"]})
    record = read_run_record("gs://test-bucket/record-runs", run.project, "gcs-record")
    assert record is not None and record["options"] == {"tags": ["t"]} and record["spec"] == spec
    assert {name: task["state"] for name, task in record["tasks"].items()} == {"ok": "SUCCEEDED", "bad": "FAILED"}
    assert read_run_record("gs://test-bucket/record-runs", run.project, "no-such-run") is None
    import gcsfs  # the run's picture is uploaded beside its record, its logs linked where they were uploaded

    page = gcsfs.GCSFileSystem(token="anon").cat_file("test-bucket/record-runs/gcs-record/report.html").decode()
    assert read_picture(page).states() == {"ok": "SUCCEEDED", "bad": "FAILED"}
    assert {"logs/ok.log", "logs/bad.log"} <= set(read_picture(page).links())


def test_the_live_table_shows_the_node_each_running_task_is_at(tmp_path: Path):
    from kedro_vertex_runner.backends.base import JobHandle, SilentReporter
    from kedro_vertex_runner.backends.local import RUNNING, SUCCEEDED, TaskResult
    from kedro_vertex_runner.backends.local.display import _Display
    from kedro_vertex_runner.backends.local.plan import _Task
    from kedro_vertex_runner.console import task_table
    from kedro_vertex_runner.task.contract import TASK_REPORT_ENV, TaskReport

    def task(name: str, nodes: tuple[str, ...], state: str, report: TaskReport | None) -> _Task:
        path = tmp_path / f"{name}.json"
        if report is not None:
            report.write(path)
        env = {TASK_REPORT_ENV: str(path)}
        result = TaskResult(name, nodes, state=state)
        return _Task(name, nodes, [], env, (), False, None, 0, 0, 1, 1, result, started=time.monotonic())

    tasks = {
        "prep": task("prep", ("clean", "add_features", "split"), RUNNING, TaskReport("running", "add_features")),
        "train": task("train", ("train",), RUNNING, TaskReport("started")),  # loading, before its first node
        "done": task("done", ("report",), SUCCEEDED, TaskReport("succeeded")),
    }
    console = Console(record=True, width=160, force_terminal=True, color_system=None)
    console.print(task_table(_Display(SilentReporter(), tasks, JobHandle("run-1")).rows()))
    rows = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if line.count("│") > 2}
    assert "RUNNING: add_features" in rows["prep"]
    assert "RUNNING" in rows["train"] and "RUNNING:" not in rows["train"]
    assert "SUCCEEDED" in rows["done"] and "report" in rows["done"]
