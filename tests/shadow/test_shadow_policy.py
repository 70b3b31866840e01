"""A release policy's ``shadow:`` checks: promotion is refused until the shadow evidence tagged
on the version meets them; a spec can add such checks to a model's policy, never drop them."""

from __future__ import annotations

import json

from toolkit.release.vocabulary import (
    TAG_GATES_PASSED,
    TAG_SHADOW_EVIDENCE,
    at_least_as_strict,
    policy_problems,
    tighten,
)
from toolkit.shadow.batches import ShadowBatch, evidence
from toolkit.specs.models import ReleaseSpec

POLICY = ReleaseSpec(
    require_approval=False, shadow=["shadow.batches >= 3", "shadow.agreement >= 0.9"]
)


def batch(version: str, agreed: int, error: str | None = None) -> ShadowBatch:
    return ShadowBatch("2026-12-05T10:00:00+00:00", "m", "1", version, 10, compared=10,
                       agreed=agreed, error=error)  # fmt: skip


def problems(found: dict[str, float] | None) -> tuple[str, ...]:
    tags = {TAG_GATES_PASSED: "true"}
    if found is not None:
        tags[TAG_SHADOW_EVIDENCE] = json.dumps(found)
    return policy_problems(tags, POLICY)[1]


def test_promotion_waits_for_enough_agreeing_batches() -> None:
    never = problems(None)
    first = policy_problems({TAG_GATES_PASSED: "true"}, POLICY, first_release=True)[1]
    assert first == ()  # the first release has no champion to be shadowed beside
    assert len(never) == 2 and "shadow.batches >= 3" in never[0]
    two = evidence([batch("2", 10), batch("2", 9), batch("3", 0)], "2")
    assert two == {"shadow.batches": 2, "shadow.errors": 0, "shadow.rows": 20,
                   "shadow.agreement": 0.95}  # fmt: skip
    assert [p for p in problems(two) if "batches" in p]
    three = evidence([batch("2", 10), batch("2", 9), batch("2", 10), batch("2", 0, "boom")], "2")
    assert three["shadow.batches"] == 3 and three["shadow.errors"] == 1
    assert problems(three) == ()
    low = evidence([batch("2", 5)] * 3, "2")
    assert problems(low) == ("shadow evidence: shadow.agreement >= 0.9 (0.5)",)


def test_a_spec_adds_shadow_checks_and_never_drops_them() -> None:
    plain = ReleaseSpec(require_approval=False)
    assert tighten(plain, POLICY).shadow == POLICY.shadow
    assert at_least_as_strict(POLICY, plain) and not at_least_as_strict(plain, POLICY)
