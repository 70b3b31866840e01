"""Run one step: input contracts, the notebook in its own kernel (with retries), output contracts.

:func:`run_step` is a module-level function of picklable arguments (a frozen
:class:`~toolkit.plan.build.PlannedStep` and a frozen :class:`StepContext`) returning a
:class:`~toolkit.reports.summary.StepReport`, so the very same code runs in the orchestrator's thread
pool and in a Dask worker process. What only makes sense in the orchestrator (progress events,
killing kernels on SIGTERM, the run's shared MLflow pool) comes in as optional
:class:`StepHooks`. Without them, and given a parent MLflow run id, the step opens and always
closes its own MLflow run (that is what happens on a worker).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from toolkit.contracts import step_checks as contract_checks
from toolkit.contracts.step_checks import ContractFailed
from toolkit.core.errors import StepFailed, ToolkitError
from toolkit.core.fsutil import remove_inside
from toolkit.core.secrets import Redactor, scrub_file, scrub_notebook_in_place
from toolkit.execute.file_audit import file_audit
from toolkit.execute.kernel import ExecutionRequest, KernelHandle, execute
from toolkit.execute.step_context import (
    Event,
    StepContext,
    StepHooks,
    StepTracking,
    append_event,
    kernel_log,
    now_iso,
    read_events,
    step_env,
)
from toolkit.plan.planned import DATA_DIR, PlannedStep
from toolkit.reports.summary import FAILED, INTERRUPTED, SUCCEEDED, StepReport
from toolkit.specs.notebook_params import mentions_module
from toolkit.tracking.step_runs import TAG_WORKER, StepRuns

__all__ = ["error_dict", "read_events", "run_step"]


class _OwnTracking:
    """A step's MLflow run opened from the process that executes it (a Dask worker)."""

    def __init__(self, ctx: StepContext, redactor: Redactor) -> None:
        self.ctx = ctx
        self.redactor = redactor
        self.steps: StepRuns | None = None
        self._pool = ThreadPoolExecutor(1, "toolkit-step-track")

    def _open(self, step: PlannedStep, events_path: Path, tags: Mapping[str, object]) -> str:
        from toolkit.tracking.client import Tracker  # MLflow's import overlaps the kernel's start

        settings = self.ctx.settings
        tracker = Tracker(
            settings.tracking_uri, artifacts_dir=settings.artifacts_dir, redact=self.redactor
        )
        self.steps = StepRuns(tracker, settings, self.redactor)
        assert self.ctx.parent_run_id is not None
        return self.steps.started(self.ctx.parent_run_id, step, events_path, tags)

    def step_started_async(
        self, step: PlannedStep, events_path: Path, tags: Mapping[str, object] | None = None
    ) -> Future[str]:
        tags = {**(tags or {}), **({TAG_WORKER: self.ctx.worker} if self.ctx.worker else {})}
        return self._pool.submit(self._open, step, events_path, tags)

    def step_finished(self, step: PlannedStep, report: StepReport) -> None:
        if self.steps is not None:
            self.steps.finished(step, report)

    def notebook_env(self, step: PlannedStep) -> dict[str, str]:
        return self.steps.notebook_env(step.name) if self.steps is not None else {}

    def logged_metrics(self, step: PlannedStep) -> dict[str, float]:
        return self.steps.logged_metrics(step.name) if self.steps is not None else {}

    def close(self, step: str) -> None:
        """Never leave the run RUNNING, whatever happened to the step."""
        self._pool.shutdown(wait=True)
        if self.steps is not None:
            self.steps.close(step, "FAILED", "the step ended without a report")


def run_step(step: PlannedStep, ctx: StepContext, hooks: StepHooks | None = None) -> StepReport:
    """Execute one step and report how it went; step failures are reported, never raised."""
    hooks = hooks or StepHooks()
    redactor = Redactor(ctx.redact_values)
    own = None
    tracking = hooks.tracking
    if tracking is None and ctx.parent_run_id:
        tracking = own = _OwnTracking(ctx, redactor)
    try:
        return _run_step(step, ctx, hooks, tracking, redactor)
    finally:
        if own is not None:
            own.close(step.name)


