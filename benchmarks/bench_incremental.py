"""Incremental and parallel runs: the step cache, and what a second worker buys.

Measured by ``bench_pipeline.run`` in the same throwaway project and the same interleaved loop as
the cold runs, so every figure has its baseline from the same minutes:

* **no change**: ``toolkit run pipelines/train.yaml`` (tracked, no ``--force``) right after a
  completed tracked run: every step is reused from the step cache, and as that exact
  combination already passed its gates, MLflow is not even opened. Target: <= 1.0 s wall.
* **edit the last notebook**: a comment cell with a fresh text and a fresh cell id is appended
  to ``notebooks/evaluate.ipynb`` (the notebook's original content plus one new cell, so it never
  grows), then a tracked ``toolkit run``: the first three steps are reused, ``evaluate`` runs,
  and the gates and registration follow. Baseline: ``evaluate`` alone with
  ``papermill.execute_notebook`` in a fresh process (spawn to exit, papermill import included)
  on the same inputs. Target: <= that + 1.0 s.
* **two branches**: ``benchmarks/branches/branches.yaml``, two independent 3-step chains
  (load -> fit -> score, pandas + scikit-learn), with ``--force --no-tracking`` and
  ``--workers 1`` (sequential: pre-warming off) then ``--workers 2`` (as users run it).
  Target: 1 worker / 2 workers >= 1.35.

Once, untimed, a no-change run is repeated under ``python -X importtime`` to name the modules its
start-up imports.
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from _common import (
    HERE,
    bare_requests,
    median_of,
    run_toolkit,
    segment_medians,
    spawn,
    stats,
    time_bare,
)

SPEC = "pipelines/train.yaml"
LAST_NOTEBOOK = "notebooks/evaluate.ipynb"
BRANCHES_DIR = HERE / "branches"
BRANCH_SPEC = "branches/branches.yaml"
TARGET_NO_CHANGE_S = 1.0
TARGET_EDIT_EXTRA_S = 1.0
TARGET_BRANCH_RATIO = 1.35


def extra_items() -> dict[str, Path]:
    """What ``make_project`` copies into the throwaway project besides the example."""
    return {"branches": BRANCHES_DIR}


def edit_last_notebook(project: Path, original: str, rep: str) -> str:
    """Write the notebook's ``original`` text plus one comment cell unique to ``rep``."""
    nb = json.loads(original)
    tag = uuid.uuid4().hex
    nb["cells"].append(
        {
            "cell_type": "code",
            "id": tag[:8],
            "metadata": {},
            "execution_count": None,
            "outputs": [],
            "source": [f"# benchmark edit {rep} {tag}: a comment, nothing to run"],
        }
    )
    (project / LAST_NOTEBOOK).write_text(json.dumps(nb, indent=1) + "\n", encoding="utf-8")
    return tag


def time_no_change(project: Path) -> dict[str, Any]:
    """A tracked re-run with nothing changed; the caller ran a tracked run just before."""
    sample = run_toolkit(project, [SPEC])
    sample["executed"] = [n for n, s in sample["statuses"].items() if s != "cached"]
    return sample


def time_edit_last(project: Path, original: str, rep: str) -> dict[str, Any]:
    """Edit the last notebook, then a tracked run: only that step should execute."""
    edit_last_notebook(project, original, rep)
    sample = run_toolkit(project, [SPEC])
    sample["executed"] = [n for n, s in sample["statuses"].items() if s != "cached"]
    return sample


def time_bare_last(project: Path, rep: str, data_from: Path) -> dict[str, Any]:
    """The last notebook alone with papermill in a fresh process, on ``data_from``'s inputs."""
    folder = project / "bare-last" / rep
    shutil.copytree(data_from / "data", folder / "data")
    request = bare_requests(project, folder, SPEC)[-1]
    return time_bare(project, folder, [request])


def time_branches(project: Path, workers: int) -> dict[str, Any]:
    """One worker is the sequential baseline: one step at a time and nothing overlapping, so
    kernel pre-warming is off too (it would otherwise use the second core for the next step's
    imports); two workers run as users run them, pre-warming on."""
    args = [BRANCH_SPEC, "--force", "--no-tracking", "--workers", str(workers)]
    return run_toolkit(project, args, env={"TOOLKIT_NO_PREWARM": "1"} if workers == 1 else None)


