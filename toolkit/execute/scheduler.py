"""Walking the DAG: start each step as its inputs become ready, the same way for every executor.

A step is reused (``--resume``, or a step-cache hit) or handed to the executor, which runs it in
a thread of this process (local) or on a Dask worker. A failed step skips only its downstream
steps; independent branches finish. SIGINT and SIGTERM kill the running kernels and end the
steps that were running as interrupted.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from graphlib import TopologicalSorter

from toolkit.core.settings import Settings
from toolkit.execute.cache_session import CacheSession
from toolkit.execute.executors import StepExecutor
from toolkit.execute.request import RunRequest
from toolkit.execute.step_context import Event, EventSink, StepHooks, context_for, step_env
from toolkit.execute.warm import KernelPool
from toolkit.plan.planned import Plan, PlannedStep
from toolkit.reports.summary import CACHED, SKIPPED, SUCCEEDED, StepReport
from toolkit.tracking.run_tracking import RunTracking

SIGNAL_SLICE_S = 0.25  # the longest a SIGTERM waits for the main thread to handle it


class Execution:
    """The state of one run while its steps execute.

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
        executor: StepExecutor,
    ):
        self.tracking = tracking
        self.settings = settings
        self.plan = plan
        self.request = request
        self.emit = emit
        self.executor = executor
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


def run_steps(
    execution: Execution, cache: CacheSession | None
) -> tuple[dict[str, StepReport], bool]:
    """Every step's report (those never reached are missing), and whether it was interrupted."""
    results: dict[str, StepReport] = {}
    interrupted = False
    with ThreadPoolExecutor(execution.executor.capacity, "toolkit-step") as pool:
        try:
            schedule(execution.plan, execution, pool, results, cache)
        except KeyboardInterrupt:
            interrupted = True
            execution.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            # Steps that were running end as interrupted; record how they ended.
            for future, name in execution.running.items():
                if future.done() and not future.cancelled():
                    results[name] = future.result()
    if cache is not None:
        cache.save_copies()
    execution.with_run_ids(results)
    return results, interrupted


def schedule(
    plan: Plan,
    execution: Execution,
    pool: ThreadPoolExecutor,
    results: dict[str, StepReport],
    cache: CacheSession | None = None,
) -> None:
    sorter = TopologicalSorter(plan.graph())
    sorter.prepare()
    running = execution.running
    blocked: dict[str, str] = {}
    # Steps that may need a kernel, in plan order; decided once, not per round of ready steps
    # (with every step cached there is none, and a round costs nothing per step).
    may_run = [n for n in plan.names if not (cache and cache.expect_hit(n))]
    while sorter.is_active():
        ready = sorter.get_ready()
        if execution.kernels is not None and may_run:
            busy = set(results) | set(running.values()) | set(blocked) | set(execution.reused)
            execution.kernels.warm(plan.step(n) for n in may_run if n not in busy)
        for name in ready:
            if name in blocked:
                results[name] = StepReport(name, SKIPPED, reason=blocked[name])
                execution.emit(Event("step_finished", name, SKIPPED, blocked[name]))
                sorter.done(name)
            elif name in execution.reused and cache and not cache.adopt(plan.step(name)):
                # Changed since the run being resumed: what it left is not what it makes now.
                del execution.reused[name]
                running[pool.submit(execution.run_step, plan.step(name))] = name
            elif name in execution.reused:
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
        # In slices: CPython runs a signal's handler in the main thread, but the kernel may
        # deliver SIGTERM to any thread (a step's, zmq's); a main thread blocked in one long
        # wait would only see it once a step ends, and that step would run to its end.
        done: set[Future[StepReport]] = set()
        while not done:
            done, _ = wait(running, timeout=SIGNAL_SLICE_S, return_when=FIRST_COMPLETED)
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
