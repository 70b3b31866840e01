"""Orchestration: load, plan, then execute a pipeline's steps as their inputs become ready.

``run_pipeline`` reads top to bottom: resolve settings and spec, build the plan (no side effects
until it succeeds), create the run folder, walk the DAG with a thread pool, and return a
:class:`~toolkit.reports.summary.RunReport`. A failed step skips only its downstream steps; independent
branches finish. SIGINT and SIGTERM kill the running kernels and end the run as interrupted.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

from toolkit.contracts import step_checks as contract_checks
from toolkit.core.errors import ToolkitError, UsageError, did_you_mean
from toolkit.core.fsutil import atomic_write_json
from toolkit.core.interrupts import sigterm_interrupts
from toolkit.core.runlock import pipeline_lock
from toolkit.core.secrets import Redactor, redact_params, secret_values
from toolkit.core.settings import Settings, load_settings
from toolkit.execute import finish, recovery, release_stage
from toolkit.execute.cache import ALL, CacheSession, StepCache
from toolkit.execute.executors import LocalExecutor, StepExecutor, open_executor
from toolkit.execute.release_stage import gate_and_register
from toolkit.execute.resume import latest_output, reusable_steps
from toolkit.execute.run_diff import record_champion_diff
from toolkit.execute.step_exec import (
    Event,
    EventSink,
    StepHooks,
    context_for,
    now_iso,
    step_env,
)
from toolkit.execute.warm import KernelPool
from toolkit.gates.evaluation import parse_checks
from toolkit.plan.build import Plan, PlannedStep, build_plan
from toolkit.reports.summary import (
    CACHED,
    FAILED,
    INTERRUPTED,
    SKIPPED,
    SUCCEEDED,
    RunReport,
    StepReport,
)
from toolkit.specs.load import load_spec
from toolkit.tracking.run_tracking import RunTracking, tracking_disabled

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class RunRequest:
    """What the user asked ``toolkit run`` to do."""

    spec_path: Path
    overrides: Mapping[str, Any] = field(default_factory=dict)
    workers: int | None = None
    only: tuple[str, ...] = ()
    run_id: str | None = None
    stream_output: bool = False
    track: bool = True
    resume: str | None = None
    executor: str = "local"  # or "dask": steps run on the cluster at ``scheduler``
    scheduler: str | None = None
    force: tuple[str, ...] = ()  # step names, or "*" for all: bypass the step cache


def new_run_id() -> str:
    """Sortable and unique enough for one project: UTC time plus 6 random hex digits."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def prepare(request: RunRequest, *, run_id: str | None = None) -> tuple[Settings, Plan]:
    """Load settings and spec and build the plan, without touching the disk."""
    for given in (request.run_id, request.resume):
        # A run id names a folder under runs/: nothing that could climb out of it.
        if given and not RUN_ID_RE.match(given):
            raise UsageError(
                f"invalid run id {given!r}: use letters, digits, '.', '_' and '-' (at most 128)"
            )
    if request.workers is not None and request.workers < 1:
        raise UsageError(f"workers must be at least 1, got {request.workers}")
    settings = load_settings(request.spec_path)
    spec = load_spec(request.spec_path)
    run_id = run_id or request.resume or request.run_id or new_run_id()
    run_dir = settings.runs_dir / spec.name / run_id

    def previous(step: str, output: str) -> Path | None:
        return latest_output(settings.runs_dir / spec.name, step, output)

    plan = build_plan(
        spec, run_dir, overrides=request.overrides, only=request.only, previous_outputs=previous
    )
    if spec.gates is not None:
        parse_checks(spec.gates.checks)  # a bad expression fails before anything runs
    for name in request.force:
        if name != ALL and name not in plan.names:
            raise UsageError(
                f"--force: no step named {name!r}", hint=did_you_mean(name, plan.names)
            )
    contract_checks.load_suites(plan, settings.expectations_dir, settings.cache_dir)
    return settings, plan