def import_profile(project: Path, top: int = 6) -> dict[str, Any]:
    """A no-change run under ``-X importtime``: its heaviest top-level imports (seconds)."""
    cmd = [sys.executable, "-X", "importtime", "-m", "toolkit", "run", SPEC, "--quiet", "--json"]
    _, _, wall, stdout, stderr = spawn(cmd, project, "toolkit run -X importtime")
    summary = json.loads(stdout)
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if match and not match.group(3):  # nesting level 0: imported by the program itself
            root = match.group(4).split(".")[0]
            totals[root] = totals.get(root, 0.0) + int(match.group(2)) / 1e6
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
    return {
        "wall_s": round(wall, 3),
        "opened_mlflow": summary.get("tracking_uri") is not None,
        "top_imports_s": {name: round(s, 3) for name, s in ranked},
        "all_imports_s": round(sum(totals.values()), 3),
    }


def summarise(
    samples: Mapping[str, Sequence[Mapping[str, Any]]], profile: Mapping[str, Any]
) -> dict[str, Any]:
    """The incremental and parallel figures from the loop's samples; seconds."""
    walls = {k: [s["wall_s"] for s in samples[k]] for k in samples}
    med = {k: statistics.median(v) for k, v in walls.items()}
    no_change, edit = samples["no_change"], samples["edit_last"]
    bare_last = samples["bare_last"]
    last = list(edit[0]["step_durations"])[-1]
    w1, w2 = samples["branches_1"], samples["branches_2"]
    steps_sum = {
        str(w): round(median_of(runs, lambda s: sum(s["step_durations"].values())), 3)
        for w, runs in ((1, w1), (2, w2))
    }
    chains = {}
    for chain in ("a", "b"):
        chains[chain] = round(
            median_of(
                w1,
                lambda s, c=chain: sum(d for n, d in s["step_durations"].items() if n[0] == c),
            ),
            3,
        )
    return {
        "no_change_s": stats(walls["no_change"]),
        "no_change_segments_s": segment_medians(no_change),
        "no_change_opened_mlflow": sorted({s["opened_mlflow"] for s in no_change}),
        "no_change_executed": sorted({n for s in no_change for n in s["executed"]}),
        "no_change_import_profile": dict(profile),
        "target_no_change_s": TARGET_NO_CHANGE_S,
        "edit_last_s": stats(walls["edit_last"]),
        "edit_last_segments_s": segment_medians(edit),
        "edit_last_executed": sorted({n for s in edit for n in s["executed"]}),
        "edit_last_opened_mlflow": sorted({s["opened_mlflow"] for s in edit}),
        "edit_last_step": last,
        "edit_last_step_s": round(median_of(edit, lambda s: s["step_durations"][last]), 3),
        "bare_last_s": stats(walls["bare_last"]),
        "bare_last_execute_s": round(median_of(bare_last, lambda s: s["timings"][last]), 3),
        "bare_last_import_papermill_s": round(
            median_of(bare_last, lambda s: s["timings"]["import_papermill"]), 3
        ),
        "target_edit_extra_s": TARGET_EDIT_EXTRA_S,
        "edit_last_budget_s": round(med["bare_last"] + TARGET_EDIT_EXTRA_S, 3),
        "branches_steps": len(w1[0]["step_durations"]),
        "branches_1_s": stats(walls["branches_1"]),
        "branches_2_s": stats(walls["branches_2"]),
        "branches_ratio": round(med["branches_1"] / med["branches_2"], 2),
        "branches_paired_ratio": round(
            statistics.median(a["wall_s"] / b["wall_s"] for a, b in zip(w1, w2, strict=True)), 2
        ),
        "branches_steps_sum_s": steps_sum,
        "branches_chain_s": chains,
        "branches_segments_s": {"1": segment_medians(w1), "2": segment_medians(w2)},
        "target_branches_ratio": TARGET_BRANCH_RATIO,
    }
