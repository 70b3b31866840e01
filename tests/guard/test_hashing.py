"""A record's input hash does not depend on the batch it came in: the same string hashes the
same alone, among strings of its own length, and among strings of other lengths."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from toolkit.guard.hashing import hash_arrow


def _alone(value: str) -> int:
    return int(hash_arrow(pa.array([value], pa.string()), np.zeros(1, bool))[0])


@pytest.mark.parametrize(
    "batch",
    [
        ["abc", "d", "efghi"],  # lengths 3, 1, 5: 9 bytes, as many as three of the first's
        ["ab", "cd", "ef"],  # one length: read as a matrix
        ["", "x", "", "yz"],
        ["é", "ab"],  # 2 bytes each, one of them one character
    ],
)
def test_a_string_hashes_the_same_alone_and_in_any_batch(batch: list[str]) -> None:
    hashes = hash_arrow(pa.array(batch, pa.string()), np.zeros(len(batch), bool))
    assert [int(h) for h in hashes] == [_alone(v) for v in batch]
