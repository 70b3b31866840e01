"""``toolkit run``, ``plan`` and ``check``: the pipeline commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from toolkit.cli.progress import ProgressPrinter
from toolkit.errors import ExitCode, ToolkitError


def cmd_run(args: argparse.Namespace) -> int:
    from toolkit.plan import parse_overrides
    from toolkit.report import to_json, to_text
    from toolkit.runner import RunRequest, run_pipeline

    request = RunRequest(
        spec_path=Path(args.pipeline),
        overrides=parse_overrides(args.param),
        workers=args.workers,
        only=tuple(args.only),
        run_id=args.run_id,
        resume=args.resume,
        stream_output=args.log_output,
        track=not args.no_tracking,
    )
    printer = None if args.quiet else ProgressPrinter()
    report = run_pipeline(request, on_event=printer)
    print(to_json(report) if args.json else to_text(report))
    return int(report.exit_code)


def cmd_plan(args: argparse.Namespace) -> int:
    from toolkit.plan import parse_overrides
    from toolkit.runner import RunRequest, prepare

    request = RunRequest(
        spec_path=Path(args.pipeline), overrides=parse_overrides(args.param), only=tuple(args.only)
    )
    _, plan = prepare(request, run_id="<new-run>")
    data = plan.to_dict()
    if args.json:
        print(json.dumps(data, indent=2, default=str))
        return 0
    print(f"pipeline {plan.pipeline}: {len(plan.steps)} steps (dry run, nothing executed)")
    for i, step in enumerate(data["steps"], 1):
        after = f" (after {', '.join(step['upstream'])})" if step["upstream"] else ""
        print(f"{i}. {step['name']}{after}\n   notebook: {step['notebook']}")
        for key, value in step["parameters"].items():
            print(f"   param  {key} = {value!r}")
        for key, value in step["inputs"].items():
            print(f"   input  {key} <- {value}")
        for key, value in step["outputs"].items():
            print(f"   output {key} -> {value}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from toolkit.check import check_project
    from toolkit.settings import load_settings
    from toolkit.spec import discover_specs

    specs = [Path(p) for p in args.pipelines]
    if not specs:
        specs = discover_specs(load_settings().root / "pipelines")
        if not specs:
            raise ToolkitError("no pipelines found: pass a spec, or add pipelines/*.yaml")
    problems = check_project(specs)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {len(specs)} pipeline(s)", file=sys.stderr)
        return int(ExitCode.USAGE)
    print(f"ok: {len(specs)} pipeline(s) checked")
    return 0
