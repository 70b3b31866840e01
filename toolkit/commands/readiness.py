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
from toolkit.readiness.controls import Evidence, ReadinessReport, evaluate, required_controls
from toolkit.readiness.record import TAG_READINESS, ReadinessRecord, ReadinessUnknown
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
    return evidence_for(
        spec.model.name if spec.model else None, settings, registry=registry, version=version
    )


def evidence_for(
    model: str | None, settings: Settings, *, registry: Any = None, version: str | None = None
) -> Evidence:
    """:func:`gather_evidence` for ``model`` by name: a version whose spec is gone has one."""
    lock = lock_info(settings.root)
    if model is None or not _store_exists(settings.tracking_uri):
        return Evidence(lock)
    registry = registry or _registry(settings)
    version = version or latest_version(registry, model)
    if version is None:
        return Evidence(lock)
    info = registry.get_version(model, version)
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


def recorded_spec(model: str, settings: Settings, recorded: str) -> Pipeline | None:
    """The spec at ``recorded`` (relative to the project), if it loads and releases ``model``."""
    path = Path(recorded)
    path = path if path.is_absolute() else settings.root / path
    try:
        spec = load_spec(path) if path.is_file() else None
    except ToolkitError:
        return None  # a broken spec is `toolkit check`'s to report
    return (
        spec if spec is not None and spec.model is not None and spec.model.name == model else None
    )


def spec_releasing(model: str, settings: Settings, recorded: str | None) -> Pipeline | None:
    """The spec that releases ``model``: the one it was recorded from when there is one (and
    only that one: another spec releasing the same model may ask less of it), else the first
    under ``pipelines/`` whose ``model.name`` is ``model``."""
    from toolkit.commands.monitor import releasing_spec

    if recorded:
        return recorded_spec(model, settings, recorded)
    return releasing_spec(settings.root, model)


def version_record(info: Any) -> ReadinessRecord | None:
    """The readiness recorded on a version at registration; None for a version registered
    before it was recorded, or by hand. A damaged one raises ValueError: it never means
    "nothing required"."""
    raw = info.tags.get(TAG_READINESS)
    return None if raw is None else ReadinessRecord.from_json(raw)


HINT = (
    "pass --pipeline SPEC naming the spec that releases it, or override with --force --reason "
    "TEXT (recorded in the release history)"
)


def promotion_gaps(
    registry: Any, model: str, version: str, pipeline: str | None = None, *, force: bool = False
) -> tuple[ReadinessReport | None, list[str], str]:
    """``(report, required controls missing, where the readiness was read)`` for promoting
    ``model`` v``version``.

    ``pipeline`` (``--pipeline``) is scored as given, held like any spec to the controls the
    version's record (written at registration) required: naming a laxer spec lowers nothing.
    Otherwise the spec the version was registered from is scored, held to that record; when that
    spec no longer loads, the record stands in for it (controls whose evidence comes later are
    scored now). No spec and no record, or a damaged record: refused (:class:`ReadinessUnknown`),
    or with ``force`` one gap saying so, for the history.
    """
    settings = load_settings()
    try:
        record = version_record(registry.get_version(model, version))
    except ValueError as exc:
        why = f"the readiness recorded on it at registration ({TAG_READINESS}) is unreadable: {exc}"
        if force:
            return None, [f"unknown ({why})"], "an unreadable record"
        raise ReadinessUnknown(f"cannot promote {model!r} v{version}: {why}", hint=HINT) from None
    floor = record.required if record else ()
    if pipeline:
        given = load_spec(Path(pipeline))
        if given.model is not None and given.model.name == model:
            return _scored(given, settings, registry, version, floor, _held(pipeline, given, floor))
        # Not this model's spec: it says nothing about this version, so it cannot stand in.
        print(f"note: {pipeline} does not release {model}; readiness read as without it",
              file=sys.stderr)  # fmt: skip
    policy = registry.policy_record(model)
    recorded = record.spec if record else (policy.source if policy else None)
    spec = spec_releasing(model, settings, recorded)
    if spec is not None and spec.model is not None and spec.model.name == model:
        return _scored(
            spec, settings, registry, version, floor, _held(_label(spec, settings), spec, floor)
        )
    if record is not None:
        evidence = evidence_for(model, settings, registry=registry, version=version)
        report = record.report(evidence)
        where = (
            f"the record made at registration from {record.spec} (sha256 "
            f"{record.spec_sha256[:12]}), since that spec no longer loads here"
        )
        print(f"note: readiness of {model} v{version} read from {where}", file=sys.stderr)
        return report, [f"{c.name} ({c.detail})" for c in report.missing_required], where
    gone = (
        f"{recorded} no longer loads here" if recorded else "no spec under pipelines/ releases it"
    )
    message = (
        f"cannot promote {model!r} v{version}: its readiness cannot be read ({gone}, and the "
        "version has no readiness recorded at registration)"
    )
    if force:
        return None, [f"unknown ({gone}; no readiness recorded at registration)"], "nowhere"
    raise ReadinessUnknown(message, hint=HINT)


def _held(label: str, spec: Pipeline, floor: Any) -> str:
    """Where the readiness was read: the spec, and what the record holds it to beyond it."""
    raised = sorted(set(floor) - required_controls(spec))
    return f"the spec {label}" + (
        f", held to what it required at registration ({', '.join(raised)})" if raised else ""
    )


def _label(spec: Pipeline, settings: Settings) -> str:
    try:
        return spec.source.resolve().relative_to(settings.root.resolve()).as_posix()
    except ValueError:
        return str(spec.source)


def _scored(
    spec: Pipeline, settings: Settings, registry: Any, version: str, floor: Any, where: str
) -> tuple[ReadinessReport | None, list[str], str]:
    evidence = gather_evidence(spec, settings, registry=registry, version=version)
    report = evaluate(spec, evidence, settings.secret_patterns, floor)
    return report, [f"{c.name} ({c.detail})" for c in report.missing_required], where
