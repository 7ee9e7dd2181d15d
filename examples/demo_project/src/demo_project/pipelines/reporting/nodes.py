"""Reporting branch: runs in parallel with data_processing from raw data."""

from __future__ import annotations

from typing import Any

import pandas as pd


def summarize_raw_data(raw_houses: pd.DataFrame) -> dict[str, Any]:
    """Basic statistics of the raw data (kept in memory, not in the catalog)."""
    return {
        "n_rows": int(len(raw_houses)),
        "n_rows_with_missing": int(raw_houses.isna().any(axis=1).sum()),
        "mean_price": round(float(raw_houses["price"].mean()), 2),
        "median_area_sqm": round(float(raw_houses["area_sqm"].median()), 2),
    }


def bucket_prices(raw_houses: pd.DataFrame, n_price_buckets: int) -> pd.DataFrame:
    """Count houses per price quantile bucket."""
    buckets = pd.qcut(raw_houses["price"], q=n_price_buckets, labels=False)
    counts = buckets.value_counts().sort_index()
    edges = raw_houses.groupby(buckets)["price"].agg(["min", "max"])
    return pd.DataFrame(
        {
            "bucket": counts.index.astype(int),
            "n_houses": counts.values.astype(int),
            "min_price": edges["min"].values,
            "max_price": edges["max"].values,
        }
    )


def create_report(
    raw_data_summary: dict[str, Any],
    model_metrics: dict[str, float],
    report_title: str,
) -> dict[str, Any]:
    return {
        "title": report_title,
        "raw_data": raw_data_summary,
        "model_metrics": model_metrics,
    }
