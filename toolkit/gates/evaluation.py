"""Release gates: parse the spec's ``gates.checks`` and evaluate them against a run's metrics.

Pure policy, no MLflow: the runner reads the metrics of the gates step and the champion's
metrics from :mod:`toolkit.release.registry`, and this module decides. A check is one of

* ``contracts``: every contract result of the run passed, warnings included;
* ``METRIC OP EXPR``: ``OP`` is one of ``>= > <= < ==``; ``EXPR`` is arithmetic (``+ - * /``,
  parentheses) over numbers, other metrics of the run and ``champion.METRIC``. Names are
  identifiers with dots (``test.roc_auc``) or any metric key in backticks (`` `val/auc` ``).

Kinds, for reports: ``champion`` when ``EXPR`` mentions the champion, ``latency`` when the metric
ends in ``_ms`` or contains ``latency``, ``threshold`` otherwise. The first release has no
champion: champion gates then pass with the note "no champion yet". A champion that never logged
the metric also passes with a note; failing would block every release until someone forces one.

Comparisons treat values within a relative 1e-9 as equal, so ``0.96 >= 0.97 - 0.01`` holds
although ``0.97 - 0.01`` is 0.9599999999999999 in floating point.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal, NoReturn

from toolkit.core.errors import GateFailed, RegistryError, SpecError
from toolkit.core.jsonable import dumps, number

Kind = Literal["threshold", "champion", "latency", "contracts"]
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
CHAMPION = "champion"
_REL_TOL = 1e-9
_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>(?:champion\.)?(?:`[^`]+`|[A-Za-z_][\w.]*))"
    r"|(?P<op>>=|<=|==|!=|=|>|<)"
    r"|(?P<sym>[-+*/()]))"
)

# An expression tree: ("num", v) | ("metric", name) | ("champion", name) | ("neg", e)
# | ("bin", op, left, right). Tuples keep Gate hashable and frozen.
Expr = tuple[Any, ...]


@dataclass(frozen=True)
class Gate:
    """One parsed check. ``metric`` and ``op`` are None for the ``contracts`` gate."""

    text: str
    kind: Kind
    metric: str | None = None
    op: str | None = None
    rhs: Expr | None = None

    @property
    def name(self) -> str:
        return self.metric or "contracts"


class _Parser:
    """Recursive descent over the tokens of one check; errors name the check text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos, text = 0, text.rstrip()
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None or match.lastgroup is None:
                self.fail(f"unexpected {text[pos:].strip()[:10]!r}")
            self.tokens.append((match.lastgroup, match.group(match.lastgroup)))
            pos = match.end()
        self.i = 0

    def fail(self, why: str) -> NoReturn:
        raise ValueError(why)

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            self.fail("the expression ends too early")
        self.i += 1
        return token

    def expr(self) -> Expr:
        node = self.term()
        while (tok := self.peek()) and tok[1] in "+-" and tok[0] == "sym":
            self.i += 1
            node = ("bin", tok[1], node, self.term())
        return node

    def term(self) -> Expr:
        node = self.factor()
        while (tok := self.peek()) and tok[1] in "*/" and tok[0] == "sym":
            self.i += 1
            node = ("bin", tok[1], node, self.factor())
        return node

    def factor(self) -> Expr:
        kind, value = self.take()
        if kind == "num":
            return ("num", float(value))
        if kind == "name":
            if value.startswith(CHAMPION + "."):
                return ("champion", _unquote(value[len(CHAMPION) + 1 :]))
            return ("metric", _unquote(value))
        if value == "-":
            return ("neg", self.factor())
        if value == "(":
            node = self.expr()
            if self.take()[1] != ")":
                self.fail("missing ')'")
            return node
        self.fail(f"expected a number or a metric, got {value!r}")


def _unquote(name: str) -> str:
    return name[1:-1] if name.startswith("`") else name


def _refs(node: Expr, kind: str) -> set[str]:
    if node[0] == kind:
        return {node[1]}
    return set().union(*(_refs(n, kind) for n in node[1:] if isinstance(n, tuple)))


