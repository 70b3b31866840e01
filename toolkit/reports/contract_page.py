"""A contract result as HTML: the fragment a notebook shows, or a whole offline page.

Read by attribute from :class:`toolkit.contracts.result.ContractResult` (its
``_repr_html_`` and ``to_html`` call here) through ``contract.html.j2``.
"""

from __future__ import annotations

from typing import Any

from toolkit.reports.jinja import render
from toolkit.reports.text import short


def _row(o: Any) -> dict[str, Any]:
    """What one expectation's row shows beside its raw fields."""
    observed = "" if o.observed_value is None else short(o.observed_value)
    if o.details:
        observed = f"{observed} {short(o.details)}".strip()
    unexpected = ""
    if o.unexpected_count is not None:
        pct = "" if o.unexpected_percent is None else f"{o.unexpected_percent:.3g}%"
        unexpected = f"{o.unexpected_count} ({pct})"
    return {
        "outcome": o,
        "kwargs": o.describe_kwargs(),
        "observed": observed,
        "unexpected": unexpected,
        "examples": ", ".join(short(v, 40) for v in o.examples),
    }


def render_contract(result: Any, *, full_page: bool = True) -> str:
    """The result of one validation: a whole page, or (``full_page=False``) the fragment."""
    stats = result.statistics
    passed, evaluated = stats["successful_expectations"], stats["evaluated_expectations"]
    facts = [f"{passed} of {evaluated} expectations passed"]
    if result.data_name:
        facts.insert(0, f"data: {result.data_name}")
    if result.row_count is not None:
        facts.append(f"{result.row_count:,} rows")
    if result.validated_at:
        facts.append(f"validated {result.validated_at}")
    template = "contract_page.html.j2" if full_page else "contract.html.j2"
    rows = [_row(o) for o in result.outcomes]
    return render(template, result=result, facts=facts, rows=rows)
