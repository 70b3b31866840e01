"""How the cost-curve areas (scale, store, fingerprint, check) present their figures.

Tables and "where the time goes" notes for ``run.py``, composed from the measured figures only,
and one small PNG plot per curve (:func:`write_plots`), written next to the results file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from _common import Row, fmt_ms, fmt_s, fmt_x, pct, spread

# --------------------------------------------------------------------------- scale


def _cpu(stats_cpu: Mapping[str, float] | None) -> str:
    return f"; CPU {fmt_s(stats_cpu['median'])}" if stats_cpu else ""


def scale_rows(d: Mapping[str, Any]) -> list[Row]:
    sizes, base, target = d["sizes"], d["baseline"], d["target_s"]
    largest = str(sizes[-1])
    rows = []
    for n in map(str, sizes):
        s = d["per_size"][n]
        last = n == largest
        for what, key in (("`toolkit plan`", "plan"), ("no-change re-run (all cached)", "rerun")):
            rows.append(
                Row(
                    f"{what}, {n} steps",
                    spread(s[key]) + _cpu(s.get(f"{key}_cpu")),
                    f"`toolkit --version`: {fmt_s(base['median'])}{_cpu(d.get('baseline_cpu'))}",
                    fmt_x(s[key]["median"] / base["median"]),
                    f"≤ {target:g} s" if last else "—",
                    s[key]["median"] <= target if last else None,
                )
            )
    rows += _per_step_rows(d)
    cold = d["cold"]
    rows.append(
        Row(
            f"cold run of {cold['steps']} trivial steps, 2 workers (fills the cache)",
            fmt_s(cold["wall_s"]),
            f"steps' own time: {fmt_s(cold['steps_s'])}",
            f"{fmt_s(cold['wall_per_step_s'])} per step",
        )
    )
    return rows


def _per_step_rows(d: Mapping[str, Any]) -> list[Row]:
    """The re-run's cost of one more step between consecutive sizes, and its fixed cost."""
    if "marginal" not in d:  # measured before the slope was: the average per step
        return []
    marginal, flat = d["marginal"], d["target_flat"]
    first = marginal[0]
    rows = [
        Row(
            "orchestrator's fixed cost in the re-run (any size: run folder, plan record, summary)",
            fmt_ms(d["fixed_ms"]),
        )
    ]
    for m in marginal:
        is_first, is_last = m is first, m is marginal[-1]
        rows.append(
            Row(
                f"orchestrator time per added step in the re-run, {m['from']} -> {m['to']} steps",
                fmt_ms(m["ms_per_step"]),
                "—"
                if is_first
                else f"{first['from']} -> {first['to']}: {fmt_ms(first['ms_per_step'])}",
                "—" if is_first else fmt_x(m["ms_per_step"] / first["ms_per_step"]),
                f"within ±{flat:.0%} of {first['from']} -> {first['to']}" if is_last else "—",
                abs(d["flat_ratio"] - 1) <= flat if is_last else None,
            )
        )
    return rows


def scale_where(d: Mapping[str, Any], _all: Mapping[str, Any]) -> list[str]:
    notes = []
    largest = str(d["sizes"][-1])
    big, base = d["per_size"][largest], d["baseline"]["median"]
    for what, key in (("`toolkit plan`", "plan"), ("The no-change re-run", "rerun")):
        wall = big[key]["median"]
        if wall > d["target_s"]:
            inside = f"; {fmt_s(big['in_run_s'])} inside the run itself" if key == "rerun" else ""
            seg = big.get("rerun_segments_s") if key == "rerun" else None
            if seg:
                inside += (
                    f" (before the first step {fmt_s(seg['run_setup'])}, from the first step to "
                    f"the last {fmt_s(seg['steps'] + seg['between_steps'])}, after it "
                    f"{fmt_s(seg['last_step_bookkeeping'])}); start-up to the run's start "
                    f"{fmt_s(seg['startup'])}, from the run's end to exit (its records, HTML "
                    f"report and the interpreter's exit) {fmt_s(seg['release'] + seg['finish_exit'])}"
                )
            notes.append(
                f"{what} of {largest} steps took {fmt_s(wall)}: {fmt_s(base)} "
                f"({pct(base, wall)}) is the interpreter and CLI start-up that "
                f"`toolkit --version` pays too, the remaining {fmt_s(wall - base)} the command's "
                f"imports and work{inside}."
            )
    if "marginal" in d:
        first, last = d["marginal"][0], d["marginal"][-1]
        verdict = (
            "flat"
            if abs(d["flat_ratio"] - 1) <= d["target_flat"]
            else "growing with the pipeline's size"
            if d["flat_ratio"] > 1
            else "falling with the pipeline's size"
        )
        notes.append(
            f"One more step costs the re-run {fmt_ms(first['ms_per_step'])} between "
            f"{first['from']} and {first['to']} steps and {fmt_ms(last['ms_per_step'])} between "
            f"{last['from']} and {last['to']} ({fmt_x(d['flat_ratio'])}): {verdict}. The fixed "
            f"cost is {fmt_ms(d['fixed_ms'])}, whatever the size; the time inside the run divided "
            f"by the steps ({', '.join(_average(d, n) for n in d['sizes'])}) falls with size "
            "because of it, and is no measure of the per-step cost."
        )
    if "marginal_cpu" in d:
        slopes = ", ".join(
            f"{fmt_ms(m['ms_per_step'])} ({m['from']} -> {m['to']})" for m in d["marginal_cpu"]
        )
        notes.append(
            "The whole re-run command's CPU time per added step (the spec's loading and "
            f"planning, the cache, the summary and HTML report included): {slopes}."
        )
    return notes


