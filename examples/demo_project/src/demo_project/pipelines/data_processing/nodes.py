"""Feature-engineering chain: clean -> add features -> select features."""

from __future__ import annotations

import pandas as pd


def clean_houses(
    raw_houses: pd.DataFrame, max_age: int, outlier_quantile: float
) -> pd.DataFrame:
    """Drop incomplete rows and very old houses, clip extreme prices."""
    df = raw_houses.dropna().copy()
    df = df[df["age_years"] <= max_age]
    cap = df["price"].quantile(outlier_quantile)
    df["price"] = df["price"].clip(upper=cap)
    return df.reset_index(drop=True)


def add_features(houses_clean: pd.DataFrame) -> pd.DataFrame:
    """Add derived features."""
    df = houses_clean.copy()
    df["area_per_room"] = (df["area_sqm"] / df["rooms"]).round(3)
    return df


def select_features(houses_features: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Keep the configured feature columns plus the target."""
    return houses_features[[*features, "price"]].copy()
