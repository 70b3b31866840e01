"""``toolkit feedback MODEL --labels FILE --key COLUMN``: live metrics once outcomes arrive."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from toolkit.core.jsonable import dumps


def cmd_feedback(args: argparse.Namespace) -> int:
    from toolkit.commands.feedback import FeedbackRequest, run_feedback
    from toolkit.core.errors import MonitorAlert

    outcome = run_feedback(
        FeedbackRequest(
            model=args.model, labels=Path(args.labels), key=args.key, label=args.label,
            positive=args.positive, webhooks=tuple(args.webhook),
            commands=tuple(args.alert_command), track=not args.no_tracking,
        )
    )  # fmt: skip
    result = outcome.outcomes
    if args.json:
        data = {**result.to_dict(), "hooks": [h.to_dict() for h in outcome.hooks]}
        print(dumps({**data, "mlflow_run_id": outcome.mlflow_run_id}, indent=2))
    else:
        print("\n".join(result.summary_lines()))
    for hook in outcome.hooks:
        if not hook.ok:
            print(f"warning: alert hook {hook.hook} failed: {hook.detail}", file=sys.stderr)
    if outcome.mlflow_run_id:  # the cards read the logged metrics; untracked, nothing is new
        from toolkit.cards.publish import refresh

        for version in result.versions:
            refresh(args.model, version.version, "feedback")  # warns, never fails the command
    if result.breaches:  # last, so a failed hook or a logging problem never hides it
        raise MonitorAlert(
            f"{result.model}: {len(result.breaches)} live metric(s) below the floor: "
            + "; ".join(result.breaches[:3]),
            hint="floors are the spec's feedback: section",
        )
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    feedback = sub.add_parser(
        "feedback", help="join true outcomes to earlier decisions: each version's live metrics"
    )
    feedback.add_argument("model")
    feedback.add_argument("--labels", required=True, metavar="FILE", help="CSV/Parquet outcomes")
    feedback.add_argument(
        "--key", required=True, metavar="COLUMN", help="record id column, or input_hash"
    )
    feedback.add_argument(
        "--label", metavar="COLUMN", help="the outcome column (default: the other)"
    )
    feedback.add_argument("--positive", metavar="LABEL", help="the label probabilities are for")
    feedback.add_argument("--webhook", action="append", default=[], metavar="URL")
    feedback.add_argument("--alert-command", action="append", default=[], metavar="CMD")
    feedback.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    feedback.add_argument("--json", action="store_true")
    feedback.set_defaults(handler=cmd_feedback)
