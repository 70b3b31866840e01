"""Orchestration: a run of a pipeline as ``prepare -> schedule -> finish``.

``run_pipeline`` builds the plan (no side effects until it succeeds), takes the pipeline's
lock and connects to the executor; :class:`PipelineRun` then prepares the run folder, the
step cache, warm-ups and tracking, hands the steps to the scheduler
(:mod:`toolkit.execute.scheduler`; executors only run steps), and finishes with the report,
the gates, registration and the summary. From the run folder's creation on, any ending
(success, failure, SIGINT or SIGTERM) leaves a ``summary.json`` saying how the run ended.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from toolkit.contracts import step_checks as contract_checks
from toolkit.core.errors import UsageError
from toolkit.core.fsutil import atomic_write_json
from toolkit.core.interrupts import deferred, sigterm_interrupts
from toolkit.core.runlock import pipeline_lock
from toolkit.core.settings import Settings
from toolkit.execute import finish, model_log, recovery, release_stage
from toolkit.execute.cache_session import CacheSession
from toolkit.execute.executors import LocalExecutor, StepExecutor, open_executor
from toolkit.execute.request import RunRequest, prepare, run_redactor, step_cache
from toolkit.execute.resume import reusable_steps
from toolkit.execute.run_record import build_report, plan_record
from toolkit.execute.scheduler import Execution, run_steps
from toolkit.execute.step_context import Event, EventSink, now_iso
from toolkit.plan.planned import Plan
from toolkit.reports.summary import (
    CACHED,
    FAILED,
    INTERRUPTED,
    SKIPPED,
    SUCCEEDED,
    RunReport,
    StepReport,
)
from toolkit.tracking.run_tracking import RunTracking, tracking_disabled

if TYPE_CHECKING:  # imported where used: a run with nothing to execute needs neither
    from toolkit.execute.engine_client import EngineHelper

__all__ = ["EventSink", "RunRequest", "prepare", "run_pipeline", "step_cache"]


def run_pipeline(request: RunRequest, on_event: EventSink | None = None) -> RunReport:
    """Run a pipeline and return its report. Raises only for problems found before any step ran.

    Raises:
        SpecError, NotebookError, UsageError: the spec, a notebook or the request is invalid.
        LockedError: another run of the same pipeline is in progress in this project (exit 6).
    """
    emit = on_event or (lambda event: None)
    settings, plan = prepare(request)
    with (
        pipeline_lock(settings.cache_dir / "locks", plan.pipeline, plan.run_dir.name) as stale,
        open_executor(
            request.executor,
            workers=request.workers,
            scheduler=request.scheduler,
            settings=settings,
            plan=plan,
        ) as executor,
    ):
        if stale and stale.get("run_id"):
            # The last holder of this lock died without letting go: close what it left open.
            recovery.recover(settings, plan.pipeline, str(stale["run_id"]), request.track, emit)
        if request.resume and not (plan.run_dir / "summary.json").exists():
            recovery.recover(settings, plan.pipeline, request.resume, request.track, emit)
        return _run(settings, plan, request, emit, executor)


def _run(
    settings: Settings,
    plan: Plan,
    request: RunRequest,
    emit: EventSink,
    executor: StepExecutor | None = None,
) -> RunReport:
    reused = _open_run_folder(plan, request)
    run = PipelineRun(settings, plan, request, emit, executor or LocalExecutor(request.workers))
    try:
        # From the run folder's creation on, an interrupt or error ends in a summary.
        with sigterm_interrupts():
            run.prepare(reused)
            results, interrupted = run.schedule()
            report = run.finish(results, interrupted)
    except KeyboardInterrupt:
        run.abort(
            INTERRUPTED, "was interrupted after registration", "interrupted by SIGINT or SIGTERM"
        )
        raise
    except BaseException as exc:
        why = f"{type(exc).__name__}: {exc}"
        run.abort(FAILED, f"failed after registration: {exc}", f"the run failed: {why}")
        raise
    finally:
        run.close()
    emit(Event("run_finished", status=report.status))
    return report


def _open_run_folder(plan: Plan, request: RunRequest) -> dict[str, StepReport]:
    """A new run's folder, or the steps an earlier attempt of a resumed run can keep."""
    if request.resume:
        return reusable_steps(plan)
    try:
        plan.run_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError as exc:
        raise UsageError(
            f"run {plan.run_dir.name!r} already exists at {plan.run_dir}",
            hint=f"toolkit run {plan.spec_path} --resume {plan.run_dir.name}",
        ) from exc
    return {}


