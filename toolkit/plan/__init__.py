"""Planning: a spec becomes a frozen, ordered DAG of steps with resolved parameters.

Re-exports the public names so that ``from toolkit.plan import ...`` keeps working.
"""

from toolkit.plan.build import build_plan
from toolkit.plan.kernels import installed_kernels
from toolkit.plan.parameters import parse_overrides
from toolkit.plan.planned import DATA_DIR, Plan, PlannedInput, PlannedOutput, PlannedStep

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
