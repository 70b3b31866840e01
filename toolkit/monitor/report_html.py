"""The drift report: one self-contained HTML page per batch, pictures first.

No JavaScript, no CDN, no plotting library: every chart is hand-written inline SVG, so the page
opens anywhere (an MLflow artifact view, an email attachment, an air-gapped laptop).
Reference and current are told apart by colour *and* form (filled bars vs an outlined step
line, or side-by-side bars with a hatch), using the Okabe-Ito palette, which stays distinct
for the common colour-vision deficiencies. Hovering a bar shows its exact shares.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

import numpy as np

from toolkit.monitor.drift import FeatureDrift, Role, categorical_counts
from toolkit.monitor.profile import (
    CategoricalProfile,
    FeatureProfile,
    finite_sorted,
    numeric_values,
)

if TYPE_CHECKING:
    import pandas as pd

    from toolkit.monitor.core import MonitorResult

REF, CUR = "#0072B2", "#D55E00"  # Okabe-Ito blue and vermillion
STATUS = {"ok": ("#009E73", "#fff"), "warn": ("#E69F00", "#000"), "alert": ("#D55E00", "#fff")}
#: Up to this many distinct reference values, a numeric column is drawn one bar per value.
DISCRETE_MAX_VALUES = 25
E = html.escape
DASH = "&#8211;"  # shown for a statistic that was not computed


@dataclass(frozen=True)
class Histogram:
    """Reference and current shares per bar, ready to draw."""

    name: str
    role: Role
    kind: Literal["continuous", "discrete", "categorical"]
    labels: tuple[str, ...]
    reference: tuple[float, ...]  # share of the reference per bar
    current: tuple[float, ...]
    edges: tuple[float, ...] = ()  # continuous: len(labels) + 1 bar boundaries
    note: str = ""


def histogram(
    profile: FeatureProfile, series: pd.Series, *, role: Role = "feature", bars: int = 30
) -> Histogram:
    """Display bins for one column; outer bars of a continuous histogram hold the tails."""
    if isinstance(profile, CategoricalProfile):
        cur = categorical_counts(profile, series).astype(np.float64)
        ref = np.array([*profile.category_counts, profile.other, profile.missing], np.float64)
        labels = [*profile.categories, "(other)", "(missing)"]
        ref, cur = ref / max(ref.sum(), 1), cur / max(cur.sum(), 1)
        # The biggest bars of either side, then everything else pooled: a readable chart.
        order = np.argsort(-np.maximum(ref[:-2], cur[:-2]), kind="stable")[:12]
        rest = np.setdiff1d(np.arange(len(ref) - 2), order)
        keep = [*order.tolist(), len(ref) - 2, len(ref) - 1]
        ref_k, cur_k = ref[keep], cur[keep]
        ref_k[-2] += ref[rest].sum()
        cur_k[-2] += cur[rest].sum()
        shown = [i for i in range(len(keep)) if i < len(order) or ref_k[i] + cur_k[i] > 0]
        return Histogram(
            profile.name,
            role,
            "categorical",
            tuple(labels[keep[i]] for i in shown),
            tuple(ref_k[shown].tolist()),
            tuple(cur_k[shown].tolist()),
        )
    values, _ = numeric_values(series)
    s = finite_sorted(values)
    grid = np.asarray(profile.grid, dtype=np.float64)
    ref_cdf = np.asarray(profile.grid_counts, dtype=np.float64) / max(profile.count, 1)
    m = max(len(s), 1)
    ref_missing = profile.missing / max(profile.count + profile.missing, 1)
    cur_missing = (len(values) - len(s)) / max(len(values), 1)
    if len(grid) <= DISCRETE_MAX_VALUES:
        # One bar per reference value, one for values the reference never had, one for missing;
        # shares of all rows here, so a column that went missing shows as such.
        ref = np.diff(np.concatenate(([0.0], ref_cdf))) * (1.0 - ref_missing)
        cur = (np.searchsorted(s, grid, "right") - np.searchsorted(s, grid, "left")) / m
        extra = 1.0 - cur.sum() if len(s) else 0.0
        labels = [_fmt(v) for v in grid]
        cur *= 1.0 - cur_missing
        for label, r, c in (
            ("(other)", 0.0, extra * (1.0 - cur_missing)),
            ("(missing)", ref_missing, cur_missing),
        ):
            if r + c > 1e-12:
                labels, ref, cur = [*labels, label], np.append(ref, r), np.append(cur, c)
        return Histogram(profile.name, role, "discrete", tuple(labels), tuple(ref), tuple(cur))
    ref_q = np.interp([0.005, 0.995], ref_cdf, grid)
    lo, hi = float(ref_q[0]), float(ref_q[1])
    if len(s):
        lo = min(lo, float(s[int(0.005 * (len(s) - 1))]))
        hi = max(hi, float(s[int(0.995 * (len(s) - 1))]))
    if np.all(grid == np.round(grid)):
        # Integer data: bars a whole number of units wide with edges between the integers, so no
        # bar holds more integers than its neighbour (aliasing that looks like drift), and the
        # reference CDF is read as the step function it is.
        width = float(max(1, math.ceil((hi - lo) / bars)))
        lo = math.floor(lo) - 0.5
        edges = lo + width * np.arange(math.ceil((hi + 0.5 - lo) / width) + 1)
        hi = float(edges[-1])
        at = np.searchsorted(grid, edges[1:-1], "right") - 1
        ref_inner = np.where(at >= 0, ref_cdf[np.maximum(at, 0)], 0.0)
    else:
        edges = np.linspace(lo, hi, bars + 1)
        # Linear interpolation of the reference CDF inside the sketch: exact at its points.
        ref_inner = np.interp(edges[1:-1], grid, ref_cdf, left=0.0, right=1.0)
    inner = edges[1:-1]
    ref_c = np.concatenate(([0.0], ref_inner, [1.0]))
    cur_c = np.concatenate(
        ([0.0], np.searchsorted(s, inner, "right") / m, [1.0 if len(s) else 0.0])
    )
    outside = (np.searchsorted(s, lo, "left") + len(s) - np.searchsorted(s, hi, "right")) / m
    notes = (
        [f"outer bars include the tails ({outside:.1%} of the batch)"] if outside >= 0.01 else []
    )
    if ref_missing or cur_missing:
        notes.append(f"missing, not drawn: reference {ref_missing:.1%}, batch {cur_missing:.1%}")
    note = "; ".join(notes)
    labels = [f"{_fmt(a)} to {_fmt(b)}" for a, b in pairwise(edges)]
    return Histogram(
        profile.name, role, "continuous", tuple(labels),
        tuple(np.diff(ref_c).tolist()), tuple(np.diff(cur_c).tolist()), tuple(edges.tolist()), note,
    )  # fmt: skip


def _fmt(value: float) -> str:
    """A short label for an axis: 4 significant digits, no trailing zeros."""
    return f"{value:.4g}"


# --- charts -------------------------------------------------------------------------------------

W, H, ML, MR, MT, MB = 540, 260, 52, 18, 34, 66  # size and margins of one chart, in px


def _nice_step(span: float, count: int) -> float:
    """A 1-2-2.5-5 x 10^k step that cuts ``span`` into about ``count`` parts."""
    raw = max(span, 1e-12) / count
    unit = 10 ** math.floor(math.log10(raw))
    return next(m * unit for m in (1, 2, 2.5, 5, 10) if m * unit >= raw * 0.999)


def _ticks(top: float) -> list[float]:
    """Round y-axis ticks from 0 to just above ``top`` (about four steps)."""
    step = _nice_step(max(top, 1e-6) * 1.02, 4)
    ticks = [step * k for k in range(math.ceil(max(top, 1e-6) * 1.02 / step) + 1)]
    return [t for t in ticks if t <= 1.0 + 1e-9] if top <= 1.0 else ticks  # no "150%" of rows


def _x_ticks(lo: float, hi: float) -> list[float]:
    """Round values between ``lo`` and ``hi`` for a continuous x axis (about five)."""
    step = _nice_step(hi - lo, 5)
    first = math.ceil(lo / step)
    return [k * step for k in range(first, math.floor(hi / step) + 1)]


def _pct(share: float) -> str:
    return f"{round(share * 100, 6):g}%"


def _short(label: str, size: int = 14) -> str:
    return label if len(label) <= size else label[: size - 1] + "…"


def svg_chart(h: Histogram) -> str:
    """One chart: reference vs current shares, labelled axes, a legend and hover titles."""
    ticks = _ticks(max([*h.reference, *h.current, 0.0]))
    ymax, pw, ph, n = ticks[-1], W - ML - MR, H - MT - MB, max(len(h.labels), 1)

    def y(v: float) -> float:
        return MT + ph * (1 - v / ymax)

    label = f"{h.name}: reference vs current distribution"
    out = [
        f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{E(label)}">'
    ]
    for t in ticks:  # horizontal grid and y labels
        out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y(t):.1f}" y2="{y(t):.1f}" class="grid"/>')
        out.append(f'<text x="{ML - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{_pct(t)}</text>')
    step = pw / n
    if h.kind == "continuous":
        line = [f"M{ML:.1f},{y(0):.1f}"]
        for i, (r, c) in enumerate(zip(h.reference, h.current, strict=True)):
            x = ML + i * step
            out.append(
                f'<rect x="{x:.1f}" y="{y(r):.1f}" width="{step:.1f}" height="{y(0) - y(r):.1f}" '
                f'fill="{REF}" fill-opacity="0.35" stroke="{REF}" stroke-width="0.6"/>'
            )
            line.append(f"V{y(c):.1f}H{x + step:.1f}")
        line.append(f"V{y(0):.1f}")
        out.append(f'<path d="{"".join(line)}" fill="none" stroke="{CUR}" stroke-width="2.5"/>')
        lo, hi = h.edges[0], h.edges[-1]
        for v in _x_ticks(lo, hi):  # round values, placed where they fall
            x = ML + (v - lo) / (hi - lo) * pw
            out.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y(0):.1f}" y2="{y(0) + 4:.1f}" class="axis"/>'
            )
            out.append(
                f'<text x="{x:.1f}" y="{y(0) + 17:.1f}" text-anchor="middle">{E(_fmt(v))}</text>'
            )
        out.append(
            f'<text x="{ML + pw / 2:.1f}" y="{H - 10}" text-anchor="middle" class="unit">{E(h.name)}</text>'
        )
    else:  # side by side: reference left (blue), current right (vermillion)
        bw = step * 0.4
        for i, (r, c) in enumerate(zip(h.reference, h.current, strict=True)):
            x = ML + i * step + step * 0.1
            for dx, v, colour in ((0.0, r, REF), (bw, c, CUR)):
                out.append(
                    f'<rect x="{x + dx:.1f}" y="{y(v):.1f}" width="{bw:.1f}" '
                    f'height="{y(0) - y(v):.1f}" fill="{colour}"/>'
                )
            cx, ty = ML + (i + 0.5) * step, y(0) + 12
            out.append(
                f'<text x="{cx:.1f}" y="{ty:.1f}" text-anchor="end" transform="rotate(-35 {cx:.1f} '
                f'{ty:.1f})"><title>{E(h.labels[i])}</title>{E(_short(h.labels[i]))}</text>'
            )
    for i, (r, c) in enumerate(zip(h.reference, h.current, strict=True)):  # hover details
        tip = f"{h.labels[i]}: reference {r:.2%}, current {c:.2%}"
        out.append(
            f'<rect x="{ML + i * step:.1f}" y="{MT}" width="{step:.1f}" height="{ph}" '
            f'fill="transparent"><title>{E(tip)}</title></rect>'
        )
    out.append(f'<line x1="{ML}" x2="{W - MR}" y1="{y(0):.1f}" y2="{y(0):.1f}" class="axis"/>')
    cur_key = (
        f'<path d="M{ML + 190},14h22" stroke="{CUR}" stroke-width="2.5"/>'
        if h.kind == "continuous"
        else f'<rect x="{ML + 190}" y="8" width="22" height="12" fill="{CUR}"/>'
    )
    out += [
        f'<rect x="{ML}" y="8" width="22" height="12" fill="{REF}" '
        f'fill-opacity="{0.35 if h.kind == "continuous" else 1}" stroke="{REF}"/>',
        f'<text x="{ML + 28}" y="18">reference (training)</text>',
        cur_key,
        f'<text x="{ML + 218}" y="18">current batch</text>',
        f'<text x="12" y="{MT + ph / 2:.1f}" text-anchor="middle" class="unit" '
        f'transform="rotate(-90 12 {MT + ph / 2:.1f})">share of rows</text>',
        "</svg>",
    ]
    return "".join(out)


# --- the page -----------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;
 margin:0 auto;max-width:1160px;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid #ddd}
.meta{color:#555}.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;
 font-size:12px;letter-spacing:.04em}.big{font-size:15px;padding:3px 12px;vertical-align:middle}
.tiles{display:flex;flex-wrap:wrap;gap:10px}.tile{border:1px solid #ccc;border-left-width:6px;
 border-radius:6px;padding:8px 14px;min-width:130px}.tile b{display:block;font-size:20px}
.charts{display:flex;flex-wrap:wrap;gap:16px}figure{margin:0;border:1px solid #e3e3e3;
 border-radius:6px;padding:8px}figcaption{font-size:13px;margin-bottom:4px}
svg text{font-size:11px;fill:#333}svg .unit{font-size:10px;fill:#666}
svg .grid{stroke:#e6e6e6}svg .axis{stroke:#555}.note{color:#666;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:4px 8px;
 border-bottom:1px solid #eee;text-align:right}th{background:#f6f6f6;position:sticky;top:0}
td:first-child,th:first-child,td.l{text-align:left}ul.breaches li{margin:2px 0}
"""


