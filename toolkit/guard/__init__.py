"""Guarded scoring: wrap a trained model so that it is safe to call in production.

The code lives in :mod:`toolkit.guard.build`; this file only re-exports.
"""

from toolkit.guard.build import (
    build_guarded_model,
    compile_expectations,
    compile_suite,
    load_guard_config,
)
from toolkit.guard.decisions import (
    FALLBACK,
    MODEL,
    OUTPUT_COLUMNS,
    PATHS,
    REJECTED,
)
from toolkit.guard.input_contract import (
    CheckResult,
    ColumnRule,
    InputContract,
)
from toolkit.guard.model import GuardedModel
from toolkit.guard.policy import (
    CallableFallback,
    ConfidencePolicy,
    OutputContract,
    RuleFallback,
    load_rules,
)

__all__ = [
    "FALLBACK",
    "MODEL",
    "OUTPUT_COLUMNS",
    "PATHS",
    "REJECTED",
    "CallableFallback",
    "CheckResult",
    "ColumnRule",
    "ConfidencePolicy",
    "GuardedModel",
    "InputContract",
    "OutputContract",
    "RuleFallback",
    "build_guarded_model",
    "compile_expectations",
    "compile_suite",
    "load_guard_config",
    "load_rules",
]
