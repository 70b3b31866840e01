"""The verdict of ``toolkit reproduce``: what was compared, item by item, and what it adds up to.

Pure: two runs' recorded facts in, a :class:`ReproduceReport` out; no MLflow, no git.

Evidence is what a run *produced*: non-timing metrics and output fingerprints. Step statuses,
gate outcomes and the environment are compared and listed too, but a run that produced nothing
comparable is "nothing to compare", never "identical". A failed original is reproduced when the
same steps fail with the same exception type (or the same gates fail).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.core.errors import ExitCode

TIMING_PATTERNS = ("*_ms", "*latency*", "duration*", "*_seconds", "*_s")
IDENTICAL, WITHIN, DIFFERING = "identical", "within_tolerance", "differing"
NOTHING, FAILURE = "nothing_to_compare", "reproduced_failure"
EXIT = {
    IDENTICAL: ExitCode.OK,
    FAILURE: ExitCode.OK,
    WITHIN: ExitCode.REPRODUCED_WITHIN_TOLERANCE,
    DIFFERING: ExitCode.NOT_REPRODUCED,
    NOTHING: ExitCode.NOT_REPRODUCED,
}
HEADLINE = {
    IDENTICAL: "identical",
    FAILURE: "reproduced the failure",
    WITHIN: "within tolerance",
    DIFFERING: "differing",
    NOTHING: "nothing to compare",
}
NOTHING_HINT = (
    "the run logged no metrics and declared no outputs, so there is no result to check: log "
    "metrics with step.log_metric(...) or declare the files a step writes under `outputs:`"
)
#: Environment keys compared besides packages; the rest (host, pid, paths) differ by design.
ENV_FACTS = ("python", "python_implementation")
_OK_STATUSES = {"succeeded", "cached", "FINISHED"}


@dataclass(frozen=True)
class Comparison:
    step: str
    kind: str  # "metric" | "fingerprint" | "step" | "gate" | "environment"
    key: str
    original: Any
    new: Any
    verdict: str


@dataclass(frozen=True)
class StepFacts:
    """What one step of a run recorded, as far as reproduce compares it."""

    status: str
    metrics: Mapping[str, float] = field(default_factory=dict)
    fingerprints: Mapping[str, str] = field(default_factory=dict)  # "output.key" -> sha256
    exception: str | None = None  # the exception type (or failure kind) of a failed step


@dataclass(frozen=True)
class RunFacts:
    """A pipeline run's outcome: status, steps, gates (name -> passed) and environment."""

    status: str
    steps: Mapping[str, StepFacts]
    gates: Mapping[str, bool] = field(default_factory=dict)
    environment: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ReproduceReport:
    original_run: str
    new_run: str
    verdict: str
    comparisons: tuple[Comparison, ...]
    skipped_metrics: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    hint: str | None = None
    commit: str | None = None
    mlflow_run_id: str | None = None

    @property
    def exit_code(self) -> int:
        return int(EXIT[self.verdict])

    @property
    def evidence(self) -> int:
        return sum(c.kind in ("metric", "fingerprint") for c in self.comparisons)

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "headline": HEADLINE[self.verdict],
            "exit_code": self.exit_code,
        }

    def to_text(self) -> str:
        lines = [
            f"reproduce {self.original_run} -> {self.new_run}: {HEADLINE[self.verdict].upper()}"
        ]
        if self.commit:
            lines.append(f"  at commit {self.commit[:12]} (a temporary worktree)")
        width = max((len(f"{c.step}.{c.key}") for c in self.comparisons), default=0)
        for c in self.comparisons:
            where = f"{c.step}.{c.key}" if c.step else c.key
            change = str(c.original) if c.original == c.new else f"{c.original} -> {c.new}"
            lines.append(f"  {c.verdict:<16} {c.kind:<11} {where:<{width}}  {change}")
        same = sum(c.verdict == IDENTICAL for c in self.comparisons)
        lines.append(f"  {same}/{len(self.comparisons)} compared items identical")
        if self.skipped_metrics:
            lines.append(f"  not compared (timings): {', '.join(self.skipped_metrics)}")
        lines += [f"  note: {n}" for n in self.notes]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)


def is_timing(key: str) -> bool:
    return any(fnmatch.fnmatch(key, pattern) for pattern in TIMING_PATTERNS)


def _compare_value(a: float, b: float | None, rtol: float, atol: float) -> str:
    if b is None:
        return DIFFERING
    if a == b or (math.isnan(a) and math.isnan(b)):
        return IDENTICAL
    return WITHIN if math.isclose(a, b, rel_tol=rtol, abs_tol=atol) else DIFFERING


