"""After the steps: evaluate the release gates, and register the model when they all pass.

Gates read the metrics of ``gates.step`` and compare them with thresholds and with the current
champion's metrics from the registry. A failing gate means exit code 4 and nothing registered.
Passing gates register ``model.output`` of ``model.step`` as a new version with the alias
``candidate``, tagged with the run, the commit, the data fingerprints and the gate results.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.core.errors import RegistryError
from toolkit.core.fsutil import atomic_write_json
from toolkit.core.lineage import fingerprint
from toolkit.core.settings import Settings
from toolkit.gates.evaluation import evaluate_gates
from toolkit.plan.planned import Plan
from toolkit.reports.summary import CACHED, SUCCEEDED, StepReport
from toolkit.tracking.run_tracking import RunTracking

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.readiness.record import ReadinessRecord

REFERENCE_ARTIFACT = "reference/reference_profile.json"
TAG_REFERENCE = "toolkit.reference"


def may_register(plan: Plan) -> bool:
    return plan.model is not None and plan.gates is not None


def warm_up() -> None:
    """Registration's one-off costs (``mlflow.pyfunc``, MLflow's installed-packages map, 1-2 s),
    paid while the steps run instead of after them."""
    from toolkit.release.guarded import warm_up as prepare_logging

    prepare_logging()


def contracts_ok(steps: tuple[StepReport, ...]) -> bool | None:
    """True when every contract of the run passed (warnings included); None when none ran."""
    results = [c for s in steps for c in s.contracts]
    return None if not results else all(c.get("success") for c in results)


def _reference_frame(plan: Plan) -> pd.DataFrame:
    """Data the model saw at training time: the first tabular input of the model's step."""
    from toolkit.core.tables import read_table

    assert plan.model is not None
    for item in plan.step(plan.model.step).inputs.values():
        if item.path.suffix in {".parquet", ".csv", ".pq"}:
            return read_table(item.path)
    raise RegistryError(f"step {plan.model.step!r} has no tabular input to profile")


def load_model_output(path: Path) -> Any:
    """The model a step wrote with ``joblib.dump``; anything else is a clear error, not a crash.

    The pipeline wrote this file itself in this run; joblib unpickles it."""
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:  # a text file, a skops or ONNX file, a truncated pickle...
        raise RegistryError(
            f"the model output {path} could not be loaded with joblib "
            f"({type(exc).__name__}: {exc}), so no version was registered",
            hint="save the model in its step with joblib.dump(model, path), or point "
            "`model.output` at the output that holds it",
        ) from exc


class ModelPrefetch:
    """The trained model, loaded on a thread as soon as its step has finished (run or reused),
    so that registration, after the last step, does not wait for the unpickling: for a
    scikit-learn pipeline that is mostly importing scikit-learn, most of a second. The result is
    used only if the file is unchanged since; a failure is left to registration, which loads the
    file again and reports it as it always did."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._thread: threading.Thread | None = None
        self._loaded: tuple[tuple[int, int, int], Any] | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._load, name="toolkit-model-prefetch", daemon=True
            )
            self._thread.start()

    def _load(self) -> None:
        # Any failure: registration loads the file again, and reports the error itself.
        with contextlib.suppress(Exception):
            stamp = _stamp(self.path)
            self._loaded = (stamp, load_model_output(self.path))

    def take(self) -> Any:
        """The model: the one loaded ahead when its file is unchanged, else loaded now."""
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):
            if self._loaded is not None and self._loaded[0] == _stamp(self.path):
                return self._loaded[1]
        return load_model_output(self.path)


def _stamp(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, info.st_size


def _log_guarded(
    plan: Plan, settings: Settings, estimator: Any, parent: str, tracking: RunTracking
) -> str:
    """Wrap the trained estimator in its guard, log it, and log the reference profile."""
    from toolkit.guard.build import build_guarded_model
    from toolkit.monitor import build_profile
    from toolkit.release.guarded import log_guarded_model

    assert plan.guard is not None
    reference = _reference_frame(plan)
    guarded = build_guarded_model(
        estimator,
        plan.guard,
        expectations_dir=settings.expectations_dir,
        base_dir=plan.spec_path.parent,
        input_example=reference.head(5),
        cache_dir=settings.cache_dir,
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
        # The rates the guard had on its own training data: what the model card expects.
        meta={"run_id": plan.run_dir.name, "rows": len(inputs)}
        | {f"{p}_rate": float((scored["path"] == p).mean()) for p in ("fallback", "rejected")},
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


def readiness_record(plan: Plan, settings: Settings) -> ReadinessRecord | None:
    """What the spec requires of the version being registered, recorded on it so that
    ``promote`` holds it to that even once the spec is edited, moved or gone. A spec that no
    longer loads records nothing: promote then refuses without a spec (fails closed)."""
    from toolkit.core.errors import ToolkitError
    from toolkit.readiness.record import at_registration
    from toolkit.specs.load import load_spec

    assert plan.model is not None
    try:
        spec = load_spec(plan.spec_path)
        if spec.model is None or spec.model.name != plan.model.name:
            return None  # edited during the run into another pipeline: nothing true to record
        label = _spec_label(plan.spec_path, settings)
        return at_registration(
            spec, settings.root, settings.secret_patterns, source=label, run=plan.run_dir.name
        )
    except (ToolkitError, OSError):
        return None


def gate_and_register(
    plan: Plan,
    settings: Settings,
    steps: tuple[StepReport, ...],
    tracking: RunTracking | None,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Return ``(gates, registered)`` as JSON-ready dicts; either is None when not configured.

    For callers with no records of their own to write first (shared runs' ``--finish``).
    """
    release = evaluate(plan, settings, steps, tracking)
    if release is None:
        return None, None
    return release.gates, release.register() if release.ready else None


