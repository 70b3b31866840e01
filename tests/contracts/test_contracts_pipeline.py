"""Contracts in the example pipeline: corrupted raw data is caught, named, and kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from toolkit.cli.main import main


def corrupt(raw: Path, dest: Path) -> Path:
    df = pd.read_csv(raw)
    df.loc[3, "mean_radius"] = np.nan  # a null
    df.loc[5, "mean_area"] = 1e7  # out of range
    df.loc[7, "diagnosis"] = "unsure"  # unknown category
    df = df.drop(columns=["worst_texture"])  # a missing column
    df.to_csv(dest, index=False)
    return dest


@pytest.mark.slow
def test_corrupted_raw_data_fails_the_contract_and_keeps_the_data(
    example_project: Path,
    raw_sample: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(example_project)
    bad = corrupt(raw_sample, example_project / "bad.csv")
    code = main(
        ["run", "pipelines/train.yaml", "-p", f"source={bad}", "--json", "--quiet", "--no-tracking"]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 3 and summary["exit_code"] == 3
    ingest = summary["steps"][0]
    assert ingest["status"] == "failed" and ingest["error"]["kind"] == "contract"
    assert [s["status"] for s in summary["steps"][1:]] == ["skipped"] * 3
    failures = ingest["contracts"][0]["failures"]
    named = {(f["type"], f["column"]) for f in failures}
    assert ("expect_column_values_to_not_be_null", "mean_radius") in named
    assert ("expect_column_values_to_be_between", "mean_area") in named
    assert ("expect_column_values_to_be_in_set", "diagnosis") in named
    assert any(f["column"] == "worst_texture" for f in failures)
    unknown = next(f for f in failures if f["type"] == "expect_column_values_to_be_in_set")
    assert unknown["examples"] == ["unsure"] and unknown["unexpected_count"] == 1
    # Nothing was deleted: the offending output and the result pages are in the run folder.
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "data" / "raw.parquet").exists()
    assert list((run_dir / "contracts" / "ingest").glob("*.html"))


def test_drafted_contract_passes_its_sample_and_catches_corruption(
    example_project: Path,
    raw_sample: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(example_project)
    assert main(["contracts", "new", "drafted", "--from", str(raw_sample)]) == 0
    assert (example_project / "expectations" / "drafted.json").exists()
    assert main(["contracts", "check", "drafted", str(raw_sample)]) == 0
    bad = corrupt(raw_sample, example_project / "bad.csv")
    assert main(["contracts", "check", "drafted", str(bad)]) == 3
    out = capsys.readouterr().out
    assert "FAILED" in out and "mean_area" in out and "diagnosis" in out
    # Drafting again must not clobber a reviewed suite.
    assert main(["contracts", "new", "drafted", "--from", str(raw_sample)]) == 2


def test_contract_commands_report_bad_input(
    example_project: Path,
    raw_sample: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(example_project)
    assert main(["contracts", "check", "raw_measurement", str(raw_sample)]) == 2
    assert "did you mean 'raw_measurements'" in capsys.readouterr().err
    empty = example_project / "empty.csv"
    empty.write_text("")
    assert main(["contracts", "check", "raw_measurements", str(empty)]) == 2
    assert "empty.csv" in capsys.readouterr().err
    assert main(["contracts", "list", "--json"]) == 0
    listed = {row["suite"]: row["used_by"] for row in json.loads(capsys.readouterr().out)}
    assert listed["predictions"] == ["train: evaluate.outputs.predictions (error)"]


def test_unknown_suite_in_a_spec_fails_before_anything_runs(
    example_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(example_project)
    spec = example_project / "pipelines" / "train.yaml"
    spec.write_text(spec.read_text().replace("contract: predictions,", "contract: prediction,"))
    assert main(["run", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "evaluate" in err and "did you mean 'predictions'" in err
    assert not (example_project / "runs").exists()
    assert main(["check"]) == 2
    assert "did you mean 'predictions'" in capsys.readouterr().err
