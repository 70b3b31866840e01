"""NaN and infinite metrics and parameters leave the toolkit as strict JSON.

A bare ``NaN`` or ``Infinity`` token is rejected by JavaScript's, Java's and jq's parsers, so
every JSON output is parsed here with a parser that refuses them. Non-finite floats are written
as the strings "NaN", "Infinity" and "-Infinity", and read back as floats: a gate on a metric
reused from the cache sees the infinity it was logged as, not a missing value.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeProject

from toolkit.cli.main import main

SPEC = """
name: nonfinite
steps:
  - name: train
    notebook: ../notebooks/nonfinite_metrics.ipynb
    parameters: {scale: .nan}
gates:
  step: train
  checks: ["ratio > 1", "floor < 0"]
"""


def strict(text: str) -> Any:
    def refuse(token: str) -> None:
        raise ValueError(f"invalid JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_strict_parser_refuses_bare_nan() -> None:
    with pytest.raises(ValueError, match="NaN"):
        strict('{"m": NaN}')


@pytest.mark.slow
def test_run_plan_and_diff_json_are_strict(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_project(SPEC, notebooks=("nonfinite_metrics",), store=True)
    monkeypatch.chdir(spec.parents[1])  # diff finds the runs in the project's store
    # `scale: .nan` would make ratio NaN and fail the gate: the run passes scale=1 instead.
    assert main(["plan", str(spec), "--json"]) == 0
    plan = strict(capsys.readouterr().out)
    assert plan["steps"][0]["parameters"]["scale"] == "NaN"

    code = main(["run", str(spec), "--json", "--quiet", "-p", "scale=1.0"])
    out = capsys.readouterr().out
    report = strict(out)
    assert code == 0, report
    metrics = report["steps"][0]["metrics"]
    assert metrics == {"loss": "NaN", "ratio": "Infinity", "floor": "-Infinity", "finite": 0.5}
    run_dir = Path(report["run_dir"])
    for name in ("summary.json", "plan.json", "gates.json"):
        strict((run_dir / name).read_text(encoding="utf-8"))
    assert report["gates"]["passed"] is True

    # Reused from the cache, the metrics come back as floats: the gates pass as before.
    code = main(["run", str(spec), "--json", "--quiet", "-p", "scale=1.0"])
    again = strict(capsys.readouterr().out)
    assert code == 0, again
    assert again["steps"][0]["status"] == "cached"
    assert again["steps"][0]["metrics"] == metrics
    assert again["gates"]["passed"] is True

    # A wholly cached run records no new MLflow run: the executed run against itself.
    assert main(["diff", report["run_id"], report["run_id"], "--json"]) == 0
    diff = strict(capsys.readouterr().out)
    by_key = {m["key"]: m for m in diff["metrics"]}
    assert by_key["loss"]["a"] == by_key["loss"]["b"] == "NaN"  # MLflow keeps NaN (not inf)


def test_nonfinite_floats_round_trip() -> None:
    from toolkit.core.jsonable import dumps, numbers

    data = {"nan": math.nan, "inf": math.inf, "neg": -math.inf, "x": [1.5, (math.nan,)]}
    text = dumps(data)
    back = numbers(strict(text))
    assert math.isnan(back["nan"]) and back["inf"] == math.inf and back["neg"] == -math.inf
    assert back["x"] == [1.5, ["NaN"]]  # only the top level of a mapping is read back
