"""Reference profiles: what the training data and the model's outputs looked like.

A :class:`ReferenceProfile` is captured once, when a model version is registered, and stored
with it as a JSON artifact. Monitoring compares every production batch against it, so the
profile must hold everything the drift statistics need without the training data itself:

* **Numeric** columns keep the PSI bins (interior edges at the reference deciles; the two
  outer bins are open-ended, so values outside the training range still land somewhere) with
  their counts, and a *quantile sketch* for the KS test: the distinct values among
  ``ks_quantiles + 1`` evenly spaced order statistics, each with the number of reference values
  at or below it. KS is then evaluated exactly at those points; between two points the
  reference CDF moves by at most ~``1 / ks_quantiles`` (for continuous data), which bounds the
  error of the statistic. A tied value (an integer feature, a spike at 0) is stored once with
  its exact cumulative count, so discrete features are represented exactly.
* **Categorical** columns keep the ``max_categories`` most frequent values with their counts;
  the rest is pooled in an ``other`` bucket.

Missing values (NaN, None, and for numeric columns also +/-inf) are counted apart: a rise of
the missing rate is drift too, and PSI gives it a bin of its own.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from toolkit.core.errors import ContractError, UsageError
from toolkit.core.fsutil import atomic_write_json

if TYPE_CHECKING:
    import pandas as pd

FORMAT = "toolkit.monitor.reference-profile"
FORMAT_VERSION = 1
HOW_TO_CREATE = (
    "re-run the training pipeline: the reference profile is captured when the model version "
    "is registered (toolkit.monitor.build_profile(features, predictions).save(path))"
)


@dataclass(frozen=True)
class NumericProfile:
    """A numeric column of the reference: PSI bins and a quantile sketch for KS."""

    name: str
    count: int  # finite values
    missing: int  # NaN, None, +/-inf
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    edges: tuple[float, ...]  # interior PSI edges; bins are (-inf, e0], (e0, e1], ..., (ek, inf)
    bin_counts: tuple[int, ...]  # len(edges) + 1 counts
    grid: tuple[float, ...]  # distinct reference quantiles, ascending
    grid_counts: tuple[int, ...]  # reference values <= grid[k]
    kind: Literal["numeric"] = "numeric"


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical column of the reference: the top categories and an ``other`` bucket."""

    name: str
    count: int  # non-missing values
    missing: int
    categories: tuple[str, ...]  # most frequent first
    category_counts: tuple[int, ...]
    other: int  # values outside the top categories
    other_distinct: int
    kind: Literal["categorical"] = "categorical"


FeatureProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    """Profiles of every feature and every prediction column, plus how they were built."""

    features: Mapping[str, FeatureProfile]
    predictions: Mapping[str, FeatureProfile]
    rows: int
    created_at: str
    bins: int = 10
    ks_quantiles: int = 1000
    max_categories: int = 50
    skipped: Mapping[str, str] = field(default_factory=dict)  # column -> why it is not profiled
    meta: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the artifact stored with the model version)."""

        def one(p: FeatureProfile) -> dict[str, Any]:
            data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in p.__dict__.items()}
            data.pop("name")
            return data

        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "rows": self.rows,
            "settings": {
                "bins": self.bins,
                "ks_quantiles": self.ks_quantiles,
                "max_categories": self.max_categories,
            },
            "meta": dict(self.meta),
            "skipped": dict(self.skipped),
            "features": {name: one(p) for name, p in self.features.items()},
            "predictions": {name: one(p) for name, p in self.predictions.items()},
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, source: str = "reference profile"
    ) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output; malformed data raises ContractError."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ContractError(f"{source}: not a toolkit reference profile", hint=HOW_TO_CREATE)
        if data.get("format_version") != FORMAT_VERSION:
            raise ContractError(
                f"{source}: reference profile format_version {data.get('format_version')!r} "
                f"is not supported (expected {FORMAT_VERSION})",
                hint=HOW_TO_CREATE,
            )

        def one(name: str, raw: Mapping[str, Any]) -> FeatureProfile:
            fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items()}
            kind = str(fields.pop("kind", None))
            profile_cls = {"numeric": NumericProfile, "categorical": CategoricalProfile}.get(kind)
            if profile_cls is None:
                raise ContractError(f"{source}: column {name!r} has unknown kind {kind!r}")
            try:
                return profile_cls(name=name, **fields)
            except TypeError as exc:
                raise ContractError(f"{source}: column {name!r} is malformed: {exc}") from exc

        try:
            return cls(
                features={n: one(n, p) for n, p in data.get("features", {}).items()},
                predictions={n: one(n, p) for n, p in data.get("predictions", {}).items()},
                rows=int(data.get("rows", 0)),
                created_at=str(data.get("created_at", "")),
                skipped=dict(data.get("skipped", {})),
                meta=dict(data.get("meta", {})),
                **{k: int(v) for k, v in data.get("settings", {}).items()},
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise ContractError(f"{source}: malformed reference profile: {exc}") from exc

    def save(self, path: Path | str) -> Path:
        """Write the profile as JSON, atomically; returns the path."""
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: Path | str) -> ReferenceProfile:
        """Read a profile written by :meth:`save`; a missing file says how to create one."""
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"reference profile not found: {path}", hint=HOW_TO_CREATE)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ContractError(f"{path}: cannot read the reference profile: {exc}") from exc
        return cls.from_dict(data, source=str(path))


def load_profile(path: Path | str) -> ReferenceProfile:
    """Shorthand for :meth:`ReferenceProfile.load`."""
    return ReferenceProfile.load(path)


def category_keys(values: Iterable[Any]) -> list[str]:
    """Stable string keys for category values, so CSV, Parquet and in-memory data agree.

    An integral float becomes an integer string: a class column read from a CSV with a blank
    cell turns ``1`` into ``1.0``, and that must not look like a new category.
    """
    keys = []
    for value in values:
        if isinstance(value, float | np.floating) and float(value).is_integer():
            keys.append(str(int(value)))
        else:
            keys.append(str(value))
    return keys


def numeric_values(series: pd.Series) -> tuple[np.ndarray, int]:
    """The column as float64 (missing -> NaN) and how many non-missing values were not numbers."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan), 0
    # Text in a numeric column (a CSV with "n/a"): counted as missing, reported by the caller.
    coerced = pd.to_numeric(series, errors="coerce")
    unparsable = int(coerced.isna().sum() - series.isna().sum())
    return coerced.to_numpy(dtype=np.float64, na_value=np.nan), unparsable


def finite_sorted(values: np.ndarray) -> np.ndarray:
    """The finite values, sorted (numpy's SIMD sort makes this cheaper than a histogram pass)."""
    finite = np.isfinite(values)
    return np.sort(values if finite.all() else values[finite])


def _numeric_profile(name: str, values: np.ndarray, bins: int, ks_quantiles: int) -> NumericProfile:
    s = finite_sorted(values)
    n = len(s)
    if n == 0:
        return NumericProfile(name, 0, len(values), None, None, None, None, (), (0,), (), ())

    def order_stats(fractions: np.ndarray) -> np.ndarray:
        # Actual data values (nearest rank), not interpolations, so discrete data keeps its values.
        return np.unique(s[np.rint(fractions * (n - 1)).astype(np.int64)])

    grid = order_stats(np.linspace(0.0, 1.0, ks_quantiles + 1))
    edges = order_stats(np.arange(1, bins) / bins)
    below = np.searchsorted(s, edges, side="right")
    bin_counts = np.diff(np.concatenate(([0], below, [n])))
    return NumericProfile(
        name=name,
        count=n,
        missing=len(values) - n,
        mean=float(s.mean()),
        std=float(s.std()),
        min=float(s[0]),
        max=float(s[-1]),
        edges=tuple(edges.tolist()),
        bin_counts=tuple(bin_counts.tolist()),
        grid=tuple(grid.tolist()),
        grid_counts=tuple(np.searchsorted(s, grid, side="right").tolist()),
    )


def _categorical_profile(name: str, series: pd.Series, max_categories: int) -> CategoricalProfile:
    counts = value_counts_by_key(series)
    top = counts[:max_categories]
    rest = counts[max_categories:]
    return CategoricalProfile(
        name=name,
        count=int(sum(c for _, c in counts)),
        missing=int(series.isna().sum()),
        categories=tuple(k for k, _ in top),
        category_counts=tuple(c for _, c in top),
        other=int(sum(c for _, c in rest)),
        other_distinct=len(rest),
    )


