"""Production readiness of a pipeline that releases a model (see :mod:`.controls`)."""

from toolkit.readiness.controls import Control, Evidence, ReadinessReport, evaluate

__all__ = ["Control", "Evidence", "ReadinessReport", "evaluate"]
