"""The guard's shortcuts give the records of its general path, value for value.

* one record (up to ``SMALL`` rows) of a StandardScaler + LogisticRegression pipeline is scored
  with scikit-learn's arithmetic but without its per-call input validation;
* row-wise max/argmax over a few class columns are computed column by column.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support.data import add_example_features
from support.guards import MESSY_BATCH, example_guard

from toolkit.guard import explain
from toolkit.guard.batch import read_batch
from toolkit.guard.decisions import SMALL
from toolkit.guard.input_contract import ColumnRule, InputContract
from toolkit.guard.model import GuardedModel
from toolkit.guard.one_record import record_check
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


def test_a_large_batch_is_scored_like_scikit_learns_pipeline(guard: GuardedModel) -> None:
    """Above SMALL rows the features are scaled as they are copied, and the scores prove them
    finite: the same records, bit for bit, as the steps' own transform and predict_proba, also
    for integer and float32 columns and for batches holding rows whose features are not finite."""
    general = copy.copy(guard)
    general._plain = False
    messy = read_batch(MESSY_BATCH, guard.contract)
    large = pd.concat([messy] * 40, ignore_index=True)
    numeric = [r.name for r in guard.contract.columns if r.kind == "numeric"]
    rng = np.random.default_rng(8)
    noise = rng.uniform(0.9, 1.1, (len(large), len(numeric)))
    large[numeric] = large[numeric].apply(pd.to_numeric, errors="coerce") * noise
    large[numeric[2]] = large[numeric[2]].fillna(0).round().astype(np.int64)
    large[numeric[4]] = large[numeric[4]].astype(np.float32)
    finite = large.dropna().loc[lambda d: d["mean_area"] > 0]
    large.loc[[5, 700, 1500], "mean_area"] = 0.0  # inside the contract; log(0) is not finite
    assert len(finite) > SMALL
    for batch in (large, finite):
        fast = records(guard.predict(batch))
        pd.testing.assert_frame_equal(fast, records(general.predict(batch)), check_exact=True)
    assert set(records(guard.predict(finite))["path"]) >= {"model", "fallback"}
    assert "not finite" in " ".join(records(guard.predict(large))["reason"].dropna())


def test_only_binary_standardised_logistic_models_take_the_fast_path() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 4)) * 5 + 1
    binary = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, x[:, 0] > 1)
    assert plain_linear([binary[0]], binary[-1])
    three = make_pipeline(StandardScaler(), LogisticRegression()).fit(
        x, (x[:, 0] > 1).astype(int) + (x[:, 1] > 1)
    )
    assert not plain_linear([three[0]], three[-1])


def test_a_preprocess_writing_into_its_rows_leaves_the_callers_batch_as_it_was(
    guard: GuardedModel,
) -> None:
    """The check reads a large batch's float columns without copying them; ``preprocess``
    gets a copy-on-write frame, so what it writes, in place or not, is its own."""

    def overwrite(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[:, "mean_area"] = df["mean_area"] * 2
        df.loc[df.index[:5], "mean_radius"] = 0.0
        return add_example_features(df)

    batch = read_batch(MESSY_BATCH, guard.contract).dropna()
    numeric = [r.name for r in guard.contract.columns if r.kind == "numeric"]
    batch = pd.concat([batch] * 10, ignore_index=True)
    batch[numeric] = batch[numeric].astype(np.float64)
    assert len(batch) > SMALL
    sent = batch.copy(deep=True)
    writer = copy.copy(guard)
    writer.preprocess = overwrite
    assert len(writer.predict(batch)) == len(batch)
    pd.testing.assert_frame_equal(batch, sent)
    pd.testing.assert_frame_equal(records(guard.predict(batch)), records(guard.predict(sent)))


@pytest.mark.parametrize("seed", range(6))
def test_contributions_ranked_on_32_bits_are_ranked_as_on_64(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 32-bit scan hands rows whose keys are too close to the 64-bit one, and ranks the
    others as it would: near ties (equal, one or a few ulps apart), zeros, wide magnitudes."""
    rng = np.random.default_rng(seed)
    n, m = 3_000, int(rng.integers(5, explain.WIDE + 1))
    z = rng.normal(size=(n, m)) * 10.0 ** rng.integers(-3, 4, m)
    for c in range(1, m, 3):
        ulps = rng.integers(-40, 40, n) * 2.0**-52
        z[:, c] = np.nextafter(z[:, c - 1], np.inf) if c % 2 else z[:, c - 1] * (1 + ulps)
    z[rng.random((n, m)) < 0.05] = 0.0
    z = np.asfortranarray(z)
    coef = np.ones((1, m)) if seed % 2 else rng.normal(size=(3, m))
    coef[:, 1::3] = coef[:, 0:-1:3][:, : len(range(1, m, 3))]  # tied columns, tied weights
    chosen = rng.integers(0, len(coef), n)
    handed: list[int] = []

    def exact(z: np.ndarray, *args: Any) -> np.ndarray:
        handed.append(len(z))
        return explain_exact(z, *args)

    explain_exact = explain._exact
    monkeypatch.setattr(explain, "_exact", exact)
    for k in (1, 3, 5):
        want = explain_exact(z, coef, chosen, k)
        assert np.array_equal(explain._ranked(z, coef, chosen, k), want)
    assert handed and min(handed) < n  # some rows, not all, were ranked on 64 bits


@pytest.mark.parametrize("columns", [1, 2, 3])
def test_row_max_and_argmax_are_numpys(columns: int) -> None:
    rng = np.random.default_rng(columns)
    proba = rng.choice([0.0, -0.0, 0.25, 0.5, 1.0, np.nan], size=(500, columns))
    assert np.array_equal(row_argmax(proba), proba.argmax(axis=1))
    assert np.array_equal(row_max(proba), proba.max(axis=1), equal_nan=True)


