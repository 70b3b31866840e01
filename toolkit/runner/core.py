"""Orchestration: load, plan, then execute a pipeline's steps as their inputs become ready.

``run_pipeline`` reads top to bottom: resolve settings and spec, build the plan (no side effects
until it succeeds), create the run folder, walk the DAG with a thread pool, and return a
:class:`~toolkit.report.RunReport`. A failed step skips only its downstream steps; independent
branches finish. SIGINT and SIGTERM kill the running kernels and end the run as interrupted.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

from toolkit.errors import StepFailed, ToolkitError, UsageError
from toolkit.fsutil import atomic_write_json
from toolkit.gates import parse_checks
from toolkit.notebook import ExecutionRequest, KernelHandle, execute
from toolkit.plan import Plan, PlannedStep, build_plan
from toolkit.report import (
    CACHED,
    FAILED,
    INTERRUPTED,
    SKIPPED,
    SUCCEEDED,
    RunReport,
    StepReport,
)
from toolkit.runlock import pipeline_lock
from toolkit.runner import contract_checks
from toolkit.runner.contract_checks import ContractFailed
from toolkit.runner.release_stage import gate_and_register
from toolkit.runner.resume import reusable_steps
from toolkit.runner.tracked import RunTracking, tracking_disabled
from toolkit.secrets import Redactor, redact_params, secret_values
from toolkit.settings import Settings, load_settings
from toolkit.spec import load_spec


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


@dataclass(frozen=True)
class Event:
    """A progress event for displays: ``run_started``, ``step_started``, ``step_finished``..."""

    kind: str
    step: str | None = None
    status: str | None = None
    message: str = ""


EventSink = Callable[[Event], None]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """Sortable and unique enough for one project: UTC time plus 6 random hex digits."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


def prepare(request: RunRequest, *, run_id: str | None = None) -> tuple[Settings, Plan]:
    """Load settings and spec and build the plan, without touching the disk."""
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
    contract_checks.load_suites(plan, settings.expectations_dir)
    return settings, plan


