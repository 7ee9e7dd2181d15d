"""Model training and evaluation (used under namespace ``model``)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, r2_score
from sklearn.model_selection import train_test_split

logger = logging.getLogger(__name__)

TARGET = "price"


def split_data(
    data: pd.DataFrame, model_options: dict[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    X = data.drop(columns=[TARGET])
    y = data[[TARGET]]
    X_train, X_test, y_train, y_test = train_test_split(
        X,
        y,
        test_size=model_options["test_size"],
        random_state=model_options["random_state"],
    )
    return X_train, X_test, y_train, y_test


def train_model(
    X_train: pd.DataFrame, y_train: pd.DataFrame, model_options: dict[str, Any]
) -> Ridge:
    regressor = Ridge(alpha=model_options["alpha"])
    regressor.fit(X_train, y_train[TARGET])
    return regressor


def evaluate_model(
    regressor: Ridge, X_test: pd.DataFrame, y_test: pd.DataFrame
) -> dict[str, float]:
    y_pred = regressor.predict(X_test)
    metrics = {
        "r2": float(r2_score(y_test[TARGET], y_pred)),
        "mae": float(mean_absolute_error(y_test[TARGET], y_pred)),
        "n_test": int(len(y_test)),
    }
    logger.info("Model metrics: %s", metrics)
    return metrics
