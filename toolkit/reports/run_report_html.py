"""Building blocks of the run report: its CSS, escaping, badges, tables and inline SVG pictures
(the step DAG, metric bars, sparklines).

Standard library only, no scripts: every piece is a string the page embeds, so the report stays
one self-contained file. Every text that came from a run is escaped with :func:`esc`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from toolkit.reports.charts import COLOURS
from toolkit.reports.text import short

CSS = """
*{box-sizing:border-box}body{margin:0;background:#f6f8fa;color:#1f2328;
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 20px 48px}
header{background:#fff;border:1px solid #d1d9e0;border-radius:10px;padding:18px 22px;margin-bottom:16px}
.eyebrow{color:#59636e;font-size:12px;letter-spacing:.06em;text-transform:uppercase}
h1{font-size:24px;margin:2px 0 10px;font-weight:650}h1 .run{color:#59636e;font-weight:400;font-size:18px}
h2{font-size:17px;margin:0 0 12px}h3{font-size:14px;margin:16px 0 6px}
section{background:#fff;border:1px solid #d1d9e0;border-radius:10px;padding:16px 22px;margin:0 0 16px;overflow-x:auto}
nav{margin-top:12px;display:flex;gap:14px;flex-wrap:wrap}nav a{color:#0969da;text-decoration:none}
a{color:#0969da}dl.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:6px 18px;margin:0}
dl.facts div{min-width:0}dt{color:#59636e;font-size:12px}dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;margin:4px 0 8px}
th,td{border-bottom:1px solid #e5e9ed;padding:6px 10px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600;font-size:12px;color:#424a53;border-bottom:1px solid #d1d9e0}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
pre{background:#f6f8fa;border-radius:6px;padding:10px;overflow-x:auto;white-space:pre-wrap}
.badge{display:inline-block;padding:1px 9px;border-radius:999px;font-size:12px;font-weight:600;
border:1px solid currentColor;white-space:nowrap}
.muted{color:#59636e}.small{font-size:12px}.err{color:#cf222e}
.dur{display:inline-block;height:6px;border-radius:3px;background:#8c959f;margin-right:6px;vertical-align:middle}
.card{border:1px solid #e5e9ed;border-radius:8px;padding:10px 14px;margin:10px 0}
.card.bad{border-left:4px solid #cf222e}.card.warn{border-left:4px solid #9a6700}.card.good{border-left:4px solid #1a7f37}
tr.fail td{background:#fff5f5}.dag{max-width:100%;height:auto}
.dag-name{font-weight:600;font-size:14px;fill:#1f2328}.dag-meta{font-size:12px}
.bar-label,.bar-value{font-size:12px;fill:#1f2328}.bars{max-width:100%;height:auto}
ul.kv{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:2px 18px}
td.obs{max-width:320px;overflow-wrap:anywhere}td.ev{min-width:220px}
details summary{cursor:pointer;color:#0969da}footer{color:#59636e;font-size:12px;text-align:center}
.rundiff tr.chg td{background:#fff8c5}pre.diff{background:#f6f8fa;padding:8px;overflow-x:auto}
pre.diff span{display:block;white-space:pre}.add{background:#dafbe1}.del{background:#ffebe9}
"""


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def badge(status: str, label: str | None = None) -> str:
    colour = COLOURS.get(
        {"passed": "succeeded", "pass": "succeeded", "warning": "interrupted"}.get(status, status),
        ("#59636e", ""),
    )[0]
    return f'<span class="badge" style="color:{colour}">{esc(label or status)}</span>'


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else short(value, 120)


def table(head: Iterable[str], rows: Iterable[str]) -> str:
    cells = "".join(f"<th>{esc(h)}</th>" for h in head)
    return f"<table><thead><tr>{cells}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def series_by_key(events: Sequence[Mapping[str, object]]) -> dict[str, list[tuple[float, float]]]:
    """Metric values logged with a ``step`` (epochs, folds), per key, in step order."""
    series: dict[str, list[tuple[float, float]]] = {}
    for e in events:
        step, value = e.get("step"), e.get("value")
        if e.get("kind") != "metric" or not isinstance(step, int | float):
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            series.setdefault(str(e.get("key")), []).append((float(step), float(value)))
    return {k: sorted(v) for k, v in series.items() if len(v) > 1}


# ------------------------------------------------------------------------- report fragments
def when(iso: str | None) -> str:
    """``2026-11-25T16:56:36.526+00:00`` as ``2026-11-25 16:56:36 UTC``."""
    if not iso:
        return "-"
    text = iso.replace("T", " ").split(".")[0].split("+")[0]
    return f"{text} UTC" if iso.endswith(("+00:00", "Z")) else text


def error_card(step: str, err: Mapping[str, Any]) -> str:
    """A failed step's message, details and traceback (contract details collapsed)."""
    details = "\n".join(map(str, err.get("details") or []))
    trace = str(err.get("traceback") or "")
    kind = str(err.get("kind") or "error")
    out = f"<div class='card bad'><strong>{esc(step)}</strong> failed ({esc(kind)}): "
    out += esc(err.get("message", ""))
    if details and kind == "contract":
        out += "<details><summary>details (also under Data contracts)</summary>"
        out += f"<pre>{esc(details)}</pre></details>"
    elif details:
        out += f"<pre>{esc(details)}</pre>"
    if err.get("cell_index") is not None:
        out += f"<div class='small muted'>cell {esc(err['cell_index'])}</div>"
    if trace:
        out += f"<details><summary>traceback</summary><pre>{esc(trace)}</pre></details>"
    return out + "</div>"


def contract_card(step: str, c: Mapping[str, Any], facts: Sequence[str]) -> str:
    """One contract entry of ``summary.json``: verdict, counts, and every failing expectation.

    ``facts`` are extra HTML snippets for the sub-heading (data path, link to the full result).
    """
    status = (
        "failed"
        if c.get("error")
        else c.get("status") or ("passed" if c.get("success") else "failed")
    )
    warn_only = not c.get("success") and c.get("on_fail") == "warn"
    label = f"{status} (on_fail: warn)" if warn_only else status
    kind = "good" if c.get("success") else ("warn" if warn_only or status == "warning" else "bad")
    stats = c.get("statistics") or {}
    counts = []
    if stats:
        counts.append(
            f"{esc(stats.get('successful_expectations'))}/"
            f"{esc(stats.get('evaluated_expectations'))} expectations passed"
        )
    out = (
        f"<div class='card {kind}'><strong>{esc(step)}</strong> · {esc(c.get('direction'))} "
        f"<code>{esc(c.get('target'))}</code> · suite <code>{esc(c.get('suite'))}</code> "
        f"{badge('warning' if warn_only else status, label)}<div class='small muted'>{' · '.join([*counts, *facts])}</div>"
    )
    if c.get("error"):
        return out + f"<p class='err'>{esc(c['error'])}</p></div>"
    rows = []
    for f in c.get("failures") or []:
        observed = "" if f.get("observed_value") is None else short(f["observed_value"], 70)
        if f.get("details"):
            observed = f"{observed} {short(f['details'], 90)}".strip()
        count, pct = f.get("unexpected_count"), f.get("unexpected_percent")
        unexpected = "" if count is None else f"{count}" + (f" ({pct:.3g}%)" if pct else "")
        evidence = (
            f"<span class='err'>{esc(f['error'])}</span>"
            if f.get("error")
            else esc(", ".join(short(v, 40) for v in f.get("examples") or []))
        )
        notes = f"<div class='small muted'>{esc(f['notes'])}</div>" if f.get("notes") else ""
        rows.append(
            f"<tr class='fail'><td class='num'>{esc(f.get('index'))}</td>"
            f"<td><code>{esc(f.get('type'))}</code>{notes}</td><td>{esc(f.get('column') or '')}</td>"
            f"<td>{esc(f.get('severity'))}</td><td class='obs'>{esc(observed)}</td>"
            f"<td class='num'>{esc(unexpected)}</td><td class='ev'>{evidence}</td></tr>"
        )
    head = ("#", "failing expectation", "column", "severity", "observed", "unexpected")
    return out + (table((*head, "examples / error"), rows) if rows else "") + "</div>"


def gates_html(g: Mapping[str, Any] | None, registered: Mapping[str, Any] | None) -> str:
    """The gates dict of ``summary.json`` (see :mod:`toolkit.gates`) and what was registered."""
    if not g:
        return (
            "<p class='muted'>No gates were evaluated in this run: the pipeline defines none, "
            "or the run stopped before them.</p>"
        )
    champion = g.get("champion_version")
    against = f"compared with champion version {champion}" if champion else "no champion yet"
    out = [f"<p>{badge('passed' if g.get('passed') else 'failed')} {esc(against)}</p>"]
    if g.get("error"):
        out.append(f"<p class='err'>{esc(g['error'])}</p>")
    rows = []
    for r in g.get("gates") or []:
        verdict = "error" if r.get("error") else ("passed" if r.get("passed") else "failed")
        value = "" if r.get("value") is None else fmt(r["value"])
        limit = "" if r.get("threshold") is None else f"{r.get('op') or ''} {fmt(r['threshold'])}"
        rows.append(
            f"<tr{'' if r.get('passed') else ' class=fail'}><td>{badge(verdict)}</td>"
            f"<td><code>{esc(r.get('expression'))}</code></td><td>{esc(r.get('kind'))}</td>"
            f"<td class='num'>{esc(value)}</td><td class='num'>{esc(limit)}</td>"
            f"<td>{esc(r.get('note') or '')}</td></tr>"
        )
    out.append(table(("verdict", "check", "kind", "value", "threshold", "note"), rows))
    if registered:
        name, version = esc(registered.get("name")), esc(registered.get("version"))
        out.append(
            f"<p>Registered <strong>{name}</strong> version {version} as <code>candidate</code> "
            f"(<code>{esc(registered.get('model_uri'))}</code>). Review it: <code>toolkit review "
            f"approve {name} {version} --reviewer NAME</code></p>"
        )
    elif not g.get("passed"):
        out.append("<p>Nothing was registered.</p>")
    return "".join(out)
