"""Reading a data file (CSV, TSV, Parquet, JSON, JSON Lines, Feather) into a pandas DataFrame,
with errors a user can act on.

Every failure (missing file, unsupported extension, unreadable or empty data) raises
:class:`~toolkit.core.errors.ContractError` naming the path, so the CLI can print it without a
traceback. pandas is imported lazily: ``toolkit --help`` must not pay for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.core.errors import ContractError

if TYPE_CHECKING:
    import pandas as pd

#: Suffixes we know how to read, mapped to the reader kind. Matched on the lower-cased name so
#: ``DATA.CSV`` works, and on the double suffix first so ``x.csv.gz`` is a compressed CSV.
SUPPORTED_SUFFIXES: dict[str, str] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".feather": "feather",
}


def table_format(path: Path) -> str:
    """Return the reader kind (``csv``, ``tsv``, ``parquet``, ``json``, ``jsonl``, ``feather``)
    for ``path`` from its name.

    Raises:
        ContractError: the extension is not one we read.
    """
    name = path.name.lower()
    # Longest suffix first so ".csv.gz" wins over a bare ".gz".
    for suffix in sorted(SUPPORTED_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUPPORTED_SUFFIXES[suffix]
    raise ContractError(
        f"{path}: unsupported data file extension {path.suffix or '(none)'!r}; "
        "supported: CSV, TSV, Parquet, JSON, JSON Lines and Feather",
        hint="use one of " + ", ".join(SUPPORTED_SUFFIXES),
    )


def read_table(path: Path | str, *, allow_empty: bool = False) -> pd.DataFrame:
    """Read a CSV, TSV, Parquet, JSON (records), JSON Lines or Feather file into a DataFrame.

    Args:
        path: the data file; see :data:`SUPPORTED_SUFFIXES`.
        allow_empty: accept a file with a header but zero rows. An empty (0-byte) file is
            always an error because it has no columns either.

    Returns:
        The frame, with pandas' default dtypes (``str`` for text columns under pandas 3).

    Raises:
        ContractError: the file is missing, not a regular file, has an unsupported extension,
            cannot be parsed, is empty, or has no rows (unless ``allow_empty``).
    """
    path = Path(path)
    kind = table_format(path)
    if not path.exists():
        raise ContractError(f"{path}: data file not found")
    if not path.is_file():
        raise ContractError(f"{path}: not a regular file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ContractError(f"{path}: cannot read data file: {exc.strerror or exc}") from exc
    if size == 0:
        raise ContractError(f"{path}: data file is empty (0 bytes)")

    import pandas as pd

    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        elif kind == "feather":
            frame = pd.read_feather(path)
        elif kind in ("json", "jsonl"):
            frame = pd.read_json(path, lines=kind == "jsonl")
        else:
            frame = pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    except pd.errors.EmptyDataError as exc:
        # A CSV of blank lines: pandas sees no header at all.
        raise ContractError(f"{path}: data file has no columns") from exc
    except (OSError, ValueError) as exc:
        # ParserError, UnicodeDecodeError and pyarrow's ArrowInvalid all subclass ValueError.
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ContractError(f"{path}: cannot read {kind.upper()} data: {message}") from exc
    if len(frame) == 0 and not allow_empty:
        raise ContractError(
            f"{path}: data file has no rows (columns: {', '.join(map(str, frame.columns))})"
        )
    return frame
