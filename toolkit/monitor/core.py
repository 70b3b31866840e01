"""Monitoring one batch against the reference profile: drift, rates, latency, breaches, report.

:func:`monitor_batch` is pure computation: it never logs, never fires hooks, never raises on a
breach, and renders nothing (the page is drawn from the result's ``charts`` on demand). The
caller logs ``result.metrics``, writes ``result.write_html(...)``, calls :func:`fire_alerts`,
then :meth:`MonitorResult.raise_for_alert` (exit 5), so a broken hook cannot hide an alert.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from toolkit.core.errors import ContractError, MonitorAlert, UsageError, did_you_mean
from toolkit.core.fsutil import atomic_write_text
from toolkit.monitor.alerts import AlertHook, HookOutcome, deliver, jsonable
from toolkit.monitor.bins import Histogram, histogram
from toolkit.monitor.drift import (
    Breach,
    FeatureDrift,
    MonitorThresholds,
    Status,
    assess,
    check,
    compare,
    metric_key,
    worst,
)
from toolkit.monitor.profile import ReferenceProfile, numeric_values

if TYPE_CHECKING:
    import pandas as pd

PATH_COLUMN, LATENCY_COLUMN = "path", "latency_ms"
PATHS = ("model", "fallback", "rejected")  # the decision record's path values
# The guard's decision-record columns besides the predictions: monitored as rates and latency,
# or bookkeeping; never reported as "columns missing from the reference".
OUTPUT_COLUMNS = (
    PATH_COLUMN, LATENCY_COLUMN, "reason", "model", "version", "confidence", "input_hash",
    "top_features", "notes", "rule",
)  # fmt: skip
Score = Callable[["pd.DataFrame"], "pd.DataFrame"]
_LEVEL = {"ok": 0, "warn": 1, "alert": 2}
# Where the model outputs came from (MonitorResult.source).
SCORED, RAW_SCORED, UNSCORED = "scoring output", "raw batch, scored by the model", "raw batch"


@dataclass(frozen=True)
class MonitorResult:
    """Everything one monitoring pass found; ``metrics`` are flat keys ready to log."""

    model: str
    version: str
    batch_name: str
    batch_time: str  # ISO 8601, UTC
    run_link: str | None
    rows: int
    source: str  # how the predictions were obtained
    features: tuple[FeatureDrift, ...]
    predictions: tuple[FeatureDrift, ...]
    rates: Mapping[str, float]  # share of rows per decision path ("model", "fallback"...)
    latency: Mapping[str, float]  # "p50_ms", "p95_ms", "p99_ms"
    breaches: tuple[Breach, ...]  # alerts first
    notes: tuple[str, ...]
    metrics: Mapping[str, float]
    thresholds: MonitorThresholds
    charts: tuple[Histogram, ...] = field(default=(), repr=False)  # what the report pictures

    @property
    def status(self) -> Status:
        return worst(b.level for b in self.breaches)

    @property
    def alert(self) -> bool:
        """True when at least one breach is at alert level: hooks fire, the CLI exits 5."""
        return self.status == "alert"

    @property
    def batch_epoch_s(self) -> int:
        """The batch time as whole seconds since the epoch (an MLflow ``step``)."""
        return int(dt.datetime.fromisoformat(self.batch_time).timestamp())

    def payload(self) -> dict[str, Any]:
        """The alert payload sent to hooks: who, what, how bad, and where to look."""
        alerts = [b for b in self.breaches if b.level == "alert"]
        pool = alerts or list(self.breaches)
        top = max(
            pool, key=lambda b: b.value / b.threshold if b.threshold else np.inf, default=None
        )
        head = f"{self.status.upper()} {self.model} v{self.version}, batch {self.batch_name}"
        text = "; ".join(b.message for b in pool[:5]) or "no threshold breached"
        return jsonable({
            "source": "toolkit.monitor",
            "status": self.status,
            "model": self.model,
            "version": self.version,
            "batch": self.batch_name,
            "batch_time": self.batch_time,
            "rows": self.rows,
            "metric": top.metric if top else None,
            "value": top.value if top else None,
            "threshold": top.threshold if top else None,
            "alerts": len(alerts),
            "warnings": len(self.breaches) - len(alerts),
            "run_link": self.run_link,
            "text": f"{head}: {text}" + (f" ({self.run_link})" if self.run_link else ""),
            "breaches": [b.to_dict() for b in self.breaches[:50]],
        })  # fmt: skip

    @property
    def html(self) -> str:
        """The drift report of this batch: one self-contained HTML page."""
        from toolkit.reports.drift_page import render_drift_report  # lazy: Jinja2

        return render_drift_report(self)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the report's pictures, as strict JSON-ready data."""
        data = {k: v for k, v in asdict(self).items() if k not in ("charts", "thresholds")}
        return jsonable({**data, "status": self.status, "thresholds": self.thresholds.to_dict()})

    def summary_lines(self) -> list[str]:
        """A short text summary: the status line, then one line per breach."""
        counts = {
            level: sum(b.level == level for b in self.breaches) for level in ("alert", "warn")
        }
        lines = [
            f"{self.model} v{self.version}, batch {self.batch_name}: {self.status.upper()} "
            f"({counts['alert']} alert(s), {counts['warn']} warning(s), {self.rows:,} rows)"
        ]
        lines += [f"  {b.level.upper():5} {b.message}" for b in self.breaches]
        return lines + [f"  note  {n}" for n in self.notes]

    def write_html(self, path: Path | str) -> Path:
        """Write the drift report atomically; returns the path."""
        path = Path(path)
        atomic_write_text(path, self.html)
        return path

    def raise_for_alert(self, *, report: str | None = None) -> None:
        """Raise :class:`~toolkit.core.errors.MonitorAlert` (exit 5) when the batch alerts."""
        if not self.alert:
            return
        alerts = [b.message for b in self.breaches if b.level == "alert"]
        more = f" (+{len(alerts) - 3} more)" if len(alerts) > 3 else ""
        raise MonitorAlert(
            f"{self.model} v{self.version}, batch {self.batch_name}: {len(alerts)} alert(s): "
            + "; ".join(alerts[:3])
            + more,
            hint=f"see the drift report: {report}" if report else None,
        )


