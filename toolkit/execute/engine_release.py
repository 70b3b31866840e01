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


def register(*args: Any) -> dict[str, Any]:
    """:func:`~toolkit.execute.release_stage.register_version` without the version's model card:
    the helper refreshes it once the run has ended its session (:data:`LATER`)."""
    return release_stage.register_version(*args, card=False)


def refresh_card(registered: dict[str, Any], plan: Plan, settings: Settings, *_: Any) -> None:
    """The registered version's first model card.

    A card is a by-product that never fails a release (``cards.publish.refresh``), and its
    refresh (collecting the version's records, rendering, logging two files: 0.3-0.5 s of CPU)
    was the largest part of registering, on the run's critical path; beside the run's last
    MLflow calls it still slowed them. A helper that dies before it is done leaves the version
    without its first card; any later event (review, promotion, monitoring) or ``toolkit card``
    makes one from the same records.
    """
    from toolkit.cards.publish import refresh

    refresh(registered["name"], registered["version"], "registered", settings=settings)


def champion_diff(settings: Settings, report: RunReport) -> None:
    from toolkit.execute.run_diff import record_champion_diff

    record_champion_diff(settings, report)


CALLS: dict[str, Callable[..., Any]] = {
    "champion": release_stage.champion_of,
    "log_ahead": log_ahead,
    "register": register,
    "champion_diff": champion_diff,
}
# What a call leaves for after the run's session: ``(its result, *its arguments)``.
LATER: dict[str, Callable[..., None]] = {"register": refresh_card}
