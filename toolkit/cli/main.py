"""The ``toolkit`` command: parse, build a typed request, call one core function, exit.

Heavy modules (papermill, Great Expectations, MLflow, even pandas) are imported inside the
command handlers, so ``toolkit --help`` starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import atexit
import errno
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

from toolkit import __version__
from toolkit.cli import (
    card_cmds,
    contracts_cmds,
    decisions_cmds,
    diff_cmds,
    export_cmds,
    feedback_cmds,
    init_cmds,
    monitor_cmds,
    new_cmds,
    pipeline_cmds,
    readiness_cmds,
    release_cmds,
    report_cmds,
    runs_cmds,
    schema_cmds,
    shadow_cmds,
)
from toolkit.core import interrupts
from toolkit.core.errors import ExitCode, ToolkitError

SIGPIPE_EXIT = 141

EXIT_CODES_HELP = """exit codes:
  0    ok
  1    a step failed (cell error, dead kernel, timeout)
  2    bad usage or an invalid spec
  3    a data contract was violated
  4    a gate failed
  5    a monitoring alert fired
  6    another run of the same pipeline holds the lock
  7    reproduce: metrics within tolerance, not identical
  8    reproduce: results differ from the original, or there was nothing to compare
  130  interrupted (SIGINT or SIGTERM)
  141  the reader of the output went away (`toolkit plan X | head -1`), as for git or grep
"""


def positive_int(text: str) -> int:
    """argparse type for counts such as ``--workers``: 0 or less would run nothing."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
        "--workers",
        type=positive_int,
        default=None,
        help="steps run at once (default: number of cores)",
    )
    run.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="STEP",
        help="run only this step (repeatable); inputs come from earlier runs",
    )
    run.add_argument(
        "--run-id", help="use this run id (e.g. the scheduler's); refused if it exists"
    )
    run.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="finish that run: reuse its succeeded steps, rerun the others",
    )
    run.add_argument(
        "--force",
        action="append",
        nargs="?",
        const="*",
        default=[],
        metavar="STEP",
        help="execute even if an identical earlier execution could be reused: every step, "
        "or this step (repeatable; write it after the pipeline)",
    )
    run.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    run.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    run.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    run.add_argument(
        "--log-output",
        action="store_true",
        help="stream the notebooks' own stdout/stderr into the log",
    )
    run.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="where steps run: local kernels (default) or a Dask cluster (needs --scheduler)",
    )
    run.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler, tcp://HOST:PORT")
    run.add_argument(
        "--step",
        metavar="STEP",
        help="run only this step inside the run --run-id (created if missing), reading its "
        "inputs from that run's folder; for schedulers like Airflow that run one step per task",
    )
    run.add_argument(
        "--finish",
        action="store_true",
        help="close the run --run-id whose steps ran with --step: gates, registration, summary",
    )
    run.set_defaults(handler=pipeline_cmds.cmd_run)

    plan = sub.add_parser("plan", help="show what a run would do, without running it")
    plan.add_argument("pipeline")
    plan.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE")
    plan.add_argument("--only", action="append", default=[], metavar="STEP")
    plan.add_argument("--force", action="append", nargs="?", const="*", default=[], metavar="STEP")
    plan.add_argument("--json", action="store_true")
    plan.set_defaults(handler=pipeline_cmds.cmd_plan)

    check = sub.add_parser("check", help="lint specs and notebooks")
    check.add_argument("pipelines", nargs="*", help="specs to check (default: pipelines/*.yaml)")
    readiness_cmds.add_arguments(check)
    contracts_cmds.register(sub)
    runs_cmds.register(sub)
    release_cmds.register(sub)
    card_cmds.register(sub)
    monitor_cmds.register(sub)
    decisions_cmds.register(sub)
    shadow_cmds.register(sub)
    feedback_cmds.register(sub)
    export_cmds.register(sub)
    init_cmds.register(sub)
    new_cmds.register(sub)
    report_cmds.register(sub)
    diff_cmds.register(sub)
    schema_cmds.register(sub)
    return parser


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def environment_failure(exc: BaseException) -> str | None:
    """A full disk or a damaged store, wherever it surfaced: the machine's problem, not a bug.

    Returns the message to print (exit 1), or None for any other error.
    """
    chain = _chain(exc)
    for link in chain:
        if isinstance(link, OSError) and link.errno == errno.ENOSPC:
            where = link.filename or "a file"
            return f"no space left on the device while writing {where}; free space and re-run"
    for link in chain:
        text = str(link).lower()
        if "database or disk is full" in text:
            return f"no space left on the device for the tracking store: {link}"
        if type(link).__name__ == "DatabaseError" and (
            "not a database" in text or "malformed" in text
        ):
            first_line = str(link).strip().splitlines()[0] if str(link).strip() else ""
            return (
                f"the tracking store {_store_uri()} is damaged (truncated or not an MLflow "
                f"database): {first_line}\n"
                "  hint: restore it from a backup, or point MLFLOW_TRACKING_URI at another store"
            )
    return None


