"""Run every benchmark in one invocation and write ``benchmarks/RESULTS.md``.

Each area (``AREAS``: contracts, tracking, monitor, guard, audit, pipeline, the cost curves
scale, store, check, decisions, shadow and fingerprint) runs in a fresh child process of its
own, one after the other: its one-off import costs are then real, a large frame from one area
never weighs on the next, and an area that raises, or even crashes, is reported as such while
the others still run. ``bench_guard`` is optional: when it is missing or cannot be imported the
area is skipped with a note.

The results file has, per area, a table of figure, value, baseline, ratio, target and verdict;
every ratio's baseline is measured in the same run. Where a target is missed, a "where the time
goes" note is composed from the measured figures (sub-timings the benchmark took), never from
prose written in advance.

    .venv/bin/python benchmarks/run.py [--quick] [--only AREA ...] [--repeat N] [--out PATH]

``--quick`` runs tiny sizes once (a smoke test of the harness, not a measurement); ``--repeat N``
keeps the full sizes but repeats every measurement N times instead. The exit code
is 1 when an area failed to run, 0 otherwise; missed targets are reported, not fatal.
"""

from __future__ import annotations

import argparse
import collections
import compileall
import importlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the sibling modules, also when run.py is loaded from a path
    sys.path.insert(0, str(HERE))

import curves_report  # noqa: E402
import pipeline_report  # noqa: E402
from _common import DASH, REPO, Row, fmt_ms, fmt_s, fmt_x, pct  # noqa: E402

DEFAULT_OUT = HERE / "RESULTS.md"
# Every area's last full measurement, so `--only AREA` rewrites RESULTS.md without dropping the
# areas it did not run (they are carried over, with the date they were measured).
LAST_FIGURES = HERE / "results.json"
LIBRARIES = ("pandas", "numpy", "great-expectations", "mlflow", "papermill", "scikit-learn")


# --------------------------------------------------------------------------- the areas


def _contracts_rows(d: Mapping[str, Any]) -> list[Row]:
    return [
        Row(
            f"`validate()`, {d['rows']:,} rows x {d['columns']} columns, "
            f"{d['expectations']} expectations",
            fmt_s(d["validate_s"]),
            f"same checks in plain pandas: {fmt_s(d['pandas_s'])}",
            fmt_x(d["ratio"]),
            f"≤ {d['target_ratio']:g}x",
            d["ratio"] <= d["target_ratio"],
        ),
        Row(
            "`validate()` on 1,000 rows (per-validation fixed cost)", fmt_s(d["validate_1k_rows_s"])
        ),
        Row(
            "`validate()`, two columns failing on every row",
            fmt_s(d["validate_all_rows_failing_s"]),
            f"all passing: {fmt_s(d['validate_s'])}",
            fmt_x(d["validate_all_rows_failing_s"] / d["validate_s"]),
        ),
        Row("one-off: GX import + ephemeral context", fmt_s(d["one_off_import_and_context_s"])),
    ]


def _contracts_where(d: Mapping[str, Any], _all: Mapping[str, Any]) -> list[str]:
    if d["ratio"] <= d["target_ratio"]:
        return []
    fixed = min(d["validate_1k_rows_s"], d["validate_s"])
    scaling = d["validate_s"] - fixed
    return [
        f"`validate()` took {fmt_s(d['validate_s'])} against {fmt_s(d['pandas_s'])} for pandas. "
        f"{fmt_s(fixed)} of it ({pct(fixed, d['validate_s'])}) is the per-validation fixed cost "
        f"(the same suite on 1,000 rows: GX builds its metric graph whatever the size); that "
        f"alone is {fmt_x(fixed / d['pandas_s'])} the pandas time. The remaining "
        f"{fmt_s(scaling)} grows with the rows: {fmt_x(scaling / d['pandas_s'])} the pandas time."
    ]


def _tracking_rows(d: Mapping[str, Any]) -> list[Row]:
    median = d["median_ms_per_step"]
    return [
        Row(
            f"tracker per step (start, 20 params, 20 metrics, 1 artifact, end), "
            f"median of {d['steps']}",
            fmt_ms(median),
            target="< 150 ms (stretch ≤ 50 ms)",
            met=median < 150,
            stretch_met=median <= 50,
        ),
        Row(
            "p90 / max per step", f"{fmt_ms(d['p90_ms_per_step'])} / {fmt_ms(d['max_ms_per_step'])}"
        ),
        Row("one-off: `import toolkit.tracking`", fmt_ms(d["import_toolkit_tracking_ms"])),
        Row(
            "one-off: new store, incl. MLflow import", fmt_ms(d["new_store_incl_mlflow_import_ms"])
        ),
        Row("one-off: first pipeline run (experiment)", fmt_ms(d["first_pipeline_run_ms"])),
    ]


