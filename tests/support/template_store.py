"""An empty, already-migrated MLflow SQLite store, copied instead of created.

A new SQLite store costs 2-4 s of CPU in MLflow's alembic migrations; copying a migrated one
costs ~0.06 s. MLflow runs the migrations only when the store's tables are missing (it checks
``alembic_version`` against its head and refuses a mismatch), so a copy is used as it is.

Opt-in: a test that is about creating a store (a fresh store, a damaged or full disk, a gate
that must not create one) keeps letting MLflow create it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Keyed by MLflow's version: a new MLflow brings new migrations, hence a new template.
TEMPLATE_DIR = REPO / ".cache" / "mlflow-store-template" / version("mlflow")
TEMPLATE = TEMPLATE_DIR / "mlflow.db"

_CREATE = """
import sys
from mlflow import MlflowClient
uri = "sqlite:///" + sys.argv[1]
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
client.search_experiments()
client.search_registered_models()
"""


def _template() -> Path:
    """The template store, made once per MLflow version (a file lock serialises xdist workers)."""
    if TEMPLATE.exists():
        return TEMPLATE
    TEMPLATE_DIR.mkdir(parents=True, exist_ok=True)
    with (TEMPLATE_DIR / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not TEMPLATE.exists():
            partial = TEMPLATE_DIR / f"partial-{os.getpid()}.db"
            partial.unlink(missing_ok=True)
            # A subprocess: MLflow's store and logging state stay out of the test process.
            subprocess.run(
                [sys.executable, "-c", _CREATE, str(partial)],
                cwd=TEMPLATE_DIR,
                env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
                check=True,
                capture_output=True,
                timeout=600,
            )
            os.replace(partial, TEMPLATE)
    return TEMPLATE


def migrated_store(db: Path, artifact_root: Path | str | None = None) -> str:
    """Copy the migrated template to ``db`` (which must not exist); return its tracking URI.

    Experiment 0 ("Default") records the artifact root of whoever created the store: MLflow's
    default is ``./mlruns`` of the creating process, which for the toolkit is the project root,
    where the store lives. ``artifact_root`` overrides it (a server's ``--default-artifact-root``).
    """
    db = Path(db).resolve()
    if db.exists():
        raise FileExistsError(f"{db} exists: a seeded store would replace it")
    db.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_template(), db)
    root = str(artifact_root) if artifact_root is not None else str(db.parent / "mlruns")
    now = int(time.time() * 1000)
    with contextlib.closing(sqlite3.connect(db)) as conn, conn:
        conn.execute(
            "UPDATE experiments SET artifact_location = ?, creation_time = ?, "
            "last_update_time = ? WHERE experiment_id = 0",
            (root.rstrip("/") + "/0", now, now),
        )
    return "sqlite:///" + db.as_posix()
