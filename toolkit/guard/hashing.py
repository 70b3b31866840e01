"""The input hashes of the contract check, and the one pass over a batch's numeric columns that
also finds their bounds.

A record's hash is the sum of its values' hashes, each times a 64-bit weight of its column: a
number by its float64 bits, a string (or any other value, tagged with its type) by its bytes.
The arithmetic is modulo 2**64, so any grouping of the sums gives the same hash.

Pickled by value with the rest of :mod:`toolkit.guard`; numpy, pandas and pyarrow only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

# Per-byte-position weights of the string hash (odd, so that no byte difference can vanish).
_BYTE_WEIGHTS = pd.util.hash_array(np.arange(1, 257, dtype=np.uint64)) | np.uint64(1)


def scan_numbers(
    source: np.ndarray, columns: list[int], weights: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """``source``'s ``columns`` (in that order, views), each one's min and max (NaN when it
    holds a NaN) and the rows' hashes of these values (``weights`` per column).

    Column by column, so that the max and the hash read a column the min has just brought into
    the CPU's cache: the batch is read from memory once, not three times.
    """
    n = len(source)
    views = [source[:, k] for k in columns]
    low, high = np.full(len(columns), np.nan), np.full(len(columns), np.nan)
    hashes, spare = np.zeros(n, dtype=np.uint64), np.empty(n, dtype=np.uint64)
    for j, (column, weight) in enumerate(zip(views, weights, strict=True)):
        if n:
            low[j], high[j] = column.min(), column.max()
        hashes += np.multiply(column.view(np.uint64), weight, out=spare)
    return views, low, high, hashes


def number_hashes(matrix: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The rows' hashes of ``matrix``'s float64 bits as received (-0.0 and 0.0 differ):
    column by column, as numpy's integer matmul is a plain loop, twice as slow as these ufuncs."""
    hashes, spare = np.zeros(len(matrix), dtype=np.uint64), np.empty(len(matrix), np.uint64)
    for col, weight in enumerate(weights):
        hashes += np.multiply(matrix[:, col].view(np.uint64), weight, out=spare)
    return hashes


def hash_objects(values: np.ndarray) -> np.ndarray:
    """:func:`hash_arrow` of any values: non-strings are tagged with their type first, so that
    5, "5" and None differ, and a string hashes the same whichever path read it."""
    import pyarrow as pa

    tagged = np.array(values, dtype=object)
    null = pd.isna(tagged)
    tagged[null] = ""
    odd = ~np.fromiter(map(_is_str, tagged), bool, len(tagged))
    tagged[odd] = [f"\1{type(v).__name__}:{v!r}" for v in tagged[odd]]
    return hash_arrow(pa.array(tagged, pa.string()), null)


def hash_arrow(strings: Any, null: np.ndarray) -> np.ndarray:
    """Hashes of a pyarrow string array, from its buffers: the sum of (byte + 1) x a weight per
    position, plus the length; 3x faster than siphash on 100k strings converted to objects."""
    wide = str(strings.type) in ("large_string", "large_utf8")
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int64 if wide else np.int32)
    offsets = offsets[strings.offset : strings.offset + len(strings) + 1].astype(np.int64)
    lengths, start, size = np.diff(offsets), int(offsets[0]), int(offsets[-1] - offsets[0])
    hashes = lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    width = int(lengths[0]) if len(lengths) else 0
    if size and width and (lengths == width).all():  # all one length (IDs, codes): a matrix
        data = np.frombuffer(strings.buffers()[2], dtype=np.uint8)[start : start + size]
        weights = _BYTE_WEIGHTS[np.arange(width) % 256]
        # sum((byte + 1) x weight) = sum(byte x weight) + sum(weight), modulo 2**64
        hashes += data.reshape(len(lengths), width).astype(np.uint64) @ weights
        hashes += weights.sum(dtype=np.uint64)
    elif size:
        data = np.frombuffer(strings.buffers()[2], dtype=np.uint8)[start : start + size]
        starts = offsets[:-1] - start
        where = np.arange(size) - np.repeat(starts, lengths)  # each byte's position in its string
        weighted = (data.astype(np.uint64) + np.uint64(1)) * _BYTE_WEIGHTS[where % 256]
        sums = np.add.reduceat(np.append(weighted, np.uint64(0)), np.minimum(starts, size))
        hashes += np.where(lengths > 0, sums, np.uint64(0))  # reduceat misreads empty strings
    hashes[null] = np.uint64(0x5BD1E995)
    return hashes


def _is_str(value: Any) -> bool:
    return isinstance(value, str)
