"""Cost curves of the orchestrator: how plan and re-run time grow with the number of steps.

Generated pipelines of N trivial steps (two interleaved chains: each step reads the small output
of the step two before it and writes its own), all named ``scale`` so they share one step cache: the largest is run
once cold and the smaller ones are prefixes of it, whose steps are then cache hits too. That
keeps the bench to one cold run of the largest size (kernels for N steps) instead of one per
size. Per size, each timed from spawn to exit in a fresh process, interleaved with the baseline:

* **plan**: ``toolkit plan scale_N.yaml --json`` (spec, notebooks' parameters, DAG, cache
  preview). Target: <= 1 s at 200 steps.
* **no-change re-run**: ``toolkit run scale_N.yaml --no-tracking`` with every step reused.
  Target: <= 1 s at 200 steps.
* **orchestrator overhead per step**: the no-change re-run's time inside the run (its JSON
  summary's run start to run end: planning, cache decisions and the reuse of every step, not
  the interpreter's start-up and exit), divided by N. Kernels would dominate a cold run, so the
  re-run is where the orchestrator's own cost shows. Target: flat, within +-30 % from the
  smallest size to the largest.
* baseline: ``toolkit --version`` in a fresh process (interpreter and CLI start-up).

The one cold run of the largest size is reported too (wall, steps' own time, and the time
between steps per step), untimed against any target: kernels dominate it.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import REPO, progress, run_toolkit, segment_medians, spawn, stats

TARGET_S = 1.0
TARGET_FLAT = 0.30
NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "params",
            "metadata": {"tags": ["parameters"]},
            "outputs": [],
            "source": 'src = ""\nout = "out.txt"\ni = 0',
        },
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "work",
            "metadata": {},
            "outputs": [],
            "source": (
                "from pathlib import Path\n"
                "text = Path(src).read_text() if src else ''\n"
                "Path(out).write_text(text[-16:] + str(i))"
            ),
        },
    ],
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def write_spec(folder: Path, steps: int) -> Path:
    """``folder/scale_<steps>.yaml``: a chain of ``steps`` trivial steps named ``scale``."""
    lines = ["name: scale", f"description: {steps} trivial steps in a chain.", "", "steps:"]
    for i in range(steps):
        lines += [
            f"  - name: s{i:04d}",
            "    notebook: trivial.ipynb",
            f"    parameters: {{i: {i}}}",
        ]
        if i > 1:  # two interleaved chains: the cold run that fills the cache uses 2 workers
            lines += ["    inputs:", f"      src: s{i - 2:04d}.out"]
        lines += ["    outputs:", f"      out: s{i:04d}.txt"]
    path = folder / f"scale_{steps}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_scale_project(dest: Path, sizes: Sequence[int]) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "pyproject.toml", dest / "pyproject.toml")
    folder = dest / "pipelines"
    folder.mkdir()
    (folder / "trivial.ipynb").write_text(json.dumps(NOTEBOOK, indent=1))
    for n in sizes:
        write_spec(folder, n)
    return dest


def _toolkit(project: Path, *args: str) -> float:
    cmd = [sys.executable, "-m", "toolkit", *args]
    return spawn(cmd, project, " ".join(["toolkit", *args]))[2]


def _in_run_s(result: dict[str, Any]) -> float:
    seg = result["segments"]
    return seg["run_setup"] + seg["steps"] + seg["between_steps"] + seg["last_step_bookkeeping"]


def run(sizes: Sequence[int] = (10, 50, 200), repeat: int = 3) -> dict[str, Any]:
    """Medians in seconds per size; see the module's docstring for what each figure is."""
    sizes = sorted(sizes)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        project = make_scale_project(Path(tmp) / "project", sizes)
        largest = f"pipelines/scale_{sizes[-1]}.yaml"
        progress("scale", f"cold run of {sizes[-1]} trivial steps (fills the step cache)")
        cold = run_toolkit(project, [largest, "--no-tracking", "--workers", "2"])
        cold_fig = {
            "steps": sizes[-1],
            "wall_s": round(cold["wall_s"], 3),
            "steps_s": round(cold["segments"]["steps"], 3),
            "wall_per_step_s": round(cold["wall_s"] / sizes[-1], 3),
        }
        for n in sizes:  # a first re-run per size records its whole-run entry: untimed
            run_toolkit(project, [f"pipelines/scale_{n}.yaml", "--no-tracking"])
        samples: dict[str, dict[int, list[float]]] = {"plan": {}, "rerun": {}, "in_run": {}}
        reruns: dict[int, list[dict[str, Any]]] = {}
        baseline: list[float] = []
        for r in range(repeat):
            progress("scale", f"repetition {r + 1}/{repeat}")
            baseline.append(_toolkit(project, "--version"))
            for n in sizes:
                spec = f"pipelines/scale_{n}.yaml"
                samples["plan"].setdefault(n, []).append(_toolkit(project, "plan", spec, "--json"))
                rerun = run_toolkit(project, [spec, "--no-tracking"])
                hits = sum(s == "cached" for s in rerun["statuses"].values())
                if hits != n:
                    raise RuntimeError(f"no-change re-run of {n} steps reused only {hits}")
                samples["rerun"].setdefault(n, []).append(rerun["wall_s"])
                samples["in_run"].setdefault(n, []).append(_in_run_s(rerun))
                reruns.setdefault(n, []).append(rerun)
    per_size = {}
    for n in sizes:
        in_run = statistics.median(samples["in_run"][n])
        per_size[str(n)] = {
            "plan": stats(samples["plan"][n]),
            "rerun": stats(samples["rerun"][n]),
            "in_run_s": round(in_run, 4),
            "per_step_ms": round(1000 * in_run / n, 3),
            "rerun_segments_s": segment_medians(reruns[n]),
        }
    small, big = per_size[str(sizes[0])], per_size[str(sizes[-1])]
    return {
        "sizes": sizes,
        "repeat": repeat,
        "baseline": stats(baseline),
        "per_size": per_size,
        "flat_ratio": round(big["per_step_ms"] / small["per_step_ms"], 3),
        "cold": cold_fig,
        "target_s": TARGET_S,
        "target_flat": TARGET_FLAT,
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]] or [10, 50, 200]
    print(json.dumps(run(args, repeat=1), indent=2))
