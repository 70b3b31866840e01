"""Which features explain a linear model's answer, for every row of a batch at once.

A row's contribution of feature ``j`` is coefficient x transformed value (for a StandardScaler
pipeline: coefficient x standardised value); the guard records the ``k`` largest in magnitude.
Pure numpy, no per-row Python: it is pickled by value into logged models with the rest of
:mod:`toolkit.guard`.
"""

from __future__ import annotations

import numpy as np

SMALL = 64  # rows up to which one argsort beats the set-up of the scans below (measured)
BLOCK = 16_384  # rows per block of the exact scan: its few vectors stay in the CPU's cache
WIDE = 64  # columns up to which the 32-bit scan leaves enough bits of each value to rank them
SPARSE = 32  # a column beating the k+1-th key in fewer than 1/SPARSE of the rows is inserted
# there only


def top_contributions(
    z: np.ndarray, coef: np.ndarray, chosen: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The columns of the ``k`` largest |coefficient x value| of each row, largest first (the
    first column on ties), and those signed contributions: ``(n, k)`` arrays.

    Multiclass models use the coefficients of each row's predicted class (``chosen``).
    """
    n, m = z.shape
    weights = coef[0] if coef.shape[0] == 1 else None
    if n <= SMALL or k == 0:  # a few rows: one sort beats the set-up of the scans below
        contrib = z * (weights if weights is not None else coef[chosen])
        top = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
        return top, np.take_along_axis(contrib, top, axis=1)
    z = np.asfortranarray(z)  # columns contiguous
    top = _exact(z, coef, chosen, k) if k >= m or m > WIDE else _ranked(z, coef, chosen, k)
    w = weights[top] if weights is not None else coef[chosen[:, None], top]
    return top, z.ravel(order="F")[top * n + np.arange(n)[:, None]] * w


def _exact(z: np.ndarray, coef: np.ndarray, chosen: np.ndarray, k: int) -> np.ndarray:
    """The top-k columns by one pass over the columns, no per-row Python.

    Each contribution becomes a sortable integer key, its float64 bits without the sign (|c|:
    IEEE order is integer order for non-negative floats) with the column number in the lowest
    bits, so that keys are unique and the maximum also names its column (low - j there: the
    first column wins ties, as argmax would). A running top-k of keys is kept by min/max
    insertion, block by block. The ranking is by these keys: |c| without its lowest bits.
    """
    n, m = z.shape
    weights = coef[0] if coef.shape[0] == 1 else None
    bits = max(1, (m - 1).bit_length())
    low = np.uint64((1 << bits) - 1)
    keep = np.uint64(0x7FFF_FFFF_FFFF_FFFF) & ~low
    if n <= SMALL:  # the same keys, sorted row by row (unique: no ties)
        contrib = z * (weights if weights is not None else coef[chosen])
        keys = (contrib.view(np.uint64) & keep) | (low - np.arange(m, dtype=np.uint64))
        return (low - (np.sort(keys, axis=1)[:, : -k - 1 : -1] & low)).astype(np.intp)
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
            _insert(slots, key, spare)
    return (low - (keys & low)).astype(np.intp).T


def _ranked(z: np.ndarray, coef: np.ndarray, chosen: np.ndarray, k: int) -> np.ndarray:
    """:func:`_exact`'s answer from 32-bit keys, half the bytes of its 64-bit ones.

    A key is |c| as float32, its lowest bits replaced by the column as in :func:`_exact`; the
    top k+1 keys are kept. Rounding to float32 is monotonic, so where the kept keys' values
    are at least two steps apart, they are ranked as their float64 keys would be, and every
    other column ranks below them; the few rows where two are closer are ranked by
    :func:`_exact`. Columns go strongest first (by a sample of rows), so that the k+1-th key
    soon rises and most later columns beat it in few rows: those rows only are updated.
    """
    n, m = z.shape
    weights = coef[0] if coef.shape[0] == 1 else None
    bits = max(1, (m - 1).bit_length())
    low = np.uint32((1 << bits) - 1)
    keep = np.uint32(0x7FFF_FFFF) & ~low
    step = max(1, n // 1024)
    sample = weights if weights is not None else coef[chosen[::step]]
    order = np.argsort(-np.abs(z[::step] * sample).mean(axis=0), kind="stable").tolist()
    keys = np.zeros((k + 1, n), dtype=np.uint32)
    hit = np.empty(n, dtype=bool)
    key, spare = np.empty(n, np.uint32), np.empty(n, np.uint32)
    slots = list(keys)
    for t, j in enumerate(order):
        w = weights[j] if weights is not None else coef[chosen, j]  # the float64 product, rounded
        np.multiply(z[:, j], w, out=key.view(np.float32), casting="same_kind")
        np.bitwise_and(key, keep, out=key)
        np.bitwise_or(key, low - np.uint32(j), out=key)
        if t > k:  # the k+1 slots are full: insert where the key beats the last one
            np.greater(key, slots[k], out=hit)
            count = np.count_nonzero(hit)
            if count * SPARSE < n:
                if count:
                    where = np.flatnonzero(hit)
                    _insert(
                        [slot[where] for slot in slots], key[where], spare[:count], where, slots
                    )
                continue
        _insert(slots, key, spare)
    steps = keys >> np.uint32(bits)
    unsure = np.zeros(n, dtype=bool)
    for r in range(k):
        unsure |= steps[r] - steps[r + 1] < 2  # sorted: no wrap-around
    top = (low - (keys[:k] & low)).astype(np.intp).T
    if unsure.any():
        rows = np.flatnonzero(unsure)
        top[rows] = _exact(np.asfortranarray(z[rows]), coef, chosen[rows], k)
    return top


def _insert(
    slots: list[np.ndarray],
    key: np.ndarray,
    spare: np.ndarray,
    where: np.ndarray | None = None,
    into: list[np.ndarray] | None = None,
) -> None:
    """Insert ``key`` into the sorted ``slots`` (largest first; the smallest falls out), in
    place, or into ``into`` at rows ``where`` when ``slots`` are those rows' copies."""
    for r in range(len(slots) - 1):  # the larger stays, the smaller moves down a slot
        np.minimum(slots[r], key, out=spare)
        np.maximum(slots[r], key, out=slots[r])
        key, spare = spare, key
    np.maximum(slots[-1], key, out=slots[-1])
    if into is not None:
        for slot, copy in zip(into, slots, strict=True):
            slot[where] = copy