def parse_check(text: str) -> Gate:
    """Parse one check; a ValueError explains what is wrong (see :func:`parse_checks`)."""
    if not text.strip():
        raise ValueError("the check is empty")
    if text.strip() == "contracts":
        return Gate(text=text.strip(), kind="contracts")
    parser = _Parser(text)
    kind, metric = parser.take()
    if kind != "name" or metric.startswith(CHAMPION + "."):
        parser.fail("the left side must be a metric of this run, e.g. 'roc_auc >= 0.9'")
    op = parser.take()
    if op[0] == "sym" and op[1] in "-/" and not metric.startswith("`"):
        # "val-loss <= 1" would read as "val" minus "loss": such names need backticks.
        written = re.split(r"\s*[<>=!]", text.strip(), maxsplit=1)[0]
        fixed = text.strip().replace(written, f"`{written}`", 1)
        parser.fail(
            f"metric name {written!r} contains {op[1]!r}, which the gate grammar reads as "
            f"arithmetic; put the name in backticks, and the check in quotes (a YAML value "
            f"cannot start with a backtick): - '{fixed}'"
        )
    if op[0] != "op" or op[1] not in OPERATORS:
        why = f"expected one of {' '.join(OPERATORS)} after {metric!r}, got {op[1]!r}"
        if op[1] == "!=":
            why += " (a gate says what must hold: write it with < or >, or as two gates)"
        parser.fail(why)
    rhs = parser.expr()
    if (extra := parser.peek()) is not None:
        parser.fail(f"unexpected {extra[1]!r} after the expression")
    name = _unquote(metric)
    if _refs(rhs, "champion"):
        gate_kind: Kind = "champion"
    elif name.endswith("_ms") or "latency" in name:
        gate_kind = "latency"
    else:
        gate_kind = "threshold"
    return Gate(text=text.strip(), kind=gate_kind, metric=name, op=op[1], rhs=rhs)


def parse_checks(
    checks: Iterable[str | Gate], *, location: str = "gates.checks", path: object | None = None
) -> list[Gate]:
    """Parse every check; a bad one raises :class:`SpecError` naming its index and text (and
    ``path``, the spec file, when given)."""
    gates = []
    for index, check in enumerate(checks):
        if isinstance(check, Gate):
            gates.append(check)
            continue
        try:
            gates.append(parse_check(check))
        except ValueError as exc:
            raise SpecError(
                f"bad gate {check!r}: {exc}",
                path=path,
                location=f"{location}[{index}]",
                hint="write e.g. 'roc_auc >= 0.95', 'roc_auc >= champion.roc_auc - 0.01', "
                "'predict_p95_ms <= 20' or 'contracts'",
            ) from None
    return gates


@dataclass(frozen=True)
class GateResult:
    """The outcome of one gate. ``error`` marks a gate that could not be evaluated at all
    (a metric the step never logged, a division by zero): a problem of the spec, not the model."""

    name: str
    expression: str
    kind: Kind
    passed: bool
    value: float | None = None
    threshold: float | None = None
    op: str | None = None
    note: str = ""
    error: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateReport:
    """Every gate's result; ``passed`` only when all passed."""

    results: tuple[GateResult, ...]
    champion_version: str | None = None

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failed(self) -> tuple[GateResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "champion_version": self.champion_version,
            "gates": [r.to_dict() for r in self.results],
        }

    def to_json(self) -> str:
        return dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateReport:
        results = tuple(
            GateResult(
                **{**g, "value": number(g.get("value")), "threshold": number(g.get("threshold"))}
            )
            for g in data.get("gates", ())
        )
        return cls(results=results, champion_version=data.get("champion_version"))

    def summary_lines(self) -> list[str]:
        """One line per gate, then the verdict: for logs and the CLI."""
        lines = []
        for r in self.results:
            mark = "PASS" if r.passed else ("ERROR" if r.error else "FAIL")
            detail = ""
            if r.value is not None and r.threshold is not None:
                detail = f"  ({_fmt(r.value)} {r.op} {_fmt(r.threshold)})"
            elif r.value is not None:
                detail = f"  ({_fmt(r.value)})"
            note = f"  [{r.note}]" if r.note else ""
            lines.append(f"{mark:<5} {r.expression}{detail}{note}")
        failed = len(self.failed)
        verdict = "all gates passed" if not failed else f"{failed} of {len(self.results)} failed"
        return [*lines, f"gates: {verdict}"]

    def _repr_html_(self) -> str:
        """A small pass/fail table, for previewing gates in a notebook."""
        from toolkit.reports.gate_pages import render_gate_report  # lazy: Jinja2

        return render_gate_report(self)

    def raise_for_failure(self) -> None:
        """Raise if a gate failed: :class:`RegistryError` when a gate could not be evaluated
        (a spec problem, exit 2), :class:`GateFailed` when the model fell short (exit 4)."""
        errors = [r for r in self.results if r.error]
        if errors:
            raise RegistryError("; ".join(f"gate {r.expression!r}: {r.note}" for r in errors))
        if not self.passed:
            raise GateFailed(
                "release gates failed:\n  " + "\n  ".join(self.summary_lines()),
                hint="nothing was registered; fix the model or the gates and run again",
            )


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


