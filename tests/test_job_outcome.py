"""Secrets by reference, the job's final status in the exit pipeline, and notifications (e-mail, webhook).

Against a fake Secret Manager REST endpoint and a local webhook receiver (tests/fake_secret_manager.py); the
compiled exit tasks are compared with what kfp 2.17 and google-cloud-pipeline-components compile
(tests/golden/gcpc_notification_email.yaml and gcpc_nested_exit_handlers.yaml, made by the script beside them).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import PYTHON, free_port, kedro_batch, kedro_cmd, subprocess_env
from fake_secret_manager import FakeSecretManager, WebhookReceiver
from kedro.pipeline import Pipeline, node

from kedro_vertex_runner.compiler import CompileRequest, compile_spec
from kedro_vertex_runner.config import validate_config
from kedro_vertex_runner.errors import PluginError
from kedro_vertex_runner.task.contract import TaskContract

GOLDEN = Path(__file__).parent / "golden" / "gcpc_notification_email.yaml"
NESTED = Path(__file__).parent / "golden" / "gcpc_nested_exit_handlers.yaml"
TOKEN_REF = "projects/demo-project/secrets/api-token/versions/3"
MODEL_REF = "projects/123/secrets/model-key/versions/latest"
HOOK_REF = "projects/demo-project/secrets/hook-url/versions/latest"
DENIED_REF = "projects/demo-project/secrets/not-yours/versions/1"
TOKEN = "tok-9f8e7d6c5b4a-never-anywhere"
MODEL_KEY = "mk-0a1b2c3d4e5f-never-anywhere"


def step(*values):
    return 1


def done(*values):
    return None


JOB = Pipeline([node(step, "params:a", "x", name="first", tags=["train"]), node(step, "x", "y", name="second")])
ON_EXIT = Pipeline([node(done, "params:job_final_status", None, name="tell")])


def compile_(backend: str = "vertex", pipeline: Pipeline = JOB, **run_config):
    raw = {"image": "img:1", "root": "my-bucket/runs", "backend": backend, "on_exit_pipeline": "notify", **run_config}
    on_exit = ON_EXIT if raw["on_exit_pipeline"] else None
    top = {"project_id": "proj-1", "region": "europe-west1", "run_config": raw}
    if backend == "kubeflow":
        top["host"] = "https://kubeflow.example.com/pipeline"
    config = validate_config(top)
    return compile_spec(CompileRequest(pipeline=pipeline, config=config, on_exit=on_exit))


def args_of(spec, task):
    return spec["deploymentSpec"]["executors"][f"exec-{task}"]["container"]["args"]


# ---------------------------------------------------------------------------------------------------------------
# the compiled spec


def kfp_exit_status_reference(tmp_path: Path, webhook_env: str | None = None) -> list[dict]:
    """What kfp 2.17 compiles for an exit-handler task taking ``status: dsl.PipelineTaskFinalStatus``: the
    PipelineSpec, then (with ``webhook_env``, where kfp-kubernetes puts Secret ``ops-hooks``' key ``url`` into that
    variable of the exit task) the platform spec."""
    secret = (
        f'kubernetes.use_secret_as_env(exit_task, secret_name="ops-hooks", secret_key_to_env={{"url": "{webhook_env}"}})'
        if webhook_env
        else ""
    )
    script = textwrap.dedent(
        """
        import sys
        from kfp import compiler, dsl, kubernetes

        @dsl.container_component
        def notify(status: dsl.PipelineTaskFinalStatus):
            return dsl.ContainerSpec(image="img:1", command=["python"], args=["--final-status", status])

        @dsl.container_component
        def work():
            return dsl.ContainerSpec(image="img:1", command=["true"])

        @dsl.pipeline(name="p")
        def p():
            exit_task = notify()
            SECRET
            with dsl.ExitHandler(exit_task):
                work()

        compiler.Compiler().compile(p, sys.argv[1])
        """
    ).replace("SECRET", secret)
    out = tmp_path / "kfp.yaml"
    subprocess.run([PYTHON, "-c", script, str(out)], check=True, capture_output=True, timeout=120)
    return list(yaml.safe_load_all(out.read_text()))


def test_exit_tasks_take_the_final_status_as_kfp_and_gcpc_compile_it(tmp_path: Path):
    spec = compile_(
        secrets={"API_TOKEN": TOKEN_REF}, notifications={"email": ["ops@example.com", "ml-team@example.com"]}
    )
    (kfp,) = kfp_exit_status_reference(tmp_path)
    nested = yaml.safe_load(NESTED.read_text())
    root = spec["root"]["dag"]["tasks"]
    # both exit tasks: kfp's nested exit handlers (GCPC's e-mail task around a sub-pipeline with an exit handler
    # of its own), not two exit tasks on one handler, which kfp never compiles
    assert set(root) == set(nested["root"]["dag"]["tasks"]) == {"exit-handler-1", "vertex-pipelines-notification-email"}
    components = spec["components"]
    sub_dags = {name for name, component in components.items() if "dag" in component}
    assert sub_dags == {name for name, component in nested["components"].items() if "dag" in component}

    def cacheless(task: dict) -> dict:  # caching is the run's default, set on submission
        return {key: value for key, value in task.items() if key != "cachingOptions"}

    assert root["exit-handler-1"] == nested["root"]["dag"]["tasks"]["exit-handler-1"]
    for name in ("comp-exit-handler-1", "comp-kedro-pipeline"):
        ours_dag, theirs_dag = components[name]["dag"]["tasks"], nested["components"][name]["dag"]["tasks"]
        assert set(ours_dag) - {"on-exit-notify"} == set(theirs_dag) - {"notify"}
        for key in set(ours_dag) - {"on-exit-notify"}:
            assert cacheless(ours_dag[key]) == cacheless(theirs_dag[key]), key
    inner = components["comp-kedro-pipeline"]["dag"]["tasks"]
    theirs_inner = nested["components"]["comp-kedro-pipeline"]["dag"]["tasks"]
    for key in ("dependentTasks", "triggerPolicy", "inputs"):
        assert inner["on-exit-notify"][key] == theirs_inner["notify"][key]
    # the job's tasks and our exit task are those compiled without the e-mail
    alone = compile_(secrets={"API_TOKEN": TOKEN_REF})
    assert components["comp-exit-handler-1-2"] == alone["components"]["comp-exit-handler-1"]
    assert inner["on-exit-notify"] == alone["root"]["dag"]["tasks"]["on-exit-notify"]

    # our exit task: kfp's input, input definition and placeholder for a PipelineTaskFinalStatus parameter
    ours, theirs = inner["on-exit-notify"], kfp["root"]["dag"]["tasks"]["notify"]
    assert ours["inputs"]["parameters"]["status"] == theirs["inputs"]["parameters"]["status"]
    for key in ("dependentTasks", "triggerPolicy"):
        assert ours[key] == theirs[key]
    definition = kfp["components"]["comp-notify"]["inputDefinitions"]["parameters"]["status"]
    assert spec["components"]["comp-on-exit-notify"]["inputDefinitions"]["parameters"]["status"] == definition
    placeholder = kfp["deploymentSpec"]["executors"]["exec-notify"]["container"]["args"][1]
    assert f"--final-status={placeholder}" in args_of(spec, "on-exit-notify")

    # Google's e-mail exit task: exactly what GCPC compiles, but never served from Vertex AI's cache
    golden = yaml.safe_load(GOLDEN.read_text())
    name = "vertex-pipelines-notification-email"
    expected_task = golden["root"]["dag"]["tasks"][name]
    expected_task["cachingOptions"] = {"enableCache": False}
    assert (
        root[name]
        == expected_task
        == {**nested["root"]["dag"]["tasks"][name], "cachingOptions": {"enableCache": False}}
    )
    assert spec["components"][f"comp-{name}"] == golden["components"][f"comp-{name}"]
    assert spec["deploymentSpec"]["executors"][f"exec-{name}"] == golden["deploymentSpec"]["executors"][f"exec-{name}"]
    # and kfp's own PipelineSpec message takes the whole
    from google.protobuf.json_format import ParseDict
    from kfp.pipeline_spec import pipeline_spec_pb2

    ParseDict(spec, pipeline_spec_pb2.PipelineSpec())


def test_secrets_are_compiled_as_references_per_node_and_tag():
    spec = compile_(
        secrets={"API_TOKEN": TOKEN_REF},
        resources={"train": {"secrets": {"MODEL_KEY": MODEL_REF}}, "second": {"secrets": {"API_TOKEN": MODEL_REF}}},
        notifications={"webhook": HOOK_REF},
    )
    assert TaskContract.from_args(args_of(spec, "first")).secrets == (
        f"API_TOKEN={TOKEN_REF}",
        f"MODEL_KEY={MODEL_REF}",
    )
    assert TaskContract.from_args(args_of(spec, "second")).secrets == (f"API_TOKEN={MODEL_REF}",)  # node beats job
    exit_contract = TaskContract.from_args(args_of(spec, "on-exit-notify"))
    assert exit_contract.webhook == HOOK_REF and exit_contract.exit_handler
    # the e-mail component runs only on Vertex AI (Kubeflow: tests/test_kubeflow_outcome.py)
    local = compile_(backend="local", notifications={"email": ["ops@example.com"]})
    assert "vertex-pipelines-notification-email" not in local["root"]["dag"]["tasks"]


def test_a_webhook_without_an_exit_pipeline_gets_an_exit_task_of_its_own():
    spec = compile_(on_exit_pipeline=None, notifications={"webhook": HOOK_REF})
    assert set(spec["root"]["dag"]["tasks"]) == {"exit-handler-1", "on-exit-webhook"}
    contract = TaskContract.from_args(args_of(spec, "on-exit-webhook"))
    assert contract.nodes == () and contract.pipelines == () and contract.webhook == HOOK_REF


def test_nodes_of_one_task_asking_for_different_references_are_refused():
    with pytest.raises(PluginError, match=r"ask for different secrets.API_TOKEN references"):
        compile_(
            pipeline=Pipeline([n.tag("group.g") for n in JOB.nodes]),
            grouping="tags",
            resources={"second": {"secrets": {"API_TOKEN": MODEL_REF}}},
            secrets={"API_TOKEN": TOKEN_REF},
        )


# ---------------------------------------------------------------------------------------------------------------
# a local job: the secret reaches the node and nothing else; the exit node and the webhook see the final status

SECRET_JOB = """
import hashlib, os
from pathlib import Path
from kedro.pipeline import Node, Pipeline


