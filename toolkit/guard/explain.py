"""Which features explain a linear model's answer, for every row of a batch at once.

A row's contribution of feature ``j`` is coefficient x transformed value (for a StandardScaler
pipeline: coefficient x standardised value); the guard records the ``k`` largest in magnitude.
Pure numpy, no per-row Python: it is pickled by value into logged models with the rest of
:mod:`toolkit.guard`.
"""

from __future__ import annotations

import numpy as np

SMALL = 64  # rows up to which one argsort beats the set-up of the blockwise scan (measured)
BLOCK = 16_384  # rows per block of the top-k scan: its few vectors stay in the CPU's cache


def top_contributions(
    z: np.ndarray, coef: np.ndarray, chosen: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The columns of the ``k`` largest |coefficient x value| of each row, largest first (the
    first column on ties), and those signed contributions: ``(n, k)`` arrays.

    Multiclass models use the coefficients of each row's predicted class (``chosen``).
    """
    n, m = z.shape
    weights = coef[0] if coef.shape[0] == 1 else None
    if n <= SMALL or k == 0:  # a few rows: one sort beats the set-up of the scan below
        contrib = z * (weights if weights is not None else coef[chosen])
        top = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        return top, np.take_along_axis(contrib, top, axis=1)
    # One pass over the columns, no per-row Python: each contribution becomes a sortable
    # integer key, its float bits without the sign (|c|: IEEE order is integer order for
    # non-negative floats) with the column number in the lowest bits, so that keys are unique
    # and the maximum also names its column (low - j there: the first column wins ties, as
    # argmax would). A running top-k of keys is kept by min/max insertion, block by block.
    bits = max(1, (m - 1).bit_length())
    low = np.uint64((1 << bits) - 1)
    keep = np.uint64(0x7FFF_FFFF_FFFF_FFFF) & ~low
    z = np.asfortranarray(z)  # columns contiguous
    keys = np.zeros((k, n), dtype=np.uint64)
    for a in range(0, n, BLOCK):
        b = min(n, a + BLOCK)
        key, spare = np.empty(b - a, np.uint64), np.empty(b - a, np.uint64)
        slots = [keys[r, a:b] for r in range(k)]
        for j in range(m):
            w = weights[j] if weights is not None else coef[chosen[a:b], j]
            np.multiply(z[a:b, j], w, out=key.view(np.float64))
            np.bitwise_and(key, keep, out=key)
            np.bitwise_or(key, low - np.uint64(j), out=key)
            for r in range(k - 1):  # the larger stays, the smaller moves down a slot
                np.minimum(slots[r], key, out=spare)
                np.maximum(slots[r], key, out=slots[r])
                key, spare = spare, key
            np.maximum(slots[k - 1], key, out=slots[k - 1])
    top = (low - (keys & low)).astype(np.intp).T
    w = weights[top] if weights is not None else coef[chosen[:, None], top]
    return top, z.ravel(order="F")[top * n + np.arange(n)[:, None]] * w