def fire_alerts(result: MonitorResult, hooks: Sequence[AlertHook]) -> list[HookOutcome]:
    """Send the alert payload to every hook when the batch alerts; [] otherwise. Never raises."""
    if not result.alert or not hooks:
        return []
    return deliver(result.payload(), hooks)


def _check_batch(batch: Any, reference: ReferenceProfile, t: MonitorThresholds, name: str) -> None:
    import pandas as pd

    if not isinstance(batch, pd.DataFrame):
        raise UsageError(f"batch {name!r} must be a pandas DataFrame, not {type(batch).__name__}")
    if len(batch) == 0:
        columns = ", ".join(map(str, batch.columns[:10])) or "none"
        raise ContractError(f"batch {name!r} is empty: no rows to monitor (columns: {columns})")
    names = [str(c) for c in batch.columns]
    if len(set(names)) != len(names):
        twice = sorted({c for c in names if names.count(c) > 1})
        raise ContractError(f"batch {name!r} has duplicate column(s): {', '.join(twice)}")
    present = set(names)
    missing = [c for c in reference.features if c not in t.ignore and c not in present]
    if missing:
        hints = [h for c in missing[:5] if (h := did_you_mean(c, present))]
        raise ContractError(
            f"batch {name!r} is missing {len(missing)} column(s) of the reference profile: "
            + ", ".join(missing),
            hint="; ".join(hints)
            or "the batch must carry the model's input columns, "
            "as at training (or list the column under the monitoring thresholds' 'ignore')",
        )


def _scored(
    batch: pd.DataFrame, reference: ReferenceProfile, score: Score | None
) -> tuple[pd.DataFrame, str, list[str]]:
    """The batch with model outputs: as given, or scored by ``score`` when it is raw input."""
    import pandas as pd

    present = {str(c) for c in batch.columns}
    if present & ({*reference.predictions, PATH_COLUMN}):
        return batch, SCORED, []
    if score is None:
        note = "raw batch and no scoring function: prediction drift and decision rates skipped"
        return batch, UNSCORED, [note]
    scored = score(batch)
    if not isinstance(scored, pd.DataFrame) or len(scored) != len(batch):
        size = len(scored) if hasattr(scored, "__len__") else type(scored).__name__
        raise ContractError(f"scoring returned {size} rows for a batch of {len(batch)}")
    added = [c for c in scored.columns if str(c) not in present]
    frame = pd.concat([batch.reset_index(drop=True), scored[added].reset_index(drop=True)], axis=1)
    return frame, RAW_SCORED, []


