"""Data builders shared by tests: the example's raw records and its derived features."""

from __future__ import annotations

import numpy as np
import pandas as pd


def breast_cancer_raw() -> pd.DataFrame:
    """The raw records as the example's ingest notebook writes them: snake_case measurements,
    a ``patient_id`` first and the label as text in ``diagnosis`` (benign / malignant)."""
    from sklearn.datasets import load_breast_cancer  # lazy: only data-using tests pay for it

    bunch = load_breast_cancer(as_frame=True)
    df = bunch.frame.rename(columns=lambda c: c.replace(" ", "_"))
    df["diagnosis"] = df.pop("target").map(dict(enumerate(bunch.target_names)))
    df.insert(0, "patient_id", [f"P{i:04d}" for i in range(len(df))])
    return df


def add_example_features(df: pd.DataFrame) -> pd.DataFrame:
    """The example's features notebook as a function (what a logged model runs inside)."""
    df["compactness_ratio"] = df["mean_perimeter"] ** 2 / df["mean_area"]
    df["log_mean_area"] = np.log(df["mean_area"])
    return df