def _tracking_where(d: Mapping[str, Any], _all: Mapping[str, Any]) -> list[str]:
    median, p90 = d["median_ms_per_step"], d["p90_ms_per_step"]
    if median <= 50:
        return []
    what = "target (< 150 ms)" if median >= 150 else "stretch (≤ 50 ms)"
    return [
        f"The {what} is missed: median {fmt_ms(median)} per step, p90 {fmt_ms(p90)}, max "
        f"{fmt_ms(d['max_ms_per_step'])}. Each step is five calls to the tracker (start, "
        f"params, metrics, artifact, end) against the local SQLite store."
    ]


def _monitor_rows(d: Mapping[str, Any]) -> list[Row]:
    total = d["profile_s"] + d["monitor_batch_s"]
    return [
        Row(
            f"`build_profile` + `monitor_batch`, {d['rows']:,} rows x {d['columns']} columns",
            fmt_s(total),
            f"`DataFrame.describe()`: {fmt_s(d['describe_s'])}",
            fmt_x(d["ratio"]),
            f"≤ {d['target_ratio']:g}x",
            d["ratio"] <= d["target_ratio"],
        ),
        Row("`build_profile` (reference)", fmt_s(d["profile_s"])),
        Row("drift statistics only (`compare`, every column)", fmt_s(d["drift_statistics_s"])),
        Row(
            "`monitor_batch` end to end (statistics, histograms, HTML)", fmt_s(d["monitor_batch_s"])
        ),
        Row(
            "the same total",
            fmt_s(total),
            f'`describe(include="all")`: {fmt_s(d["describe_all_s"])}',
            fmt_x(d["ratio_vs_describe_all"]),
        ),
        Row("one-off: scipy import", fmt_s(d["one_off_scipy_import_s"])),
    ]


def _monitor_where(d: Mapping[str, Any], _all: Mapping[str, Any]) -> list[str]:
    if d["ratio"] <= d["target_ratio"]:
        return []
    total = d["profile_s"] + d["monitor_batch_s"]
    rest = max(0.0, d["monitor_batch_s"] - d["drift_statistics_s"])
    return [
        f"{fmt_s(total)} in all against {fmt_s(d['describe_s'])} for `describe()`: the "
        f"reference profile {fmt_s(d['profile_s'])} ({pct(d['profile_s'], total)}), the drift "
        f"statistics {fmt_s(d['drift_statistics_s'])} ({pct(d['drift_statistics_s'], total)}), "
        f"and the rest of `monitor_batch` (breaches, histograms, HTML) {fmt_s(rest)} "
        f"({pct(rest, total)})."
    ]


def _guard_rows(d: Mapping[str, Any]) -> list[Row]:
    return [
        Row(
            f"`GuardedModel.predict`, batch of {d['rows']:,} raw records",
            fmt_s(d["guarded_batch_s"]),
            f"bare `predict_proba`: {fmt_s(d['bare_batch_s'])}",
            fmt_x(d["batch_ratio"]),
            f"≤ {d['target_ratio']:g}x",
            d["batch_ratio"] <= d["target_ratio"],
        ),
        Row(
            f"guard overhead per single-row call, p95 ({d['single_row_calls']:,} calls; CPU "
            "time, guarded - bare per call pair)",
            fmt_ms(d["overhead_row_p95_ms"]),
            f"bare single row p95: {fmt_ms(d['bare_row_p95_ms'])}",
            fmt_x(d["guarded_row_p95_ms"] / d["bare_row_p95_ms"]),
            f"< {d['target_row_overhead_ms']:g} ms",
            d["overhead_row_p95_ms"] < d["target_row_overhead_ms"],
        ),
        Row(
            "`GuardedModel.predict` batch in CPU time (all threads)",
            fmt_s(d["guarded_batch_cpu_s"]),
            f"bare `predict_proba`: {fmt_s(d['bare_batch_cpu_s'])}",
            fmt_x(d["batch_ratio_cpu"]),
        ),
        Row(
            "guard overhead per single-row call, p50",
            fmt_ms(d["overhead_row_p50_ms"]),
            f"bare single row p50: {fmt_ms(d['bare_row_p50_ms'])}",
            fmt_x(d["guarded_row_p50_ms"] / d["bare_row_p50_ms"]),
        ),
        Row(
            "decision paths in the batch",
            ", ".join(f"{k}: {v:,}" for k, v in sorted(d["paths"].items())),
        ),
    ]


