"""Pipeline-level cost: ``toolkit run`` vs bare papermill on the same four notebooks.

The example pipeline (``pipelines/train.yaml``: ingest -> features -> train -> evaluate) runs in
a throwaway copy of the project (``notebooks/``, ``pipelines/``, ``expectations/`` and
``pyproject.toml`` copied into a temporary folder), so the repository's own ``mlflow.db`` and
``runs/`` are never touched. Every variant is a fresh process, timed from spawn to exit:

* bare papermill: the four notebooks executed one after the other in one process with
  ``papermill.execute_notebook`` (kernel ``python3``, no progress bar), with the parameters the
  toolkit's planner resolves for them (absolute paths in a temporary run folder);
* ``python -m toolkit run pipelines/train.yaml --quiet --json --no-tracking`` (the JSON summary
  is read from stdout): planning, one kernel per step, data contracts and the release gates, no
  MLflow;
* ``python -m toolkit run pipelines/train.yaml --quiet --json``: the same plus MLflow tracking
  and, as the gates pass (there is no champion unless someone promotes), registration of a new
  ``candidate`` model version on every run;
* ``toolkit --help``, against the start-up of a bare interpreter (``python -c pass``).

One tracked run comes first and is not part of the medians: it creates the MLflow store and
registers version 1, a one-off cost reported on its own. Then the three pipeline variants are
interleaved (their order rotating every repetition) so machine noise hits them alike.

Pipeline-level tracking overhead per step = (median tracked - median untracked) / steps; the
median of the per-repetition differences (tracked - untracked of the same repetition) is
reported beside it, as it is less sensitive to a noisy stretch of time on a shared machine.
Targets: < 150 ms per step (stretch <= 50 ms); ``toolkit --help`` <= 0.3 s.

Where the time goes is measured, not guessed: each toolkit run's JSON summary carries the
wall-clock start and end of the run and of every step, and ``summary.json`` is written right
after the gates and registration; together with the spawn and exit times seen from outside,
they split every run into consecutive segments (start-up, tracking set-up, steps, the
bookkeeping between steps, release, finish and exit) whose medians are compared. Two more
measurements, in fresh processes, break the segments down: the import time of the heavy
libraries, and the bookkeeping the tracked runner does per executed notebook (scrub, render to
HTML, fingerprint the data).

    .venv/bin/python benchmarks/bench_pipeline.py [repeat] [pipeline_repeat]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PROJECT_ITEMS = ("notebooks", "pipelines", "expectations", "pyproject.toml")
SPEC = "pipelines/train.yaml"
KERNEL = "python3"
TARGET_STEP_OVERHEAD_MS = 150.0
STRETCH_STEP_OVERHEAD_MS = 50.0
TARGET_HELP_S = 0.3
# Consecutive segments of one toolkit run, in order; they add up to its wall time.
SEGMENTS = (
    "startup",
    "run_setup",
    "steps",
    "between_steps",
    "last_step_bookkeeping",
    "release",
    "finish_exit",
)
# Imported by a toolkit run (GX to check suites before the first step, MLflow when tracking).
HEAVY_MODULES = ("great_expectations", "mlflow", "papermill", "nbconvert")
# Settings a developer's shell may carry that would point the runs at another store or folder.
_LEAKY_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME")


def _progress(message: str) -> None:
    print(f"[pipeline] {message}", file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    """This process's environment without settings that would redirect the toolkit's runs."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_") and k not in _LEAKY_ENV
    }
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


def make_project(dest: Path, source: Path = REPO) -> Path:
    """Copy what the example pipeline needs into ``dest`` (created); return ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for item in PROJECT_ITEMS:
        src = source / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        else:
            shutil.copy2(src, dest / item)
    return dest


def bare_requests(project: Path, run_dir: Path) -> list[dict[str, Any]]:
    """What papermill needs per step, with the parameters the toolkit's planner resolves."""
    from toolkit.plan import build_plan
    from toolkit.spec import load_spec

    plan = build_plan(load_spec(project / SPEC), run_dir)
    requests = []
    for step in plan.steps:
        for planned in step.outputs.values():
            planned.path.parent.mkdir(parents=True, exist_ok=True)
        requests.append(
            {
                "name": step.name,
                "notebook": str(step.notebook),
                "output": str(run_dir / "notebooks" / f"{step.name}.ipynb"),
                "parameters": dict(step.parameters),
                "cwd": str(step.notebook.parent),
            }
        )
    return requests


