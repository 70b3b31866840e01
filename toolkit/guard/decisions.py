"""The guard's output as columns: the decision table and the explanations' JSON, built as
pyarrow string arrays without a Python loop over rows (pandas' own string inference costs
~70 us a column even for one row). Pickled by value with the rest of :mod:`toolkit.guard`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from toolkit.guard.input_contract import CheckResult

MODEL, FALLBACK, REJECTED = "model", "fallback", "rejected"
PATHS = (MODEL, FALLBACK, REJECTED)
OUTPUT_COLUMNS = (
    "prediction", "probability", "path", "reason", "model", "version",
    "confidence", "latency_ms", "input_hash", "top_features", "notes",
    "rule",  # the fallback rule that fired (added later: records written before lack it)
)  # fmt: skip
SMALL = 64  # rows up to which plain Python beats numpy/pyarrow set-up costs (measured)
# (first value x 1000, pyarrow array of formatted numbers, table of pieces, what it is for)
NumberCache = tuple[int, Any, Any, Any]


def decision_table(
    index: pd.Index,
    numbers: dict[str, np.ndarray],
    codes: np.ndarray,
    path: np.ndarray,
    reasons: np.ndarray,
    check: CheckResult,
    tops: tuple[np.ndarray, Any] | None,
    *,
    labels: Sequence[str],
    model_name: str,
    version: str,
    rules: np.ndarray | None = None,
) -> pd.DataFrame:
    """The decision table, columns :data:`OUTPUT_COLUMNS`: ``numbers`` as they are, labels
    from ``codes`` (indices into ``labels``) and ``path`` (into :data:`PATHS`), ``reasons``
    where the path is not the model's, the hashes of ``check``, ``tops`` (rows, their
    explanations) and ``rules`` (the fallback rule per row, None on the model's path). String columns are built as pyarrow arrays and wrapped as they are:
    pandas' own str inference costs ~70 us a column even for one row."""
    import pyarrow as pa
    from pandas.arrays import ArrowStringArray

    n = len(index)
    if n <= SMALL and (tops is None or isinstance(tops[1], list)):
        text = _small_text(codes, path, reasons, check, tops, labels, model_name, version, rules)
        return _frame(pa, ArrowStringArray, text, numbers, index)
    text_type = pa.large_string()  # what pandas keeps: anything else it casts, column by column
    off = path != 0  # reasons and fallback rules: None on the model's path
    where = np.flatnonzero(off)
    text = {
        "prediction": _labelled(pa, codes, labels),
        "path": _labelled(pa, path, PATHS),
        "reason": _scatter(pa, reasons[off].tolist(), where, n),
        "model": _repeated(pa, model_name.encode() * n, n, len(model_name.encode())),
        "version": _repeated(pa, version.encode() * n, n, len(version.encode())),
        "input_hash": _repeated(pa, _hex(check.hashes), n, 16),
        "top_features": pa.nulls(n, text_type)
        if tops is None
        else _scatter(pa, tops[1], tops[0], n),
        "notes": pa.repeat(pa.scalar(check.notes[0] if check.notes else None, text_type), n),
        "rule": pa.nulls(n, text_type)
        if rules is None
        else _scatter(pa, rules[off].tolist(), where, n),
    }
    return _frame(pa, ArrowStringArray, text, numbers, index)


def _hex(hashes: np.ndarray) -> bytes:
    """Each hash as 16 lowercase hex digits, back to back: each big-endian byte becomes two
    nibbles (one uint16, high nibble first in memory), then each nibble its ASCII digit."""
    octets = hashes.astype(">u8").view(np.uint8)
    pairs = (octets & np.uint8(15)).astype("<u2")  # little-endian on any machine
    pairs <<= 8
    pairs |= octets >> 4
    digits = pairs.view(np.uint8)
    letters = digits > 9
    digits += np.uint8(48)  # "0"
    digits += letters.view(np.uint8) * np.uint8(39)  # "a" is 39 after "9" + 1
    return digits.tobytes()


def _repeated(pa: Any, data: bytes, n: int, width: int) -> Any:
    """``n`` strings of ``width`` bytes each, back to back in ``data``, as an Arrow array
    built on its buffers (a pyarrow repeat writes them one by one)."""
    offsets = np.arange(n + 1, dtype=np.int64) * width
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _frame(pa: Any, wrap: Any, text: dict[str, Any], numbers: dict[str, Any], index: Any) -> Any:
    """The table from pyarrow string columns (or lists of str/None) and numpy numbers."""
    text_type = pa.large_string()  # what pandas keeps: anything else it casts, column by column
    dtype = pd.StringDtype("pyarrow", na_value=np.nan)
    lists = [v for v in text.values() if isinstance(v, list)]
    if lists:  # one conversion for all of them, then zero-copy slices
        flat = pa.array([x for v in lists for x in v], text_type)
        n = len(lists[0])
        keys = [key for key, v in text.items() if isinstance(v, list)]
        for i, key in enumerate(keys):
            text[key] = flat.slice(i * n, n)
    columns = {
        key: wrap(v if v.type == text_type else v.cast(text_type), dtype=dtype)
        for key, v in text.items()
    }
    return pd.DataFrame(
        {c: columns.get(c, numbers.get(c)) for c in OUTPUT_COLUMNS}, index=index, copy=False
    )


def _small_text(
    codes: np.ndarray,
    path: np.ndarray,
    reasons: np.ndarray,
    check: CheckResult,
    tops: tuple[np.ndarray, list[str]] | None,
    labels: Sequence[str],
    model_name: str,
    version: str,
    rules: np.ndarray | None,
) -> dict[str, list[Any]]:
    """The string columns of a few rows as lists: for one record, building them in Python
    costs a fraction of the pyarrow kernels' set-up (takes, repeats, casts)."""
    n, ways = len(codes), path.tolist()
    top_features: list[Any] = [None] * n
    if tops is not None:
        for row, text in zip(tops[0].tolist(), tops[1], strict=True):
            top_features[row] = text
    return {
        "prediction": [labels[c] if c >= 0 else None for c in codes.tolist()],
        "path": [PATHS[p] for p in ways],
        "reason": [r if p != 0 else None for r, p in zip(reasons.tolist(), ways, strict=True)],
        "model": [model_name] * n,
        "version": [version] * n,
        "input_hash": [f"{h:016x}" for h in check.hashes.tolist()],
        "top_features": top_features,
        "notes": [check.notes[0] if check.notes else None] * n,
        "rule": [None] * n if rules is None else rules.tolist(),
    }


def _labelled(pa: Any, codes: np.ndarray, labels: Sequence[str]) -> Any:
    """Labels from codes (negative: null): a take from the labels, or a list for small batches,
    where the set-up of the take costs more (~75 us)."""
    if len(codes) > SMALL:
        return pa.array(labels, pa.large_string()).take(pa.array(codes, mask=codes < 0))
    return pa.array([labels[c] if c >= 0 else None for c in codes.tolist()], pa.large_string())


def _scatter(pa: Any, values: Any, rows: np.ndarray, n: int) -> Any:
    """A pyarrow string array of length ``n``: ``values`` at ``rows``, null elsewhere."""
    dense = values if isinstance(values, pa.Array) else pa.array(values, pa.large_string())
    if len(rows) == n:
        return dense
    if not len(rows):
        return pa.nulls(n, pa.large_string())
    if dense.null_count or dense.type != pa.large_string() or np.any(np.diff(rows) <= 0):
        where = np.full(n, -1)
        where[rows] = np.arange(len(rows))
        return dense.take(pa.array(where, mask=where < 0))
    # Rows in order: the dense bytes as they are, each row without a value empty and null
    # (a take would copy every byte, ~2 ms for 100k rows).
    ends = np.frombuffer(dense.buffers()[1], dtype=np.int64)[dense.offset :][: len(rows) + 1]
    lengths = np.zeros(n, dtype=np.int64)
    lengths[rows] = np.diff(ends)
    offsets = np.empty(n + 1, dtype=np.int64)
    offsets[0] = ends[0]
    np.cumsum(lengths, out=offsets[1:])
    offsets[1:] += ends[0]
    valid = np.zeros(n, dtype=bool)
    valid[rows] = True
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    data = dense.buffers()[2] or pa.py_buffer(b"")
    return pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), data, bitmap, n - len(rows))