def _rates(frame: pd.DataFrame, rows: int, notes: list[str]) -> tuple[dict[str, float], Any]:
    """Share of rows per decision path, and the mask of rows that were not rejected."""
    if PATH_COLUMN not in frame.columns:
        return {}, None
    paths = frame[PATH_COLUMN].astype("string").str.strip().str.lower()
    counts = paths.value_counts(dropna=False)
    rates = {p: int(counts.get(p, 0)) / rows for p in PATHS}
    other = rows - sum(int(counts.get(p, 0)) for p in PATHS)
    if other:
        rates["other"] = other / rows
        seen = sorted({str(v) for v in counts.index if v not in PATHS})[:5]
        notes.append(f"{other} row(s) with an unknown path ({', '.join(seen)}); expected {PATHS}")
    return rates, (paths != "rejected").fillna(True).to_numpy(dtype=bool)


def _latency(frame: pd.DataFrame, rows: int, notes: list[str]) -> dict[str, float]:
    """p50/p95/p99 of per-row latencies, or the duration of the single call that scored them.

    The guard stamps every row of one ``predict`` call with that call's duration, so a batch
    scored in one call has one latency value: percentiles of it would compare a whole batch's
    time with a per-request objective. That case is reported as ``call_ms`` and not checked.
    """
    if LATENCY_COLUMN not in frame.columns:
        return {}
    values, _ = numeric_values(frame[LATENCY_COLUMN])
    values = values[np.isfinite(values)]
    if not len(values):
        notes.append(f"column {LATENCY_COLUMN!r} has no numeric values: latency not measured")
        return {}
    if rows > 1 and values.min() == values.max():
        notes.append(
            f"{LATENCY_COLUMN!r} is one value for all {rows:,} rows (one scoring call): reported "
            "as the call's duration; the per-request latency thresholds do not apply"
        )
        return {"call_ms": float(values[0]), "per_row_ms": float(values[0]) / rows}
    p50, p95, p99 = np.percentile(values, [50, 95, 99]).tolist()
    return {"p50_ms": p50, "p95_ms": p95, "p99_ms": p99}


def _rate_breaches(
    rates: Mapping[str, float], latency: Mapping[str, float], t: MonitorThresholds
) -> list[Breach]:
    checks = [
        ("rate.fallback", "fallback rate", rates.get("fallback"), t.fallback_rate_warn, t.fallback_rate_alert, "{:.2%}"),
        ("rate.rejected", "rejected-row rate", rates.get("rejected"), t.rejected_rate_warn, t.rejected_rate_alert, "{:.2%}"),
        ("latency.p95_ms", "latency p95", latency.get("p95_ms"), t.latency_p95_ms_warn, t.latency_p95_ms_alert, "{:,.0f} ms"),
    ]  # fmt: skip
    found = []
    for key, label, value, warn, alert, fmt in checks:
        if value is not None and (hit := check(value, warn, alert)):
            message = f"{label} {fmt.format(value)} >= {fmt.format(hit[1])}"
            found.append(Breach(key, value, hit[1], hit[0], message))
    return found


def _metrics(result: MonitorResult) -> dict[str, float]:
    m: dict[str, float] = {"batch.rows": result.rows, "monitor.status": _LEVEL[result.status]}
    m["monitor.alerts"] = sum(b.level == "alert" for b in result.breaches)
    m["monitor.warnings"] = sum(b.level == "warn" for b in result.breaches)
    for d in (*result.features, *result.predictions):
        prefix = "drift" if d.role == "feature" else "prediction_drift"
        stats: dict[str, float | None] = {"psi": d.psi, "missing_rate": d.missing_rate}
        if d.test == "ks":
            stats |= {"ks": d.statistic, "ks_pvalue": d.pvalue}
        elif d.test == "chi2":
            stats |= {"chi2": d.statistic, "chi2_pvalue": d.pvalue, "tvd": d.effect}
        m |= {metric_key(prefix, stat, d.name): v for stat, v in stats.items() if v is not None}
    if result.features:
        m["drift.psi_max"] = max(d.psi for d in result.features)
        m["drift.columns_alert"] = sum(d.status == "alert" for d in result.features)
        m["drift.columns_warn"] = sum(d.status == "warn" for d in result.features)
    m |= {f"rate.{p}": v for p, v in result.rates.items()}
    m |= {f"latency.{k}": v for k, v in result.latency.items()}
    return {k: float(v) for k, v in m.items() if np.isfinite(v)}


