"""Where steps execute: ``local`` (threads of this process) or ``dask`` (a distributed cluster).

The orchestrator walks the DAG the same way for both: a thread per running step calls
:meth:`StepExecutor.run`, which either executes the step right there (local) or submits it to
a Dask worker and waits for its report (dask). Dask is imported only by
:mod:`toolkit.execute.dask_executor`, and only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from toolkit.core.errors import UsageError, did_you_mean
from toolkit.core.settings import Settings
from toolkit.execute.step_context import StepContext, StepHooks
from toolkit.execute.step_exec import run_step
from toolkit.plan.planned import Plan, PlannedStep
from toolkit.reports.summary import StepReport

EXECUTORS = ("local", "dask")


class StepExecutor(Protocol):
    name: str
    capacity: int  # how many steps may run at once

    def run(self, step: PlannedStep, ctx: StepContext, hooks: StepHooks) -> StepReport: ...

    def stop(self) -> None: ...


class LocalExecutor:
    """Each step in its own kernel, started from a thread of this process."""

    name = "local"

    def __init__(self, workers: int | None) -> None:
        self.capacity = max(1, workers or os.cpu_count() or 1)

    def run(self, step: PlannedStep, ctx: StepContext, hooks: StepHooks) -> StepReport:
        return run_step(step, ctx, hooks)

    def stop(self) -> None:
        pass  # the hooks kill the kernels


@contextmanager
def open_executor(
    name: str,
    *,
    workers: int | None,
    scheduler: str | None,
    settings: Settings,
    plan: Plan,
) -> Iterator[StepExecutor]:
    """Connect to where the steps will run; raises UsageError before anything has run."""
    if name == "local":
        if scheduler:
            raise UsageError("--scheduler only applies to --executor dask")
        yield LocalExecutor(workers)
        return
    if name == "dask":
        from toolkit.execute.dask_executor import DaskExecutor

        executor = DaskExecutor.connect(scheduler, settings=settings, plan=plan, workers=workers)
        try:
            yield executor
        finally:
            executor.close()
        return
    raise UsageError(
        f"unknown executor {name!r} (choose from {', '.join(EXECUTORS)})",
        hint=did_you_mean(name, EXECUTORS),
    )
