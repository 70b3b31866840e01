"""Run results as data (:class:`RunReport`) and their text and JSON renderings.

The runner produces a report; the CLI picks a renderer. Keeping the two apart means the JSON
summary that schedulers parse and the text a person reads can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.core.errors import ExitCode
from toolkit.core.jsonable import dumps

SUCCEEDED, FAILED, SKIPPED, INTERRUPTED, CACHED = (
    "succeeded",
    "failed",
    "skipped",
    "interrupted",
    "cached",
)


@dataclass(frozen=True)
class StepReport:
    """The outcome of one step."""

    name: str
    status: str
    started_at: str | None = None
    ended_at: str | None = None
    duration: float | None = None
    notebook: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    reason: str | None = None
    contracts: tuple[dict[str, Any], ...] = ()
    attempts: int = 0
    mlflow_run_id: str | None = None
    # Files the kernel read that the spec does not declare: path -> hash and stat (None: the
    # file could not be hashed, so the cache cannot vouch for this execution).
    reads: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    undeclared_outputs: tuple[str, ...] = ()

    @property
    def failed_by_contract(self) -> bool:
        return self.status == FAILED and (self.error or {}).get("kind") == "contract"


@dataclass(frozen=True)
class RunReport:
    """The outcome of one pipeline run."""

    run_id: str
    pipeline: str
    status: str
    run_dir: str
    spec: str
    started_at: str
    ended_at: str
    duration: float
    steps: tuple[StepReport, ...]
    parameters: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None
    gates: dict[str, Any] | None = None
    registered: dict[str, Any] | None = None
    readiness: str | None = None  # toolkit.readiness's one-line verdict, for model pipelines

    @property
    def exit_code(self) -> ExitCode:
        statuses = {s.status for s in self.steps}
        if self.status == INTERRUPTED or INTERRUPTED in statuses:
            return ExitCode.INTERRUPTED
        failed = [s for s in self.steps if s.status == FAILED]
        if any(not s.failed_by_contract for s in failed):
            return ExitCode.STEP_FAILED
        if failed:
            return ExitCode.CONTRACT
        if self.gates is not None and not self.gates.get("passed", True):
            errors = bool(self.gates.get("error")) or any(
                r.get("error") for r in self.gates.get("gates", [])
            )
            return ExitCode.USAGE if errors else ExitCode.GATE
        # Failed without a failed step (only skipped ones): an incomplete run is not a success.
        return ExitCode.STEP_FAILED if self.status == FAILED else ExitCode.OK

    def step(self, name: str) -> StepReport:
        return next(s for s in self.steps if s.name == name)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["exit_code"] = int(self.exit_code)
        return data


def to_json(report: RunReport) -> str:
    return dumps(report.to_dict(), indent=2)


_SYMBOL = {
    SUCCEEDED: "ok",
    FAILED: "FAILED",
    SKIPPED: "skipped",
    INTERRUPTED: "interrupted",
    CACHED: "cached",
}


def _fmt_metrics(metrics: dict[str, float], limit: int = 4) -> str:
    items = list(metrics.items())[:limit]
    text = ", ".join(f"{k}={v:.4g}" for k, v in items)
    return text + (", ..." if len(metrics) > limit else "")


def to_text(report: RunReport) -> str:
    """A compact, human-readable summary: one line per step, then the details of failures."""
    lines = [
        f"pipeline {report.pipeline} run {report.run_id}: {report.status} in {report.duration:.1f}s"
    ]
    width = max(len(s.name) for s in report.steps) if report.steps else 4
    for s in report.steps:
        took = f"{s.duration:6.1f}s" if s.duration is not None else "      -"
        detail = _fmt_metrics(s.metrics) if s.metrics else (s.reason or "")
        if s.attempts > 1:
            detail = f"{detail} (after {s.attempts} attempts)".strip()
        lines.append(f"  {s.name:<{width}}  {_SYMBOL.get(s.status, s.status):<11} {took}  {detail}")
    for s in report.steps:
        if s.status != FAILED or not s.error:
            continue
        lines.append("")
        lines.append(f"step {s.name!r} failed: {s.error.get('message', '')}")
        for line in s.error.get("details", []):
            lines.append(f"    {line}")
        if s.error.get("traceback"):
            tail = s.error["traceback"].strip().splitlines()[-12:]
            lines.extend("    " + t for t in tail)
        if s.error.get("hint"):
            lines.append(f"  hint: {s.error['hint']}")
        if s.notebook:
            lines.append(f"  executed notebook kept at {s.notebook}")
    for s in report.steps:
        for path in s.undeclared_outputs:
            lines.append(f"note: step {s.name!r} wrote {path}, which is not a declared output")
    for s in report.steps:
        for c in s.contracts:
            if c.get("success") is False and c.get("on_fail") == "warn":
                lines.append(
                    f"warning: contract {c.get('suite')} on {s.name}.{c.get('target')} "
                    "failed (on_fail: warn)"
                )
    if report.gates is not None:
        verdict = "passed" if report.gates.get("passed") else "FAILED"
        lines.append("")
        lines.append(f"gates {verdict}:")
        lines.extend(f"  {line}" for line in report.gates.get("summary", []))
    if report.registered and report.registered.get("already_registered"):
        r = report.registered
        lines.append(
            f"already registered as v{r['version']} of {r['name']} by the identical run "
            f"{r.get('from_run')} in this tracking backend: nothing new to register"
        )
    elif report.registered:
        r = report.registered
        lines.append(
            f"registered {r['name']} version {r['version']} as 'candidate' "
            f"(review: toolkit review approve {r['name']} {r['version']})"
        )
    elif report.gates is not None and not report.gates.get("passed"):
        lines.append("nothing was registered")
    if report.readiness:
        lines.append(f"{report.readiness} (toolkit check --readiness {report.spec})")
    lines.append(f"run folder: {report.run_dir}")
    if report.exit_code not in (ExitCode.OK, ExitCode.INTERRUPTED):
        lines.append(
            f"after a fix, finish this run: toolkit run {report.spec} --resume {report.run_id}"
        )
    return "\n".join(lines)