def _run_step(
    step: PlannedStep,
    ctx: StepContext,
    hooks: StepHooks,
    tracking: StepTracking | None,
    redactor: Redactor,
) -> StepReport:
    started_at, t0 = now_iso(), time.monotonic()
    hooks.emit(Event("step_started", step.name))
    events_path = ctx.run_dir / "events" / f"{step.name}.jsonl"
    events_path.parent.mkdir(parents=True, exist_ok=True)
    if ctx.worker:
        append_event(events_path, {"kind": "worker", "address": ctx.worker})
    opening = tracking.step_started_async(step, events_path) if tracking else None
    # A notebook that logs to MLflow itself must log into its step's run: it waits for the run
    # to be open (the others start their kernel at once) and gets its id in the kernel's env.
    uses_mlflow = tracking is not None and mentions_module(step.notebook, "mlflow")
    output = ctx.run_dir / "notebooks" / f"{step.name}.ipynb"
    contracts_dir = ctx.run_dir / "contracts" / step.name
    expectations = ctx.settings.expectations_dir
    error: dict[str, Any] | None = None
    status = SUCCEEDED
    attempts = 0
    contracts: list[dict[str, Any]] = []
    # The engine helper checks them off this process when the orchestrator has one.
    check = hooks.contracts.check if hooks.contracts is not None else contract_checks.check
    try:
        contracts += check(step, "inputs", step.inputs, expectations, contracts_dir)
        for attempt in range(step.retries + 1):
            attempts = attempt + 1
            try:
                late_env: dict[str, str] = {}
                if uses_mlflow and opening is not None and tracking is not None:
                    opening.result()
                    late_env = tracking.notebook_env(step)
                _attempt(step, output, ctx, hooks, redactor, late_env)
                status, error = SUCCEEDED, None
                break
            except StepFailed as exc:
                status = INTERRUPTED if exc.kind == "interrupted" else FAILED
                error = error_dict(exc)
                if status == INTERRUPTED or attempt == step.retries or hooks.stopping.is_set():
                    break
                hooks.emit(Event("step_retry", step.name, message=exc.reason))
                hooks.stopping.wait(step.retry_delay)
        if status == SUCCEEDED:
            contracts += check(step, "outputs", step.outputs, expectations, contracts_dir)
    except ContractFailed as exc:
        status, error = FAILED, error_dict(exc)
        contracts += exc.entries
    except ToolkitError as exc:  # a suite that is missing or invalid: say so on the step
        status = FAILED
        error = {"kind": "contract_error", "message": str(exc)}
    if output.exists():  # the run folder's copy is scrubbed like the one MLflow gets
        scrub_notebook_in_place(
            output, redactor, patterns=ctx.settings.secret_patterns, declared=step.secret_params
        )
    log = kernel_log(step, ctx)
    if log is not None:  # the kernel's own stdout and stderr, e.g. a subprocess's output
        scrub_file(log, redactor)
    mlflow_run = opening.result() if opening else None
    if error is not None:
        error = redactor.scrub_mapping(error)
    events = read_events(events_path)
    metrics: dict[str, float] = {}
    if uses_mlflow and mlflow_run and tracking is not None:
        try:
            metrics.update(tracking.logged_metrics(step))
        except ToolkitError as exc:  # the step's own outcome stands; say what is missing
            hooks.emit(Event("warning", step.name, message=f"notebook metrics not read: {exc}"))
    metrics.update({e["key"]: e["value"] for e in events if e.get("kind") == "metric"})
    outputs = {k: str(v.path) for k, v in step.outputs.items()}
    outputs.update({e["name"]: e["path"] for e in events if e.get("kind") == "output"})
    files = file_audit(step, ctx, set(outputs.values()))
    report = StepReport(
        name=step.name,
        status=status,
        started_at=started_at,
        ended_at=now_iso(),
        duration=round(time.monotonic() - t0, 3),
        notebook=str(output) if output.exists() else None,
        metrics=metrics,
        outputs=outputs,
        error=error,
        contracts=tuple(contracts),
        attempts=attempts,
        mlflow_run_id=mlflow_run,
        reads=files.reads,
        undeclared_outputs=files.undeclared_outputs,
    )
    if tracking:
        tracking.step_finished(step, report)
    hooks.emit(Event("step_finished", step.name, status, str(error["message"]) if error else ""))
    return report


def _attempt(
    step: PlannedStep,
    output: Path,
    ctx: StepContext,
    hooks: StepHooks,
    redactor: Redactor,
    late_env: Mapping[str, str],
) -> None:
    for key, planned in step.inputs.items():
        if not planned.path.exists():
            raise StepFailed(
                step.name, f"input {key!r} does not exist: {planned.path}", kind="missing_input"
            )
    data_dir = ctx.run_dir / DATA_DIR
    for out in step.outputs.values():
        out.path.parent.mkdir(parents=True, exist_ok=True)
        # A stale output (an earlier attempt's, or a cache hard link shared with other runs)
        # must never be written through, nor mistaken for this attempt's output. A folder goes
        # whole: a retry must not find the files a failed attempt left in it.
        remove_inside(out.path, data_dir)
    handle = KernelHandle()
    hooks.attach(step.name, handle)
    warm = hooks.kernels.take(step.name) if hooks.kernels else None
    try:
        execute(
            ExecutionRequest(
                step=step.name,
                notebook=step.notebook,
                output=output,
                parameters=step.parameters,
                cwd=step.workdir,
                kernel=step.kernel or ctx.settings.kernel,
                timeout=step.timeout,
                env=step_env(step, ctx),
                late_env=late_env,
                kernel_log=kernel_log(step, ctx),
                output_sink=_output_sink(step, ctx, hooks, redactor),
            ),
            handle,
            warm,
        )
    finally:
        hooks.detach(step.name)
    missing = [k for k, v in step.outputs.items() if not v.path.exists()]
    if missing:
        raise StepFailed(
            step.name,
            "declared output(s) not written: "
            + ", ".join(f"{k} ({step.outputs[k].path})" for k in missing),
            kind="missing_output",
            notebook=output,
            # The usual cause in a notebook written before it was a step: a relative path, which
            # lands in the notebook's folder. The injected parameters say where to write.
            hint=f"the notebook receives each output's absolute path as a parameter of that name: "
            f"write to {', '.join(missing)} (e.g. df.to_csv({missing[0]}))",
        )


def _output_sink(
    step: PlannedStep, ctx: StepContext, hooks: StepHooks, redactor: Redactor
) -> Callable[[str, str], None]:
    """Cell output goes to ``logs/<step>.log`` and, with ``--log-output``, to the log."""
    path = ctx.run_dir / "logs" / f"{step.name}.log"
    path.parent.mkdir(exist_ok=True)

    def sink(stream: str, text: str) -> None:
        text = redactor.scrub(text)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(text)
        if ctx.stream_output:
            for line in text.rstrip("\n").splitlines():
                hooks.emit(Event("output", step.name, stream, line))

    return sink


def error_dict(exc: StepFailed) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": exc.kind, "message": exc.reason}
    if exc.details:
        data["details"] = exc.details
    for key in ("cell_index", "ename", "evalue", "traceback", "hint"):
        value = getattr(exc, key)
        if value is not None:
            data[key] = value
    return data
