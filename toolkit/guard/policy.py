"""What surrounds the model's answer: output contract, confidence policy and fallback.

* :class:`OutputContract` maps the estimator's classes to the labels callers see and bounds a
  prediction: probabilities in [0, 1], labels in the allowed set.
* :class:`ConfidencePolicy`: a row whose highest class probability is below ``min_confidence``
  is answered by the fallback, not the model.
* A fallback decides rows without the model: :class:`RuleFallback`, a small declarative YAML
  file (:func:`load_rules`), or :class:`CallableFallback`, any Python function
  ``rows -> labels`` or ``rows -> DataFrame[prediction, reason]``.

Rules file (a rule's conditions must all hold; the first matching rule wins)::

    name: concave_points                        # optional
    rules:
      - name: many_concave_points
        when: worst_concave_points > 0.142      # or a list of conditions
        label: malignant
        reason: optional text, defaults to the condition
    default: {label: benign, reason: ...}       # optional; without it, no prediction

A condition is ``<column> <op> <value>``, op one of ``< <= > >= == !=``; ordering needs a number.

The classes are pickled by value into logged models, so their methods use numpy and pandas
only; the loaders run at build time and import toolkit errors lazily.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt,
    ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}  # fmt: skip
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|==|!=|<|>)\s*(.+?)\s*$")
_KEYS = {
    "top level": {"name", "rules", "default", "description"},
    "rule": {"name", "when", "label", "reason"},
    "default": {"label", "reason"},
}


@dataclass(frozen=True)
class OutputContract:
    """The labels a prediction may take and how the estimator's classes map to them.

    Attributes:
        class_labels: ``(str(class), label)`` per class, in the estimator's ``classes_`` order.
        threshold: binary models only: the probability of the second class from which it is
            predicted; None predicts the most probable class.
    """

    class_labels: tuple[tuple[str, str], ...]
    threshold: float | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for _, label in self.class_labels)

    def violations(self, proba: np.ndarray) -> np.ndarray:
        """Rows whose probabilities are not finite numbers within [0, 1] (with float slack)."""
        inside = np.ones(len(proba), dtype=bool)
        for column in proba.T:  # a reduction over 2-3 columns costs ~50 ns a row in numpy
            inside &= column >= -1e-9  # NaN compares False: outside
            inside &= column <= 1 + 1e-9
        return ~inside

    def predicted_index(self, proba: np.ndarray) -> np.ndarray:
        if self.threshold is not None and proba.shape[1] == 2:
            return (proba[:, 1] >= self.threshold).astype(np.intp)
        return row_argmax(proba)


def row_max(proba: np.ndarray) -> np.ndarray:
    """``proba.max(axis=1)``, column by column: numpy reduces a short row at ~50 ns a row."""
    if proba.shape[1] == 0:
        return proba.max(axis=1)  # raises as numpy does
    out = proba[:, 0].copy()
    for column in proba.T[1:]:
        np.maximum(out, column, out=out)  # propagates NaN, as max does
    return out


def row_argmax(proba: np.ndarray) -> np.ndarray:
    """``proba.argmax(axis=1)`` column by column: the first maximum, or the first NaN."""
    if proba.shape[1] == 0:
        return proba.argmax(axis=1)  # raises as numpy does
    if proba.shape[1] == 2:  # the second if larger, or if NaN where the first is not
        first, second = proba[:, 0], proba[:, 1]
        out = np.greater(second, first)
        if np.isnan(second).any():
            out |= np.isnan(second) & ~np.isnan(first)
        return out.astype(np.intp)
    best, out = proba[:, 0].copy(), np.zeros(len(proba), dtype=np.intp)
    for j, column in enumerate(proba.T[1:], start=1):
        with np.errstate(invalid="ignore"):  # larger, or a NaN: both replace a number
            better = ~(column <= best) & ~np.isnan(best)
        np.copyto(out, j, where=better)
        np.copyto(best, column, where=better)
    return out


@dataclass(frozen=True)
class ConfidencePolicy:
    """Send rows whose highest class probability is below ``min_confidence`` to the fallback."""

    min_confidence: float = 0.0

    def unsure(self, confidence: np.ndarray) -> np.ndarray:
        return confidence < self.min_confidence

    @property
    def reason(self) -> str:
        return f"confidence below {self.min_confidence:g}"


@dataclass(frozen=True)
class Condition:
    """``column op value``; a null cell never satisfies a condition."""

    column: str
    op: str
    value: float | str

    def mask(self, rows: pd.DataFrame) -> np.ndarray:
        values = rows[self.column].to_numpy()
        with np.errstate(invalid="ignore"):
            return np.asarray(_OPS[self.op](values, self.value), dtype=bool) & ~pd.isna(values)

    def __str__(self) -> str:
        value = repr(self.value) if isinstance(self.value, str) else f"{self.value:g}"
        return f"{self.column} {self.op} {value}"


@dataclass(frozen=True)
class Rule:
    name: str
    when: tuple[Condition, ...]
    label: str
    reason: str


@dataclass(frozen=True)
class RuleFallback:
    """Declarative rules, evaluated vectorised; the first rule whose conditions all hold wins."""

    name: str
    rules: tuple[Rule, ...]
    default_label: str | None = None
    default_reason: str = "no fallback rule matched"
    source: str = ""

    @property
    def columns(self) -> frozenset[str]:
        """The columns the rules read."""
        return frozenset(c.column for rule in self.rules for c in rule.when)

    def decide(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Labels (None when nothing matched and there is no default) and reasons, per row."""
        labels, reasons, _ = self.decide_named(rows)
        return labels, reasons

    def decide_named(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`decide`, plus the name of the rule that fired per row (``default`` for the
        default, None when nothing matched): decision records carry it for audits."""
        chosen = np.full(len(rows), len(self.rules))
        for k in range(len(self.rules) - 1, -1, -1):  # backwards, so that earlier rules win
            hit = np.ones(len(rows), dtype=bool)
            for condition in self.rules[k].when:
                hit &= condition.mask(rows)
            chosen[hit] = k
        labels = [r.label for r in self.rules] + [self.default_label]
        reasons = [f"rule {r.name}: {r.reason}" for r in self.rules] + [self.default_reason]
        names = [r.name for r in self.rules] + [None if self.default_label is None else "default"]
        return tuple(np.array(v, dtype=object)[chosen] for v in (labels, reasons, names))


@dataclass(frozen=True)
class CallableFallback:
    """A Python function deciding rows without the model.

    ``func(rows)`` gets the unsure rows (the contract's columns, with the input index) and returns
    one label per row (Series, list, array) or a DataFrame with ``prediction`` and ``reason``.
    """

    func: Callable[[pd.DataFrame], Any]
    name: str = "python fallback"

    def decide(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        result = self.func(rows)
        reasons = np.full(len(rows), self.name, dtype=object)
        if isinstance(result, pd.DataFrame):
            if "reason" in result:
                given = result["reason"].to_numpy(object)
                reasons = np.where(pd.isna(given), reasons, given.astype(str))
            result = result["prediction"]
        labels = np.asarray(result, dtype=object)
        if labels.shape != (len(rows),):
            raise ValueError(f"{self.name} returned {labels.shape} labels for {len(rows)} rows")
        return labels, reasons


Fallback = RuleFallback | CallableFallback


# ----------------------------------------------------------------------------- loading


def load_rules(
    path: Path,
    *,
    allowed_labels: Iterable[str] | None = None,
    known_columns: Iterable[str] | None = None,
) -> RuleFallback:
    """Load and check a rules file (YAML or JSON).

    Args:
        path: the file.
        allowed_labels: when given, every label must be one of them.
        known_columns: when given, every condition's column must be one of them (the input
            contract's columns: the fallback sees the raw record, not model features).

    Raises:
        SpecError: unreadable file, invalid YAML (with its line), unknown key, bad condition,
            label not allowed or unknown column, naming the file and the field.
    """
    import yaml

    from toolkit.core.errors import SpecError, did_you_mean

    path = Path(path)
    labels = None if allowed_labels is None else set(allowed_labels)
    columns = None if known_columns is None else set(known_columns)

    def fail(message: str, location: str, hint: str | None = None) -> SpecError:
        return SpecError(message, path=path, location=location, hint=hint)

    def mapping(data: Any, kind: str, location: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise fail(f"must be a mapping, not {type(data).__name__}", location)
        for key in data:
            if key not in _KEYS[kind]:
                allowed = "allowed: " + ", ".join(sorted(_KEYS[kind]))
                raise fail(
                    f"unknown key {key!r}", location, did_you_mean(str(key), _KEYS[kind]) or allowed
                )
        return data

    def label(value: Any, location: str) -> str:
        if not isinstance(value, str) or not value:
            raise fail("label must be a non-empty string", location)
        if labels is not None and value not in labels:
            hint = did_you_mean(value, labels) or "allowed: " + ", ".join(sorted(labels))
            raise fail(f"label {value!r} is not an allowed label", location, hint)
        return value

    def condition(text: Any, location: str) -> Condition:
        match = _CONDITION.match(text) if isinstance(text, str) else None
        if match is None:
            hint = (
                "write '<column> <op> <value>', op one of < <= > >= == !=, e.g. 'worst_area > 880'"
            )
            raise fail(f"invalid condition {text!r}", location, hint)
        column, op, raw = match.groups()
        if columns is not None and column not in columns:
            hint = did_you_mean(column, columns) or "use a column of the input contract"
            raise fail(f"unknown column {column!r} in condition {text!r}", location, hint)
        try:
            number = float(raw)
            if not math.isfinite(number):
                raise ValueError(raw)
            value: float | str = number
        except ValueError:
            if op not in ("==", "!="):
                raise fail(f"{op} needs a number, not {raw!r}", location) from None
            value = raw.strip("'\"")
        return Condition(column, op, value)

    try:
        data = mapping(yaml.safe_load(path.read_text(encoding="utf-8")), "top level", "top level")
    except OSError as exc:
        raise SpecError(f"cannot read fallback rules: {exc.strerror or exc}", path=path) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else None
        raise SpecError(
            f"invalid YAML: {getattr(exc, 'problem', None) or exc}", path=path, location=where
        ) from exc
    if not isinstance(data.get("rules"), list) or not data["rules"]:
        raise fail("'rules' must be a non-empty list", "rules")
    rules = []
    for i, entry in enumerate(data["rules"]):
        where = f"rules[{i}]"
        entry = mapping(entry, "rule", where)
        if missing := [k for k in ("when", "label") if k not in entry]:
            raise fail(f"missing key {missing[0]!r}", where)
        texts = entry["when"] if isinstance(entry["when"], list) else [entry["when"]]
        when = tuple(condition(t, f"{where}.when") for t in texts)
        reason = str(entry.get("reason") or " and ".join(map(str, when)))
        rules.append(
            Rule(
                str(entry.get("name") or f"rule_{i}"),
                when,
                label(entry["label"], f"{where}.label"),
                reason,
            )
        )
    default_label, default_reason = None, "no fallback rule matched"
    if data.get("default") is not None:
        default = mapping(data["default"], "default", "default")
        default_label = label(default.get("label"), "default.label")
        default_reason = "rule default: " + str(default.get("reason") or "no other rule matched")
    return RuleFallback(
        str(data.get("name") or path.stem), tuple(rules), default_label, default_reason, str(path)
    )


def resolve_callable(
    ref: str | Callable[..., Any], *, base_dir: Path | None = None
) -> Callable[..., Any]:
    """A function from ``"package.module:function"`` or ``"path/file.py:function"``.

    A function loaded from a file is not importable by name, so it is pickled by value into a
    logged model: serving does not need the file.

    Raises:
        SpecError: malformed reference, module or file not found, or not a function.
    """
    import importlib
    import runpy

    from toolkit.core.errors import SpecError

    if callable(ref):
        return ref
    module, _, attr = str(ref).rpartition(":")
    if not module or not attr:
        raise SpecError(
            f"invalid fallback reference {ref!r}",
            hint="use 'module:function' or 'file.py:function'",
        )
    try:
        if module.endswith(".py"):
            file = Path(base_dir or ".") / module
            namespace = runpy.run_path(str(file), run_name=f"toolkit_guard_{file.stem}")
        else:
            namespace = vars(importlib.import_module(module))
    except (OSError, ImportError) as exc:
        raise SpecError(f"cannot load fallback {ref!r}: {exc}") from exc
    if not callable(func := namespace.get(attr)):
        raise SpecError(f"fallback {ref!r}: {attr!r} is not a function in {module}")
    return func