def contributions_json(
    top: np.ndarray, values: np.ndarray, keys: Sequence[str], cache: NumberCache | None
) -> tuple[Any, NumberCache | None]:
    """Each row's top contributions as a JSON object ``{"feature": value, ...}`` (values
    rounded to 3 decimals), and the cache of formatted pieces to pass to the next call.

    ``top`` and ``values`` come from :func:`toolkit.guard.explain.top_contributions`, ``keys``
    are the features' names already JSON-encoded. A list of str for a few rows, else a pyarrow
    string array.
    """
    k = top.shape[1]
    quantised = np.rint(values * 1000.0).astype(np.int64)
    low, high = int(quantised.min(initial=0)), int(quantised.max(initial=0))
    if len(top) <= SMALL or high - low > 4_000_000:  # few rows, or absurd values
        pairs = zip(top.tolist(), quantised.tolist(), strict=True)
        texts = [
            "{" + ",".join(f"{keys[i]}:{q / 1000!r}" for i, q in zip(t, v, strict=True)) + "}"
            for t, v in pairs
        ]
        return texts, cache
    import pyarrow as pa
    import pyarrow.compute as pc

    # No Python loop over rows, and no join: a row's text is 2k consecutive pieces of one
    # table (its feature names with the separator before and the colon after, per rank; the
    # formatted numbers, per process for +-20.000, widened on demand; the same closed with
    # "}"), so one take writes every row's bytes in place, and every 2k-th offset of the
    # result delimits the rows: ~3x faster than taking each piece and joining them.
    offset, numbers, table, made_for = cache or (0, None, None, None)
    if numbers is None or low < offset or high >= offset + len(numbers):
        offset, high = min(low, -20_000), max(high, 20_000)
        numbers = pa.array([repr(q / 1000) for q in range(offset, high + 1)], pa.large_string())
        table = None
    if table is None or made_for != (k, list(keys)):
        brace, nothing = pa.scalar("}", pa.large_string()), pa.scalar("", pa.large_string())
        closing = pc.binary_join_element_wise(numbers, brace, nothing)
        names = [("{" if r == 0 else ",") + key + ":" for r in range(k) for key in keys]
        table = pa.concat_arrays([pa.array(names, pa.large_string()), numbers, closing])
    n, first = len(top), k * len(keys)  # where the numbers start in the table
    where = np.empty((n, 2 * k), dtype=np.int32 if len(table) < 2**31 else np.int64)
    for r in range(k):  # a column at a time: top and values are column-major
        np.add(top[:, r], r * len(keys), out=where[:, 2 * r], casting="unsafe")
        shift = first - offset + (len(numbers) if r == k - 1 else 0)  # the last closes the object
        np.add(quantised[:, r], shift, out=where[:, 2 * r + 1], casting="unsafe")
    # In bounds by construction: top < len(keys), offset <= quantised < offset + len(numbers).
    pieces = pc.take(table, pa.array(where.reshape(-1)), boundscheck=False)
    ends = np.frombuffer(pieces.buffers()[1], dtype=np.int64)[pieces.offset :][: 2 * k * n + 1]
    rows = np.ascontiguousarray(ends[:: 2 * k])
    text = pa.LargeStringArray.from_buffers(n, pa.py_buffer(rows), pieces.buffers()[2])
    return text, (offset, numbers, table, (k, list(keys)))
