"""Gate preview in a notebook: each gate of the spec, against the champion or a first release."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import MakeProject

from toolkit import step
from toolkit.core.errors import SpecError
from toolkit.release.preview import gate_preview

SPEC = """\
name: gated
steps:
  - name: evaluate
    notebook: ../notebooks/ok.ipynb
    outputs: {out: model.txt}
model: {name: clf, step: evaluate, output: out}
gates:
  step: evaluate
  checks:
    - roc_auc >= 0.95
    - recall >= champion.recall - 0.02
    - predict_p95_ms <= 50
    - contracts
"""


@pytest.fixture
def spec(make_project: MakeProject, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = make_project(SPEC, name="gated")
    monkeypatch.chdir(path.parents[1] / "notebooks")  # where a notebook runs
    return path


def _statuses(preview) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {row.result.expression: row.status for row in preview.rows}


def test_against_a_given_champion(spec: Path) -> None:
    preview = gate_preview(
        {"roc_auc": 0.97, "recall": 0.90, "predict_p95_ms": 80},
        pipeline="../pipelines/gated.yaml",
        champion={"recall": 0.95},
        champion_version="3",
    )
    assert _statuses(preview) == {
        "roc_auc >= 0.95": "pass",
        "recall >= champion.recall - 0.02": "fail",
        "predict_p95_ms <= 50": "fail",
        "contracts": "at run time",
    }
    assert not preview.passed
    champion_row = preview.rows[1].result
    assert champion_row.threshold == pytest.approx(0.93)
    assert "champion v3" in champion_row.note
    page = preview._repr_html_()
    assert "Gate preview" in page and "2 of 4 gates would fail" in page
    assert "data-status='fail'" in page and "would pass" in page
    assert "FAIL" in repr(preview) and "0.93" in repr(preview)


def test_no_champion_yet_says_so_without_creating_a_tracking_store(spec: Path) -> None:
    preview = gate_preview({"roc_auc": 0.97, "recall": 0.5, "predict_p95_ms": 1}, pipeline="gated")
    assert preview.champion_version is None
    assert "no champion of 'clf' yet" in preview.champion_note
    assert _statuses(preview)["recall >= champion.recall - 0.02"] == "pass"
    assert "no champion yet" in preview.rows[1].result.note
    assert preview.passed
    assert "no champion" in preview._repr_html_()
    assert not (spec.parents[1] / "mlflow.db").exists()


def test_champion_read_from_the_registry(spec: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import toolkit.release.registry

    class FakeRegistry:
        def __init__(self, uri: str) -> None:
            assert uri.startswith("sqlite:///")

        def champion_metrics(self, name: str) -> tuple[str, dict[str, float]]:
            assert name == "clf"
            return "7", {"recall": 0.99}

    (spec.parents[1] / "mlflow.db").touch()
    monkeypatch.setattr(toolkit.release.registry, "Registry", FakeRegistry)
    preview = gate_preview(
        {"roc_auc": 0.99, "recall": 0.96, "predict_p95_ms": 1},
        pipeline="../pipelines/gated.yaml",
        contracts_ok=True,
    )
    assert preview.champion_version == "7"
    assert "champion 'clf' v7" in preview.champion_note
    assert _statuses(preview)["recall >= champion.recall - 0.02"] == "fail"
    assert _statuses(preview)["contracts"] == "pass"


def test_metrics_default_to_those_recorded_in_this_kernel(
    spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(step.EVENTS_ENV, raising=False)
    step.log_metrics({"roc_auc": 0.5, "recall": 0.9})
    preview = gate_preview(pipeline="gated", champion=None)
    statuses = _statuses(preview)
    assert statuses["roc_auc >= 0.95"] == "fail"
    assert statuses["predict_p95_ms <= 50"] == "missing"
    assert "no 'predict_p95_ms' among the metrics given" in preview.rows[2].result.note


def test_unknown_pipeline_has_a_hint(spec: Path) -> None:
    with pytest.raises(SpecError, match="no pipeline 'gatd'") as info:
        gate_preview({}, pipeline="gatd")
    assert "did you mean 'gated'?" in str(info.value)


def test_recorded_metrics_render_as_a_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(step.EVENTS_ENV, raising=False)
    for epoch, loss in enumerate([0.9, 0.5, 0.3]):
        step.log_metric("preview_loss", loss, step=epoch)
    page = step.recorded()._repr_html_()
    assert "data-metric='preview_loss'" in page
    assert "<polyline" in page  # the trend of a metric logged several times
    assert "0.3 to 0.9" in page
