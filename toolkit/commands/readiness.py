"""``toolkit check --readiness`` and the readiness half of ``promote``: read the evidence a
spec alone cannot give (the dependency lock, whether the latest candidate was reproduced) and
score the spec with :func:`toolkit.readiness.controls.evaluate`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from toolkit.core.errors import ToolkitError
from toolkit.core.lineage.machine import lock_info
from toolkit.core.settings import Settings, load_settings
from toolkit.readiness.controls import Evidence, ReadinessReport, evaluate
from toolkit.specs.load import load_spec
from toolkit.specs.models import Pipeline

TAG_REPRODUCE_VERDICT = "toolkit.reproduce.verdict"  # written by toolkit.commands.reproduce


def _store_exists(uri: str) -> bool:
    """A SQLite store that does not exist yet holds no candidate: never create one to look."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).is_file()
    return True


def _registry(settings: Settings) -> Any:
    from toolkit.release.registry import Registry

    return Registry(settings.tracking_uri)


def latest_version(registry: Any, model: str) -> str | None:
    """The latest candidate: the ``candidate`` alias, else the champion (promoted from it)."""
    from toolkit.core.errors import RegistryError

    for alias in ("candidate", "champion"):
        try:
            return str(registry.resolve(model, alias))
        except (RegistryError, ToolkitError):
            continue
    return None


def gather_evidence(
    spec: Pipeline, settings: Settings, *, registry: Any = None, version: str | None = None
) -> Evidence:
    """The lock at the project root, and the reproduction recorded on the source run of
    ``version`` (default: the latest candidate) of the spec's model."""
    lock = lock_info(settings.root)
    if spec.model is None or not _store_exists(settings.tracking_uri):
        return Evidence(lock)
    registry = registry or _registry(settings)
    version = version or latest_version(registry, spec.model.name)
    if version is None:
        return Evidence(lock)
    info = registry.get_version(spec.model.name, version)
    run_id = info.tags.get("toolkit.mlflow_run_id") or info.run_id
    toolkit_run = info.tags.get("toolkit.run_id") or run_id
    verdict = None
    if run_id:
        from toolkit.tracking.client import Tracker

        try:
            verdict = Tracker(settings.tracking_uri).get_run(run_id).tags.get(TAG_REPRODUCE_VERDICT)
        except ToolkitError:
            verdict = None  # the run is gone: never reproduced, as far as anyone can show
    return Evidence(lock, verdict, f"v{version} (run {toolkit_run})", toolkit_run)


def readiness_of(path: Path, *, settings: Settings | None = None) -> ReadinessReport:
    """The readiness of the spec at ``path`` (spec errors raise, exit 2)."""
    spec = load_spec(path)
    settings = settings or load_settings(spec.source)
    return evaluate(spec, gather_evidence(spec, settings), settings.secret_patterns)


def spec_releasing(model: str, settings: Settings, recorded: str | None) -> Pipeline | None:
    """The spec that releases ``model``: the one its policy was recorded from, else the first
    under ``pipelines/`` whose ``model.name`` is ``model``."""
    from toolkit.commands.monitor import releasing_spec

    if recorded:
        path = Path(recorded)
        path = path if path.is_absolute() else settings.root / path
        try:
            spec = load_spec(path) if path.is_file() else None
        except ToolkitError:
            spec = None  # a broken spec is `toolkit check`'s to report; look further
        if spec is not None and spec.model is not None and spec.model.name == model:
            return spec
    return releasing_spec(settings.root, model)


def promotion_gaps(
    registry: Any, model: str, version: str, pipeline: str | None = None
) -> tuple[ReadinessReport | None, list[str]]:
    """``(report, required controls missing)`` for promoting ``model`` v``version``; no report
    when no spec releasing ``model`` can be found (nothing to score)."""
    settings = load_settings()
    if pipeline:
        spec: Pipeline | None = load_spec(Path(pipeline))
    else:
        record = registry.policy_record(model)
        spec = spec_releasing(model, settings, record.source if record else None)
    if spec is None or spec.model is None or spec.model.name != model:
        # Nothing to score against: said aloud, since the readiness level lives in the spec.
        print(f"note: no loadable spec releases {model}: readiness not checked", file=sys.stderr)
        return None, []
    evidence = gather_evidence(spec, settings, registry=registry, version=version)
    report = evaluate(spec, evidence, settings.secret_patterns)
    gaps = [f"{c.name} ({c.detail})" for c in report.missing_required]
    return report, gaps
