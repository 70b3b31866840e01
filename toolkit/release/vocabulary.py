"""Release vocabulary without MLflow: history entries, reviews, approval policy, locks."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlparse

from toolkit.core.errors import RegistryError
from toolkit.gates.evaluation import GateReport, evaluate_gates

if TYPE_CHECKING:
    from toolkit.specs.models import ReleaseSpec

CHAMPION, CANDIDATE = "champion", "candidate"
TAG_GATES, TAG_GATES_PASSED = "toolkit.gates", "toolkit.gates.passed"
TAG_TRIGGERED_BY, TAG_RUN_ID = "toolkit.triggered_by", "toolkit.run_id"
TAG_MLFLOW_RUN_ID, TAG_METRICS_RUN_ID = "toolkit.mlflow_run_id", "toolkit.metrics_run_id"
TAG_GIT_COMMIT, DATA_PREFIX = "git.commit", "toolkit.data."
REVIEW_PREFIX, RELEASE_PREFIX = "toolkit.review.", "toolkit.release."
# The release policy is bound to the registered model (registered-model tags), not to whichever
# spec a command names: recorded at the first registration, with the spec it came from.
TAG_POLICY, TAG_POLICY_SOURCE = "toolkit.policy", "toolkit.policy.source"
TAG_POLICY_SPEC_SHA = "toolkit.policy.spec_sha256"
# Version tags: how the trainer's name was obtained, who really registered it when an admin
# registered it for someone else, and a version that must never be approved or promoted.
TAG_IDENTITY, TAG_REGISTERED_BY = "toolkit.identity", "toolkit.registered_by"
TAG_UNUSABLE = "toolkit.unusable"
# What shadow scoring gathered on a version (JSON metrics), read by a policy's `shadow:` checks.
TAG_SHADOW_EVIDENCE = "toolkit.shadow.evidence"
MOVES = frozenset({"promoted", "rolled_back"})  # the actions that move the champion alias
Decision = Literal["approved", "rejected"]
ENTRY_KEY = re.compile(r"^toolkit\.release\.(\d+)-[0-9a-f]+$")
SETTLE_ROUNDS = 20
WRITE_ATTEMPTS = 5
PERMANENT = {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "RESOURCE_ALREADY_EXISTS"}
MAX_TEXT = 1000  # reasons and notes; registered-model tag values are 5000 chars in SQL stores


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def key_part(text: str) -> str:
    """A tag-key-safe form of ``text``; a digest keeps distinct names distinct after cleaning."""
    clean = re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:80]
    return clean if clean == text else f"{clean}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def version_number(version: object) -> str:
    text = str(version).strip().removeprefix("v")
    if not text.isdigit():
        raise RegistryError(f"model version must be a number, not {version!r}")
    return str(int(text))


@dataclass(frozen=True)
class ReleaseEntry:
    """One audit entry: who did what to which version, when and why."""

    model: str
    key: str
    seq: int
    action: str  # registered | approved | rejected | promoted | rolled_back
    from_version: str | None
    to_version: str | None
    by: str | None
    at: str
    reason: str = ""
    forced: bool = False
    overrides: tuple[str, ...] = ()
    recorded_by: str | None = None  # the real user when an admin acted for ``by``
    identity: str | None = None  # where ``by`` came from: os-user or mlflow-auth

    @property
    def override(self) -> bool:
        return self.recorded_by is not None and self.recorded_by != self.by

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Review:
    """One reviewer's latest decision on a version."""

    reviewer: str
    decision: str
    at: str
    note: str = ""
    recorded_by: str | None = None  # the admin who recorded it for ``reviewer``, if not them


@dataclass(frozen=True)
class ModelVersionInfo:
    """A registered version, its lineage tags, gate results and reviews."""

    name: str
    version: str
    source: str
    run_id: str | None
    model_id: str | None
    created_at: str | None
    aliases: tuple[str, ...]
    tags: dict[str, str]
    gates: GateReport | None
    reviews: tuple[Review, ...] = ()

    @property
    def model_uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def gates_passed(self) -> bool:
        return self.tags.get(TAG_GATES_PASSED) == "true"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gates"] = self.gates.to_dict() if self.gates else None
        return {**data, "model_uri": self.model_uri, "gates_passed": self.gates_passed}


@dataclass(frozen=True)
class ReviewRecord:
    """The outcome of :meth:`Registry.review`, with the version's approval state after it."""

    model: str
    version: str
    review: Review
    approvals: tuple[str, ...]
    required: int
    promotable: bool
    problems: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CandidateView:
    """A version waiting for review, next to the champion it would replace."""

    version: ModelVersionInfo
    champion_version: str | None
    champion_metrics: dict[str, float]
    approvals: tuple[str, ...]
    problems: tuple[str, ...] | None  # None when no policy was given
    links: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool | None:
        return None if self.problems is None else not self.problems

    def comparison_rows(self) -> list[tuple[str, float | None, float | None, bool]]:
        """``(gate, candidate value, champion value, passed)`` per gate, for side-by-side views."""
        gates = self.version.gates.results if self.version.gates else ()
        return [(g.expression, g.value, self.champion_metrics.get(g.name), g.passed) for g in gates]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["version"] = self.version.to_dict()
        return {**data, "ready": self.ready}


