"""``toolkit schema``: the JSON Schema of a pipeline spec, for editors and validators."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_schema(args: argparse.Namespace) -> int:
    from toolkit.specs.schema import schema_text, write_schema

    if args.output is None:
        sys.stdout.write(schema_text())
        return 0
    path = write_schema(Path(args.output))
    print(f"wrote {path}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schema = sub.add_parser(
        "schema",
        help="print or write the JSON Schema of a pipeline spec (for editors and validators)",
        description="The JSON Schema of pipelines/*.yaml, generated from the toolkit's models. "
        "A spec whose first line is '# yaml-language-server: $schema=pipeline.schema.json' "
        "gets completion and validation in editors with a YAML language server.",
    )
    schema.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write it to FILE (its folder must exist) instead of stdout, "
        "e.g. pipelines/pipeline.schema.json",
    )
    schema.set_defaults(handler=cmd_schema)
