"""The scikit-learn fast path of the guard: feed numpy instead of DataFrames where the answer is
the same, step through a linear pipeline by hand so that its contributions can be explained,
and skip scikit-learn's finite check on rows the guard has just checked.

Imports scikit-learn only inside :func:`finite_inputs`; pickled by value with the rest of
:mod:`toolkit.guard` into logged models.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import numpy as np
import pandas as pd


def finite_inputs() -> Any:
    """scikit-learn's promise that inputs are finite: the rows were just checked, so its own
    check (a pass over every value, per step) is skipped."""
    try:
        from sklearn import config_context
    except ImportError:  # not a scikit-learn model
        return contextlib.nullcontext()
    return config_context(assume_finite=True)


def numpy_twin(estimator: Any, names: list[str] | None) -> Any | None:
    """A shallow copy of ``estimator`` (fitted arrays shared) that takes numpy, or None.

    Used only if it gives the original's probabilities on a probe, so that unusual pipelines
    (e.g. a ColumnTransformer selecting columns by name) keep the DataFrame path.
    """
    if names is None:
        return estimator

    def strip(obj: Any) -> Any:
        twin = copy.copy(obj)
        vars(twin).pop("feature_names_in_", None)
        if steps := getattr(obj, "steps", None):
            twin.steps = [(steps[0][0], strip(steps[0][1])), *steps[1:]]
        return twin

    probe = np.linspace(-1.0, 2.0, 3 * len(names)).reshape(3, len(names))
    try:
        twin = strip(estimator)
        expected = estimator.predict_proba(pd.DataFrame(probe, columns=names))
        return (
            twin if np.allclose(twin.predict_proba(probe), expected, rtol=0, atol=1e-12) else None
        )
    except Exception:  # any doubt: keep the DataFrame path
        return None


def linear_parts(
    estimator: Any, runner: Any
) -> tuple[list[Any], Any, list[str], np.ndarray] | None:
    """(transformer steps of ``runner``, its final linear model, the transformed feature names
    from ``estimator``, 2-D coef), or None when the model is not explainable that way."""
    steps = getattr(runner, "steps", None)
    final = steps[-1][1] if steps else runner
    coef = getattr(final, "coef_", None)
    if coef is None or not hasattr(final, "predict_proba"):
        return None
    pre = [s for _, s in steps[:-1] if s not in (None, "passthrough")] if steps else []
    try:
        names = (
            estimator[:-1].get_feature_names_out()
            if pre
            else getattr(estimator, "feature_names_in_", None)
        )
    except Exception:  # a transformer without names: predictions work, explanations cannot
        return None
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    if names is None or len(names) != coef.shape[1]:
        return None
    return pre, final, [str(n) for n in names], coef


def transform(step: Any, z: Any, *, own: bool) -> tuple[Any, bool]:
    """``step.transform(z)``, and whether the result may be overwritten in turn.

    A StandardScaler overwrites ``z`` when the caller owns it (``own``): its copy of a large
    batch (25 MB for 100k rows x 32 features) costs more than its arithmetic, which is the same
    either way (``X -= mean_; X /= scale_``), so the result is identical.
    """
    if own and isinstance(z, np.ndarray) and type(step).__name__ == "StandardScaler":
        out = step.transform(z, copy=False)
        return out, out is z
    return step.transform(z), False


def plain_linear(steps: list[Any], final: Any) -> bool:
    """Whether :func:`linear_proba` may stand in for ``steps`` + ``final``: StandardScalers and
    a binary LogisticRegression, giving sklearn's own bits on a probe (any doubt: False).

    For a few rows scikit-learn's input validation (~0.2 ms a step) costs more than the
    arithmetic, which is all :func:`linear_proba` does.
    """
    kinds = [type(s).__name__ for s in steps] + [type(final).__name__]
    if set(kinds[:-1]) - {"StandardScaler"} or kinds[-1] != "LogisticRegression":
        return False
    try:
        coef = np.asarray(final.coef_)
        if coef.ndim != 2 or coef.shape[0] != 1 or len(final.classes_) != 2:
            return False
        rng = np.random.default_rng(0)
        for rows in (1, 3):
            probe = rng.normal(size=(rows, coef.shape[1]))
            for step in reversed(steps):  # realistic magnitudes: undo each scaler
                probe = step.inverse_transform(probe)
            with finite_inputs():
                z = probe.copy()
                for step in steps:
                    z = step.transform(z)
                expected = (z, final.predict_proba(z))
            got = linear_proba(steps, final, probe.copy())
            if not all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True)):
                return False
        return True
    except Exception:  # any doubt: scikit-learn's own path
        return False


def linear_proba(steps: list[Any], final: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(transformed ``x``, probabilities) with scikit-learn's arithmetic for the dense case
    (StandardScaler.transform, LogisticRegression.predict_proba), overwriting ``x``."""
    for step in steps:
        if step.with_mean:
            x -= step.mean_.astype(x.dtype)
        if step.with_std:
            x /= step.scale_.astype(x.dtype)
    return x, _logistic(x @ final.coef_.T + final.intercept_)


def scaled_proba(
    steps: list[Any], final: Any, columns: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`linear_proba` of the float64 matrix whose columns are ``columns``, or None when
    a row's score is not finite.

    The matrix is written once: each column is scaled as it is copied in (``X -= mean_`` and
    ``X /= scale_`` element by element are the same operations, so the same bits), instead of a
    copy and then two passes over a batch larger than the CPU's caches. A NaN or infinite
    feature makes its row's score NaN or infinite (every coefficient must be non-zero: the
    caller checks), so finite scores prove finite features; otherwise the caller takes the
    path that finds the rows at fault.
    """
    z = np.empty((len(columns[0]), len(columns)), order="F")
    for j, column in enumerate(columns):
        source, out = column, z[:, j]
        if column.dtype != np.float64:
            out[...] = column  # the cast of an assignment, as features() does
            source = out
        for step in steps:
            if step.with_mean:
                source = np.subtract(source, np.float64(step.mean_[j]), out=out)
            if step.with_std:
                source = np.divide(source, np.float64(step.scale_[j]), out=out)
        if source is column:
            out[...] = column
    scores = z @ final.coef_.T + final.intercept_
    if not np.isfinite(scores).all():
        return None
    return z, _logistic(scores)


def _logistic(scores: np.ndarray) -> np.ndarray:
    """A binary LogisticRegression's probabilities from its scores (overwritten)."""
    from scipy.special import expit

    prob = expit(scores.reshape(-1), out=scores.reshape(-1))
    proba = np.empty((len(prob), 2), order="F")  # np.stack's values, each column contiguous
    np.subtract(1, prob, out=proba[:, 0])
    proba[:, 1] = prob
    return proba
