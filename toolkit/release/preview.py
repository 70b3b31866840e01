"""Gate preview: would these metrics pass the pipeline's release gates, against today's champion?

For a data scientist in a notebook, before running the pipeline::

    from toolkit.preview import gate_preview
    gate_preview({"roc_auc": 0.97, "recall": 0.93}, pipeline="../pipelines/train.yaml")

shows one row per gate of the spec: the metric's value, the threshold it is compared with
(``champion.recall - 0.02`` resolved against the current champion's metrics), and whether it
would pass. Without metrics, the ones this kernel recorded with :mod:`toolkit.step` are used.
The ``contracts`` gate depends on the run's data, so it is shown as "checked at run time" unless
``contracts_ok`` is given. Nothing is written anywhere: the champion is read from the registry
only if the project's tracking store exists (MLflow is imported then, ~1 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from toolkit.core.errors import SpecError, ToolkitError, did_you_mean
from toolkit.core.settings import Settings, find_root, load_settings
from toolkit.gates.evaluation import GateResult, evaluate_gate, parse_checks
from toolkit.specs.load import discover_specs, load_spec
from toolkit.specs.models import Pipeline

Status = Literal["pass", "fail", "error", "missing", "at run time"]
_AUTO: Any = object()  # "look the champion up in the registry"


@dataclass(frozen=True)
class PreviewRow:
    """One gate: its evaluation and the preview's verdict on it."""

    result: GateResult
    status: Status

    def to_dict(self) -> dict[str, Any]:
        return {**self.result.to_dict(), "status": self.status}


@dataclass(frozen=True)
class GatePreview:
    """What the release gates of ``pipeline`` would say about ``metrics`` right now."""

    pipeline: str
    spec_path: Path
    metrics: dict[str, float]
    rows: tuple[PreviewRow, ...]
    model: str | None = None
    champion_version: str | None = None
    champion: dict[str, float] | None = None
    champion_note: str = ""

    @property
    def passed(self) -> bool:
        """True when no gate fails, errs or lacks its metric (run-time gates not counted)."""
        return all(r.status in ("pass", "at run time") for r in self.rows)

    @property
    def failed(self) -> tuple[PreviewRow, ...]:
        return tuple(r for r in self.rows if r.status not in ("pass", "at run time"))

    def verdict(self) -> str:
        if not self.rows:
            return f"pipeline {self.pipeline!r} has no release gates"
        bad = len(self.failed)
        later = sum(r.status == "at run time" for r in self.rows)
        text = "all gates would pass" if not bad else f"{bad} of {len(self.rows)} gates would fail"
        return text + (f" ({later} checked at run time)" if later else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "spec": str(self.spec_path),
            "model": self.model,
            "champion_version": self.champion_version,
            "champion": self.champion,
            "champion_note": self.champion_note,
            "passed": self.passed,
            "gates": [r.to_dict() for r in self.rows],
        }

    def __repr__(self) -> str:
        lines = [f"gate preview of {self.pipeline!r}: {self.champion_note}"]
        for row in self.rows:
            r = row.result
            detail = ""
            if r.value is not None and r.threshold is not None:
                detail = f"  ({_fmt(r.value)} {r.op} {_fmt(r.threshold)})"
            note = f"  [{r.note}]" if r.note else ""
            lines.append(f"{row.status.upper():<11} {r.expression}{detail}{note}")
        lines.append(self.verdict())
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from toolkit.reports.gate_pages import render_gate_preview  # lazy: Jinja2

        return render_gate_preview(self)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


# ----------------------------------------------------------------------------- building


def _resolve_spec(pipeline: str | Path | None) -> Path:
    """A spec path, relative to the cwd or the project root, or a pipeline name."""
    root = find_root()
    specs = discover_specs(root / "pipelines")
    if pipeline is None:
        gated = [p for p in specs if _has_gates(p)]
        if len(gated) == 1:
            return gated[0]
        raise SpecError(
            "say which pipeline's gates to preview: gate_preview(metrics, pipeline=...)",
            hint="pipelines here: " + (", ".join(p.stem for p in specs) or "none"),
        )
    candidate = Path(pipeline).expanduser()
    for path in (candidate, root / candidate, root / "pipelines" / f"{candidate}.yaml"):
        if path.is_file():
            return path.resolve()
    raise SpecError(
        f"no pipeline {str(pipeline)!r} (looked in {Path.cwd()} and {root})",
        hint=did_you_mean(candidate.stem, [p.stem for p in specs])
        or "pass a spec path, e.g. '../pipelines/train.yaml', or a name such as 'train'",
    )


