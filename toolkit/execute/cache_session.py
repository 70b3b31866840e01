"""The step cache as one run sees it: decisions as steps become ready, records as they end."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from toolkit.execute.cache import Decision, StepCache, preview
from toolkit.plan.planned import Plan, PlannedStep
from toolkit.reports.summary import SUCCEEDED, RunReport, StepReport


class CacheSession:
    """The cache as one run sees it: a decision as each step becomes ready, a record as it ends."""

    def __init__(self, cache: StepCache, plan: Plan, context: Mapping[str, Any]) -> None:
        self.cache = cache
        self.plan = plan
        self.context = context
        self.hashes: dict[str, dict[str, str]] = {}
        self.decisions: dict[str, Decision] = {}
        self.expected: dict[str, Decision] = {}

    def preview(self) -> dict[str, Decision]:
        """What the run expects to reuse, decided before anything runs."""
        self.expected = preview(self.cache, self.plan)
        return self.expected

    def expect_hit(self, step: str) -> bool:
        decision = self.expected.get(step)
        return decision is not None and decision.hit

    def ready(self, step: PlannedStep) -> StepReport | None:
        """A cached report when the step can be reused (its outputs are then in place)."""
        decision = self.cache.decide(step, self.hashes, self.expected.get(step.name))
        self.decisions[step.name] = decision
        if decision.entry is None:
            return None
        try:
            report = self.cache.reuse(step, decision, self.plan.run_dir)
        except OSError:  # an output vanished between the check and the link: just run it
            self.decisions[step.name] = replace(decision, entry=None, reason="cache entry broken")
            return None
        self.hashes[step.name] = {k: v["sha256"] for k, v in decision.entry["outputs"].items()}
        return report

    def adopt(self, step: PlannedStep) -> bool:
        """A step kept by ``--resume``: its outputs feed the keys of the steps after it.

        False, and nothing adopted, when the step changed since it ran (its notebook, its
        parameters, an input): no cache entry of its key now holds the files it left, so they
        are not what it would make today, and it must run again. A step whose caching is off
        (or forced) cannot be checked, and is kept as it was.
        """
        decision = self.cache.decide(step, self.hashes)
        outputs = {k: self.cache.hashes.of(v.path) or "" for k, v in step.outputs.items()}
        checkable = step.cache and decision.reason != "--force"
        if checkable and (decision.entry is None or _hashes(decision.entry) != outputs):
            return False
        self.decisions[step.name] = decision
        self.hashes[step.name] = outputs
        return True

    def succeeded(self, step: PlannedStep, report: StepReport) -> None:
        decision = self.decisions.get(step.name) or self.cache.decide(step, self.hashes)
        self.decisions[step.name] = decision
        # An output moved away after the step: the steps after it will say so.
        with contextlib.suppress(OSError):
            self.hashes[step.name] = self.cache.store(
                step, decision, report, self.plan.run_dir.name
            )

    def save_copies(self) -> None:
        """The steps are done: record where the reused ones' files are now (one write)."""
        self.cache.save_copies()

    def run_key(self) -> str | None:
        if set(self.decisions) != set(self.plan.names):
            return None
        return self.cache.run_key(self.plan, self.decisions, self.context)

    def up_to_date(self) -> dict[str, Any] | None:
        """The earlier run with exactly these step keys, if every step is a cache hit."""
        decisions = self.preview()
        if not decisions or not all(d.hit for d in decisions.values()):
            return None
        key = self.cache.run_key(self.plan, decisions, self.context)
        return self.cache.previous_run(key) if key else None

    def remember(self, report: RunReport) -> None:
        """Record a clean run's release outcome, so an unchanged re-run can point at it."""
        key = self.run_key()
        if key and report.exit_code == 0 and report.status == SUCCEEDED:
            self.cache.record_run(
                key, report.run_id, {"gates": report.gates, "registered": report.registered}
            )


def _hashes(entry: Mapping[str, Any]) -> dict[str, str]:
    return {k: str(v.get("sha256", "")) for k, v in entry.get("outputs", {}).items()}
