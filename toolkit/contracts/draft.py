"""Drafting a contract suite from a sample DataFrame (GX 1.x dropped its profilers).

The draft is a starting point for a human: it pins what the sample shows (column set, dtypes,
no-null columns, numeric ranges with a margin, small categorical sets, a row-count range) so
that obvious breakage is caught, and its ``meta`` says it must be reviewed. Pure pandas/numpy:
drafting never imports Great Expectations. Every dtype name emitted here was checked against
GX 1.24 on pandas 3.1 (see tests/contracts/test_suites.py).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.core.errors import ContractError
from toolkit.core.fsutil import atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

MAX_CATEGORIES = 20  # more distinct values than this is not a "small" categorical set
MAX_CATEGORY_RATIO = 0.5  # ...nor is one where most rows have their own value (ids, names)
RANGE_MARGIN = 0.10  # widen numeric bounds by 10% of the observed range on each side
MOSTLY_MAX_NULL_RATE = 0.2  # columns with more nulls than this get no not-null expectation
# Row-count bounds: a sample says little about production volume, so only the extremes are
# pinned. At least one row catches an empty extract; ten times the sample catches a join that
# fanned out. Reviewers should tighten both once they know the real volume.
ROW_COUNT_GROWTH = 10


def _gx_type_name(series: pd.Series) -> str | None:
    """The ``type_`` that ``expect_column_values_to_be_of_type`` accepts for this column.

    GX compares ``dtype.type`` with the type it derives from the name, which gives surprising
    names on pandas 3: the default string dtype is ``str``; nullable ``Int64``/``Float64``/
    ``boolean`` report their numpy counterparts; ``category`` needs ``CategoricalDtypeType``;
    tz-aware datetimes need ``Timestamp``. Object columns (mixed values) get no type check.
    """
    import pandas as pd
    from pandas.api import types as ptypes

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "CategoricalDtypeType"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "Timestamp"
    if isinstance(dtype, pd.StringDtype):
        # Only the default str dtype (na_value=nan) is verified; "string" (pd.NA) is skipped.
        return "str" if dtype.na_value is not pd.NA else None
    if ptypes.is_bool_dtype(dtype):
        return "bool"
    if isinstance(dtype, pd.api.extensions.ExtensionDtype):
        numpy_dtype = getattr(dtype, "numpy_dtype", None)  # Int64 -> int64, Float64 -> float64
        return str(numpy_dtype) if numpy_dtype is not None and numpy_dtype.kind in "iuf" else None
    if dtype.kind in "iufmM":
        return str(dtype)
    return None


def _nice_bounds(low: float, high: float, *, integer: bool) -> tuple[float, float]:
    """Round ``[low, high]`` outward to a readable precision (about 3 significant digits)."""
    if integer:
        return float(math.floor(low)), float(math.ceil(high))
    span = high - low
    exponent = math.floor(math.log10(span)) - 2 if span > 0 else 0
    step, digits = 10.0**exponent, max(0, -exponent)
    lo, hi = math.floor(low / step) * step, math.ceil(high / step) * step
    # round() can undo the outward rounding by one ulp; the margin makes that harmless but the
    # bounds must still contain the sample, so keep min/max against the originals.
    return min(round(lo, digits), low), max(round(hi, digits), high)


def _range_expectation(name: str, series: pd.Series) -> dict[str, Any] | None:
    values = series.dropna()
    if values.empty:
        return None
    lo, hi = float(values.min()), float(values.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    margin = RANGE_MARGIN * (hi - lo) if hi > lo else max(abs(lo) * RANGE_MARGIN, 1.0)
    low, high = lo - margin, hi + margin
    if lo >= 0:
        low = max(low, 0.0)  # a non-negative column (counts, prices) stays non-negative
    integer = series.dtype.kind in "iu"  # numpy and nullable (Int64) integers alike
    low, high = _nice_bounds(low, high, integer=integer)
    return {
        "type": "expect_column_values_to_be_between",
        "kwargs": {
            "column": name,
            "min_value": _num(low, integer),
            "max_value": _num(high, integer),
        },
        "notes": f"sample range {lo:.6g} .. {hi:.6g}, widened by 10% of the range",
    }


def _num(value: float, integer: bool) -> int | float:
    return int(value) if integer else float(value)


def _category_expectation(name: str, series: pd.Series) -> dict[str, Any] | None:
    import pandas as pd

    if (
        not isinstance(series.dtype, pd.StringDtype | pd.CategoricalDtype)
        and series.dtype != object
    ):
        return None
    values = series.dropna()
    distinct = list(values.unique())
    if not 0 < len(distinct) <= MAX_CATEGORIES or len(distinct) > MAX_CATEGORY_RATIO * len(values):
        return None
    # Only text categories: a set of numbers is better served by the range expectation, and
    # mixing types in value_set would not round-trip through JSON faithfully.
    if not all(isinstance(v, str) for v in distinct):
        return None
    return {
        "type": "expect_column_values_to_be_in_set",
        "kwargs": {"column": name, "value_set": sorted(distinct)},
    }


def _null_expectation(name: str, series: pd.Series) -> dict[str, Any] | None:
    nulls = int(series.isna().sum())
    rows = len(series)
    expectation: dict[str, Any] = {
        "type": "expect_column_values_to_not_be_null",
        "kwargs": {"column": name},
    }
    if nulls == 0:
        return expectation
    rate = nulls / rows
    if rate > MOSTLY_MAX_NULL_RATE:
        return None
    # Tolerate twice the sample's null rate, rounded down to a whole percent.
    mostly = math.floor((1 - 2 * rate) * 100) / 100
    if mostly <= 0:
        return None
    expectation["kwargs"]["mostly"] = mostly
    expectation["notes"] = f"sample has {nulls} null(s) in {rows} rows ({100 * rate:.2g}%)"
    return expectation


def draft_suite(df: pd.DataFrame, name: str, *, source: str = "") -> dict[str, Any]:
    """Draft a contract suite (a JSON-ready dict) that the sample ``df`` passes.

    Args:
        df: a representative sample of the data the contract will guard.
        name: the suite name (also the file stem under ``expectations/``).
        source: where the sample came from (file path, query), recorded in ``meta``.

    Returns:
        ``{"name", "meta", "expectations"}`` in the format :func:`toolkit.contracts.suites.load_suite`
        reads.
    """
    if len(df) == 0 or len(df.columns) == 0:
        raise ContractError(f"cannot draft contract {name!r} from an empty sample")
    columns = [str(c) for c in df.columns]
    expectations: list[dict[str, Any]] = [
        {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": columns}},
        {
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {"min_value": 1, "max_value": max(1, ROW_COUNT_GROWTH * len(df))},
        },
    ]
    skipped: list[str] = []
    for column, (_, series) in zip(columns, df.items(), strict=True):
        type_name = _gx_type_name(series)
        if type_name is None:
            skipped.append(column)
        else:
            expectations.append(
                {
                    "type": "expect_column_values_to_be_of_type",
                    "kwargs": {"column": column, "type_": type_name},
                }
            )
        if (null := _null_expectation(column, series)) is not None:
            expectations.append(null)
        numeric = type_name not in (None, "bool") and series.dtype.kind in "iuf"
        if numeric and (bounds := _range_expectation(column, series)) is not None:
            expectations.append(bounds)
        if (categories := _category_expectation(column, series)) is not None:
            expectations.append(categories)
    meta: dict[str, Any] = {
        "drafted_by": "toolkit contracts new",
        "drafted_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source,
        "sample_rows": len(df),
        "review": (
            "DRAFT inferred from one sample: review every bound and set, then delete this key."
        ),
    }
    if skipped:
        meta["columns_without_type_check"] = skipped
    return {"name": name, "meta": meta, "expectations": expectations}


def write_draft(suite: dict[str, Any], path: Path, *, overwrite: bool = False) -> Path:
    """Write a drafted suite as readable JSON (indent 2), refusing to replace an existing file.

    Raises:
        ContractError: ``path`` exists and ``overwrite`` is False (a reviewed contract must not
            be clobbered by a fresh draft).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ContractError(
            f"{path}: already exists; not overwriting a contract with a draft",
            hint="pass overwrite=True (CLI: --force) or choose another name",
        )
    atomic_write_text(path, json.dumps(suite, indent=2, ensure_ascii=False) + "\n")
    path.chmod(0o644)  # a source file the team reads and commits, not a private temp file
    return path
