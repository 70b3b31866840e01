"""The drift report: one self-contained HTML page per monitored batch, pictures first.

Rendered from a :class:`toolkit.monitor.core.MonitorResult` (read by attribute, never imported:
this package sits below the results it renders) through ``drift_report.html.j2``. No
JavaScript, no CDN, no plotting library: every chart is inline SVG from
:func:`toolkit.reports.charts.histogram_chart`, so the page opens anywhere (an MLflow artifact
view, an email attachment, an air-gapped laptop). Reference and current are told apart by
colour *and* form, in the Okabe-Ito palette, which stays distinct for the common colour-vision
deficiencies.
"""

from __future__ import annotations

import math
from typing import Any

from toolkit.reports.charts import histogram_chart
from toolkit.reports.jinja import render

#: Status -> (background, text) of its badge and tile.
STATUS = {"ok": ("#009E73", "#fff"), "warn": ("#E69F00", "#000"), "alert": ("#D55E00", "#fff")}
DASH = "\u2013"  # shown for a statistic that was not computed
_ORDER = {"alert": 0, "warn": 1, "ok": 2}


def num(value: float | None, spec: str = ".3f") -> str:
    """A statistic as text: ``spec`` digits, ``p`` for a p-value, a dash when not computed."""
    if value is None or not math.isfinite(value):
        return DASH
    if spec == "p":
        return "<1e-15" if value < 1e-15 else format(value, ".2g")
    return format(value, spec)


def _tiles(result: Any) -> list[tuple[str, str, str]]:
    """``(label, value, level)`` of the rows, decision-path rates and latency tiles."""
    by_metric = {b.metric: b.level for b in result.breaches}
    items: list[tuple[str, str, str]] = [("rows", f"{result.rows:,}", "ok")]
    for path in ("model", "fallback", "rejected"):
        if path in result.rates:
            level = by_metric.get(f"rate.{path}", "ok")
            items.append((f"{path} rate", f"{result.rates[path]:.2%}", level))
    for key, value in result.latency.items():
        label = "latency " + key.removesuffix("_ms").replace("_", " ")
        text = f"{value:,.3f} ms" if value < 1 else f"{value:,.1f} ms"
        items.append((label, text, by_metric.get(f"latency.{key}", "ok")))
    return items


def _figures(result: Any, role: str) -> list[dict[str, Any]]:
    drifts = {(d.role, d.name): d for d in (*result.features, *result.predictions)}
    return [
        {"h": h, "drift": drifts.get((role, h.name)), "svg": histogram_chart(h)}
        for h in result.charts
        if h.role == role
    ]


def render_drift_report(result: Any) -> str:
    """The whole page for one batch: status, breaches, rates, charts, the table, the method."""
    columns = sorted(
        [*result.predictions, *result.features], key=lambda d: (_ORDER[d.status], -d.psi)
    )
    link = result.run_link
    return render(
        "drift_report.html.j2",
        r=result,
        t=result.thresholds,
        title=f"Drift report · {result.model} v{result.version} · {result.batch_name}",
        run_link=link,
        link_is_safe=bool(link) and link.startswith(("http://", "https://")),
        tiles=_tiles(result),
        predictions=_figures(result, "prediction"),
        features=_figures(result, "feature"),
        columns=columns,
        status_colours=STATUS,
        num=num,
        dash=DASH,
    )