def latest_output(pipeline_runs: Path, step: str, output: str) -> Path | None:
    """The newest existing file that ``step`` wrote as ``output`` in an earlier successful run."""
    if not pipeline_runs.is_dir():
        return None
    for run_dir in sorted(pipeline_runs.iterdir(), reverse=True):
        summary = run_dir / "summary.json"
        try:
            data = json.loads(summary.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for s in data.get("steps", []):
            if s.get("name") == step and s.get("status") == SUCCEEDED:
                path = s.get("outputs", {}).get(output)
                if path and Path(path).exists():
                    return Path(path)
    return None


def _read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a killed kernel
    return events


class _Execution:
    """The state of one run while it executes; one instance per ``run_pipeline`` call."""

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        request: RunRequest,
        emit: EventSink,
        tracking: RunTracking | None,
    ):
        self.tracking = tracking
        # Error messages, tracebacks and cell output can quote a secret: scrub them first.
        self.redactor = run_redactor(plan, settings)
        self.settings = settings
        self.plan = plan
        self.request = request
        self.emit = emit
        self.handles: dict[str, KernelHandle] = {}
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.running: dict[Future[StepReport], str] = {}
        self.reused: dict[str, StepReport] = {}

    def step_env(self, step: PlannedStep) -> dict[str, str]:
        return {
            "TOOLKIT_EVENTS_FILE": str(self.plan.run_dir / "events" / f"{step.name}.jsonl"),
            "TOOLKIT_RUN_ID": self.plan.run_dir.name,
            "TOOLKIT_RUN_DIR": str(self.plan.run_dir),
            "TOOLKIT_STEP": step.name,
            "TOOLKIT_PIPELINE": self.plan.pipeline,
            # Notebooks that load models or log on their own use the project's backend too.
            "MLFLOW_TRACKING_URI": self.settings.tracking_uri,
        }

    def run_step(self, step: PlannedStep) -> StepReport:
        started_at, t0 = now_iso(), time.monotonic()
        self.emit(Event("step_started", step.name))
        events_path = self.plan.run_dir / "events" / f"{step.name}.jsonl"
        opening = self.tracking.step_started_async(step, events_path) if self.tracking else None
        output = self.plan.run_dir / "notebooks" / f"{step.name}.ipynb"
        contracts_dir = self.plan.run_dir / "contracts" / step.name
        error: dict[str, Any] | None = None
        status = SUCCEEDED
        attempts = 0
        contracts: list[dict[str, Any]] = []
        try:
            contracts += contract_checks.check(
                step, "inputs", step.inputs, self.settings.expectations_dir, contracts_dir
            )
            for attempt in range(step.retries + 1):
                attempts = attempt + 1
                try:
                    self._attempt(step, output)
                    status, error = SUCCEEDED, None
                    break
                except StepFailed as exc:
                    status = INTERRUPTED if exc.kind == "interrupted" else FAILED
                    error = _error_dict(exc)
                    if status == INTERRUPTED or attempt == step.retries or self.stopping.is_set():
                        break
                    self.emit(Event("step_retry", step.name, message=exc.reason))
                    self.stopping.wait(step.retry_delay)
            if status == SUCCEEDED:
                contracts += contract_checks.check(
                    step, "outputs", step.outputs, self.settings.expectations_dir, contracts_dir
                )
        except ContractFailed as exc:
            status, error = FAILED, _error_dict(exc)
            contracts += exc.entries
        except ToolkitError as exc:  # a suite that is missing or invalid: say so on the step
            status = FAILED
            error = {"kind": "contract_error", "message": str(exc)}
        mlflow_run = opening.result() if opening else None
        if error is not None:
            error = self.redactor.scrub_obj(error)  # type: ignore[assignment]
        events = _read_events(events_path)
        metrics = {e["key"]: e["value"] for e in events if e.get("kind") == "metric"}
        outputs = {k: str(v.path) for k, v in step.outputs.items()}
        outputs.update({e["name"]: e["path"] for e in events if e.get("kind") == "output"})
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
        )
        if self.tracking:
            self.tracking.step_finished(step, report)
        self.emit(Event("step_finished", step.name, status, error["message"] if error else ""))
        return report

    def _attempt(self, step: PlannedStep, output: Path) -> None:
        for key, planned in step.inputs.items():
            if not planned.path.exists():
                raise StepFailed(
                    step.name, f"input {key!r} does not exist: {planned.path}", kind="missing_input"
                )
        for planned in step.outputs.values():
            planned.path.parent.mkdir(parents=True, exist_ok=True)
        handle = KernelHandle()
        with self.lock:
            if self.stopping.is_set():
                raise StepFailed(step.name, "interrupted", kind="interrupted")
            self.handles[step.name] = handle
        try:
            execute(
                ExecutionRequest(
                    step=step.name,
                    notebook=step.notebook,
                    output=output,
                    parameters=step.parameters,
                    cwd=step.notebook.parent,
                    kernel=self.settings.kernel,
                    timeout=step.timeout,
                    env=self.step_env(step),
                    output_sink=self._output_sink(step),
                ),
                handle,
            )
        finally:
            with self.lock:
                self.handles.pop(step.name, None)
        missing = [k for k, v in step.outputs.items() if not v.path.exists()]
        if missing:
            raise StepFailed(
                step.name,
                "declared output(s) not written: "
                + ", ".join(f"{k} ({step.outputs[k].path})" for k in missing),
                kind="missing_output",
                notebook=output,
            )

    def reuse(self, step: PlannedStep) -> StepReport:
        """Keep a step of the run being resumed; its MLflow run says where it came from."""
        report = self.reused[step.name]
        if self.tracking:
            events = self.plan.run_dir / "events" / f"{step.name}.reused.jsonl"
            run_id = self.tracking.step_started(step, events)
            report = replace(report, mlflow_run_id=run_id)
            self.tracking.step_finished(step, report)
        self.emit(Event("step_finished", step.name, CACHED, report.reason or ""))
        return report

    def _output_sink(self, step: PlannedStep) -> Callable[[str, str], None]:
        """Cell output goes to ``logs/<step>.log`` and, with ``--log-output``, to the log."""
        path = self.plan.run_dir / "logs" / f"{step.name}.log"
        path.parent.mkdir(exist_ok=True)

        def sink(stream: str, text: str) -> None:
            text = self.redactor.scrub(text)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(text)
            if self.request.stream_output:
                for line in text.rstrip("\n").splitlines():
                    self.emit(Event("output", step.name, stream, line))

        return sink

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            for handle in self.handles.values():
                handle.kill("interrupted")


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