class Release:
    """The gates' verdict on one run, and the registration it allows (done by :meth:`register`).

    The orchestrator writes the run's own records between the two: a version is only
    registered once the run's summary is safely on disk (see :func:`withdraw`).
    """

    def __init__(
        self,
        plan: Plan,
        settings: Settings,
        gates: dict[str, Any],
        report: Any,
        registry: Any,
        tracking: RunTracking | None,
        metrics_run_id: str | None,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.gates = gates
        self.report = report
        self.registry = registry
        self.tracking = tracking
        self.metrics_run_id = metrics_run_id
        self.prefetch: ModelPrefetch | None = None  # set by the run when it loads the model ahead

    @property
    def ready(self) -> bool:
        """True when the gates passed and there is a model and a tracked run to register it."""
        return bool(
            self.report.passed
            and self.registry is not None
            and self.plan.model is not None
            and self.tracking is not None
        )

    def register(self) -> dict[str, Any]:
        plan, settings, tracking, registry = self.plan, self.settings, self.tracking, self.registry
        assert plan.model is not None and tracking is not None
        model_step = plan.step(plan.model.step)
        model_path = model_step.outputs[plan.model.output].path
        parent = tracking.parent
        assert parent is not None
        prefetched = self.prefetch if self.prefetch and self.prefetch.path == model_path else None
        estimator = prefetched.take() if prefetched else load_model_output(model_path)
        if plan.guard is not None:
            uri = _log_guarded(plan, settings, estimator, parent, tracking)
        else:
            uri = registry.log_sklearn_model(parent, estimator)
        prints = {
            f"{step.name}.{key}": fingerprint(out.path).get("sha256", "")
            for step in plan.steps
            for key, out in step.outputs.items()
            if Path(out.path).exists()
        }
        from toolkit.release.registry import PolicyRecord

        # The policy travels with the model from here on (review/promote read it from the
        # registry); the trainer is the registry's system identity, not a name chosen here.
        policy = PolicyRecord(plan.release, _spec_label(plan.spec_path, settings), plan.spec_hash)
        info = registry.register(
            plan.model.name,
            model_uri=uri,
            run_id=parent,
            gate_report=self.report,
            policy=policy,
            metrics_run_id=self.metrics_run_id,
            toolkit_run_id=plan.run_dir.name,
            git_commit=tracking.git_commit,
            data_fingerprints=prints,
            tags={TAG_REFERENCE: f"runs:/{parent}/{REFERENCE_ARTIFACT}"} if plan.guard else None,
            readiness=readiness_record(plan, settings),
        )
        from toolkit.cards.publish import refresh

        refresh(info.name, info.version, "registered", settings=settings)  # from what exists now
        return {"name": info.name, "version": info.version, "model_uri": info.model_uri}

    def withdraw(self, registered: dict[str, Any], reason: str) -> None:
        """Undo :meth:`register` after a failure that left the run without its records: the
        version is marked unusable (never approved nor promoted) and loses ``candidate``."""
        self.registry.mark_unusable(registered["name"], registered["version"], reason=reason)


def evaluate(
    plan: Plan,
    settings: Settings,
    steps: tuple[StepReport, ...],
    tracking: RunTracking | None,
) -> Release | None:
    """Evaluate the gates (logged to ``gates.json`` and the pipeline's run); None when the
    spec has none, or when the gates step did not produce results (the run failed already).

    A gates step reused from the cache counts: its metrics are the ones its execution logged,
    and the gates are recorded in this run's backend like any other.
    """
    if plan.gates is None:
        return None
    by_name = {s.name: s for s in steps}
    gates_step = by_name.get(plan.gates.step)
    if gates_step is None or gates_step.status not in (SUCCEEDED, CACHED):
        return None  # the run already failed; gates have nothing to read
    registry = None
    champion_version, champion = None, None
    if plan.model is not None and tracking is not None:
        from toolkit.release.registry import Registry

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
    return Release(plan, settings, gates, report, registry, tracking, gates_step.mlflow_run_id)