def _guard_where(d: Mapping[str, Any], _all: Mapping[str, Any]) -> list[str]:
    notes = []
    if d["batch_ratio"] > d["target_ratio"]:
        extra = d["guarded_batch_s"] - d["bare_batch_s"]
        notes.append(
            f"Batch: the guard adds {fmt_s(extra)} to {fmt_s(d['bare_batch_s'])} of scoring, "
            f"{fmt_s(extra / d['rows'])} per record (contract check, feature derivation, policy, "
            f"fallback, explanations, hashes and the decision table together)."
        )
    if d["overhead_row_p95_ms"] >= d["target_row_overhead_ms"]:
        notes.append(
            f"Single rows: guarded p50 {fmt_ms(d['guarded_row_p50_ms'])} / p95 "
            f"{fmt_ms(d['guarded_row_p95_ms'])} against bare p50 {fmt_ms(d['bare_row_p50_ms'])} "
            f"/ p95 {fmt_ms(d['bare_row_p95_ms'])}: the overhead is "
            f"{fmt_ms(d['overhead_row_p50_ms'])} at the median and "
            f"{fmt_ms(d['overhead_row_p95_ms'])} at p95."
        )
        tail = d["bare_row_p95_ms"] / d["bare_row_p50_ms"]
        if tail > 1.5:
            notes[-1] += (
                f" The bare calls' own p95 is {fmt_x(tail)} their p50: on this machine the "
                f"tail is noisy for both."
            )
    for key, what in (("batch_profile_pct", "the batch"), ("row_profile_pct", "one record")):
        if key in d:  # cProfile in CPU time, by the benchmark
            shares = ", ".join(f"{k} {v:g}%" for k, v in d[key].items())
            notes.append(f"Share of `predict` for {what} (cProfile, CPU time): {shares}.")
    return notes


def _audit_rows(d: Mapping[str, Any]) -> list[Row]:
    return [
        Row(
            f"step cells (CSV + Parquet, {d['rows']:,} rows) with the file-audit hook",
            fmt_s(d["hooked_tables_s"]),
            f"same work, no hook: {fmt_s(d['bare_tables_s'])}",
            f"{d['overhead_pct']:+.1f} %",
            f"≤ {d['target_pct']:g} %",
            d["overhead_pct"] <= d["target_pct"],
        ),
        Row(
            "hook cost per `open()`",
            f"{d['per_open_overhead_us']:.2f} µs",
            f"a bare small read: {d['bare_open_us']:.1f} µs",
        ),
    ]


def _audit_where(d: Mapping[str, Any], _all: Mapping[str, Any]) -> list[str]:
    if d["overhead_pct"] <= d["target_pct"]:
        return []
    return [
        f"Measured {d['overhead_pct']:+.1f} % over {d['repeat']} alternating runs; the hook "
        f"itself costs {d['per_open_overhead_us']:.2f} µs per open and recorded "
        f"{d['recorded_paths']} paths, so compare with the run-to-run spread of the bare runs."
    ]


@dataclass(frozen=True)
class Area:
    """One benchmark area: its module, its sizes, and how its figures are presented."""

    name: str
    title: str
    module: str
    full: Mapping[str, Any]
    quick: Mapping[str, Any]
    rows: Callable[[Mapping[str, Any]], list[Row]]
    where: Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]
    facts: Callable[[Mapping[str, Any]], list[str]] = lambda d: []
    extra: Callable[[Mapping[str, Any]], list[str]] = lambda d: []
    context: Callable[[Mapping[str, Any]], list[str]] = lambda d: []
    optional: bool = False


