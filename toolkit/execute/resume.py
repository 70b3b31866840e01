"""Earlier runs: ``--resume RUN_ID`` finishes one in its own folder; ``--only`` reads its outputs.

Steps that succeeded last time, and whose declared outputs are all still there, are reused
(status ``cached``); the failed, interrupted and skipped ones run again.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from toolkit.core.errors import UsageError, did_you_mean
from toolkit.core.jsonable import numbers
from toolkit.plan.planned import Plan
from toolkit.reports.summary import CACHED, SUCCEEDED, StepReport


def previous_summary(run_dir: Path) -> dict[str, Any]:
    """The summary of the run being resumed, or a UsageError saying which runs exist."""
    summary = run_dir / "summary.json"
    if not summary.is_file():
        known = sorted(p.name for p in run_dir.parent.iterdir()) if run_dir.parent.is_dir() else []
        raise UsageError(
            f"cannot resume run {run_dir.name!r}: no such run of pipeline {run_dir.parent.name!r}",
            hint=did_you_mean(run_dir.name, known)
            or (f"latest runs: {', '.join(known[-3:])}" if known else "no runs yet"),
        )
    return json.loads(summary.read_text(encoding="utf-8"))


def step_report(data: dict[str, Any]) -> StepReport:
    """A step's report back from its JSON form in ``summary.json``."""
    names = {f.name for f in fields(StepReport)}
    values = {k: v for k, v in data.items() if k in names}
    values["contracts"] = tuple(values.get("contracts") or ())
    # A metric written as "NaN" or "Infinity" is that float again, so gates see what was logged.
    values["metrics"] = numbers(values.get("metrics"))
    return StepReport(**values)


def reusable_steps(plan: Plan) -> dict[str, StepReport]:
    """Steps of the earlier attempt that can be kept as they are."""
    summary = previous_summary(plan.run_dir)
    reused: dict[str, StepReport] = {}
    for data in summary.get("steps", []):
        name = data.get("name")
        if data.get("status") not in (SUCCEEDED, CACHED) or name not in plan.names:
            continue
        step = plan.step(name)
        if all(out.path.exists() for out in step.outputs.values()):
            reused[name] = step_report(
                {**data, "status": CACHED, "reason": f"reused from run {plan.run_dir.name}"}
            )
    # A step can only be reused if everything it depends on is reused too.
    for name in plan.names:
        if name in reused and not plan.step(name).upstream <= reused.keys():
            del reused[name]
    return reused


def latest_output(pipeline_runs: Path, step: str, output: str) -> Path | None:
    """The newest existing file that ``step`` wrote as ``output`` in an earlier successful run."""
    if not pipeline_runs.is_dir():
        return None
    for run_dir in sorted(pipeline_runs.iterdir(), reverse=True):
        summary = run_dir / "summary.json"
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for s in data.get("steps", []):
            if s.get("name") == step and s.get("status") in (SUCCEEDED, CACHED):
                path = s.get("outputs", {}).get(output)
                if path and Path(path).exists():
                    return Path(path)
    return None
