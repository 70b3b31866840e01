"""A new SQLite MLflow store, copied from a template instead of migrated from scratch.

MLflow builds an empty SQLite store by running every Alembic migration it has: 1.7 to 3 s of
CPU (MLflow 3.17, 2 cores), paid by the first tracked command of every new project, within its
first step. Copying a store takes ~0.07 s. So the first store MLflow builds for a given set of
migrations is kept in the user's cache (``$TOOLKIT_CACHE_DIR``, else
``$XDG_CACHE_HOME/toolkit``, else ``~/.cache/toolkit``), and later new stores are copies of it.

Only MLflow makes stores. A template is a store MLflow made, checked to be pristine (a schema
version, the default workspace, at most the default experiment, and no other row), with the
default experiment removed: MLflow recreates it when it opens the copy, with the copy's own
artifact location, exactly as in a store it builds. A template's name hashes MLflow's version
and the names of its migration scripts, so another MLflow gets another template, and MLflow
still checks the copy's schema version against its own when it opens it. Anything unexpected (no
cache folder, a template that is not ours or not a database) leaves MLflow to build the store as
before: a template only ever saves time. ``TOOLKIT_STORE_TEMPLATE=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import sqlite3
import stat
from pathlib import Path

from toolkit.core.envflags import env_flag

log = logging.getLogger(__name__)
SWITCH_ENV = "TOOLKIT_STORE_TEMPLATE"
# Rows a store MLflow has just built may hold; any other row means somebody used it.
_PRISTINE = {"alembic_version": 1, "workspaces": 1, "experiments": 1}


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a plain ``sqlite:///PATH`` URI; None for anything else (servers,
    in-memory stores, URIs with options or escapes that would need interpreting)."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or any(c in tracking_uri for c in "?#%"):
        return None
    path = tracking_uri.removeprefix(prefix)
    return Path(path) if path else None


def cache_dir() -> Path:
    explicit = os.environ.get("TOOLKIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "toolkit"


def template_path() -> Path | None:
    """Where the template for the installed MLflow lives; None without MLflow's migrations."""
    spec = importlib.util.find_spec("mlflow")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    versions = Path(spec.submodule_search_locations[0]) / "store" / "db_migrations" / "versions"
    try:
        names = sorted(p.name for p in versions.iterdir() if p.suffix == ".py")
    except OSError:
        return None
    key = hashlib.sha256("\n".join(names).encode()).hexdigest()[:12]
    mlflow = importlib.metadata.version("mlflow")
    return cache_dir() / "mlflow-stores" / f"mlflow-{mlflow}-{key}.db"


def seed(tracking_uri: str) -> bool:
    """Before MLflow first opens ``tracking_uri``: when it names a SQLite file that does not
    exist yet, copy the template there. True when MLflow will build that store itself (no usable
    template): the caller lets it, then calls :func:`keep` so that the next new store is a copy.
    """
    target = sqlite_path(tracking_uri)
    if target is None or env_flag(SWITCH_ENV) is False or target.exists():
        return False
    try:
        template = template_path()
        if template is None:
            return False
        if not _usable(template):
            return True
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_new(template, target)
        return False
    except OSError as exc:  # a full disk, a read-only folder: MLflow meets the same, and says it
        log.debug("no store template for %s: %s", target, exc)
        return not target.exists()


def keep(tracking_uri: str) -> None:
    """After MLflow built the new store at ``tracking_uri``: keep a pristine copy of it as the
    template. Quietly does nothing when the store is already in use or the cache is unwritable."""
    source, template = sqlite_path(tracking_uri), template_path()
    if source is None or template is None or _usable(template):
        return
    partial = template.with_name(f".{template.name}.{os.getpid()}.tmp")
    try:
        template.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The backup API copies a consistent snapshot even while another process writes.
        with (
            contextlib.closing(
                sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
            ) as src,
            contextlib.closing(sqlite3.connect(partial)) as dst,
        ):
            src.backup(dst)
            if not _pristine(dst):
                raise ValueError(f"{source} was used before it could be copied")
            with dst:
                dst.execute("DELETE FROM experiments")
            dst.execute("VACUUM")
        os.chmod(partial, 0o600)
        os.replace(partial, template)
    except (OSError, sqlite3.Error, ValueError) as exc:
        log.debug("store template not kept: %s", exc)
    finally:
        partial.unlink(missing_ok=True)


def _pristine(con: sqlite3.Connection) -> bool:
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    if "alembic_version" not in tables or "experiments" not in tables:
        return False
    for table in tables:
        if table.startswith("sqlite_"):
            continue
        rows = con.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
        if rows > _PRISTINE.get(table, 0):
            return False
    return True


def _usable(template: Path) -> bool:
    """The template exists, is ours and private, and is a pristine store without experiments."""
    try:
        st = template.stat()
    except FileNotFoundError:
        return False
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.debug("store template %s ignored: not private to this user", template)
        return False
    try:
        with contextlib.closing(
            sqlite3.connect(f"{template.resolve().as_uri()}?mode=ro", uri=True)
        ) as con:
            empty = con.execute("SELECT COUNT(*) FROM experiments").fetchone()[0] == 0
            return empty and _pristine(con)
    except sqlite3.Error:
        return False


def _copy_new(template: Path, target: Path) -> None:
    """Copy ``template`` to ``target`` unless ``target`` appears meanwhile: written beside it,
    then hard-linked into place, so a process opening ``target`` sees all of it or nothing."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    # The mode a store SQLite creates would get (umask applied), not the template's private one.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as out, template.open("rb") as src:
            while block := src.read(1 << 20):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another process made the store first
            os.link(partial, target)
    finally:
        partial.unlink(missing_ok=True)