class _Undefined(Exception):
    """A value an expression needs is missing; ``error`` tells whether it is a spec problem."""

    def __init__(self, note: str, *, error: bool) -> None:
        super().__init__(note)
        self.note = note
        self.error = error


def _eval(
    node: Expr, metrics: Mapping[str, float], champion: Mapping[str, float], logged: str
) -> float:
    tag = node[0]
    if tag == "num":
        return float(node[1])
    if tag == "metric":
        if node[1] not in metrics:
            raise _Undefined(f"metric {node[1]!r} was never logged; {logged}", error=True)
        return float(metrics[node[1]])
    if tag == "champion":
        if node[1] not in champion:
            raise _Undefined(f"champion has no metric {node[1]!r}; nothing to compare", error=False)
        return float(champion[node[1]])
    if tag == "neg":
        return -_eval(node[1], metrics, champion, logged)
    left = _eval(node[2], metrics, champion, logged)
    right = _eval(node[3], metrics, champion, logged)
    if node[1] == "/" and right == 0:
        raise _Undefined("division by zero", error=True)
    return {"+": left + right, "-": left - right, "*": left * right}.get(node[1], left / right)


def _compare(value: float, op: str, threshold: float) -> bool:
    if math.isclose(value, threshold, rel_tol=_REL_TOL, abs_tol=1e-12):
        return op in (">=", "<=", "==")
    return OPERATORS[op](value, threshold)


def evaluate_gate(
    gate: Gate,
    metrics: Mapping[str, float],
    champion: Mapping[str, float] | None,
    contracts_ok: bool | None,
    *,
    step: str | None = None,
    champion_version: str | None = None,
) -> GateResult:
    """Evaluate one parsed gate (see :func:`evaluate_gates`)."""
    result = partial(GateResult, name=gate.name, expression=gate.text, kind=gate.kind)
    if gate.kind == "contracts":
        if contracts_ok is None:
            return result(passed=False, note="the run validated no contracts")
        note = "every contract passed" if contracts_ok else "a contract failed or warned"
        return result(passed=contracts_ok, note=note)
    assert gate.metric is not None and gate.op is not None and gate.rhs is not None
    source = f"step {step!r}" if step else "the step"
    logged = f"{source} logged: {', '.join(sorted(metrics)) or 'no metrics'}"
    if gate.metric not in metrics:
        note = f"metric {gate.metric!r} was never logged; {logged}"
        return result(op=gate.op, passed=False, note=note, error=True)
    value = float(metrics[gate.metric])
    if gate.kind == "champion" and champion is None:
        return result(op=gate.op, value=value, passed=True, note="no champion yet")
    try:
        threshold = _eval(gate.rhs, metrics, champion or {}, logged)
    except _Undefined as why:
        if why.error:
            return result(op=gate.op, value=value, passed=False, note=why.note, error=True)
        who = f"champion v{champion_version}" if champion_version else "the champion"
        note = why.note.replace("champion", who, 1)
        return result(op=gate.op, value=value, passed=True, note=note)
    if math.isnan(value) or math.isnan(threshold):
        note = "value is NaN" if math.isnan(value) else "threshold is NaN"
        return result(op=gate.op, value=value, threshold=threshold, passed=False, note=note)
    passed = _compare(value, gate.op, threshold)
    note = (
        f"vs champion v{champion_version}" if gate.kind == "champion" and champion_version else ""
    )
    return result(op=gate.op, value=value, threshold=threshold, passed=passed, note=note)


def evaluate_gates(
    checks: Sequence[str | Gate],
    metrics: Mapping[str, float],
    champion: Mapping[str, float] | None,
    contracts_ok: bool | None,
    *,
    step: str | None = None,
    champion_version: str | None = None,
) -> GateReport:
    """Evaluate every check; never stops at the first failure, so the report shows them all.

    ``metrics`` are the gates step's metrics, ``champion`` the current champion's (None before
    the first release), ``contracts_ok`` whether every contract of the run passed without
    warnings (None when the run validated none). Bad check text raises :class:`SpecError`.
    """
    gates = parse_checks(checks)
    results = tuple(
        evaluate_gate(
            g, metrics, champion, contracts_ok, step=step, champion_version=champion_version
        )
        for g in gates
    )
    return GateReport(results=results, champion_version=champion_version)
