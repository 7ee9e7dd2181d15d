from kedro.pipeline import Node, Pipeline

from .nodes import add_features, clean_houses, select_features


def create_pipeline(**kwargs) -> Pipeline:
    # Linear chain: each intermediate output has exactly one consumer.
    return Pipeline(
        [
            Node(
                func=clean_houses,
                inputs=["raw_houses", "params:max_age", "params:outlier_quantile"],
                outputs="houses_clean",
                name="clean_houses",
                tags=["preprocessing"],
            ),
            Node(
                func=add_features,
                inputs="houses_clean",
                outputs="houses_features",
                name="add_features",
                tags=["preprocessing", "features"],
            ),
            Node(
                func=select_features,
                inputs=["houses_features", "params:features"],
                outputs="model_input_table",
                name="select_features",
                tags=["preprocessing", "features"],
            ),
        ]
    )
