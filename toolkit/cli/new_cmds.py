"""``toolkit new step``: scaffold a notebook step wired into a pipeline."""

from __future__ import annotations

import argparse
import json


def cmd_new_step(args: argparse.Namespace) -> int:
    from toolkit.scaffold import NewStepRequest, new_step

    result = new_step(
        NewStepRequest(name=args.name, pipeline=args.pipeline, after=args.after, format=args.format)
    )
    if args.json:
        print(
            json.dumps(
                {
                    "step": result.step,
                    "pipeline": result.pipeline,
                    "spec": str(result.spec_path),
                    "notebook": str(result.notebook),
                    "after": result.after,
                    "inputs": result.inputs,
                    "outputs": result.outputs,
                },
                indent=2,
            )
        )
    else:
        print(result.to_text())
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    new = sub.add_parser("new", help="scaffold new project pieces (a notebook step)")
    nsub = new.add_subparsers(dest="new_command", metavar="WHAT", required=True)
    step = nsub.add_parser(
        "step",
        help="create notebooks/NAME.ipynb and add it as a step to a pipeline spec",
        description="Create notebooks/NAME.ipynb with a tagged parameters cell wired to the "
        "outputs of the step it follows, and add the step to the spec (comments and order kept).",
    )
    step.add_argument("name", help="the step's name (also the notebook's file name)")
    step.add_argument(
        "--pipeline",
        metavar="P",
        help="spec path or pipeline name (default: the project's only pipeline)",
    )
    step.add_argument(
        "--after",
        metavar="STEP",
        help="the step whose outputs become the new step's inputs (default: the last step)",
    )
    step.add_argument(
        "--format",
        choices=("ipynb", "py"),
        default="ipynb",
        help="py: a jupytext percent script (notebooks/NAME.py), readable in code review",
    )
    step.add_argument("--json", action="store_true", help="print what was created as JSON")
    step.set_defaults(handler=cmd_new_step)
