"""Data contracts: suites kept as hand-written JSON in ``expectations/``, loaded and checked.

A contract is ``expectations/<name>.json`` holding ``name``, optional ``meta`` and a list of
``expectations`` (``type``, ``kwargs``, optional ``meta``, ``notes``, ``severity``). There is no
GX project folder. This module checks the file's shape itself; whether GX knows each expectation
and accepts its kwargs is asked of :mod:`toolkit.contracts.gx_adapter`, the one module importing
GX. Validating data is :mod:`toolkit.contracts.api`; results are :mod:`toolkit.contracts.result`.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.contracts.gx_adapter import check_expectation, gx_version, shipped_types
from toolkit.core.errors import ContractError, did_you_mean

SEVERITIES = ("critical", "warning", "info")
_SUITE_KEYS = {"name", "meta", "expectations", "notes", "id"}
_EXPECTATION_KEYS = {"type", "kwargs", "meta", "notes", "description", "severity", "id"}
# Expectation-level fields that GX would silently take from kwargs if a user put them there.
_RESERVED_KWARGS = _EXPECTATION_KEYS - {"type", "kwargs"} | {"rendered_content"}


@dataclass(frozen=True)
class Suite:
    """A contract suite as loaded (and checked) from ``expectations/<name>.json``.

    Attributes:
        name: the suite name, equal to the file stem.
        path: the JSON file.
        expectations: one dict per expectation, in file order, each with ``type``, ``kwargs``,
            ``severity`` (defaulted to ``critical``) and any ``meta``/``notes`` given.
        meta: the suite's ``meta`` mapping.
    """

    name: str
    path: Path
    expectations: tuple[dict[str, Any], ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.expectations)


# ----------------------------------------------------------------------------- loading suites

_SUITE_CACHE: dict[Path, tuple[tuple[int, int], Suite]] = {}
_SUITE_CACHE_LOCK = threading.Lock()


def _suite_names(expectations_dir: Path) -> list[str]:
    return sorted(p.stem for p in expectations_dir.glob("*.json") if p.is_file())


def load_suite(name: str, expectations_dir: Path, *, gx: bool = True) -> Suite:
    """Load and strictly check the suite ``<expectations_dir>/<name>.json``.

    Parsed suites are cached per (path, mtime, size), so a run loads each file once and an edit
    is picked up on the next call.

    With ``gx=False`` (``toolkit check``) GX is not imported, which costs seconds: the file's
    shape is checked in full and each type against the types GX ships, but the kwargs are left
    to the run, which validates every suite with GX before any step. A type GX does not ship
    (a typo, or a plugin's) is still asked of GX, so a typo gets its did-you-mean. Not cached.

    Raises:
        ContractError: unknown suite (with a did-you-mean hint), invalid JSON (file and line),
            or an invalid expectation (file, index, type and offending field).
    """
    expectations_dir = Path(expectations_dir)
    stem = name.removesuffix(".json")
    if not stem or Path(stem).name != stem:
        raise ContractError(f"invalid contract suite name {name!r}: use the file stem")
    path = expectations_dir / f"{stem}.json"
    if not path.is_file():
        if not expectations_dir.is_dir():
            raise ContractError(
                f"unknown contract suite {stem!r}: folder {expectations_dir} does not exist"
            )
        names = _suite_names(expectations_dir)
        available = "available: " + ", ".join(names) if names else "the folder has no *.json suites"
        hint = " ".join(filter(None, [did_you_mean(stem, names), available]))
        raise ContractError(f"unknown contract suite {stem!r} in {expectations_dir}", hint=hint)
    if not gx:
        return _parse_suite(path, shipped_types())
    stat = path.stat()
    key, stamp = path.resolve(), (stat.st_mtime_ns, stat.st_size)
    with _SUITE_CACHE_LOCK:
        cached = _SUITE_CACHE.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    suite = _parse_suite(path)
    with _SUITE_CACHE_LOCK:
        _SUITE_CACHE[key] = (stamp, suite)
    return suite


def load_suite_once(name: str, expectations_dir: Path, cache_dir: Path | None) -> Suite:
    """Load a suite, validated with GX unless its exact bytes already passed with this GX
    version.

    Importing GX costs seconds; ``toolkit check``, ``toolkit plan``, a fully cached run and the
    guard built at registration should not pay it for a suite nobody edited. Any edit changes
    the hash and brings GX back. The file's shape and types are still checked without GX.

    Raises:
        ContractError: the suite is missing or invalid.
    """
    path = expectations_dir / f"{name.removesuffix('.json')}.json"
    marker = None
    if cache_dir is not None and path.is_file() and Path(name).name == name:
        from toolkit.core.fsutil import sha256_file

        marker = cache_dir / "suites" / f"{sha256_file(path)}-{gx_version()}.ok"
        if marker.exists():
            return load_suite(name, expectations_dir, gx=False)
    suite = load_suite(name, expectations_dir)
    if marker is not None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    return suite


def list_suites(expectations_dir: Path) -> list[Suite]:
    """Load every ``*.json`` suite of ``expectations_dir``, sorted by name (none if no folder).

    Raises:
        ContractError: the first suite file that is invalid.
    """
    expectations_dir = Path(expectations_dir)
    if not expectations_dir.is_dir():
        return []
    return [load_suite(n, expectations_dir) for n in _suite_names(expectations_dir)]


def _parse_suite(path: Path, trusted: frozenset[str] = frozenset()) -> Suite:
    """The suite in ``path``; an expectation of a ``trusted`` type is not checked by GX."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: cannot read contract suite: {exc}") from exc
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(spec, dict):
        raise ContractError(f"{path}: a contract suite must be a JSON object")
    _reject_unknown(path, "suite", spec, _SUITE_KEYS)
    name = spec.get("name", path.stem)
    if name != path.stem:
        raise ContractError(
            f"{path}: name {name!r} differs from the file name",
            hint=f"rename the file to {name}.json or set name to {path.stem!r}",
        )
    meta, raw = spec.get("meta") or {}, spec.get("expectations")
    if not isinstance(meta, dict):
        raise ContractError(f"{path}: meta must be a JSON object")
    if not isinstance(raw, list):
        raise ContractError(f"{path}: expectations must be a JSON list")
    expectations = tuple(_check_expectation(path, i, e, trusted) for i, e in enumerate(raw))
    return Suite(name=name, path=path, expectations=expectations, meta=meta)