def _badge(status: str, big: bool = False) -> str:
    bg, fg = STATUS.get(status, ("#777", "#fff"))
    size = " big" if big else ""
    return (
        f'<span class="badge{size}" style="background:{bg};color:{fg}">{E(status.upper())}</span>'
    )


def _num(value: float | None, spec: str = ".3f") -> str:
    if value is None or not math.isfinite(value):
        return DASH
    if spec == "p":
        return "&lt;1e-15" if value < 1e-15 else format(value, ".2g")
    return format(value, spec)


def _figure(h: Histogram, drift: FeatureDrift | None) -> str:
    caption = f"<b>{E(h.name)}</b>"
    if drift is not None:
        caption += f" {_badge(drift.status)} · PSI {_num(drift.psi)}"
        if drift.test == "ks":
            caption += f" · KS D {_num(drift.effect)} (p {_num(drift.pvalue, 'p')})"
        elif drift.test == "chi2":
            caption += f" · total variation {_num(drift.effect)} (χ² p {_num(drift.pvalue, 'p')})"
    note = f'<div class="note">{E(h.note)}</div>' if h.note else ""
    return f"<figure><figcaption>{caption}</figcaption>{svg_chart(h)}{note}</figure>"


def _tiles(result: MonitorResult) -> str:
    by_metric = {b.metric: b.level for b in result.breaches}
    items: list[tuple[str, str, str]] = [("rows", f"{result.rows:,}", "ok")]
    for path in ("model", "fallback", "rejected"):
        if path in result.rates:
            items.append(
                (f"{path} rate", f"{result.rates[path]:.2%}", by_metric.get(f"rate.{path}", "ok"))
            )
    for key, value in result.latency.items():
        label = "latency " + key.removesuffix("_ms").replace("_", " ")
        text = f"{value:,.3f} ms" if value < 1 else f"{value:,.1f} ms"
        items.append((label, text, by_metric.get(f"latency.{key}", "ok")))
    tiles = "".join(
        f'<div class="tile" style="border-left-color:{STATUS[level][0]}">{E(label)}<b>{E(text)}</b>'
        f"{_badge(level) if level != 'ok' else ''}</div>"
        for label, text, level in items
    )
    return f'<div class="tiles">{tiles}</div>'