def _predictions(
    reference: ReferenceProfile, outputs: pd.DataFrame, t: MonitorThresholds, notes: list[str]
) -> list[FeatureDrift]:
    """Drift of the model's outputs, over rows that were not rejected and have a value."""
    found = []
    for name, profile in reference.predictions.items():
        if name not in outputs.columns:
            notes.append(f"prediction column {name!r} is not in the batch: drift not checked")
        elif (kept := outputs[name].dropna()).empty:
            notes.append(f"prediction column {name!r} has no values in accepted rows")
        else:
            found.append(assess(compare(profile, kept, role="prediction"), t))
    return found


def _column_notes(
    reference: ReferenceProfile,
    features: list[FeatureDrift],
    columns: list[str],
    t: MonitorThresholds,
) -> list[str]:
    """What a reader of the report should know about the columns that were (not) compared."""
    notes = [
        f"column {d.name!r}: {d.unparsable} value(s) are not numbers (counted as missing)"
        for d in features
        if d.unparsable
    ]
    if t.ignore:
        notes.append("ignored by the thresholds: " + ", ".join(t.ignore))
    known = {*reference.features, *reference.predictions, *reference.skipped, *OUTPUT_COLUMNS}
    if extra := [c for c in columns if c not in known]:
        more = " ..." if len(extra) > 10 else ""
        notes.append(f"not in the reference profile, not compared: {', '.join(extra[:10])}{more}")
    return notes


def monitor_batch(
    batch: pd.DataFrame,
    reference: ReferenceProfile,
    *,
    thresholds: MonitorThresholds | Mapping[str, Any] | None = None,
    model: str,
    version: str,
    batch_name: str,
    score: Score | None = None,
    run_link: str | None = None,
    batch_time: dt.datetime | None = None,
    charts: int = 6,
) -> MonitorResult:
    """Compare one batch with the reference profile; never fires hooks nor raises on a breach.

    Args:
        batch: a scoring output (input columns plus ``prediction``, ``probability``, ``path``,
            ``latency_ms``...) or a raw batch of input columns, which ``score`` turns into one.
        reference: the profile captured at training time (:func:`build_profile`).
        thresholds: :class:`MonitorThresholds`, or the plain dict of the spec's section.
        model, version, batch_name, run_link: named in the report and the alert payload.
        score: called with a raw batch; returns the scoring output (or just its new columns).
        batch_time: when the batch was produced (default: now); the report and MLflow step.
        charts: how many of the most drifted features get a histogram in the report.

    Raises:
        ContractError: the batch is empty or lacks columns of the reference (they are named).
    """
    t = (
        thresholds
        if isinstance(thresholds, MonitorThresholds)
        else MonitorThresholds.from_dict(thresholds)
    )
    _check_batch(batch, reference, t, batch_name)
    frame, source, notes = _scored(batch, reference, score)
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)  # a new frame: no mutation
    rows = len(frame)
    features = [
        assess(compare(p, frame[name], role="feature"), t)
        for name, p in reference.features.items()
        if name not in t.ignore
    ]
    rates, accepted = _rates(frame, rows, notes)
    outputs = frame if accepted is None else frame.loc[accepted]
    predictions = [] if source == UNSCORED else _predictions(reference, outputs, t, notes)
    notes += _column_notes(reference, features, [str(c) for c in batch.columns], t)
    latency = _latency(frame, rows, notes)
    breaches = [b for d in (*predictions, *features) for b in d.breaches]
    breaches += _rate_breaches(rates, latency, t)
    breaches.sort(key=lambda b: -_LEVEL[b.level])  # stable: alerts first, order kept otherwise
    when = (batch_time or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    result = MonitorResult(
        model=model,
        version=str(version),
        batch_name=batch_name,
        batch_time=when.isoformat(timespec="seconds"),
        run_link=run_link,
        rows=rows,
        source=source,
        features=tuple(features),
        predictions=tuple(predictions),
        rates=rates,
        latency=latency,
        breaches=tuple(breaches),
        notes=tuple(notes),
        metrics={},
        thresholds=t,
    )
    result = replace(result, metrics=_metrics(result))
    order = sorted(features, key=lambda d: (-_LEVEL[d.status], -d.psi))[:charts]
    pictures = [
        histogram(reference.predictions[d.name], outputs[d.name].dropna(), role="prediction")
        for d in predictions[:4]
    ]
    pictures += [histogram(reference.features[d.name], frame[d.name]) for d in order]
    return replace(result, charts=tuple(pictures))
