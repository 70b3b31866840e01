"""The example's guarded model, built in-process (no MLflow, no pipeline run): its raw-data
contract, its confidence policy and its fallback rules, on a model trained on the same data."""

from __future__ import annotations

import json
from pathlib import Path

from support.data import add_example_features, breast_cancer_raw
from toolkit.guard.build import build_guarded_model, compile_expectations
from toolkit.guard.model import GuardedModel

REPO = Path(__file__).resolve().parents[2]
MESSY_BATCH = REPO / "pipelines" / "batches" / "messy.csv"


def example_guard(model_name: str = "breast_cancer_clf", *, sample: int = 0) -> GuardedModel:
    """The guard ``pipelines/train.yaml`` releases: min confidence 0.7, the example's rules.
    ``sample``: fit on that many random records only (a plausible, worse candidate)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    raw = breast_cancer_raw()
    raw = raw.sample(sample, random_state=3) if sample else raw
    measures = [c for c in raw.columns if c not in ("patient_id", "diagnosis")]
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(
        add_example_features(raw[measures].copy()), (raw["diagnosis"] == "malignant").astype(int)
    )
    suite = json.loads((REPO / "expectations" / "raw_measurements.json").read_text())
    contract = compile_expectations(
        suite["expectations"], name=suite["name"], exclude_columns=["diagnosis"]
    )
    config = {
        "model_name": model_name,
        "input_contract": contract,
        "output_contract": {"labels": {0: "benign", 1: "malignant"}},
        "confidence": {"min_confidence": 0.7},
        "fallback": {"rules": str(REPO / "pipelines" / "rules" / "breast_cancer_fallback.yaml")},
        "explain": {"top_k": 3},
    }
    return build_guarded_model(estimator, config, preprocess=add_example_features)
