"""Produce gcpc_notification_email.yaml: what google-cloud-pipeline-components compiles for
``VertexNotificationEmailOp`` as a ``dsl.ExitHandler``'s exit task, the reference the plugin's
``run_config.notifications.email`` exit task is tested against (tests/test_job_outcome.py); and
gcpc_nested_exit_handlers.yaml: that exit handler around a sub-pipeline with an exit handler of its own (an exit task
taking ``dsl.PipelineTaskFinalStatus``), the form of the e-mail with an exit task of the plugin's.

Run it in a separate virtualenv (installing GCPC may change kfp in the project's own):

    python3 -m venv /tmp/gcpc && /tmp/gcpc/bin/pip install google-cloud-pipeline-components
    /tmp/gcpc/bin/python tests/golden/make_gcpc_notification_email.py
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from google_cloud_pipeline_components.v1.vertex_notification_email import VertexNotificationEmailOp
from kfp import compiler, dsl

RECIPIENTS = ["ops@example.com", "ml-team@example.com"]
OUT = Path(__file__).with_name("gcpc_notification_email.yaml")
NESTED = Path(__file__).with_name("gcpc_nested_exit_handlers.yaml")


@dsl.container_component
def work():  # type: ignore[no-untyped-def]
    return dsl.ContainerSpec(image="python:3.11", command=["true"])


@dsl.pipeline(name="notify")
def notify_pipeline():  # type: ignore[no-untyped-def]
    notify = VertexNotificationEmailOp(recipients=RECIPIENTS)
    with dsl.ExitHandler(notify):
        work()


def _notify(status):  # type: ignore[no-untyped-def]
    return dsl.ContainerSpec(image="python:3.11", command=["python"], args=["--final-status", status])


_notify.__annotations__ = {"status": dsl.PipelineTaskFinalStatus}  # not a string (this module's annotations are)
notify = dsl.container_component(_notify)


@dsl.pipeline(name="kedro-pipeline")
def inner_pipeline():  # type: ignore[no-untyped-def]
    with dsl.ExitHandler(notify()):
        work()


@dsl.pipeline(name="notify-nested")
def nested_pipeline():  # type: ignore[no-untyped-def]
    with dsl.ExitHandler(VertexNotificationEmailOp(recipients=RECIPIENTS)):
        inner_pipeline()


if __name__ == "__main__":
    header = (
        f"# produced by make_gcpc_notification_email.py with google-cloud-pipeline-components "
        f"{version('google-cloud-pipeline-components')}, kfp {version('kfp')}\n"
    )
    for pipeline, out in ((notify_pipeline, OUT), (nested_pipeline, NESTED)):
        compiler.Compiler().compile(pipeline, str(out))
        out.write_text(header + out.read_text())
