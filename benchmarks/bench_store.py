"""``toolkit runs list`` and ``toolkit releases`` against a large local MLflow store.

The store (SQLite, as a project uses by default) holds ``runs`` runs: pipeline runs of one
pipeline with 4 step runs each (1 pipeline run in 5, as the toolkit records them), and one
registered model with ``versions`` versions, each registered and some promoted, so its release
history has one entry per registration and per promotion, and a recorded release policy.

Building it run by run through MLflow would take many minutes, so the toolkit's own tracker
records one pipeline run with its step runs, MLflow's client registers one version, and those
rows are then copied with SQL (every table keyed by run, fresh ids and times). The built store
is kept under ``.cache/bench-store/`` keyed by the MLflow version and the sizes, so re-runs
start at once; each measurement works on a copy.

Timed from spawn to exit in a fresh process, interleaved, ``repeat`` times each:
``toolkit runs list``, ``toolkit releases MODEL`` (target: <= 1 s each), the same two against an
empty store (the fixed cost: start-up, and MLflow's import where a command needs it), and
``python -c "import mlflow"``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path
from typing import Any

from _common import REPO, progress, spawn, stats

TARGET_S = 1.0
PIPELINE = "scale"
MODEL = "scale-model"
STEPS_PER_RUN = 4
CACHE = REPO / ".cache" / "bench-store"


def _template(db: Path) -> tuple[list[str], str]:
    """One pipeline run with its step runs, recorded by the toolkit's tracker; their ids."""
    from toolkit.tracking.client import Tracker

    tracker = Tracker(f"sqlite:///{db}", artifacts_dir=db.parent / "mlruns")
    parent = tracker.start_pipeline(
        PIPELINE, run_name="r0", params={"seed": 1}, tags={}, toolkit_run_id="tkrun-template"
    )
    ids = [parent]
    for i in range(STEPS_PER_RUN):
        step = tracker.start_step(parent, f"step{i}", params={"i": i, "rows": 100})
        tracker.end(step, "FINISHED", metrics=[])
        ids.append(step)
    tracker.end(parent, "FINISHED")
    return ids, "tkrun-template"


def _register(db: Path, run_id: str) -> None:
    from mlflow import MlflowClient

    from toolkit.release.vocabulary import PolicyRecord
    from toolkit.specs.models import ReleaseSpec

    client = MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    client.create_registered_model(MODEL)
    client.create_model_version(MODEL, source=str(db.parent / "model"), run_id=run_id)
    # A release policy, as every model a pipeline registers has (the large and the empty store
    # alike): reading it is part of what `toolkit releases` costs (it validates the policy).
    policy = PolicyRecord(ReleaseSpec(), f"pipelines/{PIPELINE}.yaml", "0" * 64)
    for key, value in policy.tags().items():
        client.set_registered_model_tag(MODEL, key, value)


def _tables_with(con: sqlite3.Connection, column: str) -> dict[str, list[str]]:
    found = {}
    for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
        cols = [row[1] for row in con.execute(f"PRAGMA table_info({table})")]
        if column in cols:
            found[table] = cols
    return found


def _clone_runs(con: sqlite3.Connection, ids: list[str], tk_id: str, copies: int) -> None:
    """``copies`` copies of the template runs: fresh run ids, toolkit run ids and start times."""
    tables = _tables_with(con, "run_uuid")
    rows = {
        t: con.execute(
            f"SELECT * FROM {t} WHERE run_uuid IN ({','.join('?' * len(ids))})", ids
        ).fetchall()
        for t in tables
    }
    start = int(time.time() * 1000) - copies * 60_000
    for c in range(copies):
        fresh = {old: uuid.uuid4().hex for old in ids}
        new_tk = f"{tk_id}-{c:06d}"
        for table, cols in tables.items():
            out = []
            for row in rows[table]:
                values = []
                for col, value in zip(cols, row, strict=True):
                    if isinstance(value, str):
                        value = fresh.get(value, value).replace(tk_id, new_tk)
                        for old, new in fresh.items():  # artifact URIs hold the run id
                            value = value.replace(old, new) if old in value else value
                    if col in ("start_time", "end_time") and value is not None:
                        value = start + c * 60_000 + (value % 60_000)
                    values.append(value)
                out.append(values)
            marks = ",".join("?" * len(cols))
            con.executemany(f"INSERT INTO {table} ({','.join(cols)}) VALUES ({marks})", out)