def step_cache(settings: Settings, plan: Plan, force: tuple[str, ...] = ()) -> StepCache:
    return StepCache(
        settings.cache_dir,
        plan.pipeline,
        kernel=settings.kernel,
        expectations_dir=settings.expectations_dir,
        force=frozenset(force),
    )


class _Execution:
    """The state of one run while it executes; one instance per ``run_pipeline`` call.

    Running a step is :func:`toolkit.execute.step_exec.run_step`, here or on a Dask worker
    (``executor``); the hooks carry what only this process has: events, kernels, tracking.
    """

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        request: RunRequest,
        emit: EventSink,
        tracking: RunTracking | None,
        executor: StepExecutor | None = None,
    ):
        self.tracking = tracking
        self.settings = settings
        self.plan = plan
        self.request = request
        self.emit = emit
        self.executor = executor or LocalExecutor(request.workers)
        self.context = context_for(plan, settings, stream_output=request.stream_output)
        self.hooks = StepHooks(emit, tracking)
        self.kernels: KernelPool | None = None
        if self.executor.name == "local" and not os.environ.get("TOOLKIT_NO_PREWARM"):
            # As many warm kernels as steps can run at once: the next steps' imports overlap
            # the running ones.
            self.kernels = KernelPool(
                settings.kernel,
                self.executor.capacity,
                lambda step: step_env(step, self.context),
            )
            self.hooks.kernels = self.kernels
        self.running: dict[Future[StepReport], str] = {}
        self.reused: dict[str, StepReport] = {}
        self.recording: dict[str, Future[str]] = {}

    def run_step(self, step: PlannedStep) -> StepReport:
        return self.executor.run(step, self.context, self.hooks)

    def reuse(self, step: PlannedStep) -> StepReport:
        """Keep a reused step (cache or resume); its MLflow run says where it came from.

        The MLflow run is recorded on the tracking pool, so the steps after it start at once;
        :meth:`with_run_ids` fills in the run ids before the report is written.
        """
        report = self.reused[step.name]
        if self.tracking:
            events = self.plan.run_dir / "events" / f"{step.name}.reused.jsonl"
            self.recording[step.name] = self.tracking.step_cached_async(step, report, events)
        self.emit(Event("step_finished", step.name, CACHED, report.reason or ""))
        return report

    def with_run_ids(self, results: dict[str, StepReport]) -> None:
        for name, future in self.recording.items():
            if name in results and future.exception() is None:
                results[name] = replace(results[name], mlflow_run_id=future.result())

    def stop(self) -> None:
        self.hooks.stop()
        self.executor.stop()
        self.close_kernels()

    def close_kernels(self) -> None:
        if self.kernels is not None:
            self.kernels.close()


