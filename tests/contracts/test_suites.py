"""toolkit.contracts against real Great Expectations 1.24 (no mocks).

GX costs ~2 s to import, once per process; every test here shares that and the one ephemeral
context the module builds.
"""

from __future__ import annotations

import gc
import json
import os
import shutil
import threading
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from toolkit import contracts
from toolkit.contracts.draft import draft_suite, write_draft
from toolkit.contracts.gx_adapter import current_context
from toolkit.core.errors import ContractError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"


@pytest.fixture(scope="module")
def exp_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the fixture suite in its expectations/ folder (shared: read-only)."""
    root = tmp_path_factory.mktemp("project")
    (root / "pyproject.toml").write_text('[project]\nname = "mini"\n[tool.toolkit]\n')
    (root / "expectations").mkdir()
    shutil.copy(FIXTURES / "orders.json", root / "expectations")
    return root / "expectations"


@pytest.fixture(scope="module")
def orders(exp_dir: Path) -> contracts.Suite:
    return contracts.load_suite("orders", exp_dir)


def _write_suite(folder: Path, name: str, expectations: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"name": name, "expectations": expectations}, indent=2))
    return path


def _orders_frame(**overrides: list[Any]) -> pd.DataFrame:
    data: dict[str, list[Any]] = {
        "order_id": [1, 2, 3, 4],
        "customer": ["C1", "C2", "C3", "C4"],
        "amount": [10.0, 20.0, 30.0, 40.0],
        "region": ["north", "south", "east", "west"],
    }
    data.update(overrides)
    return pd.DataFrame(data)


# ----------------------------------------------------------------------------- loading


def test_load_suite_reads_expectations_in_file_order(orders: contracts.Suite) -> None:
    assert orders.name == "orders"
    assert orders.meta == {"contract_version": 1, "owner": "data-team"}
    assert len(orders) == 7
    assert orders.expectations[1]["type"] == "expect_column_values_to_be_unique"
    assert orders.expectations[2]["severity"] == "warning"
    assert orders.expectations[3]["severity"] == "critical"  # the default, made explicit


def test_load_suite_is_cached_per_mtime(tmp_path: Path) -> None:
    path = _write_suite(
        tmp_path,
        "c",
        [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}],
    )
    first = contracts.load_suite("c", tmp_path)
    assert contracts.load_suite("c", tmp_path) is first
    data = json.loads(path.read_text())
    data["meta"] = {"edited": True}
    path.write_text(json.dumps(data))
    os.utime(path, ns=(first.path.stat().st_atime_ns, first.path.stat().st_mtime_ns + 10**9))
    second = contracts.load_suite("c", tmp_path)
    assert second is not first
    assert second.meta == {"edited": True}


def test_list_suites(exp_dir: Path, tmp_path: Path) -> None:
    assert [s.name for s in contracts.list_suites(exp_dir)] == ["orders"]
    assert contracts.list_suites(tmp_path / "nowhere") == []


def test_unknown_suite_suggests_the_close_name(exp_dir: Path) -> None:
    with pytest.raises(ContractError, match="unknown contract suite 'ordres'") as err:
        contracts.load_suite("ordres", exp_dir)
    assert err.value.hint == "did you mean 'orders'? available: orders"


def test_unknown_suite_lists_what_exists_when_nothing_is_close(exp_dir: Path) -> None:
    with pytest.raises(ContractError) as err:
        contracts.load_suite("zzz", exp_dir)
    assert err.value.hint == "available: orders"


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "name": "broken",\n  "expectations": [\n    {"type": }\n  ]\n}\n')
    with pytest.raises(ContractError, match="invalid JSON") as err:
        contracts.load_suite("broken", tmp_path)
    assert f"{path}:4:" in str(err.value)


def test_unknown_expectation_type_is_an_error_not_silently_dropped(tmp_path: Path) -> None:
    path = _write_suite(
        tmp_path,
        "typo",
        [
            {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
            {"type": "expect_column_values_to_not_be_nul", "kwargs": {"column": "a"}},
        ],
    )
    with pytest.raises(ContractError) as err:
        contracts.load_suite("typo", tmp_path)
    message = str(err.value)
    assert str(path) in message
    assert "expectations[1]" in message
    assert "unknown expectation type 'expect_column_values_to_not_be_nul'" in message
    assert "expect_column_values_to_not_be_null" in str(err.value.hint)


def test_bad_kwargs_name_the_index_type_and_field(tmp_path: Path) -> None:
    path = _write_suite(
        tmp_path,
        "kw",
        [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
            {
                "type": "expect_column_values_to_be_between",
                "kwargs": {"column": "a", "min_value": 0, "maxx": 3},
            },
        ],
    )
    with pytest.raises(ContractError) as err:
        contracts.load_suite("kw", tmp_path)
    message = str(err.value)
    assert message.startswith(f"{path}: expectations[1] (expect_column_values_to_be_between):")
    assert "field 'kwargs.maxx': extra fields not permitted" in message


def test_missing_required_kwarg_and_bad_value(tmp_path: Path) -> None:
    _write_suite(
        tmp_path,
        "req",
        [{"type": "expect_column_values_to_be_between", "kwargs": {"min_value": 0}}],
    )
    with pytest.raises(ContractError, match=r"field 'kwargs.column': field required"):
        contracts.load_suite("req", tmp_path)
    _write_suite(
        tmp_path,
        "mostly",
        [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a", "mostly": 2}}],
    )
    with pytest.raises(ContractError, match=r"field 'kwargs.mostly': ensure this value"):
        contracts.load_suite("mostly", tmp_path)


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "sev": 1},
            "unknown field 'sev'",
        ),
        (
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "a"},
                "severity": "fatal",
            },
            "field 'severity' is 'fatal'",
        ),
        (
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "a", "severity": "warning"},
            },
            "field 'kwargs.severity' belongs",
        ),
        ({"kwargs": {"column": "a"}}, "expectations[0]: missing field 'type'"),
        (
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "meta": 1},
            "field 'meta' must be a JSON object",
        ),
        (
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}, "notes": 3},
            "field 'notes' must be a string",
        ),
        (
            {"type": "expect_column_values_to_not_be_null", "kwargs": ["a"]},
            "field 'kwargs' must be a JSON object",
        ),
    ],
)
def test_malformed_expectation_entries(
    tmp_path: Path, entry: dict[str, Any], expected: str
) -> None:
    _write_suite(tmp_path, "bad", [entry])
    with pytest.raises(ContractError) as err:
        contracts.load_suite("bad", tmp_path)
    assert expected in str(err.value)


def test_suite_name_must_match_file_name(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"name": "b", "expectations": []}')
    with pytest.raises(ContractError, match="name 'b' differs from the file name"):
        contracts.load_suite("a", tmp_path)


# ----------------------------------------------------------------------------- validating


def test_passing_data(orders: contracts.Suite) -> None:
    result = contracts.validate(_orders_frame(), orders, data_name="good.csv")
    assert result.success and not result.blocking
    assert result.status == "passed"
    assert result.failures == ()
    assert result.statistics["evaluated_expectations"] == 7
    assert result.statistics["successful_expectations"] == 7
    assert result.row_count == 4
    assert result.summary_lines() == []
    assert "PASSED" in str(result)


def test_failures_carry_column_observed_value_examples_count_and_percent(
    orders: contracts.Suite,
) -> None:
    df = contracts.check(FIXTURES / "orders_bad.csv", "orders", expectations_dir=orders.path.parent)
    assert not df.success and df.blocking
    by_type = {f.expectation_type: f for f in df.failures}
    amount = by_type["expect_column_values_to_be_between"]
    assert amount.column == "amount"
    assert amount.unexpected_count == 2
    assert amount.unexpected_percent == pytest.approx(40.0)
    assert set(amount.examples) == {-15.25, 3000.0}
    assert amount.kwargs == {"column": "amount", "min_value": 0, "max_value": 1000}
    region = by_type["expect_column_values_to_be_in_set"]
    assert region.examples == ("mars", "atlantis")
    assert region.notes == "sales regions as of 2026"
    mean = by_type["expect_column_mean_to_be_between"]
    assert mean.observed_value == pytest.approx(645.45)
    assert mean.unexpected_count is None
    unique = by_type["expect_column_values_to_be_unique"]
    assert unique.examples == (2,)
    assert unique.unexpected_count == 2
    customer = by_type["expect_column_values_to_not_be_null"]
    assert customer.severity == "warning"
    assert customer.examples == (None,)  # NaN example becomes None
    assert df.statistics["unsuccessful_expectations"] == 5
    assert df.data_name == "orders_bad.csv"


def test_missing_column_is_a_failing_expectation_naming_the_column(
    orders: contracts.Suite,
) -> None:
    df = _orders_frame().drop(columns=["region"])
    result = contracts.validate(df, orders)
    failing = {f.index: f for f in result.failures}
    assert set(failing) == {0, 4}
    assert failing[4].column == "region"
    assert failing[4].error == "column 'region' is missing from the data"
    assert failing[0].details == {"mismatched": {"missing": ["region"]}}
    assert any("column 'region' is missing from the data" in s for s in result.summary_lines())


def test_missing_column_in_a_pair_expectation(tmp_path: Path) -> None:
    _write_suite(
        tmp_path,
        "pair",
        [
            {
                "type": "expect_column_pair_values_a_to_be_greater_than_b",
                "kwargs": {"column_A": "hi", "column_B": "lo"},
            }
        ],
    )
    result = contracts.validate(
        pd.DataFrame({"hi": [2, 3]}), contracts.load_suite("pair", tmp_path)
    )
    assert result.failures[0].error == "column 'lo' is missing from the data"


def test_warning_only_failures_are_not_blocking(orders: contracts.Suite) -> None:
    df = _orders_frame(customer=["C1", None, "C3", "C4"])
    result = contracts.validate(df, orders)
    assert result.success is False
    assert result.blocking is False
    assert result.status == "warning"
    assert [f.index for f in result.failures] == [2]
    assert result.to_dict()["blocking"] is False


def test_results_keep_suite_order(tmp_path: Path) -> None:
    # GX returns results grouped by column; the suite interleaves columns on purpose.
    expectations = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "b"}},
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "a"}},
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "b", "max_value": 0}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "a", "min_value": 5}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "b"}},
    ]
    _write_suite(tmp_path, "order", expectations)
    result = contracts.validate(
        pd.DataFrame({"a": [1, 2, 3], "b": [1, 1, 2]}), contracts.load_suite("order", tmp_path)
    )
    assert [o.index for o in result.outcomes] == list(range(6))
    assert [(o.expectation_type, o.kwargs) for o in result.outcomes] == [
        (e["type"], e["kwargs"]) for e in expectations
    ]
    assert [o.success for o in result.outcomes] == [True, True, True, False, False, False]


def test_to_dict_is_strict_json(orders: contracts.Suite) -> None:
    df = _orders_frame(customer=["C1", None, None, "C4"], amount=[1.0, np.nan, 5000.0, 2.0])
    data = contracts.validate(df, orders, data_name="x").to_dict()
    text = json.dumps(data, allow_nan=False)  # raises on NaN or numpy values
    back = json.loads(text)
    assert back["suite"] == "orders"
    assert back["success"] is False
    assert [e["index"] for e in back["expectations"]] == list(range(7))
    assert back["expectations"][2]["examples"] == [None]


def test_to_html_is_self_contained_and_highlights_failures(orders: contracts.Suite) -> None:
    df = _orders_frame(region=["north", "mars", "east", "west"])
    result = contracts.validate(df, orders, data_name="o.csv")
    page = result.to_html()
    assert page.startswith("<!DOCTYPE html>")
    assert "FAILED" in page
    assert "<tr class='tk-row-failed'><td>4</td><td><code>expect_column_values_to_be_in_set" in page
    assert "mars" in page
    assert "http" not in page and "<script" not in page  # nothing from a CDN
    fragment = result._repr_html_()
    assert "<html" not in fragment and "expect_column_values_to_be_in_set" in fragment
    ok = contracts.validate(_orders_frame(), orders).to_html()
    assert "<tr class='tk-row-failed'>" not in ok and "PASSED" in ok


def test_html_escapes_data_values(tmp_path: Path) -> None:
    _write_suite(
        tmp_path,
        "esc",
        [{"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "s", "value_set": []}}],
    )
    df = pd.DataFrame({"s": ["<script>alert(1)</script>"]})
    page = contracts.validate(df, contracts.load_suite("esc", tmp_path)).to_html()
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_summary_lines_one_per_failure(orders: contracts.Suite) -> None:
    df = _orders_frame(amount=[10.0, 2000.0, 30.0, 40.0])
    result = contracts.validate(df, orders, data_name="o.csv")
    assert result.summary_lines() == [
        "FAIL [critical] expect_column_values_to_be_between (amount): "
        "1 unexpected (25%); e.g. 2000.0",
        "FAIL [critical] expect_column_mean_to_be_between (amount): observed 520.0",
    ]
    assert str(result).splitlines()[0] == (
        "contract 'orders' on o.csv: FAILED (5/7 expectations passed)"
    )


def test_examples_stay_bounded_on_many_failures(tmp_path: Path) -> None:
    _write_suite(
        tmp_path,
        "big",
        [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "x", "max_value": 0}}],
    )
    df = pd.DataFrame({"x": np.arange(1, 200_001)})
    [failure] = contracts.validate(df, contracts.load_suite("big", tmp_path)).failures
    assert failure.unexpected_count == 200_000
    assert failure.unexpected_percent == 100.0
    assert len(failure.examples) == 5
    assert len(json.dumps(failure.to_dict())) < 1000


def test_validate_is_thread_safe(orders: contracts.Suite) -> None:
    frames = {
        "a": _orders_frame(),
        "b": pd.concat([_orders_frame(amount=[1.0, 2000.0, 3000.0, 4.0])] * 50, ignore_index=True),
    }
    expected = {"a": (4, ()), "b": (200, (1, 3, 5))}  # rows, failing indices
    seen: list[tuple[str, int, tuple[int, ...]]] = []
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            for _ in range(5):
                result = contracts.validate(frames[name], orders, data_name=name)
                seen.append((result.data_name, result.row_count or 0, _failing(result)))
        except BaseException as exc:  # surfaced below; a thread would swallow it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b", "a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(seen) == 20
    for name, rows, failing in seen:
        assert (rows, failing) == expected[name], name


def _failing(result: contracts.ContractResult) -> tuple[int, ...]:
    return tuple(f.index for f in result.failures)


def test_validate_does_not_keep_the_frame_alive(orders: contracts.Suite) -> None:
    df = _orders_frame()
    ref = weakref.ref(df)
    result = contracts.validate(df, orders)
    del df
    gc.collect()
    assert ref() is None
    assert result.success  # and the next validation still works
    assert contracts.validate(_orders_frame(), orders).success


def test_no_data_docs_site_in_tmpdir(orders: contracts.Suite) -> None:
    contracts.validate(_orders_frame(), orders)
    context = current_context()
    assert context.get_site_names() == []


# ----------------------------------------------------------------------------- entry points


def test_check_finds_the_project_from_cwd(exp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    notebooks = exp_dir.parent / "notebooks"
    notebooks.mkdir(exist_ok=True)
    monkeypatch.chdir(notebooks)
    result = contracts.check(_orders_frame(), "orders")
    assert result.success
    assert result.suite_path == str(exp_dir / "orders.json")


def test_check_returns_failures_instead_of_raising(exp_dir: Path) -> None:
    result = contracts.check(_orders_frame(amount=[-1.0] * 4), "orders", expectations_dir=exp_dir)
    assert result.blocking


def test_check_file_and_unreadable_data(exp_dir: Path, tmp_path: Path) -> None:
    result = contracts.check_file("orders", FIXTURES / "orders.csv", exp_dir)
    assert result.success and result.data_name == "orders.csv" and result.row_count == 5
    empty = tmp_path / "empty.csv"
    empty.write_text("order_id,customer,amount,region\n")
    with pytest.raises(ContractError, match="no rows"):
        contracts.check_file("orders", empty, exp_dir)
    with pytest.raises(ContractError, match="data file not found"):
        contracts.check_file("orders", tmp_path / "missing.parquet", exp_dir)


def test_write_result_writes_json_and_html(orders: contracts.Suite, tmp_path: Path) -> None:
    result = contracts.validate(_orders_frame(region=["x"] * 4), orders, data_name="in/raw.csv")
    json_path, html_path = contracts.write_result(result, tmp_path / "out")
    assert json_path == tmp_path / "out" / "raw.json"
    assert html_path == tmp_path / "out" / "raw.html"
    assert json.loads(json_path.read_text())["expectations"][4]["success"] is False
    assert "expect_column_values_to_be_in_set" in html_path.read_text()
    unnamed = contracts.validate(_orders_frame(), orders)
    assert contracts.write_result(unnamed, tmp_path)[0].name == "orders.json"


# ----------------------------------------------------------------------------- drafting


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    n = 300
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "amount": rng.uniform(1.0, 500.0, n).round(2),
            "delta": rng.normal(0.0, 3.0, n),
            "qty": rng.integers(1, 12, n),
            "region": rng.choice(["north", "south", "east", "west"], n),
            "note": [f"note {i}" for i in range(n)],
            "score": np.where(np.arange(n) % 40 == 0, np.nan, rng.random(n)),
            "flag": rng.random(n) < 0.3,
            "when": pd.date_range("2024-01-01", periods=n, freq="h"),
            "when_utc": pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"),
            "tier": pd.Categorical(rng.choice(["gold", "silver"], n)),
            "maybe_int": pd.array(rng.integers(0, 5, n), dtype="Int64"),
            "maybe_bool": pd.array(rng.random(n) < 0.5, dtype="boolean"),
            "maybe_float": pd.array(rng.random(n), dtype="Float64"),
            "wait": pd.to_timedelta(rng.integers(1, 100, n), unit="s"),
        }
    )


@pytest.fixture(scope="module")
def drafted(sample: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> contracts.Suite:
    folder = tmp_path_factory.mktemp("drafts")
    write_draft(draft_suite(sample, "sample", source="fixture"), folder / "sample.json")
    return contracts.load_suite("sample", folder)  # the strict loader accepts the draft


def test_draft_passes_on_its_sample(sample: pd.DataFrame, drafted: contracts.Suite) -> None:
    result = contracts.validate(sample, drafted)
    assert result.failures == ()
    types = [o for o in result.outcomes if o.expectation_type.endswith("_to_be_of_type")]
    assert len(types) == len(sample.columns)  # every dtype got a type GX accepts


def _failing_types(result: contracts.ContractResult, column: str) -> set[str]:
    return {f.expectation_type for f in result.failures if f.column == column}


def test_draft_catches_nulls_in_a_complete_column(
    sample: pd.DataFrame, drafted: contracts.Suite
) -> None:
    broken = sample.copy()
    broken.loc[[3, 7], "amount"] = np.nan
    result = contracts.validate(broken, drafted)
    assert _failing_types(result, "amount") == {"expect_column_values_to_not_be_null"}
    assert result.blocking


def test_draft_catches_an_out_of_range_value(
    sample: pd.DataFrame, drafted: contracts.Suite
) -> None:
    broken = sample.copy()
    broken.loc[5, "amount"] = 10_000.0
    result = contracts.validate(broken, drafted)
    [failure] = result.failures
    assert (failure.expectation_type, failure.column) == (
        "expect_column_values_to_be_between",
        "amount",
    )
    assert failure.examples == (10_000.0,)


def test_draft_catches_an_unknown_category(sample: pd.DataFrame, drafted: contracts.Suite) -> None:
    broken = sample.copy()
    broken.loc[9, "region"] = "mars"
    result = contracts.validate(broken, drafted)
    [failure] = result.failures
    assert (failure.expectation_type, failure.examples) == (
        "expect_column_values_to_be_in_set",
        ("mars",),
    )


def test_draft_catches_a_missing_column(sample: pd.DataFrame, drafted: contracts.Suite) -> None:
    result = contracts.validate(sample.drop(columns=["qty"]), drafted)
    assert result.blocking
    assert {f.column for f in result.failures} == {None, "qty"}
    assert {f.error for f in result.failures if f.column == "qty"} == {
        "column 'qty' is missing from the data"
    }


def test_draft_catches_a_changed_type(sample: pd.DataFrame, drafted: contracts.Suite) -> None:
    broken = sample.assign(qty=sample["qty"].astype("float64"))
    result = contracts.validate(broken, drafted)
    assert _failing_types(result, "qty") == {"expect_column_values_to_be_of_type"}
