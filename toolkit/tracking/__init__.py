"""MLflow tracking: the client, the pipeline's and steps' runs, live metric forwarding.

Re-exports :mod:`toolkit.tracking.client` so that ``from toolkit.tracking import ...`` keeps working.
"""

from toolkit.tracking.client import (
    Tracker,
)

__all__ = [
    "Tracker",
]
