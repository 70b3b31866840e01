"""Identity of the data a run read and wrote: content hash and size, plus rows and schema for
tables (CSV, Parquet, TSV, JSON, Feather), and the hash of a spec file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from toolkit.core.fsutil import sha256_file, tree_sha256

#: Rows per pandas chunk when reading a CSV for its fingerprint (bounds memory on large files).
CSV_CHUNK_ROWS = 200_000


def spec_hash(path: Path) -> str:
    """SHA-256 of a spec file's bytes: a changed spec is a different pipeline version."""
    return sha256_file(Path(path))


# Hashing a large input costs seconds and the same file is often an output of one step and the
# input of the next, so fingerprints are cached per process by (path, device, inode, size, mtime).
# The path is absolute, not resolved: resolving costs a syscall per folder of the path (15 ms for
# a 200-step run's outputs), and the device and inode already say which file it is.
_cache: dict[tuple[str, int, int, int, int], dict[str, Any]] = {}
_cache_lock = threading.Lock()


def _csv_facts(path: Path) -> dict[str, Any]:
    import pandas as pd  # lazy: pandas costs ~0.3 s to import

    # Chunked so a large CSV never sits in memory whole. The zero-row slices keep each chunk's
    # dtypes; concatenating them applies pandas' own promotion rules (int + NaN -> float), which
    # gives the dtypes a whole-file read would infer.
    rows = 0
    heads = []
    with pd.read_csv(path, chunksize=CSV_CHUNK_ROWS) as reader:
        for chunk in reader:
            rows += len(chunk)
            heads.append(chunk.iloc[:0])
    if not heads:
        return {"format": "csv", "rows": 0, "schema": {}}
    schema = pd.concat(heads).dtypes if len(heads) > 1 else heads[0].dtypes
    return {"format": "csv", "rows": rows, "schema": {str(k): str(v) for k, v in schema.items()}}


def _parquet_facts(path: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq  # lazy

    # Footer metadata only: row count and schema without reading a single data page.
    pf = pq.ParquetFile(path)
    try:
        schema = {field.name: str(field.type) for field in pf.schema_arrow}
        return {"format": "parquet", "rows": pf.metadata.num_rows, "schema": schema}
    finally:
        pf.close()


_OTHER_TABLES = {
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".feather": "feather",
}


def _table_facts(path: Path, kind: str) -> dict[str, Any]:
    """Rows and pandas dtypes of the other table formats contracts accept (read whole)."""
    import pandas as pd  # lazy

    if kind == "feather":
        frame = pd.read_feather(path)
    elif kind == "tsv":
        frame = pd.read_csv(path, sep="\t")
    else:
        frame = pd.read_json(path, lines=kind == "jsonl")
    schema = {str(k): str(v) for k, v in frame.dtypes.items()}
    return {"format": kind, "rows": len(frame), "schema": schema}


def _scalar_object(path: Path, limit: int = 1 << 20) -> bool:
    """A small ``.json`` file holding one object of scalars (``{"accuracy": 0.97}``, a step's
    metrics): not a table. pandas refuses it, but only after importing itself, half a second
    of every run's records, a fully cached one's included."""
    if path.suffix.lower() != ".json" or path.stat().st_size > limit:
        return False
    try:
        value = json.loads(path.read_bytes())
    except ValueError:
        return False
    return (
        isinstance(value, dict)
        and bool(value)
        and not any(isinstance(v, (dict, list)) for v in value.values())
    )


def _is_csv(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes]
    return bool(suffixes) and (
        suffixes[-1] == ".csv" or (len(suffixes) > 1 and suffixes[-2] == ".csv")  # .csv.gz etc.
    )


def _file_fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    key = (os.path.abspath(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None:
        return dict(cached)
    facts: dict[str, Any] = {
        "path": str(path),
        "kind": "file",
        "sha256": sha256_file(path),
        "size": stat.st_size,
    }
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            facts.update(_parquet_facts(path))
        elif _is_csv(path):
            facts.update(_csv_facts(path))
        elif path.suffix.lower() in _OTHER_TABLES and not _scalar_object(path):
            facts.update(_table_facts(path, _OTHER_TABLES[path.suffix.lower()]))
    except Exception as exc:  # an unreadable table is still hashed; say why it was not parsed
        facts["error"] = f"{type(exc).__name__}: {exc}"
    with _cache_lock:
        _cache[key] = facts
    return dict(facts)


def fingerprint(path: Path) -> dict[str, Any]:
    """Identity of a data file or folder: content hash, size, and rows/schema for tables.

    * file: ``{"path", "kind": "file", "sha256", "size"}`` plus, for CSV (pandas dtypes) and
      Parquet (Arrow types, from the footer), ``{"format", "rows", "schema": {column: type}}``.
    * directory: ``{"path", "kind": "dir", "sha256", "size", "files"}`` where the hash is
      :func:`~toolkit.core.fsutil.tree_sha256` (every file's relative path and content hash, so
      renames count as changes; links not followed; hidden names skipped). A folder of
      Parquet files (a partitioned dataset) also gets the summed ``rows`` and the first schema.
    * missing: ``{"path", "kind": "missing"}``.
    """
    path = Path(path)
    if path.is_file():
        return _file_fingerprint(path)
    if not path.is_dir():
        return {"path": str(path), "kind": "missing"}
    parts: list[dict[str, Any]] = []

    def hashed(file: Path) -> str:  # the tree hash, keeping each file's facts for the totals
        parts.append(_file_fingerprint(file))
        return str(parts[-1]["sha256"])

    facts: dict[str, Any] = {
        "path": str(path),
        "kind": "dir",
        "sha256": tree_sha256(path, hashed),
        "size": sum(p["size"] for p in parts),
        "files": len(parts),
    }
    if parts and all(p.get("format") == "parquet" for p in parts):
        facts.update(
            format="parquet", rows=sum(p["rows"] for p in parts), schema=parts[0]["schema"]
        )
    return facts
