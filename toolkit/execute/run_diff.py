"""``toolkit diff`` and the candidate's diff against the champion: load two runs, compare.

The candidate's diff is made after its run is closed (its ``summary.json`` and
``environment.json`` are logged by then): ``diff_vs_champion.json`` goes into the run folder,
where the run report shows it, and ``diff_vs_champion.html`` onto the candidate's MLflow run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.core.fsutil import atomic_write_json
from toolkit.core.settings import Settings, load_settings
from toolkit.reports.run_report import CHAMPION_DIFF_FILE, render_run_report, write_run_report
from toolkit.reports.rundiff import render_html
from toolkit.reports.summary import RunReport
from toolkit.tracking.client import Tracker
from toolkit.tracking.comparison import RunDiff, diff_runs
from toolkit.tracking.run_facts import load_side

log = logging.getLogger(__name__)
CHAMPION_DIFF_HTML = "diff_vs_champion.html"


@dataclass(frozen=True)
class DiffRequest:
    run_a: str
    run_b: str
    outputs: bool = False  # include cell outputs in the notebook diff
    start: Path = field(default_factory=Path.cwd)


def diff(request: DiffRequest) -> RunDiff:
    """Compare two tracked runs (toolkit or MLflow ids). Raises UsageError for unknown ids."""
    settings = load_settings(request.start)
    tracker = Tracker(settings.tracking_uri, artifacts_dir=settings.artifacts_dir)
    a = load_side(tracker, request.run_a)
    b = load_side(tracker, request.run_b)
    return diff_runs(a, b, outputs=request.outputs)


def record_champion_diff(settings: Settings, report: RunReport) -> None:
    """For a run that registered a candidate: diff it against the champion's training run.

    Never raises: the run is over and registered; a missing diff is logged, not fatal.
    """
    registered = report.registered or {}
    run_id = report.mlflow_run_id
    if not registered or not run_id:
        return
    try:
        _record(settings, report, run_id, str(registered["name"]), str(registered["version"]))
    except Exception as exc:
        log.warning("could not diff the candidate against the champion: %s", exc)


def _record(settings: Settings, report: RunReport, run_id: str, model: str, version: str) -> None:
    from toolkit.release.registry import Registry

    registry = Registry(settings.tracking_uri)
    champion, _ = registry.champion_metrics(model)
    if champion is None or champion == version:
        return  # the first release has nothing to be compared with
    champion_run = registry.get_version(model, champion).run_id
    if not champion_run:
        return
    tracker = Tracker(settings.tracking_uri, artifacts_dir=settings.artifacts_dir)
    result = diff_runs(load_side(tracker, champion_run), load_side(tracker, run_id))
    data = {
        **result.to_dict(),
        "title": f"{model}: candidate v{version} vs champion v{champion}",
        "champion_version": champion,
        "candidate_version": version,
    }
    run_dir = Path(report.run_dir)
    atomic_write_json(run_dir / CHAMPION_DIFF_FILE, data)
    page = render_html(data, title=data["title"])
    tracker.log_text(run_id, page, CHAMPION_DIFF_HTML)
    write_run_report(run_dir, secret_patterns=settings.secret_patterns)
    mlflow_page = render_run_report(
        run_dir, target="mlflow", secret_patterns=settings.secret_patterns
    )
    tracker.log_text(run_id, mlflow_page, "report.html")
