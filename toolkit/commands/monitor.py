"""``toolkit monitor``: compare a batch with the training reference of the model that scores it.

The reference profile was captured when the version was registered (tag ``toolkit.reference``).
A raw batch is scored with that version's guard first; a scoring output is used as it is. The
metrics go to an MLflow run per batch, in the experiment ``monitor-<model>``, with the batch
time as the step, so the UI plots them over time. Hooks fire on a breach; a failing hook is
reported but never hides the alert (the CLI exits 5 either way).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.errors import ToolkitError, UsageError
from toolkit.core.settings import load_settings
from toolkit.execute.release_stage import TAG_REFERENCE
from toolkit.specs.load import discover_specs, load_spec
from toolkit.specs.models import Pipeline


@dataclass(frozen=True)
class MonitorRequest:
    model: str
    batch: Path
    version: str | None = None
    webhooks: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    start: Path = field(default_factory=Path.cwd)


@dataclass(frozen=True)
class MonitorOutcome:
    result: Any  # toolkit.monitor.MonitorResult
    hooks: tuple[Any, ...]
    report: Path
    mlflow_run_id: str | None


def releasing_spec(root: Path, model: str) -> Pipeline | None:
    """The pipeline spec whose ``model.name`` is ``model``: it holds thresholds and hooks."""
    for path in discover_specs(root / "pipelines"):
        try:
            spec = load_spec(path)
        except ToolkitError:
            continue
        if spec.model is not None and spec.model.name == model:
            return spec
    return None


def run_monitor(request: MonitorRequest) -> MonitorOutcome:
    """Profile one batch against its model version's reference; log, report and alert."""
    from toolkit.core.tables import read_table
    from toolkit.monitor import (
        MonitorThresholds,
        ReferenceProfile,
        alert_hooks,
        fire_alerts,
        monitor_batch,
    )
    from toolkit.release.guarded import load_guarded_model
    from toolkit.release.registry import Registry
    from toolkit.tracking.client import Tracker

    settings = load_settings(request.start)
    spec = releasing_spec(settings.root, request.model)
    thresholds = MonitorThresholds.from_dict((spec.monitoring if spec else None) or {})
    hooks = alert_hooks(spec.alerts if spec else None, request.webhooks, request.commands)
    batch = read_table(request.batch)  # empty or unreadable: a clear ContractError

    registry = Registry(settings.tracking_uri)
    version = registry.resolve(request.model, request.version or "champion")
    info = registry.get_version(request.model, version)
    reference_uri = info.tags.get(TAG_REFERENCE)
    if not reference_uri:
        raise UsageError(
            f"{request.model} v{version} has no reference profile",
            hint="profiles are captured when a guarded model is registered: give the training "
            "pipeline a `guard:` section and run it again",
        )
    run_part, _, artifact = reference_uri.removeprefix("runs:/").partition("/")
    tracker = Tracker(settings.tracking_uri, artifacts_dir=settings.artifacts_dir)
    reference = ReferenceProfile.from_dict(
        tracker.read_json(run_part, artifact), source=reference_uri
    )
    guard = load_guarded_model(info.model_uri, tracking_uri=settings.tracking_uri)

    run_id = tracker.start_pipeline(
        f"monitor-{request.model}",
        run_name=f"{request.batch.name} v{version}",
        params={"model": request.model, "version": version, "batch": str(request.batch)},
        tags={"toolkit.monitor.model": request.model, "toolkit.monitor.version": version},
        source=str(request.batch),
    )
    with tracker.failing():
        result = monitor_batch(
            batch,
            reference,
            thresholds=thresholds,
            model=request.model,
            version=version,
            batch_name=request.batch.name,
            score=guard.predict,
            run_link=tracker.ui_url(run_id) or f"mlflow run {run_id}",
        )
        stamp = time.strftime("%Y%m%d-%H%M%S")
        report = result.write_html(
            settings.runs_dir / "monitor" / request.model / f"{stamp}-{request.batch.stem}.html"
        )
        step = int(result.batch_epoch_s)
        tracker.log_metrics(run_id, [(k, float(v), step, None) for k, v in result.metrics.items()])
        tracker.log_artifact(run_id, report, "drift")
        tracker.log_dict(run_id, result.to_dict(), "monitor.json")
        tracker.end(run_id, "FINISHED", tags={"toolkit.monitor.status": result.status})
    outcomes = fire_alerts(result, hooks)
    return MonitorOutcome(result, tuple(outcomes), Path(report), run_id)
