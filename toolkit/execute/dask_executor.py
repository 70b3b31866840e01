"""``toolkit run --executor dask --scheduler tcp://HOST:PORT``: steps on a Dask cluster.

The orchestrator keeps walking the DAG; every ready step is submitted as one Dask task that
runs :func:`toolkit.execute.step_exec.run_step` on a worker (its kernel starts there) and returns
the step's report. The worker opens the step's MLflow run under the orchestrator's parent run
and closes it. Outputs are written to the run folder, which must be on storage every worker
mounts at the same path: this is checked on connect.

A worker that dies mid-step makes the Dask scheduler reschedule the task on another worker
(up to its ``distributed.scheduler.allowed-failures``, default 3); after that the step fails
with ``kind="worker_lost"``. Step runs a dead worker left RUNNING are closed as KILLED here.

This is the only module that imports ``distributed`` (lazily).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.core.errors import UsageError
from toolkit.core.settings import Settings
from toolkit.execute.step_context import Event, StepContext, StepHooks, now_iso, read_events
from toolkit.execute.step_exec import run_step
from toolkit.plan.planned import Plan, PlannedStep
from toolkit.reports.summary import FAILED, INTERRUPTED, StepReport
from toolkit.tracking.step_runs import close_orphans

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0  # TOOLKIT_DASK_TIMEOUT overrides it
NO_WORKERS_GRACE_S = 120.0  # TOOLKIT_DASK_NO_WORKERS_S: how long a step waits with no worker


def _seconds(env: str, default: float) -> float:
    try:
        return float(os.environ.get(env, default))
    except ValueError:
        return default


def _on_worker(step: PlannedStep, ctx: StepContext) -> StepReport:
    """The task: run one step on this worker, naming the worker in its report and MLflow run."""
    from distributed import get_worker

    try:
        address: str | None = get_worker().address
    except ValueError:  # not in a worker (e.g. a LocalCluster with processes=False)
        address = None
    return run_step(step, replace(ctx, worker=address))


def _preflight(paths: list[str]) -> dict[str, Any]:
    """Runs on every worker: which of the run's paths it cannot see, and its toolkit version."""
    return {"version": __version__, "missing": [p for p in paths if not os.path.exists(p)]}


