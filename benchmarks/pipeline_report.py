"""How ``run.py`` presents the pipeline area (``bench_pipeline`` + ``bench_incremental``).

Rows of the table, the segment tables, the facts, and the "where the time goes" notes, all
composed from the measured figures (a dict of medians in seconds), never from prose written in
advance.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from _common import Row, fmt_ms, fmt_s, fmt_x, pct, spread

SEGMENT_LABELS = {
    "startup": "start-up: interpreter, imports, spec, plan, suites loaded",
    "run_setup": "run set-up (tracking: store, parent run, spec artifact)",
    "steps": "the steps themselves (kernel, notebook, contracts)",
    "between_steps": "between steps (each step's bookkeeping)",
    "last_step_bookkeeping": "after the last step (its bookkeeping)",
    "release": "release: gates (+ registration when tracked)",
    "finish_exit": "finish: run report, summary to MLflow, idle kernels shut down, exit",
}


def _m(d: Mapping[str, Any], key: str) -> float:
    return d[key]["median"]


def rows(d: Mapping[str, Any]) -> list[Row]:
    overhead = d["tracking_overhead_ms_per_step"]
    target = d["target_step_overhead_ms"]
    bare, tracked = _m(d, "bare_papermill_s"), _m(d, "tracked_s")
    no_change, edit = _m(d, "no_change_s"), _m(d, "edit_last_s")
    w1, w2 = _m(d, "branches_1_s"), _m(d, "branches_2_s")
    n_branch = d["branches_steps"]
    return [
        Row(
            f"bare papermill, the {d['steps']} notebooks in one process",
            spread(d["bare_papermill_s"]),
        ),
        Row(
            "cold `toolkit run --force --no-tracking` (plan, contracts, gates)",
            spread(d["untracked_s"]),
            "bare papermill",
            fmt_x(d["untracked_vs_bare_ratio"]),
        ),
        Row(
            "cold `toolkit run --force` (+ MLflow tracking, registration)",
            spread(d["tracked_s"]),
            f"bare papermill: {fmt_s(bare)}",
            fmt_x(d["tracked_vs_bare_ratio"]),
            f"≤ {d['target_cold_ratio']:g}x",
            d["tracked_vs_bare_ratio"] <= d["target_cold_ratio"],
        ),
        Row(
            "the same with `TOOLKIT_NO_PREWARM=1` (no pre-warmed kernels)",
            spread(d["no_prewarm_s"]),
            f"pre-warm on: {fmt_s(tracked)}",
            fmt_x(d["no_prewarm_vs_tracked_ratio"]),
        ),
        *(
            [
                Row(
                    "the same with `TOOLKIT_NO_DAEMON=1` (no engine helper kept warm: GX "
                    "imported in the run)",
                    spread(d["no_daemon_s"]),
                    f"daemon on: {fmt_s(tracked)}",
                    fmt_x(d["no_daemon_vs_tracked_ratio"]),
                )
            ]
            if "no_daemon_s" in d
            else []
        ),
        Row(
            "re-run with nothing changed (tracked, every step cached)",
            spread(d["no_change_s"]),
            f"cold tracked: {fmt_s(tracked)}",
            fmt_x(no_change / tracked),
            f"≤ {d['target_no_change_s']:g} s",
            no_change <= d["target_no_change_s"],
        ),
        Row(
            f"re-run after editing the last notebook (tracked; `{d['edit_last_step']}` runs)",
            spread(d["edit_last_s"]),
            f"`{d['edit_last_step']}` alone, bare papermill, fresh process: "
            f"{fmt_s(_m(d, 'bare_last_s'))}",
            fmt_x(edit / _m(d, "bare_last_s")),
            f"≤ bare + {d['target_edit_extra_s']:g} s = {fmt_s(d['edit_last_budget_s'])}",
            edit <= d["edit_last_budget_s"],
        ),
        Row(
            f"2 branches x 3 steps, sequential: `--workers 1`, `TOOLKIT_NO_PREWARM=1` "
            f"(`--force --no-tracking`, {n_branch} steps)",
            spread(d["branches_1_s"]),
        ),
        Row(
            "the same, `--workers 2` (pre-warm on): speed-up = sequential / 2 workers",
            spread(d["branches_2_s"]),
            f"1 worker: {fmt_s(w1)}",
            fmt_x(w1 / w2),
            f"≥ {d['target_branches_ratio']:g}x",
            d["branches_ratio"] >= d["target_branches_ratio"],
        ),
        Row(
            f"tracking overhead per step = (tracked - untracked) / {d['steps']}",
            fmt_ms(overhead),
            target=f"≤ {target:g} ms",
            met=overhead <= target,
        ),
        Row(
            "the same from paired runs: median of (tracked - untracked) per repetition / "
            f"{d['steps']}",
            fmt_ms(d["paired_overhead_ms_per_step"]),
        ),
        Row(
            "`toolkit --help`, fresh process",
            fmt_s(d["help_s"]),
            f"`python -c pass`: {fmt_s(d['python_startup_s'])}",
            fmt_x(d["help_ratio"]),
            f"≤ {d['target_help_s']:g} s",
            d["help_s"] <= d["target_help_s"],
        ),
        Row(
            "first tracked run in a fresh project (creates the MLflow store; not in the medians)",
            fmt_s(d["first_tracked_run_s"]),
        ),
    ]


def segment_table(d: Mapping[str, Any]) -> list[str]:
    seg, paired = d["segments_s"], d["segments_paired_delta_s"]
    columns = {
        "untracked": seg["untracked"],
        "tracked": seg["tracked"],
        "tracked, no pre-warm": d["no_prewarm_segments_s"],
        **(
            {"tracked, no daemon": d["no_daemon_segments_s"]} if "no_daemon_segments_s" in d else {}
        ),
        "no change": d["no_change_segments_s"],
        "last notebook edited": d["edit_last_segments_s"],
    }
    lines = [
        "Segments of one run, medians (cold runs with `--force`; the last two are tracked "
        "re-runs using the step cache):",
        "",
        "| segment of one run | "
        + " | ".join(columns)
        + " | tracked - untracked: difference of medians | median of paired differences |",
        "|---|" + "---:|" * (len(columns) + 2),
    ]
    for key, label in SEGMENT_LABELS.items():
        a, b = seg["untracked"][key], seg["tracked"][key]
        cells = " | ".join(fmt_s(c[key]) for c in columns.values())
        lines.append(f"| {label} | {cells} | {b - a:+.2f} s | {paired[key]:+.2f} s |")
    a, b = sum(seg["untracked"].values()), sum(seg["tracked"].values())
    cells = " | ".join(fmt_s(sum(c.values())) for c in columns.values())
    lines.append(f"| **sum** | {cells} | {b - a:+.2f} s | {sum(paired.values()):+.2f} s |")
    steps = d["step_durations_s"]
    lines += [
        "",
        "| step (median) | bare papermill | `--no-tracking` | tracked | tracked, no pre-warm |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in steps["tracked"]:
        lines.append(
            f"| {name} | {fmt_s(steps['bare'][name])} | {fmt_s(steps['untracked'][name])} "
            f"| {fmt_s(steps['tracked'][name])} | "
            f"{fmt_s(d['no_prewarm_step_durations_s'][name])} |"
        )
    return lines


def facts(d: Mapping[str, Any]) -> list[str]:
    versions = ", ".join(str(v) for v in d["registered_versions"])
    champions = ", ".join(d["champion_versions_seen"])
    imports = ", ".join(f"`{m}` {fmt_s(s)}" for m, s in d["fresh_import_s"].items())
    out = [
        f"Medians over {d['pipeline_repeat']} run(s) per variant, the variants interleaved (order "
        f"rotating), after one untimed tracked warm-up run; min-max in brackets. The runs use a "
        f"throwaway copy of the project, which is not a git repository: the lineage's git "
        f"look-ups find nothing there. Cold runs use `--force`, so every step executes although "
        f"the step cache holds it; the no-change re-run follows a cold tracked run, the "
        f"edited-notebook re-run follows the no-change one.",
        f"Release gates {'passed on every tracked run' if d['gates_passed'] else 'did NOT pass'}"
        f" (champion seen: {champions}: nobody promotes during the benchmark), so every cold "
        f"tracked run registered a new `candidate` version (versions {versions}); that "
        f"registration is part of the tracked timings.",
        f"Steps executed by the no-change re-runs: "
        f"{', '.join(d['no_change_executed']) or 'none'}; MLflow opened: "
        f"{_yes_no(d['no_change_opened_mlflow'])}. Steps executed after the edit: "
        f"{', '.join(d['edit_last_executed']) or 'none'}; MLflow opened: "
        f"{_yes_no(d['edit_last_opened_mlflow'])}.",
        f"Fresh-process import times (minus interpreter start-up): {imports}.",
    ]
    if d.get("failed_runs"):
        out.append(
            f"Runs that failed and were retried once (the retry's time is the one counted): "
            f"{'; '.join(d['failed_runs'])}."
        )
    return out


def _yes_no(seen: list[bool]) -> str:
    return "/".join("yes" if s else "no" for s in seen) or "?"


def _cold_where(d: Mapping[str, Any]) -> list[str]:
    bare, tracked = _m(d, "bare_papermill_s"), _m(d, "tracked_s")
    seg = d["segments_s"]["tracked"]
    steps = d["step_durations_s"]
    bare_steps = sum(steps["bare"].values())
    bookkeeping = seg["between_steps"] + seg["last_step_bookkeeping"]
    slowest = max(steps["tracked"], key=lambda n: steps["tracked"][n] - steps["bare"][n])
    prewarm = d["no_prewarm_paired_delta_s"]
    effect = "saves" if prewarm > 0 else "costs"
    return [
        f"Cold tracked run: {fmt_s(tracked)} against {fmt_s(bare)} of bare papermill "
        f"({tracked - bare:+.2f} s). Its segments: start-up {fmt_s(seg['startup'])} (bare "
        f"papermill's import: {fmt_s(d['bare_import_papermill_s'])}), tracking set-up "
        f"{fmt_s(seg['run_setup'])}, the steps {fmt_s(seg['steps'])} (bare notebook execution: "
        f"{fmt_s(bare_steps)}; the step furthest behind its bare time is `{slowest}`, "
        f"{steps['tracked'][slowest] - steps['bare'][slowest]:+.2f} s), bookkeeping after the "
        f"steps {fmt_s(bookkeeping)}, release (gates, registration) {fmt_s(seg['release'])}, "
        f"finish (run report, summary to MLflow, idle kernels shut down) and exit "
        f"{fmt_s(seg['finish_exit'])}. Untracked, the same run takes "
        f"{fmt_s(_m(d, 'untracked_s'))} ({fmt_x(d['untracked_vs_bare_ratio'])} bare papermill): "
        f"the difference is tracking (per-step overhead below).",
        f"Pre-warmed kernels: with `TOOLKIT_NO_PREWARM=1` the cold tracked run takes "
        f"{fmt_s(_m(d, 'no_prewarm_s'))} ({fmt_x(d['no_prewarm_vs_tracked_ratio'])} the pre-warmed "
        f"run; median paired difference {prewarm:+.2f} s): pre-warming {effect} "
        f"{fmt_s(abs(prewarm))} per run on this machine. On 2 cores the kernels warming for "
        f"the next steps compete for the CPU with the step that is running.",
        *(
            [
                f"Engine helper kept warm (the default outside CI and Airflow): with "
                f"`TOOLKIT_NO_DAEMON=1` the cold tracked run takes {fmt_s(_m(d, 'no_daemon_s'))} "
                f"({fmt_x(d['no_daemon_vs_tracked_ratio'])} the run using the daemon; median "
                f"paired difference {d['no_daemon_paired_delta_s']:+.2f} s): without it the run "
                f"imports GX itself, and its first contract check waits for that import."
            ]
            if "no_daemon_s" in d
            else []
        ),
    ]


def _no_change_where(d: Mapping[str, Any]) -> list[str]:
    seg = d["no_change_segments_s"]
    prof = d["no_change_import_profile"]
    top = ", ".join(f"`{m}` {fmt_s(s)}" for m, s in prof.get("top_imports_s", {}).items())
    run_part = seg["run_setup"] + seg["steps"] + seg["between_steps"] + seg["last_step_bookkeeping"]
    total = _m(d, "no_change_s")
    return [
        f"No-change re-run: {fmt_s(total)} against a target of "
        f"{fmt_s(d['target_no_change_s'])}. Start-up (interpreter, imports, spec, plan, suites, "
        f"cache decisions) takes {fmt_s(seg['startup'])} ({pct(seg['startup'], total)}; a bare "
        f"interpreter starts in {fmt_s(d['python_startup_s'])}), reusing the steps "
        f"{fmt_s(run_part)}, the summary and run report {fmt_s(seg['release'])}, exit "
        f"{fmt_s(seg['finish_exit'])}. MLflow opened: {_yes_no(d['no_change_opened_mlflow'])}.",
        f"Imports of one no-change run under `python -X importtime` (cumulative, top level, "
        f"{fmt_s(prof.get('all_imports_s', 0.0))} in all; the profiler itself slows them): "
        f"{top or 'not measured'}.",
    ]


def _edit_where(d: Mapping[str, Any]) -> list[str]:
    seg = d["edit_last_segments_s"]
    step = d["edit_last_step"]
    total, bare = _m(d, "edit_last_s"), _m(d, "bare_last_s")
    reused = d["steps"] - len(d["edit_last_executed"])
    return [
        f"Edited last notebook: {fmt_s(total)} against {fmt_s(bare)} for `{step}` alone under "
        f"papermill in a fresh process (of which papermill's import "
        f"{fmt_s(d['bare_last_import_papermill_s'])} and the notebook "
        f"{fmt_s(d['bare_last_execute_s'])}): {total - bare:+.2f} s where the budget is "
        f"+{d['target_edit_extra_s']:g} s. The re-run's segments: start-up "
        f"{fmt_s(seg['startup'])}; tracking set-up {fmt_s(seg['run_setup'])} (the pipeline's "
        f"run opened, before the first step is reused: the engine daemon does the run's MLflow "
        f"calls and its registration, so the run imports neither MLflow nor the model's "
        f"libraries); between the {reused} "
        f"reused steps and `{step}` {fmt_s(seg['between_steps'])}, "
        f"{fmt_s(seg['between_steps'] / max(reused, 1))} per reused step (in a tracked run each "
        f"reused step still gets its own MLflow run: fingerprints, contract results, its "
        f"notebook scrubbed and uploaded with its HTML, recorded on the tracking pool while "
        f"`{step}` runs); the step "
        f"itself {fmt_s(d['edit_last_step_s'])} (bare: {fmt_s(d['bare_last_execute_s'])}); its "
        f"bookkeeping {fmt_s(seg['last_step_bookkeeping'])}; release (gates, and a new "
        f"version registered by the daemon while its render process renders the step's "
        f"notebook) "
        f"{fmt_s(seg['release'])}; finish (run report, summary to MLflow, kernel "
        f"shut-downs) and exit {fmt_s(seg['finish_exit'])}.",
    ]


def _branches_where(d: Mapping[str, Any]) -> list[str]:
    w1, w2 = _m(d, "branches_1_s"), _m(d, "branches_2_s")
    sums, chains = d["branches_steps_sum_s"], d["branches_chain_s"]
    inflation = sums["2"] / sums["1"] if sums["1"] else float("nan")
    best = w1 / max(w1 - min(chains.values()), 1e-9)
    return [
        f"Two branches: {fmt_s(w1)} on 1 worker, {fmt_s(w2)} on 2 ({fmt_x(w1 / w2)}; the "
        f"median of per-repetition ratios {fmt_x(d['branches_paired_ratio'])}). The steps "
        f"themselves add up to {fmt_s(sums['1'])} on 1 worker and {fmt_s(sums['2'])} on 2: "
        f"each step takes {fmt_x(inflation)} as long when two run at once"
        + (
            ", so the cores, not the scheduler, are the limit: 2 cores shared by two kernels, "
            "the kernels warming for the next steps (one more than the workers, even with 1 "
            "worker) and the other "
            if inflation > 1.15
            else "; the steps keep their speed, so the time is lost outside them (start-up, "
            "the scheduling between steps) and to the "
        )
        + "processes on the machine. Were the steps as fast in parallel as alone, the two "
        f"chains ({fmt_s(chains['a'])} and {fmt_s(chains['b'])} of steps on 1 worker) would "
        f"overlap fully and the speed-up would reach about {fmt_x(best)}.",
    ]


def where(d: Mapping[str, Any], every: Mapping[str, Any]) -> list[str]:
    notes = []
    if d["tracked_vs_bare_ratio"] > d["target_cold_ratio"]:
        notes += _cold_where(d)
    if _m(d, "no_change_s") > d["target_no_change_s"]:
        notes += _no_change_where(d)
    if _m(d, "edit_last_s") > d["edit_last_budget_s"]:
        notes += _edit_where(d)
    if d["branches_ratio"] < d["target_branches_ratio"]:
        notes += _branches_where(d)
    if d["tracking_overhead_ms_per_step"] > d["target_step_overhead_ms"]:
        notes += _overhead_where(d, every)
    if d["help_s"] > d["target_help_s"]:
        notes.append(
            f"`toolkit --help` takes {fmt_s(d['help_s'])}, "
            f"{fmt_s(d['help_s'] - d['python_startup_s'])} more than a bare interpreter: "
            f"imports at CLI start-up (`python -X importtime -m toolkit --help` names them)."
        )
    return notes


def _overhead_where(d: Mapping[str, Any], every: Mapping[str, Any]) -> list[str]:
    delta = d["segments_paired_delta_s"]
    n = d["steps"]
    overhead = d["tracking_overhead_ms_per_step"]
    fixed = delta["run_setup"] + delta["release"] + delta["finish_exit"]
    per_step = delta["steps"] + delta["between_steps"] + delta["last_step_bookkeeping"]
    anatomy = d["bookkeeping_anatomy_s"]
    mlflow_import = d["fresh_import_s"].get("mlflow")
    tracker = (every.get("tracking") or {}).get("median_ms_per_step")
    ranked = sorted(delta.items(), key=lambda kv: -kv[1])
    biggest = "; ".join(f"{SEGMENT_LABELS[k]} {v:+.2f} s" for k, v in ranked[:4])
    notes = [
        f"The per-step tracking target is missed: tracked runs take "
        f"{(_m(d, 'tracked_s') - _m(d, 'untracked_s')):.2f} s more than "
        f"`--no-tracking` ({fmt_ms(overhead)} per step over {n} steps; from paired runs "
        f"{fmt_ms(d['paired_overhead_ms_per_step'])} per step). By segment (medians of the "
        f"paired differences, as all figures below), the largest: {biggest}.",
        f"Paid once per run, whatever the number of steps: {fixed:+.2f} s (run set-up "
        f"{delta['run_setup']:+.2f} s, which imports MLflow: `import mlflow` alone takes "
        f"{fmt_s(mlflow_import or 0)} in a fresh process; release {delta['release']:+.2f} s, "
        f"i.e. logging and registering the model version; finish and exit "
        f"{delta['finish_exit']:+.2f} s). Spread over "
        f"{n} steps that is {fmt_s(fixed / n)} per step; a longer pipeline dilutes it.",
    ]
    tracker_text = (
        f"MLflow's own logging is {fmt_ms(tracker)} per step at tracker level (tracking area above)"
        if tracker is not None
        else "MLflow's own logging was not measured in this run (tracking area not run)"
    )
    renders = anatomy["first_render_html_s"] + (n - 1) * anatomy["render_html_s"]
    notes.append(
        f"Paid per step: {per_step:+.2f} s in all, {fmt_s(per_step / n)} per step (inside the "
        f"steps {delta['steps']:+.2f} s, the bookkeeping after each step "
        f"{delta['between_steps'] + delta['last_step_bookkeeping']:+.2f} s). Measured apart, "
        f"in a fresh process on the executed notebooks, the bookkeeping's HTML rendering "
        f"alone comes to {fmt_s(renders)} for {n} notebooks: the first render, which loads "
        f"what nbconvert adds to the modules already imported, "
        f"{fmt_s(anatomy['first_render_html_s'])}, each further one "
        f"{fmt_s(anatomy['render_html_s'])}; scrubbing a notebook takes "
        f"{fmt_s(anatomy['scrub_notebook_s'])} and fingerprinting a data file "
        f"{fmt_s(anatomy['fingerprint_s'])}; {tracker_text}."
    )
    if abs(delta["startup"]) >= 0.1:
        notes.append(
            f"Start-up differs by {delta['startup']:+.2f} s between the variants although "
            f"both do the same work before the run starts: that much is machine noise."
        )
    budget = d["target_step_overhead_ms"] * n / 1000
    notes.append(
        f"For scale: the target allows {fmt_s(budget)} of tracking per run of {n} steps; "
        f"the once-per-run costs alone are {fmt_s(fixed)}."
    )
    return notes


def context(d: Mapping[str, Any]) -> list[str]:
    """Why ``toolkit run --no-tracking`` costs more than bare papermill (no target: context)."""
    seg = d["segments_s"]["untracked"]
    steps = d["step_durations_s"]
    contracts = d.get("contracts_per_step", {})
    bare_steps = sum(steps["bare"].values())
    gx = d["fresh_import_s"].get("great_expectations", 0.0)
    extra = _m(d, "untracked_s") - _m(d, "bare_papermill_s")
    per_step = ", ".join(
        f"{name} (contract checks: {contracts.get(name, '?')}) "
        f"{steps['untracked'][name] - steps['bare'][name]:+.2f} s"
        for name in steps["untracked"]
    )
    return [
        f"Not a target, for context: `--no-tracking` takes {extra:+.2f} s over bare papermill. "
        f"Its start-up (up to the run's start: spec, plan, contract suites) is "
        f"{fmt_s(seg['startup'])} against {fmt_s(d['bare_import_papermill_s'])} for importing "
        f"papermill (Great Expectations, which the contract checks use, takes {fmt_s(gx)} to "
        f"import in a fresh process). The steps "
        f"take {fmt_s(seg['steps'])} against {fmt_s(bare_steps)} of bare notebook execution; "
        f"per step: {per_step}. Inside a step the runner adds the contract checks of its inputs "
        f"and outputs to the notebook's execution."
    ]
