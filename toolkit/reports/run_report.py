"""The run report: one self-contained HTML page per pipeline run, built from its run folder.

:func:`render_run_report` is pure (run folder in, HTML string out, standard library only): it
reads ``plan.json``, ``summary.json``, ``lineage.json`` and ``events/`` and never a notebook, so
it sees parameters only as they were masked there, and masks secret-looking names once more.
The page has no scripts and no external assets; its links are relative to the run folder
(``target="local"``) or, for the copy logged to MLflow (``target="mlflow"``), point at the
step runs in the tracking UI when one exists. :func:`write_run_report` is what the runner calls
at the end of every run: it records ``lineage.json`` and writes ``report.html``, and never
raises.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.parse
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.core.fsutil import atomic_write_json, atomic_write_text
from toolkit.core.secrets import redact_params
from toolkit.core.settings import DEFAULT_SECRET_PATTERNS
from toolkit.reports.charts import COLOURS, Node, dag_svg, metric_bars, seconds
from toolkit.reports.charts import sparkline as spark
from toolkit.reports.run_report_html import (
    CSS,
    badge,
    contract_card,
    error_card,
    esc,
    fmt,
    gates_html,
    series_by_key,
    table,
    when,
)
from toolkit.reports.text import short

log = logging.getLogger(__name__)
SECTIONS = ("dag", "steps", "parameters", "contracts", "gates", "metrics", "lineage")
_FACTS = ("path", "kind", "format", "rows", "size", "sha256")
#: Written into a run's folder by ``toolkit reproduce``: the latest reproduction's verdict.
REPRODUCTION_FILE = "reproduction.json"
#: Written into a candidate's run folder: its diff against the champion's training run.
CHAMPION_DIFF_FILE = "diff_vs_champion.json"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _events(path: Path) -> list[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


class _Page:
    def __init__(
        self,
        run_dir: Path,
        target: str,
        step_links: Mapping[str, str],
        base: Path,
        patterns: tuple[str, ...],
    ):
        self.dir, self.target, self.links, self.base = run_dir.resolve(), target, step_links, base
        self.patterns = patterns
        self.plan = _read_json(run_dir / "plan.json") or {}
        self.summary = _read_json(run_dir / "summary.json") or {}
        self.lineage = _read_json(run_dir / "lineage.json")
        self.reproduction = _read_json(run_dir / REPRODUCTION_FILE)
        self.champion_diff = _read_json(run_dir / CHAMPION_DIFF_FILE)
        self.extra: list[tuple[str, str, str]] = []  # optional sections: (id, title, html)
        recorded = self.summary.get("run_dir") or self.plan.get("run_dir") or run_dir
        self.recorded = Path(recorded)
        done = {s.get("name"): s for s in self.summary.get("steps", [])}
        planned = self.plan.get("steps") or [{"name": n} for n in done]
        self.steps = [{**p, **done.get(p["name"], {"status": "unknown"})} for p in planned]
        self.run_id = self.summary.get("run_id") or run_dir.name
        self.pipeline = self.summary.get("pipeline") or self.plan.get("pipeline") or "?"

    def local(self, path: str | None) -> Path | None:
        """``path`` inside this run folder, also when the folder was moved since the run."""
        if not path:
            return None
        full = Path(path)
        for root in (self.dir, self.recorded):
            if full.is_relative_to(root):
                return self.dir / full.relative_to(root)
        return None

    def href(self, path: str | None) -> str | None:
        """A relative link to an existing file of the run folder (local page only), else None."""
        full = self.local(path) if self.target == "local" else None
        if full is None or not full.exists():
            return None
        return urllib.parse.quote(Path(os.path.relpath(full, self.base)).as_posix())

    def rel(self, path: str | None) -> str:
        full = self.local(path)
        return full.relative_to(self.dir).as_posix() if full else str(path or "")

    def link(self, path: str | None, label: str | None = None) -> str:
        url = self.href(path)
        text = f"<code>{esc(label or self.rel(path))}</code>"
        return f'<a href="{esc(url)}">{text}</a>' if url else text

    # --------------------------------------------------------------------------------- page
    def render(self) -> str:
        title = f"{self.pipeline} · run {self.run_id} · toolkit run report"
        if isinstance(self.reproduction, dict):
            self.extra.append(("reproduction", "Latest reproduction", self.reproduction_html()))
        if isinstance(self.champion_diff, dict):
            from toolkit.reports.rundiff import render_html  # lazy: Jinja2, only for candidates

            d = self.champion_diff
            html = render_html(d, standalone=False)
            title = d.get("title") or "Changes against the champion"
            self.extra.append(("changes", f"What changed: {title}", html))
        body = "".join(
            [
                self.header(),
                self.section("dag", "Pipeline", self.dag()),
                self.section("steps", "Steps", self.steps_table()),
                self.section("parameters", "Parameters", self.parameters()),
                self.section("contracts", "Data contracts", self.contracts()),
                self.section("gates", "Release gates", self.gates()),
                self.section("metrics", "Key metrics", self.metrics()),
                self.section("lineage", "Lineage", self.lineage_html()),
                *(self.section(sid, title, html) for sid, title, html in self.extra),
            ]
        )
        when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>{body}"
            f"<footer>Generated by toolkit {esc(__version__)} on {when} from "
            f"<code>{esc(self.dir.name)}</code> · regenerate with "
            f"<code>toolkit report {esc(self.run_id)}</code></footer></main></body></html>\n"
        )

    def section(self, sid: str, title: str, content: str) -> str:
        return f'<section id="{sid}"><h2>{esc(title)}</h2>{content}</section>'

    def header(self) -> str:
        s = self.summary
        status = s.get("status", "unknown")
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[step["status"]] = counts.get(step["status"], 0) + 1
        facts = [
            ("Started", when(s.get("started_at"))),
            ("Finished", when(s.get("ended_at")) if s else "not recorded: no summary.json"),
            ("Duration", seconds(s.get("duration"))),
            ("Steps", ", ".join(f"{n} {k}" for k, n in counts.items())),
            ("Exit code", s.get("exit_code", "-")),
        ]
        if s.get("registered"):
            r = s["registered"]
            facts.append(("Registered", f"{r.get('name')} v{r.get('version')} (candidate)"))
        if s.get("mlflow_run_id"):
            facts.append(("MLflow run", s["mlflow_run_id"]))
        dl = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in facts)
        sids = (*SECTIONS, *(sid for sid, _, _ in self.extra))
        nav = "".join(f'<a href="#{sid}">{sid}</a>' for sid in sids)
        return (
            f'<header><div class="eyebrow">toolkit run report</div><h1>{esc(self.pipeline)} '
            f'<span class="run">{esc(self.run_id)}</span> {badge(status)}</h1>'
            f'<dl class="facts">{dl}</dl><nav>{nav}</nav></header>'
        )

    def dag(self) -> str:
        nodes = [
            Node(
                name=st["name"],
                status=st["status"],
                duration=st.get("duration"),
                upstream=tuple(st.get("upstream", ())),
                note=(st.get("error") or {}).get("message") or st.get("reason") or "",
            )
            for st in self.steps
        ]
        if not nodes:
            return "<p class='muted'>No steps.</p>"
        legend = " ".join(badge(k) for k in COLOURS)
        return f'{dag_svg(nodes)}<p class="small muted">Click a step for its details. {legend}</p>'

    # -------------------------------------------------------------------------------- steps
    def notebook_cell(self, st: dict[str, Any]) -> str:
        name = st["name"]
        if self.target == "local":
            html_nb = self.dir / "notebooks" / f"{name}.html"
            nb = str(html_nb) if html_nb.exists() else st.get("notebook")
            return self.link(nb) if nb else '<span class="muted">not executed</span>'
        run = st.get("mlflow_run_id")
        if name in self.links:
            return f'<a href="{esc(self.links[name])}" target="_blank" rel="noopener">step run</a>'
        if run:
            return f"<code>notebook/{esc(name)}.html</code> in step run <code>{esc(run)}</code>"
        return '<span class="muted">not tracked</span>'

    def steps_table(self) -> str:
        longest = max((st.get("duration") or 0 for st in self.steps), default=0) or 1
        rows, errors = [], []
        for st in self.steps:
            name, dur = st["name"], st.get("duration")
            width = int(80 * (dur or 0) / longest)
            note = st.get("reason") or (st.get("error") or {}).get("message") or ""
            attempts = st.get("attempts") or 0
            log_link = self.link(str(self.dir / "logs" / f"{name}.log"), "log")
            rows.append(
                f'<tr id="step-{esc(name)}"><td><strong>{esc(name)}</strong></td>'
                f"<td>{badge(st['status'])}"
                f"{f'<div class=small>{esc(short(note, 140))}</div>' if note else ''}</td>"
                f'<td class="num"><span class="dur" style="width:{width}px"></span>'
                f"{esc(seconds(dur))}</td><td class=num>{attempts if attempts > 1 else ''}</td>"
                f"<td>{self.notebook_cell(st)}</td>"
                f"<td>{log_link if self.href(str(self.dir / 'logs' / f'{name}.log')) else ''}</td>"
                f"<td class=mono>{esc(st.get('mlflow_run_id') or '')}</td></tr>"
            )
            if st.get("error") and st["status"] == "failed":
                errors.append(error_card(name, st["error"]))
        head = ("step", "status", "duration", "attempts", "notebook", "log", "MLflow step run")
        return table(head, rows) + "".join(errors)

    # --------------------------------------------------------------------------- parameters
    def masked(self, params: Mapping[str, Any]) -> dict[str, Any]:
        return redact_params(params, patterns=self.patterns)

    def parameters(self) -> str:
        parts = ['<p class="small muted">Secret values are masked as <code>***</code>.</p>']
        overrides = self.masked(self.summary.get("parameters") or {})
        if overrides:
            rows = (
                f"<tr><td><code>{esc(k)}</code></td><td>{esc(fmt(v))}</td></tr>"
                for k, v in overrides.items()
            )
            parts.append("<h3>Overrides (-p)</h3>" + table(("parameter", "value"), rows))
        rows = []
        for st in self.steps:
            items = []
            for key, value in self.masked(st.get("parameters") or {}).items():
                path = isinstance(value, str) and self.local(value) is not None
                shown = self.rel(value) if path else fmt(value)
                items.append(
                    f"<li{' class=muted' if path else ''}><code>{esc(key)}</code> = "
                    f"<span class='mono'>{esc(shown)}</span></li>"
                )
            rows.append(
                f"<tr><td>{esc(st['name'])}</td><td><ul class='kv'>{''.join(items)}</ul></td></tr>"
            )
        parts.append(
            table(("step", "parameters (data paths greyed)"), rows) if rows else "<p>None.</p>"
        )
        return "".join(parts)

    # ---------------------------------------------------------------------------- contracts
    def contracts(self) -> str:
        cards = []
        for st in self.steps:
            for c in st.get("contracts") or []:
                facts = [f"data {self.link(c.get('path'))}"]
                if self.href(c.get("html")):
                    facts.append(self.link(c.get("html"), "full result"))
                cards.append(contract_card(st["name"], c, facts))
        if not cards:
            return "<p class='muted'>No contract was checked in this run.</p>"
        return "".join(cards)

    def gates(self) -> str:
        return gates_html(self.summary.get("gates"), self.summary.get("registered"))

    # ------------------------------------------------------------------------------ metrics
    def metrics(self) -> str:
        gated: dict[str, tuple[float, list[tuple[float, bool]]]] = {}
        for r in (self.summary.get("gates") or {}).get("gates") or []:
            if isinstance(r.get("value"), int | float) and r.get("kind") != "contracts":
                value, ticks = gated.setdefault(r["name"], (float(r["value"]), []))
                if isinstance(r.get("threshold"), int | float):
                    ticks.append((float(r["threshold"]), bool(r.get("passed"))))
        bars = [(k, v, t) for k, (v, t) in gated.items()]
        if not bars:  # no gates: the metrics of the last step that logged any
            last = next((st for st in reversed(self.steps) if st.get("metrics")), None)
            items = list((last or {}).get("metrics", {}).items())[:8]
            bars = [(k, float(v), []) for k, v in items if isinstance(v, int | float)]
        out = []
        if bars:
            note = "ticks mark gate thresholds" if gated else "latest values"
            out.append(f"{metric_bars(bars)}<p class='small muted'>Bars: {note}.</p>")
        rows = []
        for st in self.steps:
            series = series_by_key(_events(self.dir / "events" / f"{st['name']}.jsonl"))
            for key, value in (st.get("metrics") or {}).items():
                mark = " <span class=small>(gated)</span>" if key in gated else ""
                rows.append(
                    f"<tr><td>{esc(st['name'])}</td><td><code>{esc(key)}</code>{mark}</td>"
                    f"<td class=num>{esc(fmt(value))}</td><td>{spark(series.get(key, []))}</td></tr>"
                )
        out.append(
            table(("step", "metric", "value", "trend"), rows) if rows else "<p>No metrics.</p>"
        )
        return "".join(out)

    # ------------------------------------------------------------------------------ lineage
    def lineage_html(self) -> str:
        facts = [
            ("Spec", self.plan.get("spec") or self.summary.get("spec")),
            ("Spec SHA-256", self.plan.get("spec_hash")),
            ("Tracking URI", _no_credentials(self.summary.get("tracking_uri")) or "not tracked"),
            ("MLflow run", self.summary.get("mlflow_run_id")),
        ]
        lin = self.lineage
        if not lin:
            note = (
                "<p class='muted'>No <code>lineage.json</code> in this run folder (it predates it)."
            )
            note += (
                " The MLflow run's tags and <code>environment.json</code> hold the same facts.</p>"
            )
            return self.facts(facts) + note
        git = lin.get("git") or {}
        commit = git.get("commit") or "not a git repository"
        facts[:0] = [
            ("Commit", f"{commit}{' (uncommitted changes)' if git.get('dirty') else ''}"),
            ("Branch", git.get("branch") or (git.get("commit") and "detached HEAD")),
            ("Repository", git.get("repo_url")),
        ]
        env = lin.get("environment") or {}
        facts += [(k.title(), env.get(k)) for k in ("user", "host", "python", "platform")]
        facts.append(("Recorded", lin.get("recorded_at")))
        rows = []
        for name, f in (lin.get("data") or {}).items():
            sha = f.get("sha256") or ""
            rows.append(
                f"<tr><td><code>{esc(name)}</code></td><td>{self.link(f.get('path'))}</td>"
                f"<td class=num>{esc(f.get('rows', ''))}</td><td class=num>{esc(f.get('size', ''))}</td>"
                f'<td class=mono title="{esc(sha)}">{esc(sha[:16])}</td></tr>'
            )
        data = table(("data", "path", "rows", "bytes", "sha256"), rows) if rows else ""
        pkgs = "<p class='small muted'>Installed packages: <code>environment.json</code> of the "
        pkgs += "MLflow run, when tracked.</p>"
        return self.facts(facts) + "<h3>Data fingerprints</h3>" + (data or "<p>None.</p>") + pkgs

    # ------------------------------------------------------------------------ reproduction
    def reproduction_html(self) -> str:
        r = self.reproduction or {}
        facts = [
            ("Verdict", r.get("headline") or r.get("verdict")),
            ("Reproduced as run", r.get("new_run")),
            ("MLflow run", r.get("mlflow_run_id")),
            ("From commit", r.get("commit")),
            ("Exit code", r.get("exit_code")),
        ]
        rows = [
            f"<tr><td>{esc(c.get('kind'))}</td><td><code>"
            f"{esc('.'.join(x for x in (c.get('step'), c.get('key')) if x))}</code></td>"
            f"<td>{esc(c.get('original'))}</td><td>{esc(c.get('new'))}</td>"
            f"<td>{esc(c.get('verdict'))}</td></tr>"
            for c in r.get("comparisons") or []
        ]
        notes = "".join(f"<p class='small'>{esc(n)}</p>" for n in r.get("notes") or [])
        if r.get("hint"):
            notes += f"<p class='small'>hint: {esc(r['hint'])}</p>"
        compared = table(("kind", "item", "original", "reproduction", "verdict"), rows)
        return self.facts(facts) + (compared if rows else "<p>Nothing compared.</p>") + notes

    def facts(self, items: list[tuple[str, Any]]) -> str:
        dl = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in items if v)
        return f'<dl class="facts">{dl}</dl>'


def _no_credentials(uri: str | None) -> str | None:
    if not uri:
        return uri
    parts = urllib.parse.urlsplit(uri)
    if "@" in parts.netloc:
        return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return uri


def render_run_report(
    run_dir: Path,
    *,
    target: str = "local",
    step_links: Mapping[str, str] | None = None,
    base: Path | None = None,
    secret_patterns: Iterable[str] = DEFAULT_SECRET_PATTERNS,
) -> str:
    """The report of the run in ``run_dir`` as one HTML page.

    Args:
        target: ``local`` links files relative to ``base`` (default: the run folder);
            ``mlflow`` links nothing local and uses ``step_links`` (step -> tracking UI URL).
        secret_patterns: parameter names masked on top of what the run folder already masks.
    """
    run_dir = Path(run_dir)
    base = Path(base or run_dir).resolve()
    page = _Page(run_dir, target, step_links or {}, base, tuple(secret_patterns))
    return page.render()


def record_lineage(run_dir: Path, root: Path) -> dict[str, Any]:
    """Write ``lineage.json``: commit, environment and fingerprints of the run's data files."""
    from toolkit.core.lineage import environment, fingerprint, git_info

    plan = _read_json(run_dir / "plan.json") or {}
    data: dict[str, dict[str, Any]] = {}
    produced = {p for s in plan.get("steps", []) for p in s.get("outputs", {}).values()}
    for s in plan.get("steps", []):
        for direction in ("inputs", "outputs"):
            for key, path in s.get(direction, {}).items():
                if (direction == "inputs" and path in produced) or not Path(path).exists():
                    continue
                facts = fingerprint(Path(path))
                data[f"{s['name']}.{direction[:-1]}.{key}"] = {
                    k: facts[k] for k in _FACTS if k in facts
                }
    lineage = {
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": dict(git_info(root)),
        "environment": environment(packages=False),  # the package list costs ~0.7 s
        "data": data,
    }
    atomic_write_json(run_dir / "lineage.json", lineage)
    return lineage


def write_run_report(
    run_dir: Path,
    *,
    root: Path | None = None,
    secret_patterns: Iterable[str] = DEFAULT_SECRET_PATTERNS,
) -> Path | None:
    """At the end of a run: record lineage (when ``root`` is given), write ``report.html``.

    Never raises: a report is a courtesy, and a run must not fail because of it.
    """
    run_dir = Path(run_dir)
    if root is not None:
        try:
            record_lineage(run_dir, root)
        except Exception as exc:
            log.warning("could not record lineage for %s: %s", run_dir, exc)
    try:
        path = run_dir / "report.html"
        atomic_write_text(path, render_run_report(run_dir, secret_patterns=secret_patterns))
        return path
    except Exception as exc:
        log.warning("could not write the run report for %s: %s", run_dir, exc)
        return None