class DaskExecutor:
    """Submits steps to a Dask scheduler; one instance per run."""

    name = "dask"

    def __init__(self, client: Any, capacity: int) -> None:
        self.client = client
        self.capacity = capacity
        self._futures: set[Any] = set()
        self._lock = threading.Lock()

    @classmethod
    def connect(
        cls, address: str | None, *, settings: Settings, plan: Plan, workers: int | None
    ) -> DaskExecutor:
        address = address or os.environ.get("TOOLKIT_DASK_SCHEDULER")
        if not address:
            raise UsageError(
                "--executor dask needs the scheduler's address",
                hint="pass --scheduler tcp://HOST:8786 (or set TOOLKIT_DASK_SCHEDULER)",
            )
        from distributed import Client

        timeout = _seconds("TOOLKIT_DASK_TIMEOUT", CONNECT_TIMEOUT_S)
        try:
            client = Client(address, timeout=timeout, set_as_default=False)
        except Exception as exc:  # OSError/TimeoutError, or a malformed address
            raise UsageError(
                f"cannot reach the Dask scheduler at {address} within {timeout:g}s: "
                f"{type(exc).__name__}: {exc}",
                hint="start one with `dask scheduler` and `dask worker ADDRESS`, "
                "or check --scheduler",
            ) from None
        try:
            capacity = cls._check(client, address, settings, plan, timeout)
        except BaseException:
            client.close()
            raise
        return cls(client, max(1, workers or capacity))

    @staticmethod
    def _check(client: Any, address: str, settings: Settings, plan: Plan, timeout: float) -> int:
        """At least one worker, and every worker sees the run folder and the notebooks."""
        try:
            client.wait_for_workers(1, timeout=timeout)
        except Exception:
            raise UsageError(
                f"the Dask scheduler at {address} has no workers",
                hint=f"start some: dask worker {address} --nthreads 1",
            ) from None
        settings.runs_dir.mkdir(parents=True, exist_ok=True)
        paths = sorted({str(settings.runs_dir), *(str(s.notebook) for s in plan.steps)})
        try:
            answers = client.run(_preflight, paths)
        except ModuleNotFoundError as exc:
            raise UsageError(
                f"the Dask workers cannot import toolkit: {exc}",
                hint="install the project (pip install -e .) in the workers' environment",
            ) from None
        problems = []
        for worker, answer in sorted(answers.items()):
            if answer["missing"]:
                problems.append(f"{worker} cannot see {', '.join(answer['missing'])}")
            if answer["version"] != __version__:
                problems.append(f"{worker} runs toolkit {answer['version']}, not {__version__}")
        if problems:
            raise UsageError(
                "the Dask workers cannot run this pipeline: " + "; ".join(problems),
                hint="runs_dir and the notebooks must be on storage every worker mounts at "
                "the same path (e.g. NFS); set TOOLKIT_RUNS_DIR to such a path",
            )
        workers = client.scheduler_info().get("workers", {})
        return sum(int(w.get("nthreads", 1)) for w in workers.values()) or 1

    def run(self, step: PlannedStep, ctx: StepContext, hooks: StepHooks) -> StepReport:
        started_at, t0 = now_iso(), time.monotonic()
        hooks.emit(Event("step_started", step.name, message="submitted to dask"))
        parent = getattr(hooks.tracking, "parent", None)
        remote = replace(ctx, parent_run_id=parent, stream_output=False)
        key = f"toolkit-{ctx.pipeline}-{ctx.run_dir.name}-{step.name}-{secrets.token_hex(3)}"
        future = self.client.submit(_on_worker, step, remote, pure=False, key=key)
        with self._lock:
            self._futures.add(future)
        try:
            report = self._wait(future, step, hooks, started_at, t0)
        finally:
            with self._lock:
                self._futures.discard(future)
        if parent is not None:
            self._close_orphans(hooks, parent, step, report)
        worker = _worker_of(ctx.run_dir, step.name)
        message = report.error["message"] if report.error else (f"on {worker}" if worker else "")
        hooks.emit(Event("step_finished", step.name, report.status, message))
        return report

    def _wait(
        self, future: Any, step: PlannedStep, hooks: StepHooks, started_at: str, t0: float
    ) -> StepReport:
        grace = _seconds("TOOLKIT_DASK_NO_WORKERS_S", NO_WORKERS_GRACE_S)
        alone_since: float | None = None
        while not future.done():
            if hooks.stopping.wait(0.25):
                future.cancel()
                return _failed(step, started_at, t0, "interrupted", "interrupted", INTERRUPTED)
            if self.client.scheduler_info().get("workers"):
                alone_since = None
            elif alone_since is None:
                alone_since = time.monotonic()
            elif time.monotonic() - alone_since > grace:
                future.cancel()
                return _failed(
                    step, started_at, t0, "no_workers", f"no Dask worker left for {grace:g}s"
                )
        if future.status == "finished":
            return future.result()
        if future.status == "cancelled":
            return _failed(step, started_at, t0, "interrupted", "cancelled", INTERRUPTED)
        exc = future.exception()
        if type(exc).__name__ == "KilledWorker":
            return _failed(
                step,
                started_at,
                t0,
                "worker_lost",
                "the Dask worker running this step died, and so did the retries the "
                "scheduler allows (distributed.scheduler.allowed-failures)",
            )
        return _failed(step, started_at, t0, "error", f"{type(exc).__name__}: {exc}")

    def _close_orphans(
        self, hooks: StepHooks, parent: str, step: PlannedStep, report: StepReport
    ) -> None:
        tracker = getattr(hooks.tracking, "tracker", None)
        if tracker is None:
            return
        try:
            closed = close_orphans(tracker, parent, step.name, report.mlflow_run_id)
        except Exception:  # bookkeeping must never fail the run
            log.exception("could not close the MLflow runs left by lost workers")
            return
        if closed:
            hooks.emit(Event("worker_lost", step.name, message=f"closed {len(closed)} run(s)"))

    def stop(self) -> None:
        """Cancel the submitted steps (a step already running finishes on its worker)."""
        with self._lock:
            futures = list(self._futures)
        if futures:
            self.client.cancel(futures, force=True)

    def close(self) -> None:
        self.client.close(timeout=5)


def _failed(
    step: PlannedStep, started_at: str, t0: float, kind: str, message: str, status: str = FAILED
) -> StepReport:
    return StepReport(
        name=step.name,
        status=status,
        started_at=started_at,
        ended_at=now_iso(),
        duration=round(time.monotonic() - t0, 3),
        error={"kind": kind, "message": message},
        attempts=1,
    )


def _worker_of(run_dir: Path, step: str) -> str | None:
    events = read_events(run_dir / "events" / f"{step}.jsonl")
    return next((e.get("address") for e in reversed(events) if e.get("kind") == "worker"), None)
