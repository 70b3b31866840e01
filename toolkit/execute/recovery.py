"""Runs that died without cleaning up (kill -9, OOM, power loss): find them and close them.

A run that ends in any way its process sees (success, failure, SIGINT/SIGTERM) writes its
``summary.json`` and closes its MLflow runs itself. Only a process that vanished leaves a run
folder without a summary and MLflow runs ``RUNNING``. Such a run is recognised by:

- its folder: a ``plan.json`` but no ``summary.json``, while nobody holds the pipeline's lock;
- its MLflow pipeline run: ``RUNNING``, tagged with a host that is this machine and a process
  id that is no longer alive.

Repairing one writes a summary with status ``interrupted`` (so ``--resume`` can finish it) and
ends its MLflow runs ``KILLED`` with a tag saying why. Shared runs (``--step`` tasks of a
scheduler) are the scheduler's to finish and are left alone.
"""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.errors import ToolkitError
from toolkit.core.fsutil import atomic_write_json
from toolkit.core.runlock import is_locked, pid_alive
from toolkit.core.settings import Settings
from toolkit.execute.run_record import ended_report
from toolkit.execute.step_context import Event, EventSink
from toolkit.reports.summary import INTERRUPTED, RunReport
from toolkit.tracking.run_tracking import tracking_disabled

TAG_HOST = "toolkit.host"
TAG_PID = "toolkit.pid"
TAG_INTERRUPTED = "toolkit.interrupted"
REASON = "the process running it died without cleaning up (killed, out of memory, power loss)"


@dataclass
class Interrupted:
    """One run found dead: where its folder is, and which MLflow runs it left open."""

    pipeline: str
    run_id: str
    run_dir: Path | None = None
    mlflow_runs: list[str] = field(default_factory=list)
    pid: int | None = None
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "run_dir": str(self.run_dir) if self.run_dir else None,
            "mlflow_runs": self.mlflow_runs,
            "pid": self.pid,
            "repaired": self.repaired,
        }


def _shared(run_dir: Path) -> bool:
    return (run_dir / ".summary.lock").exists()


def dead_folders(settings: Settings) -> list[Interrupted]:
    """Run folders without a summary whose pipeline nobody is running now."""
    found: list[Interrupted] = []
    locks = settings.cache_dir / "locks"
    if not settings.runs_dir.is_dir():
        return found
    for pipeline_dir in sorted(p for p in settings.runs_dir.iterdir() if p.is_dir()):
        candidates = [
            d
            for d in sorted(pipeline_dir.iterdir())
            if d.is_dir()
            and (d / "plan.json").is_file()
            and not (d / "summary.json").exists()
            and not _shared(d)
        ]
        if candidates and not is_locked(locks, pipeline_dir.name):
            found += [Interrupted(pipeline_dir.name, d.name, run_dir=d) for d in candidates]
    return found


def dead_mlflow_runs(tracker: Any, pipeline: str | None = None) -> list[Interrupted]:
    """``RUNNING`` pipeline runs started on this machine by a process that is gone."""
    host = socket.gethostname()
    found = []
    for run in tracker.list_runs(pipeline, max_results=200):
        if run.status != "RUNNING" or run.tags.get(TAG_HOST) != host:
            continue
        try:
            pid = int(run.tags.get(TAG_PID, ""))
        except ValueError:
            continue
        if not pid_alive(pid):
            found.append(Interrupted(run.pipeline or "", run.toolkit_run_id or run.run_id, pid=pid))
    return found


def write_ended_summary(
    run_dir: Path, pipeline: str, status: str = INTERRUPTED, reason: str = REASON
) -> RunReport:
    """``summary.json`` for a run that ended before it had a report: every step of its plan
    ends ``status`` (interrupted, so ``--resume`` runs them again; cached ones stay fast)."""
    plan_data: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):  # a plan cut short: no steps to list
        plan_data = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    names = [s.get("name", "?") for s in plan_data.get("steps", [])]
    report = ended_report(run_dir, pipeline, str(plan_data.get("spec", "")), names, status, reason)
    atomic_write_json(run_dir / "summary.json", {**report.to_dict(), "ended": reason})
    return report


def close_mlflow_runs(tracker: Any, toolkit_run_id: str) -> list[str]:
    """End the pipeline run with this toolkit run id and its step runs still ``RUNNING``."""
    from toolkit.core.errors import UsageError

    try:
        detail = tracker.get_run(toolkit_run_id)
    except UsageError:
        return []  # never tracked, or tracked elsewhere
    closed = []
    tags = {TAG_INTERRUPTED: REASON, "toolkit.status": INTERRUPTED}
    for run in (*detail.steps, detail):
        if run.status == "RUNNING":
            tracker.end(run.run_id, "KILLED", tags=tags)
            closed.append(run.run_id)
    return closed


def repair(settings: Settings, found: Interrupted, tracker: Any | None) -> Interrupted:
    """Close one dead run: summary ``interrupted`` in its folder, MLflow runs ``KILLED``."""
    run_dir = found.run_dir or settings.runs_dir / found.pipeline / found.run_id
    if run_dir.is_dir() and not (run_dir / "summary.json").exists():
        write_ended_summary(run_dir, found.pipeline)
        found.run_dir = run_dir
    if tracker is not None:
        found.mlflow_runs = close_mlflow_runs(tracker, found.run_id)
    found.repaired = True
    return found


def find_interrupted(settings: Settings, tracker: Any | None) -> list[Interrupted]:
    """Every dead run of the project, by folder and (with a tracker) by MLflow run."""
    by_id = {(f.pipeline, f.run_id): f for f in dead_folders(settings)}
    if tracker is not None:
        for f in dead_mlflow_runs(tracker):
            by_id.setdefault((f.pipeline, f.run_id), f).pid = f.pid
    return list(by_id.values())


def recover(settings: Settings, pipeline: str, run_id: str, track: bool, emit: EventSink) -> None:
    """Repair a run of ``pipeline`` that died, from a process that now holds its lock (so
    nobody else is running it); a no-op for a run that ended properly."""
    run_dir = settings.runs_dir / pipeline / run_id
    if not (run_dir / "plan.json").is_file() or (run_dir / "summary.json").exists():
        return
    tracker = None
    if track and not tracking_disabled():
        from toolkit.tracking.client import Tracker

        try:
            tracker = Tracker(settings.tracking_uri, artifacts_dir=settings.artifacts_dir)
        except ToolkitError:
            tracker = None  # the folder is repaired anyway; `toolkit runs repair` retries
    found = repair(settings, Interrupted(pipeline, run_id, run_dir), tracker)
    closed = f", closed {len(found.mlflow_runs)} MLflow run(s) KILLED" if found.mlflow_runs else ""
    emit(Event("recovered", message=f"run {run_id} had died; marked interrupted{closed}"))
