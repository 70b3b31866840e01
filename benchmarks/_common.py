"""What the benchmark modules and the harness share: formatting, timing and the throwaway project.

Formatting (``fmt_s``, ``Row``) is used by ``run.py`` and the report modules; the rest by the
pipeline benchmarks, which time fresh processes (``spawn``, ``run_toolkit``) in a throwaway copy
of the project (``make_project``) and split each ``toolkit run`` into consecutive segments from
its own JSON summary (``segments``).

Run as a script it is the bare-papermill child process:
``python benchmarks/_common.py --bare REQUESTS.json TIMINGS.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DASH = "—"
KERNEL = "python3"
PROJECT_ITEMS = ("notebooks", "pipelines", "expectations", "pyproject.toml")
# Settings a developer's shell may carry that would point the runs at another store or folder.
_LEAKY_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_NAME")
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


# --------------------------------------------------------------------------- formatting


def fmt_s(seconds: float) -> str:
    """A duration with a unit that keeps three significant-looking digits."""
    if seconds < 0:
        return "-" + fmt_s(-seconds)
    if seconds < 5e-8:
        return "0 s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.1:
        return f"{seconds * 1000:.0f} ms"
    if seconds >= 0.001:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1e6:.1f} µs" if seconds < 1e-4 else f"{seconds * 1e6:.0f} µs"


def fmt_ms(ms: float) -> str:
    return fmt_s(ms / 1000)


def fmt_x(ratio: float) -> str:
    return f"{ratio:.2f}x"


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


def spread(s: Mapping[str, float]) -> str:
    """``median (min-max)`` of a :func:`stats` dict."""
    return f"{fmt_s(s['median'])} ({fmt_s(s['min'])}-{fmt_s(s['max'])})"


@dataclass(frozen=True)
class Row:
    """One line of an area's table. ``met`` is None for a figure without a target."""

    figure: str
    value: str
    baseline: str = DASH
    ratio: str = DASH
    target: str = DASH
    met: bool | None = None
    stretch_met: bool | None = None

    @property
    def plain_verdict(self) -> str:
        if self.met is None:
            return DASH
        text = "yes" if self.met else "NO"
        if self.stretch_met is not None:
            text += f" (stretch: {'yes' if self.stretch_met else 'no'})"
        return text

    @property
    def verdict(self) -> str:
        """The verdict in Markdown: the target's part in bold."""
        head, _, tail = self.plain_verdict.partition(" ")
        return head if self.met is None else f"**{head}**" + (f" {tail}" if tail else "")


# --------------------------------------------------------------------------- statistics


def stats(samples: Sequence[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(samples), 3),
        "min": round(min(samples), 3),
        "max": round(max(samples), 3),
    }


def median_of(samples: Sequence[Mapping[str, Any]], get: Callable[[Any], float]) -> float:
    return statistics.median(get(s) for s in samples)


def segment_medians(samples: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Median of every segment over runs timed by :func:`run_toolkit`; seconds."""
    return {
        seg: round(median_of(samples, lambda s, seg=seg: s["segments"][seg]), 3) for seg in SEGMENTS
    }


# --------------------------------------------------------------------------- processes


def progress(tag: str, message: str) -> None:
    print(f"[{tag}] {message}", file=sys.stderr, flush=True)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without settings that would redirect the toolkit's runs."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("TOOLKIT_") and k not in _LEAKY_ENV
    }
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env.update(extra or {})
    return env


def spawn(
    cmd: list[str], cwd: Path, what: str, env: Mapping[str, str] | None = None
) -> tuple[float, float, float, str, str]:
    """Run ``cmd`` to completion; (spawn epoch, exit epoch, wall seconds, stdout, stderr)."""
    spawned, start = time.time(), time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=child_env(env), capture_output=True, text=True)
    wall, ended = time.perf_counter() - start, time.time()
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr.strip() or _failed_steps(proc.stdout)).splitlines()[-15:])
        raise RuntimeError(f"{what} exited {proc.returncode}:\n{tail}")
    return spawned, ended, wall, proc.stdout, proc.stderr


def _failed_steps(stdout: str) -> str:
    """What a ``--quiet --json`` run that failed says about its steps and gates."""
    try:
        summary = json.loads(stdout)
    except ValueError:
        return stdout[-2000:]
    lines = [
        f"{s['name']}: {s['status']} {s.get('reason') or ''} {s.get('error') or ''}"
        for s in summary.get("steps", [])
        if s.get("status") not in ("succeeded", "cached")
    ]
    return "\n".join([*lines, *((summary.get("gates") or {}).get("summary") or [])])


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def segments(
    summary: Mapping[str, Any], spawned: float, ended: float, written: float
) -> dict[str, float]:
    """Split one run's wall time into consecutive segments (seconds), from its own timestamps.

    ``written`` is when ``summary.json`` was written: right after the gates and registration.
    A cached step starts and ends at the same instant: it adds nothing to ``steps``.
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
        "last_step_bookkeeping": run_end - max(ends),
        "release": written - run_end,
        "finish_exit": ended - written,
    }


