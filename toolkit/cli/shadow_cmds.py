"""``toolkit shadow start|stop|report``: a candidate scoring production beside the champion."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.core.jsonable import dumps


def cmd_start(args: argparse.Namespace) -> int:
    from toolkit.commands.shadow import start_shadow

    state = start_shadow(args.model, args.version)
    if args.json:
        print(dumps(state.to_dict(), indent=2))
    else:
        print(f"{state.model} v{state.version} now shadows the champion (since {state.since})")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from toolkit.commands.shadow import stop_shadow

    state = stop_shadow(args.model)
    if args.json:
        print(dumps(state.to_dict(), indent=2))
    else:
        print(f"{state.model} v{state.version} no longer shadows the champion")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from toolkit.commands.shadow import ReportRequest, shadow_report

    html = Path(args.html) if args.html else None
    request = ReportRequest(args.model, args.since, args.version, html, track=not args.no_tracking)
    outcome = shadow_report(request)
    if args.json:
        data = {**outcome.report.to_dict(), "page": str(outcome.page)}
        print(dumps({**data, "mlflow_run_id": outcome.mlflow_run_id}, indent=2))
    else:
        print("\n".join(outcome.report.summary_lines()))
        print(f"page: {outcome.page}")
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from toolkit.commands.shadow import bundle_shadow

    log = Path(args.decision_log) if args.decision_log else None
    uri = bundle_shadow(args.model, log)
    if args.json:
        print(dumps({"model_uri": uri}, indent=2))
    else:
        print(f"release bundle: {uri}\nserve it: mlflow models serve -m {uri} --env-manager local")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    shadow = sub.add_parser("shadow", help="score production beside the champion with a candidate")
    verbs = shadow.add_subparsers(dest="shadow_command", metavar="ACTION", required=True)
    start = verbs.add_parser("start", help="make a version shadow the champion")
    start.add_argument("model")
    start.add_argument("version", help="a version number or an alias (candidate)")
    start.add_argument("--json", action="store_true")
    start.set_defaults(handler=cmd_start)
    stop = verbs.add_parser("stop", help="stop shadowing the champion")
    stop.add_argument("model")
    stop.add_argument("--json", action="store_true")
    stop.set_defaults(handler=cmd_stop)
    report = verbs.add_parser("report", help="champion vs shadow on the batches both scored")
    report.add_argument("model")
    report.add_argument("--since", metavar="ISO", help="only batches scored from then on")
    report.add_argument("--version", help="the shadow version (default: the latest shadowed)")
    report.add_argument("--html", metavar="FILE", help="write the page here")
    report.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    report.add_argument("--json", action="store_true")
    report.set_defaults(handler=cmd_report)
    bundle = verbs.add_parser(
        "bundle", help="log champion + shadow as one model for mlflow models serve"
    )
    bundle.add_argument("model")
    bundle.add_argument(
        "--decision-log",
        metavar="FILE",
        help="where served shadow decisions go, JSON Lines (default: runs/shadow/MODEL.decisions"
        ".jsonl; TOOLKIT_DECISION_LOG overrides it where the model is served)",
    )
    bundle.add_argument("--json", action="store_true")
    bundle.set_defaults(handler=cmd_bundle)
