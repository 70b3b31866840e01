"""The ``toolkit`` command: parse, build a typed request, call one core function, exit.

Heavy modules (papermill, Great Expectations, MLflow, even pandas) are imported inside the
command handlers, so ``toolkit --help`` starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from toolkit import __version__
from toolkit.errors import ExitCode, ToolkitError

EXIT_CODES_HELP = """exit codes:
  0    ok
  1    a step failed (cell error, dead kernel, timeout)
  2    bad usage or an invalid spec
  3    a data contract was violated
  4    a gate failed
  5    a monitoring alert fired
  6    another run of the same pipeline holds the lock
  130  interrupted (SIGINT or SIGTERM)
"""


class ProgressPrinter:
    """Streams run events to stderr: symbols and colour on a terminal, plain lines in a log."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.monotonic()

    def _paint(self, text: str, colour: str) -> str:
        codes = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "cyan": "36"}
        return f"\x1b[{codes[colour]}m{text}\x1b[0m" if self.tty else text

    def __call__(self, event: Any) -> None:
        stamp = time.strftime("%H:%M:%S")
        elapsed = f"+{time.monotonic() - self.t0:5.1f}s"
        if event.kind == "run_started":
            line = f"run {event.message}"
        elif event.kind == "step_started":
            line = self._paint(f"> {event.step} started", "cyan")
        elif event.kind == "step_retry":
            line = self._paint(f"~ {event.step} failed, retrying: {event.message}", "yellow")
        elif event.kind == "step_finished":
            colour = {"succeeded": "green", "failed": "red"}.get(event.status or "", "yellow")
            mark = {"succeeded": "ok", "failed": "FAILED"}.get(event.status or "", event.status)
            detail = f": {event.message}" if event.message else ""
            line = self._paint(f"{mark} {event.step}{detail}", colour)
        elif event.kind == "run_finished":
            line = f"run {event.status}"
        else:
            line = f"{event.kind} {event.step or ''} {event.message}".strip()
        prefix = self._paint(f"{stamp} {elapsed}", "dim")
        print(f"{prefix} {line}", file=self.stream, flush=True)


def _cmd_run(args: argparse.Namespace) -> int:
    from toolkit.plan import parse_overrides
    from toolkit.report import to_json, to_text
    from toolkit.runner import RunRequest, run_pipeline

    request = RunRequest(
        spec_path=Path(args.pipeline),
        overrides=parse_overrides(args.param),
        workers=args.workers,
        only=tuple(args.only),
        run_id=args.run_id,
        stream_output=args.log_output,
    )
    printer = None if args.quiet else ProgressPrinter()
    report = run_pipeline(request, on_event=printer)
    print(to_json(report) if args.json else to_text(report))
    return int(report.exit_code)


def _cmd_plan(args: argparse.Namespace) -> int:
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


def _cmd_check(args: argparse.Namespace) -> int:
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="toolkit",
        description="Run notebooks as reproducible, gated, tracked pipeline steps.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"toolkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run",
        help="run a pipeline",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("pipeline", help="path to a pipeline spec (pipelines/NAME.yaml)")
    run.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a parameter; STEP.KEY=VALUE for one step (repeatable)",
    )
    run.add_argument(
        "--workers", type=int, default=None, help="steps run at once (default: number of cores)"
    )
    run.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="STEP",
        help="run only this step (repeatable); inputs come from earlier runs",
    )
    run.add_argument("--run-id", help="use this run id (e.g. the scheduler's)")
    run.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    run.add_argument(
        "--log-output",
        action="store_true",
        help="stream the notebooks' own stdout/stderr into the log",
    )
    run.set_defaults(handler=_cmd_run)

    plan = sub.add_parser("plan", help="show what a run would do, without running it")
    plan.add_argument("pipeline")
    plan.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    plan.add_argument("--only", action="append", default=[], metavar="STEP")
    plan.add_argument("--json", action="store_true")
    plan.set_defaults(handler=_cmd_plan)

    check = sub.add_parser("check", help="lint specs and notebooks")
    check.add_argument("pipelines", nargs="*", help="specs to check (default: pipelines/*.yaml)")
    check.set_defaults(handler=_cmd_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the single error boundary of the command line."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ToolkitError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "  this is a bug in toolkit; re-run with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return 70
