"""``toolkit feedback MODEL --labels FILE --key COLUMN``: true outcomes joined to earlier
decisions, each version's live metrics logged to MLflow as a time series (experiment
``feedback-<model>``, metric ``v<VERSION>.<metric>`` at each batch's scoring time), and alerts
(exit 5, the spec's hooks as in ``toolkit monitor``) when a live metric falls below the floor
the spec's ``feedback:`` section sets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from toolkit.commands.monitor import releasing_spec
from toolkit.core.settings import load_settings


@dataclass(frozen=True)
class FeedbackRequest:
    model: str
    labels: Path
    key: str
    label: str | None = None
    positive: str | None = None
    webhooks: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    track: bool = True
    start: Path = field(default_factory=Path.cwd)


@dataclass(frozen=True)
class FeedbackOutcome:
    outcomes: Any  # toolkit.shadow.outcomes.Outcomes
    hooks: tuple[Any, ...]
    mlflow_run_id: str | None


def run_feedback(request: FeedbackRequest) -> FeedbackOutcome:
    """Join, compute, log, alert. The caller raises the alert (exit 5) after reporting."""
    from dataclasses import replace

    from toolkit.core.tables import read_table
    from toolkit.monitor.alerts import alert_hooks, deliver
    from toolkit.shadow.outcomes import (
        HASH_KEY,
        breaches,
        choose_label_column,
        decisions_for,
        join_outcomes,
    )

    settings = load_settings(request.start)
    spec = releasing_spec(settings.root, request.model)
    floors = {str(k): float(v) for k, v in ((spec.feedback if spec else None) or {}).items()}
    hooks = alert_hooks(spec.alerts if spec else None, request.webhooks, request.commands)
    labels = read_table(request.labels)
    columns = [str(c) for c in labels.columns]
    label_column = choose_label_column(columns, request.key, request.label)
    keys = sorted(set(labels[request.key].dropna().astype(str)))
    by_hash = request.key == HASH_KEY
    decisions = decisions_for(settings.runs_dir, request.model, keys, by_hash)
    outcomes = join_outcomes(
        labels, decisions, model=request.model, key=request.key,
        label_column=label_column, positive=request.positive,
    )  # fmt: skip
    outcomes = replace(outcomes, breaches=tuple(breaches(outcomes, floors)))
    run_id = _track(settings, outcomes, request) if request.track else None
    fired = []
    if outcomes.breaches and hooks:
        payload = {"kind": "feedback", "model": request.model, "alerts": list(outcomes.breaches),
                   "labels": str(request.labels), "mlflow_run_id": run_id}  # fmt: skip
        fired = deliver(payload, hooks)
    return FeedbackOutcome(outcomes, tuple(fired), run_id)


def _track(settings: Any, outcomes: Any, request: FeedbackRequest) -> str:
    from toolkit.tracking.client import Tracker

    tracker = Tracker(settings.tracking_uri, artifacts_dir=settings.artifacts_dir)
    run_id = tracker.start_pipeline(
        f"feedback-{outcomes.model}",
        run_name=f"{request.labels.name}",
        params={"model": outcomes.model, "labels": str(request.labels), "key": request.key},
        tags={"toolkit.feedback.model": outcomes.model},
        source=str(request.labels),
    )
    with tracker.failing():
        points = []
        for v in outcomes.versions:
            for batch in v.batches:
                ms = int(datetime.fromisoformat(batch["at"]).timestamp() * 1000)
                points += [
                    (f"v{v.version}.{name}", float(value), ms // 1000, ms)
                    for name, value in batch["metrics"].items()
                    if value is not None
                ]
        tracker.log_metrics(run_id, points)
        tracker.log_dict(run_id, outcomes.to_dict(), "feedback.json")
        tracker.end(run_id, "FINISHED")
    return run_id
