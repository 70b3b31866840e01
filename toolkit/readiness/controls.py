"""Production readiness: score a pipeline that releases a model against the controls a model
needs before it scales (:data:`~toolkit.specs.readiness_models.CONTROL_NAMES`).

Pure: a loaded spec and the :class:`Evidence` the caller read (the dependency lock, the latest
candidate's reproduction) in, a :class:`ReadinessReport` out. Each control is ``passed``,
``missing`` (with the YAML or command that adds it) or ``not_applicable`` (waived in the spec,
with its reason). The spec's ``readiness.level`` says which are required; ``promote`` refuses a
version whose pipeline misses a required one.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.readiness.scan import hard_coded_secrets
from toolkit.specs.models import Pipeline
from toolkit.specs.readiness_models import CONTROL_NAMES

PASSED, MISSING, NOT_APPLICABLE = "passed", "missing", "not_applicable"
STAGING = frozenset(
    {"input_contract", "output_contract", "evaluation_gate", "review_policy", "owner",
     "locked_environment", "secrets"}
)  # fmt: skip
REQUIRED_AT = {"draft": frozenset(), "staging": STAGING, "production": frozenset(CONTROL_NAMES)}
#: Reproductions that count: the candidate's results came out again (timings aside).
REPRODUCED = ("identical", "within_tolerance")
LATENCY_PATTERNS = ("*_ms", "*latency*", "*_seconds")
THRESHOLD = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|>|<|==)\s*[-+]?\d")


@dataclass(frozen=True)
class Evidence:
    """What only the project and the tracking store know: the dependency lock
    (``{"file", "sha256"}`` or None), and the latest candidate's reproduction."""

    lock: dict[str, str] | None = None
    reproduce_verdict: str | None = None
    candidate: str | None = None  # "v3 (run 20261205-...)", or None when none is registered
    reproduce_run: str | None = None  # the run to reproduce (for the fix)


@dataclass(frozen=True)
class Control:
    name: str
    status: str
    required: bool
    detail: str = ""
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ReadinessReport:
    pipeline: str
    spec: str
    model: str | None
    level: str
    controls: tuple[Control, ...] = field(default_factory=tuple)

    @property
    def applicable(self) -> bool:
        return self.model is not None

    @property
    def missing_required(self) -> tuple[Control, ...]:
        return tuple(c for c in self.controls if c.required and c.status == MISSING)

    @property
    def ready(self) -> bool:
        return not self.missing_required

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.controls) for s in (PASSED, MISSING,
                                                                        NOT_APPLICABLE)}  # fmt: skip

    def summary_line(self) -> str:
        """One line for a run report or the end of ``make demo``."""
        if not self.applicable:
            return f"readiness: not applicable ({self.pipeline} registers no model)"
        n = self.counts()
        head = f"readiness {self.level}: {'ready' if self.ready else 'NOT ready'}"
        head += f" ({n[PASSED]} passed, {n[MISSING]} missing, {n[NOT_APPLICABLE]} n/a)"
        if self.missing_required:
            head += "; required but missing: " + ", ".join(c.name for c in self.missing_required)
        return head

    def to_text(self) -> str:
        lines = [f"{self.pipeline} ({self.spec}): {self.summary_line()}"]
        for c in self.controls:
            mark = {PASSED: "ok", MISSING: "MISSING" if c.required else "missing"}.get(
                c.status, "n/a"
            )
            lines.append(f"  {mark:<8} {c.name:<22} {c.detail}")
            if c.status == MISSING and c.fix:
                lines.append(f"  {'':<8} {'':<22} fix: {c.fix}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "spec": self.spec, "model": self.model,
            "level": self.level, "ready": self.ready, "summary": self.summary_line(),
            "controls": [c.to_dict() for c in self.controls],
        }  # fmt: skip


Check = Callable[[Pipeline, Evidence, tuple[str, ...]], tuple[bool, str, str | None]]


def _input_contract(
    spec: Pipeline, ev: Evidence, pats: tuple[str, ...]
) -> tuple[bool, str, str | None]:
    gaps = []
    for step in spec.steps:
        external = {k: v for k, v in step.inputs.items() if not isinstance(v, str)}
        gaps += [f"{step.name}.inputs.{k}" for k, v in external.items() if v.contract is None]
        if not any(isinstance(v, str) for v in step.inputs.values()):  # data enters here
            gaps += [f"{step.name}.outputs.{k}" for k, o in step.output_specs().items()
                     if o.contract is None and o.path.endswith((".parquet", ".csv"))]  # fmt: skip
    if gaps:
        where, _, key = gaps[0].split(".")
        return (
            False,
            "no contract on " + ", ".join(gaps),
            (
                f"in step {where!r}: {_kind(gaps[0])}: {{{key}: {{path: ..., contract: SUITE}}}} "
                "(draft SUITE with: toolkit contracts draft FILE)"
            ),
        )
    return True, "every file entering the pipeline has a contract", None


