"""The in-notebook API: record metrics, parameters and outputs for the runner.

Usage in a notebook::

    from toolkit import step
    step.log_metric("roc_auc", 0.97)
    step.log_metrics({"precision": 0.95, "recall": 0.93})

Under ``toolkit run`` each call appends one JSON line to the file named by the
``TOOLKIT_EVENTS_FILE`` environment variable, which the runner forwards to MLflow while the step
runs. Run by hand in JupyterLab, the calls keep the values in memory and :func:`recorded`
shows them, so the same notebook works in both places. This module imports only the standard
library: it must stay cheap to import inside every kernel.
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.core.jsonable import dumps

EVENTS_ENV = "TOOLKIT_EVENTS_FILE"
_lock = threading.Lock()
_memory: list[dict[str, Any]] = []


def in_pipeline() -> bool:
    """True when this notebook runs as a step of ``toolkit run``."""
    return bool(os.environ.get(EVENTS_ENV))


def _emit(event: dict[str, Any]) -> None:
    event.setdefault("ts", int(time.time() * 1000))
    with _lock:
        _memory.append(event)
        target = os.environ.get(EVENTS_ENV)
        if target:
            # One short append per event, flushed at once, so the runner can tail the file.
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(dumps(event) + "\n")


def _number(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric {key!r} must be a number, got {value!r}") from None
    if math.isnan(number):
        raise ValueError(f"metric {key!r} is NaN; log a number or leave it out")
    return number


def log_metric(key: str, value: float, step: int | None = None) -> None:
    """Record one metric value; ``step`` orders values of the same key (epochs, batches)."""
    _emit({"kind": "metric", "key": key, "value": _number(key, value), "step": step})


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """Record several metrics at once."""
    for key, value in metrics.items():
        log_metric(key, value, step)


def log_param(key: str, value: Any) -> None:
    """Record a value the notebook chose at run time (not one passed as a parameter)."""
    _emit({"kind": "param", "key": key, "value": value})


def log_output(name: str, path: str | os.PathLike[str]) -> None:
    """Record a file the notebook wrote beyond its declared outputs."""
    _emit({"kind": "output", "name": name, "path": str(Path(path).resolve())})


@dataclass(frozen=True)
class Recorded:
    """What this kernel has recorded so far; renders as a table in JupyterLab."""

    events: tuple[dict[str, Any], ...]

    @property
    def metrics(self) -> dict[str, float]:
        """The latest value of each metric."""
        return {e["key"]: e["value"] for e in self.events if e["kind"] == "metric"}

    def _repr_html_(self) -> str:
        """Metrics (latest value, count, range and a sparkline), then params and outputs."""
        from toolkit.reports.step_repr import render_recorded  # lazy: Jinja2, only to display

        return render_recorded(self.events, in_pipeline=in_pipeline())

    def __repr__(self) -> str:
        lines = [
            f"{e['kind']:<7} {e.get('key') or e.get('name')} = {e.get('value', e.get('path'))}"
            for e in self.events
        ]
        return "\n".join(lines) or "(nothing recorded)"


def recorded() -> Recorded:
    """Everything recorded in this kernel, in order."""
    with _lock:
        return Recorded(tuple(_memory))
