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


def count_rooms(raw_houses: pd.DataFrame) -> dict[int, int]:
    """Houses per number of rooms (a MemoryDataset in the catalog)."""
    counts = raw_houses["rooms"].value_counts().sort_index()
    return {int(rooms): int(n) for rooms, n in counts.items()}


def create_rooms_report(
    rooms_histogram: dict[int, int], price_buckets: pd.DataFrame
) -> dict[str, Any]:
    """Houses per room count, next to the number of price buckets."""
    return {
        "houses_per_room_count": {str(k): v for k, v in rooms_histogram.items()},
        "n_price_buckets": int(len(price_buckets)),
    }


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