def run_redactor(plan: Plan, settings: Settings) -> Redactor:
    """Knows the value of every secret of the run: declared ones and names matching patterns."""
    redactor = Redactor(plan.secret_values)
    for step in plan.steps:
        redactor.add(
            *secret_values(
                step.parameters, patterns=settings.secret_patterns, declared=step.secret_params
            )
        )
    return redactor


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
    reused: dict[str, StepReport] = {}
    if request.resume:
        reused = reusable_steps(plan)
    else:
        try:
            plan.run_dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError as exc:
            raise UsageError(
                f"run {plan.run_dir.name!r} already exists at {plan.run_dir}",
                hint=f"toolkit run {plan.spec_path} --resume {plan.run_dir.name}",
            ) from exc
    results: dict[str, StepReport] = {}
    interrupted = False
    executor = executor or LocalExecutor(request.workers)
    execution: _Execution | None = None
    report: RunReport | None = None
    release: release_stage.Release | None = None
    tracking: RunTracking | None = None
    try:
        # From the run folder's creation on, an interrupt or error ends in a summary.
        with sigterm_interrupts():
            (plan.run_dir / "events").mkdir(exist_ok=True)
            # Notebooks hold parameter values until they are scrubbed after their step: private.
            (plan.run_dir / "notebooks").mkdir(mode=0o700, exist_ok=True)
            atomic_write_json(plan.run_dir / "plan.json", _plan_record(plan, settings))
            started_at, t0 = now_iso(), time.monotonic()
            emit(Event("run_started", message=f"{plan.pipeline} {plan.run_dir.name}"))
            tracked = request.track and not tracking_disabled()
            cache = CacheSession(
                step_cache(settings, plan, request.force),
                plan,
                finish.backend_context(settings, tracked),
            )
            # Nothing to execute and this very combination already passed its gates in this
            # backend: nothing new to record or register, so MLflow is not even imported (a
            # no-op run stays sub-second).
            up_to_date = None if request.resume else cache.up_to_date()
            if up_to_date:
                emit(
                    Event("up_to_date", message=f"nothing changed since run {up_to_date['run_id']}")
                )
            else:
                _warm_up_engines(plan, cache, tracked)
            if tracked and not up_to_date:
                tracking = RunTracking(
                    settings,
                    plan,
                    external_run_id=request.run_id,
                    redactor=run_redactor(plan, settings),
                    owner_process=True,
                )
            if tracking:
                tracking.start()
                emit(Event("tracking", message=settings.tracking_uri))
            execution = _Execution(settings, plan, request, emit, tracking, executor)
            execution.reused = reused
            with ThreadPoolExecutor(executor.capacity, "toolkit-step") as pool:
                try:
                    _schedule(plan, execution, pool, results, cache)
                except KeyboardInterrupt:
                    interrupted = True
                    execution.stop()
                    pool.shutdown(wait=True, cancel_futures=True)
                    # Steps that were running end as interrupted; record how they ended.
                    for future, name in execution.running.items():
                        if future.done() and not future.cancelled():
                            results[name] = future.result()
            execution.with_run_ids(results)
            report = _report(
                plan, settings, request, results, interrupted, started_at, t0, tracking
            )
            if up_to_date and not interrupted:
                report = replace(
                    report,
                    gates=up_to_date.get("gates"),
                    registered=finish.already_registered(up_to_date),
                )
            elif not interrupted:
                report, release = finish.gate(plan, settings, report, tracking)
            # The run's own records first: a model is registered only once they are on disk.
            finish.write_records(plan, settings, report)
            if release is not None:
                report = finish.register(plan, settings, report, release)
            cache.context = finish.backend_context(settings, tracked)  # the store exists by now
            cache.remember(report)
            if tracking:
                tracking.finish(report)
                # A new candidate: show the reviewer what changed against the champion.
                record_champion_diff(settings, report)
    except KeyboardInterrupt:
        finish.withdraw(plan, release, report, "was interrupted after registration")
        if tracking:
            tracking.abort("KILLED")
        finish.close_summary(plan, report, INTERRUPTED, "interrupted by SIGINT or SIGTERM")
        raise
    except BaseException as exc:
        finish.withdraw(plan, release, report, f"failed after registration: {exc}")
        if tracking:
            tracking.abort("FAILED")
        finish.close_summary(plan, report, FAILED, f"the run failed: {type(exc).__name__}: {exc}")
        raise
    finally:
        if execution is not None:
            # Unused warm kernels and background shutdowns end here; the release stage above
            # overlapped them.
            execution.close_kernels()
        if tracking:
            tracking.abort("KILLED")  # a no-op when every run was closed properly
    emit(Event("run_finished", status=report.status))
    return report


def _warm_up_engines(plan: Plan, cache: CacheSession, tracked: bool) -> None:
    """Import what the run will need, in the order it needs it: GX for the first contract
    check, then what registering a model needs. One thread, not one each: imports hold the
    GIL, so side by side they would only delay the one needed first."""
    tasks: list[Callable[[], None]] = []
    if contract_checks.needs_gx(plan, cache.expect_hit):
        tasks.append(contract_checks.warm_up)
    if tracked and release_stage.may_register(plan):
        tasks.append(release_stage.warm_up)

    def warm() -> None:
        for task in tasks:
            with contextlib.suppress(Exception):  # the real use reports any problem
                task()

    if tasks:
        threading.Thread(target=warm, name="toolkit-warm-up", daemon=True).start()


