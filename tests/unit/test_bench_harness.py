"""A quick smoke test of the benchmark harness (``benchmarks/run.py``); no timing assertions.

Runs one cheap area for real at tiny sizes (no kernels, a second or two), and renders results
handed in directly to check how errors, skips and missed targets are reported.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import pytest

RUN_PY = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", RUN_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_tables_and_core_count(harness: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "R.md"
    code = harness.main(["--quick", "--only", "monitor", "--out", str(out)])
    assert code == 0
    text = out.read_text()
    assert "Quick mode" in text
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert f"| cores (`nproc`) | {cores} |" in text
    assert "| figure | value | baseline (same run) | ratio | target | met? |" in text
    assert "| monitor | `build_profile` + `monitor_batch`, 2,000 rows x 10 columns |" in text
    assert "`DataFrame.describe()`:" in text
    assert not list(tmp_path.glob(".R.md.*")), "the temporary file was left behind"


def test_only_rejects_unknown_area(harness: ModuleType) -> None:
    with pytest.raises(SystemExit) as exc:
        harness.main(["--only", "contrakts"])
    assert exc.value.code == 2


def test_errors_skips_and_misses_are_reported(harness: ModuleType) -> None:
    contracts = {
        "rows": 1_000_000,
        "columns": 10,
        "expectations": 10,
        "validate_s": 1.4,
        "pandas_s": 0.2,
        "ratio": 7.0,
        "validate_1k_rows_s": 0.06,
        "validate_all_rows_failing_s": 1.5,
        "one_off_import_and_context_s": 4.0,
        "target_ratio": 5.0,
    }
    results = [
        harness.AreaResult("contracts", "ok", contracts, elapsed_s=9, load=(1.0, 1.5)),
        harness.AreaResult("guard", "skipped", note="benchmarks/bench_guard.py is not present"),
        harness.AreaResult("monitor", "error", note="RuntimeError: boom\nTraceback line"),
    ]
    text = harness.render_markdown(
        results,
        {"cores": "2", "python": "3.11"},
        started=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        elapsed_s=60,
        quick=False,
        command="benchmarks/run.py",
    )
    assert "| contracts | `validate()`, 1,000,000 rows x 10 columns, 10 expectations |" in text
    assert "| 7.00x | ≤ 5x | **NO** |" in text
    # The note is composed from the figures: 1.4 s - 0.06 s fixed = 1.34 s that grows with rows.
    assert "**Where the time goes.**" in text
    assert "1.34 s grows with the rows" in text
    assert "Skipped: benchmarks/bench_guard.py is not present" in text
    assert "**Failed to run**: RuntimeError: boom" in text
    assert "| guard | not measured: skipped |" in text
    assert "2026-01-02 03:04 UTC" in text
