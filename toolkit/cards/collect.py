"""Gather a model card from records only: the registered version and its tags, the release
history, the source run (summary, environment, tags), the spec that releases the model, the
guard's rules file, monitoring, shadow and feedback runs. Whatever no record holds is listed as missing, so a
version registered before cards existed still gets an honest card."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.cards.model import ModelCard, Section, Table
from toolkit.cards.production import fmt, production
from toolkit.core.errors import ToolkitError
from toolkit.core.settings import Settings
from toolkit.specs.load import discover_specs, load_spec
from toolkit.specs.models import Pipeline

DATA_PREFIX = "toolkit.data."
LOCK_TAG, VERDICT_TAG = "toolkit.lock.sha256", "toolkit.reproduce.verdict"


def releasing_spec(settings: Settings, model: str, recorded: str | None) -> Pipeline | None:
    """The spec the model's policy was recorded from, else any in ``pipelines/`` releasing it."""
    candidates = []
    if recorded:
        path = Path(recorded)
        candidates.append(path if path.is_absolute() else settings.root / path)
    candidates += discover_specs(settings.root / "pipelines")
    for path in candidates:
        try:
            spec = load_spec(path) if path.is_file() else None
        except ToolkitError:
            continue
        if spec is not None and spec.model is not None and spec.model.name == model:
            return spec
    return None


def _identity(spec: Pipeline | None, info: Any) -> Section:
    s = Section("Identity")
    s.fact("Model", f"{info.name} version {info.version}")
    s.fact("Aliases", ", ".join(info.aliases) or "none")
    s.fact("Registered", info.created_at or "?")
    s.fact("Trained by", info.tags.get("toolkit.triggered_by", "?"))
    if spec is None:
        s.missing.append("no pipeline spec releasing this model was found: owner and intended use")
        return s
    if spec.owner is not None:
        who = " / ".join(x for x in (spec.owner.name, spec.owner.team) if x)
        s.fact("Owner", who + (f" <{spec.owner.contact}>" if spec.owner.contact else ""))
        if not spec.owner.contact:
            s.missing.append("the owner's contact (owner.contact in the spec)")
    else:
        s.missing.append("an owner (owner: in the spec)")
    if spec.description:
        s.fact("Intended use", spec.description)
    else:
        s.missing.append("the intended use (description: in the spec)")
    assert spec.model is not None
    if spec.model.out_of_scope:
        s.fact("Out of scope", "; ".join(spec.model.out_of_scope))
    else:
        s.missing.append("out-of-scope uses (model.out_of_scope in the spec)")
    s.fact("Spec", f"{spec.source.name} (readiness level {spec.readiness.level})")
    return s


def _training(info: Any, summary: dict[str, Any] | None) -> Section:
    s = Section("Training data")
    prints = sorted((k[len(DATA_PREFIX) :], v) for k, v in info.tags.items()
                    if k.startswith(DATA_PREFIX))  # fmt: skip
    if prints:
        s.tables.append(Table("Fingerprints of the run's outputs", ("output", "sha256"),
                              [(k, v[:16] + "…") for k, v in prints]))  # fmt: skip
    else:
        s.missing.append("data fingerprints (the version records none)")
    rows = []
    for step in (summary or {}).get("steps", []):
        for c in step.get("contracts", []):
            stats = c.get("statistics") or {}
            checked = stats.get("evaluated_expectations", "?")
            failed = stats.get("unsuccessful_expectations", 0)
            verdict = "passed" if c.get("success") else f"FAILED ({failed} of {checked})"
            rows.append((step.get("name", "?"), str(c.get("target", "?")),
                         str(c.get("suite", "?")), verdict))  # fmt: skip
    if rows:
        s.tables.append(Table("Data contracts of the training run",
                              ("step", "data", "contract", "result"), rows))  # fmt: skip
    else:
        s.missing.append("contract results (the training run's summary is not in the store)")
    s.missing.append("a date range: no column is declared as time")
    return s


def _evaluation(info: Any, metrics: dict[str, float]) -> Section:
    s = Section("Evaluation")
    gates = info.gates
    if gates is not None:
        rows = [(g.expression, fmt(g.value), fmt(g.threshold), "pass" if g.passed else "FAIL")
                for g in gates.results]  # fmt: skip
        s.tables.append(Table("Release gates at registration",
                              ("gate", "value", "threshold", "verdict"), rows))  # fmt: skip
        champ = gates.champion_version
        compared = [g.expression for g in gates.results if "champion" in g.expression]
        if champ and compared:
            s.fact("Compared with", f"champion v{champ} at the time: " + "; ".join(compared))
        elif compared:
            s.fact("Compared with", "no champion at the time (first release)")
        else:
            s.missing.append("a comparison with the champion (no champion gate)")
    else:
        s.missing.append("gate results (the version records none)")
    plain = {k: v for k, v in metrics.items() if not k.startswith("slice")}
    if plain:
        s.tables.append(Table("Metrics logged by the evaluation step", ("metric", "value"),
                              [(k, fmt(v)) for k, v in sorted(plain.items())]))  # fmt: skip
    slices = {k: v for k, v in metrics.items() if k.startswith("slice")}
    if slices:
        s.tables.append(Table("Slices", ("slice metric", "value"),
                              [(k, fmt(v)) for k, v in sorted(slices.items())]))  # fmt: skip
    else:
        s.missing.append("slices (the evaluation step logs no slice.* metrics)")
    return s


