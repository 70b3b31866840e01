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
* **orchestrator time per step**: the marginal cost of one more step in the no-change re-run,
  measured on its time inside the run (its JSON summary's run start to run end: cache
  decisions and the reuse of every step, not the interpreter's start-up, the spec's loading or
  the exit). Kernels would dominate a cold run, so the re-run is where the orchestrator's own
  cost shows. Per repetition, the slope between consecutive sizes: (time at N2 - time at N1) /
  (N2 - N1); the median of those. Target: the slope between the two largest sizes within
  +-30 % of the slope between the two smallest.

  Why the slope and not the time divided by N: the run also has a fixed cost (run folder,
  plan record, summary) that does not depend on N; divided by N it makes the per-step figure
  fall as pipelines grow (10.2 ms at 10 steps, 7.0 ms at 200 when this was measured that way),
  which hides a per-step cost that grows. The slope leaves the fixed cost out (it is reported
  on its own, as the intercept), and it rises as soon as one step costs more in a longer
  pipeline (anything quadratic), so the target can fail for the reason it exists.
* baseline: ``toolkit --version`` in a fresh process (interpreter and CLI start-up).

Every command's CPU time (user + system, from ``getrusage`` of the waited-for child) is kept
next to its wall time: on a shared machine the wall time grows with the load, the CPU time much
less, so the two together say whether a miss is the code or the machine.

The one cold run of the largest size is reported too (wall, steps' own time, and the time
between steps per step), untimed against any target: kernels dominate it.
"""

from __future__ import annotations

import itertools
import json
import resource
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


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _toolkit(project: Path, *args: str) -> tuple[float, float]:
    """Wall and CPU seconds of ``toolkit ARGS`` in a fresh process."""
    cmd = [sys.executable, "-m", "toolkit", *args]
    before = _children_cpu()
    wall = spawn(cmd, project, " ".join(["toolkit", *args]))[2]
    return wall, _children_cpu() - before


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
        samples: dict[str, dict[int, list[float]]] = {
            key: {} for key in ("plan", "plan_cpu", "rerun", "rerun_cpu", "in_run")
        }
        reruns: dict[int, list[dict[str, Any]]] = {}
        baseline: list[float] = []
        baseline_cpu: list[float] = []
        for r in range(repeat):
            progress("scale", f"repetition {r + 1}/{repeat}")
            wall, cpu = _toolkit(project, "--version")
            baseline.append(wall)
            baseline_cpu.append(cpu)
            for n in sizes:
                spec = f"pipelines/scale_{n}.yaml"
                wall, cpu = _toolkit(project, "plan", spec, "--json")
                samples["plan"].setdefault(n, []).append(wall)
                samples["plan_cpu"].setdefault(n, []).append(cpu)
                before = _children_cpu()
                rerun = run_toolkit(project, [spec, "--no-tracking"])
                samples["rerun_cpu"].setdefault(n, []).append(_children_cpu() - before)
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
            "plan_cpu": stats(samples["plan_cpu"][n]),
            "rerun": stats(samples["rerun"][n]),
            "rerun_cpu": stats(samples["rerun_cpu"][n]),
            "in_run_s": round(in_run, 4),
            "per_step_ms": round(1000 * in_run / n, 3),  # the average, fixed cost included
            "rerun_segments_s": segment_medians(reruns[n]),
        }
    marginal = _marginal_ms(sizes, samples["in_run"])
    first, last = marginal[0]["ms_per_step"], marginal[-1]["ms_per_step"]
    return {
        "sizes": sizes,
        "repeat": repeat,
        "baseline": stats(baseline),
        "baseline_cpu": stats(baseline_cpu),
        "per_size": per_size,
        "marginal": marginal,
        # The whole command's CPU, the spec's loading and the run's records included.
        "marginal_cpu": _marginal_ms(sizes, samples["rerun_cpu"]),
        "fixed_ms": round(
            1000 * statistics.median(samples["in_run"][sizes[0]]) - sizes[0] * first, 1
        ),
        "flat_ratio": round(last / first, 3) if first > 0 else float("inf"),
        "cold": cold_fig,
        "target_s": TARGET_S,
        "target_flat": TARGET_FLAT,
    }


def _marginal_ms(sizes: Sequence[int], in_run: dict[int, list[float]]) -> list[dict[str, Any]]:
    """Per pair of consecutive sizes, the median over repetitions of the in-run time one more
    step costs (ms): paired per repetition, so a load that drifts between repetitions cancels."""
    out = []
    for a, b in itertools.pairwise(sizes):
        slopes = [1000 * (tb - ta) / (b - a) for ta, tb in zip(in_run[a], in_run[b], strict=True)]
        out.append({"from": a, "to": b, "ms_per_step": round(statistics.median(slopes), 3)})
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]] or [10, 50, 200]
    print(json.dumps(run(args, repeat=1), indent=2))
