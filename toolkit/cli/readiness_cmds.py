"""``toolkit check --readiness``: the production controls of each pipeline that releases a model
(``toolkit check`` without the flag lints, in :mod:`toolkit.cli.pipeline_cmds`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.cli import pipeline_cmds
from toolkit.core.errors import ExitCode, ToolkitError
from toolkit.core.jsonable import dumps


def cmd_check(args: argparse.Namespace) -> int:
    if not args.readiness:
        return pipeline_cmds.cmd_check(args)
    from toolkit.commands.readiness import readiness_of
    from toolkit.core.settings import load_settings
    from toolkit.specs.load import discover_specs

    specs = [Path(p) for p in args.pipelines]
    if not specs:
        specs = discover_specs(load_settings().root / "pipelines")
        if not specs:
            raise ToolkitError("no pipelines found: pass a spec, or add pipelines/*.yaml")
    reports = [readiness_of(path) for path in specs]
    if args.json:
        print(dumps([r.to_dict() for r in reports], indent=2))
    else:
        for report in reports:
            print(report.to_text() if report.applicable else report.summary_line())
    return int(ExitCode.GATE) if any(not r.ready for r in reports) else 0


def add_arguments(check: argparse.ArgumentParser) -> None:
    check.add_argument(
        "--readiness",
        action="store_true",
        help="score each pipeline that releases a model against the production controls "
        "(exit 4 when one its readiness level requires is missing)",
    )
    check.add_argument("--json", action="store_true", help="with --readiness: JSON")
    check.set_defaults(handler=cmd_check)
