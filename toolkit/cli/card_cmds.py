"""``toolkit card MODEL VERSION|alias [-o FILE]``: a version's model card, from records only."""

from __future__ import annotations

import argparse
from pathlib import Path

from toolkit.core.jsonable import dumps


def cmd_card(args: argparse.Namespace) -> int:
    from toolkit.cards.publish import build
    from toolkit.core.fsutil import atomic_write_text

    published = build(args.model, args.version, log=args.log)
    if args.json:
        print(dumps({**published.card.to_dict(), "logged": published.uri}, indent=2))
    elif args.output:
        out = Path(args.output)
        text = published.html if out.suffix.lower() in (".html", ".htm") else published.markdown
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, text)
        print(f"model card of {args.model} v{published.card.version}: {out}")
    else:
        print(published.markdown, end="")
    if published.uri and not args.json:
        print(f"logged to the version: {published.uri}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    card = sub.add_parser("card", help="the model card of a registered version")
    card.add_argument("model")
    card.add_argument("version", help="a version number, or an alias such as 'champion'")
    card.add_argument(
        "-o", "--output", help="write it here: FILE.html is the offline page, else Markdown"
    )
    card.add_argument(
        "--log", action="store_true", help="also log it to the version (card/<time>-built.*)"
    )
    card.add_argument("--json", action="store_true")
    card.set_defaults(handler=cmd_card)