def lock_path(tracking_uri: str, model: str) -> Path:
    """The lock file of one model: next to a SQLite DB or file store, else in the temp dir."""
    parsed = urlparse(tracking_uri)
    folder = Path(tempfile.gettempdir()) / "toolkit-locks"
    if parsed.scheme == "sqlite" and tracking_uri.startswith("sqlite:///"):
        db = tracking_uri.removeprefix("sqlite:///").split("?")[0]
        if db and db != ":memory:":
            folder = Path(db).resolve().parent / ".toolkit-locks"
    elif parsed.scheme == "file":
        folder = Path(unquote(parsed.path)) / ".toolkit-locks"
    digest = hashlib.sha256(f"{tracking_uri}\0{model}".encode()).hexdigest()[:16]
    return folder / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', model)[:40]}-{digest}.lock"


def parse_entry(model: str, key: str, value: str) -> ReleaseEntry | None:
    match = ENTRY_KEY.match(key)
    try:
        data = json.loads(value)
    except (TypeError, ValueError):
        return None
    if match is None or not isinstance(data, dict):
        return None
    return ReleaseEntry(
        model=model,
        key=key,
        seq=int(match.group(1)),
        action=str(data.get("action")),
        from_version=data.get("from"),
        to_version=data.get("to"),
        by=data.get("by"),
        at=str(data.get("at")),
        reason=str(data.get("reason") or ""),
        forced=bool(data.get("forced")),
        overrides=tuple(data.get("overrides") or ()),
        recorded_by=data.get("recorded_by"),
        identity=data.get("identity"),
    )


def parse_reviews(tags: Mapping[str, str]) -> tuple[Review, ...]:
    found = []
    for key, value in tags.items():
        if key.startswith(REVIEW_PREFIX):
            with contextlib.suppress(TypeError, ValueError, KeyError):
                data = json.loads(value)
                found.append(
                    Review(
                        data["reviewer"],
                        data["decision"],
                        data["at"],
                        data["note"],
                        data.get("recorded_by"),
                    )
                )
    return tuple(sorted(found, key=lambda r: r.at))


def trainers(tags: Mapping[str, str]) -> frozenset[str]:
    """Everyone a version records as having produced it: self-approval is refused to each."""
    return frozenset(n for n in (tags.get(TAG_TRIGGERED_BY), tags.get(TAG_REGISTERED_BY)) if n)


def policy_problems(
    tags: Mapping[str, str], policy: ReleaseSpec, also_trained_by: frozenset[str] = frozenset(),
    *, first_release: bool = False,
) -> tuple[tuple[str, ...], tuple[str, ...], int]:  # fmt: skip
    """``(approvals that count, reasons promotion is refused, approvals required)``; a first
    release (no champion to shadow) is exempt from the policy's shadow checks."""
    made_by = trainers(tags) | also_trained_by
    reviews = parse_reviews(tags)
    approvals = tuple(
        r.reviewer
        for r in reviews
        if r.decision == "approved"
        and (not policy.approvers or r.reviewer in policy.approvers)
        and not (policy.forbid_self_approval and (r.reviewer in made_by or not made_by))
    )
    problems = []
    if tags.get(TAG_GATES_PASSED) != "true":
        problems.append("its gates did not pass" if TAG_GATES in tags else "it has no gate results")
    for r in reviews:
        if r.decision == "rejected":
            problems.append(f"it was rejected by {r.reviewer}" + (f" ({r.note})" if r.note else ""))
    problems += [] if first_release or not policy.shadow else shadow_problems(tags, policy)
    required = _required(policy)
    if len(approvals) < required:
        who = f" from {', '.join(policy.approvers)}" if policy.approvers else ""
        problems.append(f"it has {len(approvals)} of {required} required approval(s){who}")
    return approvals, tuple(problems), required


def shadow_problems(tags: Mapping[str, str], policy: ReleaseSpec) -> list[str]:
    """The policy's ``shadow:`` checks that the version's shadow evidence does not meet."""
    metrics = {"shadow.batches": 0.0}  # never shadowed: zero batches, not an error
    with contextlib.suppress(ValueError, AttributeError):  # unreadable: no evidence
        found = json.loads(tags.get(TAG_SHADOW_EVIDENCE) or "{}")
        metrics |= {k: float(v) for k, v in found.items() if isinstance(v, int | float)}
    report = evaluate_gates(policy.shadow, metrics, None, None, step="shadow scoring")
    return [f"shadow evidence: {g.expression} ({g.note or g.value})" for g in report.failed]


