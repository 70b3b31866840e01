"""Read a batch of raw records for guarded scoring, so that a bad cell stays in its own row.

``pandas.read_csv`` types a column as a whole: one ``abc`` among numbers turns the column into
strings, and the guard, which rightly refuses ``"656.1"`` as a number (JSON callers must send
numbers), would then reject every row of the batch. Here each column the input contract declares
numeric is converted cell by cell: what parses becomes a float, what does not stays as it was
written, so only the rows holding it are rejected, each with a reason naming the value. Empty
cells and pandas' usual null markers (``NA``, ``null``...) are nulls, as with ``read_csv``.

:func:`storable` turns such mixed columns into text for writing the records to Parquet.

A header-only file is a batch of zero records: an empty frame with the file's columns, which
the guard answers with zero decisions (callers decide whether an empty batch is an error).

Build and scoring time only: nothing here is pickled into a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from toolkit.guard.input_contract import NUMERIC, InputContract

_FORMATS = {".csv": ",", ".tsv": "\t", ".txt": ","}


def read_batch(path: str | Path, contract: InputContract) -> pd.DataFrame:
    """The records of a CSV, TSV or Parquet file, typed per cell for ``contract``.

    Args:
        path: the batch file (``.csv``, ``.tsv``, ``.txt`` or ``.parquet``).
        contract: the guard's input contract (``guard.contract``): which columns are numbers.

    Raises:
        ContractError: the file is missing, unreadable, or has no header line.
    """
    from toolkit.core.errors import ContractError

    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            frame = pd.read_parquet(path)  # typed by its writer: nothing to repair
        else:
            # A byte that is not UTF-8 (an export in Latin-1, a corrupt byte) is kept visibly as
            # \xe9 in its cell: the rows are still read, so each one gets its decision (a bad
            # number rejects its own row), instead of the whole batch failing to decode.
            frame = pd.read_csv(
                path, sep=_FORMATS.get(suffix, ","), encoding_errors="backslashreplace"
            )
    except FileNotFoundError as exc:
        raise ContractError(f"{path}: batch file not found") from exc
    except pd.errors.EmptyDataError as exc:
        raise ContractError(
            f"{path}: batch file has no header line",
            hint="a batch needs at least the header; an empty batch is a header with no rows",
        ) from exc
    except (OSError, ValueError) as exc:  # ParserError, UnicodeDecodeError, ArrowInvalid
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ContractError(f"{path}: cannot read the batch: {message}") from exc
    for rule in contract.columns:
        if rule.kind == NUMERIC and rule.name in frame and not _is_numeric(frame[rule.name]):
            frame[rule.name] = cell_by_cell(frame[rule.name])
    return frame


def cell_by_cell(column: pd.Series) -> pd.Series:
    """Numbers where a cell parses as one, the cell as written where it does not, null where
    it is null: an object column when something did not parse, float64 otherwise."""
    numbers = pd.to_numeric(column, errors="coerce")
    failed = numbers.isna().to_numpy() & column.notna().to_numpy()
    if not failed.any():
        return numbers.astype(np.float64)
    mixed: Any = numbers.to_numpy(object, copy=True)
    mixed[failed] = column.to_numpy(object)[failed]
    return pd.Series(mixed, index=column.index, name=column.name, dtype=object)


def storable(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with each column that mixes numbers and text (what :func:`cell_by_cell` makes
    of a column holding a bad cell) as text, so that Parquet can store the records as read,
    bad cells included; other columns are unchanged."""
    mixed = {
        c: "string"
        for c in frame.columns
        if frame[c].dtype == object and frame[c].dropna().map(type).nunique() > 1
    }
    return frame.astype(mixed) if mixed else frame


def _is_numeric(column: pd.Series) -> bool:
    return column.dtype.kind in "iuf"