AREAS: dict[str, Area] = {
    a.name: a
    for a in (
        Area(
            "contracts",
            "Data contracts: GX validation vs plain pandas",
            "bench_contracts",
            {"rows": 1_000_000, "repeat": 3},
            {"rows": 2_000, "repeat": 1},
            _contracts_rows,
            _contracts_where,
        ),
        Area(
            "tracking",
            "Tracking: tracker-level cost per step (local SQLite store)",
            "bench_tracking",
            {"steps": 20, "repeat": 5},
            {"steps": 3, "repeat": 1},
            _tracking_rows,
            _tracking_where,
        ),
        Area(
            "monitor",
            "Monitoring: reference profile + drift vs DataFrame.describe()",
            "bench_monitor",
            {"rows": 1_000_000, "cols": 30, "repeat": 3},
            {"rows": 2_000, "cols": 10, "repeat": 1},
            _monitor_rows,
            _monitor_where,
        ),
        Area(
            "guard",
            "Guarded scoring vs bare predict_proba",
            "bench_guard",
            {"rows": 100_000, "repeat": 3},
            {"rows": 500, "repeat": 1},
            _guard_rows,
            _guard_where,
            optional=True,
        ),
        Area(
            "audit",
            "File audit: the kernel hook that lets the cache follow undeclared reads",
            "bench_audit",
            {"repeat": 5},
            {"repeat": 1},
            _audit_rows,
            _audit_where,
        ),
        Area(
            "pipeline",
            "Pipeline: toolkit run (cold, cached, edited, parallel) vs bare papermill, same notebooks",
            "bench_pipeline",
            {"repeat": 5, "pipeline_repeat": 5},
            {"repeat": 1, "pipeline_repeat": 1},
            pipeline_report.rows,
            pipeline_report.where,
            facts=pipeline_report.facts,
            extra=pipeline_report.segment_table,
            context=pipeline_report.context,
        ),
        Area(
            "scale",
            "Cost curve: plan and no-change re-run time as pipelines grow (10-200 trivial steps)",
            "bench_scale",
            # 3 repetitions: each is 3 plans and 3 re-runs (~1 min on 2 quiet cores); the one
            # cold run of 200 trivial steps that fills the cache costs more than all of them.
            {"sizes": (10, 50, 200), "repeat": 3},
            {"sizes": (2, 4), "repeat": 1},
            curves_report.scale_rows,
            curves_report.scale_where,
            extra=lambda d: curves_report.plot_links("scale"),
        ),
        Area(
            "store",
            "Cost curve: runs list and releases against a store of 10,000 runs",
            "bench_store",
            {"runs": 10_000, "versions": 500, "repeat": 5},
            {"runs": 50, "versions": 5, "repeat": 1},
            curves_report.store_rows,
            curves_report.store_where,
            extra=lambda d: curves_report.plot_links("store"),
        ),
        Area(
            "check",
            "toolkit check with contracts attached",
            "bench_check",
            {"repeat": 5},
            {"repeat": 1},
            curves_report.check_rows,
            curves_report.check_where,
        ),
        Area(
            "decisions",
            "Decision lookup: toolkit decisions against 1,000,000 indexed records",
            "bench_decisions",
            {"records": 1_000_000, "files": 20, "lookups": 50, "repeat": 3},
            {"records": 2_000, "files": 2, "lookups": 5, "repeat": 1},
            lambda d: importlib.import_module("bench_decisions").rows(d),
            lambda d, a: importlib.import_module("bench_decisions").where(d, a),
        ),
        Area(
            "shadow",
            "Shadow scoring: a batch with a shadow version beside the champion vs without",
            "bench_shadow",
            {"rows": 20_000, "repeat": 5},
            {"rows": 500, "repeat": 1},
            lambda d: importlib.import_module("bench_shadow").rows(d),
            lambda d, a: importlib.import_module("bench_shadow").where(d, a),
        ),
        Area(
            "fingerprint",
            "Cost curve: fingerprinting throughput vs cat",
            "bench_fingerprint",
            # 1 GB, not 2: the files are written to the temporary folder of a shared disk.
            {"sizes_mb": (10, 100, 1000), "repeat": 5},
            {"sizes_mb": (1, 2), "repeat": 1},
            curves_report.fingerprint_rows,
            curves_report.fingerprint_where,
            extra=lambda d: curves_report.plot_links("fingerprint"),
        ),
    )
}


# --------------------------------------------------------------------------- running


@dataclass
class AreaResult:
    """What one area's child process reported (or why it reported nothing)."""

    name: str
    status: str  # "ok", "skipped" or "error"
    data: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    elapsed_s: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)
    measured_at: str = ""  # set on an area carried over from an earlier run

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "data": self.data,
            "note": self.note,
            "elapsed_s": self.elapsed_s,
            "load": list(self.load),
        }


