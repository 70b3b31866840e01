"""Shadow mode on a real MLflow registry (SQLite in tmp): start and stop with their history
entries and bad input, then a batch scored by the champion with a shadow beside it: the
caller's output is the champion's, the shadow's records are written beside, marked, logged and
indexed, a shadow that raises fails nothing, and the report compares the two."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow import MlflowClient
from support.guards import MESSY_BATCH, example_guard
from support.template_store import migrated_store

from toolkit.cards import build
from toolkit.cli.main import main
from toolkit.core.errors import ExitCode, RegistryError
from toolkit.guard.batch import read_batch, storable
from toolkit.guard.record_index import coverage, index_path, reading, rebuild, write_decisions
from toolkit.release.guarded import load_guarded_model, log_guarded_model
from toolkit.shadow.batches import read_batches
from toolkit.shadow.compare import build_report
from toolkit.shadow.scoring import Shadow, shadow_for
from toolkit.shadow.state import ShadowRegistry, ShadowState

NAME, STATE = "shadow_clf", "state_clf"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """v1 (the example's guard) is champion; v2, fitted on 40 records only, disagrees on some
    and shadows it; the messy batch scored by both, as the score notebook does it. A second
    model, STATE, has two bare versions for the start/stop tests (nothing to load)."""
    root = tmp_path_factory.mktemp("shadow")
    uri = migrated_store(root / "mlflow.db", artifact_root=root / "art")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("s", artifact_location=(root / "art").as_uri())
    run_id = client.create_run(experiment).info.run_id
    for guard in (example_guard(NAME), example_guard(NAME, sample=40)):
        log_guarded_model(guard, tracking_uri=uri, run_id=run_id, registered_model_name=NAME)
    client.set_registered_model_alias(NAME, "champion", "1")
    client.create_registered_model(STATE)
    for _ in range(2):
        client.create_model_version(STATE, source=(root / "none").as_uri(), run_id=run_id)
    client.set_registered_model_alias(STATE, "champion", "1")

    ShadowRegistry(uri).start_shadow(NAME, "2")
    champion = load_guarded_model(f"models:/{NAME}@champion", tracking_uri=uri)
    shadow = shadow_for(f"models:/{NAME}@champion", tracking_uri=uri, runs_dir=root / "runs")
    assert shadow is not None and shadow.error is None
    raw = read_batch(MESSY_BATCH, champion.contract)
    alone = champion.predict(raw)
    out = champion.predict(raw)
    decisions = root / "runs" / "score" / "r1" / "data" / "decisions.parquet"
    decisions.parent.mkdir(parents=True)
    shadow.submit(raw, decisions, id_column="patient_id")
    records = pd.concat([storable(raw), out], axis=1)
    write_decisions(records, decisions, id_column="patient_id", runs_dir=root / "runs")
    batch = shadow.finish(out)
    return {"uri": uri, "root": root, "raw": raw, "out": out, "alone": alone, "batch": batch,
            "decisions": decisions}  # fmt: skip


@pytest.fixture
def project(store: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Path:
    uri, root = store["uri"], store["root"]
    monkeypatch.chdir(root)
    (root / "pyproject.toml").write_text("[tool.toolkit]\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return root


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_start_refuses_the_champion_and_missing_versions_then_records_history(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "shadow", "start", STATE, "1")
    assert code == ExitCode.USAGE and "is the champion" in err, err
    code, _, err = cli(capsys, "shadow", "start", STATE, "9")
    assert code == ExitCode.USAGE and "no version 9" in err, err
    code, _, err = cli(capsys, "shadow", "stop", STATE)
    assert code == ExitCode.USAGE and "no shadow" in err, err
    code, out, err = cli(capsys, "shadow", "start", STATE, "2", "--json")
    assert code == 0, err
    assert json.loads(out)["version"] == "2"
    assert cli(capsys, "shadow", "stop", STATE)[0] == 0
    code, out, _ = cli(capsys, "shadow", "start", STATE, "2")
    assert code == 0 and "v2 now shadows" in out
    history = json.loads(cli(capsys, "releases", STATE, "--json")[1])
    moves = [(e["action"], e["from_version"], e["to_version"]) for e in history]
    assert moves == [
        ("shadow_started", "1", "2"),
        ("shadow_stopped", "1", "2"),
        ("shadow_started", "1", "2"),
    ]


def test_a_batch_is_scored_by_both_and_the_caller_gets_the_champions_output(
    store: dict[str, Any], project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri, raw, out, alone, batch = (store[k] for k in ("uri", "raw", "out", "alone", "batch"))
    decisions = store["decisions"]
    pd.testing.assert_frame_equal(out.drop(columns="latency_ms"), alone.drop(columns="latency_ms"))
    assert batch.error is None and batch.rows == len(raw)
    assert batch.compared + batch.both_rejected == len(raw)  # one contract: same rejections
    assert 0 < batch.agreed < batch.compared  # the strict shadow falls back more often
    written = pd.read_parquet(decisions.with_name("decisions.shadow.parquet"))
    assert written["shadow"].all() and len(written) == len(raw)
    # Not indexed as written (the index answers for what was served), but readable by
    # --reindex like the champion's: the same metadata.
    with reading(index_path(project / "runs")) as conn:
        assert conn is not None and coverage(conn, NAME)[0] == len(raw)
    assert rebuild(project / "runs")[1:] == (2, 2 * len(raw))
    # The evidence a policy checks is on the shadow version.
    tags = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(NAME, "2").tags
    evidence = json.loads(tags["toolkit.shadow.evidence"])
    assert evidence["shadow.batches"] == 1 and 0 < evidence["shadow.agreement"] < 1

    report = build_report(project / "runs", NAME)
    assert report.batches == 1 and report.disagreements_total == batch.compared - batch.agreed
    first = report.disagreements[0]
    assert first["champion"]["prediction"] != first["shadow"]["prediction"]
    assert first["record_id"] and report.psi is not None

    code, out_text, err = cli(capsys, "shadow", "report", NAME, "--no-tracking")
    assert code == 0, err
    assert "agreement:" in out_text and "disagree" in out_text
    page = Path(out_text.strip().splitlines()[-1].removeprefix("page: "))
    html = page.read_text()
    assert "<script" not in html and first["record_id"] in html


class Raises:
    version = "broken"

    def predict(self, raw: Any) -> Any:
        raise ValueError("the shadow's bug")


def test_a_shadow_that_raises_fails_nothing_and_is_recorded(project: Path, tmp_path: Path) -> None:
    champion_out = pd.DataFrame({"path": ["model"], "prediction": ["benign"], "latency_ms": [1.0]})
    state = ShadowState(NAME, "3", "2026-01-01T00:00:00+00:00", "me")
    shadow = Shadow(state, Raises(), "1", runs_dir=tmp_path)
    shadow.submit(pd.DataFrame({"x": [1]}), tmp_path / "decisions.parquet")
    batch = shadow.finish(champion_out)
    assert batch.error == "ValueError: the shadow's bug" and batch.shadow_file is None
    assert [b.error for b in read_batches(tmp_path, NAME)] == [batch.error]


def test_stop_shadow_without_one_is_a_registry_error(project: Path) -> None:
    uri = f"sqlite:///{project / 'mlflow.db'}"
    registry = ShadowRegistry(uri)
    if registry.shadow(STATE) is None:
        registry.start_shadow(STATE, "2")
    registry.stop_shadow(STATE)
    with pytest.raises(RegistryError):
        registry.stop_shadow(STATE)
    assert shadow_for(f"models:/{STATE}@champion", tracking_uri=uri) is None


def write_labels(project: Path) -> pd.DataFrame:
    """Outcomes for the messy batch, less its first record, plus one never scored, one not a
    label of the model's and one duplicate."""
    raw = pd.read_csv(MESSY_BATCH)
    truth = (pd.to_numeric(raw["worst_area"], errors="coerce") > 880).map(
        {True: "malignant", False: "benign"}
    )
    labels = pd.DataFrame({"patient_id": raw["patient_id"], "diagnosis": truth})
    extra = pd.DataFrame(
        {"patient_id": ["NEVER1", raw["patient_id"][0], raw["patient_id"][2]],
         "diagnosis": ["benign", "maybe", "benign"]}
    )  # fmt: skip
    labels = pd.concat([labels.iloc[1:], extra], ignore_index=True)
    labels.to_csv(project / "labels.csv", index=False)
    return labels


def test_feedback_gives_each_versions_live_metrics_and_counts_every_label(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = write_labels(project)
    code, out, err = cli(
        capsys, "feedback", NAME, "--labels", "labels.csv", "--key", "patient_id", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    counts = result["counts"]
    assert counts["unscored"] == 1 and counts["wrong_type"] == 1 and counts["duplicates"] == 1
    assert sum(counts[k] for k in ("matched", "unscored", "wrong_type", "duplicates")) == len(
        labels
    )
    roles = {(v["role"], v["version"]): v for v in result["versions"]}
    assert set(roles) == {("champion", "1"), ("shadow", "2")}
    for v in roles.values():
        assert 0.5 < v["metrics"]["roc_auc"] <= 1 and v["metrics"]["brier"] is not None
        assert len(v["batches"]) == 1
    assert result["mlflow_run_id"]

    pd.DataFrame({"id": ["x"], "y": [1]}).to_csv(project / "bad.csv", index=False)
    code, _, err = cli(capsys, "feedback", NAME, "--labels", "bad.csv", "--key", "patient_id")
    assert code == ExitCode.USAGE and "its columns: id, y" in err
    code, _, err = cli(capsys, "feedback", "other", "--labels", "bad.csv", "--key", "id")
    assert code == ExitCode.USAGE and "decision records are written when" in err


def test_the_card_shows_shadow_evidence_and_live_feedback_once_recorded(
    store: dict[str, Any], project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    client = MlflowClient(tracking_uri=store["uri"], registry_uri=store["uri"])
    code, before, err = cli(capsys, "card", NAME, "1")
    assert code == 0, err
    assert "shadow evidence: none recorded (this version never shadowed)" in before
    code, card, err = cli(capsys, "card", STATE, "1")
    assert code == 0, err
    assert "- _Not recorded:_ live metrics from feedback: none recorded" in card
    assert "- _Not recorded:_ shadow evidence: none recorded" in card

    assert cli(capsys, "shadow", "report", NAME)[0] == 0  # tracked: a run in shadow-NAME
    write_labels(project)
    code, _, err = cli(capsys, "feedback", NAME, "--labels", "labels.csv", "--key", "patient_id")
    assert code == 0, err
    for version in ("1", "2"):  # each version scored gets a fresh card
        tag = client.get_model_version(NAME, version).tags["toolkit.card"]
        assert tag.endswith("-feedback.html"), tag
    code, card, err = cli(capsys, "card", NAME, "2")
    assert code == 0, err
    production = card.split("## Production so far")[1].split("## Lineage")[0]
    assert "**Shadow:** shadowing since" in production
    assert "| shadow.batches | 1 |" in production and "| shadow.agreement | 0." in production
    assert "**Latest shadow report:**" in production and "PSI -" not in production
    assert "| shadow v2 |" in production and "| champion v1 |" in production
    assert "**Live feedback:** 1 labelled batches," in production and "(shadow)" in production
    assert "| roc_auc | " in production and "| brier | " in production
    assert "Not recorded" not in production.split("drift monitoring")[1]
    html = build(NAME, "2").html
    assert "Live metrics from feedback (latest batch)" in html and "<script" not in html


def test_the_card_tells_a_stopped_or_replaced_shadow_from_a_current_one(
    store: dict[str, Any],
) -> None:
    from toolkit.cards.production import production
    from toolkit.release.registry import Registry
    from toolkit.release.vocabulary import ReleaseEntry
    from toolkit.tracking.client import Tracker

    info = Registry(store["uri"]).get_version(STATE, "2")
    tracker = Tracker(store["uri"])

    def move(seq: int, action: str, version: str) -> ReleaseEntry:
        return ReleaseEntry(STATE, "k", seq, action, "1", version, "me", f"2026-01-0{seq}")

    started = [move(1, "shadow_started", "2")]
    shown = {
        label: dict(production(info, history, tracker).facts)["Shadow"]
        for label, history in (
            ("current", started),
            ("replaced", [*started, move(2, "shadow_started", "3")]),
            ("stopped", [*started, move(2, "shadow_stopped", "2")]),
        )
    }
    assert shown["current"] == "shadowing since 2026-01-01 (champion then: v1)"
    assert shown["replaced"].startswith("replaced by v3 at 2026-01-02")
    assert shown["stopped"].startswith("stopped at 2026-01-02")
