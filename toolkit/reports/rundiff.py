"""``toolkit diff`` for people: text for the terminal, an offline HTML page or fragment.

Both take the JSON form of :class:`toolkit.tracking.comparison.RunDiff` (``to_dict()``), so a diff saved in
a run folder renders the same way later.
"""

from __future__ import annotations

from typing import Any

from toolkit.reports.jinja import render


def fmt_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def fmt_delta(value: Any) -> str:
    return "" if value is None else f" ({value:+.6g})"


def render_text(diff: dict[str, Any]) -> str:
    """The diff as terminal text: only what changed, metrics with their deltas."""
    a, b = diff["a"], diff["b"]
    lines = [f"diff {a} -> {b}" + ("" if diff["changed"] else ": no differences")]
    lines += [f"  note: {n}" for n in diff["notes"]]
    ca, cb = diff["commit"]
    lines.append(
        f"  commit: {fmt_value(ca)[:12]}" + ("" if ca == cb else f" -> {fmt_value(cb)[:12]}")
    )
    sections = [
        (
            "parameters",
            [f"{p['key']}: {fmt_value(p['a'])} -> {fmt_value(p['b'])}" for p in diff["parameters"]],
        ),
        (
            "steps",
            [f"{s['step']}: {fmt_value(s['a'])} -> {fmt_value(s['b'])}" for s in diff["steps"]],
        ),
        (
            "metrics",
            [
                f"{m['step']}.{m['key']}: {fmt_value(m['a'])} -> {fmt_value(m['b'])}{fmt_delta(m['delta'])}"
                for m in diff["metrics"]
                if m["a"] != m["b"]
            ],
        ),
        (
            "gates",
            [f"{g['gate']}: {fmt_value(g['a'])} -> {fmt_value(g['b'])}" for g in diff["gates"]],
        ),
        (
            "contracts",
            [
                f"{c['step']}.{c['target']}: {fmt_value(c['a'])} -> {fmt_value(c['b'])}"
                for c in diff["contracts"]
            ],
        ),
        (
            "outputs",
            [
                f"{o['step']}.{o['output']} {o['field']}: {fmt_value(o['a'])[:40]} -> {fmt_value(o['b'])[:40]}"
                for o in diff["outputs"]
            ],
        ),
        (
            "environment",
            [
                f"{e['item']}: {fmt_value(e['a'])} -> {fmt_value(e['b'])}"
                for e in diff["environment"]
            ],
        ),
    ]
    for title, rows in sections:
        if rows:
            lines.append(f"  {title}:")
            lines += [f"    {r}" for r in rows]
    same = sum(m["a"] == m["b"] for m in diff["metrics"])
    if same:
        lines.append(f"  {same} metric(s) unchanged")
    for nb in diff["notebooks"]:
        if nb["changed"]:
            what = "sources and outputs" if diff["with_outputs"] else "sources"
            lines.append(f"  notebook {nb['step']} ({what}, nbdime):")
            lines += [f"    {ln}" for ln in nb["text"].rstrip().splitlines()]
        elif nb["note"]:
            lines.append(f"  notebook {nb['step']}: {nb['note']}")
    return "\n".join(lines)


def render_html(diff: dict[str, Any], *, title: str | None = None, standalone: bool = True) -> str:
    """The diff as HTML: a whole offline page, or (``standalone=False``) a fragment to embed."""
    template = "rundiff_page.html.j2" if standalone else "rundiff.html.j2"
    return render(
        template,
        d=diff,
        title=title or f"diff {diff['a']} -> {diff['b']}",
        fmt=fmt_value,
        delta=fmt_delta,
    )
