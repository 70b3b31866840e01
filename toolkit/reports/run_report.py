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

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.core.fsutil import atomic_write_json, atomic_write_text
from toolkit.core.settings import DEFAULT_SECRET_PATTERNS
from toolkit.reports.charts import COLOURS, dag_svg, metric_bars, sparkline
from toolkit.reports.jinja import keep_compiled_templates, render
from toolkit.reports.run_sections import (
    CHAMPION_DIFF_FILE,
    REPRODUCTION_FILE,
    RunPage,
    gates,
    read_json,
    text,
)

log = logging.getLogger(__name__)
SECTIONS = ("dag", "steps", "parameters", "contracts", "gates", "metrics", "lineage")
_FACTS = ("path", "kind", "format", "rows", "size", "sha256")
__all__ = [
    "CHAMPION_DIFF_FILE",
    "REPRODUCTION_FILE",
    "SECTIONS",
    "record_lineage",
    "render_run_report",
    "write_run_report",
]


def badge_colour(status: str) -> str:
    """The colour of a status badge; the DAG draws the same statuses in the same colours."""
    alias = {"passed": "succeeded", "pass": "succeeded", "warning": "interrupted"}
    return COLOURS.get(alias.get(status, status), ("#59636e", ""))[0]


def _render(page: RunPage) -> str:
    from toolkit.reports.rundiff import fmt_delta, fmt_value

    s = page.summary
    extra = [
        sid
        for sid, data in (("reproduction", page.reproduction), ("changes", page.champion_diff))
        if isinstance(data, dict)
    ]
    registered = s.get("registered")
    nodes = page.nodes()
    metrics = page.metrics()
    return render(
        "run_report.html.j2",
        page=page,
        title=f"{page.pipeline} · run {page.run_id} · toolkit run report",
        status=s.get("status", "unknown"),
        header_facts=page.header_facts(),
        section_ids=(*SECTIONS, *extra),
        dag=dag_svg(nodes) if nodes else None,
        legend=list(COLOURS),
        steps=page.step_rows(),
        errors=page.errors(),
        parameters=page.parameters(),
        contracts=page.contract_cards(),
        gate_results=gates(s.get("gates")),
        registered={k: text(registered.get(k)) for k in ("name", "version", "model_uri")}
        if registered
        else None,
        metrics=metrics,
        bars=metric_bars(metrics["bars"]) if metrics["bars"] else None,
        spark=sparkline,
        lineage=page.lineage_facts(),
        reproduction=page.reproduction_facts() if "reproduction" in extra else None,
        champion_diff=page.champion_diff if "changes" in extra else None,
        diff_fmt=fmt_value,
        diff_delta=fmt_delta,
        version=__version__,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        badge_colour=badge_colour,
    )


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
    return _render(RunPage(run_dir, target, step_links or {}, base, tuple(secret_patterns)))


def record_lineage(run_dir: Path, root: Path) -> dict[str, Any]:
    """Write ``lineage.json``: commit, environment and fingerprints of the run's data files."""
    from toolkit.core.lineage import environment, fingerprint, git_info

    plan = read_json(run_dir / "plan.json") or {}
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
        if root is not None:  # next to the step cache: the next run skips compiling
            keep_compiled_templates(root / ".toolkit" / "cache" / "templates")
        path = run_dir / "report.html"
        atomic_write_text(path, render_run_report(run_dir, secret_patterns=secret_patterns))
        return path
    except Exception as exc:
        log.warning("could not write the run report for %s: %s", run_dir, exc)
        return None
