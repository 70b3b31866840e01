"""What a run writes about itself: ``plan.json``, and the :class:`RunReport` of ``summary.json``.

A local run and a shared run (one ``toolkit run --step`` task per step, then ``--finish``)
build their report here, so the same rules decide a run's status, its masked parameters and
where it was tracked; so does a run that died before it had one (:mod:`recovery`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from toolkit.core.secrets import redact_params
from toolkit.core.settings import Settings
from toolkit.execute.request import RunRequest
from toolkit.execute.step_context import now_iso
from toolkit.plan.planned import Plan
from toolkit.reports.summary import (
    CACHED,
    FAILED,
    INTERRUPTED,
    SKIPPED,
    SUCCEEDED,
    RunReport,
    StepReport,
)

RUNNING = "running"  # a shared run some of whose steps have not reported yet


def plan_record(plan: Plan, settings: Settings) -> dict[str, Any]:
    """``plan.json``: parameters whose names look secret are masked, not only declared ones."""
    data = plan.to_dict()
    for entry, step in zip(data["steps"], plan.steps, strict=True):
        entry["parameters"] = redact_params(
            entry["parameters"], patterns=settings.secret_patterns, declared=step.secret_params
        )
        if "env" in entry:  # e.g. env: {API_KEY: ...} written in the spec itself
            entry["env"] = redact_params(
                entry["env"], patterns=settings.secret_patterns, declared=step.secret_env
            )
    return data


def run_status(steps: Iterable[StepReport], *, interrupted: bool = False) -> str:
    """Interrupted wins, then any failed or skipped step; all succeeded or cached: succeeded."""
    statuses = {s.status for s in steps}
    if interrupted or INTERRUPTED in statuses:
        return INTERRUPTED
    if statuses <= {SUCCEEDED, CACHED}:
        return SUCCEEDED
    if statuses & {FAILED, SKIPPED}:
        return FAILED
    return RUNNING


def build_report(
    plan: Plan,
    settings: Settings,
    request: RunRequest,
    steps: Iterable[StepReport],
    *,
    started_at: str,
    duration: float,
    interrupted: bool = False,
    mlflow_run_id: str | None = None,
    tracked: bool = False,
) -> RunReport:
    """The report of a run of ``plan`` whose steps ended as ``steps`` (in plan order)."""
    steps = tuple(steps)
    return RunReport(
        run_id=plan.run_dir.name,
        pipeline=plan.pipeline,
        status=run_status(steps, interrupted=interrupted),
        run_dir=str(plan.run_dir),
        spec=str(plan.spec_path),
        started_at=started_at,
        ended_at=now_iso(),
        duration=round(duration, 3),
        steps=steps,
        parameters=redact_params(
            request.overrides, patterns=settings.secret_patterns, declared=plan.secret_params
        ),
        mlflow_run_id=mlflow_run_id,
        tracking_uri=settings.tracking_uri if tracked else None,
        readiness=readiness_line(plan, settings),
    )


def readiness_line(plan: Plan, settings: Settings) -> str | None:
    """The spec's readiness in one line; a spec that no longer loads only loses the line."""
    if plan.model is None:
        return None  # nothing released, nothing to be ready: no need to read the spec again
    from toolkit.core.errors import ToolkitError
    from toolkit.readiness.controls import run_line
    from toolkit.specs.load import load_spec

    try:
        spec = load_spec(plan.spec_path)
    except (ToolkitError, OSError):
        return None
    return run_line(spec, settings.root, settings.secret_patterns)


def ended_report(
    run_dir: Path, pipeline: str, spec: str, steps: Iterable[str], status: str, reason: str
) -> RunReport:
    """The report of a run that ended before it had one (its process died, or its summary
    could not be built): every step of its plan ends ``status`` for ``reason``."""
    now = now_iso()
    return RunReport(
        run_id=run_dir.name,
        pipeline=pipeline,
        status=status,
        run_dir=str(run_dir),
        spec=spec,
        started_at=now,
        ended_at=now,
        duration=0.0,
        steps=tuple(StepReport(name, status, reason=reason) for name in steps),
        parameters={},
    )


def seconds_since(iso: str) -> float:
    """Wall-clock seconds since an ISO timestamp (0 for one that does not parse)."""
    try:
        return time.time() - datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return 0.0
