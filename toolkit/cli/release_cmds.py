"""``toolkit review``, ``promote``, ``rollback`` and ``releases``: model releases."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from toolkit.core.jsonable import dumps


def _settings() -> tuple[Any, list[str]]:
    """This project's settings, and ``[tool.toolkit] release_admins``: recorded as a model's
    release admins when its policy is first recorded; after that the model's recorded list
    counts, never this one (anyone can write a pyproject.toml naming themselves)."""
    from toolkit.core.settings import load_settings
    from toolkit.release.admins import project_admins

    settings = load_settings()
    return settings, project_admins(settings)


def _registry() -> Any:
    """The registry of this project."""
    from toolkit.release.registry import Registry

    settings, admins = _settings()
    return Registry(settings.tracking_uri, admins=admins)


def _tightening(args: argparse.Namespace, registry: Any) -> Any:
    """The policy of ``--pipeline``, which can only tighten the model's recorded policy.

    A spec that fails to load is an error (exit 2), never "no policy". For a model registered
    before policies were bound to models, a spec that releases that very model records its
    policy first (in the history), so the model is governed from then on."""
    path = getattr(args, "pipeline", None)
    if not path:
        return None
    from toolkit.release.registry import PolicyRecord
    from toolkit.specs.load import load_spec

    spec = load_spec(Path(path))
    if (
        spec.model is not None
        and spec.model.name == args.model
        and registry.policy_record(args.model) is None
    ):
        record = PolicyRecord(spec.release, str(path), spec.content_hash)
        registry.record_policy(args.model, record, reason=f"recorded from --pipeline {path}")
    return spec.release


def _refresh_card(model: str, version: str, event: str) -> None:
    """Log a fresh model card after ``event`` (a failure is a note, never the command's)."""
    from toolkit.cards.publish import refresh

    refresh(model, version, event)


def _actor_name(args: argparse.Namespace, flag: str) -> str | None:
    value = getattr(args, flag, None)
    return value if value else None


def _print_entry(entry: Any, as_json: bool) -> None:
    if as_json:
        print(dumps(entry.to_dict(), indent=2))
        return
    forced = " (FORCED)" if entry.forced else ""
    who = f"by {entry.by}"
    if entry.override:
        who += f" (recorded by {entry.recorded_by}: admin override)"
    print(
        f"{entry.action}{forced}: {entry.model} {entry.from_version or '-'} -> "
        f"{entry.to_version or '-'} {who} at {entry.at}"
        + (f": {entry.reason}" if entry.reason else "")
        + (f" [overrode: {'; '.join(entry.overrides)}]" if entry.overrides else "")
    )


def cmd_review_list(args: argparse.Namespace) -> int:
    registry = _registry()
    policy = _tightening(args, registry) if args.model else None
    views = registry.candidates(args.model, policy=policy)
    if args.json:
        print(dumps([v.to_dict() for v in views], indent=2))
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
    registry = _registry()
    policy = _tightening(args, registry)
    version = registry.resolve(args.model, args.version)
    record = registry.review(
        args.model,
        version,
        decision=args.decision,
        reviewer=_actor_name(args, "reviewer"),
        note=args.note,
        policy=policy,
    )
    _refresh_card(args.model, version, "reviewed")
    if args.json:
        print(dumps(record.to_dict(), indent=2))
        return 0
    by = record.review.reviewer
    if record.review.recorded_by:
        by += f" (recorded by {record.review.recorded_by}: admin override)"
    print(
        f"{args.decision} {args.model} v{version} by {by}; approvals "
        f"{len(record.approvals)}/{record.required}"
    )
    if record.promotable:
        print(f"ready: toolkit promote {args.model} {version}")
    else:
        print("not promotable yet: " + "; ".join(record.problems))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from toolkit.core.errors import UsageError

    if args.force and not args.reason:
        raise UsageError("--force needs --reason: the override is recorded in the history")
    registry = _registry()
    policy = _tightening(args, registry)
    version = registry.resolve(args.model, args.version)
    from toolkit.commands.readiness import promotion_gaps

    _, gaps, source = promotion_gaps(
        registry, args.model, version, getattr(args, "pipeline", None), force=args.force
    )
    entry = registry.promote(
        args.model,
        version,
        policy=policy,
        by=_actor_name(args, "by"),
        force=args.force,
        reason=args.reason or "",
        readiness_gaps=tuple(gaps),
        readiness_source=source,
    )
    _refresh_card(args.model, version, "promoted")
    _print_entry(entry, args.json)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    registry = _registry()
    entry = registry.rollback(
        args.model, by=_actor_name(args, "by"), reason=args.reason, to=args.to
    )
    for version in (entry.to_version, entry.from_version):
        if version:
            _refresh_card(args.model, version, "rolled-back")
    _print_entry(entry, args.json)
    return 0


def cmd_releases(args: argparse.Namespace) -> int:
    from toolkit.commands.releases import recorded_history

    # Only reads: a local store answers without MLflow's import, else the registry does.
    registry = recorded_history(_settings()[0].tracking_uri, args.model) or _registry()
    if args.at is not None:
        return _print_champion_at(registry, args)
    entries = registry.releases(args.model)
    if args.json:
        print(dumps([e.to_dict() for e in entries], indent=2))
        return 0
    record = registry.policy_record(args.model)
    print(f"policy: {record.describe() if record else 'none recorded (review/promote refuse)'}")
    for entry in entries:
        _print_entry(entry, False)
    return 0


def _print_champion_at(registry: Any, args: argparse.Namespace) -> int:
    from toolkit.commands.releases import release_at

    found = release_at(registry, args.model, args.at)
    if args.json:
        print(dumps(found.to_dict(), indent=2))
    elif found.version is None:
        print(f"{found.model}: no champion at {found.at} (not yet promoted then)")
    else:
        how = f"{found.action} at {found.since} by {found.by}" + (
            f": {found.reason}" if found.reason else ""
        )
        print(f"{found.model}: v{found.version} was champion at {found.at} ({how})")
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    """Show the policy and release admins bound to a model, or record a policy from a spec
    (``--set-from``) or the model's release admins (``--set-admins``)."""
    from toolkit.core.errors import UsageError
    from toolkit.release.admins import describe_admins
    from toolkit.release.registry import PolicyRecord
    from toolkit.specs.load import load_spec

    registry = _registry()
    if (args.set_from or args.set_admins is not None) and not args.reason:
        flag = "--set-from" if args.set_from else "--set-admins"
        raise UsageError(f"{flag} needs --reason: the change is recorded in the history")
    if args.set_admins is not None:
        names = [n for n in args.set_admins.split(",") if n.strip()]
        _print_entry(registry.set_admins(args.model, names, reason=args.reason), args.json)
        return 0
    if args.set_from:
        spec = load_spec(Path(args.set_from))
        if spec.model is None or spec.model.name != args.model:
            released = spec.model.name if spec.model else "no model"
            raise UsageError(f"{args.set_from} releases {released}, not {args.model}")
        record = PolicyRecord(spec.release, str(args.set_from), spec.content_hash)
        _print_entry(registry.record_policy(args.model, record, reason=args.reason), args.json)
        return 0
    record = registry.policy_record(args.model)
    admins = registry.release_admins(args.model)
    if args.json:
        found = record.to_dict() if record else None
        print(dumps(found and {**found, "release_admins": admins}, indent=2))
    else:
        print(record.describe() if record else f"{args.model} has no recorded release policy")
        print("release admins: " + describe_admins(admins, registry.admins))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        p.add_argument(
            "--reviewer",
            help="record the decision for this person (admin override; default: you, as the "
            "OS user or the MLflow server's authenticated user)",
        )
        p.add_argument("--note", default="")
        p.add_argument(
            "--pipeline",
            help="a spec whose release policy tightens the model's recorded one (never loosens)",
        )
        p.add_argument("--json", action="store_true")
        p.set_defaults(handler=cmd_review, decision=decision)

    promote = sub.add_parser("promote", help="make a version the champion")
    promote.add_argument("model")
    promote.add_argument("version", help="a version number, or an alias such as 'candidate'")
    promote.add_argument("--force", action="store_true", help="override the policy (recorded)")
    promote.add_argument("--reason", default="")
    promote.add_argument("--by", help="promote for this person (admin override; default: you)")
    promote.add_argument("--pipeline", help="a spec whose release policy tightens the model's")
    promote.add_argument("--json", action="store_true")
    promote.set_defaults(handler=cmd_promote)

    rollback = sub.add_parser("rollback", help="move the champion back")
    rollback.add_argument("model")
    rollback.add_argument("--to", help="a past champion version (default: the previous one)")
    rollback.add_argument("--reason", required=True)
    rollback.add_argument("--by", help="roll back for this person (admin override; default: you)")
    rollback.add_argument("--json", action="store_true")
    rollback.set_defaults(handler=cmd_rollback)

    releases = sub.add_parser("releases", help="the release history of a model")
    releases.add_argument("model")
    releases.add_argument(
        "--at", metavar="TIMESTAMP", help="which version was champion then (ISO 8601; no zone: UTC)"
    )
    releases.add_argument("--json", action="store_true")
    releases.set_defaults(handler=cmd_releases)

    policy = sub.add_parser("policy", help="the release policy bound to a model")
    policy.add_argument("model")
    change = policy.add_mutually_exclusive_group()
    change.add_argument("--set-from", metavar="SPEC", help="record this spec's release policy")
    change.add_argument(
        "--set-admins",
        metavar="NAME[,NAME...]",
        help="record who may act for others or loosen the policy on a local store (release "
        "admins of the model only, or whoever first registered it while it has none)",
    )
    policy.add_argument("--reason", default="")
    policy.add_argument("--json", action="store_true")
    policy.set_defaults(handler=cmd_policy)