def _table(result: MonitorResult) -> str:
    order = {"alert": 0, "warn": 1, "ok": 2}
    rows = sorted([*result.predictions, *result.features], key=lambda d: (order[d.status], -d.psi))
    head = "".join(
        f"<th>{c}</th>"
        for c in ("column", "role", "kind", "status", "PSI", "test", "statistic", "p-value",
                  "effect", "missing: ref → now", "other categories")
    )  # fmt: skip
    body = []
    for d in rows:
        stat = _num(d.statistic, ".3f" if d.test == "ks" else ".1f")
        other = f"{d.other_rate:.1%}" if d.other_rate is not None else DASH
        body.append(
            f'<tr><td>{E(d.name)}</td><td class="l">{d.role}</td><td class="l">{d.kind}</td>'
            f"<td>{_badge(d.status)}</td><td>{_num(d.psi)}</td><td>{d.test or DASH}</td>"
            f"<td>{stat}</td><td>{_num(d.pvalue, 'p')}</td><td>{_num(d.effect)}</td>"
            f"<td>{d.reference_missing_rate:.1%} → {d.missing_rate:.1%}</td><td>{other}</td></tr>"
        )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_report(result: MonitorResult, charts: Sequence[Histogram]) -> str:
    """The whole page for one batch: status, breaches, rates, charts, the table, the method."""
    drifts = {(d.role, d.name): d for d in (*result.features, *result.predictions)}
    pred = [
        _figure(h, drifts.get(("prediction", h.name))) for h in charts if h.role == "prediction"
    ]
    feat = [_figure(h, drifts.get(("feature", h.name))) for h in charts if h.role == "feature"]
    link = ""
    if result.run_link:
        safe = result.run_link.startswith(("http://", "https://"))
        text = E(result.run_link)
        link = f' · run: <a href="{text}">{text}</a>' if safe else f" · run: {text}"
    breaches = "".join(f"<li>{_badge(b.level)} {E(b.message)}</li>" for b in result.breaches)
    notes = "".join(f"<li>{E(n)}</li>" for n in result.notes)
    t = result.thresholds
    title = f"Drift report · {result.model} v{result.version} · {result.batch_name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{E(title)}</title>
