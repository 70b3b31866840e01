"""One run, many processes: ``toolkit run SPEC --step NAME --run-id X`` and ``--finish``.

For schedulers that run each step as a task of their own (Airflow): every task executes one
step inside the run folder of the shared run id, reading its inputs from that folder, and
merges its report into the run's ``summary.json`` under a lock. The first task opens the run's
MLflow pipeline run (under a lock; later tasks find it by its ``toolkit.run_id`` tag) and each
step's run is nested under it. ``--finish`` applies the gates, registers the model and closes
the pipeline run. A step here makes one attempt: retrying is the scheduler's job.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from typing import Any

from toolkit.core.errors import LockedError, UsageError, did_you_mean
from toolkit.core.fsutil import atomic_write_json
from toolkit.core.locks import file_lock
from toolkit.core.runlock import pipeline_lock
from toolkit.core.settings import Settings
from toolkit.execute.finish import apply_release
from toolkit.execute.request import RunRequest, prepare, run_redactor
from toolkit.execute.resume import step_report
from toolkit.execute.run_diff import record_champion_diff
from toolkit.execute.run_record import build_report, plan_record, seconds_since
from toolkit.execute.step_context import EventSink, StepHooks, context_for, now_iso
from toolkit.execute.step_exec import run_step
from toolkit.plan.planned import Plan
from toolkit.reports.summary import CACHED, FAILED, SKIPPED, SUCCEEDED, RunReport, StepReport
from toolkit.tracking.run_tracking import RunTracking, tracking_disabled

PENDING = "pending"  # in a shared run's summary: a step no task has reported yet
PARENT_FILE = "mlflow_parent_run_id"
FINISHED_FILE = "finished"  # written by --finish: the run takes no more steps


def _prepare(request: RunRequest) -> tuple[Settings, Plan, str]:
    run_id = request.run_id
    if not run_id:
        raise UsageError("--step and --finish need --run-id: the run the steps share")
    if request.resume or request.only or request.executor != "local":
        raise UsageError("--step/--finish cannot be combined with --resume, --only or --executor")
    settings, plan = prepare(request)
    return settings, plan, run_id


def run_one_step(request: RunRequest, step: str, emit: EventSink | None = None) -> RunReport:
    """Run ``step`` of the shared run ``request.run_id``; return the run's merged report."""
    settings, plan, run_id = _prepare(request)
    if step not in plan.names:
        raise UsageError(f"no step named {step!r}", hint=did_you_mean(step, plan.names))
    locks = settings.cache_dir / "locks"
    emit = emit or (lambda event: None)
    with (
        pipeline_lock(locks, plan.pipeline, run_id, shared=True),
        pipeline_lock(locks, f"{plan.pipeline}.{run_id}.{step}", run_id),
    ):
        run_dir = plan.run_dir
        if (run_dir / FINISHED_FILE).exists():  # its summary and MLflow run are final
            raise UsageError(
                f"run {run_id!r} was finished (--finish): it takes no more steps",
                hint="start a new run with another --run-id",
            )
        (run_dir / "events").mkdir(parents=True, exist_ok=True)
        with file_lock(run_dir / ".summary.lock"):
            if not (run_dir / "plan.json").exists():
                atomic_write_json(run_dir / "plan.json", plan_record(plan, settings))
        tracking = _tracking(settings, plan, request)
        if tracking and tracking.parent:
            # Holding this step's lock: a RUNNING run of it is an attempt whose process was
            # killed (e.g. by the scheduler); close it before this attempt starts.
            tracking.tracker.end_orphaned_steps(tracking.parent, [step])
        try:
            planned = replace(plan.step(step), retries=0)
            ctx = context_for(plan, settings, stream_output=request.stream_output)
            report = run_step(planned, ctx, StepHooks(emit, tracking))
        finally:
            if tracking:
                tracking.detach()
        parent = tracking.parent if tracking else None
        return _merge(plan, settings, request, report, parent)


def finish_run(request: RunRequest, emit: EventSink | None = None) -> RunReport:
    """Gates, registration and the final summary of a shared run; closes its MLflow run."""
    settings, plan, run_id = _prepare(request)
    summary_path = plan.run_dir / "summary.json"
    if not (plan.run_dir / "plan.json").is_file():  # no task even started: likely a typo
        raise UsageError(f"no step of run {run_id!r} has started ({plan.run_dir})")
    with pipeline_lock(settings.cache_dir / "locks", plan.pipeline, run_id, shared=True):
        tracking = _tracking(settings, plan, request, create=False)
        try:
            if tracking and tracking.parent:
                _end_orphaned_steps(tracking, settings, plan, run_id)
            with file_lock(plan.run_dir / ".summary.lock"):
                # No summary: the only tasks that started were killed before they reported.
                exists = summary_path.is_file()
                data = json.loads(summary_path.read_text(encoding="utf-8")) if exists else {}
                steps = _unreported(plan, _steps(plan, data))
                parent = tracking.parent if tracking else None
                report = _run_report(plan, settings, request, data, steps, parent, final=True)
                if report.status == SUCCEEDED:
                    report = apply_release(plan, settings, report, tracking)
                atomic_write_json(summary_path, report.to_dict())
                (plan.run_dir / FINISHED_FILE).write_text(f"{report.status}\n")
            if tracking:
                tracking.finish(report)
                # A new candidate: show the reviewer what changed against the champion, as a
                # whole run does.
                record_champion_diff(settings, report)
        finally:
            if tracking:
                tracking.detach()
    return report


