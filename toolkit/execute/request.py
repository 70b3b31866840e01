"""Before anything runs: what the user asked for, checked, and the plan built from it.

Nothing here touches the disk: a request that is invalid (a bad run id, an unknown step, a
spec or gate expression that does not parse) fails before any run folder exists.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.contracts import step_checks as contract_checks
from toolkit.core.errors import UsageError, did_you_mean
from toolkit.core.secrets import Redactor
from toolkit.core.settings import Settings, load_settings
from toolkit.execute.cache import ALL, StepCache
from toolkit.execute.resume import latest_output
from toolkit.execute.step_context import run_secret_values
from toolkit.gates.evaluation import parse_checks
from toolkit.plan.build import build_plan
from toolkit.plan.planned import Plan
from toolkit.specs.load import load_spec

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class RunRequest:
    """What the user asked ``toolkit run`` to do."""

    spec_path: Path
    overrides: Mapping[str, Any] = field(default_factory=dict)
    workers: int | None = None
    only: tuple[str, ...] = ()
    run_id: str | None = None
    stream_output: bool = False
    track: bool = True
    resume: str | None = None
    executor: str = "local"  # or "dask": steps run on the cluster at ``scheduler``
    scheduler: str | None = None
    force: tuple[str, ...] = ()  # step names, or "*" for all: bypass the step cache


def new_run_id() -> str:
    """Sortable and unique enough for one project: UTC time plus 6 random hex digits."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def prepare(request: RunRequest, *, run_id: str | None = None) -> tuple[Settings, Plan]:
    """Load settings and spec and build the plan, without touching the disk."""
    for given in (request.run_id, request.resume):
        # A run id names a folder under runs/: nothing that could climb out of it.
        if given and not RUN_ID_RE.match(given):
            raise UsageError(
                f"invalid run id {given!r}: use letters, digits, '.', '_' and '-' (at most 128)"
            )
    if request.workers is not None and request.workers < 1:
        raise UsageError(f"workers must be at least 1, got {request.workers}")
    settings = load_settings(request.spec_path)
    spec = load_spec(request.spec_path)
    run_id = run_id or request.resume or request.run_id or new_run_id()
    run_dir = settings.runs_dir / spec.name / run_id

    def previous(step: str, output: str) -> Path | None:
        return latest_output(settings.runs_dir / spec.name, step, output)

    plan = build_plan(
        spec, run_dir, overrides=request.overrides, only=request.only, previous_outputs=previous
    )
    if spec.gates is not None:
        parse_checks(
            spec.gates.checks, path=spec.source
        )  # a bad expression fails before anything runs
    for name in request.force:
        if name != ALL and name not in plan.names:
            raise UsageError(
                f"--force: no step named {name!r}", hint=did_you_mean(name, plan.names)
            )
    contract_checks.load_suites(plan, settings.expectations_dir, settings.cache_dir)
    return settings, plan


def step_cache(settings: Settings, plan: Plan, force: tuple[str, ...] = ()) -> StepCache:
    return StepCache(
        settings.cache_dir,
        plan.pipeline,
        kernel=settings.kernel,
        expectations_dir=settings.expectations_dir,
        force=frozenset(force),
    )


def run_redactor(plan: Plan, settings: Settings) -> Redactor:
    """Knows the value of every secret of the run (see :func:`run_secret_values`)."""
    return Redactor(run_secret_values(plan, settings))
