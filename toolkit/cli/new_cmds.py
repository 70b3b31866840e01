"""``toolkit new step`` and ``toolkit new pipeline``: scaffold a step, draft a spec from notebooks."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.core.jsonable import dumps


def cmd_new_step(args: argparse.Namespace) -> int:
    from toolkit.commands.new_step import NewStepRequest, new_step

    result = new_step(
        NewStepRequest(name=args.name, pipeline=args.pipeline, after=args.after, format=args.format)
    )
    if args.json:
        print(
            dumps(
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


def cmd_new_pipeline(args: argparse.Namespace) -> int:
    from toolkit.commands.new_pipeline import NewPipelineRequest, new_pipeline

    notebooks = tuple(Path(p) for p in args.notebooks)
    result = new_pipeline(NewPipelineRequest(name=args.name, notebooks=notebooks))
    print(dumps(result.to_dict(), indent=2) if args.json else result.to_text())
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    new = sub.add_parser(
        "new", help="scaffold project pieces: a notebook step, a pipeline from notebooks"
    )
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

    pipeline = nsub.add_parser(
        "pipeline",
        help="draft pipelines/NAME.yaml from existing notebooks, in the order given",
        description="Draft pipelines/NAME.yaml with one step per notebook, in the order given. "
        "Parameters (from each notebook's cell tagged 'parameters') whose values are file paths "
        "become inputs or outputs, wired where one notebook writes a file the next reads. It "
        "prints every guess and what to check; an existing spec is never overwritten (exit 2).",
    )
    pipeline.add_argument("name", help="the pipeline's name (also the spec's file name)")
    pipeline.add_argument(
        "--notebooks",
        nargs="+",
        required=True,
        metavar="NOTEBOOK",
        help="the notebooks, in run order (paths relative to the current folder)",
    )
    pipeline.add_argument("--json", action="store_true", help="print the draft as JSON")
    pipeline.set_defaults(handler=cmd_new_pipeline)
