"""Contracts around a step: inputs are checked before it runs, outputs after it writes them.

Results are written to ``<run>/contracts/<step>/`` as JSON and HTML. A blocking failure on an
``on_fail: error`` attachment fails the step with ``kind="contract"`` (exit code 3); the data is
never deleted, so the offending file stays in the run folder for inspection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from toolkit.core.errors import ContractError, StepFailed
from toolkit.core.tables import table_format
from toolkit.plan.planned import Plan, PlannedInput, PlannedOutput, PlannedStep


def load_suites(plan: Plan, expectations_dir: Path, cache_dir: Path | None = None) -> None:
    """Load every suite the plan attaches, so a missing or invalid one fails before any step.

    A suite file whose exact bytes were already validated with this version of Great
    Expectations is not validated again: importing GX costs seconds, and ``toolkit plan`` or a
    fully cached run should not pay it. Any edit changes the hash and brings GX back.

    Raises:
        ContractError: naming the step and attachment (or ``guard.input_contract``), with
            "did you mean" for a typo.
    """
    for step in plan.steps:
        for direction, items in (("inputs", step.inputs), ("outputs", step.outputs)):
            for key, item in items.items():
                if not item.contract:
                    continue
                try:
                    table_format(item.path)  # an unreadable format fails before any step runs
                    _load_once(item.contract, expectations_dir, cache_dir)
                except ContractError as exc:
                    raise ContractError(
                        f"step {step.name!r}, {direction}.{key}: {exc.message}", hint=exc.hint
                    ) from exc
    # The suite the model's guard compiles at registration: checked here too, so that a typo
    # fails before any step, and registration finds it validated (no GX import at the end).
    contract = (plan.guard or {}).get("input_contract")
    name = contract.get("suite") if isinstance(contract, Mapping) else contract
    if isinstance(name, str):
        try:
            _load_once(name, expectations_dir, cache_dir)
        except ContractError as exc:
            raise ContractError(f"guard.input_contract: {exc.message}", hint=exc.hint) from exc


def needs_gx(plan: Plan, skip: Callable[[str], bool]) -> bool:
    """Whether a step that will run (``skip`` is False for it) has a contract to check."""
    for step in plan.steps:
        if skip(step.name):
            continue
        if any(i.contract for i in step.inputs.values()):
            return True
        if any(o.contract for o in step.outputs.values()):
            return True
    return False


def warm_up() -> None:
    """Import GX and build its context (seconds) before the first contract check needs it."""
    from toolkit.contracts.gx_adapter import warm_up as build_context

    build_context()


def _load_once(name: str, expectations_dir: Path, cache_dir: Path | None) -> None:
    from toolkit.contracts.suites import load_suite_once

    load_suite_once(name, expectations_dir, cache_dir)


def _row_count_expectation(step: PlannedStep, input_name: str) -> dict[str, Any]:
    from toolkit.core.tables import read_table

    rows = len(read_table(step.inputs[input_name].path, allow_empty=True))
    return {
        "type": "expect_table_row_count_to_equal",
        "kwargs": {"value": rows},
        "severity": "critical",
        "meta": {"source": f"spec: same_rows_as {input_name}"},
        "notes": f"one output row per row of input {input_name!r} ({rows} rows)",
    }


def check(
    step: PlannedStep,
    direction: str,
    attachments: Mapping[str, PlannedInput] | Mapping[str, PlannedOutput],
    expectations_dir: Path,
    out_dir: Path,
) -> list[dict[str, Any]]:
    """Validate every attachment that names a contract; raise on a blocking failure.

    Returns:
        One JSON-ready entry per validated attachment (passing ones included).

    Raises:
        StepFailed: ``kind="contract"``, when an ``on_fail: error`` contract has a critical
            failure or its data cannot be read.
        ContractError: the suite itself is missing or invalid (a usage error, exit 2).
    """
    from toolkit.contracts.api import validate, write_result
    from toolkit.contracts.suites import load_suite
    from toolkit.core.tables import read_table

    entries: list[dict[str, Any]] = []
    blocking: list[str] = []
    details: list[str] = []
    for key, item in attachments.items():
        if not item.contract:
            continue
        suite = load_suite(item.contract, expectations_dir)
        same_rows = getattr(item, "same_rows_as", None)
        if same_rows:
            extra = _row_count_expectation(step, same_rows)
            suite = replace(suite, expectations=(*suite.expectations, extra))
        base = {
            "target": key,
            "direction": direction,
            "suite": suite.name,
            "on_fail": item.on_fail,
            "path": str(item.path),
        }
        try:
            frame = read_table(item.path)
        except ContractError as exc:
            entries.append({**base, "success": False, "blocking": True, "error": exc.message})
            if item.on_fail == "error":
                blocking.append(f"{direction[:-1]} {key!r}")
                details.append(exc.message)
            continue
        result = validate(frame, suite, data_name=f"{step.name}.{key}")
        json_path, html_path = write_result(result, out_dir)
        entries.append(
            {
                **base,
                "success": result.success,
                "blocking": result.blocking,
                "status": result.status,
                "statistics": result.statistics,
                "failures": [o.to_dict() for o in result.failures],
                "summary": result.summary_lines(),
                "json": str(json_path),
                "html": str(html_path),
            }
        )
        if result.blocking and item.on_fail == "error":
            blocking.append(f"{direction[:-1]} {key!r} (suite {suite.name!r})")
            details.extend(result.summary_lines())
    if blocking:
        raise ContractFailed(
            step.name,
            "contract violated on " + ", ".join(blocking),
            details=details,
            entries=entries,
        )
    return entries


class ContractFailed(StepFailed):
    """A step failed by contract; carries every result so the report keeps them."""

    def __init__(
        self, step: str, reason: str, *, details: list[str], entries: list[dict[str, Any]]
    ) -> None:
        super().__init__(step, reason, kind="contract", details=details)
        self.entries = entries
