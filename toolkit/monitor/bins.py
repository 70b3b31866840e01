"""Display bins of one column for the drift report: reference vs batch shares per bar.

Pure computation on the reference profile and the batch (numpy, no HTML): :func:`monitor_batch`
bins the columns it will picture and keeps the bins on its result, and
:mod:`toolkit.reports.drift_page` draws them. The outer bars of a continuous histogram hold the
tails; integer columns get bars a whole number of units wide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Literal

import numpy as np

from toolkit.monitor.drift import Role, categorical_counts
from toolkit.monitor.profile import (
    CategoricalProfile,
    FeatureProfile,
    finite_sorted,
    numeric_values,
)

if TYPE_CHECKING:
    import pandas as pd

#: Up to this many distinct reference values, a numeric column is drawn one bar per value.
DISCRETE_MAX_VALUES = 25


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
