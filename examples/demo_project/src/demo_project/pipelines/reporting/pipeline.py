from kedro.pipeline import Node, Pipeline

from .nodes import (
    bucket_prices,
    count_rooms,
    create_report,
    create_rooms_report,
    summarize_raw_data,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=summarize_raw_data,
                inputs="raw_houses",
                # NOT declared in the catalog -> MemoryDataset; consumed by
                # create_report at the very end of the DAG.
                outputs="raw_data_summary",
                name="summarize_raw_data",
                tags=["reporting"],
            ),
            # No explicit name: Kedro auto-generates one.
            Node(
                func=bucket_prices,
                inputs=["raw_houses", "params:n_price_buckets"],
                outputs="price_buckets",
                tags=["reporting"],
            ),
            Node(
                func=count_rooms,
                inputs="raw_houses",
                # declared as a MemoryDataset in the catalog, yet read by
                # another task: VertexRunner stores it like an undeclared one.
                outputs="rooms_histogram",
                name="count_rooms",
                tags=["reporting"],
            ),
            Node(
                func=create_rooms_report,
                inputs=["rooms_histogram", "price_buckets"],
                outputs="rooms_report",
                name="create_rooms_report",
                tags=["reporting"],
            ),
            Node(
                func=create_report,
                inputs=["raw_data_summary", "model_metrics", "params:report_title"],
                outputs="report",
                name="create_report",
                tags=["reporting"],
            ),
        ]
    )
