"""Decision lookup: ``toolkit decisions`` against an index of 1,000,000 decision records.

The index (``toolkit.guard.record_index``, ``<runs_dir>/decisions.sqlite``) is filled the way
scoring runs fill it: ``files`` batches of records, each indexed in one transaction by
``index_frame`` (the function ``write_decisions`` calls), with ids, input hashes, paths,
reasons, rules and top features like the guard's. Then, alternating, ``repeat`` rounds of
``lookups`` random ids: ``find_decisions`` by record id and by input hash (the command's whole
work: open the index read-only, search, join the run, build the answer), and the baseline, a
raw SQLite lookup by primary key ``(file_id, row)`` on a fresh connection to the same database.
Beside them, an id never scored (the error path counts what was searched).

Target: a lookup in <= 200 ms at 1,000,000 records.
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from _common import DASH, Row, fmt_ms, fmt_s, fmt_x, progress

TARGET_MS = 200.0
MODEL = "bench_clf"


def _frame(start: int, n: int, rng: random.Random) -> Any:
    import numpy as np
    import pandas as pd

    paths = rng.choices(["model", "fallback", "rejected"], weights=[90, 7, 3], k=n)
    rule = [("many_concave_points" if p == "fallback" else None) for p in paths]
    reason = [
        {"model": None, "fallback": "confidence below 0.7; rule many_concave_points: x > 1",
         "rejected": "mean_radius: is null"}[p]
        for p in paths
    ]  # fmt: skip
    hashes = np.random.default_rng(start).integers(0, 2**63, n)
    return pd.DataFrame(
        {
            "patient_id": [f"R{i:07d}" for i in range(start, start + n)],
            "mean_radius": np.random.default_rng(start).normal(14, 3, n),
            "prediction": rng.choices(["benign", "malignant"], k=n),
            "probability": 0.5, "path": paths, "reason": reason, "model": MODEL,
            "version": "3", "confidence": 0.9, "latency_ms": 0.2,
            "input_hash": [f"{h:016x}" for h in hashes.tolist()],
            "top_features": '{"worst_area":1.2,"mean_radius":-0.4,"texture":0.1}',
            "notes": None, "rule": rule,
        }
    )  # fmt: skip


def _build(runs: Path, records: int, files: int) -> tuple[float, list[str], list[str]]:
    """Index ``records`` in ``files`` transactions; (seconds, some ids, their hashes)."""
    from toolkit.guard.record_index import connect, index_frame, index_path

    rng, per_file = random.Random(7), records // files
    ids: list[str] = []
    hashes: list[str] = []
    elapsed = 0.0
    with closing(connect(index_path(runs))) as conn:
        for k in range(files):
            frame = _frame(k * per_file, per_file, rng)
            picks = rng.sample(range(per_file), 50)
            ids += frame["patient_id"].iloc[picks].tolist()
            hashes += frame["input_hash"].iloc[picks].tolist()
            meta = {"id_column": "patient_id", "scored_at": f"2026-12-{1 + k % 28:02d}T00:00:00",
                    "pipeline": "score", "run_id": f"run-{k}", "step": "score"}  # fmt: skip
            start = time.perf_counter()
            index_frame(conn, runs / "score" / f"run-{k}" / "decisions.parquet", frame, meta)
            elapsed += time.perf_counter() - start
    return elapsed, ids, hashes


def _timed(call: Any) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def run(records: int = 1_000_000, files: int = 20, lookups: int = 50, repeat: int = 3) -> dict:
    """Medians and p95s of the lookups and of the baseline, in seconds, and their ratio."""
    from toolkit.commands.decisions import DecisionsRequest, find_decisions
    from toolkit.core.errors import UsageError
    from toolkit.guard.record_index import index_path

    with tempfile.TemporaryDirectory(prefix="bench-decisions-") as tmp:
        runs = Path(tmp)
        progress("decisions", f"indexing {records:,} records in {files} files")
        build_s, ids, hashes = _build(runs, records, files)
        db = index_path(runs)
        with closing(sqlite3.connect(db)) as conn:
            pks = conn.execute(
                "SELECT file_id, row FROM decisions ORDER BY random() LIMIT ?", (lookups,)
            ).fetchall()
        times: dict[str, list[float]] = {"by_id": [], "by_hash": [], "baseline": [], "miss": []}

        def pk_lookup(file_id: int, row: int) -> None:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                assert conn.execute(
                    "SELECT * FROM decisions WHERE file_id = ? AND row = ?", (file_id, row)
                ).fetchone()

        def miss() -> None:
            try:
                find_decisions(DecisionsRequest(MODEL, record_id="never"), runs)
            except UsageError:
                return
            raise AssertionError("an id never scored was found")

        rng = random.Random(11)
        for r in range(repeat):
            progress("decisions", f"round {r + 1}/{repeat}")
            for i in rng.sample(range(len(ids)), min(lookups, len(ids))):
                by_id = DecisionsRequest(MODEL, record_id=ids[i])
                by_hash = DecisionsRequest(MODEL, input_hash=hashes[i])
                key = pks[i % len(pks)]
                times["by_id"].append(_timed(lambda r=by_id: find_decisions(r, runs)))
                times["baseline"].append(_timed(lambda k=key: pk_lookup(*k)))
                times["by_hash"].append(_timed(lambda r=by_hash: find_decisions(r, runs)))
            times["miss"].append(_timed(miss))
        (found,) = find_decisions(DecisionsRequest(MODEL, record_id=ids[0]), runs)
        size_mb = db.stat().st_size / 1e6

    def p95(values: list[float]) -> float:
        return sorted(values)[max(0, round(0.95 * len(values)) - 1)]

    out: dict[str, Any] = {
        "records": records, "files": files, "lookups": lookups * repeat, "repeat": repeat,
        "target_ms": TARGET_MS, "index_mb": size_mb, "build_s": build_s,
        "build_records_per_s": records / build_s, "answer_path": found.path,
    }  # fmt: skip
    for key, values in times.items():
        out[f"{key}_median_s"], out[f"{key}_p95_s"] = statistics.median(values), p95(values)
    out["ratio"] = out["by_id_median_s"] / out["baseline_median_s"]
    return out


def rows(d: dict[str, Any]) -> list[Row]:
    target = d["target_ms"] / 1000
    return [
        Row(
            f"`toolkit decisions MODEL --id ID`, {d['records']:,} indexed records, median",
            fmt_s(d["by_id_median_s"]),
            f"SQLite lookup by primary key: {fmt_s(d['baseline_median_s'])}",
            fmt_x(d["ratio"]),
            f"≤ {d['target_ms']:g} ms",
            d["by_id_median_s"] <= target,
        ),
        Row(
            "same, p95",
            fmt_s(d["by_id_p95_s"]),
            fmt_s(d["baseline_p95_s"]),
            DASH,
            f"≤ {d['target_ms']:g} ms",
            d["by_id_p95_s"] <= target,
        ),
        Row(
            "`--input-hash H`, median (p95)",
            f"{fmt_s(d['by_hash_median_s'])} ({fmt_s(d['by_hash_p95_s'])})",
            DASH,
            DASH,
            f"≤ {d['target_ms']:g} ms",
            d["by_hash_p95_s"] <= target,
        ),
        Row(
            "an id never scored (exit 2, counts the range searched), median",
            fmt_s(d["miss_median_s"]),
        ),
        Row(
            "indexing, as scoring runs write records",
            f"{d['build_records_per_s']:,.0f} records/s "
            f"({fmt_s(d['build_s'])} in {d['files']} transactions)",
        ),
        Row("index size", f"{d['index_mb']:.0f} MB"),
    ]


def where(d: dict[str, Any], _all: Any) -> list[str]:
    target = d["target_ms"] / 1000
    if d["by_id_p95_s"] <= target and d["by_hash_p95_s"] <= target:
        return []
    return [
        f"A lookup costs {fmt_ms(d['by_id_median_s'] * 1000)} against "
        f"{fmt_ms(d['baseline_median_s'] * 1000)} for opening the index and one primary-key "
        "read: the rest is the id search, the join with the run and building the answer."
    ]


if __name__ == "__main__":
    print(json.dumps(run(*(int(a) for a in sys.argv[1:])), indent=2))