def _error_dict(exc: StepFailed) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": exc.kind, "message": exc.reason}
    if exc.details:
        data["details"] = exc.details
    for key in ("cell_index", "ename", "evalue", "traceback"):
        value = getattr(exc, key)
        if value is not None:
            data[key] = value
    return data


@contextmanager
def _signals_raise_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt for the duration of a run (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_pipeline(request: RunRequest, on_event: EventSink | None = None) -> RunReport:
    """Run a pipeline and return its report. Raises only for problems found before any step ran.

    Raises:
        SpecError, NotebookError, UsageError: the spec, a notebook or the request is invalid.
        LockedError: another run of the same pipeline is in progress in this project (exit 6).
    """
    emit = on_event or (lambda event: None)
    settings, plan = prepare(request)
    with pipeline_lock(settings.cache_dir / "locks", plan.pipeline, plan.run_dir.name):
        return _run(settings, plan, request, emit)


def _run(settings: Settings, plan: Plan, request: RunRequest, emit: EventSink) -> RunReport:
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
    (plan.run_dir / "events").mkdir(exist_ok=True)
    atomic_write_json(plan.run_dir / "plan.json", plan.to_dict())
    started_at, t0 = now_iso(), time.monotonic()
    emit(Event("run_started", message=f"{plan.pipeline} {plan.run_dir.name}"))
    tracking = None
    if request.track and not tracking_disabled():
        tracking = RunTracking(
            settings, plan, external_run_id=request.run_id, redactor=run_redactor(plan, settings)
        )
    results: dict[str, StepReport] = {}
    interrupted = False
    workers = max(1, request.workers or os.cpu_count() or 1)
    try:
        with _signals_raise_interrupt():
            if tracking:
                tracking.start()
                emit(Event("tracking", message=settings.tracking_uri))
            execution = _Execution(settings, plan, request, emit, tracking)
            execution.reused = reused
            with ThreadPoolExecutor(workers, "toolkit-step") as pool:
                try:
                    _schedule(plan, execution, pool, results)
                except KeyboardInterrupt:
                    interrupted = True
                    execution.stop()
                    pool.shutdown(wait=True, cancel_futures=True)
                    # Steps that were running end as interrupted; record how they ended.
                    for future, name in execution.running.items():
                        if future.done() and not future.cancelled():
                            results[name] = future.result()
            report = _report(
                plan, settings, request, results, interrupted, started_at, t0, tracking
            )
            if not interrupted:
                report = _release(plan, settings, report, tracking)
            atomic_write_json(plan.run_dir / "summary.json", report.to_dict())
            if tracking:
                tracking.finish(report)
    except KeyboardInterrupt:
        if tracking:
            tracking.abort("KILLED")
        raise
    except BaseException:
        if tracking:
            tracking.abort("FAILED")
        raise
    finally:
        if tracking:
            tracking.abort("KILLED")  # a no-op when every run was closed properly
    emit(Event("run_finished", status=report.status))
    return report


def _release(
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
        status = SUCCEEDED if statuses <= {SUCCEEDED, "cached"} else FAILED
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
    plan: Plan, execution: _Execution, pool: ThreadPoolExecutor, results: dict[str, StepReport]
) -> None:
    sorter = TopologicalSorter(plan.graph())
    sorter.prepare()
    running = execution.running
    blocked: dict[str, str] = {}
    while sorter.is_active():
        for name in sorter.get_ready():
            if name in blocked:
                results[name] = StepReport(name, SKIPPED, reason=blocked[name])
                execution.emit(Event("step_finished", name, SKIPPED, blocked[name]))
                sorter.done(name)
            elif name in execution.reused:
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
            if report.status not in (SUCCEEDED, CACHED):
                for child in plan.downstream(name):
                    blocked.setdefault(child, f"upstream step {name!r} {report.status}")
            sorter.done(name)