def _guard(spec: Pipeline | None, reference: dict[str, Any] | None) -> Section:
    s = Section("Guard")
    guard = (spec.guard if spec else None) or {}
    if not guard:
        s.missing.append("a guard (the spec has no guard: section)" if spec else "the spec")
        return s
    contract = guard.get("input_contract") or {}
    if contract:
        excluded = ", ".join(contract.get("exclude_columns") or []) or "none"
        s.fact("Input contract", f"suite {contract.get('suite')}, checked per row "
               f"(columns excluded in production: {excluded})")  # fmt: skip
    confidence = guard.get("confidence") or {}
    s.fact("Confidence policy", ", ".join(f"{k} {v}" for k, v in confidence.items()) or "none")
    rules_file = (guard.get("fallback") or {}).get("rules")
    if rules_file and spec is not None:
        path = Path(str(rules_file))
        path = path if path.is_absolute() else spec.source.parent / path
        try:
            import yaml

            data = yaml.safe_load(path.read_text()) or {}
            rows = [(str(r.get("name")), str(r.get("when")), str(r.get("label")))
                    for r in data.get("rules", [])]  # fmt: skip
            default = data.get("default") or {}
            rows.append(("default", "no rule matched", str(default.get("label", "-"))))
            s.tables.append(Table(f"Fallback rules ({rules_file})", ("rule", "when", "label"),
                                  rows))  # fmt: skip
        except (OSError, ValueError, AttributeError, TypeError):
            s.missing.append(f"the fallback rules: {rules_file} could not be read")
    else:
        s.missing.append("fallback rules")
    meta = (reference or {}).get("meta") or {}
    rates = [(k, meta[k]) for k in ("fallback_rate", "rejected_rate") if k in meta]
    if rates:
        s.fact("Expected rates on the training data",
               ", ".join(f"{k} {v:.1%}" for k, v in rates))  # fmt: skip
    else:
        s.missing.append("expected fallback and rejected rates (the reference profile has none)")
    return s


def _review(info: Any) -> Section:
    s = Section("Review")
    if info.reviews:
        rows = [(r.reviewer + (f" (recorded by {r.recorded_by})" if r.recorded_by else ""),
                 r.decision, r.at, r.note) for r in info.reviews]  # fmt: skip
        s.tables.append(Table("Reviews", ("who", "decision", "when", "note"), rows))
    else:
        s.missing.append("reviews: nobody has reviewed this version yet")
    return s


def _lineage(info: Any, run: Any, environment: dict[str, Any] | None) -> Section:
    s = Section("Lineage")
    s.fact("Git commit", info.tags.get("git.commit") or "not recorded")
    lock = (environment or {}).get("lock") or {}
    lock_hash = (run.tags.get(LOCK_TAG) if run else None) or lock.get("sha256")
    if lock_hash:
        s.fact("Environment lock", f"{lock.get('file', 'lock')} sha256 {lock_hash}")
    else:
        s.missing.append("an environment lock hash (the run recorded none)")
    s.fact("Toolkit run", info.tags.get("toolkit.run_id", "?"))
    s.fact("MLflow run", info.tags.get("toolkit.mlflow_run_id") or info.run_id or "?")
    if run is not None and run.ui_url:
        s.fact("Run link", run.ui_url)
    s.fact("Model URI", info.model_uri)
    verdict = run.tags.get(VERDICT_TAG) if run else None
    if verdict:
        of = run.tags.get("toolkit.reproduces.run")
        how = (f"this run reproduces run {of}" if of  # a reproduction registers its own version
               else f"reproduction run {run.tags.get('toolkit.reproduced_by.run', '?')}")  # fmt: skip
        s.fact("Reproduce verdict", f"{verdict} ({how})")
    else:
        s.missing.append("a reproduce verdict (toolkit reproduce RUN_ID has not been run)")
    return s


def collect(
    registry: Any, tracker: Any, settings: Settings, model: str, version: str, event: str
) -> ModelCard:
    """The card of ``model`` v``version`` from every record that exists."""
    from toolkit.tracking.run_facts import read_artifact

    info = registry.get_version(model, version)
    record = registry.policy_record(model)
    spec = releasing_spec(settings, model, record.source if record else None)
    run_id = info.tags.get("toolkit.mlflow_run_id") or info.run_id
    run = summary = environment = reference = None
    metrics: dict[str, float] = {}
    if run_id:
        try:
            run = tracker.get_run(run_id)
            summary = read_artifact(tracker, run_id, "summary.json")
            environment = read_artifact(tracker, run_id, "environment.json")
            reference = read_artifact(tracker, run_id, "reference/reference_profile.json")
            metrics = tracker.run_metrics(info.tags.get("toolkit.metrics_run_id") or run_id)
        except ToolkitError:
            run = None  # the source run is gone: the card says what that leaves out
    sections = [
        _identity(spec, info),
        _training(info, summary if isinstance(summary, dict) else None),
        _evaluation(info, metrics),
        _guard(spec, reference if isinstance(reference, dict) else None),
        _review(info),
        production(info, registry.releases(model), tracker),
        _lineage(info, run, environment if isinstance(environment, dict) else None),
    ]
    if run is None:
        sections[-1].missing.append(f"the source run {run_id or '?'} (not in the store)")
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return ModelCard(model, str(version), now, event, sections)
