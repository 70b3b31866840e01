"""``toolkit decisions MODEL --id ID | --input-hash H``: why the guard decided what it did."""

from __future__ import annotations

import argparse

from toolkit.core.jsonable import dumps


def cmd_decisions(args: argparse.Namespace) -> int:
    from toolkit.commands.decisions import DecisionsRequest, describe, find_decisions, reindex
    from toolkit.core.errors import UsageError
    from toolkit.core.settings import load_settings

    runs_dir = load_settings().runs_dir
    if args.reindex:
        db, files, rows = reindex(runs_dir)
        if args.json:
            print(dumps({"index": str(db), "files": files, "records": rows}, indent=2))
        else:
            print(f"indexed {rows} decision records from {files} files into {db}")
        return 0
    if args.model is None:
        raise UsageError("give a MODEL (or --reindex)")
    request = DecisionsRequest(args.model, args.id, args.input_hash, args.since)
    found = find_decisions(request, runs_dir)
    if args.json:
        print(dumps([d.to_dict() for d in found], indent=2))
    else:
        print("\n\n".join(describe(d) for d in found))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    decisions = sub.add_parser(
        "decisions", help="the guard's decision records for one record, across scoring runs"
    )
    decisions.add_argument("model", nargs="?", help="the model name the guard recorded")
    key = decisions.add_mutually_exclusive_group()
    key.add_argument("--id", metavar="RECORD_ID", help="the record's id (its id column)")
    key.add_argument("--input-hash", metavar="H", help="the input hash of the decision record")
    decisions.add_argument("--since", metavar="ISO", help="only decisions scored from then on")
    decisions.add_argument(
        "--reindex", action="store_true", help="rebuild the index from the records in the runs dir"
    )
    decisions.add_argument("--json", action="store_true")
    decisions.set_defaults(handler=cmd_decisions)
