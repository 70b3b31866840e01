"""``toolkit reproduce``: re-run a past pipeline run and say whether it came out the same.

The run is repeated from the current tree, which must be the recorded commit and clean (or the
user says ``--allow-dirty``), with the recorded parameters. Metrics and output fingerprints are
then compared with the original: identical, within tolerance, or differing. Timing metrics
(``*_ms``, ``*latency*``, ``duration*``) measure the machine, not the code, and are not compared.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.errors import ExitCode, UsageError
from toolkit.lineage import git_info
from toolkit.runner.cache import ALL
from toolkit.runner.core import EventSink, RunRequest, run_pipeline
from toolkit.settings import load_settings
from toolkit.tracking import Tracker

TIMING_PATTERNS = ("*_ms", "*latency*", "duration*", "*_seconds", "*_s")
IDENTICAL, WITHIN, DIFFERING = "identical", "within_tolerance", "differing"
EXIT = {
    IDENTICAL: ExitCode.OK,
    WITHIN: ExitCode.REPRODUCED_WITHIN_TOLERANCE,
    DIFFERING: ExitCode.NOT_REPRODUCED,
}


@dataclass(frozen=True)
class ReproduceRequest:
    run: str
    start: Path = field(default_factory=Path.cwd)
    allow_dirty: bool = False
    rtol: float = 1e-6
    atol: float = 1e-9
    workers: int | None = None


@dataclass(frozen=True)
class Comparison:
    step: str
    kind: str  # "metric" | "fingerprint"
    key: str
    original: Any
    new: Any
    verdict: str


@dataclass(frozen=True)
class ReproduceReport:
    original_run: str
    new_run: str
    verdict: str
    comparisons: tuple[Comparison, ...]
    skipped_metrics: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return int(EXIT[self.verdict])

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}

    def to_text(self) -> str:
        lines = [f"reproduce {self.original_run} -> {self.new_run}: {self.verdict.upper()}"]
        lines += [f"  note: {n}" for n in self.notes]
        for c in self.comparisons:
            if c.verdict != IDENTICAL:
                lines.append(
                    f"  {c.verdict:<16} {c.step}.{c.key} ({c.kind}): {c.original} -> {c.new}"
                )
        same = sum(c.verdict == IDENTICAL for c in self.comparisons)
        lines.append(f"  {same}/{len(self.comparisons)} metrics and fingerprints identical")
        if self.skipped_metrics:
            lines.append(f"  not compared (timings): {', '.join(self.skipped_metrics)}")
        return "\n".join(lines)


def _is_timing(key: str) -> bool:
    return any(fnmatch.fnmatch(key, pattern) for pattern in TIMING_PATTERNS)


def _compare_value(a: float, b: float, rtol: float, atol: float) -> str:
    if a == b:
        return IDENTICAL
    return WITHIN if math.isclose(a, b, rel_tol=rtol, abs_tol=atol) else DIFFERING


def _fingerprints(tags: dict[str, str]) -> dict[str, str]:
    return {
        k.removeprefix("data.").removesuffix(".sha256"): v
        for k, v in tags.items()
        if k.startswith("data.output.") and k.endswith(".sha256")
    }


def reproduce(request: ReproduceRequest, on_event: EventSink | None = None) -> ReproduceReport:
    """Re-run ``request.run`` and compare. Refuses (UsageError) on a different or dirty tree."""
    settings = load_settings(request.start)
    tracker = Tracker(settings.tracking_uri, artifacts_dir=settings.artifacts_dir)
    original = tracker.get_run(request.run)
    tags = original.tags
    recorded, tree = tags.get("git.commit"), git_info(settings.root)
    notes: list[str] = []
    if not request.allow_dirty:
        if recorded is None:
            raise UsageError(
                f"run {request.run} recorded no git commit, so its code cannot be pinned",
                hint="pass --allow-dirty to re-run it with the code as it is now",
            )
        if tree.get("commit") != recorded:
            raise UsageError(
                f"run {request.run} was made at commit {recorded[:12]}, the tree is at "
                f"{str(tree.get('commit'))[:12]}",
                hint=f"git switch --detach {recorded[:12]}, or pass --allow-dirty",
            )
        if tree.get("dirty"):
            raise UsageError(
                "the working tree has uncommitted changes, so the code is not the recorded code",
                hint="commit or stash them, or pass --allow-dirty",
            )
    if tags.get("git.dirty") == "true":
        notes.append("the original run was made from a dirty tree; its exact code is unknown")
    summary = tracker.read_json(original.run_id, "summary.json")
    overrides = {k: v for k, v in (summary.get("parameters") or {}).items() if v != "***"}
    if len(overrides) != len(summary.get("parameters") or {}):
        notes.append("secret -p values were redacted and are not re-applied")
    spec = Path(summary["spec"])
    if not spec.exists():
        raise UsageError(f"the recorded spec {spec} no longer exists")
    report = run_pipeline(
        # Reproducing means executing again: the step cache would only hand back the original.
        RunRequest(spec_path=spec, overrides=overrides, workers=request.workers, force=(ALL,)),
        on_event,
    )
    new = tracker.get_run(report.run_id)
    comparisons: list[Comparison] = []
    skipped: set[str] = set()
    new_steps = {s.step: s for s in new.steps}
    for old in original.steps:
        fresh = new_steps.get(old.step)
        for key, value in sorted(old.metrics.items()):
            if _is_timing(key):
                skipped.add(key)
                continue
            got = fresh.metrics.get(key) if fresh else None
            verdict = (
                DIFFERING if got is None else _compare_value(value, got, request.rtol, request.atol)
            )
            comparisons.append(Comparison(old.step, "metric", key, value, got, verdict))
        new_prints = _fingerprints(fresh.tags) if fresh else {}
        for key, digest in sorted(_fingerprints(old.tags).items()):
            got = new_prints.get(key)
            verdict = IDENTICAL if got == digest else DIFFERING
            comparisons.append(
                Comparison(old.step, "fingerprint", key, digest[:12], (got or "-")[:12], verdict)
            )
    verdicts = {c.verdict for c in comparisons}
    verdict = (
        DIFFERING
        if DIFFERING in verdicts or report.exit_code
        else (WITHIN if WITHIN in verdicts else IDENTICAL)
    )
    if report.exit_code:
        notes.append(f"the new run did not succeed (exit {int(report.exit_code)})")
    return ReproduceReport(
        original_run=original.toolkit_run_id or original.run_id,
        new_run=report.run_id,
        verdict=verdict,
        comparisons=tuple(comparisons),
        skipped_metrics=tuple(sorted(skipped)),
        notes=tuple(notes),
    )
