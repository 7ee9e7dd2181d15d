from kedro.pipeline import Node, Pipeline

from .nodes import bucket_prices, create_report, summarize_raw_data


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
                func=create_report,
                inputs=["raw_data_summary", "model_metrics", "params:report_title"],
                outputs="report",
                name="create_report",
                tags=["reporting"],
            ),
        ]
    )
