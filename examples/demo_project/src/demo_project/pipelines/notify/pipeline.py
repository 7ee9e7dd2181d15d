from kedro.pipeline import Node, Pipeline

from .nodes import log_run_finished


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=log_run_finished,
                inputs="params:report_title",
                outputs=None,
                name="log_run_finished",
                tags=["notify"],
            )
        ]
    )