def execute_bare(requests: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Run the notebooks one after the other with papermill; seconds per notebook."""
    start = time.perf_counter()
    import papermill as pm

    timings = {"import_papermill": time.perf_counter() - start}
    for request in requests:
        Path(request["output"]).parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        pm.execute_notebook(
            request["notebook"],
            request["output"],
            parameters=request["parameters"],
            kernel_name=KERNEL,
            cwd=request["cwd"],
            progress_bar=False,
        )
        timings[request["name"]] = time.perf_counter() - start
    return timings


def _spawn(cmd: list[str], cwd: Path, what: str) -> tuple[float, float, float, str]:
    """Run ``cmd`` to completion; (spawn epoch, exit epoch, wall seconds, stdout)."""
    spawned, start = time.time(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=child_env(), capture_output=True, text=True)
    wall, ended = time.perf_counter() - start, time.time()
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{what} exited {proc.returncode}:\n{tail}")
    return spawned, ended, wall, proc.stdout


def _time_bare(project: Path, rep: str) -> dict[str, Any]:
    folder = project / "bare" / rep
    folder.mkdir(parents=True)
    plan_file, out_file = folder / "requests.json", folder / "timings.json"
    plan_file.write_text(json.dumps(bare_requests(project, folder)))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--bare", str(plan_file), str(out_file)]
    _, _, wall, _ = _spawn(cmd, project, "bare papermill")
    return {"wall_s": wall, "timings": json.loads(out_file.read_text())}


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def segments(
    summary: dict[str, Any], spawned: float, ended: float, written: float
) -> dict[str, float]:
    """Split one run's wall time into consecutive segments (seconds), from its own timestamps.

    ``written`` is when ``summary.json`` was written: right after the gates and registration.
    """
    steps = sorted(summary["steps"], key=lambda s: s["started_at"])
    starts = [_epoch(s["started_at"]) for s in steps]
    ends = [_epoch(s["ended_at"]) for s in steps]
    run_start, run_end = _epoch(summary["started_at"]), _epoch(summary["ended_at"])
    return {
        "startup": run_start - spawned,
        "run_setup": starts[0] - run_start,
        "steps": sum(e - s for s, e in zip(starts, ends, strict=True)),
        "between_steps": sum(s - e for e, s in zip(ends[:-1], starts[1:], strict=True)),
        "last_step_bookkeeping": run_end - ends[-1],
        "release": written - run_end,
        "finish_exit": ended - written,
    }


def _time_toolkit(project: Path, track: bool) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "toolkit", "run", SPEC, "--quiet", "--json"]
    if not track:
        cmd.append("--no-tracking")
    what = "toolkit run" + ("" if track else " --no-tracking")
    spawned, ended, wall, stdout = _spawn(cmd, project, what)
    summary = json.loads(stdout)
    if summary["status"] != "succeeded":
        raise RuntimeError(f"{what} ended {summary['status']}: {summary.get('gates')}")
    written = (Path(summary["run_dir"]) / "summary.json").stat().st_mtime
    registered = summary.get("registered") or {}
    return {
        "wall_s": wall,
        "run_dir": summary["run_dir"],
        "segments": segments(summary, spawned, ended, written),
        "step_durations": {s["name"]: s["duration"] for s in summary["steps"]},
        "contracts": {s["name"]: len(s.get("contracts") or ()) for s in summary["steps"]},
        "steps": len(summary["steps"]),
        "gates_passed": (summary.get("gates") or {}).get("passed"),
        "champion_version": (summary.get("gates") or {}).get("champion_version"),
        "registered_version": registered.get("version"),
    }


def bookkeeping_anatomy(run_dir: Path) -> dict[str, float]:
    """Time, in this (fresh) process, what the tracked runner does to each executed notebook.

    First the modules a tracked run has loaded by the end of its first step are imported
    (untimed), so the first HTML render pays only for what nbconvert adds on top of them, as in
    a ``toolkit run``; the other renders are warm. Seconds; per-notebook figures are medians.
    """
    import great_expectations  # noqa: F401
    import mlflow  # noqa: F401
    import papermill  # noqa: F401

    from toolkit.lineage import fingerprint
    from toolkit.nbrender import render_html
    from toolkit.secrets import Redactor, scrub_notebook

    notebooks = sorted((run_dir / "notebooks").glob("*.ipynb"))
    data = sorted(p for p in (run_dir / "data").iterdir() if p.is_file())
    redactor = Redactor()
    render, scrub, prints = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-anatomy-") as tmp:
        start = time.perf_counter()
        render_html(notebooks[0], Path(tmp) / "first.html")
        first = time.perf_counter() - start
        for nb in notebooks:
            start = time.perf_counter()
            clean = scrub_notebook(nb, Path(tmp) / nb.name, redactor)
            middle = time.perf_counter()
            render_html(clean, Path(tmp) / f"{nb.stem}.html")
            scrub.append(middle - start)
            render.append(time.perf_counter() - middle)
    for path in data:
        start = time.perf_counter()
        fingerprint(path)
        prints.append(time.perf_counter() - start)
    return {
        "first_render_html_s": first,
        "render_html_s": statistics.median(render),
        "scrub_notebook_s": statistics.median(scrub),
        "fingerprint_s": statistics.median(prints),
        "data_files": len(data),
    }


def time_imports(modules: Sequence[str], repeat: int) -> dict[str, float]:
    """Wall time of ``python -c "import M"`` as a fresh process, minus bare start-up; seconds."""
    commands = {m: [sys.executable, "-c", f"import {m}"] for m in modules}
    commands[""] = [sys.executable, "-c", "pass"]
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(repeat):
        for key, cmd in commands.items():
            times[key].append(_spawn(cmd, REPO, " ".join(cmd))[2])
    base = statistics.median(times.pop(""))
    return {m: max(0.0, statistics.median(t) - base) for m, t in times.items()}


def _toolkit_command() -> list[str]:
    script = Path(sys.executable).with_name("toolkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "toolkit"]


def time_help(repeat: int) -> dict[str, Any]:
    """``toolkit --help`` and ``python -c pass`` as fresh processes, interleaved; seconds."""
    commands = {"help": [*_toolkit_command(), "--help"], "python": [sys.executable, "-c", "pass"]}
    times: dict[str, list[float]] = {k: [] for k in commands}
    for i in range(repeat + 1):  # the first round warms the file cache and is dropped
        for key, cmd in commands.items():
            _, _, wall, _ = _spawn(cmd, REPO, " ".join(cmd))
            if i:
                times[key].append(wall)
    return {
        "help_s": statistics.median(times["help"]),
        "python_startup_s": statistics.median(times["python"]),
        "help_samples_s": times["help"],
    }


def _median_of(samples: list[dict[str, Any]], get: Callable[[dict[str, Any]], float]) -> float:
    return statistics.median(get(s) for s in samples)


def _stats(samples: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(samples), 3),
        "min": round(min(samples), 3),
        "max": round(max(samples), 3),
    }


def run(repeat: int = 5, pipeline_repeat: int = 5) -> dict[str, Any]:
    """Measure the three pipeline variants and ``--help``; medians in seconds, and ratios.

    Args:
        repeat: fresh processes per quick figure (``toolkit --help``).
        pipeline_repeat: runs per pipeline variant (after one untimed tracked warm-up run).
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    variants: dict[str, Callable[[Path, str], dict[str, Any]]] = {
        "bare": _time_bare,
        "untracked": lambda project, _rep: _time_toolkit(project, track=False),
        "tracked": lambda project, _rep: _time_toolkit(project, track=True),
    }
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in variants}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        project = make_project(Path(tmp) / "project")
        _progress(f"throwaway project at {project}; warm-up: first tracked run (new store)")
        first = _time_toolkit(project, track=True)
        _progress(f"warm-up run: {first['wall_s']:.1f} s")
        names = list(variants)
        for rep in range(pipeline_repeat):
            order = names[rep % len(names) :] + names[: rep % len(names)]
            for name in order:
                sample = variants[name](project, f"rep-{rep}")
                samples[name].append(sample)
                _progress(f"{rep + 1}/{pipeline_repeat} {name:<9} {sample['wall_s']:6.1f} s")
        _progress("anatomy: per-notebook bookkeeping, fresh-process imports")
        out = Path(tmp) / "anatomy.json"
        run_dir = samples["tracked"][-1]["run_dir"]
        cmd = [sys.executable, str(Path(__file__).resolve()), "--anatomy", run_dir, str(out)]
        _spawn(cmd, project, "bookkeeping anatomy")
        anatomy = json.loads(out.read_text())
    imports = time_imports(HEAVY_MODULES, max(1, min(repeat, 3)))
    _progress(f"toolkit --help x {repeat}")
    help_figures = time_help(repeat)

    walls = {k: [s["wall_s"] for s in v] for k, v in samples.items()}
    medians = {k: statistics.median(v) for k, v in walls.items()}
    steps = samples["tracked"][0]["steps"]
    overhead_ms = (medians["tracked"] - medians["untracked"]) / steps * 1000
    # Runs of the same repetition are minutes apart and share the machine's mood: their
    # differences are less noisy than the difference of the two medians.
    pairs = list(zip(samples["untracked"], samples["tracked"], strict=True))
    paired_ms = statistics.median(t["wall_s"] - u["wall_s"] for u, t in pairs) / steps * 1000
    paired_segments = {
        seg: round(statistics.median(t["segments"][seg] - u["segments"][seg] for u, t in pairs), 3)
        for seg in SEGMENTS
    }
    segment_medians = {
        variant: {
            seg: round(_median_of(samples[variant], lambda s, seg=seg: s["segments"][seg]), 3)
            for seg in SEGMENTS
        }
        for variant in ("untracked", "tracked")
    }
    step_names = list(samples["tracked"][0]["step_durations"])
    step_medians = {
        variant: {
            name: round(_median_of(samples[variant], lambda s, n=name: s["step_durations"][n]), 3)
            for name in step_names
        }
        for variant in ("untracked", "tracked")
    }
    step_medians["bare"] = {
        name: round(_median_of(samples["bare"], lambda s, n=name: s["timings"][n]), 3)
        for name in step_names
    }
    tracked = samples["tracked"]
    return {
        "steps": steps,
        "pipeline_repeat": pipeline_repeat,
        "repeat": repeat,
        "bare_papermill_s": _stats(walls["bare"]),
        "untracked_s": _stats(walls["untracked"]),
        "tracked_s": _stats(walls["tracked"]),
        "untracked_vs_bare_ratio": round(medians["untracked"] / medians["bare"], 2),
        "tracked_vs_bare_ratio": round(medians["tracked"] / medians["bare"], 2),
        "tracked_vs_untracked_ratio": round(medians["tracked"] / medians["untracked"], 2),
        "tracking_overhead_ms_per_step": round(overhead_ms, 1),
        "paired_overhead_ms_per_step": round(paired_ms, 1),
        "target_step_overhead_ms": TARGET_STEP_OVERHEAD_MS,
        "stretch_step_overhead_ms": STRETCH_STEP_OVERHEAD_MS,
        "segments_s": segment_medians,
        "segments_paired_delta_s": paired_segments,
        "step_durations_s": step_medians,
        "contracts_per_step": samples["tracked"][0]["contracts"],
        "bare_import_papermill_s": round(
            _median_of(samples["bare"], lambda s: s["timings"]["import_papermill"]), 3
        ),
        "bookkeeping_anatomy_s": {k: round(v, 4) for k, v in anatomy.items()},
        "fresh_import_s": {k: round(v, 3) for k, v in imports.items()},
        "first_tracked_run_s": round(first["wall_s"], 3),
        "first_tracked_segments_s": {k: round(v, 3) for k, v in first["segments"].items()},
        "registered_versions": [first["registered_version"]]
        + [s["registered_version"] for s in tracked],
        "gates_passed": all(s["gates_passed"] for s in [first, *tracked]),
        "champion_versions_seen": sorted({str(s["champion_version"]) for s in [first, *tracked]}),
        "help_s": round(help_figures["help_s"], 4),
        "python_startup_s": round(help_figures["python_startup_s"], 4),
        "help_ratio": round(help_figures["help_s"] / help_figures["python_startup_s"], 2),
        "target_help_s": TARGET_HELP_S,
    }


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[1] == "--bare":  # the bare-papermill child process
        timings = execute_bare(json.loads(Path(argv[2]).read_text()))
        Path(argv[3]).write_text(json.dumps(timings))
        return 0
    if len(argv) == 4 and argv[1] == "--anatomy":  # a fresh process, like a toolkit run
        Path(argv[3]).write_text(json.dumps(bookkeeping_anatomy(Path(argv[2]))))
        return 0
    repeat = int(argv[1]) if len(argv) > 1 else 5
    pipeline_repeat = int(argv[2]) if len(argv) > 2 else 5
    figures = run(repeat, pipeline_repeat)
    print(json.dumps(figures, indent=2))
    ok = (
        figures["tracking_overhead_ms_per_step"] < TARGET_STEP_OVERHEAD_MS
        and figures["help_s"] <= TARGET_HELP_S
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
