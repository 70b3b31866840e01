"""Data contracts: the suite files (no GX), the one GX adapter, validating (the notebook's
``check``), results, drafting, and the checks around a step.

Re-exports the public names so that ``from toolkit.contracts import ...`` keeps working.
"""

from toolkit.contracts.api import check, check_file, validate, write_result
from toolkit.contracts.result import (
    ContractResult,
    ExpectationOutcome,
)
from toolkit.contracts.suites import Suite, list_suites, load_suite

__all__ = [
    "ContractResult",
    "ExpectationOutcome",
    "Suite",
    "check",
    "check_file",
    "list_suites",
    "load_suite",
    "validate",
    "write_result",
]
