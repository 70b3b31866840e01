"""``toolkit decisions``: the example's messy batch scored by its guard, written and indexed as
the score notebook does, then looked up through the command line (text, JSON, exit codes)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from support.guards import MESSY_BATCH, example_guard

from toolkit.cli.main import main
from toolkit.commands.decisions import DecisionsRequest, find_decisions
from toolkit.core.errors import UsageError
from toolkit.guard.batch import read_batch, storable
from toolkit.guard.record_index import RunRef, index_path, write_decisions

MODEL = "breast_cancer_clf"


@pytest.fixture(scope="module")
def records() -> pd.DataFrame:
    guard = example_guard(MODEL)
    raw = read_batch(MESSY_BATCH, guard.contract)
    return pd.concat([storable(raw), guard.predict(raw)], axis=1)


@pytest.fixture
def project(records: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose runs folder holds one scoring run of the messy batch."""
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\n')
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    write_decisions(
        records, runs / "score" / "run-1" / "decisions.parquet", id_column="patient_id",
        runs_dir=runs, run=RunRef("score", "run-1", "score"),
    )  # fmt: skip
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_fallback_from_the_messy_batch_shows_the_rule_that_fired(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "decisions", MODEL, "--id", "M0001", "--json")
    assert code == 0
    (found,) = json.loads(out)
    assert (found["path"], found["rule"], found["prediction"]) == (
        "fallback", "many_concave_points", "malignant",
    )  # fmt: skip
    assert found["reason"] == (
        "confidence below 0.7; rule many_concave_points: worst_concave_points > 0.142"
    )
    assert 0.5 <= found["confidence"] < 0.7
    assert len(found["top_features"]) == 3 and all(
        isinstance(v, float) for v in found["top_features"].values()
    )
    assert found["version"] and found["record_id"] == "M0001" and len(found["input_hash"]) == 16
    assert found["contract"]["worst_area"] == "passed"
    assert found["contract"]["scanner_id"] == "ignored: not in the input contract"
    assert found["run"]["run_id"] == "run-1" and found["run"]["step"] == "score"
    assert found["run"]["file"].endswith("decisions.parquet") and found["run"]["row"] == "1"

    code, text, _ = cli(capsys, "decisions", MODEL, "--input-hash", found["input_hash"])
    assert code == 0
    assert "path: fallback: confidence below 0.7" in text
    assert "fallback rule: many_concave_points" in text
    assert "prediction: malignant" in text and "top features: " in text
    assert "run: score/run-1 step score" in text


def test_a_rejected_record_shows_the_field_that_failed(project: Path) -> None:
    (found,) = find_decisions(DecisionsRequest(MODEL, record_id="M0008"), project / "runs")
    assert found.path == "rejected" and found.rule is None and found.prediction is None
    assert found.contract["worst_area"] == "-40 is below the minimum 0"
    failed = {k for k, v in found.contract.items() if v not in ("passed",)}
    assert failed == {"worst_area", "scanner_id"}


def test_an_id_never_scored_exits_2_with_the_range_searched(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "decisions", MODEL, "--id", "P0000")
    assert (code, out) == (2, "")
    assert f"no decision recorded for {MODEL} id P0000" in err
    assert "searched 60 decision records of breast_cancer_clf scored 20" in err
    assert str(index_path(project / "runs")) in err

    code, _, err = cli(capsys, "decisions", MODEL, "--id", "M0001", "--since", "2999-01-01")
    assert code == 2 and "since 2999-01-01T00:00:00.000+00:00" in err
    code, _, err = cli(capsys, "decisions", "unknown_model", "--id", "M0001")
    assert code == 2 and "no decision records of unknown_model" in err
    code, _, err = cli(capsys, "decisions", MODEL, "--id", "M0001", "--since", "yesterday")
    assert code == 2 and "--since 'yesterday' is not an ISO 8601 date or time" in err
    code, _, err = cli(capsys, "decisions", MODEL)
    assert code == 2 and "give one of --id RECORD_ID or --input-hash H" in err


def test_without_an_index_nothing_is_found_until_reindex(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    index_path(project / "runs").unlink()
    with pytest.raises(UsageError, match="searched no decision records of breast_cancer_clf"):
        find_decisions(DecisionsRequest(MODEL, record_id="M0052"), project / "runs")
    code, out, _ = cli(capsys, "decisions", "--reindex", "--json")
    assert code == 0 and json.loads(out)["records"] == 60 and json.loads(out)["files"] == 1
    (found,) = find_decisions(DecisionsRequest(MODEL, record_id="M0052"), project / "runs")
    assert (found.path, found.rule) == ("fallback", "large_area")
    assert found.run["run_id"] == "run-1"  # from the metadata the file carries
