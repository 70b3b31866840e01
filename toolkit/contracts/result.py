"""Result types of a contract validation and their renderings (JSON, HTML, text).

Kept apart from :mod:`toolkit.contracts` so that reading, rendering or comparing a result never
imports Great Expectations: this module only needs the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolkit.core.jsonable import jsonable
from toolkit.reports.text import short

_COLUMN_KWARGS = ("column", "column_A", "column_B")
#: Examples kept per failing expectation: enough to recognise the problem, small on 1M rows.
MAX_EXAMPLES = 5


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}%"


@dataclass(frozen=True)
class ExpectationOutcome:
    """What happened to one expectation of a suite, in suite order.

    Attributes:
        index: position of the expectation in the suite file (0-based).
        expectation_type: e.g. ``expect_column_values_to_be_between``.
        column: the ``column`` kwarg, or None for table-level expectations.
        kwargs: the expectation's kwargs exactly as written in the suite file.
        severity: ``critical``, ``warning`` or ``info``.
        success: whether the expectation held.
        observed_value: the aggregate GX observed (mean, row count, dtype...), if any.
        unexpected_count: rows that broke a per-row expectation, if applicable.
        unexpected_percent: the same as a percentage of the non-null rows.
        examples: up to :data:`MAX_EXAMPLES` distinct offending values.
        error: why the expectation could not be evaluated (e.g. a missing column), or None.
        details: extra GX detail, e.g. ``{"mismatched": {"missing": ["x"]}}`` for column sets.
        notes: the suite author's notes for this expectation.
    """

    index: int
    expectation_type: str
    column: str | None
    kwargs: dict[str, Any]
    severity: str
    success: bool
    observed_value: Any = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    examples: tuple[Any, ...] = ()
    error: str | None = None
    details: dict[str, Any] | None = None
    notes: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (NaN becomes None)."""
        return jsonable(
            {
                "index": self.index,
                "type": self.expectation_type,
                "column": self.column,
                "kwargs": self.kwargs,
                "severity": self.severity,
                "success": self.success,
                "observed_value": self.observed_value,
                "unexpected_count": self.unexpected_count,
                "unexpected_percent": self.unexpected_percent,
                "examples": list(self.examples),
                "error": self.error,
                "details": self.details,
                "notes": self.notes,
            }
        )

    def describe_kwargs(self) -> str:
        """The kwargs other than ``column``, as ``k=v`` text, for a compact display."""
        parts = [f"{k}={short(jsonable(v), 60)}" for k, v in self.kwargs.items() if k != "column"]
        return ", ".join(parts)

    def summary(self) -> str:
        """One line for the CLI: status, severity, type, column, then what was seen."""
        head = f"{'ok' if self.success else 'FAIL'} [{self.severity}] {self.expectation_type}"
        if self.column is not None:
            head += f" ({self.column})"
        if self.error:
            return f"{head}: {self.error}"
        facts = []
        if self.observed_value is not None:
            facts.append(f"observed {short(self.observed_value)}")
        if self.unexpected_count:
            facts.append(
                f"{self.unexpected_count} unexpected ({_percent(self.unexpected_percent)})"
            )
        if self.examples:
            facts.append("e.g. " + ", ".join(short(v, 30) for v in self.examples))
        if self.details:
            facts.append(short(self.details))
        if not facts and self.kwargs:
            facts.append(self.describe_kwargs())
        return f"{head}: {'; '.join(facts)}" if facts else head