def _reject_unknown(path: Path, where: str, data: dict[str, Any], allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise ContractError(
                f"{path}: {where}: unknown field {key!r}",
                hint=did_you_mean(key, allowed) or "allowed: " + ", ".join(sorted(allowed)),
            )


def _check_expectation(
    path: Path, index: int, entry: Any, trusted: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Return the normalised expectation or raise naming file, index, type and field.

    The shape is checked here; the type and kwargs by GX (:func:`check_expectation`).
    """
    where = f"expectations[{index}]"
    if not isinstance(entry, dict):
        raise ContractError(f"{path}: {where}: must be a JSON object")
    etype = entry.get("type")
    if not isinstance(etype, str) or not etype:
        raise ContractError(f"{path}: {where}: missing field 'type'")
    where = f"{where} ({etype})"
    _reject_unknown(path, where, entry, _EXPECTATION_KEYS)
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ContractError(f"{path}: {where}: field 'kwargs' must be a JSON object")
    if misplaced := sorted(_RESERVED_KWARGS & set(kwargs)):
        raise ContractError(
            f"{path}: {where}: field 'kwargs.{misplaced[0]}' belongs next to 'type', not in kwargs"
        )
    if not isinstance(entry.get("meta", {}), dict):
        raise ContractError(f"{path}: {where}: field 'meta' must be a JSON object")
    notes = entry.get("notes", "")
    if not isinstance(notes, str) and not (
        isinstance(notes, list) and all(isinstance(n, str) for n in notes)
    ):
        raise ContractError(f"{path}: {where}: field 'notes' must be a string or list of strings")
    severity = entry.get("severity", "critical")
    if severity not in SEVERITIES:
        raise ContractError(
            f"{path}: {where}: field 'severity' is {severity!r}; use one of {', '.join(SEVERITIES)}"
        )
    normalised = {**entry, "kwargs": kwargs, "severity": severity}
    if etype not in trusted:
        check_expectation(path, where, etype, normalised)
    return normalised
