"""Produce gcpc_notification_email.yaml: what google-cloud-pipeline-components compiles for
``VertexNotificationEmailOp`` as a ``dsl.ExitHandler``'s exit task, the reference the plugin's
``run_config.notifications.email`` exit task is tested against (tests/test_job_outcome.py).

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


@dsl.container_component
def work():  # type: ignore[no-untyped-def]
    return dsl.ContainerSpec(image="python:3.11", command=["true"])


@dsl.pipeline(name="notify")
def notify_pipeline():  # type: ignore[no-untyped-def]
    notify = VertexNotificationEmailOp(recipients=RECIPIENTS)
    with dsl.ExitHandler(notify):
        work()


if __name__ == "__main__":
    compiler.Compiler().compile(notify_pipeline, str(OUT))
    header = (
        f"# produced by make_gcpc_notification_email.py with google-cloud-pipeline-components "
        f"{version('google-cloud-pipeline-components')}, kfp {version('kfp')}\n"
    )
    OUT.write_text(header + OUT.read_text())
