"""Decision records name the fallback rule that fired, and are indexed as they are written:
the index (``<runs_dir>/decisions.sqlite``) finds them by record id or input hash, survives a
crash mid-write, and can be rebuilt from the record files alone."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
from support.guards import MESSY_BATCH, example_guard

from toolkit.guard.batch import read_batch, storable
from toolkit.guard.model import GuardedModel
from toolkit.guard.policy import CallableFallback
from toolkit.guard.record_index import (
    RunRef,
    connect,
    index_frame,
    index_path,
    lookup,
    reading,
    rebuild,
    write_decisions,
)

MODEL = "breast_cancer_clf"


@pytest.fixture(scope="module")
def guard() -> GuardedModel:
    return example_guard(MODEL)


@pytest.fixture(scope="module")
def messy(guard: GuardedModel) -> pd.DataFrame:
    """The example's messy batch scored as the score notebook does: inputs next to decisions."""
    raw = read_batch(MESSY_BATCH, guard.contract)
    return pd.concat([storable(raw), guard.predict(raw)], axis=1)


def test_a_fallback_record_names_the_rule_that_fired(messy: pd.DataFrame) -> None:
    by_id = messy.set_index("patient_id")
    fallback = by_id[by_id["path"] == "fallback"]
    assert len(fallback) >= 2  # the messy batch has unsure rows
    for _, row in fallback.iterrows():
        assert row["reason"].endswith(f"rule {row['rule']}: " + row["reason"].split(": ", 1)[1])
    assert set(fallback["rule"]) <= {"many_concave_points", "large_area", "default"}
    assert by_id.loc[by_id["path"] != "fallback", "rule"].isna().all()


def test_a_python_fallback_is_recorded_under_its_name(guard: GuardedModel) -> None:
    raw = read_batch(MESSY_BATCH, guard.contract)
    clone = GuardedModel(
        guard.estimator, contract=guard.contract, output=guard.output, policy=guard.policy,
        fallback=CallableFallback(lambda rows: ["benign"] * len(rows), name="always_benign"),
        preprocess=guard.preprocess, model_name=MODEL,
    )  # fmt: skip
    out = clone.predict(raw)
    assert (out.loc[out["path"] == "fallback", "rule"] == "always_benign").all()
    assert (out["path"] == "fallback").sum() >= 2


def test_written_records_are_found_by_id_and_hash(messy: pd.DataFrame, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    file = runs / "score" / "20261205-1" / "decisions.parquet"
    run = RunRef("score", "20261205-1", "score")
    db = write_decisions(messy, file, id_column="patient_id", runs_dir=runs, run=run)
    assert db == index_path(runs) and db.is_file()
    assert pd.read_parquet(file)["rule"].tolist() == messy["rule"].tolist()
    assert [p.name for p in file.parent.iterdir()] == ["decisions.parquet"]  # no temp left
    with reading(db) as conn:
        assert conn is not None
        (found,) = lookup(conn, MODEL, record_id="M0001")
        assert (found["path"], found["rule"]) == ("fallback", "many_concave_points")
        assert (found["pipeline"], found["run_id"], found["step"]) == tuple(run.__dict__.values())
        assert found["file"] == str(file.resolve()) and found["row"] == 1
        same = lookup(conn, MODEL, input_hash=found["input_hash"])
        assert [r["record_id"] for r in same] == ["M0001"]
        assert lookup(conn, MODEL, record_id="P9999") == []
        assert lookup(conn, "other_model", record_id="M0001") == []
        assert lookup(conn, MODEL, record_id="M0001", since="2999-01-01") == []


def test_outside_a_pipeline_the_file_is_written_and_not_indexed(
    messy: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOOLKIT_RUN_DIR", raising=False)
    assert write_decisions(messy, tmp_path / "d.parquet", id_column="patient_id") is None
    assert len(pd.read_parquet(tmp_path / "d.parquet")) == len(messy)
    run_dir = tmp_path / "runs" / "score" / "r2"
    monkeypatch.setenv("TOOLKIT_RUN_DIR", str(run_dir))
    monkeypatch.setenv("TOOLKIT_RUN_ID", "r2")
    db = write_decisions(messy, run_dir / "d.parquet", id_column="patient_id")
    assert db == tmp_path / "runs" / "decisions.sqlite"  # beside the run folders


def test_a_crash_mid_write_leaves_the_index_as_it_was(messy: pd.DataFrame, tmp_path: Path) -> None:
    """A failure half-way through a file's rows rolls its transaction back: the rows indexed
    before stay, none of the new ones appear."""
    runs = tmp_path / "runs"
    file = runs / "score" / "r1" / "decisions.parquet"
    db = write_decisions(messy, file, id_column="patient_id", runs_dir=runs)
    assert db is not None
    broken = messy.copy()
    broken["patient_id"] = "X" + broken["patient_id"]
    values = broken["confidence"].tolist()
    values[30] = object()  # sqlite refuses to bind it: the write fails at row 30
    broken["confidence"] = pd.Series(values, index=broken.index, dtype=object)
    with closing(connect(db)) as conn, pytest.raises(sqlite3.Error):
        index_frame(conn, file.resolve(), broken, {"id_column": "patient_id", "scored_at": "x"})
    with reading(db) as conn:
        assert conn is not None
        assert len(lookup(conn, MODEL, record_id="M0001")) == 1
        assert lookup(conn, MODEL, record_id="XM0001") == []
        assert conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == len(messy)


def test_the_index_is_rebuilt_from_the_records(messy: pd.DataFrame, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for run_id in ("r1", "r2"):
        write_decisions(
            messy, runs / "score" / run_id / "decisions.parquet", id_column="patient_id",
            runs_dir=runs, run=RunRef("score", run_id, "score"),
        )  # fmt: skip
    # Written by an older score notebook: no metadata, no rule column.
    older = messy.drop(columns=["rule"]).rename(columns={"patient_id": "record_id"})
    (runs / "score" / "old").mkdir(parents=True)
    older.to_parquet(runs / "score" / "old" / "decisions.parquet", index=False)
    messy[["patient_id"]].to_parquet(runs / "score" / "r1" / "not_records.parquet")
    (runs / "score" / "r1" / "truncated.parquet").write_bytes(b"PAR1 garbage")
    db = index_path(runs)
    db.write_bytes(b"not a database")  # a damaged index is replaced, not patched
    assert rebuild(runs) == (db, 3, 3 * len(messy))
    with reading(db) as conn:
        assert conn is not None
        found = {r["run_id"]: r for r in lookup(conn, MODEL, record_id="M0052")}
        assert {k: r["rule"] for k, r in found.items()} == {
            "r1": "large_area", "r2": "large_area", "old": None,  # it did not record the rule
        }  # fmt: skip
        assert found["old"]["pipeline"] == "score"  # the run, from its folders
        assert found["old"]["reason"] == found["r1"]["reason"]
