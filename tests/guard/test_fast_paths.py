"""The guard's shortcuts give the records of its general path, value for value.

* one record (up to ``SMALL`` rows) of a StandardScaler + LogisticRegression pipeline is scored
  with scikit-learn's arithmetic but without its per-call input validation;
* row-wise max/argmax over a few class columns are computed column by column.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support.guards import MESSY_BATCH, example_guard

from toolkit.guard.batch import read_batch
from toolkit.guard.model import GuardedModel
from toolkit.guard.policy import row_argmax, row_max
from toolkit.guard.sklearn_path import plain_linear


@pytest.fixture(scope="module")
def guard() -> GuardedModel:
    return example_guard()


def records(out: pd.DataFrame) -> pd.DataFrame:
    return out.drop(columns="latency_ms")  # the only field that differs from call to call


def test_single_records_match_the_general_path_on_the_messy_batch(guard: GuardedModel) -> None:
    assert guard.__dict__["_plain"], "the example's pipeline should take the fast path"
    general = copy.copy(guard)
    general._plain = False  # scikit-learn's own predict_proba, with its validation
    messy = read_batch(MESSY_BATCH, guard.contract)
    dicts = messy.to_dict("records")
    for i in range(len(messy)):
        fast = records(guard.predict(messy.iloc[[i]]))
        pd.testing.assert_frame_equal(fast, records(general.predict(messy.iloc[[i]])))
        pd.testing.assert_frame_equal(
            records(guard.predict(dicts[i])).reset_index(drop=True), fast.reset_index(drop=True)
        )
    paths = set(records(guard.predict(messy))["path"])
    assert paths == {"model", "fallback", "rejected"}  # every path was compared above


def test_only_binary_standardised_logistic_models_take_the_fast_path() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 4)) * 5 + 1
    binary = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, x[:, 0] > 1)
    assert plain_linear([binary[0]], binary[-1])
    three = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        x, (x[:, 0] > 1).astype(int) + (x[:, 1] > 1)
    )
    assert not plain_linear([three[0]], three[-1])


@pytest.mark.parametrize("columns", [1, 2, 3])
def test_row_max_and_argmax_are_numpys(columns: int) -> None:
    rng = np.random.default_rng(columns)
    proba = rng.choice([0.0, -0.0, 0.25, 0.5, 1.0, np.nan], size=(500, columns))
    assert np.array_equal(row_argmax(proba), proba.argmax(axis=1))
    assert np.array_equal(row_max(proba), proba.max(axis=1), equal_nan=True)
