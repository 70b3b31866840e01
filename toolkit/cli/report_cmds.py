"""``toolkit report RUN_ID``: (re)build the HTML report of a run from its run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.core.errors import UsageError, did_you_mean


def find_run(runs_dir: Path, run_id: str, pipeline: str | None = None) -> Path:
    """The folder of ``run_id`` under ``runs_dir/<pipeline>/``, any pipeline when not given."""
    pipelines = [runs_dir / pipeline] if pipeline else sorted(runs_dir.glob("*/"))
    known: dict[str, list[Path]] = {p.name: [] for p in pipelines}
    for folder in pipelines:
        if folder.is_dir():
            known[folder.name] = [r for r in folder.iterdir() if r.is_dir()]
    matches = [r for runs in known.values() for r in runs if r.name == run_id]
    if len(matches) > 1:
        names = ", ".join(m.parent.name for m in matches)
        raise UsageError(
            f"run {run_id!r} exists in several pipelines ({names})",
            hint="pick one with --pipeline NAME",
        )
    if matches:
        return matches[0]
    where = f"pipeline {pipeline!r}" if pipeline else "any pipeline"
    hint = did_you_mean(run_id, [r.name for runs in known.values() for r in runs])
    if pipeline and not (runs_dir / pipeline).is_dir():
        hint = did_you_mean(pipeline, [p.name for p in runs_dir.glob("*/")]) or hint
    raise UsageError(
        f"no run {run_id!r} of {where} in {runs_dir}",
        hint=hint or f"run folders live in {runs_dir}/<pipeline>/<run id>",
    )


def cmd_report(args: argparse.Namespace) -> int:
    from toolkit.core.fsutil import atomic_write_text
    from toolkit.core.settings import load_settings
    from toolkit.reports.run_report import render_run_report

    settings = load_settings()
    run_dir = find_run(settings.runs_dir, args.run_id, args.pipeline)
    if not (run_dir / "summary.json").exists() and not (run_dir / "plan.json").exists():
        raise UsageError(f"{run_dir} has neither summary.json nor plan.json: not a run folder")
    out = Path(args.output).resolve() if args.output else run_dir / "report.html"
    page = render_run_report(run_dir, base=out.parent, secret_patterns=settings.secret_patterns)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page)
    print(out)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rep = sub.add_parser(
        "report",
        help="write the HTML report of a run (DAG, contracts, gates, metrics, lineage)",
    )
    rep.add_argument("run_id", help="toolkit run id (the run folder's name)")
    rep.add_argument(
        "-o", "--output", metavar="FILE", help="where to write (default: the run folder)"
    )
    rep.add_argument("--pipeline", metavar="NAME", help="the run's pipeline (default: any)")
    rep.set_defaults(handler=cmd_report)
