"""``yaml.safe_load`` with limits, so a hostile or broken spec fails at once.

A "billion laughs" file expands nine aliases of ten into 10**9 nodes; a flow of ``[[[[...``
keeps PyYAML's scanner busy for seconds. Both are refused before they cost anything. A key
written twice in one mapping is refused too: YAML keeps the last one silently, so a step with
two ``notebook:`` lines would run the second. Scalars are read by the YAML 1.2 core schema
(:mod:`toolkit.specs.yaml12`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from toolkit.core.errors import SpecError
from toolkit.specs.yaml12 import CoreCSafeLoader

# Limits of a spec file: far above any real spec, far below what exhausts memory or time.
MAX_SPEC_BYTES = 1 << 20
MAX_SPEC_ALIASES = 100
MAX_SPEC_DEPTH = 50
MAX_SPEC_NODES = 100_000
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
# libyaml's parser when PyYAML has it: it composes a 200-step spec in 0.18 s, the pure-Python one
# in 1.9 s (benchmarks/bench_scale.py). Both raise the same yaml errors.
_LOADER = CoreCSafeLoader


def load_yaml_bounded(raw: bytes, path: Path) -> Any:
    """``yaml.safe_load`` with limits on aliases, nesting depth and expanded size.

    The node graph is composed first (aliases are shared nodes there, so composing is cheap) and
    measured as if every alias were expanded; only a graph within the limits is constructed.

    Raises:
        SpecError: the document exceeds a limit (the message names which one), or a mapping
            has the same key twice.
    """
    # Flow nesting ("[[[[...") is measured on the brackets alone before PyYAML sees it: its
    # scanner takes seconds on such input before its composer would give up.
    depth = deepest = 0
    for char in raw.translate(None, _NOT_BRACKETS):
        depth += 1 if char in b"[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_SPEC_DEPTH:
        raise SpecError(
            f"spec refused by the bounded YAML loader: nested deeper than {MAX_SPEC_DEPTH} levels",
            path=path,
        )
    loader = _LOADER(raw)
    try:
        node = loader.get_single_node()
    except RecursionError as exc:  # PyYAML composes recursively: absurd nesting ends here
        raise SpecError(
            f"spec refused by the bounded YAML loader: nested deeper than {MAX_SPEC_DEPTH} levels",
            path=path,
        ) from exc
    finally:
        loader.dispose()
    if node is None:
        return None
    _check_node_limits(node, path)
    loader = _LOADER("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_node_limits(root: yaml.Node, path: Path) -> None:
    """Count aliases, depth and expanded nodes of a composed YAML graph; raise past a limit."""
    seen: dict[int, int] = {}  # node id -> expanded size, once measured
    aliases = 0

    def refuse(what: str) -> SpecError:
        return SpecError(
            f"spec refused by the bounded YAML loader: {what}",
            path=path,
            hint="specs need neither deep nesting nor repeated aliases; write the values out",
        )

    def size(node: yaml.Node, depth: int) -> int:
        nonlocal aliases
        if depth > MAX_SPEC_DEPTH:
            raise refuse(f"nested deeper than {MAX_SPEC_DEPTH} levels")
        key = id(node)
        if key in seen:
            aliases += 1  # a node reached twice is an alias (or a merge key) of it
            if aliases > MAX_SPEC_ALIASES:
                raise refuse(f"more than {MAX_SPEC_ALIASES} aliases")
            return seen[key]
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item, depth + 1)
        elif isinstance(node, yaml.MappingNode):
            _refuse_duplicate_keys(node, path)
            for k, v in node.value:
                total += size(k, depth + 1) + size(v, depth + 1)
        if total > MAX_SPEC_NODES:
            raise refuse(f"more than {MAX_SPEC_NODES} values once aliases are expanded")
        seen[key] = total
        return total

    size(root, 0)


def _refuse_duplicate_keys(node: yaml.MappingNode, path: Path) -> None:
    """Raise on a scalar key written twice in one mapping (merged ``<<`` keys may be overridden:
    they are not in ``node.value`` until construction)."""
    first_line: dict[tuple[str, str], int] = {}
    for key, _ in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        # Resolved tag and text: "1" and 1 are different keys, as they are once constructed.
        ident = (key.tag, key.value)
        line = key.start_mark.line + 1
        if ident in first_line:
            raise SpecError(
                f"duplicate key {key.value!r} (first on line {first_line[ident]}): YAML would "
                "keep only the last value",
                path=path,
                location=f"line {line}",
                hint="remove one of the two, or rename it",
            )
        first_line[ident] = line
