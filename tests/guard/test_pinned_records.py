"""Decision records of large, messy batches are pinned value for value.

The guard's batch path is tuned for speed (vectorised explanations, Arrow string columns); what
users read in their decision logs must not move with it. ``pinned_records.json.gz`` holds the
tables today's guard gave for three batches built here from fixed seeds, every column but
``latency_ms``, with dtypes and index:

* the example's guard on 1,500 noisy records with NaNs, out-of-range values, strings and bools
  in numeric columns, bad or missing ids, zero areas (non-finite features), an unknown column;
* a three-class guard (ints, float32, an untyped column, an object-typed id column checked by
  Python's ``re``), with a Python fallback;
* the same guard on records with absurd values, whose explanations take the per-row path, and
  a string-typed id column (RE2).

Each batch has more than ``SMALL`` rows (the vectorised path); slices of at most ``SMALL``
rows (the per-row path) are compared with the pinned rows too, probabilities to 1e-12 (BLAS
sums a few rows in another order than a large batch: the last bit may differ). The file is rewritten only on purpose, when the
record format changes: ``.venv/bin/python tests/guard/test_pinned_records.py``.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from toolkit.guard.decisions import SMALL
from toolkit.guard.input_contract import ColumnRule, InputContract
from toolkit.guard.model import GuardedModel
from toolkit.guard.policy import CallableFallback, ConfidencePolicy, OutputContract

PINNED = Path(__file__).with_name("pinned_records.json.gz")
BATCHES = ("example", "three_classes", "absurd")


def example_batch(guard: GuardedModel) -> pd.DataFrame:
    from support.data import breast_cancer_raw

    rng = np.random.default_rng(18)
    raw = breast_cancer_raw().drop(columns="diagnosis")
    numeric = [c for c in raw.columns if c != "patient_id"]
    df = raw.iloc[rng.integers(0, len(raw), 1_500)].reset_index(drop=True)
    df[numeric] = df[numeric] * rng.uniform(0.9, 1.1, (len(df), len(numeric)))
    df["patient_id"] = [f"P{i:04d}" for i in range(len(df))]
    cells = rng.integers(0, len(df), (60, 2))
    for k, (row, col) in enumerate(cells):
        name = numeric[col % len(numeric)]
        df.loc[row, name] = (np.nan, -1.0, 1e6, 0.0, -0.0)[k % 5]
    df.loc[[3, 77, 901], "mean_area"] = 0.0  # inside the contract; log(0) is not finite
    df["mean_texture"] = df["mean_texture"].astype(object)
    df.loc[[5, 6, 700], "mean_texture"] = ["abc", "12.5", True]
    df.loc[[8, 9, 10, 1_200], "patient_id"] = [None, "X123", "P12", "P012 "]
    assert str(df["patient_id"].dtype) == "str"  # Arrow-backed: checked with RE2
    df["scanner_id"] = "S-12"  # not in the contract: ignored with a note
    df.index = pd.RangeIndex(100, 100 + len(df))
    return df


def three_class_guard() -> GuardedModel:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(7)
    x = pd.DataFrame(rng.normal(size=(300, 4)) * [1.0, 3.0, 0.5, 10.0], columns=list("abcd"))
    y = (x["a"] + x["b"] / 3 > 0).astype(int) + (x["c"] * 2 - x["d"] / 10 > 0.5)
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    contract = InputContract(
        "three",
        (
            ColumnRule("a", kind="numeric", not_null=True, min_value=-5, max_value=5),
            ColumnRule("b", kind="numeric", required=True),
            ColumnRule("c", kind="numeric", min_value=-3.0, strict_min=True),
            ColumnRule("d", kind="numeric"),
            ColumnRule("id", kind="str", not_null=True, regex=r"^[a-z]+-\d+$"),
            ColumnRule("note"),
        ),
    )

    def by_sign(rows: pd.DataFrame) -> list[str]:
        return ["low" if v < 0 else "mid" if v < 1 else "high" for v in rows["a"].fillna(0)]

    return GuardedModel(
        estimator, contract=contract,
        output=OutputContract((("0", "low"), ("1", "mid"), ("2", "high"))),
        policy=ConfidencePolicy(0.6), fallback=CallableFallback(by_sign, name="by_sign"),
        model_name="three", version="v1",
    )  # fmt: skip


def three_class_batch(rows: int, seed: int, *, absurd: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "a": rng.normal(size=rows),
            "b": rng.integers(-9, 9, rows),  # ints where floats were trained
            "c": (rng.normal(size=rows) * 0.5).astype(np.float32),
            "d": rng.normal(size=rows) * 10,
            "id": pd.Series([f"r-{i}" for i in range(rows)], dtype=object),
            "note": pd.Series(rng.choice(["x", "y", None], rows), dtype=object),
            "extra": 1,
        }
    )
    df.loc[[1, 2, 3], "a"] = [np.nan, 7.0, -5.0]
    df.loc[4, "c"] = -3.0  # the strict minimum
    df.loc[[5, 6, 7, 12], "id"] = [None, "R-1", "r-x", 17]
    if absurd:
        df["id"] = df["id"].where(~df["id"].map(lambda v: isinstance(v, int)), "17").astype("str")
    df["d"] = df["d"].astype(object)
    df.loc[[8, 9], "d"] = ["1.5", None]
    if absurd:
        df.loc[[10, 11], "d"] = [3e7, -2e9]  # unbounded: huge contributions
    return df


def records(out: pd.DataFrame) -> dict[str, Any]:
    """A table as JSON-able data, bit for bit: floats by repr, NaN as null plus a flag."""
    kept = out.drop(columns="latency_ms")

    def value(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return "<NaN>"
        return v

    return {
        "dtypes": {c: str(t) for c, t in kept.dtypes.items()},
        "index": kept.index.tolist(),
        "columns": {c: [value(v) for v in kept[c].tolist()] for c in kept.columns},
    }


@pytest.fixture(scope="module")
def scored() -> dict[str, tuple[GuardedModel, pd.DataFrame]]:
    from support.guards import example_guard

    example, three = example_guard(), three_class_guard()
    return {
        "example": (example, example_batch(example)),
        "three_classes": (three, three_class_batch(400, 1)),
        "absurd": (three, three_class_batch(100, 2, absurd=True)),
    }


# The guard's version hashes the fitted estimator's bytes, whose last bits BLAS may make differ
# from one machine to another: it is checked against the guard, not pinned. (That it does not
# depend on where the rules file is: tests/guard/test_guard.py.)
UNPINNED = {"version"}


@pytest.fixture(scope="module")
def pinned() -> dict[str, Any]:
    return json.loads(gzip.decompress(PINNED.read_bytes()))


@pytest.mark.parametrize("name", BATCHES)
def test_a_batch_gives_the_pinned_records(
    name: str, scored: dict[str, Any], pinned: dict[str, Any]
) -> None:
    guard, batch = scored[name]
    assert len(batch) > SMALL
    out = guard.predict(batch)
    # one latency for all: answered in one pass, not record by record after an error
    assert out["latency_ms"].nunique() == 1
    got, want = records(out), pinned[name]
    assert got["dtypes"] == want["dtypes"]
    assert got["index"] == want["index"]
    for column, values in want["columns"].items():
        if column in UNPINNED:
            continue
        assert got["columns"][column] == values, column
    assert set(out["version"]) == {guard.version}
    paths = set(want["columns"]["path"])
    assert paths == {"model", "fallback", "rejected"}  # every path is pinned
    assert any(t != "<NaN>" for t in want["columns"]["top_features"])


@pytest.mark.parametrize("name", BATCHES)
def test_small_slices_give_the_pinned_rows(
    name: str, scored: dict[str, Any], pinned: dict[str, Any]
) -> None:
    guard, batch = scored[name]
    want = pinned[name]
    for a in range(0, len(batch), len(batch) // 5):
        got = records(guard.predict(batch.iloc[a : a + 7]))
        assert got["dtypes"] == want["dtypes"]
        for column, values in want["columns"].items():
            if column in UNPINNED:
                continue
            if want["dtypes"][column] == "float64":  # BLAS sums a batch in its own order
                pair = [
                    [np.nan if v == "<NaN>" else v for v in x]
                    for x in (got["columns"][column], values[a : a + 7])
                ]
                assert np.allclose(*pair, rtol=1e-12, atol=0, equal_nan=True), (column, a)
            else:
                assert got["columns"][column] == values[a : a + 7], (column, a)


def write() -> None:  # pragma: no cover - run by hand when the record format changes on purpose
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from support.guards import example_guard

    example, three = example_guard(), three_class_guard()
    tables = {
        "example": records(example.predict(example_batch(example))),
        "three_classes": records(three.predict(three_class_batch(400, 1))),
        "absurd": records(three.predict(three_class_batch(100, 2, absurd=True))),
    }
    PINNED.write_bytes(gzip.compress(json.dumps(tables).encode(), mtime=0))


if __name__ == "__main__":
    write()
