"""``toolkit diff RUN_A RUN_B``: what changed between two runs, for reviewers."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.core.jsonable import dumps


def cmd_diff(args: argparse.Namespace) -> int:
    from toolkit.core.fsutil import atomic_write_text
    from toolkit.execute.run_diff import DiffRequest, diff
    from toolkit.reports.rundiff import render_html, render_text

    result = diff(DiffRequest(args.run_a, args.run_b, outputs=args.outputs)).to_dict()
    if args.html:
        atomic_write_text(Path(args.html), render_html(result))
    print(dumps(result, indent=2) if args.json else render_text(result))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser(
        "diff",
        help="what changed between two runs: parameters, commit, metrics, gates, contracts, "
        "outputs, environment, notebook sources",
        description="Compare two tracked runs (toolkit or MLflow run ids). Runs of different "
        "pipelines can be compared; their steps are matched by name. Exit 0 whatever differs.",
    )
    d.add_argument("run_a", help="the earlier run (the baseline)")
    d.add_argument("run_b", help="the later run")
    d.add_argument(
        "--outputs", action="store_true", help="diff notebook cell outputs too (default: sources)"
    )
    d.add_argument("--json", action="store_true", help="the diff as JSON")
    d.add_argument("--html", metavar="FILE", help="also write an offline HTML page")
    d.set_defaults(handler=cmd_diff)