def _kind(gap: str) -> str:
    return gap.split(".")[1]


def _output_contract(
    spec: Pipeline, ev: Evidence, pats: tuple[str, ...]
) -> tuple[bool, str, str | None]:
    if spec.guard and spec.guard.get("output_contract"):
        return True, "guard.output_contract checks every prediction", None
    step = spec.gates.step if spec.gates else None
    if step and any(o.contract for o in spec.step(step).output_specs().values()):
        return True, f"a contract on {step}'s predictions", None
    return (
        False,
        "nothing checks the predictions",
        (
            "guard: {output_contract: {labels: {0: NAME, 1: NAME}}}, or in step "
            f"{step or 'evaluate'!r}: outputs: {{predictions: {{path: predictions.parquet, "
            "contract: SUITE}}"
        ),
    )


def _checks(spec: Pipeline) -> list[str]:
    return list(spec.gates.checks) if spec.gates else []


def _is_latency(metric: str) -> bool:
    return any(fnmatch.fnmatchcase(metric.lower(), p) for p in LATENCY_PATTERNS)


def _evaluation_gate(
    spec: Pipeline, ev: Evidence, pats: tuple[str, ...]
) -> tuple[bool, str, str | None]:
    found = [c for c in _checks(spec) if (m := THRESHOLD.match(c)) and not _is_latency(m.group(1))]
    if found:
        return True, "; ".join(found), None
    return (
        False,
        "no gate with a quality threshold",
        ('gates: {step: evaluate, checks: ["roc_auc >= 0.9"]}'),
    )


def _champion(spec: Pipeline, ev: Evidence, pats: tuple[str, ...]) -> tuple[bool, str, str | None]:
    found = [c for c in _checks(spec) if "champion." in c]
    if found:
        return True, "; ".join(found), None
    return (
        False,
        "no gate compares the candidate with the champion",
        ("gates.checks: - roc_auc >= champion.roc_auc - 0.01"),
    )


def _latency(spec: Pipeline, ev: Evidence, pats: tuple[str, ...]) -> tuple[bool, str, str | None]:
    found = [c for c in _checks(spec)
             if (m := THRESHOLD.match(c)) and _is_latency(m.group(1)) and "<" in c]  # fmt: skip
    if found:
        return True, "; ".join(found), None
    return (
        False,
        "no latency budget among the gates",
        ("gates.checks: - predict_p95_ms <= 50 (log it from the evaluate step)"),
    )


def _review(spec: Pipeline, ev: Evidence, pats: tuple[str, ...]) -> tuple[bool, str, str | None]:
    r = spec.release
    gaps = []
    if not r.require_approval or r.min_approvals < 1:
        gaps.append("no approval required")
    if not r.forbid_self_approval:
        gaps.append("self-approval allowed")
    if gaps:
        return (
            False,
            "; ".join(gaps),
            ("release: {require_approval: true, min_approvals: 1, forbid_self_approval: true}"),
        )
    who = ", ".join(r.approvers) if r.approvers else "anyone but the trainer"
    return True, f"{r.min_approvals} approval(s) from {who}; self-approval forbidden", None


def _owner(spec: Pipeline, ev: Evidence, pats: tuple[str, ...]) -> tuple[bool, str, str | None]:
    o = spec.owner
    if o is None:
        return False, "no owner", "owner: {team: TEAM, contact: EMAIL_OR_CHANNEL}"
    who = " / ".join(x for x in (o.name, o.team) if x)
    if not o.contact:
        return (
            False,
            f"owner {who} has no contact",
            (
                f"owner: {{{'name' if o.name else 'team'}: {o.name or o.team}, contact: "
                "EMAIL_OR_CHANNEL}"
            ),
        )
    return True, f"{who} <{o.contact}>", None


def _fallback(spec: Pipeline, ev: Evidence, pats: tuple[str, ...]) -> tuple[bool, str, str | None]:
    rules = ((spec.guard or {}).get("fallback") or {}).get("rules")
    fix = "guard: {fallback: {rules: rules/MODEL_fallback.yaml}}"
    if not rules:
        return False, "the guard has no fallback rules", fix
    path = Path(str(rules))
    path = path if path.is_absolute() else spec.source.parent / path
    if not path.is_file():
        return False, f"fallback rules {rules} do not exist", fix
    return True, f"guard.fallback.rules: {rules}", None


def _monitoring(
    spec: Pipeline, ev: Evidence, pats: tuple[str, ...]
) -> tuple[bool, str, str | None]:
    if spec.monitoring:
        return True, ", ".join(f"{k}: {v}" for k, v in spec.monitoring.items()), None
    return (
        False,
        "no monitoring thresholds (the defaults are nobody's decision)",
        ("monitoring: {psi_alert: 0.25, fallback_rate_alert: 0.1, rejected_rate_alert: 0.05}"),
    )