def use_secrets(fail: bool) -> None:
    digest = hashlib.sha256((os.environ["API_TOKEN"] + "|" + os.environ["MODEL_KEY"]).encode()).hexdigest()
    Path("data/secret_digest.txt").write_text(digest)
    if fail:
        raise ValueError("the job fails on purpose")


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([Node(use_secrets, "params:fail_job", None, name="use_secrets", tags=["secretive"])])
"""

NOTIFY = """
import json
from pathlib import Path
from kedro.pipeline import Node, Pipeline


def record(status) -> None:
    Path("data/final_status.json").write_text(json.dumps(status))


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline([Node(record, "params:job_final_status", None, name="record_status")])
"""


@pytest.fixture
def secret_project(demo_project: Path) -> Path:
    pipelines = demo_project / "src" / "demo_project" / "pipelines"
    (pipelines / "secret_job").mkdir()
    (pipelines / "secret_job" / "__init__.py").write_text(SECRET_JOB)
    for name in ("__init__.py", "pipeline.py", "nodes.py"):
        (pipelines / "notify" / name).unlink()
    (pipelines / "notify" / "__init__.py").write_text(NOTIFY)
    config = demo_project / "conf" / "base" / "vertexai.yml"
    text = config.read_text().replace(
        "  # on_exit_pipeline: notify",
        "  on_exit_pipeline: notify\n"
        f"  secrets:\n    API_TOKEN: {TOKEN_REF}\n"
        f"  notifications:\n    webhook: {HOOK_REF}",
    )
    text = text.replace(
        "  resources:\n", f"  resources:\n    secretive:\n      secrets: {{MODEL_KEY: '{MODEL_REF}'}}\n"
    )
    config.write_text(text)
    # tracked in MLflow (kedro-mlflow logs the nodes' parameters): the secrets must not be among them
    settings = demo_project / "src" / "demo_project" / "settings.py"
    settings.write_text(
        settings.read_text().replace('DISABLE_HOOKS_FOR_PLUGINS = ("kedro_mlflow", "kedro-mlflow")', "")
    )
    return demo_project


def _run(project: Path, fake: FakeSecretManager, fail: bool, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        kedro_cmd("run", "--runner=VertexRunner", "--pipeline", "secret_job", "--params", f"fail_job={fail}"),
        cwd=project,
        env=subprocess_env(
            KEDRO_VERTEX_SECRET_MANAGER_ENDPOINT=fake.base_url, KEDRO_VERTEX_ANONYMOUS_CREDENTIALS="1", **env
        ),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _files_holding(folder: Path, needle: str) -> list[str]:
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            found.append(str(path.relative_to(folder)))
    return found


def test_a_secret_reaches_the_node_only_and_the_exit_node_and_webhook_see_how_the_job_ended(secret_project: Path):
    receiver = WebhookReceiver()
    hook_url = f"{receiver.base_url}/hooks/abc123"
    fake = FakeSecretManager({TOKEN_REF: TOKEN, MODEL_REF: MODEL_KEY, HOOK_REF: hook_url})
    try:
        failed = _run(secret_project, fake, True)
        out = failed.stdout + failed.stderr
        assert failed.returncode == 1, out[-3000:]
        digest = (secret_project / "data" / "secret_digest.txt").read_text()
        assert digest == hashlib.sha256(f"{TOKEN}|{MODEL_KEY}".encode()).hexdigest()
        status = json.loads((secret_project / "data" / "final_status.json").read_text())
        assert status["state"] == "FAILED" and status["error_code"] == 9, status
        assert "The failed tasks are: [use-secrets]" in status["error_message"], status
        assert status["task_name"] == "exit-handler-1" and status["job_name"], status
        assert receiver.posts == [("/hooks/abc123", status)]

        # the user's own value of a variable wins on the local backend: Secret Manager is not asked for it
        asked = len([r for r in fake.requests if TOKEN_REF in r[1]])
        succeeded = _run(secret_project, fake, False, API_TOKEN="from-my-shell")
        out += succeeded.stdout + succeeded.stderr
        assert succeeded.returncode == 0, out[-3000:]
        digest = (secret_project / "data" / "secret_digest.txt").read_text()
        assert digest == hashlib.sha256(f"from-my-shell|{MODEL_KEY}".encode()).hexdigest()
        assert len([r for r in fake.requests if TOKEN_REF in r[1]]) == asked
        status = json.loads((secret_project / "data" / "final_status.json").read_text())
        assert status["state"] == "SUCCEEDED" and status["error_message"] == "", status
        assert receiver.posts[-1] == ("/hooks/abc123", status)
    finally:
        fake.stop()
        receiver.stop()
    # the values are nowhere: not in the output, the spec, run record, logs, task reports or MLflow's params
    with sqlite3.connect(secret_project / "mlflow.db") as db:
        params = dict(db.execute("SELECT key, value FROM params").fetchall())
    assert params["fail_job"] in ("True", "False"), params  # MLflow did log the nodes' parameters
    for value in (TOKEN, MODEL_KEY, hook_url):
        assert value not in out
        assert not [key for key, logged in params.items() if value in key or value in logged]
        assert _files_holding(secret_project, value) == []


def test_an_unreadable_secret_is_one_line_naming_the_variable_and_the_reference(demo_project: Path):
    receiver = WebhookReceiver()
    dead = f"http://127.0.0.1:{free_port()}/hooks/t0ken"
    fake = FakeSecretManager({HOOK_REF: f"{receiver.base_url}/h", MODEL_REF: dead}, denied={DENIED_REF})
    status = '{"state":"SUCCEEDED","error":{},"pipelineJobResourceName":"job-1","pipelineTaskName":"exit-handler-1"}'
    try:
        env = subprocess_env(KEDRO_VERTEX_SECRET_MANAGER_ENDPOINT=fake.base_url, KEDRO_VERTEX_ANONYMOUS_CREDENTIALS="1")
        command = [PYTHON, "-m", "kedro_vertex_runner.entrypoint", "--node=clean_houses", "--run-id=r1"]
        results = [
            subprocess.run([*command, f"--secret=DB_KEY={ref}"], cwd=demo_project, env=env, capture_output=True,
                           text=True, timeout=120)
            for ref in (DENIED_REF, "projects/demo-project/secrets/gone/versions/2", "projects/x/secret/y")
        ]  # fmt: skip
        # an exit task with only a webhook runs no node: it posts the final status, or says in one line why not
        hooks = [
            subprocess.run([PYTHON, "-m", "kedro_vertex_runner.entrypoint", "--exit-handler", f"--final-status={status}",
                            f"--webhook={ref}"], cwd=demo_project, env=env, capture_output=True, text=True, timeout=120)
            for ref in (HOOK_REF, MODEL_REF)
        ]  # fmt: skip
    finally:
        fake.stop()
        receiver.stop()
    assert hooks[0].returncode == 0, hooks[0].stderr
    assert receiver.posts == [
        ("/h", {"state": "SUCCEEDED", "error_code": None, "error_message": "", "job_name": "job-1", "task_name": "exit-handler-1"})
    ]  # fmt: skip
    assert hooks[1].returncode == 1
    assert hooks[1].stderr.strip().splitlines() == [
        f"Error: notifications.webhook ({MODEL_REF}): the webhook cannot be reached (ConnectionError)"
    ]
    lines = [result.stderr.strip().splitlines() for result in results]
    assert all(result.returncode != 0 for result in results)
    assert lines[0] == [
        f"Error: secret DB_KEY ({DENIED_REF}): permission denied (403): grant the task's service account (locally: "
        "your account) roles/secretmanager.secretAccessor on the secret"
    ]
    assert lines[1] == [
        "Error: secret DB_KEY (projects/demo-project/secrets/gone/versions/2): not found (404): check the project, "
        "the secret's name and the version"
    ]
    assert len(lines[2]) == 1 and lines[2][0].startswith("Error: secret DB_KEY: 'projects/x/secret/y' is not a Secret")


# ---------------------------------------------------------------------------------------------------------------
# refusals, one line each


def test_bad_secrets_and_notifications_are_refused_in_one_line(demo_project: Path):
    cases = {
        "badref": (
            "  secrets:\n    API_TOKEN: projects/p/secrets/s\n",
            "run_config.secrets.API_TOKEN: 'projects/p/secrets/s' is not a Secret Manager reference: write "
            "projects/<project>/secrets/<secret>/versions/<version>",
        ),
        "pasted": (
            "  secrets:\n    API_TOKEN: ghp_0123456789abcdefghijABCDEFGHIJ012345\n",
            "run_config.secrets.API_TOKEN: looks like a secret",
        ),
        "badnode": (
            "  resources:\n    model.train_model:\n      secrets: {1KEY: projects/p/secrets/s/versions/1}\n",
            "environment variable name '1KEY'",
        ),
        "emails": (
            "  notifications:\n    email: [a@example.com, b@example.com, c@example.com, d@example.com]\n",
            "run_config.notifications.email: 4 addresses: Vertex AI e-mails at most 3",
        ),
        "email": (
            "  notifications:\n    email: [ops-at-example.com]\n",
            "'ops-at-example.com' is not an e-mail address",
        ),
        "hook": (
            "  notifications:\n    webhook: https://hooks.example.com/x\n",
            "run_config.notifications.webhook: 'https://hooks.example.com/x' is not a Secret Manager reference",
        ),
        "twice": (
            "  env:\n    SERVICE_URL: x\n  secrets:\n    SERVICE_URL: projects/demo-project/secrets/t/versions/1\n",
            "run_config.secrets.SERVICE_URL: also set in run_config.env: keep only one of the two",
        ),
        "kubeflow": (
            "  backend: kubeflow\n  secrets:\n    API_TOKEN: projects/demo-project/secrets/t/versions/1\n",
            "run_config.secrets.API_TOKEN: backend 'kubeflow' cannot read Secret Manager: give the tasks Kubernetes "
            "secrets instead, as run_config.kubeflow.pod.<name>.secrets_as_env",
        ),
        "kubeflow-hook": (
            f"  backend: kubeflow\n  notifications:\n    webhook: {HOOK_REF}\n",
            "run_config.notifications.webhook: backend 'kubeflow' cannot read Secret Manager: give the tasks "
            "Kubernetes secrets instead, as run_config.kubeflow.pod.<name>.secrets_as_env (the webhook's URL as "
            "run_config.kubeflow.webhook: {secret, key})",
        ),
        "kubeflow-hook-name": (
            "  backend: kubeflow\n  kubeflow:\n    webhook: {secret: Ops_Hooks, key: url}\n",
            "run_config.kubeflow.webhook.secret: secret name 'Ops_Hooks' is not a Kubernetes object name",
        ),
        "kubeflow-hook-key": (
            "  backend: kubeflow\n  kubeflow:\n    webhook: {secret: ops-hooks}\n",
            "run_config.kubeflow.webhook.key: required key is missing",
        ),
        "kubeflow-status": (
            "  backend: kubeflow\n  kubeflow:\n    final_status: sometimes\n",
            "run_config.kubeflow.final_status:",
        ),
        "vertex-k8s-hook": (
            "  backend: vertex\n  kubeflow:\n    webhook: {secret: ops-hooks, key: url}\n",
            "run_config.kubeflow.webhook: Vertex AI tasks read no Kubernetes secrets: give the URL's Secret Manager "
            "reference as notifications.webhook instead, or run on backend 'kubeflow'",
        ),
    }
    for env, (yml, _) in cases.items():
        folder = demo_project / "conf" / env
        folder.mkdir()
        host = "host: https://kubeflow.example.com/pipeline\n" if env.startswith("kubeflow") else ""
        (folder / "vertexai.yml").write_text(f"{host}run_config:\n{yml}")
    # e-mail on the local backend: compiled without the e-mail task, with one warning line
    (demo_project / "conf" / "mail").mkdir()
    (demo_project / "conf" / "mail" / "vertexai.yml").write_text("run_config:\n  notifications: {email: [a@b.io]}\n")
    commands = [(demo_project, ["vertexai", "compile", "-e", env, "-o", "x.json"]) for env in cases]
    *results, mail = kedro_batch([*commands, (demo_project, ["vertexai", "compile", "-e", "mail", "-o", "m.json"])])
    for (env, (_, expected)), result in zip(cases.items(), results, strict=True):
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
        assert result.returncode != 0 and len(errors) == 1, (env, result.stderr[-2000:])
        assert expected in errors[0], (env, errors[0])
        assert "ghp_0123" not in result.stdout + result.stderr
    assert not (demo_project / "x.json").exists()
    assert mail.returncode == 0, mail.stderr[-2000:]
    warned = " ".join((mail.stdout + mail.stderr).split())
    assert "run_config.notifications.email: backend 'local' ignores it: Vertex AI sends the e-mail" in warned
    assert "notification-email" not in (demo_project / "m.json").read_text()
