"""The SVG pictures of every page: the run's step DAG, metric bars, sparklines, drift histograms.

Each builder takes plain numbers and labels and returns one inline ``<svg>`` (no scripts, no
external assets), every text in it escaped here, so pages may embed the result as
:class:`markupsafe.Markup`. Standard library and markupsafe only: the in-notebook repr of
:mod:`toolkit.step` draws its sparklines with this module too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

from markupsafe import Markup

#: Status -> (stroke, fill). Shared with the run report's badges so the DAG and badges agree.
COLOURS: dict[str, tuple[str, str]] = {
    "succeeded": ("#1a7f37", "#dafbe1"),
    "cached": ("#0969da", "#ddf4ff"),
    "failed": ("#cf222e", "#ffebe9"),
    "interrupted": ("#9a6700", "#fff8c5"),
    "skipped": ("#818b98", "#f6f8fa"),
}
UNKNOWN = ("#818b98", "#ffffff")
REF, CUR = "#0072B2", "#D55E00"  # drift charts: Okabe-Ito blue and vermillion

_W, _H, _GAP_X, _GAP_Y, _PAD = 180, 58, 56, 18, 12


@dataclass(frozen=True)
class Node:
    """One step as the DAG draws it."""

    name: str
    status: str
    duration: float | None
    upstream: tuple[str, ...]
    note: str = ""


def seconds(value: float | None) -> str:
    """``4.2 s``, ``3 min 05 s``; a dash when unknown."""
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    return (
        f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
    )


# --- the run report ------------------------------------------------------------
def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ranks(nodes: Sequence[Node]) -> dict[str, int]:
    known = {n.name: n for n in nodes}
    ranks: dict[str, int] = {}

    def rank(name: str, seen: frozenset[str]) -> int:
        if name not in ranks:
            ups = [u for u in known[name].upstream if u in known and u not in seen]
            ranks[name] = 1 + max((rank(u, seen | {name}) for u in ups), default=-1)
        return ranks[name]

    for n in nodes:
        rank(n.name, frozenset())
    return ranks


def dag_svg(nodes: Sequence[Node]) -> Markup:
    """Steps left to right by depth; each node links to its row in the steps table."""
    ranks = _ranks(nodes)
    columns: dict[int, list[Node]] = {}
    for n in nodes:
        columns.setdefault(ranks[n.name], []).append(n)
    tallest = max(len(c) for c in columns.values())
    width = _PAD * 2 + len(columns) * _W + (len(columns) - 1) * _GAP_X
    height = _PAD * 2 + tallest * _H + (tallest - 1) * _GAP_Y
    pos: dict[str, tuple[int, int]] = {}
    for col, members in columns.items():
        offset = (tallest - len(members)) * (_H + _GAP_Y) // 2
        for row, n in enumerate(members):
            pos[n.name] = (_PAD + col * (_W + _GAP_X), _PAD + offset + row * (_H + _GAP_Y))
    edges = []
    for n in nodes:
        x2, y2 = pos[n.name][0], pos[n.name][1] + _H // 2
        for up in n.upstream:
            if up not in pos:
                continue
            x1, y1 = pos[up][0] + _W, pos[up][1] + _H // 2
            bend = max(20, (x2 - x1) // 2)
            edges.append(
                f"<path d='M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2 - 4},{y2}' "
                "fill='none' stroke='#8c959f' stroke-width='1.5' marker-end='url(#tk-arrow)'/>"
            )
    boxes = []
    for n in nodes:
        x, y = pos[n.name]
        stroke, fill = COLOURS.get(n.status, UNKNOWN)
        tip = f"{n.name}: {n.status}, {seconds(n.duration)}" + (f" — {n.note}" if n.note else "")
        boxes.append(
            f"<a href='#step-{escape(n.name)}'>"
            f"<g class='dag-node' data-step='{escape(n.name)}' data-status='{escape(n.status)}'>"
            f"<title>{escape(tip)}</title>"
            f"<rect x='{x}' y='{y}' width='{_W}' height='{_H}' rx='8' fill='{fill}' "
            f"stroke='{stroke}' stroke-width='2'/>"
            f"<rect x='{x}' y='{y}' width='6' height='{_H}' rx='3' fill='{stroke}'/>"
            f"<text x='{x + 16}' y='{y + 24}' class='dag-name'>{escape(_cut(n.name, 20))}</text>"
            f"<text x='{x + 16}' y='{y + 43}' class='dag-meta' fill='{stroke}'>"
            f"{escape(n.status)} · {escape(seconds(n.duration))}</text></g></a>"
        )
    return Markup(
        f"<svg class='dag' role='img' aria-label='pipeline steps' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}'>"
        "<defs><marker id='tk-arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
        "markerHeight='7' orient='auto'><path d='M0,0 L10,5 L0,10 z' fill='#8c959f'/></marker>"
        "</defs>" + "".join(edges) + "".join(boxes) + "</svg>"
    )


def metric_bars(rows: Sequence[tuple[str, float, Sequence[tuple[float, bool]]]]) -> Markup:
    """One bar per metric, ticks at its gate thresholds (green passed, red failed).

    ``rows`` holds ``(label, value, [(threshold, passed), ...])``. Each row has its own scale
    from 0 (or the lowest value) to a little past the largest number, and is labelled with the
    exact value, so bars of different units never pretend to compare.
    """
    if not rows:
        return Markup()
    label_w, bar_w, row_h, value_w = 170, 320, 30, 90
    width, height = label_w + bar_w + value_w, row_h * len(rows) + 8
    parts = []
    for i, (label, value, ticks) in enumerate(rows):
        y = 4 + i * row_h
        numbers = [value, *(t for t, _ in ticks)]
        low, high = min(0.0, *numbers), max(0.0, *numbers)
        span = (high - low) * 1.08 or 1.0

        def px(v: float, low: float = low, span: float = span) -> float:
            return label_w + (v - low) / span * bar_w

        ok = all(p for _, p in ticks)
        colour = COLOURS["succeeded" if ok else "failed"][0] if ticks else "#0969da"
        zero = px(0.0)
        parts.append(
            f"<text x='{label_w - 8}' y='{y + 18}' text-anchor='end' class='bar-label'>"
            f"{escape(_cut(label, 24))}</text>"
            f"<rect x='{label_w}' y='{y + 6}' width='{bar_w}' height='14' rx='3' fill='#f0f2f4'/>"
            f"<rect x='{min(zero, px(value)):.1f}' y='{y + 6}' "
            f"width='{abs(px(value) - zero):.1f}' height='14' rx='3' fill='{colour}' "
            "opacity='0.85'/>"
        )
        for threshold, passed in ticks:
            tx = px(threshold)
            tick = COLOURS["succeeded" if passed else "failed"][0]
            parts.append(
                f"<line x1='{tx:.1f}' x2='{tx:.1f}' y1='{y + 2}' y2='{y + 24}' stroke='#1f2328' "
                f"stroke-width='2'><title>threshold {threshold:.6g}</title></line>"
                f"<circle cx='{tx:.1f}' cy='{y + 2}' r='3' fill='{tick}'/>"
            )
        parts.append(
            f"<text x='{label_w + bar_w + 8}' y='{y + 18}' class='bar-value'>{value:.4g}</text>"
        )
    return Markup(
        f"<svg class='bars' role='img' aria-label='key metrics' viewBox='0 0 {width} {height}' "
        f"width='{width}' height='{height}'>" + "".join(parts) + "</svg>"
    )


def sparkline(points: Sequence[tuple[float, float]], width: int = 140, height: int = 30) -> Markup:
    """A tiny line chart of ``(step, value)`` points, lowest and highest value in the tooltip."""
    if len(points) < 2:
        return Markup()
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, xspan = min(xs), (max(xs) - min(xs)) or 1.0
    y0, yspan = min(ys), (max(ys) - min(ys)) or 1.0
    coords = [
        (3 + (x - x0) / xspan * (width - 6), height - 3 - (y - y0) / yspan * (height - 6))
        for x, y in points
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2'/>" for x, y in coords)
    tip = f"{len(points)} values, min {min(ys):.4g}, max {max(ys):.4g}"
    return Markup(
        f"<svg class='spark' viewBox='0 0 {width} {height}' width='{width}' height='{height}'>"
        f"<title>{escape(tip)}</title>"
        f"<polyline points='{line}' fill='none' stroke='#0969da' stroke-width='1.5'/>"
        f"<g fill='#0969da'>{dots}</g></svg>"
    )


# --- the step repr -------------------------------------------------------------
def trend_line(values: Sequence[float], width: int = 80, height: int = 16) -> Markup:
    """An inline SVG line of the values in logging order (nothing for a single value)."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return Markup()
    low, high = min(finite), max(finite)
    span = (high - low) or 1.0
    step_x = width / (len(finite) - 1)
    points = " ".join(
        f"{i * step_x:.1f},{height - 1 - (v - low) / span * (height - 2):.1f}"
        for i, v in enumerate(finite)
    )
    return Markup(
        f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='trend'><polyline fill='none' stroke='#0969da' stroke-width='1.5' "
        f"points='{points}'/></svg>"
    )


