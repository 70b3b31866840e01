"""Drift statistics of one column against its reference profile: PSI, KS, chi-square.

* **PSI** (population stability index) over the profile's bins plus a missing-values bin:
  ``sum((a - e) * ln(a / e))`` with empty bins clipped to ``EPSILON`` so a category or range
  that appears from nothing scores high instead of dividing by zero.
* **KS** (numeric): the two-sample Kolmogorov-Smirnov statistic evaluated at the points of the
  reference's quantile sketch (both sides of each point, so ties are handled). It is a lower
  bound of the exact statistic, short of it by at most the reference mass between two sketch
  points (~0.001 with the default 1,000 quantiles). The p-value uses scipy's asymptotic
  two-sample formula (``kstwo`` at ``n*m/(n+m)``), as ``ks_2samp(method="asymp")`` does;
  past 10,000 it uses Kolmogorov's limiting distribution with Stephens' correction (within 1%).
* **chi-square** (categorical): a 2 x k homogeneity test (``scipy.stats.chi2_contingency``) on
  the reference and current counts per category, ``other`` and missing. Its effect size is the
  total variation distance (the share of rows that would have to change category).

With a million rows any difference is "significant", so a test only flags a column when its
effect size also reaches a threshold (:class:`MonitorThresholds`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from toolkit.core.errors import SpecError, did_you_mean
from toolkit.monitor.profile import (
    CategoricalProfile,
    FeatureProfile,
    NumericProfile,
    finite_sorted,
    numeric_values,
    value_counts_by_key,
)

if TYPE_CHECKING:
    import pandas as pd

Status = Literal["ok", "warn", "alert"]
Level = Literal["warn", "alert"]
Role = Literal["feature", "prediction"]
#: Above this effective sample size, KS p-values use the asymptotic Kolmogorov distribution.
_KSTWO_MAX_N = 10_000
#: Floor for an empty bin's share in PSI (1e-4 is the usual choice: one row in 10,000).
EPSILON = 1e-4


@dataclass(frozen=True)
class FeatureDrift:
    """The drift statistics of one column (a feature or a prediction column)."""

    name: str
    role: Role
    kind: Literal["numeric", "categorical"]
    rows: int  # current rows compared, missing included
    missing_rate: float
    reference_missing_rate: float
    psi: float
    test: Literal["ks", "chi2"] | None  # None when there was nothing to test
    statistic: float | None  # KS D, or the chi-square statistic
    pvalue: float | None
    effect: float | None  # KS D, or total variation distance
    unparsable: int = 0  # non-numeric values in a numeric column, counted as missing
    other_rate: float | None = None  # categorical: share outside the reference's top categories
    status: Status = "ok"  # set by assess()
    breaches: tuple[Breach, ...] = ()


def psi(reference: np.ndarray, current: np.ndarray, *, eps: float = EPSILON) -> float:
    """Population stability index of two count (or share) vectors over the same bins."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.sum() <= 0 or cur.sum() <= 0:
        return 0.0
    e = np.maximum(ref / ref.sum(), eps)
    a = np.maximum(cur / cur.sum(), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_from_sketch(
    grid: np.ndarray, grid_counts: np.ndarray, n_ref: int, current_sorted: np.ndarray
) -> tuple[float, float]:
    """(D, p-value) of two-sample KS between a reference sketch and sorted current values."""
    from scipy.stats import kstwo, kstwobign

    m = len(current_sorted)
    if n_ref == 0 or m == 0 or len(grid) == 0:
        return 0.0, 1.0
    ref_at = grid_counts / n_ref  # F_ref(q_k)
    ref_before = np.concatenate(([0.0], ref_at[:-1]))  # F_ref just below q_k
    cur_at = np.searchsorted(current_sorted, grid, side="right") / m
    cur_before = np.searchsorted(current_sorted, grid, side="left") / m
    d = float(max(np.abs(cur_at - ref_at).max(), np.abs(cur_before - ref_before).max()))
    n_eff = max(round(n_ref * m / (n_ref + m)), 1)
    if n_eff <= _KSTWO_MAX_N:
        return d, float(np.clip(kstwo.sf(d, n_eff), 0.0, 1.0))
    # kstwo.sf takes over a second at n ~ 5e5; the limiting distribution with Stephens'
    # small-sample correction is within 1% of it from n = 10,000 on, in microseconds.
    root = math.sqrt(n_eff)
    return d, float(np.clip(kstwobign.sf((root + 0.12 + 0.11 / root) * d), 0.0, 1.0))


def chi_square(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of the 2 x k homogeneity test; (0, 1) when nothing to compare."""
    from scipy.stats import chi2_contingency

    table = np.array([reference, current], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]  # a category absent from both has no expectation
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def total_variation(reference: np.ndarray, current: np.ndarray) -> float:
    """Half the L1 distance between the two distributions: 0 identical, 1 disjoint."""
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    if ref.sum() <= 0 or cur.sum() <= 0:
        return 0.0
    return float(0.5 * np.abs(ref / ref.sum() - cur / cur.sum()).sum())


def _numeric(profile: NumericProfile, series: pd.Series, role: Role) -> FeatureDrift:
    values, unparsable = numeric_values(series)
    s = finite_sorted(values)
    rows, m = len(values), len(s)
    missing = rows - m
    edges = np.asarray(profile.edges, dtype=np.float64)
    below = np.searchsorted(s, edges, side="right")
    cur_bins = np.concatenate((np.diff(np.concatenate(([0], below, [m]))), [missing]))
    ref_bins = np.concatenate((profile.bin_counts, [profile.missing]))
    test: Literal["ks"] | None = None
    d = p = None
    if m and profile.count:
        test = "ks"
        d, p = ks_from_sketch(
            np.asarray(profile.grid), np.asarray(profile.grid_counts), profile.count, s
        )
    return FeatureDrift(
        name=profile.name,
        role=role,
        kind="numeric",
        rows=rows,
        missing_rate=missing / rows if rows else 0.0,
        reference_missing_rate=_rate(profile.missing, profile.count + profile.missing),
        psi=psi(ref_bins, cur_bins),
        test=test,
        statistic=d,
        pvalue=p,
        effect=d,
        unparsable=unparsable,
    )


def categorical_counts(profile: CategoricalProfile, series: pd.Series) -> np.ndarray:
    """Current counts over the profile's buckets: its categories, then other, then missing."""
    counts = dict(value_counts_by_key(series))
    known = [counts.pop(key, 0) for key in profile.categories]
    return np.array([*known, sum(counts.values()), int(series.isna().sum())], dtype=np.int64)


def _categorical(profile: CategoricalProfile, series: pd.Series, role: Role) -> FeatureDrift:
    cur = categorical_counts(profile, series)
    ref = np.array([*profile.category_counts, profile.other, profile.missing], dtype=np.int64)
    rows = int(cur.sum())
    present = cur[:-1].sum() > 0 and ref[:-1].sum() > 0
    stat, p = chi_square(ref, cur) if present else (None, None)
    return FeatureDrift(
        name=profile.name,
        role=role,
        kind="categorical",
        rows=rows,
        missing_rate=_rate(int(cur[-1]), rows),
        reference_missing_rate=_rate(profile.missing, profile.count + profile.missing),
        psi=psi(ref, cur),
        test="chi2" if present else None,
        statistic=stat,
        pvalue=p,
        effect=total_variation(ref, cur) if present else None,
        other_rate=_rate(int(cur[-2]), rows),
    )


def compare(profile: FeatureProfile, series: pd.Series, *, role: Role = "feature") -> FeatureDrift:
    """Drift statistics of ``series`` (the current batch's column) against its profile."""
    if isinstance(profile, NumericProfile):
        return _numeric(profile, series, role)
    return _categorical(profile, series, role)


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


@dataclass(frozen=True)
class Breach:
    """A metric past its threshold. ``alert`` fires the hooks; ``warn`` is only reported."""

    metric: str  # the metric key, as logged: "drift.psi.age", "rate.fallback"...
    value: float
    threshold: float
    level: Level
    message: str

    def to_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "value": self.value,
            "threshold": self.threshold,
            "level": self.level,
            "message": self.message,
        }


@dataclass(frozen=True)
class MonitorThresholds:
    """When a batch warns or alerts. ``None`` switches a check off.

    Defaults, and why (tune them per model in the spec's ``monitoring:`` section):

    * ``psi_warn`` 0.1 / ``psi_alert`` 0.25: the industry rule of thumb for decile PSI
      (Siddiqi, *Credit Risk Scorecards*, Wiley 2006; studied by Yurdakul, *Statistical
      properties of the population stability index*, 2018): < 0.1 stable, 0.1-0.25 moderate
      shift, > 0.25 significant shift. For a normal feature, 0.25 is a mean shift of ~0.5 sd.
    * ``pvalue`` 0.01 for KS and chi-square: stricter than the usual 0.05 (Evidently's default)
      because a batch runs one test per feature and prediction column: with 30 columns and no
      drift, 0.05 would flag ~1.5 columns per batch by chance, 0.01 about 0.3.
    * ``ks_warn`` 0.1 / ``ks_alert`` 0.2 (minimum KS D of a significant test): D is the largest
      gap between the two CDFs. A normal mean shift of 0.25 sd gives D ~ 0.1 and 0.5 sd gives
      D ~ 0.2, the shift at which PSI alerts, so the two agree on shifts while KS also catches
      shape changes that ten bins hide. Without this floor a 1M-row batch alerts on 0.01 sd.
    * ``tvd_warn`` 0.1 / ``tvd_alert`` 0.2 (minimum total variation distance of a significant
      chi-square): 10 / 20 percentage points of the rows changed category, the categorical
      counterpart of the KS floors.
    * ``fallback_rate_warn`` 0.05 / ``_alert`` 0.10: when one decision in ten bypasses the
      model, the model is no longer what is serving users.
    * ``rejected_rate_warn`` 0.01 / ``_alert`` 0.05: rejected rows failed the input contract;
      a few are noise, 5% means an upstream change.
    * ``latency_p95_ms_warn`` 250 / ``_alert`` 1000: loose, to catch regressions of an order
      of magnitude; set them from the service's latency objective.
    * ``min_rows`` 100: below it, drift can only warn. With 10 bins, sampling noise alone gives
      an expected PSI of ~9/n (0.09 at 100 rows), so smaller batches cannot be trusted to page.
    """

    psi_warn: float | None = 0.1
    psi_alert: float | None = 0.25
    pvalue: float | None = 0.01
    ks_warn: float | None = 0.1
    ks_alert: float | None = 0.2
    tvd_warn: float | None = 0.1
    tvd_alert: float | None = 0.2
    fallback_rate_warn: float | None = 0.05
    fallback_rate_alert: float | None = 0.10
    rejected_rate_warn: float | None = 0.01
    rejected_rate_alert: float | None = 0.05
    latency_p95_ms_warn: float | None = 250.0
    latency_p95_ms_alert: float | None = 1000.0
    min_rows: int = 100
    ignore: tuple[str, ...] = ()  # columns never compared (ids, timestamps)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, *, section: str = "monitoring"
    ) -> MonitorThresholds:
        """Build from a plain dict (the spec's ``monitoring:`` section); unknown keys fail."""
        names = [f.name for f in fields(cls)]
        values: dict[str, Any] = {}
        for key, value in dict(data or {}).items():
            where = f"{section}.{key}"
            if key not in names:
                hint = did_you_mean(key, names)
                raise SpecError(f"unknown threshold {key!r}", location=where, hint=hint)
            if key == "ignore":
                if isinstance(value, str) or not isinstance(value, list | tuple):
                    raise SpecError("expected a list of column names", location=where)
                values[key] = tuple(str(v) for v in value)
                continue
            number = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            if key == "min_rows" and not (number and isinstance(value, int)):
                raise SpecError(f"expected a non-negative integer, got {value!r}", location=where)
            if not number and (value is not None or key == "min_rows"):
                raise SpecError(f"expected a number >= 0 or null, got {value!r}", location=where)
            values[key] = value if key == "min_rows" or value is None else float(value)
        made = cls(**values)
        if made.pvalue is not None and not 0 < made.pvalue <= 1:
            raise SpecError("pvalue must be in (0, 1]", location=f"{section}.pvalue")
        for stem in ("psi", "ks", "tvd", "fallback_rate", "rejected_rate", "latency_p95_ms"):
            warn, alert = getattr(made, f"{stem}_warn"), getattr(made, f"{stem}_alert")
            if warn is not None and alert is not None and warn > alert:
                message = f"{stem}_warn ({warn:g}) is above {stem}_alert ({alert:g})"
                raise SpecError(message, location=f"{section}.{stem}_warn")
        return made

    def to_dict(self) -> dict[str, Any]:
        """The thresholds as a plain dict (``from_dict`` round-trips it)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**data, "ignore": list(self.ignore)}


_KEY_UNSAFE = re.compile(r"[^\w.\- ]+")


def metric_key(*parts: str) -> str:
    """A metric name MLflow accepts (letters, digits, ``_ - . space``; no slashes)."""
    return ".".join(_KEY_UNSAFE.sub("_", p).strip(". ") or "_" for p in parts)[:250]


def check(
    value: float | None, warn: float | None, alert: float | None
) -> tuple[Level, float] | None:
    """(level, threshold crossed) for a higher-is-worse value, or None when within bounds."""
    if value is None or not math.isfinite(value):
        return None
    if alert is not None and value >= alert:
        return "alert", alert
    if warn is not None and value >= warn:
        return "warn", warn
    return None


def assess(drift: FeatureDrift, t: MonitorThresholds) -> FeatureDrift:
    """``drift`` with its status and the breaches behind it."""
    prefix = "drift" if drift.role == "feature" else "prediction_drift"
    what = f"{'feature' if drift.role == 'feature' else 'prediction column'} {drift.name!r}"
    found: list[Breach] = []
    if hit := check(drift.psi, t.psi_warn, t.psi_alert):
        message = f"{what}: PSI {drift.psi:.3f} >= {hit[1]:g}"
        found.append(
            Breach(metric_key(prefix, "psi", drift.name), drift.psi, hit[1], hit[0], message)
        )
    significant = drift.pvalue is not None and t.pvalue is not None and drift.pvalue < t.pvalue
    if significant and drift.test is not None and drift.effect is not None:
        ks = drift.test == "ks"
        warn, alert = (t.ks_warn, t.ks_alert) if ks else (t.tvd_warn, t.tvd_alert)
        if hit := check(drift.effect, warn, alert):
            label = "KS D" if ks else "total variation"
            message = (
                f"{what}: {label} {drift.effect:.3f} >= {hit[1]:g} "
                f"({'KS' if ks else 'chi-square'} p{_p(drift.pvalue)} < {t.pvalue:g})"
            )
            key = metric_key(prefix, "ks" if ks else "tvd", drift.name)
            found.append(Breach(key, drift.effect, hit[1], hit[0], message))
    if drift.rows < t.min_rows:
        # Too few rows to rule out sampling noise: report, do not page.
        note = f" (only {drift.rows} rows < min_rows {t.min_rows}: warning only)"
        found = [
            replace(b, level="warn", message=b.message + note) if b.level == "alert" else b
            for b in found
        ]
    return replace(drift, status=worst(b.level for b in found), breaches=tuple(found))


def _p(pvalue: float | None) -> str:
    """``=0.003``, or ``<1e-15`` where the tail is below double precision's resolution."""
    return "<1e-15" if pvalue is not None and pvalue < 1e-15 else f"={pvalue:.2g}"


def worst(levels: Iterable[str]) -> Status:
    """The most severe of some statuses or levels (``ok`` for none)."""
    seen = set(levels)
    return "alert" if "alert" in seen else "warn" if "warn" in seen else "ok"