def review_refusal(
    reviewer: str,
    decision: str,
    tags: Mapping[str, str],
    policy: ReleaseSpec,
    also_trained_by: frozenset[str] = frozenset(),
) -> str | None:
    """Why ``reviewer`` may not record ``decision`` under ``policy``, or None."""
    if policy.approvers and reviewer not in policy.approvers:
        return f"the approvers are {', '.join(policy.approvers)}"
    made_by = trainers(tags) | also_trained_by
    if decision == "approved" and policy.forbid_self_approval:
        if not made_by:
            return "self-approval is forbidden and the version does not record who triggered it"
        if reviewer in made_by:
            return "self-approval is forbidden and they triggered the run that produced it"
    return None


# --- the policy bound to a model ---------------------------------------------------------------


def _required(policy: ReleaseSpec) -> int:
    return max(policy.min_approvals, 1) if policy.require_approval else 0


def at_least_as_strict(new: ReleaseSpec, old: ReleaseSpec) -> bool:
    """Whether ``new`` refuses everything ``old`` refuses (an empty approver list = anyone)."""
    return (
        _required(new) >= _required(old)
        and (new.forbid_self_approval or not old.forbid_self_approval)
        and (
            not old.approvers or (bool(new.approvers) and set(new.approvers) <= set(old.approvers))
        )
        and set(new.shadow) >= set(old.shadow)
    )


def tighten(base: ReleaseSpec, extra: ReleaseSpec) -> ReleaseSpec:
    """The strictest combination of two policies: what ``--pipeline`` does to a model's policy.
    It can add approvals, narrow approvers and forbid self-approval, never the reverse."""
    approvers = list(base.approvers or extra.approvers)
    if base.approvers and extra.approvers:
        approvers = [a for a in base.approvers if a in extra.approvers]
        if not approvers:
            raise RegistryError(
                "the two release policies share no approver: the recorded one allows "
                f"{', '.join(base.approvers)}, the spec's {', '.join(extra.approvers)}",
                hint="a spec can only narrow the recorded approvers",
            )
    required = max(_required(base), _required(extra))
    return base.model_copy(
        update={
            "require_approval": required > 0,
            "min_approvals": required if required else base.min_approvals,
            "approvers": approvers,
            "forbid_self_approval": base.forbid_self_approval or extra.forbid_self_approval,
            "shadow": list(dict.fromkeys([*base.shadow, *extra.shadow])),
        }
    )


@dataclass(frozen=True)
class PolicyRecord:
    """A release policy as recorded on a registered model: the policy, the spec it came from
    and that spec's SHA-256 at the time."""

    policy: ReleaseSpec
    source: str
    spec_sha256: str

    def tags(self) -> dict[str, str]:
        return {
            TAG_POLICY: json.dumps(self.policy.model_dump(mode="json"), sort_keys=True),
            TAG_POLICY_SOURCE: self.source,
            TAG_POLICY_SPEC_SHA: self.spec_sha256,
        }

    def describe(self) -> str:
        p = self.policy
        parts = [f"{_required(p)} approval(s)"]
        parts.append(f"from {', '.join(p.approvers)}" if p.approvers else "from anyone")
        parts.append(
            "self-approval forbidden" if p.forbid_self_approval else "self-approval allowed"
        )
        return ", ".join(parts) + f" (recorded from {self.source}, sha256 {self.spec_sha256[:12]})"

    def to_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.model_dump(mode="json"), "source": self.source,
                "spec_sha256": self.spec_sha256}  # fmt: skip

    @classmethod
    def from_tags(cls, model: str, tags: Mapping[str, str]) -> PolicyRecord | None:
        """The recorded policy, None when there is none; an unreadable one is an error (a
        damaged policy must never read as "no policy")."""
        raw = tags.get(TAG_POLICY)
        if raw is None:
            return None
        from pydantic import ValidationError

        from toolkit.specs.models import ReleaseSpec

        try:
            policy = ReleaseSpec.model_validate(json.loads(raw))
        except (TypeError, ValueError, ValidationError) as exc:
            raise RegistryError(
                f"the release policy recorded on {model!r} ({TAG_POLICY}) is unreadable: {exc}",
                hint="a release admin of the model records it again: toolkit policy "
                f"{model} --set-from SPEC --reason TEXT",
            ) from exc
        return cls(policy, tags.get(TAG_POLICY_SOURCE, "?"), tags.get(TAG_POLICY_SPEC_SHA, "?"))


def champion_stack(entries: list[ReleaseEntry]) -> list[str]:
    """Champions as a stack: a promotion pushes, a rollback pops back to its target."""
    stack: list[str] = []
    for e in entries:
        if e.action not in MOVES or e.to_version is None:
            continue
        if e.action == "rolled_back" and e.to_version in stack:
            del stack[len(stack) - stack[::-1].index(e.to_version) :]
        else:
            stack.append(e.to_version)
    return stack
