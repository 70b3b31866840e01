"""An index of decision records, so that ``toolkit decisions`` finds the records of one input
without scanning every run folder.

Where: ``<runs_dir>/decisions.sqlite``, beside the run folders the records live in (runs of
every pipeline of the project share it). What: one row per decision (model, record id, input
hash, when, version, path, reason, rule, confidence, top features) pointing at its file and
row, one row per indexed file (pipeline, run, step, the input fields), and per file and model
the number of decisions (what a search covered, reported when nothing is found). Lookups by
``(model, record_id)`` and ``(model, input_hash)`` are B-tree searches.

The records stay the truth: each Parquet file written by :func:`write_decisions` carries, in
its schema metadata, what the index needs (id column, run, scoring time), so
:func:`rebuild` can recreate the index from the files alone (``toolkit decisions --reindex``).

Crash safety: a file is written atomically (temporary file, then rename) before it is
indexed, and indexed in one SQLite transaction, so a crash leaves either all of a file's rows
or none (then ``--reindex`` picks the file up). :func:`rebuild` builds a new database beside
the old one and renames it over, so readers never see a half-built index.

Build and scoring time only: nothing here is pickled into a model.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.guard.decisions import OUTPUT_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

INDEX_NAME = "decisions.sqlite"
META_KEY = b"toolkit.decisions"
# What makes a Parquet file a guard's decision records (the columns every version wrote).
DECISION_MARKERS = frozenset({"path", "reason", "model", "version", "input_hash"})
INDEXED = (
    "version", "path", "reason", "rule", "prediction", "confidence", "top_features", "notes",
)  # fmt: skip
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    file_id INTEGER PRIMARY KEY, file TEXT UNIQUE NOT NULL, pipeline TEXT, run_id TEXT,
    step TEXT, scored_at TEXT NOT NULL, id_column TEXT, fields TEXT NOT NULL, rows INTEGER);
CREATE TABLE IF NOT EXISTS decisions (
    file_id INTEGER NOT NULL, row INTEGER NOT NULL, model TEXT NOT NULL, record_id TEXT,
    input_hash TEXT, scored_at TEXT NOT NULL, version TEXT, path TEXT, reason TEXT, rule TEXT,
    prediction TEXT, confidence REAL, top_features TEXT, notes TEXT,
    PRIMARY KEY (file_id, row)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS file_models (
    file_id INTEGER NOT NULL, model TEXT NOT NULL, rows INTEGER NOT NULL,
    PRIMARY KEY (file_id, model)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS decisions_by_id ON decisions (model, record_id, scored_at);
CREATE INDEX IF NOT EXISTS decisions_by_hash ON decisions (model, input_hash, scored_at);
"""


@dataclass(frozen=True)
class RunRef:
    """The run a file of decision records came from."""

    pipeline: str | None = None
    run_id: str | None = None
    step: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunRef:
        """The run of the notebook executing now (``toolkit run`` sets these variables)."""
        env = os.environ if env is None else env
        return cls(env.get("TOOLKIT_PIPELINE"), env.get("TOOLKIT_RUN_ID"), env.get("TOOLKIT_STEP"))


def index_path(runs_dir: Path) -> Path:
    return Path(runs_dir) / INDEX_NAME


