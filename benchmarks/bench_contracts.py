"""Contract validation cost: ``toolkit.contracts.validate`` vs the same checks in plain pandas.

A 1,000,000-row x 10-column frame (fixed seed) and a suite of 10 typical expectations (row
count, column set, not-null, between, in-set, unique, mean, dtype). Target: validate() within
5x of hand-written pandas. The one-off cost (GX import + ephemeral context) is reported apart,
as is the per-validation fixed cost (the same suite on 1,000 rows).

Where the time went before tuning (GX 1.24.1, pandas 3.1, 1M rows, 2 cores; see contracts.py):

* ``batch.validate`` loads the batch twice and each load hashes the whole frame for a
  fingerprint (~0.1 s each); disabled, since nothing reads it.
* ``expect_column_mean_to_be_between`` scans all values in Python for ``Decimal`` (~0.4 s);
  short-circuited for non-object dtypes.
* ``SUMMARY`` result format materialises every failing row index (and a query string naming
  them): ~1 s and tens of MB per failing expectation on 1M rows; ``BASIC`` does not.
* What remains is GX's per-validation graph building (~0.05-0.09 s for 10 expectations,
  independent of rows) plus the metric computations themselves.

    .venv/bin/python benchmarks/bench_contracts.py [rows] [repeat]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CATEGORIES = ["alpha", "beta", "gamma", "delta"]
CITIES = ["paris", "rome", "oslo", "lima", "kyiv"]


def _frame(rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(42)
    return pd.DataFrame(
        {
            "id": np.arange(rows),
            "amount": rng.uniform(0.0, 1000.0, rows),
            "qty": rng.integers(1, 100, rows),
            "category": rng.choice(CATEGORIES, rows),
            "score": rng.normal(0.0, 1.0, rows),
            "flag": rng.random(rows) < 0.5,
            "city": rng.choice(CITIES, rows),
            "x": rng.normal(5.0, 2.0, rows),
            "y": rng.uniform(-1.0, 1.0, rows),
            "ts": pd.date_range("2024-01-01", periods=rows, freq="s"),
        }
    )


def _expectations(rows: int, columns: list[str]) -> list[dict[str, Any]]:
    def e(etype: str, **kwargs: Any) -> dict[str, Any]:
        return {"type": etype, "kwargs": kwargs}

    return [
        e("expect_table_row_count_to_be_between", min_value=1, max_value=10 * rows),
        e("expect_table_columns_to_match_set", column_set=columns),
        e("expect_column_values_to_not_be_null", column="amount"),
        e("expect_column_values_to_not_be_null", column="city"),
        e("expect_column_values_to_be_between", column="amount", min_value=0, max_value=1000),
        e("expect_column_values_to_be_between", column="qty", min_value=1, max_value=99),
        e("expect_column_values_to_be_in_set", column="category", value_set=CATEGORIES),
        e("expect_column_values_to_be_unique", column="id"),
        e("expect_column_mean_to_be_between", column="score", min_value=-0.1, max_value=0.1),
        e("expect_column_values_to_be_of_type", column="qty", type_="int64"),
    ]


def _pandas_checks(df: Any, rows: int, columns: list[str]) -> dict[str, Any]:
    """The same ten checks by hand, counting offending rows as GX does (not just .all())."""
    amount, qty = df["amount"], df["qty"]
    return {
        "row_count": 1 <= len(df) <= 10 * rows,
        "columns": set(df.columns) == set(columns),
        "amount_nulls": int(amount.isna().sum()),
        "city_nulls": int(df["city"].isna().sum()),
        "amount_out": int((~amount.between(0, 1000)).sum() - amount.isna().sum()),
        "qty_out": int((~qty.between(1, 99)).sum()),
        "category_out": int((~df["category"].isin(CATEGORIES)).sum()),
        "id_dupes": int(df["id"].duplicated(keep=False).sum()),
        "score_mean_ok": bool(-0.1 <= df["score"].mean() <= 0.1),
        "qty_type_ok": str(qty.dtype) == "int64",
    }


def _median_time(fn: Any, repeat: int) -> tuple[float, Any]:
    times, value = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), value


def run(rows: int = 1_000_000, repeat: int = 3) -> dict[str, Any]:
    """Time validate() and the plain-pandas equivalent; medians in seconds, plus their ratio."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from toolkit import contracts

    df = _frame(rows)
    columns = [str(c) for c in df.columns]
    with tempfile.TemporaryDirectory(prefix="bench-contracts-") as tmp:
        folder = Path(tmp)
        suite_json = {"name": "bench", "expectations": _expectations(rows, columns)}
        (folder / "bench.json").write_text(json.dumps(suite_json))
        start = time.perf_counter()
        suite = contracts.load_suite("bench", folder)  # imports GX: the one-off cost
        first = contracts.validate(df.head(100), suite)  # builds the context
        one_off = time.perf_counter() - start

    gx_s, result = _median_time(lambda: contracts.validate(df, suite), repeat)
    pandas_s, checks = _median_time(lambda: _pandas_checks(df, rows, columns), repeat)
    small = df.head(1000)
    fixed_s, _ = _median_time(lambda: contracts.validate(small, suite), max(repeat, 3))
    # Every row of two columns broken: the cost of failures must stay bounded (examples only).
    broken = df.assign(amount=df["amount"] + 2000.0, category="omega")
    failing_s, failing = _median_time(lambda: contracts.validate(broken, suite), repeat)
    if len(failing.failures) != 2 or any(len(x.examples) > 5 for x in failing.failures):
        raise RuntimeError(f"unexpected failures: {failing.summary_lines()}")
    pandas_ok = all(v is True or (v == 0 and not isinstance(v, bool)) for v in checks.values())
    if result.success != pandas_ok or not first.outcomes:
        raise RuntimeError(f"GX and pandas disagree: {result.summary_lines()} vs {checks}")
    return {
        "rows": rows,
        "columns": len(columns),
        "expectations": len(suite),
        "repeat": repeat,
        "validate_s": round(gx_s, 4),
        "pandas_s": round(pandas_s, 4),
        "ratio": round(gx_s / pandas_s, 2) if pandas_s else float("inf"),
        "validate_1k_rows_s": round(fixed_s, 4),
        "validate_all_rows_failing_s": round(failing_s, 4),
        "one_off_import_and_context_s": round(one_off, 2),
        "target_ratio": 5.0,
        "success": result.success,
    }


def main(argv: list[str]) -> int:
    rows = int(argv[1]) if len(argv) > 1 else 1_000_000
    repeat = int(argv[2]) if len(argv) > 2 else 3
    f = run(rows, repeat)
    print(
        f"contracts.validate vs plain pandas: {rows:,} rows x {f['columns']} columns, "
        f"{f['expectations']} expectations, median of {repeat}"
    )
    lines = [
        ("toolkit.contracts.validate", f"{f['validate_s'] * 1000:9.1f} ms"),
        ("same checks in plain pandas", f"{f['pandas_s'] * 1000:9.1f} ms"),
        ("ratio (target <= 5x)", f"{f['ratio']:9.2f} x"),
        ("validate on 1,000 rows (fixed)", f"{f['validate_1k_rows_s'] * 1000:9.1f} ms"),
        ("validate, 2 columns all failing", f"{f['validate_all_rows_failing_s'] * 1000:9.1f} ms"),
        ("one-off GX import + context", f"{f['one_off_import_and_context_s']:9.2f} s"),
    ]
    for label, value in lines:
        print(f"  {label:<34} {value}")
    print(json.dumps(f))
    return 0 if f["ratio"] <= f["target_ratio"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
