"""``toolkit runs list|show`` and ``toolkit ui``: looking at tracked runs."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.core.jsonable import dumps

if TYPE_CHECKING:
    from toolkit.tracking.client import Tracker


def _tracker() -> Tracker:
    from toolkit.core.settings import load_settings
    from toolkit.tracking.client import Tracker

    settings = load_settings()
    return Tracker(settings.tracking_uri, artifacts_dir=settings.artifacts_dir)


def _metrics(metrics: dict[str, float], limit: int = 4) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in list(sorted(metrics.items()))[:limit])


def _secs(value: float | None) -> str:
    return f"{value:7.1f}s" if value is not None else "      -"


def _dead(tracker: Any) -> set[str]:
    """Toolkit run ids of runs whose process died without closing them (see runs repair)."""
    from toolkit.core.settings import load_settings
    from toolkit.execute.recovery import find_interrupted

    return {f.run_id for f in find_interrupted(load_settings(), tracker)}


def _list_without_mlflow(args: argparse.Namespace) -> tuple[list[Any], set[str]] | None:
    """The runs and dead runs read straight from a local SQLite store (no MLflow import, which
    costs seconds); None when the store must be read through MLflow (see sqlite_reader)."""
    from toolkit.core.settings import load_settings
    from toolkit.tracking.sqlite_reader import ReaderUnavailable, open_reader

    settings = load_settings()
    reader = open_reader(settings.tracking_uri)
    if reader is None:
        return None
    with reader:
        try:
            runs = reader.list_runs(args.pipeline, max_results=args.limit)
            if not _may_have_died(settings.runs_dir, reader):
                return runs, set()
            from toolkit.execute.recovery import find_interrupted

            return runs, {f.run_id for f in find_interrupted(settings, reader)}
        except ReaderUnavailable:
            return None


def _may_have_died(runs_dir: Path, reader: Any) -> bool:
    """False only when ``find_interrupted`` would surely find nothing, so the common case skips
    importing ``toolkit.execute`` (0.6 s of CPU). It tests what every dead run has: a run folder
    with a plan but no summary, or a ``RUNNING`` pipeline run among the 200 it looks at."""
    if any(not (p.parent / "summary.json").exists() for p in runs_dir.glob("*/*/plan.json")):
        return True
    return any(r.status == "RUNNING" for r in reader.list_runs(None, max_results=200))


def cmd_list(args: argparse.Namespace) -> int:
    found = _list_without_mlflow(args)
    if found is None:
        tracker = _tracker()
        found = tracker.list_runs(args.pipeline, max_results=args.limit), _dead(tracker)
    runs, dead = found
    if args.json:
        rows = [
            {**r.to_dict(), "interrupted": (r.toolkit_run_id or r.run_id) in dead} for r in runs
        ]
        print(dumps(rows, indent=2))
        return 0
    if not runs:
        print("no runs yet")
    for r in runs:
        when = r.start_time.strftime("%Y-%m-%d %H:%M") if r.start_time else "?"
        status = "DIED" if (r.toolkit_run_id or r.run_id) in dead else r.status
        print(
            f"{r.toolkit_run_id or r.run_id:<24} {r.pipeline or '':<12} {status:<9} "
            f"{when}  {_secs(r.duration_s)}  {r.ui_url or r.run_id}"
        )
    if dead:
        print(
            f"{len(dead)} run(s) died without cleaning up ({', '.join(sorted(dead))}): "
            "`toolkit runs repair` closes them as interrupted",
            file=sys.stderr,
        )
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    """Close runs whose process died: summary ``interrupted``, MLflow runs ``KILLED``."""
    from toolkit.core.settings import load_settings
    from toolkit.execute.recovery import find_interrupted, repair

    settings = load_settings()
    tracker = None if args.no_tracking else _tracker()
    repaired = [repair(settings, f, tracker) for f in find_interrupted(settings, tracker)]
    if args.json:
        print(dumps([f.to_dict() for f in repaired], indent=2))
        return 0
    if not repaired:
        print("nothing to repair: no run died without cleaning up")
    for f in repaired:
        where = f" ({f.run_dir})" if f.run_dir else ""
        print(
            f"repaired {f.pipeline} run {f.run_id}{where}: summary 'interrupted', "
            f"{len(f.mlflow_runs)} MLflow run(s) closed KILLED; "
            f"finish it with: toolkit run SPEC --resume {f.run_id}"
        )
    return 0


def _local_summary(run_id: str) -> dict[str, Any] | None:
    """The summary a run left in its folder: a run that reused every step opens no MLflow
    run of its own, yet ``runs show`` must still explain it."""
    from toolkit.core.settings import load_settings

    if not run_id or run_id.startswith(".") or "/" in run_id or "\\" in run_id:
        return None
    for path in sorted(load_settings().runs_dir.glob(f"*/{run_id}/summary.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return data
    return None


def _show_local(summary: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(dumps(summary, indent=2))
        return 0
    steps = summary.get("steps", [])
    print(
        f"run {summary.get('run_id')} of {summary.get('pipeline')}: {summary.get('status')} "
        f"in {_secs(summary.get('duration')).strip()} (not tracked in MLflow: nothing executed)"
    )
    width = max((len(s.get("name", "")) for s in steps), default=4)
    for s in steps:
        print(
            f"  {s.get('name', ''):<{width}}  {s.get('status', ''):<9} {_secs(s.get('duration'))}"
            f"  {_metrics(s.get('metrics') or {})}  {s.get('reason') or ''}".rstrip()
        )
    print(f"  run folder: {summary.get('run_dir')}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from toolkit.core.errors import UsageError

    try:
        run = _tracker().get_run(args.run_id)
    except UsageError:
        summary = _local_summary(args.run_id)
        if summary is None:
            raise
        return _show_local(summary, args.json)
    if args.json:
        print(dumps(run.to_dict(), indent=2))
        return 0
    tags: dict[str, Any] = run.tags
    print(
        f"run {run.toolkit_run_id} of {run.pipeline}: {run.status} in {_secs(run.duration_s).strip()}"
    )
    print(
        f"  mlflow run {run.run_id}  commit {tags.get('git.commit', '?')[:12]}"
        f"{' (dirty)' if tags.get('git.dirty') == 'true' else ''}  by {tags.get('toolkit.triggered_by', '?')}"
    )
    if run.ui_url:
        print(f"  {run.ui_url}")
    width = max((len(s.step) for s in run.steps), default=4)
    for s in run.steps:
        print(f"  {s.step:<{width}}  {s.status:<9} {_secs(s.duration_s)}  {_metrics(s.metrics)}")
        print(f"  {'':<{width}}  artifacts: {s.artifact_uri}/notebook/{s.step}.html")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from toolkit.core.settings import load_settings

    settings = load_settings()
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        print(f"the tracking server is already a UI: {uri}")
        return 0
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        "1",
    ]
    print(f"MLflow UI on http://{args.host}:{args.port} (backend {uri}); Ctrl-C to stop")
    return subprocess.call(cmd, env=env)


def cmd_reproduce(args: argparse.Namespace) -> int:
    from toolkit.cli.progress import ProgressPrinter
    from toolkit.commands.reproduce import ReproduceRequest, reproduce

    request = ReproduceRequest(
        run=args.run_id,
        pipeline=args.pipeline,
        allow_dirty=args.allow_dirty,
        allow_changed_inputs=args.allow_changed_inputs,
        strict_env=args.strict_env,
        rtol=args.rtol,
        atol=args.atol,
        workers=args.workers,
    )
    report = reproduce(request, None if args.json else ProgressPrinter())
    print(dumps(report.to_dict(), indent=2) if args.json else report.to_text())
    return report.exit_code


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = sub.add_parser("runs", help="tracked pipeline runs")
    rsub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    lst = rsub.add_parser("list", help="recent pipeline runs, newest first")
    lst.add_argument("pipeline", nargs="?")
    lst.add_argument("-n", "--limit", type=int, default=20)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=cmd_list)
    fix = rsub.add_parser(
        "repair",
        help="close runs whose process died (kill -9, OOM): summary 'interrupted', "
        "MLflow runs KILLED",
    )
    fix.add_argument("--json", action="store_true")
    fix.add_argument("--no-tracking", action="store_true", help="repair run folders only")
    fix.set_defaults(handler=cmd_repair)
    show = rsub.add_parser("show", help="one run: steps, status, durations, metrics, links")
    show.add_argument("run_id", help="toolkit run id or MLflow run id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)
    rep = sub.add_parser(
        "reproduce",
        help="re-run a past run from its commit in a temporary worktree and compare "
        "(exit 0 identical or the failure reproduced, 7 within tolerance, 8 differing or "
        "nothing to compare, 2 cannot reproduce)",
    )
    rep.add_argument("run_id", help="toolkit run id or MLflow run id")
    rep.add_argument("--pipeline", help="refuse a run of any other pipeline")
    rep.add_argument(
        "--allow-dirty",
        action="store_true",
        help="reproduce a run made from a dirty tree from its commit anyway",
    )
    rep.add_argument(
        "--allow-changed-inputs",
        action="store_true",
        help="run even if inputs outside the commit changed since the original",
    )
    rep.add_argument(
        "--strict-env",
        action="store_true",
        help="a different environment (Python, packages, lock) fails the verdict",
    )
    rep.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance for metrics")
    rep.add_argument("--atol", type=float, default=1e-9, help="absolute tolerance for metrics")
    rep.add_argument("--workers", type=int, default=None)
    rep.add_argument("--json", action="store_true")
    rep.set_defaults(handler=cmd_reproduce)
    ui = sub.add_parser("ui", help="start the MLflow UI on the configured backend")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(handler=cmd_ui)
