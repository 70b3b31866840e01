"""After the steps: evaluate the release gates, and register the model when they all pass.

Gates read the metrics of ``gates.step`` and compare them with thresholds and with the current
champion's metrics from the registry. A failing gate means exit code 4 and nothing registered.
Passing gates register ``model.output`` of ``model.step`` as a new version with the alias
``candidate``, tagged with the run, the commit, the data fingerprints and the gate results.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
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
    and, given ``log``, logged to the pipeline's MLflow run too, while the next steps run.

    Registration comes after the last step; unpickling the model (for a scikit-learn pipeline,
    mostly importing scikit-learn) and logging it (wrapping it in its guard, saving the pyfunc
    model and its reference profile) took it about 2 s of CPU there, on the critical path. Only
    the gates and the version itself are left for after the steps. What was done ahead is used
    only if the model file is unchanged since; any failure leaves the work, and its error
    message, to registration, as before. A model logged ahead whose gates then fail stays on
    the run as an artifact, never registered.
    """

    def __init__(self, path: Path, log: Callable[[Any], str] | None = None) -> None:
        self.path = Path(path)
        self._log = log
        self._thread: threading.Thread | None = None
        self._loaded: tuple[tuple[int, int, int], Any] | None = None
        self._uri: str | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name="toolkit-model-ahead", daemon=True
            )
            self._thread.start()

    def _work(self) -> None:
        # Any failure: registration does the work again, and reports the error itself.
        with contextlib.suppress(Exception):
            stamp = _stamp(self.path)
            self._loaded = (stamp, load_model_output(self.path))
            if self._log is not None:
                self._uri = self._log(self._loaded[1])

    def take(self) -> tuple[Any, str | None]:
        """The model, and its logged URI when it was logged ahead: both from ahead when the
        file is unchanged, else the model loaded now and no URI."""
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):
            if self._loaded is not None and self._loaded[0] == _stamp(self.path):
                return self._loaded[1], self._uri
        return load_model_output(self.path), None


def log_model(plan: Plan, settings: Settings, tracking: RunTracking, estimator: Any) -> str:
    """Log the trained model to the pipeline's run, in its guard when the spec has one; its
    URI (what a version is registered from)."""
    parent = tracking.parent
    assert parent is not None
    if plan.guard is not None:
        return _log_guarded(plan, settings, estimator, parent, tracking)
    from toolkit.release.registry import Registry

    return Registry(settings.tracking_uri).log_sklearn_model(parent, estimator)


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
        ahead = self.prefetch if self.prefetch and self.prefetch.path == model_path else None
        estimator, uri = ahead.take() if ahead else (load_model_output(model_path), None)
        if uri is None:
            uri = log_model(plan, settings, tracking, estimator)
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

    def withdraw_run(self, run_id: str, reason: str) -> None:
        """:meth:`withdraw` for a run stopped inside :meth:`register`: whatever version it
        registered, found by the run it came from."""
        if self.plan.model is not None:
            self.registry.withdraw_run(self.plan.model.name, run_id, reason=reason)


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