def carry_over(results: list[AreaResult], started: datetime) -> list[AreaResult]:
    """``results`` and, in ``AREAS`` order, every other area's last measurement; saves them."""
    try:
        last = json.loads(LAST_FIGURES.read_text())
    except (OSError, ValueError):
        last = {}
    stamp = f"{started:%Y-%m-%d %H:%M} UTC"
    for r in results:
        if r.status == "ok":
            last[r.name] = {**r.to_dict(), "load": list(r.load), "measured_at": stamp}
    write_atomic(LAST_FIGURES, json.dumps(last, indent=1, default=str) + "\n")
    ran = {r.name: r for r in results}
    out = []
    for name in AREAS:
        if name in ran:
            out.append(ran[name])
        elif name not in last:  # measured before results.json existed: keep its text as it was
            out += _carried_text(name)
        else:
            d = last[name]
            out.append(
                AreaResult(
                    name,
                    d["status"],
                    d["data"],
                    d["note"],
                    d["elapsed_s"],
                    tuple(d["load"]),
                    d["measured_at"],
                )
            )
    return out


CARRIED = "Carried over as written by the run of "


def _carried_text(name: str) -> list[AreaResult]:
    """The area's section and target rows from the current results file, as they are."""
    try:
        text = DEFAULT_OUT.read_text(encoding="utf-8")
    except OSError:
        return []
    head = f"## {AREAS[name].title}\n"
    if head not in text:
        return []
    section = text.split(head, 1)[1].split("\n## ", 1)[0].strip("\n").splitlines()
    targets = [line for line in text.splitlines() if line.startswith(f"| {name} | ")]
    lines = text.splitlines()
    date = next((ln.split("|")[2].strip() for ln in lines if ln.startswith("| date |")), "?")
    # A section carried over before starts with that note (older files have several, one per
    # partial run): drop them, so the note is written once and names the measuring run.
    while section and (not section[0].strip() or section[0].startswith(CARRIED)):
        line = section.pop(0)
        if line.startswith(CARRIED):
            date = line.removeprefix(CARRIED).rstrip(":").strip()
    data = {"section": section, "targets": targets}
    return [AreaResult(name, "carried", data, "carried over", measured_at=date)]


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


REPEAT_KEYS = ("repeat", "pipeline_repeat")


def measure_in_this_process(name: str, quick: bool, repeat: int | None = None) -> dict[str, Any]:
    """Import the area's module and call its ``run``; the child side of :func:`run_area`."""
    area = AREAS[name]
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    if importlib.util.find_spec(area.module) is None:
        return {"status": "skipped", "note": f"benchmarks/{area.module}.py is not present"}
    try:
        module = importlib.import_module(area.module)
    except Exception as exc:
        if not area.optional:
            raise
        return {"status": "skipped", "note": f"{area.module} cannot be imported: {exc!r}"}
    kwargs = dict(area.quick if quick else area.full)
    if repeat:
        kwargs.update({k: repeat for k in REPEAT_KEYS if k in kwargs})
    data = module.run(**kwargs)
    return {"status": "ok", "data": data}


def _child(name: str, out: Path, quick: bool, repeat: int | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        result = measure_in_this_process(name, quick, repeat)
    except Exception as exc:
        lines = traceback.format_exc().strip().splitlines()
        result = {"status": "error", "note": f"{type(exc).__name__}: {exc}", "trace": lines[-12:]}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=str))
    os.replace(tmp, out)
    return 0


def run_area(name: str, quick: bool, timeout: float, repeat: int | None = None) -> AreaResult:
    """Run one area in a fresh child process, forwarding its stderr; never raises."""
    load_before = _load()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-area-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--child-out"]
        cmd += [str(out)] + (["--quick"] if quick else [])
        cmd += ["--repeat", str(repeat)] if repeat else []
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        tail: collections.deque[str] = collections.deque(maxlen=12)
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stderr.write(line)
            tail.append(line.rstrip())
        code = proc.wait()
        timer.cancel()
        elapsed = time.perf_counter() - start
        load = (load_before, _load())
        if out.exists():
            raw = json.loads(out.read_text())
            note = raw.get("note", "")
            if raw.get("trace"):
                note += "\n" + "\n".join(raw["trace"])
            return AreaResult(name, raw["status"], raw.get("data", {}), note, elapsed, load)
    why = f"timed out after {timeout:.0f} s" if elapsed >= timeout else f"exited {code}"
    note = f"the child process {why}:\n" + "\n".join(tail)
    return AreaResult(name, "error", note=note, elapsed_s=elapsed, load=load)


