"""A smoke test of the shadow benchmark at a tiny size: two guards, a batch scored with and
without a shadow, its table rendered; no timing assertions."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_shadow_benchmark_runs_and_renders() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import bench_shadow
    finally:
        sys.path.remove(str(BENCH))
    d = bench_shadow.run(rows=200, repeat=1)
    assert d["rows"] == 200 and d["ratio"] == d["step_shadow_s"] / d["step_s"]
    rows = bench_shadow.rows(d)
    assert rows[0].target == "≤ 1.2x" and rows[0].met is (d["ratio"] <= 1.2)
    assert isinstance(bench_shadow.where(d, {}), list)
