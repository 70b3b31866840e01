"""toolkit.core.tables.read_table: CSV/Parquet in, DataFrame out, ContractError naming the path."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from toolkit.core.errors import ContractError
from toolkit.core.tables import read_table, table_format

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"


def test_reads_csv_with_pandas_default_dtypes() -> None:
    df = read_table(FIXTURES / "orders.csv")
    assert list(df.columns) == ["order_id", "customer", "amount", "region"]
    assert len(df) == 5
    assert str(df["customer"].dtype) == "str"
    assert df["amount"].dtype == "float64"


def test_reads_parquet_tsv_and_gzipped_csv(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    df.to_parquet(tmp_path / "d.parquet")
    df.to_parquet(tmp_path / "d.pq")
    df.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    with gzip.open(tmp_path / "d.csv.gz", "wt") as handle:
        df.to_csv(handle, index=False)
    for name in ("d.parquet", "d.pq", "d.tsv", "d.csv.gz"):
        got = read_table(tmp_path / name)
        assert got["a"].tolist() == [1, 2, 3], name
        assert got["b"].tolist() == ["x", "y", "z"], name


def test_accepts_str_paths_and_uppercase_extension(tmp_path: Path) -> None:
    path = tmp_path / "DATA.CSV"
    path.write_text("a\n1\n")
    assert read_table(str(path))["a"].tolist() == [1]
    assert table_format(path) == "csv"


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(ContractError, match="data file not found") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_unsupported_extension_lists_supported_ones(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(ContractError, match=r"unsupported data file extension '\.xlsx'") as err:
        read_table(path)
    assert str(path) in str(err.value)
    assert ".parquet" in str(err.value.hint)


def test_directory_is_not_a_data_file(tmp_path: Path) -> None:
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    with pytest.raises(ContractError, match="not a regular file"):
        read_table(folder)


def test_zero_byte_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(ContractError, match=r"empty \(0 bytes\)") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_blank_csv_has_no_columns(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_text("\n\n")
    with pytest.raises(ContractError, match="no columns"):
        read_table(path)


def test_header_only_csv_has_no_rows_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("a,b\n")
    with pytest.raises(ContractError, match=r"no rows \(columns: a, b\)") as err:
        read_table(path)
    assert str(path) in str(err.value)
    assert list(read_table(path, allow_empty=True).columns) == ["a", "b"]


def test_zero_row_parquet_has_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pd.DataFrame({"a": pd.Series([], dtype="int64")}).to_parquet(path)
    with pytest.raises(ContractError, match="no rows"):
        read_table(path)


def test_corrupt_parquet_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"this is not parquet at all")
    with pytest.raises(ContractError, match="cannot read PARQUET data") as err:
        read_table(path)
    assert str(path) in str(err.value)


def test_ragged_csv_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(ContractError, match=r"cannot read CSV data: .*Expected 2 fields"):
        read_table(path)


def test_non_utf8_csv_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("name\ncaf\u00e9\n".encode("utf-16"))
    with pytest.raises(ContractError, match="cannot read CSV data"):
        read_table(path)


def test_reads_json_json_lines_and_feather(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    frame.to_json(tmp_path / "d.json", orient="records")
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    frame.to_feather(tmp_path / "d.feather")
    for name in ("d.json", "d.jsonl", "d.feather"):
        read = read_table(tmp_path / name)
        assert read["a"].tolist() == [1, 2] and read["b"].tolist() == ["x", "y"], name


def test_unsupported_extension_names_every_supported_format(tmp_path: Path) -> None:
    with pytest.raises(ContractError) as err:
        table_format(tmp_path / "d.xml")
    assert err.value.exit_code == 2
    assert "CSV, TSV, Parquet, JSON, JSON Lines and Feather" in str(err.value)


def test_fingerprints_read_rows_of_every_table_format(tmp_path: Path) -> None:
    from toolkit.core.lineage import fingerprint

    frame = pd.DataFrame({"a": [1, 2, 3]})
    frame.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    frame.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    frame.to_feather(tmp_path / "d.feather")
    for name, kind in (("d.tsv", "tsv"), ("d.jsonl", "jsonl"), ("d.feather", "feather")):
        facts = fingerprint(tmp_path / name)
        assert (facts["format"], facts["rows"], facts["schema"]) == (kind, 3, {"a": "int64"})


def test_drafted_suites_are_readable_by_the_group(tmp_path: Path) -> None:
    from toolkit.contracts.draft import draft_suite, write_draft

    path = write_draft(draft_suite(pd.DataFrame({"a": [1, 2]}), "s"), tmp_path / "s.json")
    assert path.stat().st_mode & 0o777 == 0o644
