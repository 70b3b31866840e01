"""What a step runs with, whatever runs it: its context, progress events, hooks and env.

:class:`StepContext` is frozen and picklable, so it travels to Dask workers;
:class:`StepHooks` carries what only the orchestrator's process has (events, kernel kills,
the run's shared MLflow pool). ``step_env`` is the environment every step's kernel gets.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from toolkit.core.errors import StepFailed
from toolkit.core.jsonable import dumps, number
from toolkit.core.secrets import secret_values
from toolkit.core.settings import Settings
from toolkit.execute.kernel import KernelHandle, WarmSource
from toolkit.plan.planned import Plan, PlannedInput, PlannedOutput, PlannedStep
from toolkit.reports.summary import StepReport


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


@dataclass(frozen=True)
class StepContext:
    """What a step needs besides its plan entry. Picklable: it travels to Dask workers."""

    settings: Settings
    pipeline: str
    run_dir: Path
    redact_values: frozenset[str] = frozenset()
    stream_output: bool = False
    parent_run_id: str | None = None  # without hooks: open the step's MLflow run under it
    worker: str | None = None  # where the step runs (a Dask worker's address)
    audit_roots: tuple[str, ...] = ()  # folders whose files the kernel's file audit records


def run_secret_values(plan: Plan, settings: Settings) -> set[str]:
    """Every secret value a run's records must never hold: declared secrets, parameters and
    step ``env:`` entries whose names look secret, and the variables of this process whose
    names do: kernels inherit them, and a notebook that prints ``$GITHUB_TOKEN`` would write it
    into its executed notebook, its logs and MLflow."""
    patterns = settings.secret_patterns
    values = set(plan.secret_values)
    for step in plan.steps:
        values |= secret_values(step.parameters, patterns=patterns, declared=step.secret_params)
        values |= secret_values(step.env, patterns=patterns, declared=step.secret_env)
    inherited = secret_values(dict(os.environ), patterns=patterns)
    return values | {v for v in inherited if _could_be_secret(v)}


# What the environment holds under secret-looking names but is no secret: scrubbing these
# would garble every notebook (TOKENIZERS_PARALLELISM=false would turn each "false" to ***).
_PLAIN_VALUES = frozenset({"true", "false", "yes", "no", "on", "off", "none", "null", "auto"})


def _could_be_secret(value: str) -> bool:
    return len(value) >= 8 and value.lower() not in _PLAIN_VALUES and not value.isdigit()


def context_for(plan: Plan, settings: Settings, *, stream_output: bool = False) -> StepContext:
    return StepContext(
        settings=settings,
        pipeline=plan.pipeline,
        run_dir=plan.run_dir,
        redact_values=frozenset(run_secret_values(plan, settings)),
        stream_output=stream_output,
        audit_roots=audit_roots(plan, settings),
    )


class StepTracking(Protocol):
    def step_started_async(
        self, step: PlannedStep, events_path: Path, tags: Mapping[str, object] | None = None
    ) -> Future[str]: ...

    def step_finished(self, step: PlannedStep, report: StepReport) -> None: ...

    def notebook_env(self, step: PlannedStep) -> dict[str, str]: ...

    def logged_metrics(self, step: PlannedStep) -> dict[str, float]: ...


class KernelSource(Protocol):
    def take(self, step: str) -> WarmSource | None: ...


class ContractChecker(Protocol):
    """Does :func:`toolkit.contracts.step_checks.check` (e.g. in the engine helper process)."""

    def check(
        self,
        step: PlannedStep,
        direction: str,
        attachments: Mapping[str, PlannedInput] | Mapping[str, PlannedOutput],
        expectations_dir: Path,
        out_dir: Path,
    ) -> list[dict[str, Any]]: ...


class StepHooks:
    """The orchestrator-only side of running steps: events, kernel kills, shared tracking."""

    def __init__(self, emit: EventSink | None = None, tracking: StepTracking | None = None) -> None:
        self.emit: EventSink = emit or (lambda event: None)
        self.tracking = tracking
        self.kernels: KernelSource | None = None  # pre-warmed kernels (local executor only)
        self.contracts: ContractChecker | None = None  # the engine helper (local executor only)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._handles: dict[str, KernelHandle] = {}

    def attach(self, step: str, handle: KernelHandle) -> None:
        with self._lock:
            if self.stopping.is_set():
                raise StepFailed(step, "interrupted", kind="interrupted")
            self._handles[step] = handle

    def detach(self, step: str) -> None:
        with self._lock:
            self._handles.pop(step, None)

    def stop(self) -> None:
        """Kill every running kernel; steps then end as interrupted and start no retry."""
        self.stopping.set()
        with self._lock:
            for handle in self._handles.values():
                handle.kill("interrupted")


def audit_roots(plan: Plan, settings: Settings) -> tuple[str, ...]:
    """The project, and every folder a declared external input comes from."""
    roots = {str(settings.root)}
    for step in plan.steps:
        roots |= {str(i.path.parent) for i in step.inputs.values() if i.producer is None}
        if step.cwd is not None:
            roots.add(str(step.cwd))
    return tuple(sorted(roots))


KERNEL_LOG_ENV = "TOOLKIT_KERNEL_LOG"


def kernel_log(step: PlannedStep, ctx: StepContext) -> Path | None:
    path = step_env(step, ctx).get(KERNEL_LOG_ENV)
    return Path(path) if path else None


def audit_path(run_dir: Path, step: str) -> Path:
    return run_dir / "events" / f"{step}.files.jsonl"


def step_env(step: PlannedStep, ctx: StepContext) -> dict[str, str]:
    return {
        **step.env,  # the user's; the toolkit's own variables below win
        "TOOLKIT_AUDIT_FILE": str(audit_path(ctx.run_dir, step.name)),
        "TOOLKIT_AUDIT_ROOTS": os.pathsep.join(ctx.audit_roots),
        "TOOLKIT_EVENTS_FILE": str(ctx.run_dir / "events" / f"{step.name}.jsonl"),
        # The kernel's own stderr (its start-up and shutdown log lines) goes here, off the
        # terminal, unless the user asked to see cell output as it happens.
        **(
            {}
            if ctx.stream_output
            else {KERNEL_LOG_ENV: str(ctx.run_dir / "logs" / f"{step.name}.kernel.log")}
        ),
        "TOOLKIT_RUN_ID": ctx.run_dir.name,
        "TOOLKIT_RUN_DIR": str(ctx.run_dir),
        "TOOLKIT_STEP": step.name,
        "TOOLKIT_PIPELINE": ctx.pipeline,
        # Notebooks that load models or log on their own use the project's backend too.
        "MLFLOW_TRACKING_URI": ctx.settings.tracking_uri,
    }


def read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed kernel
        if isinstance(event, dict) and event.get("kind") == "metric":
            event["value"] = number(event.get("value"))  # "NaN" back to the float it stands for
        events.append(event)
    return events


def append_event(path: Path, event: dict[str, Any]) -> None:
    event = {**event, "host": socket.gethostname(), "pid": os.getpid(), "ts": time.time()}
    with path.open("a", encoding="utf-8") as handle:
        handle.write(dumps(event) + "\n")
