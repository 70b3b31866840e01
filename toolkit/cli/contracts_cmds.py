"""``toolkit contracts check|new|list``: data contracts from the shell."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from toolkit.core.errors import ExitCode
from toolkit.core.jsonable import dumps

if TYPE_CHECKING:
    from toolkit.core.settings import Settings


def _settings() -> Settings:
    from toolkit.core.settings import load_settings

    return load_settings()


def cmd_check(args: argparse.Namespace) -> int:
    from toolkit.contracts.api import check_file, write_result

    settings = _settings()
    result = check_file(args.suite, Path(args.data_file), settings.expectations_dir)
    if args.output:
        json_path, html_path = write_result(result, Path(args.output))
        print(f"wrote {json_path} and {html_path}")
    print(dumps(result.to_dict(), indent=2) if args.json else str(result))
    return int(ExitCode.CONTRACT) if result.blocking else 0


def cmd_new(args: argparse.Namespace) -> int:
    from toolkit.contracts.draft import draft_suite, write_draft
    from toolkit.core.tables import read_table

    settings = _settings()
    source = Path(args.source)
    suite = draft_suite(read_table(source), args.name, source=str(source))
    path = write_draft(suite, settings.expectations_dir / f"{args.name}.json", overwrite=args.force)
    print(f"drafted {len(suite['expectations'])} expectations from {source.name} into {path}")
    print("review it like code: tighten ranges, drop what is not a real rule, then commit it")
    return 0


def usage_of(suite: str, specs: list[Path]) -> list[str]:
    """Where a suite is attached: ``pipeline: step.inputs.key`` strings."""
    from toolkit.core.errors import ToolkitError
    from toolkit.specs.load import load_spec
    from toolkit.specs.step_models import ExternalInput

    uses = []
    for path in specs:
        try:
            spec = load_spec(path)
        except ToolkitError:
            continue
        for step in spec.steps:
            for key, ref in step.inputs.items():
                if isinstance(ref, ExternalInput) and ref.contract == suite:
                    uses.append(f"{spec.name}: {step.name}.inputs.{key} ({ref.on_fail})")
            for key, out in step.output_specs().items():
                if out.contract == suite:
                    uses.append(f"{spec.name}: {step.name}.outputs.{key} ({out.on_fail})")
    return uses


class SuiteRow(TypedDict):
    """One line of ``contracts list`` (and one object of its ``--json``)."""

    suite: str
    expectations: int
    path: str
    used_by: list[str]


def cmd_list(args: argparse.Namespace) -> int:
    from toolkit.contracts.suites import list_suites
    from toolkit.specs.load import discover_specs

    settings = _settings()
    specs = discover_specs(settings.root / "pipelines")
    rows: list[SuiteRow] = [
        {
            "suite": s.name,
            "expectations": len(s),
            "path": str(s.path),
            "used_by": usage_of(s.name, specs),
        }
        for s in list_suites(settings.expectations_dir)
    ]
    if args.json:
        print(dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no suites in {settings.expectations_dir}")
    for row in rows:
        used = "; ".join(row["used_by"]) or "not used by any pipeline"
        print(f"{row['suite']:<24} {row['expectations']:>3} expectations  {used}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    contracts = sub.add_parser("contracts", help="data contracts (Great Expectations suites)")
    csub = contracts.add_subparsers(dest="contracts_command", metavar="ACTION", required=True)
    check = csub.add_parser("check", help="validate a CSV or Parquet file; exit 3 if it fails")
    check.add_argument("suite", help="suite name (expectations/NAME.json)")
    check.add_argument("data_file")
    check.add_argument("--json", action="store_true")
    check.add_argument("-o", "--output", help="also write the result as JSON and HTML here")
    check.set_defaults(handler=cmd_check)
    new = csub.add_parser("new", help="draft a suite from a sample data file")
    new.add_argument("name")
    new.add_argument("--from", dest="source", required=True, metavar="DATA_FILE")
    new.add_argument("--force", action="store_true", help="overwrite an existing suite")
    new.set_defaults(handler=cmd_new)
    lst = csub.add_parser("list", help="the suites and where each is used")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=cmd_list)
