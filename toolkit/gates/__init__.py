"""Release gates: parse the spec's checks and evaluate them against metrics.

Re-exports :mod:`toolkit.gates.evaluation` so that ``from toolkit.gates import ...`` keeps working.
"""

from toolkit.gates.evaluation import (
    CHAMPION,
    OPERATORS,
    Expr,
    Gate,
    GateReport,
    GateResult,
    Kind,
    evaluate_gate,
    evaluate_gates,
    parse_check,
    parse_checks,
)

__all__ = [
    "CHAMPION",
    "OPERATORS",
    "Expr",
    "Gate",
    "GateReport",
    "GateResult",
    "Kind",
    "evaluate_gate",
    "evaluate_gates",
    "parse_check",
    "parse_checks",
]
