"""New SQLite MLflow stores copied from a template MLflow built (``toolkit.core.sqlite_store``),
with real MLflow opening each store through the tracker."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

import pytest

from toolkit.core import sqlite_store
from toolkit.tracking.client import Tracker

# What MLflow logs when it runs its migrations on an empty database.
MIGRATING = "Creating initial MLflow database tables"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(folder))
    monkeypatch.delenv(sqlite_store.SWITCH_ENV, raising=False)
    return folder


class _Seen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _open(db: Path) -> bool:
    """Open the store at ``db`` with the tracker; True when MLflow ran its migrations.

    MLflow's loggers do not propagate to the root logger, so pytest's caplog sees nothing: a
    handler on the logger itself does."""
    logger, seen = logging.getLogger("mlflow.store.db.utils"), _Seen()
    level = logger.level
    logger.addHandler(seen)
    logger.setLevel(logging.INFO)
    try:
        Tracker(f"sqlite:///{db}")
    finally:
        logger.removeHandler(seen)
        logger.setLevel(level)
    return any(MIGRATING in m for m in seen.messages)


def _rows(db: Path, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db)) as con:
        return con.execute(sql).fetchall()


def test_the_first_new_store_is_built_by_mlflow_and_later_ones_are_copies(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # MLflow puts the default experiment's artifacts under the cwd
    first, second = tmp_path / "a" / "mlflow.db", tmp_path / "b" / "mlflow.db"
    assert _open(first)
    template = sqlite_store.template_path()
    assert template is not None and template.is_file() and template.parent.parent == cache
    assert template.stat().st_mode & 0o777 == 0o600
    assert _rows(template, "SELECT * FROM experiments") == []

    assert not _open(second)  # a copy: no migration
    schema = "SELECT type, name, sql FROM sqlite_master ORDER BY name"
    assert _rows(second, schema) == _rows(first, schema)
    assert _rows(second, "SELECT * FROM alembic_version") == _rows(
        first, "SELECT * FROM alembic_version"
    )
    # MLflow recreated the default experiment in the copy, as it does in a store it builds.
    default = "SELECT experiment_id, name, artifact_location, lifecycle_stage FROM experiments"
    assert _rows(second, default) == _rows(first, default)
    assert second.stat().st_mode & 0o777 == first.stat().st_mode & 0o777

    tracker = Tracker(f"sqlite:///{second}")  # and it works as a store
    experiment = tracker.experiment_id("copied")
    run = tracker._client.create_run(experiment)
    tracker._client.set_terminated(run.info.run_id, "FINISHED")
    assert tracker._client.get_run(run.info.run_id).info.status == "FINISHED"


def test_a_store_already_used_is_never_kept(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(sqlite_store.SWITCH_ENV, "0")
    db = tmp_path / "used.db"
    tracker = Tracker(f"sqlite:///{db}")
    tracker.experiment_id("somebody's")
    template = sqlite_store.template_path()
    assert template is not None and not template.exists()  # switched off: nothing kept
    monkeypatch.delenv(sqlite_store.SWITCH_ENV)
    sqlite_store.keep(f"sqlite:///{db}")
    assert not template.exists()


@pytest.mark.parametrize("damage", ["not a database", "shared with the group"])
def test_a_damaged_or_shared_template_is_not_used_and_is_replaced(
    damage: str,
    cache: Path,
    tmp_path: Path,
) -> None:
    assert _open(tmp_path / "first.db")
    template = sqlite_store.template_path()
    assert template is not None
    if damage == "not a database":
        template.write_bytes(b"garbage" * 100)
    else:
        template.chmod(0o664)
    assert _open(tmp_path / "second.db")  # MLflow built it: the template was refused
    assert template.stat().st_mode & 0o777 == 0o600  # and a good one replaced it
    assert _rows(template, "SELECT COUNT(*) FROM experiments") == [(0,)]
    assert not _open(tmp_path / "third.db")


def test_an_existing_store_and_other_uris_are_left_alone(cache: Path, tmp_path: Path) -> None:
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"")
    assert sqlite_store.seed(f"sqlite:///{existing}") is False
    assert existing.read_bytes() == b""
    for uri in ("http://127.0.0.1:5000", f"sqlite:///{tmp_path}/x.db?timeout=5", "sqlite://"):
        assert sqlite_store.seed(uri) is False
    assert list(tmp_path.glob("x.db*")) == []
