"""The card's "Production so far": release moves, monitored batches, shadow evidence and live
feedback metrics of one version, read back from what those commands recorded (version tags,
the release history, the ``monitor-``, ``shadow-`` and ``feedback-<model>`` runs). Nothing is
recomputed: a figure no record holds is listed as not recorded."""

from __future__ import annotations

import json
from typing import Any

from toolkit.cards.model import Section, Table
from toolkit.core.errors import ToolkitError
from toolkit.release.vocabulary import TAG_SHADOW_EVIDENCE

NONE_RECORDED = "none recorded"
SHADOW_MOVES = ("shadow_started", "shadow_stopped")


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _runs(tracker: Any, experiment: str) -> list[Any]:
    try:
        return list(tracker.list_runs(experiment, max_results=200))  # newest first
    except ToolkitError:
        return []


def _shadow(s: Section, info: Any, history: list[Any], tracker: Any) -> None:
    every = [e for e in history if e.action in SHADOW_MOVES]
    moves = [e for e in every if e.to_version == info.version]
    raw = info.tags.get(TAG_SHADOW_EVIDENCE)
    if not moves and not raw:
        s.missing.append(f"shadow evidence: {NONE_RECORDED} (this version never shadowed)")
        return
    if moves:
        last = moves[-1]
        state = f"shadowing since {last.at}"
        # `shadow start` of another version replaces this one without a stop entry
        after = every[every.index(last) + 1 :]
        if last.action != "shadow_started":
            state = f"stopped at {last.at}"
        elif after:
            state = f"replaced by v{after[0].to_version} at {after[0].at}"
        s.fact("Shadow", f"{state} (champion then: v{last.from_version or '?'})")
    try:
        evidence = json.loads(raw) if raw else None
    except ValueError:
        evidence = None
    if isinstance(evidence, dict):
        rows = [(k, fmt(v)) for k, v in sorted(evidence.items()) if k != "at"]
        s.tables.append(Table(f"Shadow evidence (as of {evidence.get('at', '?')})",
                              ("metric", "value"), rows))  # fmt: skip
    else:
        s.missing.append("shadow evidence: no batch was shadowed yet (no evidence tag)")
    report = next((r for r in _runs(tracker, f"shadow-{info.name}")
                   if r.params.get("shadow_version") == str(info.version)), None)  # fmt: skip
    if report is None:
        s.missing.append("a shadow report (toolkit shadow report has not logged one)")
        return
    m, since = report.metrics, report.params.get("since")
    s.fact("Latest shadow report",
           f"{report.start_time or '?'}{f' (batches since {since})' if since else ''}: "
           f"{fmt(m.get('shadow.batches'))} batches, agreement {fmt(m.get('shadow.agreement'))}, "
           f"PSI {fmt(m.get('shadow.psi'))}")  # fmt: skip
    data = _artifact(tracker, report.run_id, "shadow_report.json")
    sides = [(name, data.get(name)) for name in ("champion", "shadow")] if data else []
    side_rows = [(f"{name} v{side.get('version', '?')}", fmt(side.get("rows")),
             fmt(side.get("fallback_rate")), fmt(side.get("rejected_rate")))
            for name, side in sides if isinstance(side, dict)]  # fmt: skip
    if side_rows:
        s.tables.append(Table("Latest shadow report: both sides",
                              ("side", "rows", "fallback rate", "rejected rate"), side_rows))  # fmt: skip
    else:
        s.missing.append("the latest shadow report's rates (shadow_report.json not readable)")


def _artifact(tracker: Any, run_id: str, name: str) -> dict[str, Any] | None:
    from toolkit.tracking.run_facts import read_artifact

    data = read_artifact(tracker, run_id, name)
    return data if isinstance(data, dict) else None


def _feedback(s: Section, info: Any, tracker: Any) -> None:
    prefix = f"v{info.version}."
    run = next((r for r in _runs(tracker, f"feedback-{info.name}")
                if any(k.startswith(prefix) for k in r.metrics)), None)  # fmt: skip
    if run is None:
        s.missing.append(f"live metrics from feedback: {NONE_RECORDED}")
        return
    latest = sorted((k[len(prefix) :], v) for k, v in run.metrics.items() if k.startswith(prefix))
    data = _artifact(tracker, run.run_id, "feedback.json") or {}
    mine = next(
        (v for v in data.get("versions", []) if str(v.get("version")) == info.version), None
    )
    if mine is not None:
        s.fact("Live feedback", f"{len(mine.get('batches') or [])} labelled batches, "
               f"{mine.get('rows', '?')} labelled decisions ({mine.get('role', '?')}), "
               f"labels {run.params.get('labels', '?')} at {run.start_time or '?'}")  # fmt: skip
    else:
        s.missing.append("the labelled batch and row counts (feedback.json not readable)")
    s.tables.append(Table("Live metrics from feedback (latest batch)", ("metric", "value"),
                          [(k, fmt(v)) for k, v in latest]))  # fmt: skip


def production(info: Any, history: list[Any], tracker: Any) -> Section:
    """The section for ``info`` (a registered version) from ``history`` (its model's release
    history, oldest first) and the runs ``tracker`` reads."""
    s = Section("Production so far")
    moves = [e for e in history if e.to_version == info.version or e.from_version == info.version]
    if moves:
        moved = [(e.at, e.action + (" (FORCED)" if e.forced else ""), e.by or "?", e.reason)
                 for e in moves]  # fmt: skip
        s.tables.append(Table("Release history of this version", ("when", "action", "by",
                                                                   "reason"), moved))  # fmt: skip
    rows: list[tuple[str, ...]] = []
    for run in _runs(tracker, f"monitor-{info.name}"):
        if run.tags.get("toolkit.monitor.version") != str(info.version):
            continue
        m = run.metrics
        rows.append((str(run.start_time or "?"), run.tags.get("toolkit.monitor.status", "?"),
                     str(run.run_name or ""), fmt(m.get("rate.fallback")),
                     fmt(m.get("rate.rejected"))))  # fmt: skip
    if rows:
        s.tables.append(Table("Monitored batches (drift)", ("when", "status", "batch",
                                                            "fallback rate", "rejected rate"),
                              rows))  # fmt: skip
    else:
        s.missing.append(f"drift monitoring: {NONE_RECORDED}")
    _shadow(s, info, history, tracker)
    _feedback(s, info, tracker)
    return s
