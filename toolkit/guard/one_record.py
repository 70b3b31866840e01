"""The input contract's shortcut for one record that passes it: plain Python over its values.

:meth:`toolkit.guard.input_contract.InputContract.check` is numpy over a matrix; for a single
row its set-up (per-column arrays, masks, pyarrow hashing of each string) costs ~1.5 ms, most of
a served call. A record that passes every check needs none of the per-row reasons, so it is
checked here value by value and given the same :class:`CheckResult` (the same frame, hash and
notes). Anything else, a record that fails or holds a value of an unusual type, and contracts
with value sets (whose ``isin`` semantics are pandas'), are left to the general path: the
shortcut answers only when it is sure to agree (``tests/guard/test_fast_paths.py`` compares).

Pickled by value with the rest of :mod:`toolkit.guard` into logged models.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from toolkit.guard.hashing import hash_objects
from toolkit.guard.input_contract import (
    STRING,
    CheckResult,
    InputContract,
    is_number,
)


class RecordCheck:
    """``InputContract.check`` for one valid record; None when the general path must answer."""

    def __init__(self, contract: InputContract) -> None:
        plan = contract.compiled
        self.num, self.other = plan["num"], plan["other"]
        self.lo, self.hi = plan["lo"].tolist(), plan["hi"].tolist()
        self.num_weights, self.other_weights = plan["weights"]
        self.known, self.num_index = plan["known"], plan["num_index"]
        self.needed = [r.name for r in contract.columns if r.required or r.not_null]
        self.patterns = [  # the general path matches regexes on string columns only
            re.compile(r.regex) if r.kind == STRING and r.regex else None for r in self.other
        ]

    @staticmethod
    def usable(contract: InputContract) -> bool:
        """Whether the shortcut can agree with the general path on this contract's rules."""
        return not any(r.value_set or r.forbidden for r in contract.columns)

    def __call__(self, df: pd.DataFrame) -> CheckResult | None:
        if len(df) != 1 or df.columns.has_duplicates:
            return None
        position = {c: i for i, c in enumerate(df.columns.tolist())}
        if any(name not in position for name in self.needed):
            return None
        cells = df.to_numpy(object)  # what the general path reads a few rows from, too
        values = cells[0]
        row = []
        for k, rule in enumerate(self.num):
            x = math.nan  # a missing optional column, or None: null, as in the general path
            v = values[position[rule.name]] if rule.name in position else None
            if v is not None:
                if not is_number(v):
                    return None  # e.g. "12.5", True, pd.NA: the general path says why
                try:
                    x = float(v)
                except OverflowError:
                    return None
                if x < self.lo[k] or x > self.hi[k]:
                    return None
            if rule.not_null and x != x:
                return None
            row.append(x)
        matrix = np.array([row], dtype=np.float64, order="F").reshape(1, len(self.num))
        hashes = matrix.view(np.uint64) @ self.num_weights
        columns = []
        for rule, weight, pattern in zip(
            self.other, self.other_weights, self.patterns, strict=True
        ):
            if rule.name not in position:
                column: Any = np.full(1, None, dtype=object)
            else:
                column = cells[:, position[rule.name]]
                v = column[0]
                null = v is None or (is_number(v) and v != v)
                if null:
                    if rule.not_null:
                        return None
                elif isinstance(v, str):
                    if pattern is not None and pattern.search(v) is None:
                        return None
                elif rule.kind == STRING or not is_number(v):
                    return None  # a wrong type, or something pandas may call null (pd.NA...)
            hashes = hashes + hash_objects(column) * weight
            columns.append((rule.name, column))
        frame = pd.DataFrame(matrix, columns=self.num_index, index=df.index, copy=False)
        for name, column in columns:  # as the general path builds it, column by column
            frame.insert(len(frame.columns), name, column)
        unknown = sorted(str(c) for c in position if c not in self.known)
        notes = (f"ignored unknown columns: {', '.join(unknown)}",) if unknown else ()
        reasons = np.full(1, None, dtype=object)
        return CheckResult(np.ones(1, bool), reasons, frame, pd.util.hash_array(hashes), notes)


def record_check(contract: InputContract) -> RecordCheck | None:
    """The shortcut for ``contract``, or None when it cannot be sure to agree."""
    return RecordCheck(contract) if RecordCheck.usable(contract) else None
