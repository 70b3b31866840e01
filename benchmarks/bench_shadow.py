"""Shadow scoring: a batch scored by the champion alone vs with a shadow version beside it.

Two guarded models on the breast-cancer measurements (the champion fitted on every record, the
shadow on a tenth of them), a batch of ``rows`` raw records. One round, the way the score
notebook does it (``toolkit.shadow.scoring``): the champion scores the batch, the shadow is
submitted to its worker thread, the champion's decision records are written and indexed, then
the shadow is finished (joined, its records written beside, the batch logged). Alternating in
the same process, the same round without a shadow: the baseline.

Figures: the batch's scoring time (the champion's records written and indexed, the shadow's
scored and written beside, joined), with vs without a shadow, target <= 1.2x; beside it, the
time until the caller holds the champion's output.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Row, fmt_s, fmt_x, progress

TARGET = 1.2


def _guards(rows: int) -> tuple[Any, Any, Any]:
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from toolkit.guard.build import build_guarded_model, compile_expectations

    bunch = load_breast_cancer(as_frame=True)
    raw = bunch.frame.rename(columns=lambda c: c.replace(" ", "_"))
    label = (raw.pop("target") == 0).astype(int)
    expectations = [
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": c, "min_value": 0, "max_value": float(raw[c].max()) * 2}}
        for c in raw.columns
    ]  # fmt: skip
    config = {
        "model_name": "bench_clf",
        "input_contract": compile_expectations(expectations, name="raw"),
        "output_contract": {"labels": {0: "benign", 1: "malignant"}},
        "confidence": {"min_confidence": 0.7},
    }
    guards = []
    for share in (1.0, 0.1):
        part = raw.sample(frac=share, random_state=1)
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        guards.append(build_guarded_model(model.fit(part, label[part.index]), config))
    rng = np.random.default_rng(42)
    batch = raw.iloc[rng.integers(0, len(raw), rows)].reset_index(drop=True)
    batch = batch * rng.uniform(0.95, 1.05, batch.shape)
    batch.insert(0, "patient_id", [f"P{i:07d}" for i in range(rows)])
    return guards[0], guards[1], batch


def run(rows: int = 20_000, repeat: int = 5) -> dict[str, Any]:
    import pandas as pd

    from toolkit.guard.record_index import write_decisions
    from toolkit.shadow.scoring import Shadow
    from toolkit.shadow.state import ShadowState

    progress("shadow", f"building two guards, a batch of {rows:,} rows")
    champion, candidate, batch = _guards(rows)
    state = ShadowState("bench_clf", "2", "2026-01-01T00:00:00+00:00", "bench")
    times: dict[str, list[float]] = {k: [] for k in ("caller", "caller_shadow", "step",
                                                     "step_shadow", "shadow_alone")}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as tmp:
        runs = Path(tmp)

        def one(i: int, with_shadow: bool) -> tuple[float, float]:
            start = time.perf_counter()
            out = champion.predict(batch)
            decisions = runs / f"b{i}-{int(with_shadow)}" / "decisions.parquet"
            decisions.parent.mkdir()
            shadow = Shadow(state, candidate, "1", runs_dir=runs) if with_shadow else None
            if shadow:
                shadow.submit(batch, decisions, id_column="patient_id")
            caller = time.perf_counter() - start
            write_decisions(pd.concat([batch, out], axis=1), decisions, id_column="patient_id",
                            runs_dir=runs)  # fmt: skip
            if shadow:
                assert shadow.finish(out).error is None
            return caller, time.perf_counter() - start

        one(-1, True)  # warm both guards' caches and pyarrow
        for r in range(repeat):
            progress("shadow", f"round {r + 1}/{repeat}")
            caller, step = one(r, False)
            times["caller"].append(caller)
            times["step"].append(step)
            caller, step = one(r, True)
            times["caller_shadow"].append(caller)
            times["step_shadow"].append(step)
            start = time.perf_counter()
            candidate.predict(batch)
            times["shadow_alone"].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "rows": rows, "repeat": repeat, "target_ratio": TARGET,
        **{f"{k}_s": v for k, v in med.items()},
        "ratio": med["step_shadow"] / med["step"],
        "caller_ratio": med["caller_shadow"] / med["caller"],
    }  # fmt: skip


def rows(d: dict[str, Any]) -> list[Row]:
    return [
        Row(
            f"batch scoring with a shadow, {d['rows']:,} rows (median of {d['repeat']}): the "
            "champion's records written and indexed, the shadow's scored and written beside",
            fmt_s(d["step_shadow_s"]),
            f"no shadow: {fmt_s(d['step_s'])}",
            fmt_x(d["ratio"]),
            f"≤ {d['target_ratio']:g}x",
            d["ratio"] <= d["target_ratio"],
        ),
        Row(
            "until the caller holds the champion's output (the shadow's thread just started)",
            fmt_s(d["caller_shadow_s"]),
            f"no shadow: {fmt_s(d['caller_s'])}",
            fmt_x(d["caller_ratio"]),
        ),
        Row("the shadow's predict alone (what the thread does first)", fmt_s(d["shadow_alone_s"])),
    ]


def where(d: dict[str, Any], _all: Any) -> list[str]:
    if d["ratio"] <= d["target_ratio"]:
        return []
    return [
        f"Scoring took {fmt_s(d['step_shadow_s'])} with a shadow against {fmt_s(d['step_s'])} "
        f"without: the shadow's thread ({fmt_s(d['shadow_alone_s'])} of predict, then its "
        "records) shares the interpreter with the champion's record writing."
    ]


if __name__ == "__main__":
    print(json.dumps(run(*(int(a) for a in sys.argv[1:])), indent=2))
