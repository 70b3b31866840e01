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


def _spread(median: float) -> dict[str, float]:
    return {"median": median, "min": median * 0.9, "max": median * 1.2}


def _segments(startup: float, steps: float, release: float) -> dict[str, float]:
    return {
        "startup": startup,
        "run_setup": 0.0,
        "steps": steps,
        "between_steps": 0.1,
        "last_step_bookkeeping": 0.05,
        "release": release,
        "finish_exit": 0.05,
    }


def pipeline_figures() -> dict:
    """Hand-made figures of the pipeline area: the no-change and 2-branch targets are missed."""
    names = ("ingest", "features", "train", "evaluate")
    per_step = {n: 2.0 for n in names}
    return {
        "steps": 4,
        "pipeline_repeat": 5,
        "repeat": 5,
        "bare_papermill_s": _spread(12.0),
        "untracked_s": _spread(11.0),
        "tracked_s": _spread(11.5),
        "untracked_vs_bare_ratio": 0.92,
        "tracked_vs_bare_ratio": 0.96,
        "tracked_vs_untracked_ratio": 1.05,
        "tracking_overhead_ms_per_step": 40.0,
        "paired_overhead_ms_per_step": 45.0,
        "target_step_overhead_ms": 50.0,
        "target_cold_ratio": 1.0,
        "no_prewarm_s": _spread(14.0),
        "no_prewarm_vs_tracked_ratio": 1.22,
        "no_prewarm_paired_delta_s": 2.4,
        "no_prewarm_segments_s": _segments(2.0, 11.0, 0.5),
        "no_prewarm_step_durations_s": {n: 2.6 for n in names},
        "segments_s": {
            "untracked": _segments(2.0, 8.0, 0.4),
            "tracked": _segments(2.1, 8.2, 0.6),
        },
        "segments_paired_delta_s": _segments(0.1, 0.2, 0.2),
        "step_durations_s": {"bare": per_step, "untracked": per_step, "tracked": per_step},
        "contracts_per_step": {n: 1 for n in names},
        "bare_import_papermill_s": 0.6,
        "bookkeeping_anatomy_s": {
            "first_render_html_s": 0.5,
            "render_html_s": 0.1,
            "scrub_notebook_s": 0.01,
            "fingerprint_s": 0.001,
            "data_files": 5,
        },
        "fresh_import_s": {"great_expectations": 3.0, "mlflow": 2.5},
        "first_tracked_run_s": 30.0,
        "registered_versions": [1, 2],
        "gates_passed": True,
        "champion_versions_seen": ["None"],
        "help_s": 0.08,
        "python_startup_s": 0.02,
        "help_ratio": 4.0,
        "target_help_s": 0.3,
        "no_change_s": _spread(1.4),
        "no_change_segments_s": _segments(1.1, 0.0, 0.15),
        "no_change_opened_mlflow": [False],
        "no_change_executed": [],
        "no_change_import_profile": {"top_imports_s": {"toolkit": 0.9}, "all_imports_s": 1.0},
        "target_no_change_s": 1.0,
        "edit_last_s": _spread(5.0),
        "edit_last_segments_s": _segments(1.5, 2.0, 0.8),
        "edit_last_executed": ["evaluate"],
        "edit_last_opened_mlflow": [True],
        "edit_last_step": "evaluate",
        "edit_last_step_s": 2.0,
        "bare_last_s": _spread(4.5),
        "bare_last_execute_s": 3.5,
        "bare_last_import_papermill_s": 0.6,
        "target_edit_extra_s": 1.0,
        "edit_last_budget_s": 5.5,
        "branches_steps": 6,
        "branches_1_s": _spread(22.0),
        "branches_2_s": _spread(20.0),
        "branches_ratio": 1.1,
        "branches_paired_ratio": 1.12,
        "branches_steps_sum_s": {"1": 15.0, "2": 24.0},
        "branches_chain_s": {"a": 7.0, "b": 8.0},
        "branches_segments_s": {},
        "target_branches_ratio": 1.35,
        "failed_runs": [],
    }


def test_pipeline_rows_and_missed_targets_are_explained(harness: ModuleType) -> None:
    result = harness.AreaResult("pipeline", "ok", pipeline_figures(), elapsed_s=900)
    text = harness.render_markdown(
        [result],
        {"cores": "2"},
        started=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
        elapsed_s=900,
        quick=False,
        command="benchmarks/run.py --only pipeline",
    )
    assert "Could not present" not in text
    targets = text.split("## Targets")[1].split("\n## ")[0]
    verdicts = {
        "cold `toolkit run --force`": "**yes**",
        "re-run with nothing changed": "**NO**",
        "re-run after editing the last notebook": "**yes**",
        "the same, `--workers 2`": "**NO**",
        "tracking overhead per step": "**yes**",
        "`toolkit --help`": "**yes**",
    }
    for figure, verdict in verdicts.items():
        line = next(x for x in targets.splitlines() if figure in x)
        assert line.endswith(f"| {verdict} |"), line
    assert "| ≤ bare + 1 s = 5.50 s |" in text
    assert "| 1.10x | ≥ 1.35x | **NO** |" in text
    # Each miss is explained from the figures: 24 s / 15 s of steps = 1.60x per step in parallel,
    # and the no-change run's start-up (1.10 s of 1.40 s).
    assert "**Where the time goes.**" in text
    assert "each step takes 1.60x as long when two run at once" in text
    assert (
        "Start-up (interpreter, imports, spec, plan, suites, cache decisions) takes 1.10 s" in text
    )
    assert "`toolkit` 900 ms" in text
    assert "Cold tracked run:" not in text  # met targets get no note
    assert "| tracked, no pre-warm |" in text


def test_only_carries_the_areas_it_did_not_run_over(
    harness: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--only AREA` rewrites RESULTS.md: the other areas keep their last figures, dated."""
    old = tmp_path / "RESULTS.md"
    title = harness.AREAS["pipeline"].title
    old.write_text(
        "| date | 2026-01-01 00:00 UTC |\n\n## Targets\n\n"
        "| pipeline | cold run | 23 s | ≤ 1x | **NO** |\n\n"
        f"## {title}\n\nthe old pipeline table\n\n## Another\n\nnot this\n"
    )
    monkeypatch.setattr(harness, "DEFAULT_OUT", old)
    monkeypatch.setattr(harness, "LAST_FIGURES", tmp_path / "results.json")
    started = datetime(2026, 2, 3, 4, 5, tzinfo=UTC)
    ran = harness.AreaResult("monitor", "ok", {"rows": 1}, elapsed_s=3, load=(1.0, 2.0))
    results = harness.carry_over([ran], started)
    assert [r.name for r in results] == ["monitor", "pipeline"]
    text = harness.render_markdown(
        results, {"cores": "2"}, started=started, elapsed_s=3, quick=False, command="run.py"
    )
    assert "| pipeline | cold run | 23 s | ≤ 1x | **NO** |" in text
    assert "Carried over as written by the run of 2026-01-01 00:00 UTC:" in text
    assert "the old pipeline table" in text and "not this" not in text
    # A later run of another area carries this one's figures over from results.json.
    later = harness.carry_over([], datetime(2026, 3, 1, tzinfo=UTC))
    monitor = next(r for r in later if r.name == "monitor")
    assert (monitor.status, monitor.data, monitor.measured_at) == (
        "ok",
        {"rows": 1},
        "2026-02-03 04:05 UTC",
    )
