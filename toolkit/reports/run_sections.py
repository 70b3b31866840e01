"""What each section of the run report shows, as plain data for ``run_report.html.j2``.

:class:`RunPage` reads one run folder (``plan.json``, ``summary.json``, ``lineage.json``,
``events/``, never a notebook) and turns it into texts, links and numbers; the template only
lays them out, autoescaped. Parameters are masked here once more by name.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toolkit.core.secrets import redact_params
from toolkit.reports.charts import Node, seconds
from toolkit.reports.text import short

#: Written into a run's folder by ``toolkit reproduce``: the latest reproduction's verdict.
REPRODUCTION_FILE = "reproduction.json"
#: Written into a candidate's run folder: its diff against the champion's training run.
CHAMPION_DIFF_FILE = "diff_vs_champion.json"


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_events(path: Path) -> list[dict[str, Any]]:
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


def text(value: Any) -> str:
    """A value as the page prints it: nothing for None."""
    return "" if value is None else str(value)


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else short(value, 120)


def when(iso: str | None) -> str:
    """``2026-11-25T16:56:36.526+00:00`` as ``2026-11-25 16:56:36 UTC``."""
    if not iso:
        return "-"
    text = iso.replace("T", " ").split(".")[0].split("+")[0]
    return f"{text} UTC" if iso.endswith(("+00:00", "Z")) else text


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


def facts(items: Sequence[tuple[str, Any]]) -> list[tuple[str, str]]:
    """The ``(label, value)`` pairs that have a value."""
    return [(k, text(v)) for k, v in items if v]


class RunPage:
    """One run folder, read once, and what each section of its report shows."""

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
        self.plan = read_json(run_dir / "plan.json") or {}
        self.summary = read_json(run_dir / "summary.json") or {}
        self.lineage = read_json(run_dir / "lineage.json")
        self.reproduction = read_json(run_dir / REPRODUCTION_FILE)
        self.champion_diff = read_json(run_dir / CHAMPION_DIFF_FILE)
        recorded = self.summary.get("run_dir") or self.plan.get("run_dir") or run_dir
        self.recorded = Path(recorded)
        done = {s.get("name"): s for s in self.summary.get("steps", [])}
        planned = self.plan.get("steps") or [{"name": n} for n in done]
        self.steps = [{**p, **done.get(p["name"], {"status": "unknown"})} for p in planned]
        self.run_id = self.summary.get("run_id") or run_dir.name
        self._local: dict[str, tuple[Path, str] | None] = {}
        self._href: dict[str, str | None] = {}
        self.pipeline = self.summary.get("pipeline") or self.plan.get("pipeline") or "?"

    # ------------------------------------------------------------------------------ files
    def _inside(self, path: str | None) -> tuple[Path, str] | None:
        """``path`` in this run folder (also moved since the run), and relative to it. Kept, and
        found on normalised strings: pathlib's parsing was most of a 200-step page's time."""
        if not path:
            return None
        if path not in self._local:
            full, self._local[path] = str(Path(path)), None
            for root in (str(self.dir), str(self.recorded)):
                prefix = root if root.endswith("/") else root + "/"
                if full == root or full.startswith(prefix):
                    inner = full[len(prefix) :] or "."
                    self._local[path] = (self.dir / inner, inner)
                    break
        return self._local[path]

    def href(self, path: str | None) -> str | None:
        """A relative link to an existing file of the run folder (local page only), else None."""
        if self.target != "local" or not path:
            return None
        if path not in self._href:
            inside = self._inside(path)
            self._href[path] = None
            if inside is not None and inside[0].exists():  # relpath: ~20 ms of a 200-step page
                inner = inside[1] if self.base == self.dir and ".." not in inside[1] else ""
                rel = inner or Path(os.path.relpath(inside[0], self.base)).as_posix()
                self._href[path] = urllib.parse.quote(rel)
        return self._href[path]

    def rel(self, path: str | None) -> str:
        inside = self._inside(path)
        return inside[1] if inside else str(path or "")

    def link(self, path: str | None, label: str | None = None) -> dict[str, Any]:
        """A file of the run: its text, and its relative URL when the page can link it."""
        return {"href": self.href(path), "text": label or self.rel(path)}

    # ---------------------------------------------------------------------------- sections
    def header_facts(self) -> list[tuple[str, str]]:
        s = self.summary
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[step["status"]] = counts.get(step["status"], 0) + 1
        items = [
            ("Started", when(s.get("started_at"))),
            ("Finished", when(s.get("ended_at")) if s else "not recorded: no summary.json"),
            ("Duration", seconds(s.get("duration"))),
            ("Steps", ", ".join(f"{n} {k}" for k, n in counts.items())),
            ("Exit code", s.get("exit_code", "-")),
        ]
        if s.get("registered"):
            r = s["registered"]
            items.append(("Registered", f"{r.get('name')} v{r.get('version')} (candidate)"))
        if s.get("mlflow_run_id"):
            items.append(("MLflow run", s["mlflow_run_id"]))
        return [(k, text(v)) for k, v in items]

    def nodes(self) -> list[Node]:
        return [
            Node(
                name=st["name"],
                status=st["status"],
                duration=st.get("duration"),
                upstream=tuple(st.get("upstream", ())),
                note=(st.get("error") or {}).get("message") or st.get("reason") or "",
            )
            for st in self.steps
        ]

    def notebook_cell(self, st: dict[str, Any]) -> dict[str, Any]:
        """Where the step's notebook is: a file link, a step run, or why there is none."""
        name, cell = st["name"], dict.fromkeys(("link", "step_run_url", "in_run", "muted"))
        if self.target == "local":
            html_nb = self.dir / "notebooks" / f"{name}.html"
            nb = str(html_nb) if html_nb.exists() else st.get("notebook")
            cell.update({"link": self.link(nb)} if nb else {"muted": "not executed"})
        elif name in self.links:
            cell["step_run_url"] = self.links[name]
        elif st.get("mlflow_run_id"):
            cell["in_run"] = st["mlflow_run_id"]
        else:
            cell["muted"] = "not tracked"
        return cell

    def step_rows(self) -> list[dict[str, Any]]:
        longest = max((st.get("duration") or 0 for st in self.steps), default=0) or 1
        rows = []
        for st in self.steps:
            name, dur = st["name"], st.get("duration")
            log = str(self.dir / "logs" / f"{name}.log")
            attempts = st.get("attempts") or 0
            note = st.get("reason") or (st.get("error") or {}).get("message") or ""
            rows.append({
                "name": name,
                "status": st["status"],
                "note": short(note, 140) if note else "",
                "width": int(80 * (dur or 0) / longest),
                "duration": seconds(dur),
                "attempts": attempts if attempts > 1 else "",
                "notebook": self.notebook_cell(st),
                "log": self.link(log, "log") if self.href(log) else None,
                "run": st.get("mlflow_run_id") or "",
            })  # fmt: skip
        return rows

    def errors(self) -> list[dict[str, Any]]:
        """A failed step's message, details and traceback."""
        out = []
        for st in self.steps:
            err = st.get("error")
            if err and st["status"] == "failed":
                out.append({
                    "step": st["name"],
                    "kind": str(err.get("kind") or "error"),
                    "message": text(err.get("message", "")),
                    "details": "\n".join(map(str, err.get("details") or [])),
                    "cell": text(err.get("cell_index")),
                    "traceback": str(err.get("traceback") or ""),
                })  # fmt: skip
        return out

    def parameters(self) -> dict[str, Any]:
        overrides = redact_params(self.summary.get("parameters") or {}, patterns=self.patterns)
        steps = []
        for st in self.steps:
            items = []
            masked = redact_params(st.get("parameters") or {}, patterns=self.patterns)
            for key, value in masked.items():
                if isinstance(value, str) and self._inside(value) is not None:
                    items.append((key, self.rel(value), True))
                else:
                    items.append((key, fmt(value), False))
            steps.append((st["name"], items))
        return {"overrides": [(k, fmt(v)) for k, v in overrides.items()], "steps": steps}

    def contract_cards(self) -> list[dict[str, Any]]:
        cards = []
        for st in self.steps:
            for c in st.get("contracts") or []:
                links = [("data ", self.link(c.get("path")))]
                if self.href(c.get("html")):
                    links.append(("", self.link(c.get("html"), "full result")))
                cards.append(contract_card(st["name"], c, links))
        return cards

    def metrics(self) -> dict[str, Any]:
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
        rows = []
        for st in self.steps:
            series = series_by_key(read_events(self.dir / "events" / f"{st['name']}.jsonl"))
            for key, value in (st.get("metrics") or {}).items():
                rows.append((st["name"], key, key in gated, fmt(value), series.get(key, [])))
        note = "ticks mark gate thresholds" if gated else "latest values"
        return {"bars": bars, "note": note, "rows": rows}

    def lineage_facts(self) -> dict[str, Any]:
        items: list[tuple[str, Any]] = [
            ("Spec", self.plan.get("spec") or self.summary.get("spec")),
            ("Spec SHA-256", self.plan.get("spec_hash")),
            ("Tracking URI", no_credentials(self.summary.get("tracking_uri")) or "not tracked"),
            ("MLflow run", self.summary.get("mlflow_run_id")),
        ]
        lin = self.lineage
        if not lin:
            return {"facts": facts(items), "recorded": False, "data": []}
        git = lin.get("git") or {}
        commit = git.get("commit") or "not a git repository"
        items[:0] = [
            ("Commit", f"{commit}{' (uncommitted changes)' if git.get('dirty') else ''}"),
            ("Branch", git.get("branch") or (git.get("commit") and "detached HEAD")),
            ("Repository", git.get("repo_url")),
        ]
        env = lin.get("environment") or {}
        items += [(k.title(), env.get(k)) for k in ("user", "host", "python", "platform")]
        items.append(("Recorded", lin.get("recorded_at")))
        data = [
            (name, self.link(f.get("path")), text(f.get("rows", "")), text(f.get("size", "")),
             f.get("sha256") or "")
            for name, f in (lin.get("data") or {}).items()
        ]  # fmt: skip
        return {"facts": facts(items), "recorded": True, "data": data}

    def reproduction_facts(self) -> dict[str, Any]:
        r = self.reproduction or {}
        items = [
            ("Verdict", r.get("headline") or r.get("verdict")),
            ("Reproduced as run", r.get("new_run")),
            ("MLflow run", r.get("mlflow_run_id")),
            ("From commit", r.get("commit")),
            ("Exit code", r.get("exit_code")),
        ]
        rows = [
            [text(c.get("kind")), ".".join(x for x in (c.get("step"), c.get("key")) if x)]
            + [text(c.get(k)) for k in ("original", "new", "verdict")]
            for c in r.get("comparisons") or []
        ]
        notes = [text(n) for n in r.get("notes") or []]
        return {"facts": facts(items), "rows": rows, "notes": notes, "hint": r.get("hint")}


