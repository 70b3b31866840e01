"""Read-only queries on a local MLflow SQLite store, without importing MLflow.

``toolkit runs list`` and ``toolkit releases`` only read, yet through MLflow's client they pay
its import and store set-up (2.5-5 s) before the first row. For a ``sqlite:`` tracking URI this
module answers the same questions with :mod:`sqlite3` on MLflow's own schema, opened read-only.

It reproduces what :class:`toolkit.tracking.run_queries.RunQueries` gets from MLflow's
``SqlAlchemyStore`` (3.17): the same filters, ordering and tie-breaks, the run name falling back
on the ``mlflow.runName`` tag, NaN metrics, and child rows read in the same order.
``tests/tracking/test_sqlite_reader.py`` builds a store with MLflow and compares both paths
field by field.

It is only ever a shortcut: :func:`open_reader` returns None unless the URI is a plain
``sqlite:`` file that exists and whose ``alembic_version`` is a revision this reader was
verified against, and every query raises :class:`ReaderUnavailable` on anything it cannot
answer exactly (any SQLite error, a store using MLflow workspaces, more experiments than
MLflow's default page). Callers then take the MLflow path, which stays the reference.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from typing import Any

from toolkit.core.sqlite_store import sqlite_path
from toolkit.tracking.vocabulary import (
    MLFLOW_RUN_NAME,
    TAG_KIND,
    TAG_PIPELINE,
    TAG_RUN_ID,
    RunSummary,
    datetime_from_ms,
)

# MLflow schema revisions (alembic heads) whose tables this reader was checked against. A store
# migrated by a newer MLflow has another head and is read through MLflow until added here
# (after re-running tests/tracking/test_sqlite_reader.py on that version).
VERIFIED_REVISIONS = frozenset({"dc11669786a5"})  # MLflow 3.17.2
# MLflow's search_experiments() default page: listing more would need its ordering too.
MAX_EXPERIMENTS = 1000
# search_runs() rejects max_results outside 1..50000 (an error the MLflow path words).
MAX_RESULTS = 50_000
# SQLite's bound-parameter limit is 32766 since 3.32; stay far below any build's.
_CHUNK = 500


class ReaderUnavailable(Exception):
    """The store cannot be answered exactly here; ask MLflow instead."""


def open_reader(tracking_uri: str) -> StoreReader | None:
    """A reader for the store at ``tracking_uri`` when it can be read without MLflow."""
    path = sqlite_path(tracking_uri)
    if path is None or not path.is_file():
        return None
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        (revision,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
        shared = con.execute(
            "SELECT 1 FROM experiments WHERE workspace != 'default' UNION ALL "
            "SELECT 1 FROM registered_models WHERE workspace != 'default' LIMIT 1"
        ).fetchone()
    except (sqlite3.Error, TypeError, ValueError):
        con.close()
        return None
    if revision not in VERIFIED_REVISIONS or shared is not None:
        con.close()
        return None
    return StoreReader(tracking_uri, con)


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


class StoreReader:
    """Queries on one MLflow SQLite store (see the module doc); close it when done."""

    is_remote = False

    def __init__(self, tracking_uri: str, con: sqlite3.Connection) -> None:
        self.tracking_uri = tracking_uri
        self._con = con

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise ReaderUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _rows(self, sql: str, args: Iterable[object] = ()) -> list[Any]:
        with closing(self._con.execute(sql, tuple(args))) as cursor:
            return cursor.fetchall()

    # --- runs --------------------------------------------------------------------------------

    def _experiment_ids(self, pipeline: str | None) -> list[int]:
        if pipeline is not None:
            # get_experiment_by_name: any lifecycle stage, as MLflow does.
            found = self._rows("SELECT experiment_id FROM experiments WHERE name = ?", [pipeline])
            return [found[0][0]] if found else []
        ids = self._rows("SELECT experiment_id FROM experiments WHERE lifecycle_stage = 'active'")
        if len(ids) > MAX_EXPERIMENTS:
            raise ReaderUnavailable(f"more than {MAX_EXPERIMENTS} experiments")
        return [row[0] for row in ids]

    def list_runs(self, pipeline: str | None = None, *, max_results: int = 20) -> list[RunSummary]:
        """As :meth:`RunQueries.list_runs`: pipeline runs, newest first, of one pipeline or all."""
        with self._reading():
            exp_ids = self._experiment_ids(pipeline)
            if not exp_ids:
                return []  # MLflow returns before it validates max_results
            if not 0 < max_results <= MAX_RESULTS:
                raise ReaderUnavailable(f"max_results {max_results} is MLflow's to reject")
            # MLflow's order: start_time DESC with NULLs last, then run_uuid.
            runs = self._rows(
                "SELECT r.run_uuid, r.name, r.experiment_id, r.status, r.start_time, r.end_time "
                "FROM runs r JOIN tags k ON k.run_uuid = r.run_uuid "
                f"AND k.key = ? AND k.value = 'pipeline' WHERE r.experiment_id IN ({_marks(exp_ids)}) "
                "AND r.lifecycle_stage = 'active' "
                "ORDER BY CASE WHEN r.start_time IS NULL THEN 1 ELSE 0 END, r.start_time DESC, "
                "r.run_uuid LIMIT ?",
                [TAG_KIND, *exp_ids, max_results],
            )
            ids = [row[0] for row in runs]
            metrics = self._children(
                "SELECT run_uuid, key, value, is_nan FROM latest_metrics", ids, metric=True
            )
            params = self._children("SELECT run_uuid, key, value FROM params", ids)
            tags = self._children("SELECT run_uuid, key, value FROM tags", ids)
        return [
            self._summary(
                row, metrics.get(row[0], {}), params.get(row[0], {}), tags.get(row[0], {})
            )
            for row in runs
        ]

    def _children(
        self, select: str, ids: list[str], *, metric: bool = False
    ) -> dict[str, dict[str, Any]]:
        """Child rows per run, as MLflow's select-in loading reads them (same query shape)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            for row in self._rows(f"{select} WHERE run_uuid IN ({_marks(chunk)})", chunk):
                value = (float("nan") if row[3] else row[2]) if metric else row[2]
                found.setdefault(row[0], {})[row[1]] = value
        return found

    @staticmethod
    def _summary(
        row: Sequence[Any], metrics: dict[str, float], params: dict[str, str], tags: dict[str, str]
    ) -> RunSummary:
        run_id, name, experiment_id, status, start, end = row
        return RunSummary(
            run_id=run_id,
            status=status,
            start_time=datetime_from_ms(start),
            end_time=datetime_from_ms(end),
            duration_s=(end - start) / 1000 if start and end else None,
            metrics=metrics,
            params=params,
            tags=tags,
            ui_url=None,  # local stores have no browser link
            toolkit_run_id=tags.get(TAG_RUN_ID),
            pipeline=tags.get(TAG_PIPELINE),
            run_name=name or tags.get(MLFLOW_RUN_NAME) or name,
            experiment_id=str(experiment_id),
        )

    # --- registry ----------------------------------------------------------------------------

    def version_exists(self, name: str, version: str) -> bool:
        """Whether version ``version`` of ``name`` is in the registry and not deleted (MLflow
        keeps a deleted version's row, as stage ``Deleted_Internal``)."""
        with self._reading():
            rows = self._rows(
                "SELECT current_stage FROM model_versions "
                "WHERE workspace = 'default' AND name = ? AND version = ?",
                [name, int(version)],
            )
        return bool(rows) and rows[0][0] != "Deleted_Internal"

    def registered_model_tags(self, name: str) -> dict[str, str] | None:
        """The tags of registered model ``name`` (where the release history lives); None when
        no such model exists (MLflow's path then words the error, with its suggestions)."""
        with self._reading():
            if not self._rows(
                "SELECT 1 FROM registered_models WHERE workspace = 'default' AND name = ?", [name]
            ):
                return None
            rows = self._rows(
                "SELECT key, value FROM registered_model_tags "
                "WHERE workspace = 'default' AND name = ?",
                [name],
            )
        return {key: value for key, value in rows}
