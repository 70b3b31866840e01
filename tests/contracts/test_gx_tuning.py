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