def connect(db: Path) -> sqlite3.Connection:
    """A connection with the schema in place; waits for a concurrent writer (parallel runs)."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db, timeout=60)
    conn.executescript(SCHEMA)
    return conn


def write_decisions(
    records: pd.DataFrame,
    path: str | Path,
    *,
    id_column: str | None,
    runs_dir: str | Path | None = None,
    run: RunRef | None = None,
) -> Path | None:
    """Write decision records (inputs next to the guard's columns) to Parquet, atomically,
    and index them; the index used, or None when there is none to update.

    ``runs_dir`` defaults to the runs folder of the pipeline run executing this notebook
    (two levels above ``TOOLKIT_RUN_DIR``); run by hand outside a pipeline, the file is
    written and not indexed. ``id_column`` names the column identifying a record.
    """
    path = Path(path).resolve()
    if runs_dir is None and os.environ.get("TOOLKIT_RUN_DIR"):
        runs_dir = Path(os.environ["TOOLKIT_RUN_DIR"]).parent.parent
    run = run or RunRef.from_env()
    meta = {"id_column": id_column, "scored_at": _now(), **run.__dict__}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_records(path, records, meta)
    if runs_dir is None:
        return None
    db = index_path(Path(runs_dir))
    with closing(connect(db)) as conn:
        index_frame(conn, path, records, meta)
    return db


def write_records(path: Path, records: pd.DataFrame, meta: Mapping[str, Any]) -> None:
    """``records`` to Parquet at ``path``, atomically, with ``meta`` (run, model, id column)
    in the schema's metadata, where :func:`rebuild` reads it back."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(records, preserve_index=False)
    table = table.replace_schema_metadata(
        {**(table.schema.metadata or {}), META_KEY: json.dumps(meta).encode()}
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def index_frame(
    conn: sqlite3.Connection, file: Path, records: pd.DataFrame, meta: Mapping[str, Any]
) -> int:
    """(Re)index one file's records in one transaction; the number of rows indexed."""
    id_column = meta.get("id_column")
    n = len(records)

    def column(name: str | None) -> list[Any]:
        if name is None or name not in records:
            return [None] * n
        values = records[name].astype(object)
        return values.where(records[name].notna(), None).tolist()

    ids = [None if v is None else str(v) for v in column(id_column)]
    fields = [c for c in records.columns if c not in OUTPUT_COLUMNS]
    with conn:  # one transaction: all of the file's rows, or none
        (file_id,) = conn.execute(
            "INSERT INTO files (file, pipeline, run_id, step, scored_at, id_column, fields, rows)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (file) DO UPDATE SET"
            " pipeline = excluded.pipeline, run_id = excluded.run_id, step = excluded.step,"
            " scored_at = excluded.scored_at, id_column = excluded.id_column,"
            " fields = excluded.fields, rows = excluded.rows RETURNING file_id",
            (
                str(file), meta.get("pipeline"), meta.get("run_id"), meta.get("step"),
                meta["scored_at"], id_column, json.dumps(fields), n,
            ),
        ).fetchone()  # fmt: skip
        conn.execute("DELETE FROM decisions WHERE file_id = ?", (file_id,))
        rows = zip(
            [file_id] * n, range(n), column("model"), ids, column("input_hash"),
            [meta["scored_at"]] * n, *(column(c) for c in INDEXED), strict=True,
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )
        # Per file and model, how many: what a search covered, without counting the big table.
        conn.execute("DELETE FROM file_models WHERE file_id = ?", (file_id,))
        conn.execute(
            "INSERT INTO file_models SELECT file_id, model, COUNT(*) FROM decisions"
            " WHERE file_id = ? GROUP BY model",
            (file_id,),
        )
    return n


def rebuild(runs_dir: Path) -> tuple[Path, int, int]:
    """Recreate the index from the decision records under ``runs_dir``: (index, files, rows).
    Built beside the old index and renamed over it: readers see the old or the new one."""
    import pandas as pd
    import pyarrow.parquet as pq

    runs_dir = Path(runs_dir)
    db = index_path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{INDEX_NAME}.", dir=runs_dir)
    os.close(fd)
    files = rows = 0
    try:
        with closing(connect(Path(tmp))) as conn:
            for file in sorted(runs_dir.rglob("*.parquet")):
                try:
                    schema = pq.read_schema(file)
                except Exception:  # not Parquet after all, or truncated: not a record file
                    continue
                if not set(schema.names) >= DECISION_MARKERS:
                    continue
                meta = _file_meta(file, runs_dir, schema.metadata or {})
                rows += index_frame(conn, file.resolve(), pd.read_parquet(file), meta)
                files += 1
        os.replace(tmp, db)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return db, files, rows


def _file_meta(file: Path, runs_dir: Path, metadata: Mapping[bytes, bytes]) -> dict[str, Any]:
    """What :func:`write_decisions` recorded; for files written without it, the run from the
    folders (``<runs_dir>/<pipeline>/<run_id>/...``) and the time from the file."""
    if META_KEY in metadata:
        return dict(json.loads(metadata[META_KEY]))
    parts = file.relative_to(runs_dir).parts
    mtime = datetime.fromtimestamp(file.stat().st_mtime, UTC).isoformat(timespec="milliseconds")
    return {
        "id_column": "record_id",
        "scored_at": mtime,
        "pipeline": parts[0] if len(parts) > 2 else None,
        "run_id": parts[1] if len(parts) > 2 else None,
        "step": None,
    }


@contextmanager
def reading(db: Path) -> Iterator[sqlite3.Connection | None]:
    """A read-only connection to the index, or None when there is no index yet."""
    if not db.is_file():
        yield None
        return
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=60)) as conn:
        conn.row_factory = sqlite3.Row
        yield conn


def lookup(
    conn: sqlite3.Connection,
    model: str,
    *,
    record_id: str | None = None,
    input_hash: str | None = None,
    since: str | None = None,
) -> list[dict[str, Any]]:
    """Decisions for one record id or input hash, oldest first, each with its file's run."""
    key, value = ("record_id", record_id) if record_id is not None else ("input_hash", input_hash)
    sql = (
        "SELECT d.*, f.file, f.pipeline, f.run_id, f.step, f.fields FROM decisions d "
        f"JOIN files f ON f.file_id = d.file_id WHERE d.model = ? AND d.{key} = ?"
    )
    args: list[Any] = [model, value]
    if since is not None:
        sql += " AND d.scored_at >= ?"
        args.append(since)
    rows = conn.execute(sql + " ORDER BY d.scored_at, d.file_id, d.row", args).fetchall()
    return [dict(r) for r in rows]


def coverage(conn: sqlite3.Connection, model: str) -> tuple[int, str | None, str | None]:
    """How many decisions of ``model`` are indexed, and the first and last scoring times."""
    row = conn.execute(
        "SELECT SUM(m.rows), MIN(f.scored_at), MAX(f.scored_at) FROM file_models m"
        " JOIN files f ON f.file_id = m.file_id WHERE m.model = ?",
        (model,),
    ).fetchone()
    return int(row[0] or 0), row[1], row[2]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