class PipelineRun:
    """One run from its folder to its summary. Each stage keeps what the ones after it (and
    :meth:`abort`, should anything fail) need: the cache, tracking, the report, the release."""

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        request: RunRequest,
        emit: EventSink,
        executor: StepExecutor,
    ) -> None:
        self.settings, self.plan, self.request = settings, plan, request
        self.emit = emit
        self.executor = executor
        self.tracked = request.track and not tracking_disabled()
        self.cache: CacheSession | None = None
        self.up_to_date: dict[str, Any] | None = None
        self.tracking: RunTracking | None = None
        self.execution: Execution | None = None
        self.report: RunReport | None = None
        self.release: release_stage.Release | None = None
        self.helper: EngineHelper | None = None
        self.prefetch: model_log.ModelPrefetch | None = None
        self.started_at, self.t0 = now_iso(), time.monotonic()

    def prepare(self, reused: dict[str, StepReport]) -> None:
        """The run folder's records, the step cache, engine warm-ups and the MLflow run."""
        plan, settings = self.plan, self.settings
        if self.tracked and release_stage.may_register(plan):
            from toolkit.release.admins import project_admins

            project_admins(settings)  # a malformed list: a usage error before anything starts
        (plan.run_dir / "events").mkdir(exist_ok=True)
        # Notebooks hold parameter values until they are scrubbed after their step: private.
        (plan.run_dir / "notebooks").mkdir(mode=0o700, exist_ok=True)
        atomic_write_json(plan.run_dir / "plan.json", plan_record(plan, settings))
        self.started_at, self.t0 = now_iso(), time.monotonic()
        self.emit(Event("run_started", message=f"{plan.pipeline} {plan.run_dir.name}"))
        self.cache = cache = CacheSession(
            step_cache(settings, plan, self.request.force),
            plan,
            finish.backend_context(settings, self.tracked),
        )
        # Nothing to execute and this very combination already passed its gates in this
        # backend: nothing new to record or register, so MLflow is not even imported (a
        # no-op run stays sub-second).
        self.up_to_date = None if self.request.resume else cache.up_to_date()
        if self.up_to_date and not finish.registration_stands(settings, self.up_to_date):
            self.up_to_date = None  # its version was deleted: the release runs again
        if self.up_to_date:
            since = self.up_to_date["run_id"]
            self.emit(Event("up_to_date", message=f"nothing changed since run {since}"))
        else:
            contracts = contract_checks.needs_gx(plan, cache.expect_hit)
            if self.executor.name == "local":
                from toolkit.execute.engine_client import start_helper

                # First, so GX's import starts on the other core as early as it can.
                self.helper = start_helper(
                    plan.run_dir, settings.cache_dir, contracts=contracts, notebooks=self.tracked
                )
            _warm_up_engines(
                plan, self.tracked, contracts=contracts, helper=self.helper is not None
            )
        if self.tracked and not self.up_to_date:
            from toolkit.execute.engine_client import tracker_for_run

            redactor = run_redactor(plan, settings)
            self.tracking = RunTracking(
                settings,
                plan,
                external_run_id=self.request.run_id,
                redactor=redactor,
                owner_process=True,
                renderer=self.helper.render if self.helper is not None else None,
                # The engine daemon's, when the run has one: MLflow stays out of this process.
                tracker=functools.partial(tracker_for_run, settings, redactor, self.helper),
            )
            self.tracking.start()
            self.emit(Event("tracking", message=settings.tracking_uri))
        if self.tracking is not None and release_stage.may_register(plan):
            self.prefetch = model_log.prefetcher(plan, settings, self.tracking, self.remote)
        self.execution = Execution(
            settings, plan, self.request, self._on_event, self.tracking, self.executor
        )
        self.execution.reused = reused
        self.execution.hooks.contracts = self.helper

    @property
    def remote(self) -> model_log.Remote | None:
        """Registry work (champion, logging the model, registering) done by the engine helper,
        so that this process needs neither MLflow nor the model's libraries."""
        return self.helper.release if self.helper is not None else None

    def _on_event(self, event: Event) -> None:
        """Events go to the display; the model's step finishing starts loading the model."""
        self.emit(event)
        if (
            self.prefetch is not None
            and event.kind == "step_finished"
            and event.status in (SUCCEEDED, CACHED)
            and self.plan.model is not None
            and event.step == self.plan.model.step
        ):
            self.prefetch.start()

    def schedule(self) -> tuple[dict[str, StepReport], bool]:
        assert self.execution is not None
        return run_steps(self.execution, self.cache)

    def finish(self, results: dict[str, StepReport], interrupted: bool) -> RunReport:
        """The report, the gates' verdict, the run's records, then registration."""
        plan, settings, tracking = self.plan, self.settings, self.tracking
        assert self.cache is not None
        steps = (
            results.get(s.name) or StepReport(s.name, SKIPPED, reason="run interrupted")
            for s in plan.steps
        )
        self.report = build_report(
            plan,
            settings,
            self.request,
            steps,
            started_at=self.started_at,
            duration=time.monotonic() - self.t0,
            interrupted=interrupted,
            mlflow_run_id=tracking.parent if tracking else None,
            tracked=tracking is not None,
        )
        if self.up_to_date and not interrupted:
            self.report = replace(
                self.report,
                gates=self.up_to_date.get("gates"),
                registered=finish.already_registered(self.up_to_date),
            )
        elif not interrupted:
            self.report, self.release = finish.gate(
                plan, settings, self.report, tracking, self.remote
            )
            if self.release is not None:
                self.release.prefetch = self.prefetch
        # The run's own records first: a model is registered only once they are on disk.
        finish.write_records(plan, settings, self.report, page=self.release is None)
        if self.release is not None:
            self.report = finish.register(plan, settings, self.report, self.release)
        # The outcome is on disk: a SIGTERM from here on is raised once the MLflow runs are
        # closed, not inside MLflow's clean-up (see interrupts.deferred).
        with deferred():
            self.cache.context = finish.backend_context(settings, self.tracked)  # store exists
            self.cache.remember(self.report)
            if tracking:
                tracking.finish(self.report)
                from toolkit.execute.run_diff import record_champion_diff

                # A new candidate: show the reviewer what changed against the champion.
                remote = self.remote
                if not (remote and remote("champion_diff", settings, self.report)[0]):
                    record_champion_diff(settings, self.report)
        return self.report

    def abort(self, status: str, withdraw_why: str, reason: str) -> None:
        """The run ended early: no registered version outlives it, MLflow and the summary say
        how it ended."""
        finish.withdraw(self.plan, self.release, self.report, withdraw_why)
        if self.tracking:
            self.tracking.abort("KILLED" if status == INTERRUPTED else "FAILED")
        finish.close_summary(self.plan, self.report, status, reason)

    def close(self) -> None:
        # Clean-up only: a SIGTERM now is noted (the CLI exits 130), not raised into it.
        with deferred(reraise=False):
            if self.execution is not None:
                # Unused warm kernels and background shutdowns end here; the release stage
                # overlapped them.
                self.execution.close_kernels()
            if self.helper is not None:
                self.helper.close()
            if self.tracking:
                self.tracking.abort("KILLED")  # a no-op when every run was closed properly


def _warm_up_engines(plan: Plan, tracked: bool, *, contracts: bool, helper: bool) -> None:
    """Import what the run will need, in the order it needs it: GX for the first contract
    check (unless the engine helper imports it in its own process), then what registering a
    model needs. Wrapping the model in its guard compiles a suite that the run validated
    before its first step, so it needs no GX. One thread, not one each: imports hold the GIL,
    so side by side they would only delay the one needed first."""
    tasks: list[Callable[[], None]] = []
    if contracts and not helper:
        tasks.append(contract_checks.warm_up)
    if tracked and release_stage.may_register(plan) and not helper:  # else the helper's work
        tasks.append(release_stage.warm_up)

    def warm() -> None:
        for task in tasks:
            with contextlib.suppress(Exception):  # the real use reports any problem
                task()

    if tasks:
        threading.Thread(target=warm, name="toolkit-warm-up", daemon=True).start()
