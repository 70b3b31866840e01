"""``toolkit run``, ``plan`` and ``check``: the pipeline commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.cli.progress import ProgressPrinter
from toolkit.core.errors import ExitCode, ToolkitError
from toolkit.core.jsonable import dumps

if TYPE_CHECKING:
    from toolkit.execute import RunRequest


def json_error(exit_code: int, message: str) -> None:
    """The JSON object ``run --json`` prints when there is no run report to print."""
    print(dumps({"status": "error", "exit_code": exit_code, "error": message}))


def _quiet_third_party() -> None:
    """Keep MLflow's and papermill's INFO lines (table creation, "Passed unknown parameter",
    "no cell tagged parameters") off stderr; ``--log-output`` and ``--debug`` keep them."""
    import logging
    import os

    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("papermill").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def cmd_run(args: argparse.Namespace) -> int:
    if not (args.log_output or getattr(args, "debug", False)):
        _quiet_third_party()
    if not args.json:
        return _cmd_run(args)
    try:
        return _cmd_run(args)
    except ToolkitError as exc:
        json_error(int(exc.exit_code), str(exc))
        raise  # the error boundary still prints it for people, on stderr
    except Exception as exc:
        json_error(70, f"internal error: {type(exc).__name__}: {exc}")
        raise


def _cmd_run(args: argparse.Namespace) -> int:
    from toolkit.execute import RunRequest, run_pipeline
    from toolkit.plan.parameters import parse_overrides
    from toolkit.reports.summary import to_json, to_text

    request = RunRequest(
        spec_path=Path(args.pipeline),
        overrides=parse_overrides(args.param),
        workers=args.workers,
        only=tuple(args.only),
        run_id=args.run_id,
        resume=args.resume,
        stream_output=args.log_output,
        executor=args.executor,
        scheduler=args.scheduler,
        track=not args.no_tracking,
        force=tuple(args.force),
    )
    printer = None if args.quiet else ProgressPrinter()
    if args.step or args.finish:
        return _run_shared(args, request, printer)
    report = run_pipeline(request, on_event=printer)
    print(to_json(report) if args.json else to_text(report))
    return int(report.exit_code)


def _run_shared(
    args: argparse.Namespace, request: RunRequest, printer: ProgressPrinter | None
) -> int:
    """``--step NAME`` / ``--finish``: one task of a run shared by several processes."""
    from dataclasses import replace

    from toolkit.execute.shared_run import finish_run, run_one_step
    from toolkit.reports.summary import to_json, to_text

    if args.step and args.finish:
        raise ToolkitError("--step and --finish are separate tasks: pass one of them")
    if args.finish:
        report = finish_run(request, printer)
        print(to_json(report) if args.json else to_text(report))
        return int(report.exit_code)
    report = run_one_step(request, args.step, printer)
    print(to_json(report) if args.json else to_text(report))
    step = report.step(args.step)
    return int(replace(report, steps=(step,), status=step.status, gates=None).exit_code)


def cmd_plan(args: argparse.Namespace) -> int:
    from toolkit.execute import RunRequest, prepare
    from toolkit.execute.cache import preview
    from toolkit.execute.orchestrator import step_cache
    from toolkit.plan.parameters import parse_overrides

    request = RunRequest(
        spec_path=Path(args.pipeline),
        overrides=parse_overrides(args.param),
        only=tuple(args.only),
        force=tuple(args.force),
    )
    settings, plan = prepare(request, run_id="<new-run>")
    decisions = preview(step_cache(settings, plan, request.force), plan)
    data = plan.to_dict()
    for step in data["steps"]:
        decision = decisions[step["name"]]
        step["cache"] = {"reuse": decision.hit, "reason": decision.reason}
    if args.json:
        print(dumps(data, indent=2))
        return 0
    print(f"pipeline {plan.pipeline}: {len(plan.steps)} steps (dry run, nothing executed)")
    for i, step in enumerate(data["steps"], 1):
        after = f" (after {', '.join(step['upstream'])})" if step["upstream"] else ""
        cache = step["cache"]
        verdict = f"reuse ({cache['reason']})" if cache["reuse"] else f"run ({cache['reason']})"
        print(f"{i}. {step['name']}{after}: {verdict}\n   notebook: {step['notebook']}")
        for key, value in step["parameters"].items():
            print(f"   param  {key} = {value!r}")
        for key, value in step["inputs"].items():
            print(f"   input  {key} <- {value}")
        for key, value in step["outputs"].items():
            print(f"   output {key} -> {value}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from toolkit.commands.check import check_project
    from toolkit.core.settings import load_settings
    from toolkit.specs.load import discover_specs

    specs = [Path(p) for p in args.pipelines]
    if not specs:
        specs = discover_specs(load_settings().root / "pipelines")
        if not specs:
            raise ToolkitError("no pipelines found: pass a spec, or add pipelines/*.yaml")
    found = check_project(specs)
    for problem in found:
        print(f"{'warning' if problem.warning else 'error'}: {problem}", file=sys.stderr)
    problems = [p for p in found if not p.warning]
    if problems:
        print(f"{len(problems)} problem(s) in {len(specs)} pipeline(s)", file=sys.stderr)
        return int(ExitCode.USAGE)
    print(f"ok: {len(specs)} pipeline(s) checked")
    return 0