def _clone_versions(con: sqlite3.Connection, versions: int) -> None:
    """Versions 2..N like version 1, and the model's history: every registration, and a
    promotion every 10 versions (the tags ``toolkit releases`` reads, with the policy)."""
    cols = [row[1] for row in con.execute("PRAGMA table_info(model_versions)")]
    (row,) = con.execute("SELECT * FROM model_versions WHERE name=? AND version=1", (MODEL,))
    out = []
    for v in range(2, versions + 1):
        out.append([v if c == "version" else x for c, x in zip(cols, row, strict=True)])
    marks = ",".join("?" * len(cols))
    con.executemany(f"INSERT INTO model_versions ({','.join(cols)}) VALUES ({marks})", out)
    tags, seq = [], 0
    for v in range(1, versions + 1):
        moves = [("registered", v - 1 or None, v)] + (
            [("promoted", v - 10, v)] if v % 10 == 0 else []
        )
        for action, frm, to in moves:
            seq += 1
            entry = {"action": action, "from": frm and str(frm), "to": str(to), "by": "bench"}
            entry |= {"at": "2026-01-01T00:00:00+00:00", "reason": f"bench {seq}"}
            key = f"toolkit.release.{seq:08d}-{uuid.uuid4().hex[:8]}"
            tags.append((key, json.dumps(entry), MODEL))
    con.executemany("INSERT INTO registered_model_tags (key, value, name) VALUES (?,?,?)", tags)


def build_store(dest: Path, runs: int, versions: int) -> Path:
    """The store with ``runs`` runs and ``versions`` model versions, built or from the cache."""
    cached = CACHE / f"mlflow-{version('mlflow')}-{runs}-runs-{versions}-versions-policy.db"
    if not cached.exists():
        progress("store", f"building a store of {runs:,} runs and {versions} versions")
        clock = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
            db = Path(tmp) / "mlflow.db"
            ids, tk_id = _template(db)
            _register(db, ids[0])
            con = sqlite3.connect(db)
            with con:
                _clone_runs(con, ids, tk_id, runs // len(ids) - 1)
                _clone_versions(con, versions)
            con.execute("VACUUM")
            con.close()
            CACHE.mkdir(parents=True, exist_ok=True)
            shutil.copy2(db, cached.with_suffix(".tmp"))
            os.replace(cached.with_suffix(".tmp"), cached)
        progress("store", f"built in {time.perf_counter() - clock:.0f} s")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(cached, dest / "mlflow.db")
    return dest / "mlflow.db"


def _count(db: Path) -> tuple[int, int]:
    con = sqlite3.connect(db)
    try:
        (runs,) = con.execute("SELECT COUNT(*) FROM runs").fetchone()
        (versions,) = con.execute("SELECT COUNT(*) FROM model_versions").fetchone()
    finally:
        con.close()
    return runs, versions


def run(runs: int = 10_000, versions: int = 500, repeat: int = 5) -> dict[str, Any]:
    """Medians in seconds of each command against the large and an empty store."""
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        big, empty = Path(tmp) / "big", Path(tmp) / "empty"
        db = build_store(big, runs, versions)
        n_runs, n_versions = _count(db)
        empty.mkdir()
        _register(empty / "mlflow.db", _template(empty / "mlflow.db")[0][0])
        for project in (big, empty):
            shutil.copy2(REPO / "pyproject.toml", project / "pyproject.toml")
        commands = {
            "runs_list": ["-m", "toolkit", "runs", "list"],
            "releases": ["-m", "toolkit", "releases", MODEL],
        }
        samples: dict[str, list[float]] = {}
        for r in range(repeat):
            progress("store", f"repetition {r + 1}/{repeat}")
            for name, args in commands.items():
                for label, project in (("", big), ("empty_", empty)):
                    wall = spawn([sys.executable, *args], project, f"toolkit {' '.join(args[2:])}")[
                        2
                    ]
                    samples.setdefault(label + name, []).append(wall)
            wall = spawn([sys.executable, "-c", "import mlflow"], empty, "import mlflow")[2]
            samples.setdefault("import_mlflow", []).append(wall)
    return {
        "runs": n_runs,
        "versions": n_versions,
        "repeat": repeat,
        **{name: stats(values) for name, values in samples.items()},
        "target_s": TARGET_S,
    }


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[1:3]] or [10_000, 500]
    print(json.dumps(run(*sizes, repeat=1), indent=2))
