"""The end of a run: its records, the gates' verdict, registration, and undoing it.

Order matters: the run's own records (``summary.json``, ``report.html``) are written before a
model is registered, and rewritten after; any failure once a version exists withdraws it, so a
version never outlives a run that did not end well. An interrupted or failed run still gets a
summary saying so, whenever it can be written.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from typing import Any

from toolkit.core.errors import ToolkitError
from toolkit.core.fsutil import atomic_write_json
from toolkit.core.settings import Settings
from toolkit.core.sqlite_store import sqlite_path
from toolkit.execute import recovery, release_stage
from toolkit.execute.model_log import Remote
from toolkit.plan.planned import Plan
from toolkit.reports.run_report import write_run_report
from toolkit.reports.summary import FAILED, SUCCEEDED, RunReport
from toolkit.tracking.run_tracking import RunTracking, store_identity
from toolkit.tracking.sqlite_reader import open_reader


def backend_context(settings: Settings, tracked: bool) -> dict[str, Any]:
    """Where the run records, as part of its up-to-date key: an identical run recorded in
    another backend (or in a store since re-created) stands in for nothing there."""
    if not tracked:
        return {"tracking_uri": None}
    return {
        "tracking_uri": settings.tracking_uri,
        "store": store_identity(settings.tracking_uri),
    }


def registration_stands(settings: Settings, previous: dict[str, Any]) -> bool:
    """Whether the version an identical earlier run registered is still in the registry: a
    version deleted since (the MLflow UI does it in two clicks) must be registered again, not
    reported as "already registered". Read without MLflow for a SQLite store; a server is
    trusted (asking it would cost every no-op run a round trip and MLflow's import)."""
    registered = previous.get("registered") or {}
    if not registered.get("name") or not registered.get("version"):
        return True
    reader = open_reader(settings.tracking_uri)
    if reader is None:
        return sqlite_path(settings.tracking_uri) is None  # a SQLite store it cannot read: no
    with reader:
        return reader.version_exists(str(registered["name"]), str(registered["version"]))


def already_registered(previous: dict[str, Any]) -> dict[str, Any] | None:
    """An unchanged re-run against the same backend: the version its identical run registered."""
    registered = previous.get("registered")
    if not registered:
        return None
    return {**registered, "already_registered": True, "from_run": previous.get("run_id")}


def write_records(plan: Plan, settings: Settings, report: RunReport, *, page: bool = True) -> None:
    """The summary; with ``page``, the lineage and the run's page too. Before a registration
    only the summary (what the registration's undoing relies on) is written: the run's lineage
    and page, 0.05-0.1 s, are written once, after it."""
    atomic_write_json(plan.run_dir / "summary.json", report.to_dict())
    if page:
        write_run_report(plan.run_dir, root=settings.root, secret_patterns=settings.secret_patterns)


def close_summary(plan: Plan, report: RunReport | None, status: str, reason: str) -> None:
    """After an interrupt or an unexpected error: the summary says how the run ended, so the
    folder is never mistaken for a run still going (or one that died). Never raises."""
    try:
        if report is None:
            recovery.write_ended_summary(plan.run_dir, plan.pipeline, status, reason)
        else:
            ended = replace(report, status=status, registered=None)
            atomic_write_json(plan.run_dir / "summary.json", {**ended.to_dict(), "ended": reason})
    except Exception:
        pass  # the disk may be the problem; `toolkit runs repair` finishes the job


def gate(
    plan: Plan,
    settings: Settings,
    report: RunReport,
    tracking: RunTracking | None,
    remote: Remote | None = None,
) -> tuple[RunReport, release_stage.Release | None]:
    """The gates' verdict in the report; the registration they allow is returned, not done.
    ``remote``: the engine helper's way to do registry calls (see ``model_log.Remote``)."""
    try:
        release = release_stage.evaluate(plan, settings, report.steps, tracking, remote)
    except ToolkitError as exc:
        return release_error(report, exc), None
    if release is None:
        return report, None
    status = report.status if release.report.passed else FAILED
    report = replace(report, gates=release.gates, status=status)
    return report, (release if release.ready and status == SUCCEEDED else None)


def apply_release(
    plan: Plan, settings: Settings, report: RunReport, tracking: RunTracking | None
) -> RunReport:
    """Gates and registration in one go (a shared run's ``--finish``); a problem there is
    recorded in the report, never lost."""
    try:
        gates, registered = release_stage.gate_and_register(plan, settings, report.steps, tracking)
    except ToolkitError as exc:
        message = str(exc)
        gates = {"passed": False, "error": message, "gates": [], "summary": [f"ERROR {message}"]}
        registered = None
    status = report.status
    if gates is not None and not gates["passed"]:
        status = FAILED
    return replace(report, gates=gates, registered=registered, status=status)


def release_error(report: RunReport, exc: ToolkitError) -> RunReport:
    message = str(exc)
    gates = {"passed": False, "error": message, "gates": [], "summary": [f"ERROR {message}"]}
    return replace(report, gates=gates, registered=None, status=FAILED)


def register(
    plan: Plan, settings: Settings, report: RunReport, release: release_stage.Release
) -> RunReport:
    """Register, then rewrite the records; a failure after registering withdraws the version,
    so no version outlives a run that did not end well."""
    try:
        registered = release.register()
    except ToolkitError as exc:
        report = release_error(report, exc)
        write_records(plan, settings, report)
        return report
    try:
        report = replace(report, registered=registered)
        write_records(plan, settings, report)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            release.withdraw(
                registered, f"run {plan.run_dir.name} failed after registration: {exc}"
            )
        raise
    return report


def withdraw(
    plan: Plan, release: release_stage.Release | None, report: RunReport | None, why: str
) -> None:
    """The run registered a version and then failed: no version may outlive it. Never raises."""
    if release is None or report is None:
        return
    reason = f"run {plan.run_dir.name} {why}"
    if not report.registered:
        # Stopped inside the registration (a SIGTERM in MLflow's call): a version may exist
        # that the report never heard of. Found by the MLflow run it was registered from.
        if report.mlflow_run_id:
            with contextlib.suppress(Exception):
                release.withdraw_run(report.mlflow_run_id, reason)
        return
    if report.registered.get("already_registered"):
        return
    with contextlib.suppress(Exception):
        release.withdraw(report.registered, reason)