def _plan_record(plan: Plan, settings: Settings) -> dict[str, Any]:
    """``plan.json``: parameters whose names look secret are masked, not only declared ones."""
    data = plan.to_dict()
    for entry, step in zip(data["steps"], plan.steps, strict=True):
        entry["parameters"] = redact_params(
            entry["parameters"], patterns=settings.secret_patterns, declared=step.secret_params
        )
    return data


def apply_release(
    plan: Plan, settings: Settings, report: RunReport, tracking: RunTracking | None
) -> RunReport:
    """Gates and registration; a problem there is recorded in the report, never lost."""
    try:
        gates, registered = gate_and_register(plan, settings, report.steps, tracking)
    except ToolkitError as exc:
        message = str(exc)
        gates = {"passed": False, "error": message, "gates": [], "summary": [f"ERROR {message}"]}
        registered = None
    status = report.status
    if gates is not None and not gates["passed"]:
        status = FAILED
    return replace(report, gates=gates, registered=registered, status=status)


def _report(
    plan: Plan,
    settings: Settings,
    request: RunRequest,
    results: dict[str, StepReport],
    interrupted: bool,
    started_at: str,
    t0: float,
    tracking: RunTracking | None,
) -> RunReport:
    steps = tuple(
        results.get(s.name) or StepReport(s.name, SKIPPED, reason="run interrupted")
        for s in plan.steps
    )
    statuses = {s.status for s in steps}
    if interrupted:
        status = INTERRUPTED
    else:
        status = SUCCEEDED if statuses <= {SUCCEEDED, CACHED} else FAILED
    return RunReport(
        run_id=plan.run_dir.name,
        pipeline=plan.pipeline,
        status=status,
        run_dir=str(plan.run_dir),
        spec=str(plan.spec_path),
        started_at=started_at,
        ended_at=now_iso(),
        duration=round(time.monotonic() - t0, 3),
        steps=steps,
        parameters=redact_params(
            request.overrides, patterns=settings.secret_patterns, declared=plan.secret_params
        ),
        mlflow_run_id=tracking.parent if tracking else None,
        tracking_uri=settings.tracking_uri if tracking else None,
    )


def _schedule(
    plan: Plan,
    execution: _Execution,
    pool: ThreadPoolExecutor,
    results: dict[str, StepReport],
    cache: CacheSession | None = None,
) -> None:
    sorter = TopologicalSorter(plan.graph())
    sorter.prepare()
    running = execution.running
    blocked: dict[str, str] = {}
    while sorter.is_active():
        ready = sorter.get_ready()
        if execution.kernels is not None:
            busy = set(results) | set(running.values()) | set(blocked) | set(execution.reused)
            execution.kernels.warm(
                plan.step(n)
                for n in plan.names
                if n not in busy and not (cache and cache.expect_hit(n))
            )
        for name in ready:
            if name in blocked:
                results[name] = StepReport(name, SKIPPED, reason=blocked[name])
                execution.emit(Event("step_finished", name, SKIPPED, blocked[name]))
                sorter.done(name)
            elif name in execution.reused:
                if cache:
                    cache.adopt(plan.step(name))
                results[name] = execution.reuse(plan.step(name))
                sorter.done(name)
            elif cache and (hit := cache.ready(plan.step(name))):
                execution.reused[name] = hit
                results[name] = execution.reuse(plan.step(name))
                sorter.done(name)
            else:
                running[pool.submit(execution.run_step, plan.step(name))] = name
        if not running:
            continue
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            name = running.pop(future)
            report = future.result()
            results[name] = report
            if cache and report.status == SUCCEEDED:
                cache.succeeded(plan.step(name), report)
            if report.status not in (SUCCEEDED, CACHED):
                for child in plan.downstream(name):
                    blocked.setdefault(child, f"upstream step {name!r} {report.status}")
            sorter.done(name)