@dataclass(frozen=True)
class ContractResult:
    """The outcome of validating one DataFrame against one suite.

    ``success`` is False as soon as any expectation fails; ``blocking`` is True only when a
    failing expectation has severity ``critical`` (GX's ``severity`` never changes success, so a
    warning-only failure is "not successful" yet "not blocking").
    """

    suite_name: str
    data_name: str
    outcomes: tuple[ExpectationOutcome, ...]
    row_count: int | None = None
    suite_path: str | None = None
    validated_at: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        """The failing expectations, in suite order."""
        return tuple(o for o in self.outcomes if not o.success)

    @property
    def blocking(self) -> bool:
        return any(o.severity == "critical" for o in self.failures)

    @property
    def statistics(self) -> dict[str, float]:
        """Counts in GX's vocabulary: evaluated, successful and unsuccessful expectations."""
        evaluated = len(self.outcomes)
        ok = sum(o.success for o in self.outcomes)
        return {
            "evaluated_expectations": evaluated,
            "successful_expectations": ok,
            "unsuccessful_expectations": evaluated - ok,
            "success_percent": 100.0 * ok / evaluated if evaluated else 100.0,
        }

    @property
    def status(self) -> str:
        """``passed``, ``warning`` (only non-critical failures) or ``failed``."""
        if self.success:
            return "passed"
        return "failed" if self.blocking else "warning"

    def file_stem(self) -> str:
        """A safe file name stem for this result: the data file's stem, else the suite name."""
        name = self.data_name.replace("\\", "/").rsplit("/", 1)[-1] or self.suite_name
        for suffix in (".csv.gz", ".csv", ".tsv", ".parquet", ".pq"):
            if name.lower().endswith(suffix):
                name = name[: -len(suffix)]
                break
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
        return safe or self.suite_name

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form, with every expectation in suite order."""
        return jsonable(
            {
                "suite": self.suite_name,
                "data_name": self.data_name,
                "success": self.success,
                "blocking": self.blocking,
                "status": self.status,
                "statistics": self.statistics,
                "row_count": self.row_count,
                "suite_path": self.suite_path,
                "validated_at": self.validated_at,
                "meta": self.meta,
                "expectations": [o.to_dict() for o in self.outcomes],
            }
        )

    def summary_lines(self) -> list[str]:
        """One short line per failing expectation, for the CLI."""
        return [o.summary() for o in self.failures]

    def headline(self) -> str:
        stats = self.statistics
        target = f" on {self.data_name}" if self.data_name else ""
        return (
            f"contract {self.suite_name!r}{target}: {self.status.upper()} "
            f"({stats['successful_expectations']}/{stats['evaluated_expectations']} "
            "expectations passed)"
        )

    def __str__(self) -> str:
        return "\n".join([self.headline(), *("  " + line for line in self.summary_lines())])

    def to_html(self, *, full_page: bool = True) -> str:
        """A self-contained, readable HTML report (inline CSS, no scripts, no CDN).

        Args:
            full_page: wrap the fragment in an ``<html>`` document; False gives the fragment
                alone, for embedding (JupyterLab, other reports).
        """
        from toolkit.reports.contract_page import render_contract  # lazy: Jinja2

        return render_contract(self, full_page=full_page)

    def _repr_html_(self) -> str:
        return self.to_html(full_page=False)


# ----------------------------------------------------------------------------- from GX results
# These read GX result objects by attribute only, so this module still never imports GX.


def _exception_messages(info: dict[str, Any]) -> list[str]:
    """Messages of a GX ``exception_info`` in either shape it comes in.

    Flat ``{"raised_exception": bool, "exception_message": ...}`` when the expectation itself
    raised; keyed by ``MetricConfigurationID(...)`` strings when a metric failed (a missing
    column, for one).
    """
    shapes = (
        [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    )
    return [
        str(s.get("exception_message") or "GX raised an exception")
        for s in shapes
        if s.get("raised_exception")
    ]


def outcome_from_gx(
    index: int, entry: dict[str, Any], res: Any, columns: set[str]
) -> ExpectationOutcome:
    """Summarise one GX ``ExpectationValidationResult`` (or None) for suite entry ``index``.

    Args:
        index: position in the suite.
        entry: the suite's expectation dict (``type``, ``kwargs``, ``severity``...).
        res: GX's result for it, or None if GX returned none.
        columns: the validated frame's column names, to name a missing column plainly.
    """
    kwargs = entry["kwargs"]
    column = kwargs.get("column")
    notes = entry.get("notes")
    base: dict[str, Any] = {
        "index": index,
        "expectation_type": entry["type"],
        "column": None if column is None else str(column),
        "kwargs": jsonable(kwargs),
        "severity": entry["severity"],
        "notes": "\n".join(map(str, notes)) if isinstance(notes, list) else notes,
    }
    if res is None:  # never seen; kept so a GX change cannot silently pass an expectation
        return ExpectationOutcome(**base, success=False, error="GX returned no result")
    messages = _exception_messages(res.exception_info or {})
    if messages:
        referenced = [kwargs.get(k) for k in _COLUMN_KWARGS] + list(kwargs.get("column_list", []))
        missing = [str(c) for c in referenced if c is not None and str(c) not in columns]
        error = "; ".join(f"column {c!r} is missing from the data" for c in missing)
        return ExpectationOutcome(**base, success=False, error=error or messages[0])
    result = res.result or {}
    examples: list[Any] = []
    for raw in result.get("partial_unexpected_list") or []:
        value = jsonable(raw)
        if value not in examples:
            examples.append(value)
        if len(examples) == MAX_EXAMPLES:
            break
    count = result.get("unexpected_count")
    return ExpectationOutcome(
        **base,
        success=bool(res.success),
        observed_value=jsonable(result.get("observed_value")),
        unexpected_count=None if count is None else int(count),
        unexpected_percent=jsonable(result.get("unexpected_percent")),
        examples=tuple(examples),
        details=jsonable(result["details"]) if result.get("details") else None,
    )