# --- the drift report ----------------------------------------------------------
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


def histogram_chart(h: Any) -> Markup:
    """One drift chart: reference vs current shares, labelled axes, a legend and hover titles.

    ``h`` is a :class:`toolkit.monitor.bins.Histogram` (name, kind, labels, reference and
    current shares, edges).
    """
    ticks = _ticks(max([*h.reference, *h.current, 0.0]))
    ymax, pw, ph, n = ticks[-1], W - ML - MR, H - MT - MB, max(len(h.labels), 1)

    def y(v: float) -> float:
        return MT + ph * (1 - v / ymax)

    label = f"{h.name}: reference vs current distribution"
    out = [
        f'<svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{escape(label)}">'
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
                f'<text x="{x:.1f}" y="{y(0) + 17:.1f}" text-anchor="middle">{escape(f"{v:.4g}")}</text>'
            )
        out.append(
            f'<text x="{ML + pw / 2:.1f}" y="{H - 10}" text-anchor="middle" class="unit">{escape(h.name)}</text>'
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
                f'{ty:.1f})"><title>{escape(h.labels[i])}</title>{escape(_short(h.labels[i]))}</text>'
            )
    for i, (r, c) in enumerate(zip(h.reference, h.current, strict=True)):  # hover details
        tip = f"{h.labels[i]}: reference {r:.2%}, current {c:.2%}"
        out.append(
            f'<rect x="{ML + i * step:.1f}" y="{MT}" width="{step:.1f}" height="{ph}" '
            f'fill="transparent"><title>{escape(tip)}</title></rect>'
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
    return Markup("".join(out))
