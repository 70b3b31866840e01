"""Data contracts: suites (Great Expectations behind one module), results, drafting,
and the checks around a step.

Re-exports :mod:`toolkit.contracts.suites` so that ``from toolkit.contracts import ...`` keeps working.
"""

from toolkit.contracts.result import (
    ContractResult,
    ExpectationOutcome,
)
from toolkit.contracts.suites import (
    Suite,
    check,
    check_file,
    list_suites,
    load_suite,
    validate,
    write_result,
)

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