def value_counts_by_key(series: pd.Series) -> list[tuple[str, int]]:
    """Counts per category key, most frequent first (ties by key, for a stable profile)."""
    vc = series.value_counts(dropna=True, sort=False)
    merged: dict[str, int] = {}
    # Keys are computed on the distinct values only: cheap even for a million rows.
    for key, count in zip(category_keys(vc.index), vc.to_numpy().tolist(), strict=True):
        if count:  # a pandas Categorical lists its unused categories with a zero count
            merged[key] = merged.get(key, 0) + int(count)
    return sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))


def column_kind(series: pd.Series, *, prediction: bool = False) -> str | None:
    """``numeric``, ``categorical`` or None (not profiled: dates drift by construction).

    Prediction columns are numeric only when float (probabilities, regression outputs): an
    integer or string ``prediction`` is a class label and gets chi-square, not KS.
    """
    import pandas as pd

    types = pd.api.types
    if types.is_datetime64_any_dtype(series) or types.is_timedelta64_dtype(series):
        return None
    if types.is_bool_dtype(series):
        return "categorical"
    if prediction:
        return "numeric" if types.is_float_dtype(series) else "categorical"
    return "numeric" if types.is_numeric_dtype(series) else "categorical"


def profile_column(
    name: str,
    series: pd.Series,
    kind: str,
    *,
    bins: int = 10,
    ks_quantiles: int = 1000,
    max_categories: int = 50,
) -> FeatureProfile:
    """Profile one column as ``kind`` (``numeric`` or ``categorical``)."""
    if kind == "numeric":
        values, _ = numeric_values(series)
        return _numeric_profile(name, values, bins, ks_quantiles)
    return _categorical_profile(name, series, max_categories)


def build_profile(
    features: pd.DataFrame,
    predictions: pd.DataFrame | pd.Series | None = None,
    *,
    categorical: Iterable[str] = (),
    exclude: Iterable[str] = (),
    bins: int = 10,
    ks_quantiles: int = 1000,
    max_categories: int = 50,
    meta: Mapping[str, Any] | None = None,
) -> ReferenceProfile:
    """Capture the reference profile of a training (or validation) frame and its predictions.

    Args:
        features: the model's input columns, as production will send them.
        predictions: the model's outputs on the same rows, with the column names the scoring
            output uses (``prediction``, ``probability``...). A Series uses its name.
        categorical: numeric columns to treat as categories (codes, zip codes...).
        exclude: columns not to profile (ids, timestamps).
        bins: PSI bins per numeric column (deciles by default).
        ks_quantiles: size of the quantile sketch used for KS.
        max_categories: categories kept per column before pooling into ``other``.
        meta: free-form provenance stored in the profile (model, run id, data hash...).

    Raises:
        ContractError: an empty frame, or predictions whose length differs from the features.
    """
    import pandas as pd

    if len(features) == 0:
        raise ContractError("cannot build a reference profile from an empty frame")
    if bins < 2 or ks_quantiles < bins or max_categories < 1:
        raise UsageError("build_profile needs bins >= 2, ks_quantiles >= bins, max_categories >= 1")
    forced = {str(c) for c in categorical}
    excluded = {str(c) for c in exclude}
    settings = {"bins": bins, "ks_quantiles": ks_quantiles, "max_categories": max_categories}
    skipped: dict[str, str] = {}

    def profiles(frame: pd.DataFrame, prediction: bool) -> dict[str, FeatureProfile]:
        out: dict[str, FeatureProfile] = {}
        for column in frame.columns:
            name = str(column)
            if name in excluded:
                skipped[name] = "excluded"
                continue
            series = frame[column]
            kind = "categorical" if name in forced else column_kind(series, prediction=prediction)
            if kind is None:
                skipped[name] = f"dtype {series.dtype} is not profiled"
                continue
            out[name] = profile_column(name, series, kind, **settings)
        return out

    pred_profiles: dict[str, FeatureProfile] = {}
    if predictions is not None:
        if isinstance(predictions, pd.Series):  # an unnamed Series is the predicted class
            predictions = predictions.to_frame(name=predictions.name or "prediction")
        pred_frame = predictions
        if len(pred_frame) != len(features):
            raise ContractError(
                f"predictions have {len(pred_frame)} rows but the features have {len(features)}"
            )
        pred_profiles = profiles(pred_frame, prediction=True)
    return ReferenceProfile(
        features=profiles(features, prediction=False),
        predictions=pred_profiles,
        rows=len(features),
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        skipped=skipped,
        meta=dict(meta or {}),
        **settings,
    )