def _has_gates(path: Path) -> bool:
    try:
        return load_spec(path).gates is not None
    except ToolkitError:
        return False


def _champion(spec: Pipeline, settings: Settings) -> tuple[str | None, dict[str, float], str]:
    """``(version, metrics, note)`` of the current champion of the spec's model."""
    if spec.model is None:
        return None, {}, "this pipeline releases no model: champion gates have nothing to compare"
    name = spec.model.name
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None, {}, f"no champion of {name!r} yet (no tracking store): champion gates pass"
    from toolkit.release.registry import Registry

    try:
        version, metrics = Registry(uri).champion_metrics(name)
    except ToolkitError as exc:
        return None, {}, f"could not read the champion of {name!r}: {exc.message}"
    if version is None:
        return None, {}, f"no champion of {name!r} yet: champion gates pass on a first release"
    return version, metrics, f"against champion {name!r} v{version}"


def gate_preview(
    metrics: Mapping[str, float] | None = None,
    pipeline: str | Path | None = None,
    *,
    champion: Mapping[str, float] | None = _AUTO,
    champion_version: str | None = None,
    contracts_ok: bool | None = None,
) -> GatePreview:
    """Preview the release gates of ``pipeline`` for ``metrics``.

    Args:
        metrics: the metrics the gates step would log; default: those recorded in this kernel
            with ``toolkit.step.log_metric(s)``.
        pipeline: a spec path (relative to the cwd or the project root) or a pipeline name;
            default: the project's only pipeline with gates.
        champion: the champion's metrics to compare with; default: read from the registry.
            ``None`` previews a first release (no champion).
        champion_version: a label for ``champion`` when given explicitly.
        contracts_ok: the outcome of the run's contracts, for the ``contracts`` gate; default:
            that gate is shown as checked at run time.

    Raises:
        SpecError: the pipeline is unknown or its gates do not parse.
    """
    if metrics is None:
        from toolkit import step

        metrics = step.recorded().metrics
    values = {str(k): float(v) for k, v in metrics.items()}
    spec = load_spec(_resolve_spec(pipeline))
    settings = load_settings(spec.source)
    if champion is _AUTO:
        version, champ, note = _champion(spec, settings)
    elif champion is None:
        version, champ, note = None, {}, "previewing a first release: no champion to compare"
    else:
        version, champ = champion_version, {str(k): float(v) for k, v in champion.items()}
        note = f"against the given champion{f' v{version}' if version else ''}"
    rows: list[PreviewRow] = []
    checks = spec.gates.checks if spec.gates else []
    for gate in parse_checks(checks):
        if gate.kind == "contracts" and contracts_ok is None:
            result = GateResult(
                name=gate.name,
                expression=gate.text,
                kind=gate.kind,
                passed=True,
                note="depends on the run's data contracts",
            )
            rows.append(PreviewRow(result, "at run time"))
            continue
        if gate.metric is not None and gate.metric not in values:
            result = GateResult(
                name=gate.name,
                expression=gate.text,
                kind=gate.kind,
                op=gate.op,
                passed=False,
                note=f"no {gate.metric!r} among the metrics given "
                f"({', '.join(sorted(values)) or 'none'})",
                error=True,
            )
            rows.append(PreviewRow(result, "missing"))
            continue
        result = evaluate_gate(
            gate,
            values,
            champ if version is not None or champ else None,
            contracts_ok,
            champion_version=version,
        )
        if result.error:
            status: Status = "error"
        else:
            status = "pass" if result.passed else "fail"
        if result.note == "no champion yet":
            result = GateResult(**{**result.to_dict(), "note": "no champion yet: passes"})
        rows.append(PreviewRow(result, status))
    return GatePreview(
        pipeline=spec.name,
        spec_path=spec.source,
        metrics=values,
        rows=tuple(rows),
        model=spec.model.name if spec.model else None,
        champion_version=version,
        champion=champ or None,
        champion_note=note,
    )


__all__ = ["GatePreview", "PreviewRow", "gate_preview"]
