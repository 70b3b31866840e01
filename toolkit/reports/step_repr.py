"""``step.recorded()`` in a notebook: a table of metrics (latest, count, range, trend), then
the params and outputs the notebook recorded (``step_repr.html.j2``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from toolkit.reports.charts import trend_line
from toolkit.reports.jinja import render


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def _range(values: Sequence[float]) -> str:
    return "" if len(values) < 2 else f"{_fmt(min(values))} to {_fmt(max(values))}"


def render_recorded(events: Sequence[Mapping[str, Any]], *, in_pipeline: bool) -> str:
    """The HTML repr of the events a kernel recorded (``toolkit.step.Recorded.events``)."""
    series: dict[str, list[float]] = {}
    for e in events:
        if e["kind"] == "metric":
            series.setdefault(e["key"], []).append(e["value"])
    return render(
        "step_repr.html.j2",
        mode="pipeline run" if in_pipeline else "interactive (kept in memory)",
        events=events,
        series=series,
        params=[e for e in events if e["kind"] == "param"],
        outputs=[e for e in events if e["kind"] == "output"],
        fmt=_fmt,
        value_range=_range,
        trend=trend_line,
    )