def _store_uri() -> str:
    try:
        from toolkit.core.settings import load_settings

        return load_settings().tracking_uri
    except Exception:  # no project here: the variable, if any, is all there is to name
        return os.environ.get("MLFLOW_TRACKING_URI", "")


def reader_gone() -> int:
    """The reader of stdout went away (``toolkit plan X | head -1``): stop quietly, like git and
    grep do, with no message, and exit 141 (128 + SIGPIPE), the status the shell shows for them.

    stdout is pointed at /dev/null first: what is still buffered would otherwise fail again at
    the interpreter's last flush, which prints "Exception ignored ... BrokenPipeError".
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)
    return SIGPIPE_EXIT


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the single error boundary of the command line."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        if exc.code and "--json" in (argv if argv is not None else sys.argv[1:]):
            pipeline_cmds.json_error(int(exc.code), "invalid command line (see stderr)")
        return int(exc.code or 0)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:  # not a bug, even with --debug: the reader had enough
        return reader_gone()
    except Exception as exc:
        if args.debug:
            raise
        if interrupts.received():  # the SIGTERM's KeyboardInterrupt, turned into another error
            print("interrupted", file=sys.stderr)  # by the code it hit (an import, a library)
            return int(ExitCode.INTERRUPTED)
        environmental = environment_failure(exc)
        if environmental is not None:
            print(f"error: {environmental}", file=sys.stderr)
            return int(ExitCode.STEP_FAILED)
        if isinstance(exc, ToolkitError):
            print(f"error: {exc}", file=sys.stderr)
            return int(exc.exit_code)
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "  this is a bug in toolkit; re-run with --debug for the traceback and report it",
            file=sys.stderr,
        )
        return 70


def entry() -> NoReturn:
    """The ``toolkit`` command: :func:`main`, then exit without tearing the interpreter down.

    With pandas, Great Expectations and MLflow loaded, module teardown at exit takes over a
    second (measured 1.4-1.7 s on 2 cores) and does nothing a finished command needs. What the
    interpreter does first at exit still happens, in its order: worker threads are woken and
    joined, then the exit handlers run; output is flushed; only the teardown is skipped.
    """
    interrupts.install()  # before anything else: a SIGTERM from here on ends with exit 130
    # jsonschema (under nbformat) imports rfc3987-syntax when it is installed, and that compiles
    # a grammar on import: 1.3 s per command, 13 s on a busy machine. Nothing here checks IRIs.
    # This repository's lock leaves it out; an install from the wheel pulls it in (jupyterlab ->
    # jsonschema[format-nongpl]), so the command declines it for its own process.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    try:
        code = main()
    except BrokenPipeError:  # outside main's own boundary: `toolkit --help | head -1`
        code = reader_gone()
    except KeyboardInterrupt:  # outside main's own boundary (parsing, its last lines)
        print("interrupted", file=sys.stderr)
        code = int(ExitCode.INTERRUPTED)
    except BaseException:
        # A SIGTERM during a C extension's import: pydantic-core's init saw the KeyboardInterrupt
        # as a failed import of `datetime` and panicked (pyo3's PanicException is no Exception).
        if not interrupts.received():
            raise
        print("interrupted", file=sys.stderr)
        code = int(ExitCode.INTERRUPTED)
    interrupts.stop_raising()
    if interrupts.received() and code != int(ExitCode.INTERRUPTED):
        print("interrupted", file=sys.stderr)  # noted during clean-up: the exit code says so
    try:
        threading._shutdown()  # type: ignore[attr-defined]  # joins non-daemon threads
        atexit._run_exitfuncs()
        logging.shutdown()
        try:  # output that fit in the buffer meets a closed pipe only here
            sys.stdout.flush()
        except BrokenPipeError:
            code = reader_gone()
        sys.stderr.flush()
    except Exception:  # a private API that moved, or a closed pipe: exit the normal way
        sys.exit(int(ExitCode.INTERRUPTED) if interrupts.received() else code)
    os._exit(int(ExitCode.INTERRUPTED) if interrupts.received() else code)
