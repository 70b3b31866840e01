"""A run's registry work done by the engine helper: the champion's metrics for the gates, the
model logged ahead, the version registered, the diff against the champion.

In the run's process this work imports MLflow, unpickles the model (importing its libraries)
and builds its guard: about 7 s of CPU beside the kernels for the example's model. The daemon
has all of it imported from earlier runs. Each call is a function of plain, picklable values;
whatever fails here is done again by the run itself (:class:`~toolkit.execute.release_stage.
Release`), which withdraws a version a cut-short registration may have left behind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from toolkit.core.settings import Settings
from toolkit.execute import release_stage
from toolkit.execute.model_log import load_model_output, log_model
from toolkit.plan.planned import Plan
from toolkit.reports.summary import RunReport


def log_ahead(plan: Plan, settings: Settings, parent: str) -> str:
    """The model of ``plan``'s model step, loaded here and logged to the run ``parent``."""
    assert plan.model is not None
    path = plan.step(plan.model.step).outputs[plan.model.output].path
    estimator = load_model_output(path)
    return log_model(plan, settings, parent, estimator, None)


def champion_diff(settings: Settings, report: RunReport) -> None:
    from toolkit.execute.run_diff import record_champion_diff

    record_champion_diff(settings, report)


CALLS: dict[str, Callable[..., Any]] = {
    "champion": release_stage.champion_of,
    "log_ahead": log_ahead,
    "register": release_stage.register_version,
    "champion_diff": champion_diff,
}
