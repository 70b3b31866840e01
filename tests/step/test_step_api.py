from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit import step


def test_interactive_use_keeps_values_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(step.EVENTS_ENV, raising=False)
    step.log_metric("interactive_auc", 0.9)
    assert not step.in_pipeline()
    recorded = step.recorded()
    assert recorded.metrics["interactive_auc"] == 0.9
    assert "interactive" in recorded._repr_html_()


def test_pipeline_use_appends_json_lines(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    events = tmp_path / "events" / "s.jsonl"
    monkeypatch.setenv(step.EVENTS_ENV, str(events))
    step.log_metrics({"a": 1, "b": 2.5}, step=3)
    step.log_output("extra", tmp_path / "x.csv")
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["kind"], e.get("key") or e.get("name")) for e in lines] == [
        ("metric", "a"),
        ("metric", "b"),
        ("output", "extra"),
    ]
    assert lines[0]["value"] == 1.0 and lines[0]["step"] == 3


@pytest.mark.parametrize("bad", ["high", float("nan")])
def test_metrics_must_be_numbers(bad: object) -> None:
    with pytest.raises((TypeError, ValueError), match="metric 'm'"):
        step.log_metric("m", bad)  # type: ignore[arg-type]


def test_step_api_does_not_import_engines() -> None:
    import subprocess
    import sys

    code = (
        "import sys, toolkit.step; bad = [m for m in ('mlflow', 'great_expectations', "
        "'papermill', 'pandas') if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
