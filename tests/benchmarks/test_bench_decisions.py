"""A smoke test of the decision-lookup benchmark at tiny sizes: it builds a real index, looks
records up through ``find_decisions`` and renders its table; no timing assertions."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_decisions_benchmark_runs_and_renders() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import bench_decisions
    finally:
        sys.path.remove(str(BENCH))
    d = bench_decisions.run(records=400, files=2, lookups=4, repeat=1)
    assert d["records"] == 400 and d["lookups"] == 4
    assert d["answer_path"] in ("model", "fallback", "rejected")
    assert d["ratio"] == d["by_id_median_s"] / d["baseline_median_s"]
    rows = bench_decisions.rows(d)
    assert rows[0].figure.startswith("`toolkit decisions MODEL --id ID`, 400 indexed records")
    assert rows[0].target == "≤ 200 ms" and rows[0].met is (d["by_id_median_s"] <= 0.2)
    assert isinstance(bench_decisions.where(d, {}), list)
