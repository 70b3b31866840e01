"""The MLflow run of one step: opened under the pipeline's run, fed, and closed.

Used by the orchestrator's :class:`~toolkit.tracking.run_tracking.RunTracking` (local steps) and, on
its own, inside a Dask worker process: a step's run only needs the parent run's id, the
tracking URI and the run's secrets, so it can be opened and closed wherever the step executes.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.core.fsutil import atomic_write_bytes
from toolkit.core.lineage import fingerprint
from toolkit.core.secrets import Redactor, redact_params, scrub_notebook
from toolkit.core.settings import Settings
from toolkit.plan.planned import PlannedStep
from toolkit.reports.notebook_html import render_html
from toolkit.reports.summary import CACHED, FAILED, INTERRUPTED, SUCCEEDED, StepReport
from toolkit.tracking.client import Tracker
from toolkit.tracking.forwarder import MetricsForwarder
from toolkit.tracking.remote import RemoteTracker

STATUS = {SUCCEEDED: "FINISHED", CACHED: "FINISHED", FAILED: "FAILED", INTERRUPTED: "KILLED"}
TAG_WORKER = "toolkit.worker"
# Renders a notebook to HTML: (notebook, html path, title) -> the html path. The engine
# helper's, off the orchestrator's process, or :func:`render_html` here.
Renderer = Callable[[Path, Path, str], Path]

log = logging.getLogger(__name__)


class StepRuns:
    """Opens and closes the nested MLflow runs of steps; one instance may serve many steps."""

    def __init__(
        self,
        tracker: Tracker | RemoteTracker,
        settings: Settings,
        redactor: Redactor,
        renderer: Renderer | None = None,
    ) -> None:
        self.tracker = tracker
        self.settings = settings
        self.redactor = redactor
        self.renderer = renderer
        self.runs: dict[str, str] = {}
        self.forwarders: dict[str, MetricsForwarder] = {}

    def started(
        self,
        parent: str,
        step: PlannedStep,
        events_path: Path,
        tags: Mapping[str, object] | None = None,
        start_time: int | None = None,
    ) -> str:
        params = redact_params(
            step.parameters, patterns=self.settings.secret_patterns, declared=step.secret_params
        )
        run_id = self.tracker.start_step(
            parent,
            step.name,
            params=params,
            tags=tags,
            source=str(step.notebook),
            start_time=start_time,
        )
        self.runs[step.name] = run_id
        self.forwarders[step.name] = MetricsForwarder(self.tracker, run_id, events_path).start()
        return run_id

    def notebook_env(self, step: str) -> dict[str, str]:
        """What a kernel needs so that ``mlflow.log_*`` and autolog resume the step's run."""
        run_id = self.runs.get(step)
        if run_id is None:
            return {}
        return {
            "MLFLOW_RUN_ID": run_id,
            "TOOLKIT_MLFLOW_RUN_ID": run_id,  # read by the kernel's start_run (kernel_audit.py)
            "MLFLOW_EXPERIMENT_ID": self.tracker.experiment_of(run_id),
            "MLFLOW_TRACKING_URI": self.tracker.tracking_uri,
        }

    def logged_metrics(self, step: str) -> dict[str, float]:
        """Metrics of the step's run, including those the notebook logged through MLflow."""
        run_id = self.runs.get(step)
        return self.tracker.run_metrics(run_id) if run_id else {}

    def finished(self, step: PlannedStep, report: StepReport) -> None:
        run_id = self.runs.get(step.name)
        if run_id is None:
            return
        forwarder = self.forwarders.pop(step.name, None)
        if forwarder is not None:
            forwarder.stop()
        prints = {
            f"{kind}.{key}": fingerprint(item.path)
            for kind, items in (("input", step.inputs), ("output", step.outputs))
            for key, item in items.items()
            if item.path.exists()
        }
        if prints:
            self.tracker.log_dict(run_id, prints, "fingerprints.json")
        for entry in report.contracts:
            self.tracker.log_dict(
                run_id, entry, f"contracts/{entry['direction']}.{entry['target']}.json"
            )
            if entry.get("html"):
                self.tracker.log_artifact(run_id, Path(entry["html"]), "contracts")
        # A reused step's run carries its notebook too: the run it came from may live in
        # another backend, and each step run must stand on its own.
        if report.notebook and Path(report.notebook).exists():
            self._log_notebook(run_id, step, Path(report.notebook))
        self.tracker.end(run_id, STATUS.get(report.status, "FAILED"), **_final(report, prints))

    def close(self, step: str, status: str, error: str) -> None:
        """Make sure the step's run is ended (a no-op when :meth:`finished` already did)."""
        forwarder = self.forwarders.pop(step, None)
        if forwarder is not None:
            forwarder.stop()
        run_id = self.runs.get(step)
        if run_id is not None:
            try:
                self.tracker.end(run_id, status, error=error)
            except Exception:  # never mask the step's own outcome
                log.exception("could not end MLflow run %s", run_id)

    def _log_notebook(self, run_id: str, step: PlannedStep, notebook: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="toolkit-nb-") as tmp:
            clean = Path(tmp) / f"{step.name}.ipynb"
            scrub_notebook(
                notebook,
                clean,
                self.redactor,
                patterns=self.settings.secret_patterns,
                declared=step.secret_params,
            )
            html = self._html(clean, Path(tmp) / f"{step.name}.html", step.name)
            self.tracker.log_artifact(run_id, clean, "notebook")
            self.tracker.log_artifact(run_id, html, "notebook")

    def _html(self, clean: Path, html: Path, title: str) -> Path:
        """The scrubbed notebook as HTML, rendered once per distinct notebook: a reused step
        logs the same notebook on every re-run, and rendering costs 0.2-1 s of CPU."""
        key = b"\0".join((clean.read_bytes(), title.encode(), __version__.encode()))
        digest = hashlib.sha256(key).hexdigest()
        cached = self.settings.cache_dir / "html" / f"{digest}.html"
        if cached.is_file():
            shutil.copyfile(cached, html)
            return html
        if self.renderer is not None:
            self.renderer(clean, html, title)
        else:
            render_html(clean, html, title=title)
        try:
            cached.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            atomic_write_bytes(cached, html.read_bytes())
        except OSError as exc:  # a cache that cannot be written only costs a render
            log.debug("could not keep the notebook's HTML: %s", exc)
        return html


