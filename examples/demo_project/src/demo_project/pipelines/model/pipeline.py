from kedro.pipeline import Node, Pipeline

from .nodes import evaluate_model, split_data, train_model


def create_pipeline(**kwargs) -> Pipeline:
    nodes = [
        Node(
            func=split_data,
            inputs=["model_input_table", "params:model_options"],
            outputs=["X_train", "X_test", "y_train", "y_test"],
            name="split_data",
            tags=["training"],
        ),
        Node(
            func=train_model,
            inputs=["X_train", "y_train", "params:model_options"],
            outputs="regressor",
            name="train_model",
            tags=["training"],
        ),
        Node(
            func=evaluate_model,
            inputs=["regressor", "X_test", "y_test"],
            outputs="metrics",
            name="evaluate_model",
            tags=["training", "evaluation"],
        ),
    ]
    # Modular pipeline: node names, datasets and parameters get the "model."
    # prefix (model.split_data, model.X_train, params:model.model_options, ...),
    # except the shared input `model_input_table` and the output `metrics`,
    # which is exposed to other pipelines as `model_metrics`.
    return Pipeline(
        nodes,
        namespace="model",
        inputs={"model_input_table"},
        outputs={"metrics": "model_metrics"},
    )