def run_toolkit(
    project: Path, args: Sequence[str], env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``python -m toolkit run ARGS --quiet --json`` in ``project``, timed from spawn to exit.

    Returns the wall time, the JSON summary, the run's segments and each step's status and
    duration; raises unless the run succeeded.
    """
    cmd = [sys.executable, "-m", "toolkit", "run", *args, "--quiet", "--json"]
    what = " ".join(["toolkit run", *args])
    failures = []
    while True:  # one retry: a shared machine occasionally loses a kernel; the miss is reported
        try:
            spawned, ended, wall, stdout, _ = spawn(cmd, project, what, env)
            break
        except RuntimeError as exc:
            failures.append(str(exc))
            progress("toolkit", f"FAILED, retrying once: {exc}")
            if len(failures) > 1:
                raise
    summary = json.loads(stdout)
    written = (Path(summary["run_dir"]) / "summary.json").stat().st_mtime
    return {
        "wall_s": wall,
        "summary": summary,
        "run_dir": summary["run_dir"],
        "segments": segments(summary, spawned, ended, written),
        "step_durations": {s["name"]: s["duration"] for s in summary["steps"]},
        "statuses": {s["name"]: s["status"] for s in summary["steps"]},
        "opened_mlflow": summary.get("tracking_uri") is not None,
        "failures": failures,
    }


# --------------------------------------------------------------------------- the project


def make_project(dest: Path, source: Path = REPO, extra: Mapping[str, Path] | None = None) -> Path:
    """Copy what the example pipeline needs into ``dest`` (created); return ``dest``.

    ``extra`` maps more folders to copy in, by their name inside the project.
    """
    dest.mkdir(parents=True, exist_ok=True)
    items = {item: source / item for item in PROJECT_ITEMS} | dict(extra or {})
    for name, src in items.items():
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def bare_requests(project: Path, run_dir: Path, spec: str) -> list[dict[str, Any]]:
    """What papermill needs per step, with the parameters the toolkit's planner resolves."""
    from toolkit.plan.build import build_plan
    from toolkit.specs.load import load_spec

    plan = build_plan(load_spec(project / spec), run_dir)
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


def execute_bare(requests: Sequence[Mapping[str, Any]]) -> dict[str, float]:
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


def time_bare(project: Path, folder: Path, requests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``requests`` run by :func:`execute_bare` in a fresh process, timed from spawn to exit."""
    plan_file, out_file = folder / "requests.json", folder / "timings.json"
    plan_file.write_text(json.dumps(list(requests)))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--bare", str(plan_file), str(out_file)]
    _, _, wall, _, _ = spawn(cmd, project, "bare papermill")
    return {"wall_s": wall, "timings": json.loads(out_file.read_text())}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--bare":  # the bare-papermill child process
        Path(sys.argv[3]).write_text(
            json.dumps(execute_bare(json.loads(Path(sys.argv[2]).read_text())))
        )
        sys.exit(0)
    sys.exit(f"usage: {sys.argv[0]} --bare REQUESTS.json TIMINGS.json")