def no_credentials(uri: str | None) -> str | None:
    if not uri:
        return uri
    parts = urllib.parse.urlsplit(uri)
    if "@" in parts.netloc:
        return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return uri


def gates(g: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The gates dict of ``summary.json`` (see :mod:`toolkit.gates`), ready to show."""
    if not g:
        return None
    champion = g.get("champion_version")
    rows = []
    for r in g.get("gates") or []:
        limit = "" if r.get("threshold") is None else f"{r.get('op') or ''} {fmt(r['threshold'])}"
        rows.append({
            "verdict": "error" if r.get("error") else ("passed" if r.get("passed") else "failed"),
            "passed": bool(r.get("passed")),
            "expression": text(r.get("expression")),
            "kind": text(r.get("kind")),
            "value": "" if r.get("value") is None else fmt(r["value"]),
            "limit": limit,
            "note": r.get("note") or "",
        })  # fmt: skip
    return {
        "passed": bool(g.get("passed")),
        "against": f"compared with champion version {champion}" if champion else "no champion yet",
        "error": text(g.get("error")),
        "rows": rows,
    }


def contract_card(step: str, c: Mapping[str, Any], links: list[tuple[str, Any]]) -> dict[str, Any]:
    """One contract entry of ``summary.json``: verdict, counts, and every failing expectation."""
    status = (
        "failed"
        if c.get("error")
        else c.get("status") or ("passed" if c.get("success") else "failed")
    )
    warn_only = not c.get("success") and c.get("on_fail") == "warn"
    stats = c.get("statistics") or {}
    counts = []
    if stats:
        counts.append(
            f"{text(stats.get('successful_expectations'))}/"
            f"{text(stats.get('evaluated_expectations'))} expectations passed"
        )
    failures = []
    for f in c.get("failures") or []:
        observed = "" if f.get("observed_value") is None else short(f["observed_value"], 70)
        if f.get("details"):
            observed = f"{observed} {short(f['details'], 90)}".strip()
        count, pct = f.get("unexpected_count"), f.get("unexpected_percent")
        failures.append({
            "index": text(f.get("index")),
            "type": text(f.get("type")),
            "notes": f.get("notes") or "",
            "column": f.get("column") or "",
            "severity": text(f.get("severity")),
            "observed": observed,
            "unexpected": "" if count is None else f"{count}" + (f" ({pct:.3g}%)" if pct else ""),
            "error": f.get("error") or "",
            "examples": ", ".join(short(v, 40) for v in f.get("examples") or []),
        })  # fmt: skip
    return {
        "step": step,
        "direction": text(c.get("direction")),
        "target": text(c.get("target")),
        "suite": text(c.get("suite")),
        "badge": "warning" if warn_only else status,
        "label": f"{status} (on_fail: warn)" if warn_only else status,
        "kind": "good" if c.get("success") else ("warn" if warn_only or status == "warning" else "bad"),
        "counts": counts,
        "links": links,
        "error": text(c.get("error")),
        "failures": failures,
    }  # fmt: skip
