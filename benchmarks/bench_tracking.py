"""Tracking overhead per step on a local SQLite store (target < 150 ms, stretch <= 50 ms).

One "step" = start_step + log_params(20) + log_metrics(20) + one small artifact + end, i.e.
what the runner adds around every notebook. The one-off costs (import, DB migration, first
experiment) are reported separately because they are paid once per process, not per step.

    .venv/bin/python benchmarks/bench_tracking.py [steps] [repeat]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def run(steps: int = 20, repeat: int = 5) -> dict[str, float | int]:
    """Time ``steps`` step cycles under one pipeline run, ``repeat`` times; medians in ms."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    t0 = time.perf_counter()
    from toolkit.tracking.client import Tracker

    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        root = Path(tmp)
        t1 = time.perf_counter()
        tracker = Tracker(f"sqlite:///{root / 'mlflow.db'}", artifacts_dir=root / "mlruns")
        t2 = time.perf_counter()
        artifact = root / "contract.json"
        artifact.write_text(json.dumps({"success": True, "results": list(range(50))}))
        params = {f"param_{i}": i * 0.5 for i in range(20)}
        per_step: list[float] = []
        first_pipeline_ms = 0.0
        for r in range(repeat):
            s = time.perf_counter()
            parent = tracker.start_pipeline("bench", run_name=f"rep-{r}", params={}, tags={})
            if r == 0:
                first_pipeline_ms = (time.perf_counter() - s) * 1000
            for i in range(steps):
                start = time.perf_counter()
                run_id = tracker.start_step(parent, f"step-{i}", params=params)
                tracker.log_metrics(run_id, [(f"m{k}", k / 7, 0, None) for k in range(20)])
                tracker.log_artifact(run_id, artifact, "contracts")
                tracker.end(run_id, "FINISHED")
                per_step.append((time.perf_counter() - start) * 1000)
            tracker.end(parent, "FINISHED")
    ordered = sorted(per_step)
    return {
        "steps": steps * repeat,
        "median_ms_per_step": round(statistics.median(per_step), 2),
        "p90_ms_per_step": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
        "max_ms_per_step": round(ordered[-1], 2),
        "import_toolkit_tracking_ms": round((t1 - t0) * 1000, 1),
        "new_store_incl_mlflow_import_ms": round((t2 - t1) * 1000, 1),
        "first_pipeline_run_ms": round(first_pipeline_ms, 1),
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(run(*args), indent=2))
