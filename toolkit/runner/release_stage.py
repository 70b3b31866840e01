"""After the steps: evaluate the release gates, and register the model when they all pass.

Gates read the metrics of ``gates.step`` and compare them with thresholds and with the current
champion's metrics from the registry. A failing gate means exit code 4 and nothing registered.
Passing gates register ``model.output`` of ``model.step`` as a new version with the alias
``candidate``, tagged with the run, the commit, the data fingerprints and the gate results.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import RegistryError
from toolkit.fsutil import atomic_write_json
from toolkit.gates import evaluate_gates
from toolkit.lineage import fingerprint
from toolkit.plan import Plan
from toolkit.report import SUCCEEDED, StepReport
from toolkit.runner.tracked import RunTracking
from toolkit.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

REFERENCE_ARTIFACT = "reference/reference_profile.json"
TAG_REFERENCE = "toolkit.reference"


def may_register(plan: Plan) -> bool:
    return plan.model is not None and plan.gates is not None


def warm_up() -> None:
    """Registration's one-off costs (``mlflow.pyfunc``, MLflow's installed-packages map, 1-2 s),
    paid while the steps run instead of after them."""
    from toolkit.registry.guarded import warm_up as prepare_logging

    prepare_logging()


def contracts_ok(steps: tuple[StepReport, ...]) -> bool | None:
    """True when every contract of the run passed (warnings included); None when none ran."""
    results = [c for s in steps for c in s.contracts]
    return None if not results else all(c.get("success") for c in results)


def _reference_frame(plan: Plan) -> pd.DataFrame:
    """Data the model saw at training time: the first tabular input of the model's step."""
    from toolkit.tables import read_table

    assert plan.model is not None
    for item in plan.step(plan.model.step).inputs.values():
        if item.path.suffix in {".parquet", ".csv", ".pq"}:
            return read_table(item.path)
    raise RegistryError(f"step {plan.model.step!r} has no tabular input to profile")


def _log_guarded(
    plan: Plan, settings: Settings, model_path: Path, parent: str, tracking: RunTracking
) -> str:
    """Wrap the trained estimator in its guard, log it, and log the reference profile."""
    import joblib

    from toolkit.guard import build_guarded_model
    from toolkit.monitor import build_profile
    from toolkit.registry.guarded import log_guarded_model

    assert plan.guard is not None
    # The pipeline wrote this file itself in this run; joblib unpickles it.
    estimator = joblib.load(model_path)
    reference = _reference_frame(plan)
    guarded = build_guarded_model(
        estimator,
        plan.guard,
        expectations_dir=settings.expectations_dir,
        base_dir=plan.spec_path.parent,
        input_example=reference.head(5),
    )
    inputs = reference.loc[:, [c for c in reference.columns if c in set(guarded.contract.names)]]
    scored = guarded.predict(inputs)
    import pandas as pd

    # Identifiers (unique strings such as patient ids) have no distribution to drift.
    ids = [c for c in inputs if pd.api.types.is_string_dtype(inputs[c]) and inputs[c].is_unique]
    profile = build_profile(
        inputs,
        scored[["prediction", "probability"]],
        exclude=ids,
        meta={"run_id": plan.run_dir.name, "rows": len(inputs)},
    )
    path = profile.save(plan.run_dir / "reference_profile.json")
    tracking.tracker.log_artifact(parent, path, "reference")
    return log_guarded_model(guarded, tracking_uri=settings.tracking_uri, run_id=parent)


def _spec_label(path: Path, settings: Settings) -> str:
    """The spec's path relative to the project when inside it: recorded on the model."""
    try:
        return Path(path).resolve().relative_to(settings.root).as_posix()
    except ValueError:
        return str(path)


def gate_and_register(
    plan: Plan,
    settings: Settings,
    steps: tuple[StepReport, ...],
    tracking: RunTracking | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Return ``(gates, registered)`` as JSON-ready dicts; either is None when not configured."""
    if plan.gates is None:
        return None, None
    by_name = {s.name: s for s in steps}
    gates_step = by_name.get(plan.gates.step)
    if gates_step is None or gates_step.status != SUCCEEDED:
        return None, None  # the run already failed; gates have nothing to read
    registry = None
    champion_version, champion = None, None
    if plan.model is not None and tracking is not None:
        from toolkit.registry import Registry

        registry = Registry(settings.tracking_uri)
        champion_version, metrics = registry.champion_metrics(plan.model.name)
        champion = metrics if champion_version else None
    report = evaluate_gates(
        plan.gates.checks,
        gates_step.metrics,
        champion,
        contracts_ok(steps),
        step=plan.gates.step,
        champion_version=champion_version,
    )
    gates = {**report.to_dict(), "summary": report.summary_lines()}
    atomic_write_json(plan.run_dir / "gates.json", gates)
    if tracking is not None and tracking.parent:
        tracking.log_gates(gates)
    if not report.passed or registry is None or plan.model is None or tracking is None:
        return gates, None
    model_step = plan.step(plan.model.step)
    model_path = model_step.outputs[plan.model.output].path
    parent = tracking.parent
    assert parent is not None
    if plan.guard is not None:
        uri = _log_guarded(plan, settings, model_path, parent, tracking)
    else:
        uri = registry.log_sklearn_model(parent, model_path)
    prints = {
        f"{step.name}.{key}": fingerprint(out.path).get("sha256", "")
        for step in plan.steps
        for key, out in step.outputs.items()
        if Path(out.path).exists()
    }
    from toolkit.registry import PolicyRecord

    # The policy travels with the model from here on (review/promote read it from the registry);
    # the trainer is the registry's system identity, not a name this process chooses.
    policy = PolicyRecord(plan.release, _spec_label(plan.spec_path, settings), plan.spec_hash)
    info = registry.register(
        plan.model.name,
        model_uri=uri,
        run_id=parent,
        gate_report=report,
        policy=policy,
        metrics_run_id=gates_step.mlflow_run_id,
        toolkit_run_id=plan.run_dir.name,
        git_commit=tracking.git_commit,
        data_fingerprints=prints,
        tags={TAG_REFERENCE: f"runs:/{parent}/{REFERENCE_ARTIFACT}"} if plan.guard else None,
    )
    return gates, {"name": info.name, "version": info.version, "model_uri": info.model_uri}