def _tracking(
    settings: Settings, plan: Plan, request: RunRequest, *, create: bool = True
) -> RunTracking | None:
    """The run's shared MLflow pipeline run: found by its tag, or opened by the first task."""
    if not request.track or tracking_disabled():
        return None
    tracking = RunTracking(
        settings, plan, external_run_id=request.run_id, redactor=run_redactor(plan, settings)
    )
    record = plan.run_dir / PARENT_FILE
    with file_lock(plan.run_dir / ".mlflow.lock"):
        parent = record.read_text().strip() if record.exists() else None
        if not parent:
            with contextlib.suppress(UsageError):  # none yet
                parent = tracking.tracker.get_run(plan.run_dir.name).run_id
        if parent:
            tracking.attach(parent)
        elif create:
            tracking.start()
            parent = tracking.parent
        else:
            return None
        record.write_text(f"{parent}\n")
    return tracking


def _end_orphaned_steps(tracking: RunTracking, settings: Settings, plan: Plan, run_id: str) -> None:
    """Close the MLflow runs of killed attempts that no retry closed: only of steps whose lock
    is free (no live process runs them), held while closing, so a step running elsewhere (or
    starting now) is left alone."""
    assert tracking.parent is not None
    with contextlib.ExitStack() as held:
        idle = []
        for name in plan.names:
            lock = pipeline_lock(
                settings.cache_dir / "locks", f"{plan.pipeline}.{run_id}.{name}", run_id
            )
            with contextlib.suppress(LockedError):
                held.enter_context(lock)
                idle.append(name)
        tracking.tracker.end_orphaned_steps(tracking.parent, idle)


def _unreported(plan: Plan, steps: list[StepReport]) -> tuple[StepReport, ...]:
    """At --finish, the steps no task reported: skipped after an upstream that did not succeed
    (Airflow does not run them), else failed: their task was killed or never scheduled, and
    the run is incomplete (it used to end "failed" with exit code 0)."""
    status = {s.name: s.status for s in steps}
    final = []
    for s in steps:  # in the plan's order: upstream steps first
        if s.status == PENDING:
            upstream = plan.step(s.name).upstream
            if any(status[u] not in (SUCCEEDED, CACHED) for u in upstream):
                s = replace(s, status=SKIPPED, reason="an upstream step did not succeed")
            else:
                why = "no task reported this step: its process was killed, or it never ran"
                s = replace(
                    s, status=FAILED, reason=why, error={"kind": "not_reported", "message": why}
                )
            status[s.name] = s.status
        final.append(s)
    return tuple(final)


def _steps(plan: Plan, data: dict[str, Any]) -> list[StepReport]:
    known = {s["name"]: s for s in data.get("steps", []) if s.get("status") != PENDING}
    return [
        step_report(known[name]) if name in known else StepReport(name, PENDING)
        for name in plan.names
    ]


def _merge(
    plan: Plan, settings: Settings, request: RunRequest, report: StepReport, parent: str | None
) -> RunReport:
    """Put one step's report into the run's summary, atomically and under the run's lock."""
    path = plan.run_dir / "summary.json"
    with file_lock(plan.run_dir / ".summary.lock"):
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        steps = [report if s.name == report.name else s for s in _steps(plan, data)]
        parent = parent or data.get("mlflow_run_id")
        merged = _run_report(plan, settings, request, data, tuple(steps), parent, final=False)
        atomic_write_json(path, merged.to_dict())
    return merged


def _run_report(
    plan: Plan,
    settings: Settings,
    request: RunRequest,
    data: dict[str, Any],
    steps: tuple[StepReport, ...],
    parent: str | None,
    *,
    final: bool,
) -> RunReport:
    """The run so far (steps not reported yet are pending), or its end with ``final``."""
    started = [s.started_at for s in steps if s.started_at]
    started_at = data.get("started_at") or (min(started) if started else now_iso())
    return build_report(
        plan,
        settings,
        request,
        steps,
        started_at=started_at,
        duration=seconds_since(started_at) if final else sum(s.duration or 0.0 for s in steps),
        mlflow_run_id=parent,
        tracked=request.track,
    )