def messy_records(guard: GuardedModel) -> list[dict]:
    """Single records the shortcuts must either answer like the general path or leave to it."""
    base = read_batch(MESSY_BATCH, guard.contract).iloc[0].to_dict()
    numeric = [r.name for r in guard.contract.columns if r.kind == "numeric"]
    first, second = numeric[0], numeric[1]
    out: list[dict] = [dict(base)]
    changes: list[dict] = [
        {first: np.nan},
        {first: None},
        {first: pd.NA},
        {first: np.float32("nan")},
        {first: np.float32(1.5)},
        {first: 12},  # an int where floats were trained: same number, same hash
        {first: 10**400},
        {first: -5.0},
        {first: 1e9},
        {first: float("inf")},
        {first: "12.5"},
        {first: True},
        {first: [1.0]},
        {"patient_id": None},
        {"patient_id": 17},
        {"patient_id": "not an id at all"},
        {"patient_id": np.str_(base["patient_id"])},
        {"comment": "sent by a newer client", "zz": 1},
    ]
    for change in changes:
        out.append(dict(base) | change)
    out.append({k: v for k, v in base.items() if k != first})  # a missing column
    out.append({k: v for k, v in base.items() if k != "patient_id"})
    out.append({k: v for k, v in base.items() if k != second} | {second: 0})
    return out


def test_one_valid_record_is_checked_like_the_general_path(guard: GuardedModel) -> None:
    shortcut = guard.__dict__["_one_record"]
    assert shortcut is not None, "the example's contract should take the shortcut"
    answered = 0
    for record in messy_records(guard):
        frame = pd.DataFrame([record])
        general = guard.contract.check(frame)
        fast = shortcut(frame)
        if fast is None:
            continue
        answered += 1
        assert fast.valid.tolist() == general.valid.tolist() == [True], record
        assert fast.reasons.tolist() == general.reasons.tolist()
        assert fast.hashes.tolist() == general.hashes.tolist(), record
        assert fast.notes == general.notes
        pd.testing.assert_frame_equal(fast.frame, general.frame)
    assert answered >= 5  # valid ones, ints, NaN in an optional column, unknown columns
    duplicated = pd.DataFrame([list(record.values())], columns=list(record))
    duplicated.columns = [*duplicated.columns[:-1], duplicated.columns[0]]
    assert shortcut(duplicated) is None


def test_one_record_gives_the_records_of_the_general_path(guard: GuardedModel) -> None:
    general = copy.copy(guard)
    general._one_record = None
    messy = [pd.DataFrame([r]) for r in messy_records(guard)]
    batch = read_batch(MESSY_BATCH, guard.contract)
    messy += [batch.iloc[[i]] for i in range(len(batch))]
    for frame in messy:
        pd.testing.assert_frame_equal(
            records(guard.predict(frame)), records(general.predict(frame))
        )


def test_a_few_rows_give_the_table_of_a_large_batch(guard: GuardedModel) -> None:
    """Up to SMALL rows the decision table is built from Python lists, above from pyarrow."""
    batch = read_batch(MESSY_BATCH, guard.contract)
    batch["comment"] = "sent by a newer client"
    large = pd.concat([batch] * 2, ignore_index=True)
    assert len(large) > SMALL
    whole = records(guard.predict(large))
    assert set(whole["path"]) == {"model", "fallback", "rejected"}
    for a in range(0, len(large), 10):
        part = records(guard.predict(large.iloc[a : a + 10]))
        pd.testing.assert_frame_equal(part, whole.iloc[a : a + 10])
        one = records(guard.predict(large.iloc[[a]]))
        pd.testing.assert_frame_equal(one, whole.iloc[[a]])


def test_optional_columns_and_untyped_ones_are_checked_like_the_general_path() -> None:
    contract = InputContract(
        "optional",
        (
            ColumnRule("a", kind="numeric", min_value=0.0, max_value=1.0, strict_min=True),
            ColumnRule("b", kind="numeric"),
            ColumnRule("c", kind="str", regex="^x"),
            ColumnRule("d"),  # untyped
            ColumnRule("e", kind="numeric", required=True, max_value=5, strict_max=True),
        ),
    )
    shortcut = record_check(contract)
    assert shortcut is not None
    values = [None, np.nan, np.float32("nan"), 0.0, -0.0, 0.5, 1, 5, 1.0, "x1", "y", True, pd.NA]
    answered = 0
    for i, (a, c) in enumerate(itertools.product(values, values)):
        b, d = values[i % 4], values[(i * 5) % len(values)]
        for record in ({"a": a, "b": b, "c": c, "d": d, "e": 4}, {"a": a, "e": 4.99, "z": c}):
            frame = pd.DataFrame([record])
            general, fast = contract.check(frame), shortcut(frame)
            if fast is not None:
                answered += 1
                assert general.valid.tolist() == [True], record
                assert fast.hashes.tolist() == general.hashes.tolist(), record
                assert fast.notes == general.notes
                pd.testing.assert_frame_equal(fast.frame, general.frame)
            else:
                odd = any(v is pd.NA or isinstance(v, bool) for v in record.values())
                assert not general.valid.all() or odd, record  # declined: valid but unusual
    assert answered > 50
    assert shortcut(pd.DataFrame([{"a": 0.5}])) is None  # "e" is required
    with_set = InputContract("set", (ColumnRule("a", kind="str", value_set=("x",)),))
    assert record_check(with_set) is None  # pandas' isin semantics: the general path only
