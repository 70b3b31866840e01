"""The in-notebook API: record metrics, parameters and outputs for the runner.

Usage in a notebook::

    from toolkit import step
    step.log_metric("roc_auc", 0.97)
    step.log_metrics({"precision": 0.95, "recall": 0.93})

Under ``toolkit run`` each call appends one JSON line to the file named by the
``TOOLKIT_EVENTS_FILE`` environment variable, which the runner forwards to MLflow while the step
runs. Run by hand in JupyterLab, the calls keep the values in memory and :func:`recorded`
shows them, so the same notebook works in both places. This module imports only the standard
library: it must stay cheap to import inside every kernel.
"""

from __future__ import annotations

import html
import json
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EVENTS_ENV = "TOOLKIT_EVENTS_FILE"
_lock = threading.Lock()
_memory: list[dict[str, Any]] = []


def in_pipeline() -> bool:
    """True when this notebook runs as a step of ``toolkit run``."""
    return bool(os.environ.get(EVENTS_ENV))


def _emit(event: dict[str, Any]) -> None:
    event.setdefault("ts", int(time.time() * 1000))
    with _lock:
        _memory.append(event)
        target = os.environ.get(EVENTS_ENV)
        if target:
            # One short append per event, flushed at once, so the runner can tail the file.
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(event, default=str) + "\n")


def _number(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric {key!r} must be a number, got {value!r}") from None
    if math.isnan(number):
        raise ValueError(f"metric {key!r} is NaN; log a number or leave it out")
    return number


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Record one metric value; ``step`` orders values of the same key (epochs, batches)."""
    _emit({"kind": "metric", "key": key, "value": _number(key, value), "step": step})


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Record several metrics at once."""
    for key, value in metrics.items():
        log_metric(key, value, step)


def log_param(key: str, value: Any) -> None:
    """Record a value the notebook chose at run time (not one passed as a parameter)."""
    _emit({"kind": "param", "key": key, "value": value})


def log_output(name: str, path: str | os.PathLike[str]) -> None:
    """Record a file the notebook wrote beyond its declared outputs."""
    _emit({"kind": "output", "name": name, "path": str(Path(path).resolve())})


@dataclass(frozen=True)
class Recorded:
    """What this kernel has recorded so far; renders as a table in JupyterLab."""

    events: tuple[dict[str, Any], ...]

    @property
    def metrics(self) -> dict[str, float]:
        """The latest value of each metric."""
        return {e["key"]: e["value"] for e in self.events if e["kind"] == "metric"}

    def _repr_html_(self) -> str:
        """Metrics (latest value, count, range and a sparkline), then params and outputs."""
        mode = "pipeline run" if in_pipeline() else "interactive (kept in memory)"
        series: dict[str, list[float]] = {}
        for e in self.events:
            if e["kind"] == "metric":
                series.setdefault(e["key"], []).append(e["value"])
        params = [e for e in self.events if e["kind"] == "param"]
        outputs = [e for e in self.events if e["kind"] == "output"]
        counts = f"{len(series)} metric(s), {len(params)} param(s), {len(outputs)} output(s)"
        parts = [
            f"<div class='tk-step'><style>{_CSS}</style>"
            f"<div class='tk-head'><strong>toolkit.step</strong> &middot; {mode} &middot; "
            f"{counts}</div>"
        ]
        if not self.events:
            parts.append(
                "<p class='tk-dim'>nothing recorded yet: call <code>step.log_metric(key, "
                "value)</code></p>"
            )
        if series:
            rows = "".join(
                f"<tr data-metric='{html.escape(key, quote=True)}'>"
                f"<td><code>{html.escape(key)}</code></td><td class='tk-num'>{_fmt(vals[-1])}</td>"
                f"<td class='tk-num'>{len(vals)}</td>"
                f"<td class='tk-num'>{_range(vals)}</td><td>{_sparkline(vals)}</td></tr>"
                for key, vals in series.items()
            )
            parts.append(
                "<table><thead><tr><th>metric</th><th>latest</th><th>values</th><th>range</th>"
                f"<th>trend</th></tr></thead><tbody>{rows}</tbody></table>"
            )
        for title, items, field in (("param", params, "value"), ("output", outputs, "path")):
            if items:
                rows = "".join(
                    f"<tr><td><code>{html.escape(str(e.get('key') or e.get('name')))}</code></td>"
                    f"<td>{html.escape(str(e.get(field)))}</td></tr>"
                    for e in items
                )
                parts.append(
                    f"<table><thead><tr><th>{title}</th><th>{field}</th></tr></thead>"
                    f"<tbody>{rows}</tbody></table>"
                )
        return "".join(parts) + "</div>"

    def __repr__(self) -> str:
        lines = [
            f"{e['kind']:<7} {e.get('key') or e.get('name')} = {e.get('value', e.get('path'))}"
            for e in self.events
        ]
        return "\n".join(lines) or "(nothing recorded)"


_CSS = (
    ".tk-step{font-family:system-ui,sans-serif;font-size:13px;color:#1f2328}"
    ".tk-step .tk-head{margin:0 0 6px}.tk-step .tk-dim{color:#59636e;margin:0}"
    ".tk-step table{border-collapse:collapse;margin:0 0 8px}"
    ".tk-step th,.tk-step td{border:1px solid #d1d9e0;padding:2px 8px;text-align:left}"
    ".tk-step th{background:#f6f8fa}.tk-step td.tk-num{text-align:right;"
    "font-variant-numeric:tabular-nums}"
)


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _range(values: list[float]) -> str:
    return "" if len(values) < 2 else f"{_fmt(min(values))} to {_fmt(max(values))}"


def _sparkline(values: list[float], width: int = 80, height: int = 16) -> str:
    """An inline SVG line of the values in logging order (nothing for a single value)."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return ""
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    step_x = width / (len(finite) - 1)
    points = " ".join(
        f"{i * step_x:.1f},{height - 1 - (v - low) / span * (height - 2):.1f}"
        for i, v in enumerate(finite)
    )
    return (
        f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='trend'><polyline fill='none' stroke='#0969da' stroke-width='1.5' "
        f"points='{points}'/></svg>"
    )


def recorded() -> Recorded:
    """Everything recorded in this kernel, in order."""
    with _lock:
        return Recorded(tuple(_memory))