def _final(report: StepReport, prints: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The closing tags, metrics and error of a step's run."""
    tags: dict[str, object] = {"toolkit.status": report.status, "toolkit.attempts": report.attempts}
    if report.status == CACHED:
        # Nothing executed: say where the results come from and carry its metrics over.
        tags["toolkit.cached"] = "true"
        tags["toolkit.cached_from"] = report.reason or ""
    for key, facts in prints.items():
        if "sha256" in facts:
            tags[f"data.{key}.sha256"] = facts["sha256"]
        if "rows" in facts:
            tags[f"data.{key}.rows"] = facts["rows"]
    error = None
    if report.error:
        error = report.error.get("message")
        tags["toolkit.error.kind"] = report.error.get("kind", "")
        if report.error.get("cell_index") is not None:
            tags["toolkit.error.cell"] = report.error["cell_index"]
        if report.error.get("ename"):
            tags["toolkit.error.exception"] = report.error["ename"]
    metrics = [("duration_s", float(report.duration or 0.0), None, None)]
    if report.status == CACHED:
        metrics += [(k, float(v), None, None) for k, v in report.metrics.items()]
    return {"error": error, "tags": tags, "metrics": metrics}


def close_orphans(tracker: Tracker, parent: str, step: str, keep: str | None) -> list[str]:
    """End step runs of ``step`` under ``parent`` still RUNNING, but ``keep``: a worker that
    died mid-step cannot close its own run. Returns the ids it closed."""
    closed = []
    for run in tracker.get_run(parent).steps:
        if run.step == step and run.status == "RUNNING" and run.run_id != keep:
            tracker.end(run.run_id, "KILLED", error="the worker running this step was lost")
            closed.append(run.run_id)
    return closed
