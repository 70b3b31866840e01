"""YAML 1.2 core-schema scalars for specs and ``-p`` values, instead of PyYAML's YAML 1.1.

PyYAML resolves plain scalars by YAML 1.1, which surprises people who think in JSON or
papermill: ``1e-3`` is a string, ``0123`` is 83 (octal), ``1:30`` is 90 (base 60), ``on`` and
``NO`` are booleans and ``2024-01-02`` is a ``datetime.date`` no notebook parameter can carry.
The 1.2 core schema reads plain scalars as:

* null: ``null Null NULL ~`` and the empty value;
* booleans: ``true True TRUE false False FALSE`` only;
* ints: decimal (``0123`` is 123), ``0o17``, ``0x1F``;
* floats: ``1.5 .5 1. 1e-3 -2.5E+3 .inf -.Inf .nan``;
* everything else is a string (dates, ``yes``/``no``, ``1:30``, ``1_000``).

The merge key ``<<`` of YAML 1.1 is kept: specs use it to share step settings, and without it
a merge would turn into an unknown key ``'<<'``.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

_RESOLVERS: list[tuple[str, re.Pattern[str], list[str]]] = [
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")),
    (
        "tag:yaml.org,2002:int",
        re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
        list("-+0123456789"),
    ),
    (
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        list("-+.0123456789"),
    ),
    ("tag:yaml.org,2002:merge", re.compile(r"^<<$"), ["<"]),
]


def _construct_int(loader: yaml.constructor.SafeConstructor, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    # PyYAML's own int constructor reads a leading 0 as octal and ':' as base 60: 1.1 rules.
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: yaml.constructor.SafeConstructor, node: yaml.ScalarNode) -> float:
    # Python's float() reads every 1.2 spelling once ".inf"/".nan" lose their dot; PyYAML's
    # constructor would also accept 1.1's "1_000.5" and "1:30.5".
    text = str(loader.construct_scalar(node)).lower()
    return float(text.replace(".inf", "inf").replace(".nan", "nan"))


def _with_core_schema(cls: Any) -> Any:
    """Give a loader class the 1.2 core resolvers and int/float constructors, nothing else."""
    cls.yaml_implicit_resolvers = {}  # drop every 1.1 resolver inherited from Resolver
    for tag, pattern, first in _RESOLVERS:
        cls.add_implicit_resolver(tag, pattern, first)
    cls.add_constructor("tag:yaml.org,2002:int", _construct_int)
    cls.add_constructor("tag:yaml.org,2002:float", _construct_float)
    return cls


@_with_core_schema
class CoreSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` reading plain scalars by the YAML 1.2 core schema."""


# PyYAML built without libyaml has no CSafeLoader: the pure-Python one then does both jobs.
_C_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@_with_core_schema
class CoreCSafeLoader(_C_SAFE_LOADER):
    """The same on libyaml's parser when PyYAML has it (10x faster on large specs): libyaml
    only scans and parses; resolving and constructing stay in the Python classes above."""


def load_core(text: str) -> Any:
    """``yaml.safe_load`` with YAML 1.2 core-schema scalars (for small texts: ``-p`` values)."""
    return yaml.load(text, Loader=CoreSafeLoader)  # a SafeLoader subclass: no arbitrary objects