def _average(d: Mapping[str, Any], n: int) -> str:
    return f"{d['per_size'][str(n)]['per_step_ms']:.2f} ms at {n}"


# --------------------------------------------------------------------------- store


def store_rows(d: Mapping[str, Any]) -> list[Row]:
    target = d["target_s"]
    rows = []
    for what, key in (
        ("`toolkit runs list`", "runs_list"),
        ("`toolkit releases MODEL`", "releases"),
    ):
        rows.append(
            Row(
                f"{what}, {d['runs']:,} runs and {d['versions']} versions in the store",
                spread(d[key]),
                f"same, empty store: {fmt_s(d['empty_' + key]['median'])}",
                fmt_x(d[key]["median"] / d["empty_" + key]["median"]),
                f"≤ {target:g} s",
                d[key]["median"] <= target,
            )
        )
    rows.append(Row('`python -c "import mlflow"`', spread(d["import_mlflow"])))
    return rows


def store_where(d: Mapping[str, Any], _all: Mapping[str, Any]) -> list[str]:
    notes = []
    mlflow = d["import_mlflow"]["median"]
    for what, key in (("`toolkit runs list`", "runs_list"), ("`toolkit releases`", "releases")):
        wall, empty = d[key]["median"], d["empty_" + key]["median"]
        if wall <= d["target_s"]:
            continue
        why = (
            f"the fixed cost, not the {d['runs']:,} runs, is what misses the target"
            if empty > d["target_s"]
            else "the store's size is what misses the target"
        )
        notes.append(
            f"{what} took {fmt_s(wall)}; against an empty store {fmt_s(empty)} "
            f"({pct(empty, wall)}), so the store's size adds {fmt_s(max(wall - empty, 0))}. "
            f"Importing MLflow alone takes {fmt_s(mlflow)} ({pct(mlflow, wall)} of the "
            f"command): {why}."
        )
    return notes


# --------------------------------------------------------------------------- fingerprint


def fingerprint_rows(d: Mapping[str, Any]) -> list[Row]:
    rows = []
    for size, s in d["per_size"].items():
        rows.append(
            Row(
                f"`sha256_file` (the cache's file hash), {int(size):,} MB",
                f"{s['hash_mb_s']:,.0f} MB/s",
                f"`cat FILE > /dev/null`: {s['cat_mb_s']:,.0f} MB/s",
                f"{s['ratio']:.0%}",
                f"≥ {d['target']:.0%}",
                s["ratio"] >= d["target"],
            )
        )
    return rows


def fingerprint_where(d: Mapping[str, Any], _all: Mapping[str, Any]) -> list[str]:
    missed = {k: s for k, s in d["per_size"].items() if s["ratio"] < d["target"]}
    if not missed:
        return []
    size, s = max(missed.items(), key=lambda kv: int(kv[0]))
    return [
        f"At {int(size):,} MB: SHA-256 over bytes already in memory runs at "
        f"{s['memory_hash_mb_s']:,.0f} MB/s on this machine, "
        f"{s['memory_hash_mb_s'] / s['cat_mb_s']:.0%} of what `cat` reads; reading and hashing "
        f"the file together reach {s['hash_mb_s']:,.0f} MB/s. The hash's own CPU cost, not the "
        f"reading, sets the limit: only a cheaper (or parallel, tree-shaped) digest can reach "
        f"{d['target']:.0%}, and that changes every cache key."
    ]


# --------------------------------------------------------------------------- check