# --------------------------------------------------------------------------- the report


def cores() -> int:
    """What ``nproc`` prints: the CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_facts() -> dict[str, str]:
    """Facts about the machine and software, for the header of the results."""
    from importlib.metadata import PackageNotFoundError, version

    facts = {
        "cores": str(cores()),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
        kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        facts["memory"] = f"{kb / 1024**2:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    libs = []
    for lib in LIBRARIES:
        try:
            libs.append(f"{lib} {version(lib)}")
        except PackageNotFoundError:
            continue
    facts["libraries"] = ", ".join(libs)
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        )
        if head.returncode == 0:
            facts["commit"] = head.stdout.strip()
    except OSError:
        pass
    return facts


def _table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| figure | value | baseline (same run) | ratio | target | met? |",
        "|---|---:|---|---:|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.figure} | {r.value} | {r.baseline} | {r.ratio} | {r.target} | {r.verdict} |"
        )
    return lines


def _area_rows(result: AreaResult) -> list[Row]:
    if result.status != "ok":
        return []
    try:
        return AREAS[result.name].rows(result.data)
    except Exception:  # figures of an unexpected shape: _area_section shows them raw
        return []


def _area_section(result: AreaResult, every: Mapping[str, Any]) -> list[str]:
    """The table and notes of one measured area; its raw figures if they cannot be presented."""
    area, data = AREAS[result.name], result.data
    try:
        out = _table(area.rows(data))
        for fact in area.facts(data):
            out += ["", fact]
        extra = area.extra(data)
        if extra:
            out += ["", *extra]
        where = area.where(data, every)
        if where:
            out += ["", "**Where the time goes.**", ""]
            out += [f"- {note}" for note in where]
        for note in area.context(data):
            out += ["", note]
    except Exception as exc:  # never lose a measurement to a presentation bug
        raw = json.dumps(data, indent=2, default=str)
        return [f"Could not present the figures ({exc!r}); as measured:", "", "```json", raw, "```"]
    return out


def render_markdown(
    results: Sequence[AreaResult],
    facts: Mapping[str, str],
    *,
    started: datetime,
    elapsed_s: float,
    quick: bool,
    command: str,
) -> str:
    """The whole of RESULTS.md, from the measured results."""
    every = {r.name: r.data for r in results if r.status == "ok"}
    loads = [x for r in results if not r.measured_at for x in r.load]  # this run's areas only
    out = [
        "# Benchmark results",
        "",
        f"Written by `.venv/bin/python {command}` (`make bench` runs it without options); "
        f"regenerate it the same way, do not edit it by hand. Every ratio's baseline was "
        f"measured in the same run; the rule of the project is that speed is measured, not "
        f"asserted.",
        "",
    ]
    if quick:
        out += [
            "> **Quick mode**: tiny sizes, one repetition. A smoke test of the harness; these "
            "figures are not results.",
            "",
        ]
    out += ["| | |", "|---|---|"]
    out.append(f"| date | {started:%Y-%m-%d %H:%M} UTC |")
    out.append(f"| cores (`nproc`) | {facts.get('cores', '?')} |")
    for key in ("cpu", "memory", "python", "platform", "libraries", "commit"):
        if facts.get(key):
            out.append(f"| {key} | {facts[key]} |")
    if loads:
        out.append(
            f"| load average (1 min) | {min(loads):.2f}-{max(loads):.2f} over the run, sampled "
            f"before and after each area |"
        )
    out.append(f"| total time | {elapsed_s / 60:.1f} min |")
    out += [
        "",
        f"**Noise.** This machine has {facts.get('cores', '?')} cores and is shared: other "
        f"engineers run test suites (with real Jupyter kernels) on it at the same time, as the "
        f"load averages above show. Ratios hold up better than absolute figures because "
        f"numerator and denominator are measured minutes apart in the same run (the pipeline "
        f"variants interleaved), but single figures, the pipeline runs above all, can move by "
        f"tens of percent from one run to the next; the min-max ranges show how much.",
        "",
        "## Targets",
        "",
        "| area | figure | value | target | met? |",
        "|---|---|---:|---|---|",
    ]
    for result in results:
        if result.status == "carried":
            out += result.data["targets"]
            continue
        if result.status != "ok":
            out.append(
                f"| {result.name} | not measured: {result.status} | {DASH} | {DASH} | {DASH} |"
            )
            continue
        for row in _area_rows(result):
            if row.met is not None:
                out.append(
                    f"| {result.name} | {row.figure} | {row.value} | {row.target} | {row.verdict} |"
                )
    for result in results:
        area = AREAS[result.name]
        out += ["", f"## {area.title}", ""]
        if result.status == "carried":
            out += [f"{CARRIED}{result.measured_at}:", ""]
            out += result.data["section"]
            continue
        carried = (
            f"Carried over from the run of {result.measured_at}: " if result.measured_at else ""
        )
        out.append(
            f"{carried}`benchmarks/{area.module}.py`, measured in {result.elapsed_s:.0f} s, load "
            f"average {result.load[0]:.2f} before and {result.load[1]:.2f} after."
        )
        out.append("")
        if result.status != "ok":
            label = "Skipped" if result.status == "skipped" else "**Failed to run**"
            first, *rest = result.note.splitlines() or [""]
            out.append(f"{label}: {first}")
            if rest:
                out += ["", "```", *rest, "```"]
            continue
        out += _area_section(result, every)
    out.append("")
    return "\n".join(out)


def render_console(results: Sequence[AreaResult]) -> str:
    """A plain-text table of every figure, for the terminal."""
    lines = []
    for result in results:
        lines.append(f"== {result.name}: {result.status} ({result.elapsed_s:.0f} s)")
        if result.status != "ok":
            lines.append(f"   {result.note.splitlines()[0] if result.note else ''}")
        for r in _area_rows(result):
            ratio = "" if r.ratio == DASH else f"  [{r.ratio}]"
            target = "" if r.target == DASH else f"  target {r.target}: {r.plain_verdict}"
            lines.append(f"   {r.figure[:70]:<70} {r.value:>24}{ratio}{target}")
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument(
        "--repeat", type=int, default=None, metavar="N", help="repetitions per measurement"
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="AREA",
        help=f"run only these areas (repeatable or comma-separated): {', '.join(AREAS)}",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results file to write")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per area")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(list(argv))
    names = [n.strip() for item in args.only for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in AREAS]
    if unknown or (args.child and args.child not in AREAS):
        parser.error(f"unknown area {(unknown or [args.child])[0]!r}; known: {', '.join(AREAS)}")
    args.areas = [n for n in AREAS if n in names] if names else list(AREAS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected areas one by one, print a table and write the results file."""
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.child:
        return _child(args.child, args.child_out, args.quick, args.repeat)
    timeout = args.timeout or (600.0 if args.quick else 3600.0)
    # An installed toolkit has its bytecode (pip and `uv sync --compile-bytecode` write it). A
    # checkout run with PYTHONDONTWRITEBYTECODE set has none, and every process timed here
    # would compile the package from source (~0.2 s of CPU): write it, as an install would.
    compileall.compile_dir(REPO / "toolkit", quiet=1)
    started, clock = datetime.now(UTC), time.perf_counter()
    results = []
    for i, name in enumerate(args.areas, 1):
        _progress(f"{i}/{len(args.areas)} {name}{' (quick)' if args.quick else ''}")
        result = run_area(name, args.quick, timeout, args.repeat)
        _progress(f"{name}: {result.status} in {result.elapsed_s:.0f} s")
        results.append(result)
    elapsed = time.perf_counter() - clock
    if args.out == DEFAULT_OUT and not args.quick:
        results = carry_over(results, started)
        curves_report.write_plots({r.name: r.data for r in results if r.status == "ok"}, HERE)
    command = "benchmarks/run.py " + " ".join(
        (["--quick"] if args.quick else [])
        + ([f"--repeat {args.repeat}"] if args.repeat else [])
        + [f"--only {n}" for n in args.areas if args.only]
    )
    text = render_markdown(
        results,
        machine_facts(),
        started=started,
        elapsed_s=elapsed,
        quick=args.quick,
        command=command.strip(),
    )
    write_atomic(args.out, text)
    print(render_console(results))
    print(f"\nwrote {args.out} in {elapsed / 60:.1f} min")
    return 1 if any(r.status == "error" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
