"""MLflow bookkeeping for one pipeline run: a parent run, one nested run per step.

Everything goes through :class:`toolkit.tracking.client.Tracker` with explicit run ids, so steps
running in parallel threads never log into each other's runs. Secrets are redacted by name and
by value before anything leaves the process; the executed notebook is logged as a scrubbed copy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.core.envflags import env_flag
from toolkit.core.lineage import current_user, environment, git_info, lock_info, scheduler_context
from toolkit.core.secrets import Redactor, redact_params
from toolkit.core.settings import Settings
from toolkit.plan.planned import Plan, PlannedStep
from toolkit.reports.summary import CACHED, FAILED, INTERRUPTED, SUCCEEDED, RunReport, StepReport
from toolkit.tracking.client import Tracker
from toolkit.tracking.forwarder import MetricsForwarder
from toolkit.tracking.remote import RemoteTracker
from toolkit.tracking.step_runs import Renderer, StepRuns
from toolkit.tracking.vocabulary import TAG_LOCK_HASH, lineage_tags, now_ms

log = logging.getLogger(__name__)
STATUS = {SUCCEEDED: "FINISHED", CACHED: "FINISHED", FAILED: "FAILED", INTERRUPTED: "KILLED"}
TAG_TRIGGERED_BY = "toolkit.triggered_by"
TAG_HOST = "toolkit.host"  # with TAG_PID: which process owns a RUNNING run
TAG_PID = "toolkit.pid"


class RunTracking:
    """Opens, feeds and always closes the MLflow runs of one pipeline run."""

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        *,
        external_run_id: str | None,
        redactor: Redactor | None = None,
        owner_process: bool = False,
        renderer: Renderer | None = None,
        tracker: Callable[[], Tracker | RemoteTracker] | None = None,
    ) -> None:
        # True when this process owns the whole run: its host and pid are tagged, so that a
        # run left RUNNING by a process that died can be recognised (``toolkit runs repair``).
        self.owner_process = owner_process
        self.renderer = renderer  # notebooks to HTML, e.g. in the engine helper process
        self.settings = settings
        self.plan = plan
        self.redactor = redactor or Redactor(plan.secret_values)
        self.external_run_id = external_run_id
        self._parent: str | None = None
        # MLflow's import and store opening (seconds) overlap the first kernels' start-up: the
        # client is made and the pipeline run opens on this pool while the first steps begin.
        # ``tracker`` may make one whose MLflow work another process does (the engine daemon).
        self._pool = ThreadPoolExecutor(2, "toolkit-track")
        self._tracker: Future[Tracker | RemoteTracker] = self._pool.submit(
            tracker
            or (
                lambda: Tracker(
                    settings.tracking_uri,
                    artifacts_dir=settings.artifacts_dir,
                    redact=self.redactor,
                )
            )
        )
        self._started: Future[str] | None = None
        self._steps: StepRuns | None = None
        self._steps_lock = threading.Lock()
        self._closing: list[Future[None]] = []
        self._closing_lock = threading.Lock()
        self._env_thread: threading.Thread | None = None
        self.git_commit: str | None = None

    @property
    def tracker(self) -> Tracker | RemoteTracker:
        return self._tracker.result()

    @property
    def steps(self) -> StepRuns:
        with self._steps_lock:
            if self._steps is None:
                self._steps = StepRuns(self.tracker, self.settings, self.redactor, self.renderer)
            return self._steps

    @property
    def step_runs(self) -> dict[str, str]:
        return self.steps.runs

    @property
    def forwarders(self) -> dict[str, MetricsForwarder]:
        return self.steps.forwarders

    def _redact(self, params: Mapping[str, Any], declared: frozenset[str]) -> dict[str, Any]:
        return redact_params(params, patterns=self.settings.secret_patterns, declared=declared)

    @property
    def parent(self) -> str | None:
        """The pipeline run's id, once it is open (waits for :meth:`start` to finish)."""
        if self._started is not None:
            self._started.result()
        return self._parent

    def start(self) -> None:
        """Begin opening the pipeline's run; steps wait for it only when they need its id."""
        self._started = self._pool.submit(self._start, now_ms())

    def _start(self, start_time: int) -> str:
        """Open the pipeline's run with lineage tags; log the spec and (in background) the env."""
        self.tracker.check_connection()
        plan = self.plan
        scheduler = scheduler_context()
        if self.external_run_id:
            scheduler = {**scheduler, "RUN_ID": self.external_run_id}
        git = git_info(self.settings.root)
        self.git_commit = git.get("commit")
        tags = lineage_tags(
            git,
            spec_hash=plan.spec_hash,
            toolkit_version=__version__,
            scheduler=scheduler,
        )
        tags[TAG_TRIGGERED_BY] = current_user() or "unknown"
        lock = lock_info(self.settings.root)
        if lock:
            tags[TAG_LOCK_HASH] = lock["sha256"]
        if self.owner_process:
            tags[TAG_HOST] = socket.gethostname()
            tags[TAG_PID] = str(os.getpid())
        self._parent = self.tracker.start_pipeline(
            plan.pipeline,
            run_name=plan.run_dir.name,
            params=self._redact(plan.parameters, plan.secret_params),
            tags=tags,
            toolkit_run_id=plan.run_dir.name,
            source=str(plan.spec_path),
            description=f"Pipeline `{plan.pipeline}`, run `{plan.run_dir.name}`: "
            f"{len(plan.steps)} steps ({', '.join(plan.names)}).",
            start_time=start_time,
        )
        parent = self._parent
        # Redacted like every text artifact: a spec may hold a key in a step's env:.
        spec_text = plan.spec_path.read_text(encoding="utf-8")
        self.tracker.log_text(parent, spec_text, f"spec/{plan.spec_path.name}")
        self._env_thread = threading.Thread(
            target=lambda: self.tracker.log_dict(
                parent,
                environment(root=self.settings.root, kernel=self.settings.kernel),
                "environment.json",
            ),
            name="toolkit-env",
            daemon=True,
        )
        self._env_thread.start()
        return parent

    def attach(self, parent: str) -> None:
        """Use an existing pipeline run (opened by another process) instead of :meth:`start`."""
        self._parent = parent

    def detach(self) -> None:
        """Let this process go without closing the pipeline run, which others still use."""
        self._pool.shutdown(wait=True)
        if self._env_thread is not None:
            self._env_thread.join(timeout=30)
        for name in list(self.steps.runs):
            self.steps.close(name, "FAILED", "the step ended without a report")
        self._goodbye()

    def _goodbye(self) -> None:
        """End a session with the engine daemon, which then forgets this run's open runs."""
        if self._tracker.done() and self._tracker.exception() is None:
            tracker = self.tracker
            if isinstance(tracker, RemoteTracker):
                tracker.close()

    def step_started_async(
        self, step: PlannedStep, events_path: Path, tags: Mapping[str, object] | None = None
    ) -> Future[str]:
        """Open the step's run without holding up its kernel; the future gives the run id."""
        return self._pool.submit(self.step_started, step, events_path, tags, now_ms())

    def step_started(
        self,
        step: PlannedStep,
        events_path: Path,
        tags: Mapping[str, object] | None = None,
        start_time: int | None = None,
    ) -> str:
        parent = self.parent
        assert parent is not None
        return self.steps.started(parent, step, events_path, tags, start_time)

    def step_finished(self, step: PlannedStep, report: StepReport) -> None:
        """Close the step's run on the tracking pool: rendering and uploading its notebook
        overlaps the next steps instead of holding them up. :meth:`finish` waits for it."""
        future = self._pool.submit(self.steps.finished, step, report)
        with self._closing_lock:
            self._closing.append(future)

    def notebook_env(self, step: PlannedStep) -> dict[str, str]:
        return self.steps.notebook_env(step.name)

    def logged_metrics(self, step: PlannedStep) -> dict[str, float]:
        return self.steps.logged_metrics(step.name)

    def _wait_for_closes(self) -> None:
        with self._closing_lock:
            pending, self._closing = self._closing, []
        for future in pending:
            if future.exception() is not None:  # waits; a failed upload must not end the run
                log.warning("could not record to MLflow: %s", future.exception())

    def step_cached_async(
        self, step: PlannedStep, report: StepReport, events_path: Path
    ) -> Future[str]:
        """Record a reused step (a run tagged cached) off the critical path; gives its run id."""

        def record() -> str:
            run_id = self.step_started(step, events_path)
            self.steps.finished(step, replace(report, mlflow_run_id=run_id))
            return run_id

        return self._pool.submit(record)

    def log_gates(self, gates: dict[str, Any]) -> None:
        """Per gate its value, threshold and verdict; an overall tag; the whole report as JSON.
        On the tracking pool, like a step's close: registration need not wait for these three
        calls (up to 0.1 s beside the last step's close); :meth:`finish` does."""
        future = self._pool.submit(self._log_gates, gates)
        with self._closing_lock:
            self._closing.append(future)

    def _log_gates(self, gates: dict[str, Any]) -> None:
        assert self.parent is not None
        tags: dict[str, object] = {"toolkit.gates.passed": str(gates["passed"]).lower()}
        metrics = []
        for i, gate in enumerate(gates["gates"]):
            name = f"gate.{i}.{gate['name']}"
            tags[name] = f"{'PASS' if gate['passed'] else 'FAIL'}: {gate['expression']}"
            for field_name in ("value", "threshold"):
                if gate.get(field_name) is not None:
                    metrics.append((f"{name}.{field_name}", float(gate[field_name]), None, None))
            metrics.append((f"{name}.passed", float(bool(gate["passed"])), None, None))
        self.tracker.set_tags(self.parent, tags)
        self.tracker.log_metrics(self.parent, metrics)
        self.tracker.log_dict(self.parent, gates, "gates.json")

    def finish(self, report: RunReport) -> None:
        self._wait_for_closes()
        if self.parent is None:
            return
        if self._env_thread is not None:
            self._env_thread.join(timeout=30)
        summary = self.redactor.scrub_obj(report.to_dict())
        self.tracker.log_dict(self.parent, summary, "summary.json")
        self._log_report(report)
        totals = [("duration_s", float(report.duration), None, None)]
        counts = {s.status for s in report.steps}
        tags = {"toolkit.status": report.status, "toolkit.exit_code": int(report.exit_code)}
        tags.update(
            {f"toolkit.steps.{c}": sum(s.status == c for s in report.steps) for c in counts}
        )
        self.tracker.end(
            self.parent, STATUS.get(report.status, "FAILED"), tags=tags, metrics=totals
        )

    def _log_report(self, report: RunReport) -> None:
        """``report.html`` at the root of the pipeline run, linking the step runs; never raises."""
        from toolkit.reports.run_report import render_run_report

        try:
            links: dict[str, str] = {}
            if self.tracker.is_remote:
                exp = self.tracker.experiment_id(self.plan.pipeline)
                for step in report.steps:
                    url = step.mlflow_run_id and self.tracker.ui_url(step.mlflow_run_id, exp)
                    if url:
                        links[step.name] = url
            page = render_run_report(
                self.plan.run_dir,
                target="mlflow",
                step_links=links,
                secret_patterns=self.settings.secret_patterns,
            )
            self.tracker.log_text(self.parent or "", page, "report.html")  # scrubbed there too
        except Exception as exc:
            log.warning("could not log the run report: %s", exc)

    def abort(self, status: str = "KILLED") -> None:
        """Close whatever is still open; used on interrupts and unexpected errors."""
        # Let pending opens finish first, so that no run is created after the close below.
        self._pool.shutdown(wait=True)
        if self._tracker.exception() is not None:
            return  # no client was ever made, so no run was opened
        for forwarder in self.forwarders.values():
            forwarder.stop()
        self.forwarders.clear()
        self.tracker.close_all(status)
        self._goodbye()

    def ui_link(self) -> str | None:
        return self.tracker.ui_url(self.parent) if self.parent else None


def tracking_disabled() -> bool:
    return env_flag("TOOLKIT_TRACKING") is False


def store_identity(uri: str) -> str | None:
    """Which store a tracking URI points at now, cheaply (no MLflow import).

    For a SQLite store, the creation time of its default experiment: a store deleted and made
    anew at the same path is another backend, whose registry holds none of the earlier
    versions. For a server, its URI (asking it would cost a round trip on every no-op run).
    """
    if not uri.startswith("sqlite:///"):
        return uri
    import sqlite3

    path = uri.removeprefix("sqlite:///")
    if not Path(path).is_file():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute(
                "SELECT creation_time FROM experiments WHERE experiment_id = 0"
            ).fetchone()
    except sqlite3.Error:
        return None  # damaged or not MLflow's: never "the same backend"
    return f"{path}@{row[0]}" if row else None
