"""``toolkit review``, ``promote``, ``rollback`` and ``releases``: model releases."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _context(args: argparse.Namespace) -> tuple[Any, Any]:
    """The registry, and the release policy of the pipeline that releases ``args.model``."""
    from toolkit.errors import ToolkitError
    from toolkit.registry import Registry
    from toolkit.settings import load_settings
    from toolkit.spec import ReleaseSpec, discover_specs, load_spec

    settings = load_settings()
    policy = ReleaseSpec()
    model = getattr(args, "model", None)
    specs = (
        [Path(args.pipeline)]
        if getattr(args, "pipeline", None)
        else discover_specs(settings.root / "pipelines")
    )
    for path in specs:
        try:
            spec = load_spec(path)
        except ToolkitError:
            if getattr(args, "pipeline", None):
                raise
            continue
        if spec.model is not None and spec.model.name == model:
            policy = spec.release
            break
    return Registry(settings.tracking_uri), policy


def _by(args: argparse.Namespace) -> str:
    from toolkit.lineage import current_user

    return getattr(args, "by", None) or current_user() or "unknown"


def _print_entry(entry: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(entry.to_dict(), indent=2, default=str))
        return
    forced = " (FORCED)" if entry.forced else ""
    print(
        f"{entry.action}{forced}: {entry.model} {entry.from_version or '-'} -> "
        f"{entry.to_version or '-'} by {entry.by} at {entry.at}"
        + (f": {entry.reason}" if entry.reason else "")
    )


def cmd_review_list(args: argparse.Namespace) -> int:
    registry, policy = _context(args)
    views = registry.candidates(args.model, policy=policy)
    if args.json:
        print(json.dumps([v.to_dict() for v in views], indent=2, default=str))
        return 0
    if not views:
        print("no candidates waiting for review")
    for view in views:
        v = view.version
        state = "ready to promote" if view.ready else "; ".join(view.problems or ())
        print(f"{v.name} v{v.version} (run {v.tags.get('toolkit.run_id', '?')}): {state}")
        champ = f"champion v{view.champion_version}" if view.champion_version else "no champion"
        print(f"  {'gate':<40} {'candidate':>10} {champ:>16}  verdict")
        for expression, value, champion_value, passed in view.comparison_rows():
            cv = "" if value is None else f"{value:.4g}"
            ch = "" if champion_value is None else f"{champion_value:.4g}"
            print(f"  {expression:<40} {cv:>10} {ch:>16}  {'pass' if passed else 'FAIL'}")
        for label, link in view.links.items():
            print(f"  {label}: {link}")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    registry, policy = _context(args)
    version = registry.resolve(args.model, args.version)
    record = registry.review(
        args.model,
        version,
        decision=args.decision,
        reviewer=args.reviewer,
        note=args.note,
        policy=policy,
    )
    if args.json:
        print(json.dumps(record.to_dict(), indent=2, default=str))
        return 0
    print(
        f"{args.decision} {args.model} v{version} by {args.reviewer}; approvals "
        f"{len(record.approvals)}/{record.required}"
    )
    if record.promotable:
        print(f"ready: toolkit promote {args.model} {version}")
    else:
        print("not promotable yet: " + "; ".join(record.problems))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from toolkit.errors import UsageError

    if args.force and not args.reason:
        raise UsageError("--force needs --reason: the override is recorded in the history")
    registry, policy = _context(args)
    version = registry.resolve(args.model, args.version)
    entry = registry.promote(
        args.model, version, policy=policy, by=_by(args), force=args.force, reason=args.reason or ""
    )
    _print_entry(entry, args.json)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    registry, _ = _context(args)
    entry = registry.rollback(args.model, by=_by(args), reason=args.reason, to=args.to)
    _print_entry(entry, args.json)
    return 0


def cmd_releases(args: argparse.Namespace) -> int:
    registry, _ = _context(args)
    entries = registry.releases(args.model)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2, default=str))
        return 0
    for entry in entries:
        _print_entry(entry, False)
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    review = sub.add_parser("review", help="review candidate model versions")
    rsub = review.add_subparsers(dest="review_command", metavar="ACTION", required=True)
    lst = rsub.add_parser("list", help="candidates waiting for review, next to the champion")
    lst.add_argument("model", nargs="?")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=cmd_review_list)
    for decision, verb in (("approved", "approve"), ("rejected", "reject")):
        p = rsub.add_parser(verb, help=f"{verb} a model version")
        p.add_argument("model")
        p.add_argument("version", help="a version number, or an alias such as 'candidate'")
        p.add_argument("--reviewer", required=True)
        p.add_argument("--note", default="")
        p.add_argument("--pipeline", help="spec whose release policy applies (default: found)")
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=cmd_review, decision=decision)

    promote = sub.add_parser("promote", help="make a version the champion")
    promote.add_argument("model")
    promote.add_argument("version", help="a version number, or an alias such as 'candidate'")
    promote.add_argument("--force", action="store_true", help="override the policy (recorded)")
    promote.add_argument("--reason", default="")
    promote.add_argument("--by", help="who promotes (default: the current user)")
    promote.add_argument("--pipeline")
    promote.add_argument("--json", action="store_true")
    promote.set_defaults(handler=cmd_promote)

    rollback = sub.add_parser("rollback", help="move the champion back")
    rollback.add_argument("model")
    rollback.add_argument("--to", help="a past champion version (default: the previous one)")
    rollback.add_argument("--reason", required=True)
    rollback.add_argument("--by")
    rollback.add_argument("--json", action="store_true")
    rollback.set_defaults(handler=cmd_rollback)

    releases = sub.add_parser("releases", help="the release history of a model")
    releases.add_argument("model")
    releases.add_argument("--json", action="store_true")
    releases.set_defaults(handler=cmd_releases)
