"""Looking into a real MLflow SQLite store and a run folder for what a fault may leave behind."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path


def sqlite_path(tracking_uri: str) -> Path:
    return Path(tracking_uri.removeprefix("sqlite:///"))


def _query(tracking_uri: str, sql: str) -> list[tuple]:
    path = sqlite_path(tracking_uri)
    if not path.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # MLflow is still creating the store
            return []
        raise


def running_runs(tracking_uri: str) -> list[str]:
    """Ids of MLflow runs still RUNNING in the store (none may survive a fault)."""
    return [r[0] for r in _query(tracking_uri, "SELECT run_uuid FROM runs WHERE status='RUNNING'")]


def run_statuses(tracking_uri: str) -> dict[str, str]:
    return dict(_query(tracking_uri, "SELECT run_uuid, status FROM runs"))


def child_runs(tracking_uri: str, parent: str) -> list[tuple[str, str, str]]:
    """``(step, status, run_id)`` of every run nested under ``parent``, by step name."""
    sql = (
        "SELECT s.value, r.status, r.run_uuid FROM runs r"
        " JOIN tags p ON p.run_uuid = r.run_uuid AND p.key = 'mlflow.parentRunId'"
        " LEFT JOIN tags s ON s.run_uuid = r.run_uuid AND s.key = 'toolkit.step'"
        f" WHERE p.value = '{parent}' ORDER BY s.value"
    )
    return [tuple(row) for row in _query(tracking_uri, sql)]


def model_tags(tracking_uri: str, name: str) -> dict[str, str]:
    """The tags of registered model ``name`` (its policy, its release admins...)."""
    sql = f"SELECT key, value FROM registered_model_tags WHERE name='{name}'"
    return dict(_query(tracking_uri, sql))


def version_tags(tracking_uri: str, name: str, version: str) -> dict[str, str]:
    """The tags of version ``version`` of registered model ``name``."""
    sql = (
        f"SELECT key, value FROM model_version_tags WHERE name='{name}' AND version={int(version)}"
    )
    return dict(_query(tracking_uri, sql))


def run_tags(tracking_uri: str, run_id: str) -> dict[str, str]:
    return dict(_query(tracking_uri, f"SELECT key, value FROM tags WHERE run_uuid='{run_id}'"))


def model_versions(tracking_uri: str, name: str) -> list[tuple[str, str]]:
    """``(version, run_id)`` of every registered version of ``name``."""
    rows = _query(
        tracking_uri,
        f"SELECT version, run_id FROM model_versions WHERE name='{name}' "
        "AND current_stage != 'Deleted_Internal'",
    )
    return [(str(v), r) for v, r in rows]


def files_containing(root: Path, secret: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``secret`` (in any common encoding)."""
    needles = {secret.encode(), secret.encode("utf-16-le")}
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(n in data for n in needles):
                found.append(path)
    return found


def usable_versions(tracking_uri: str, name: str) -> list[str]:
    """Versions of ``name`` not marked ``toolkit.unusable`` (a failed run's version must be)."""
    marked = {
        str(v)
        for (v,) in _query(
            tracking_uri,
            f"SELECT version FROM model_version_tags WHERE name='{name}' "
            "AND key='toolkit.unusable'",
        )
    }
    return [v for v, _ in model_versions(tracking_uri, name) if v not in marked]
