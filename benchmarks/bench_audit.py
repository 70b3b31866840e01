"""Cost of the file-audit hook every step kernel runs (``toolkit/execute/kernel_audit.py``).

The hook sees every audit event of the kernel and records the files it opens, so the cache can
cover undeclared reads. Its cost is measured on work shaped like the example's steps (write and
read back CSV and Parquet tables of 100,000 rows, plus many small file opens), each variant in
its own fresh process, alternating hooked and bare runs. Target: the hook adds <= 2 % to the
cells' time. The per-``open`` cost is reported too (a tight loop of small reads).

    .venv/bin/python benchmarks/bench_audit.py [repeat]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
AUDIT = HERE.parent / "toolkit" / "kernel_audit.py"
ROWS = 100_000
SMALL_OPENS = 10_000


def _work(folder: Path) -> dict[str, float]:
    """The cells' share of a step: tables out and back in, and small reads."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"c{i}": rng.normal(size=ROWS) for i in range(8)})
    frame["label"] = rng.choice(["a", "b", "c"], size=ROWS)
    small = folder / "small.json"
    small.write_text(json.dumps({"threshold": 0.5}))
    start = time.perf_counter()
    for i in range(3):
        frame.to_csv(folder / f"t{i}.csv", index=False)
        frame.to_parquet(folder / f"t{i}.parquet")
        pd.read_csv(folder / f"t{i}.csv")
        pd.read_parquet(folder / f"t{i}.parquet")
    tables = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(SMALL_OPENS):
        with open(small) as handle:
            handle.read()
    opens = time.perf_counter() - start
    return {"tables_s": tables, "opens_s": opens}


def _child(variant: str, out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        folder = Path(tmp)
        if variant == "hooked":
            os.environ["TOOLKIT_AUDIT_FILE"] = str(folder / "audit.jsonl")
            os.environ["TOOLKIT_AUDIT_ROOTS"] = str(folder)
            import runpy

            runpy.run_path(str(AUDIT))  # exactly what the kernel's exec_lines runs
        result = _work(folder)
        if variant == "hooked":
            result["recorded"] = len((folder / "audit.jsonl").read_text().splitlines())
    out.write_text(json.dumps(result))


def _spawn(variant: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-audit-out-") as tmp:
        out = Path(tmp) / "out.json"
        subprocess.run(
            [sys.executable, __file__, "--child", variant, str(out)], check=True, timeout=900
        )
        return json.loads(out.read_text())


def run(repeat: int = 5) -> dict[str, float | int]:
    bare: list[dict[str, float]] = []
    hooked: list[dict[str, float]] = []
    for _ in range(repeat):  # alternate, so load drifts hit both variants alike
        bare.append(_spawn("bare"))
        hooked.append(_spawn("hooked"))

    def median(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    bare_s, hooked_s = median(bare, "tables_s"), median(hooked, "tables_s")
    per_open_us = (median(hooked, "opens_s") - median(bare, "opens_s")) / SMALL_OPENS * 1e6
    return {
        "repeat": repeat,
        "rows": ROWS,
        "bare_tables_s": bare_s,
        "hooked_tables_s": hooked_s,
        "overhead_pct": (hooked_s / bare_s - 1) * 100,
        "per_open_overhead_us": per_open_us,
        "bare_open_us": median(bare, "opens_s") / SMALL_OPENS * 1e6,
        "recorded_paths": int(hooked[0]["recorded"]),
        "target_pct": 2.0,
    }


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        _child(sys.argv[2], Path(sys.argv[3]))
    else:
        print(json.dumps(run(int(sys.argv[1]) if len(sys.argv) > 1 else 5), indent=2))
