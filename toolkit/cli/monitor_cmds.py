"""``toolkit monitor MODEL --batch FILE``: drift, rates and alerts for one batch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toolkit.core.jsonable import dumps


def cmd_monitor(args: argparse.Namespace) -> int:
    from toolkit.commands.monitor import MonitorRequest, run_monitor

    outcome = run_monitor(
        MonitorRequest(
            model=args.model,
            batch=Path(args.batch),
            version=args.version,
            webhooks=tuple(args.webhook),
            commands=tuple(args.alert_command),
        )
    )
    result = outcome.result
    if args.json:
        data = {
            **result.to_dict(),
            "hooks": [h.to_dict() for h in outcome.hooks],
            "report": str(outcome.report),
            "mlflow_run_id": outcome.mlflow_run_id,
        }
        data.pop("html", None)
        print(dumps(data, indent=2))
    else:
        print("\n".join(result.summary_lines()))
        print(f"drift report: {outcome.report}")
    for hook in outcome.hooks:
        if not hook.ok:
            print(f"warning: alert hook {hook.hook} failed: {hook.detail}", file=sys.stderr)
    from toolkit.cards.publish import refresh

    refresh(args.model, result.version, "monitored")
    # Raised last, so a failed hook or a logging problem can never hide the alert (exit 5).
    result.raise_for_alert(report=str(outcome.report))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    monitor = sub.add_parser("monitor", help="compare a batch with the model's training reference")
    monitor.add_argument("model")
    monitor.add_argument(
        "--batch", required=True, help="raw records (CSV/Parquet) or the outputs of a scoring run"
    )
    monitor.add_argument("--version", help="model version or alias (default: champion)")
    monitor.add_argument(
        "--webhook",
        action="append",
        default=[],
        metavar="URL",
        help="also POST the alert as JSON here (repeatable)",
    )
    monitor.add_argument(
        "--alert-command",
        action="append",
        default=[],
        metavar="CMD",
        help="also run this shell command on an alert (repeatable)",
    )
    monitor.add_argument("--json", action="store_true")
    monitor.set_defaults(handler=cmd_monitor)