def _ok(status: str) -> bool:
    return status in _OK_STATUSES


def _outcome(step: StepFacts | None) -> str:
    if step is None:
        return "missing"
    return "succeeded" if _ok(step.status) else f"{step.status}: {step.exception or '?'}"


def environment_changes(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> list[Comparison]:
    """Interpreter, lock hash and every package whose version changed, appeared or went."""
    if not old or not new:
        return []
    out = [
        Comparison("", "environment", key, old.get(key), new.get(key), DIFFERING)
        for key in ENV_FACTS
        if old.get(key) != new.get(key)
    ]
    lock_a = (old.get("lock") or {}).get("sha256")
    lock_b = (new.get("lock") or {}).get("sha256")
    if lock_a and lock_b and lock_a != lock_b:
        out.append(Comparison("", "environment", "lock", lock_a[:12], lock_b[:12], DIFFERING))
    pkgs_a, pkgs_b = old.get("packages") or {}, new.get("packages") or {}
    for name in sorted(set(pkgs_a) | set(pkgs_b)):
        a, b = pkgs_a.get(name), pkgs_b.get(name)
        if a != b:
            out.append(Comparison("", "environment", f"package {name}", a, b, DIFFERING))
    return out


def judge(
    original: RunFacts,
    new: RunFacts,
    *,
    rtol: float,
    atol: float,
    strict_env: bool = False,
) -> tuple[str, list[Comparison], list[str], list[str]]:
    """Compare two runs: (verdict, comparisons, skipped timing metrics, notes)."""
    comparisons: list[Comparison] = []
    skipped: set[str] = set()
    notes: list[str] = []
    for name, old in original.steps.items():
        fresh = new.steps.get(name)
        was, now = _outcome(old), _outcome(fresh)
        comparisons.append(
            Comparison(name, "step", "status", was, now, IDENTICAL if was == now else DIFFERING)
        )
        if not _ok(old.status) or fresh is None or not _ok(fresh.status):
            continue  # a failed step's partial metrics prove nothing either way
        for key, value in sorted(old.metrics.items()):
            if is_timing(key):
                skipped.add(key)
                continue
            got = fresh.metrics.get(key)
            verdict = _compare_value(value, got, rtol, atol)
            comparisons.append(Comparison(name, "metric", key, value, got, verdict))
        for key, digest in sorted(old.fingerprints.items()):
            got_digest = fresh.fingerprints.get(key)
            verdict = IDENTICAL if got_digest == digest else DIFFERING
            comparisons.append(
                Comparison(name, "fingerprint", key, digest[:12], (got_digest or "-")[:12], verdict)
            )
    for gate, passed in original.gates.items():
        got = new.gates.get(gate)
        comparisons.append(
            Comparison(
                "",
                "gate",
                gate,
                _pass(passed),
                _pass(got),
                IDENTICAL if got == passed else DIFFERING,
            )
        )
    env = environment_changes(original.environment, new.environment)
    if env:
        notes.append(
            f"the environment differs in {len(env)} item(s)"
            + ("; --strict-env makes that a difference" if strict_env else "; reported only")
        )
    elif original.environment and new.environment:
        comparisons.append(Comparison("", "environment", "packages", "same", "same", IDENTICAL))
    else:
        notes.append("the original recorded no environment.json; the environment is not compared")
    comparisons += (
        env
        if strict_env
        else [Comparison(c.step, c.kind, c.key, c.original, c.new, "reported") for c in env]
    )
    verdicts = {c.verdict for c in comparisons}
    failed_before = [n for n, s in original.steps.items() if not _ok(s.status)]
    gates_failed = [g for g, p in original.gates.items() if not p]
    evidence = sum(c.kind in ("metric", "fingerprint") for c in comparisons)
    if failed_before or gates_failed or original.status not in _OK_STATUSES:
        if DIFFERING in verdicts or not (failed_before or gates_failed):
            verdict = DIFFERING
            notes.append("the original failed; the reproduction did not fail the same way")
        else:
            verdict = FAILURE
    elif DIFFERING in verdicts:
        verdict = DIFFERING
    elif evidence == 0:
        verdict = NOTHING
    else:
        verdict = WITHIN if WITHIN in verdicts else IDENTICAL
    return verdict, comparisons, sorted(skipped), notes


def _pass(value: bool | None) -> str:
    return "-" if value is None else ("passed" if value else "failed")
