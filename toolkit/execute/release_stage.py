"""After the steps: evaluate the release gates, and register the model when they all pass.

Gates read the metrics of ``gates.step`` and compare them with thresholds and with the current
champion's metrics from the registry. A failing gate means exit code 4 and nothing registered.
Passing gates register ``model.output`` of ``model.step`` as a new version with the alias
``candidate``, tagged with the run, the commit, the data fingerprints and the gate results.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.core.fsutil import atomic_write_json
from toolkit.core.lineage import fingerprint
from toolkit.core.settings import Settings
from toolkit.execute.model_log import (
    LogArtifact,
    ModelPrefetch,
    Remote,
    load_model_output,
    log_model,
)
from toolkit.gates.evaluation import evaluate_gates
from toolkit.plan.planned import Plan
from toolkit.reports.summary import CACHED, SUCCEEDED, StepReport
from toolkit.tracking.run_tracking import RunTracking

if TYPE_CHECKING:
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
        tracking: RunTracking | None,
        metrics_run_id: str | None,
        remote: Remote | None = None,
    ) -> None:
        self.plan = plan
        self.settings = settings
        self.gates = gates
        self.report = report
        self.tracking = tracking
        self.metrics_run_id = metrics_run_id
        self.remote = remote
        self.prefetch: ModelPrefetch | None = None  # set by the run when it loads the model ahead

    @functools.cached_property
    def registry(self) -> Any:
        """The registry, opened in this process (MLflow imported) on first use."""
        from toolkit.release.registry import Registry

        return Registry(self.settings.tracking_uri)

    @property
    def ready(self) -> bool:
        """True when the gates passed and there is a model and a tracked run to register it."""
        passed = bool(self.report.passed)
        return passed and self.plan.model is not None and self.tracking is not None

    def register(self) -> dict[str, Any]:
        plan, tracking = self.plan, self.tracking
        assert plan.model is not None and tracking is not None
        model_path = plan.step(plan.model.step).outputs[plan.model.output].path
        parent = tracking.parent
        assert parent is not None
        ahead = self.prefetch if self.prefetch and self.prefetch.path == model_path else None
        estimator, uri = ahead.take() if ahead else (None, None)
        args = (plan, self.settings, self.report, parent, self.metrics_run_id, tracking.git_commit)
        if self.remote is not None:
            done, registered = self.remote("register", *args, uri)
            if done:
                return dict(registered)
            # The helper failed, perhaps once it had registered: that version is not usable.
            self.withdraw_run(parent, "its registration was cut short; the run registered again")
        return register_version(
            *args, uri, estimator=estimator, log_artifact=tracking.tracker.log_artifact
        )

    def withdraw(self, registered: dict[str, Any], reason: str) -> None:
        """Undo :meth:`register` after a failure that left the run without its records: the
        version is marked unusable (never approved nor promoted) and loses ``candidate``."""
        self.registry.mark_unusable(registered["name"], registered["version"], reason=reason)

    def withdraw_run(self, run_id: str, reason: str) -> None:
        """:meth:`withdraw` for a run stopped inside :meth:`register`: whatever version it
        registered, found by the run it came from."""
        if self.plan.model is not None:
            self.registry.withdraw_run(self.plan.model.name, run_id, reason=reason)


def register_version(
    plan: Plan,
    settings: Settings,
    gate_report: Any,
    parent: str,
    metrics_run_id: str | None,
    git_commit: str | None,
    uri: str | None,
    *,
    estimator: Any = None,
    log_artifact: LogArtifact | None = None,
    card: bool = True,
) -> dict[str, Any]:
    """Register the model of ``plan`` from its run ``parent`` (logged first when ``uri`` is
    None), with its gates, lineage, policy and readiness; refresh its model card (unless not
    ``card``: the caller does it, see :mod:`toolkit.execute.engine_release`)."""
    assert plan.model is not None
    if uri is None:
        path = plan.step(plan.model.step).outputs[plan.model.output].path
        model = estimator if estimator is not None else load_model_output(path)
        uri = log_model(plan, settings, parent, model, log_artifact)
    prints = {
        f"{step.name}.{key}": fingerprint(out.path).get("sha256", "")
        for step in plan.steps
        for key, out in step.outputs.items()
        if Path(out.path).exists()
    }
    from toolkit.release.admins import project_admins
    from toolkit.release.registry import PolicyRecord, Registry

    # The policy travels with the model from here on (review/promote read it from the
    # registry); the trainer is the registry's system identity, not a name chosen here. A
    # model's first registration also records the project's release admins with it.
    policy = PolicyRecord(plan.release, _spec_label(plan.spec_path, settings), plan.spec_hash)
    registry = Registry(settings.tracking_uri, admins=project_admins(settings))
    info = registry.register(
        plan.model.name,
        model_uri=uri,
        run_id=parent,
        gate_report=gate_report,
        policy=policy,
        metrics_run_id=metrics_run_id,
        toolkit_run_id=plan.run_dir.name,
        git_commit=git_commit,
        data_fingerprints=prints,
        tags={TAG_REFERENCE: f"runs:/{parent}/{REFERENCE_ARTIFACT}"} if plan.guard else None,
        readiness=readiness_record(plan, settings),
    )
    if card:
        from toolkit.cards.publish import refresh

        refresh(info.name, info.version, "registered", settings=settings)  # from what exists now
    return {"name": info.name, "version": info.version, "model_uri": info.model_uri}


def evaluate(
    plan: Plan,
    settings: Settings,
    steps: tuple[StepReport, ...],
    tracking: RunTracking | None,
    remote: Remote | None = None,
) -> Release | None:
    """Evaluate the gates (logged to ``gates.json`` and the pipeline's run); None when the
    spec has none, or when the gates step did not produce results (the run failed already).
    ``remote`` reads the champion, and registers, in the engine helper when it can.

    A gates step reused from the cache counts: its metrics are the ones its execution logged,
    and the gates are recorded in this run's backend like any other.
    """
    if plan.gates is None:
        return None
    by_name = {s.name: s for s in steps}
    gates_step = by_name.get(plan.gates.step)
    if gates_step is None or gates_step.status not in (SUCCEEDED, CACHED):
        return None  # the run already failed; gates have nothing to read
    champion_version, champion = None, None
    if plan.model is not None and tracking is not None:
        champion_version, metrics = _champion(settings.tracking_uri, plan.model.name, remote)
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
    return Release(plan, settings, gates, report, tracking, gates_step.mlflow_run_id, remote)


def _champion(
    tracking_uri: str, model: str, remote: Remote | None
) -> tuple[str | None, dict[str, float]]:
    if remote is not None:
        done, found = remote("champion", tracking_uri, model)
        if done:
            return found
    return champion_of(tracking_uri, model)


def champion_of(tracking_uri: str, model: str) -> tuple[str | None, dict[str, float]]:
    """The champion's version of ``model`` and the metrics its gates read (``(None, {})``
    before its first release)."""
    from toolkit.release.registry import Registry

    return Registry(tracking_uri).champion_metrics(model)
