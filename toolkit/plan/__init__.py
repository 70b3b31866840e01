"""Planning: a spec becomes a frozen, ordered DAG of steps with resolved parameters.

Re-exports :mod:`toolkit.plan.build` so that ``from toolkit.plan import ...`` keeps working.
"""

from toolkit.plan.build import (
    DATA_DIR,
    Plan,
    PlannedInput,
    PlannedOutput,
    PlannedStep,
    build_plan,
    installed_kernels,
    parse_overrides,
)

__all__ = [
    "DATA_DIR",
    "Plan",
    "PlannedInput",
    "PlannedOutput",
    "PlannedStep",
    "build_plan",
    "installed_kernels",
    "parse_overrides",
]
