"""``toolkit shadow start|stop|report``: set the version shadowing a model's champion, and
compare the two on the batches both scored (text, JSON, an offline page logged to MLflow)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.settings import load_settings


@dataclass(frozen=True)
class ReportRequest:
    model: str
    since: str | None = None
    version: str | None = None
    html: Path | None = None
    track: bool = True
    start: Path = field(default_factory=Path.cwd)


@dataclass(frozen=True)
class ReportOutcome:
    report: Any  # toolkit.shadow.compare.ShadowReport
    page: Path
    mlflow_run_id: str | None


def start_shadow(model: str, ref: str, *, start: Path | None = None) -> Any:
    from toolkit.shadow.state import ShadowRegistry

    return ShadowRegistry(load_settings(start).tracking_uri).start_shadow(model, ref)


def stop_shadow(model: str, *, start: Path | None = None) -> Any:
    from toolkit.shadow.state import ShadowRegistry

    return ShadowRegistry(load_settings(start).tracking_uri).stop_shadow(model)


def bundle_shadow(model: str, decision_log: Path | None, *, start: Path | None = None) -> str:
    """Log the champion and its shadow as one servable pyfunc; its ``models:/`` URI. The
    decision log defaults to ``<runs_dir>/shadow/<model>.decisions.jsonl``."""
    from toolkit.shadow.serving import build_bundle, log_bundle

    settings = load_settings(start)
    log = decision_log or settings.runs_dir / "shadow" / f"{model}.decisions.jsonl"
    bundle = build_bundle(settings.tracking_uri, model, log)
    return log_bundle(bundle, tracking_uri=settings.tracking_uri)


def shadow_report(request: ReportRequest) -> ReportOutcome:
    """Build the report, write its page, refresh the version's evidence, log both to MLflow."""
    from toolkit.commands.releases import parse_moment
    from toolkit.reports.shadow_page import shadow_html
    from toolkit.shadow.compare import build_report

    settings = load_settings(request.start)
    since = None
    if request.since:
        since = parse_moment(request.since, "--since").isoformat(timespec="milliseconds")
    report = build_report(settings.runs_dir, request.model, since=since, version=request.version)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    page = request.html or settings.runs_dir / "shadow" / f"{request.model}-{stamp}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(shadow_html(report), encoding="utf-8")
    run_id = None
    if request.track:
        run_id = _track(settings, report, page)
    return ReportOutcome(report, page, run_id)


def _track(settings: Any, report: Any, page: Path) -> str:
    from toolkit.shadow.state import ShadowRegistry
    from toolkit.tracking.client import Tracker

    if report.shadow_version and since_all(report):
        ShadowRegistry(settings.tracking_uri).record_evidence(
            report.model, report.shadow_version, report.evidence
        )
    tracker = Tracker(settings.tracking_uri, artifacts_dir=settings.artifacts_dir)
    run_id = tracker.start_pipeline(
        f"shadow-{report.model}",
        run_name=f"v{report.shadow_version} vs v{report.champion.version}",
        params={"model": report.model, "shadow_version": report.shadow_version,
                "champion_version": report.champion.version, "since": report.since or ""},
        tags={"toolkit.shadow.model": report.model},
        source=str(page),
    )  # fmt: skip
    with tracker.failing():
        metrics = {k: v for k, v in report.evidence.items()}
        if report.psi is not None:
            metrics["shadow.psi"] = report.psi
        tracker.log_metrics(run_id, [(k, float(v), 0, None) for k, v in metrics.items()])
        tracker.log_artifact(run_id, page, "shadow")
        tracker.log_dict(run_id, report.to_dict(), "shadow_report.json")
        tracker.end(run_id, "FINISHED")
    return run_id


def since_all(report: Any) -> bool:
    """Evidence is recorded from a report over every batch, never a ``--since`` slice."""
    return report.since is None
