"""What the GX adapter changes in GX to make validations cheaper changes no result.

A validation builds each expectation's configuration once instead of about 80 times: the
results must be the very ones GX gives without that, and outside a validation GX must still
build a fresh configuration on every access (an expectation changed later shows the change).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from toolkit import contracts
from toolkit.contracts import gx_adapter

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "contracts"


def _verdicts(result: contracts.ContractResult) -> dict[str, Any]:
    data = result.to_dict()
    data.pop("validated_at")
    return data


def _features_frame() -> pd.DataFrame:
    """Data shaped like the example's ``features`` suite wants it, with some of it wrong."""
    suite = contracts.load_suite("features", REPO / "expectations")
    columns = [
        e["kwargs"]["column"]
        for e in suite.expectations
        if e["type"] == "expect_column_values_to_not_be_null"
    ]
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({c: rng.normal(size=200) for c in columns})
    frame.iloc[3, 0] = np.nan  # a null, a value far out, and a column gone
    frame.iloc[5, 1] = 1e9
    return frame.drop(columns=columns[-1])


@pytest.mark.parametrize("case", ["features", "orders_bad"])
def test_results_are_the_ones_gx_gives_untuned(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if case == "features":
        suite = contracts.load_suite("features", REPO / "expectations")
        frame = _features_frame()
    else:
        suite = contracts.load_suite("orders", FIXTURES)
        frame = pd.read_csv(FIXTURES / "orders_bad.csv")
    tuned = contracts.validate(frame, suite)
    assert not tuned.success  # failures, counts and examples are compared too
    monkeypatch.setattr(gx_adapter, "MEMOISE_CONFIGURATIONS", False)
    assert _verdicts(contracts.validate(frame, suite)) == _verdicts(tuned)


def test_outside_a_validation_gx_builds_the_configuration_afresh() -> None:
    contracts.validate(pd.DataFrame({"a": [1]}), contracts.load_suite("orders", FIXTURES))
    import great_expectations as gx

    expectation = gx.expectations.ExpectColumnValuesToNotBeNull(column="a")
    assert expectation.configuration.kwargs["column"] == "a"
    expectation.column = "b"
    assert expectation.configuration.kwargs["column"] == "b"


def test_metric_ids_are_the_ones_gx_computes() -> None:
    """The ids of a validation's metrics: plain kwargs take the short way, the rest GX's."""
    import hashlib
    import json

    from great_expectations.core.id_dict import IDDict
    from great_expectations.util import convert_to_json_serializable

    contracts.validate(pd.DataFrame({"a": [1]}), contracts.load_suite("orders", FIXTURES))
    cases: list[dict[str, Any]] = [
        {"column": "a", "batch_id": "x", "row_condition": None},
        {"mostly": 0.9, "value_set": [1, "b", None], "format": {"kind": "BASIC", "n": 80}},
        {"pair": (1, 2.5), "flag": True},
        {"missing": float("nan"), "n": 1},  # NaN: GX's way
        {"n": np.int64(3), "when": pd.Timestamp("2026-01-01")},  # numpy, dates: GX's way
    ]
    for case in cases:
        converted = convert_to_json_serializable(data=dict(case))
        text = json.dumps(converted, sort_keys=True).encode()
        assert IDDict(case).to_id() == hashlib.md5(text, usedforsecurity=False).hexdigest()
    assert IDDict({"one": 1}).to_id() == "one=1"