def _alerts(spec: Pipeline, ev: Evidence, pats: tuple[str, ...]) -> tuple[bool, str, str | None]:
    hooks = [k for k in ("webhook", "command") if (spec.alerts or {}).get(k)]
    if hooks:
        return True, "alerts: " + ", ".join(hooks), None
    return (
        False,
        "no alert hook: a drifting model alerts nobody",
        ("alerts: {webhook: https://HOOK} or alerts: {command: CMD}"),
    )


def _lock(spec: Pipeline, ev: Evidence, pats: tuple[str, ...]) -> tuple[bool, str, str | None]:
    if ev.lock:
        return True, f"{ev.lock.get('file')} sha256 {str(ev.lock.get('sha256'))[:12]}", None
    return False, "no dependency lock at the project root", "uv lock (and commit uv.lock)"


def _reproduced(
    spec: Pipeline, ev: Evidence, pats: tuple[str, ...]
) -> tuple[bool, str, str | None]:
    return reproduced(ev, spec.source.name)


def reproduced(ev: Evidence, spec_file: str) -> tuple[bool, str, str | None]:
    """The one control whose evidence comes after registration: it reads only ``ev``, so a
    version whose spec is gone is still scored on it (:mod:`toolkit.readiness.record`)."""
    fix = f"toolkit reproduce {ev.reproduce_run or 'RUN_ID'}"
    if ev.candidate is None:
        return False, "no candidate registered yet", f"toolkit run {spec_file}, then {fix}"
    if ev.reproduce_verdict in REPRODUCED:
        return True, f"{ev.candidate}: reproduced ({ev.reproduce_verdict})", None
    if ev.reproduce_verdict:
        return False, f"{ev.candidate}: reproduction {ev.reproduce_verdict}", fix
    return False, f"{ev.candidate}: never reproduced", fix


def _secrets(spec: Pipeline, ev: Evidence, pats: tuple[str, ...]) -> tuple[bool, str, str | None]:
    found = hard_coded_secrets(spec, pats)
    if found:
        return (
            False,
            "; ".join(found),
            (
                "parameters: {NAME: {secret: true, env: ENV_VAR}}; in notebooks read it from the "
                "injected parameter, never a literal"
            ),
        )
    return True, "no literal secret in parameters or notebook sources", None


CHECKS: dict[str, Check] = {
    "input_contract": _input_contract, "output_contract": _output_contract,
    "evaluation_gate": _evaluation_gate, "champion_comparison": _champion,
    "latency_budget": _latency, "review_policy": _review, "owner": _owner,
    "fallback_rules": _fallback, "monitoring_thresholds": _monitoring, "alert_hook": _alerts,
    "locked_environment": _lock, "reproduced": _reproduced, "secrets": _secrets,
}  # fmt: skip
assert tuple(CHECKS) == CONTROL_NAMES


def required_controls(spec: Pipeline) -> frozenset[str]:
    r = spec.readiness
    return (REQUIRED_AT[r.level] | set(r.require)) - set(r.waive)


def evaluate(
    spec: Pipeline,
    evidence: Evidence,
    secret_patterns: Iterable[str],
    floor: Iterable[str] = (),
) -> ReadinessReport:
    """Score ``spec``; a pipeline that releases no model gets a report with no controls.

    ``floor`` names controls required whatever the spec says now (those a version was held to
    when it was registered): a spec edited since to a lower level, or waiving one, lowers
    nothing for that version."""
    model = spec.model.name if spec.model else None
    label = str(spec.source)
    if model is None:
        return ReadinessReport(spec.name, label, None, spec.readiness.level)
    floor = frozenset(floor)
    required, pats = required_controls(spec) | floor, tuple(secret_patterns)
    controls = []
    for name, check in CHECKS.items():
        if name in spec.readiness.waive and name not in floor:
            why = spec.readiness.waive[name]
            controls.append(Control(name, NOT_APPLICABLE, False, f"waived: {why}"))
            continue
        ok, detail, fix = check(spec, evidence, pats)
        controls.append(Control(name, PASSED if ok else MISSING, name in required, detail, fix))
    return ReadinessReport(spec.name, label, model, spec.readiness.level, tuple(controls))


def run_line(spec: Pipeline, root: Path, secret_patterns: Iterable[str]) -> str | None:
    """The line a run report carries: the readiness of the spec just run. The candidate it may
    have registered is not reproduced yet, so at ``production`` that control is missing."""
    from toolkit.core.lineage.machine import lock_info

    if spec.model is None:
        return None
    evidence = Evidence(lock_info(root), reproduce_run="RUN_ID")
    return evaluate(spec, evidence, secret_patterns).summary_line()