def check_rows(d: Mapping[str, Any]) -> list[Row]:
    engines = ", ".join(d["engines_imported"]) or "none"
    return [
        Row(
            f"`toolkit check`, example project ({d['suites']} contract suites), fresh process",
            spread(d["check"]),
            f"`toolkit --version`: {fmt_s(d['version']['median'])}",
            fmt_x(d["check"]["median"] / d["version"]["median"]),
            f"≤ {d['target_s']:g} s",
            d["check"]["median"] <= d["target_s"],
        ),
        Row("engines it imported (GX, MLflow, papermill, pandas)", engines),
    ]


def check_where(d: Mapping[str, Any], _all: Mapping[str, Any]) -> list[str]:
    wall, base = d["check"]["median"], d["version"]["median"]
    if wall <= d["target_s"]:
        return []
    engines = ", ".join(d["engines_imported"]) or "none of GX, MLflow, papermill or pandas"
    return [
        f"`toolkit check` took {fmt_s(wall)}, of which {fmt_s(base)} ({pct(base, wall)}) is "
        f"the start-up `toolkit --version` pays too; it imported {engines}."
    ]


# --------------------------------------------------------------------------- plots


def _plot_scale(d: Mapping[str, Any], plt: Any, ax: Any) -> None:
    sizes = d["sizes"]
    for key, label in (("plan", "toolkit plan"), ("rerun", "no-change re-run")):
        ax.plot(sizes, [d["per_size"][str(n)][key]["median"] for n in sizes], "o-", label=label)
    ax.axhline(d["baseline"]["median"], color="grey", ls=":", label="toolkit --version")
    ax.axhline(d["target_s"], color="red", ls="--", label="target")
    ax.set(xlabel="trivial steps", ylabel="seconds", title="Plan and re-run time")
    ax.set_xscale("log")
    ax.legend(fontsize=7)


def _plot_fingerprint(d: Mapping[str, Any], plt: Any, ax: Any) -> None:
    sizes = [int(s) for s in d["per_size"]]
    for key, label in (
        ("hash_mb_s", "sha256_file"),
        ("cat_mb_s", "cat"),
        ("memory_hash_mb_s", "SHA-256 in memory"),
    ):
        ax.plot(sizes, [d["per_size"][str(n)][key] for n in sizes], "o-", label=label)
    ax.set(xlabel="file size (MB)", ylabel="MB/s", title="Fingerprint throughput")
    ax.set_xscale("log")
    ax.legend(fontsize=7)


def _plot_store(d: Mapping[str, Any], plt: Any, ax: Any) -> None:
    names = ["runs list", "releases"]
    big = [d["runs_list"]["median"], d["releases"]["median"]]
    empty = [d["empty_runs_list"]["median"], d["empty_releases"]["median"]]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], empty, 0.4, label="empty store")
    ax.bar([i + 0.2 for i in x], big, 0.4, label=f"{d['runs']:,} runs, {d['versions']} versions")
    ax.axhline(d["import_mlflow"]["median"], color="grey", ls=":", label="import mlflow")
    ax.axhline(d["target_s"], color="red", ls="--", label="target")
    ax.set_xticks(list(x), names)
    ax.set(ylabel="seconds", title="Store queries")
    ax.legend(fontsize=7)


def _plot_per_step(d: Mapping[str, Any], plt: Any, ax: Any) -> None:
    sizes = d["sizes"]
    values = [d["per_size"][str(n)]["per_step_ms"] for n in sizes]
    ax.plot(sizes, values, "o:", color="grey", label="in-run time / steps")
    if "marginal" in d:  # each slope drawn at the larger size of its pair
        slopes = [m["ms_per_step"] for m in d["marginal"]]
        ax.plot(sizes[1:], slopes, "o-", label="one more step (slope)")
        first = slopes[0]
    else:
        first = values[0]
    ax.fill_between(
        sizes,
        first * (1 - d["target_flat"]),
        first * (1 + d["target_flat"]),
        alpha=0.2,
        label="±30 %",
    )
    ax.set(xlabel="trivial steps", ylabel="ms per step", title="Orchestrator time per step")
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)


PLOTS = {
    "scale": (("scale_time.png", _plot_scale), ("scale_per_step.png", _plot_per_step)),
    "store": (("store.png", _plot_store),),
    "fingerprint": (("fingerprint.png", _plot_fingerprint),),
}


def write_plots(every: Mapping[str, Mapping[str, Any]], folder: Path) -> list[Path]:
    """One small PNG per curve of the areas measured; nothing when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    for area, plots in PLOTS.items():
        if area not in every:
            continue
        for name, draw in plots:
            fig, ax = plt.subplots(figsize=(4.5, 3), dpi=100)
            draw(every[area], plt, ax)
            fig.tight_layout()
            fig.savefig(folder / name)
            plt.close(fig)
            written.append(folder / name)
    return written


def plot_links(area: str) -> list[str]:
    return [f"![{name}]({name})" for name, _ in PLOTS.get(area, ())]
