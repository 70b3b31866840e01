"""toolkit.contracts.draft: what a draft contains, without Great Expectations.

That a draft actually passes on its sample and catches breakage is checked with real GX in
tests/contracts/test_suites.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from toolkit.contracts.draft import draft_suite, write_draft
from toolkit.core.errors import ContractError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sample() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 100
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "price": rng.uniform(5.0, 50.0, n),
            "delta": rng.uniform(-20.0, 20.0, n),
            "region": rng.choice(["north", "south", "east"], n),
            "name": [f"customer-{i}" for i in range(n)],
            "score": np.where(np.arange(n) % 50 == 0, np.nan, 1.0),  # 2% nulls
            "sparse": np.where(np.arange(n) % 2 == 0, np.nan, 1.0),  # 50% nulls
            "flag": rng.random(n) < 0.5,
        }
    )


def _find(suite: dict[str, Any], etype: str, column: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in suite["expectations"]
        if e["type"] == etype and (column is None or e["kwargs"].get("column") == column)
    ]


def test_draft_pins_the_column_set_and_generous_row_count(sample: pd.DataFrame) -> None:
    suite = draft_suite(sample, "sales")
    assert suite["name"] == "sales"
    [columns] = _find(suite, "expect_table_columns_to_match_set")
    assert columns["kwargs"]["column_set"] == list(sample.columns)
    [rows] = _find(suite, "expect_table_row_count_to_be_between")
    assert rows["kwargs"] == {"min_value": 1, "max_value": 10 * len(sample)}


def test_draft_types_use_names_gx_accepts_on_pandas_3(sample: pd.DataFrame) -> None:
    suite = draft_suite(sample, "sales")
    types = {
        e["kwargs"]["column"]: e["kwargs"]["type_"]
        for e in _find(suite, "expect_column_values_to_be_of_type")
    }
    assert types == {
        "id": "int64",
        "price": "float64",
        "delta": "float64",
        "region": "str",  # not "object": pandas 3 strings are the str dtype
        "name": "str",
        "score": "float64",
        "sparse": "float64",
        "flag": "bool",
    }


def test_not_null_is_strict_for_complete_columns_and_mostly_for_few_nulls(
    sample: pd.DataFrame,
) -> None:
    suite = draft_suite(sample, "sales")
    assert _find(suite, "expect_column_values_to_not_be_null", "price")[0]["kwargs"] == {
        "column": "price"
    }
    [score] = _find(suite, "expect_column_values_to_not_be_null", "score")
    assert score["kwargs"]["mostly"] == 0.96  # 2% nulls observed, twice that tolerated
    assert _find(suite, "expect_column_values_to_not_be_null", "sparse") == []


def test_ranges_get_a_ten_percent_margin_rounded_outward() -> None:
    df = pd.DataFrame({"price": [20.0, 30.5, 120.0], "delta": [-10.0, 0.25, 10.0]})
    suite = draft_suite(df, "p")
    [price] = _find(suite, "expect_column_values_to_be_between", "price")
    assert (price["kwargs"]["min_value"], price["kwargs"]["max_value"]) == (10.0, 130.0)
    [delta] = _find(suite, "expect_column_values_to_be_between", "delta")
    assert (delta["kwargs"]["min_value"], delta["kwargs"]["max_value"]) == (-12.0, 12.0)


def test_integer_ranges_stay_integers_and_bools_get_none(sample: pd.DataFrame) -> None:
    suite = draft_suite(sample, "sales")
    [ids] = _find(suite, "expect_column_values_to_be_between", "id")
    assert ids["kwargs"] == {"column": "id", "min_value": 0, "max_value": 109}
    assert isinstance(ids["kwargs"]["max_value"], int)
    assert _find(suite, "expect_column_values_to_be_between", "flag") == []


def test_non_negative_column_is_clamped_at_zero() -> None:
    df = pd.DataFrame({"count": [1, 2, 3, 50]})
    [bounds] = _find(draft_suite(df, "c"), "expect_column_values_to_be_between", "count")
    assert bounds["kwargs"]["min_value"] == 0  # 1 - 4.9 would be negative
    assert bounds["kwargs"]["max_value"] == 55


def test_constant_column_still_gets_a_nonempty_range() -> None:
    df = pd.DataFrame({"k": [7.0, 7.0, 7.0]})
    [bounds] = _find(draft_suite(df, "c"), "expect_column_values_to_be_between", "k")
    assert bounds["kwargs"]["min_value"] < 7.0 < bounds["kwargs"]["max_value"]


def test_small_categorical_sets_only(sample: pd.DataFrame) -> None:
    suite = draft_suite(sample, "sales")
    [region] = _find(suite, "expect_column_values_to_be_in_set", "region")
    assert region["kwargs"]["value_set"] == ["east", "north", "south"]
    assert _find(suite, "expect_column_values_to_be_in_set", "name") == []  # one value per row
    many = pd.DataFrame({"code": [f"c{i % 30}" for i in range(300)]})  # 30 > 20 distinct
    assert _find(draft_suite(many, "m"), "expect_column_values_to_be_in_set") == []


def test_meta_says_drafted_from_where_and_asks_for_review(sample: pd.DataFrame) -> None:
    meta = draft_suite(sample, "sales", source="data/sales.csv")["meta"]
    assert meta["source"] == "data/sales.csv"
    assert meta["drafted_by"] == "toolkit contracts new"
    assert meta["drafted_at"].endswith("+00:00")
    assert meta["sample_rows"] == 100
    assert "review" in meta["review"]


def test_object_column_gets_no_type_check_and_is_recorded() -> None:
    df = pd.DataFrame({"mixed": pd.Series([1, "a", 2.5], dtype=object)})
    suite = draft_suite(df, "m")
    assert _find(suite, "expect_column_values_to_be_of_type") == []
    assert suite["meta"]["columns_without_type_check"] == ["mixed"]


def test_draft_is_plain_json(sample: pd.DataFrame) -> None:
    text = json.dumps(draft_suite(sample, "sales"), allow_nan=False)  # numpy types would fail
    assert json.loads(text)["name"] == "sales"


def test_empty_sample_is_refused() -> None:
    with pytest.raises(ContractError, match="empty sample"):
        draft_suite(pd.DataFrame({"a": []}), "x")


def test_write_draft_refuses_to_overwrite_unless_asked(tmp_path: Path) -> None:
    path = tmp_path / "expectations" / "x.json"
    suite = {"name": "x", "meta": {}, "expectations": []}
    assert write_draft(suite, path) == path
    assert path.read_text().startswith('{\n  "name": "x"')  # indent=2, readable
    with pytest.raises(ContractError, match="already exists") as err:
        write_draft({**suite, "meta": {"v": 2}}, path)
    assert str(path) in str(err.value)
    assert json.loads(path.read_text())["meta"] == {}
    write_draft({**suite, "meta": {"v": 2}}, path, overwrite=True)
    assert json.loads(path.read_text())["meta"] == {"v": 2}


def test_importing_contracts_and_drafting_do_not_import_great_expectations() -> None:
    code = (
        "import sys, pandas as pd\n"
        "import toolkit.contracts, toolkit.contracts.draft, toolkit.core.tables\n"
        "toolkit.contracts.draft.draft_suite(pd.DataFrame({'a': [1, 2]}), 'a')\n"
        "print('great_expectations' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
