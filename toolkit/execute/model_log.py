"""The trained model, loaded and logged to the pipeline's run: ahead of registration, on a
thread of the run or in the engine helper, or by registration itself.

Logging wraps the model in its guard (when the spec has one) and logs its reference profile
beside it; the URI it returns is what a version is registered from.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.core.errors import RegistryError
from toolkit.core.settings import Settings
from toolkit.plan.planned import Plan
from toolkit.tracking.run_tracking import RunTracking

if TYPE_CHECKING:
    import pandas as pd

# Does a registry call in the engine helper: (call, *args) -> (done, result); see
# :mod:`toolkit.execute.engine_release`. Not done: this process does it.
Remote = Callable[..., tuple[bool, Any]]


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

    def __init__(
        self, path: Path, log: Callable[[Any], str] | None = None, *, load: bool = True
    ) -> None:
        self.path = Path(path)
        self._log = log
        # False when ``log`` loads the model itself (in the engine helper): this process then
        # never unpickles it, and :meth:`take` gives None for the model.
        self._load = load
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
            self._loaded = (stamp, load_model_output(self.path) if self._load else None)
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
        return (load_model_output(self.path) if self._load else None), None


# Logs a file to a run: (run id, path, artifact folder).
LogArtifact = Callable[[str, Path, str], None]


def log_model(
    plan: Plan, settings: Settings, parent: str, estimator: Any, log_artifact: LogArtifact | None
) -> str:
    """Log the trained model to the pipeline's run ``parent``, in its guard when the spec has
    one; its URI (what a version is registered from). ``log_artifact`` logs the reference
    profile (a tracker of this process when None)."""
    if plan.guard is not None:
        if log_artifact is None:
            from toolkit.tracking.client import Tracker

            tracker = Tracker(settings.tracking_uri, artifacts_dir=settings.artifacts_dir)
            log_artifact = tracker.log_artifact
        return _log_guarded(plan, settings, estimator, parent, log_artifact)
    from toolkit.release.registry import Registry

    return Registry(settings.tracking_uri).log_sklearn_model(parent, estimator)


def prefetcher(
    plan: Plan, settings: Settings, tracking: RunTracking, remote: Remote | None
) -> ModelPrefetch | None:
    """What loads and logs the model ahead of registration: in the engine helper when the run
    has one (``remote``; this process then never imports MLflow nor unpickles the model),
    else on a thread of this process."""
    assert plan.model is not None
    output = plan.step(plan.model.step).outputs.get(plan.model.output)
    if output is None:
        return None
    if remote is not None:
        call = remote

        def log_there(_: Any) -> str:
            done, uri = call("log_ahead", plan, settings, tracking.parent)
            if not done:  # registration does it, and reports any error
                raise RegistryError("the engine helper could not log the model")
            return str(uri)

        return ModelPrefetch(output.path, log_there, load=False)

    def log_here(estimator: Any) -> str:
        assert tracking.parent is not None
        return log_model(plan, settings, tracking.parent, estimator, tracking.tracker.log_artifact)

    return ModelPrefetch(output.path, log_here)


def _stamp(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, info.st_size


def _log_guarded(
    plan: Plan, settings: Settings, estimator: Any, parent: str, log_artifact: LogArtifact
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
    log_artifact(parent, path, "reference")
    return log_guarded_model(guarded, tracking_uri=settings.tracking_uri, run_id=parent)