<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>
<body><h1>{E(result.model)} v{E(result.version)} — batch {E(result.batch_name)} {_badge(result.status, True)}</h1>
<div class="meta">batch time {E(result.batch_time)} · {result.rows:,} rows · {E(result.source)}{link}</div>
<h2>Alerts and warnings</h2>
{f'<ul class="breaches">{breaches}</ul>' if breaches else "<p>No threshold was breached.</p>"}
<h2>Decisions and latency</h2>{_tiles(result)}
{"<h2>Predictions: reference vs this batch</h2><div class='charts'>" + "".join(pred) + "</div>" if pred else ""}
{"<h2>Features, most drifted first</h2><div class='charts'>" + "".join(feat) + "</div>" if feat else ""}
<h2>All columns</h2>{_table(result)}
{f"<h2>Notes</h2><ul>{notes}</ul>" if notes else ""}
<h2>Method</h2><p class="note">PSI over the reference's deciles (numeric) or categories (plus
"other" and missing), empty bins floored at 1e-4; warn ≥ {_num(t.psi_warn, "g")}, alert ≥
{_num(t.psi_alert, "g")}. KS for numeric columns against a 1,000-quantile sketch of the
reference; chi-square for categorical ones, with total variation as the effect size. A test
counts only when p &lt; {_num(t.pvalue, "g")} <em>and</em> its effect reaches KS D
{_num(t.ks_warn, "g")} / {_num(t.ks_alert, "g")} or total variation {_num(t.tvd_warn, "g")} /
{_num(t.tvd_alert, "g")} (warn / alert), so large batches do not alert on trivial differences.
Columns with fewer than {t.min_rows} rows can only warn. Histogram outer bars include the tails.</p>
</body></html>
"""
