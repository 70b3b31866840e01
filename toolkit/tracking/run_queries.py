"""Reading runs back from MLflow: pipeline runs with their steps, metrics, browser links.

The read side of :class:`toolkit.tracking.client.Tracker`, which inherits it: the connection
probe, the runs it has open, queries, and the error boundary both sides share. It calls the tracker's MLflow client and never imports MLflow itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from toolkit.core.errors import TrackingError, UsageError
from toolkit.tracking.vocabulary import (
    MLFLOW_PARENT_RUN_ID,
    RUN_ID,
    TAG_KIND,
    TAG_PIPELINE,
    TAG_RUN_ID,
    TAG_STEP,
    RunDetail,
    RunSummary,
    StepDetail,
    datetime_from_ms,
)

_R = TypeVar("_R", bound=RunSummary)
log = logging.getLogger(__name__)


@dataclass
class OpenRun:
    """A run a tracker opened and has not ended yet."""

    experiment_id: str
    parent: str | None
    artifact_uri: str
    inherited: dict[str, str]  # tags a step copies from its pipeline run
    repo: Any = None  # the run's ArtifactRepository, made on first upload


class RunQueries:
    """Queries on the runs of the MLflow store at ``tracking_uri``, through ``_client`` (an
    :class:`mlflow.MlflowClient` the subclass makes). Backend failures raise
    :class:`~toolkit.core.errors.TrackingError`, redacted with ``redact``."""

    tracking_uri: str
    redact: Callable[[str], str] | None
    _client: Any
    _lock: threading.RLock
    _open: dict[str, OpenRun]

    @property
    def is_remote(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://"))

    def check_connection(self, timeout_s: float = 5.0) -> None:
        """Fail fast if the backend is unusable; call it before any notebook runs.

        MLflow's HTTP client retries a dead server with backoff for about 4 minutes per call,
        so a server is probed on ``/health`` with a short timeout instead. A database store was
        already opened (and, when new, created and migrated: 1.5-5 s) by the constructor; this
        runs one cheap query on it.
        """
        if self.is_remote:
            import urllib.request  # 60 ms of imports that only a server needs

            url = self.tracking_uri.rstrip("/") + "/health"
            try:
                with urllib.request.urlopen(url, timeout=timeout_s) as response:
                    response.read(64)
            except (OSError, ValueError) as exc:  # URLError/HTTPError/timeouts are OSErrors
                raise TrackingError(
                    f"MLflow server {self.tracking_uri} is not reachable: {exc}",
                    hint="start it, or point MLFLOW_TRACKING_URI at a reachable server",
                ) from exc
            return
        with self._guard("open"):
            self._client.search_experiments(max_results=1)

    def open_runs(self) -> list[str]:
        """Ids of the runs this tracker started and has not ended, steps before pipelines."""
        with self._lock:
            return sorted(self._open, key=lambda r: self._open[r].parent is None)

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except TrackingError:
            raise
        except Exception as exc:  # MlflowException, requests/SQLAlchemy errors, OSError
            message = self._scrub(f"{type(exc).__name__}: {exc}")
            raise TrackingError(
                f"could not {action} MLflow at {self.tracking_uri}: {message}",
                hint="check the tracking URI (MLFLOW_TRACKING_URI or [tool.toolkit] tracking_uri)",
            ) from exc

    def _scrub(self, text: str) -> str:
        return self.redact(text) if self.redact else text

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """The latest value of every metric of a run (logged by anyone, the notebook too)."""
        with self._guard(f"read run {run_id} from"):
            return dict(self._client.get_run(run_id).data.metrics)

    def experiment_of(self, run_id: str) -> str:
        with self._lock:
            known = self._open.get(run_id)
        if known is not None:
            return known.experiment_id
        with self._guard(f"read run {run_id} from"):
            return str(self._client.get_run(run_id).info.experiment_id)

    def ui_url(self, run_id: str, experiment_id: str | None = None) -> str | None:
        """A browser link to the run for http(s) tracking URIs; None for local stores."""
        if not self.is_remote:
            return None
        if experiment_id is None:
            with self._lock:
                record = self._open.get(run_id)
            if record is not None:
                experiment_id = record.experiment_id
            else:
                with self._guard(f"read run {run_id} from"):
                    experiment_id = self._client.get_run(run_id).info.experiment_id
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def _search(
        self, experiment_ids: list[str], query: str, max_results: int, order: str
    ) -> list[Any]:
        if not experiment_ids:
            return []
        with self._guard("search runs in"):
            return list(
                self._client.search_runs(
                    experiment_ids,
                    filter_string=query,
                    max_results=max_results,
                    order_by=[f"attributes.start_time {order}"],
                )
            )

    def _all_experiments(self) -> list[str]:
        with self._guard("list experiments in"):
            return [e.experiment_id for e in self._client.search_experiments()]

    def list_runs(self, pipeline: str | None = None, *, max_results: int = 20) -> list[RunSummary]:
        """Pipeline runs (never step runs), newest first, of one pipeline or of all."""
        if pipeline is None:
            exp_ids = self._all_experiments()
        else:
            with self._guard(f"get experiment {pipeline!r} from"):
                exp = self._client.get_experiment_by_name(pipeline)
            exp_ids = [exp.experiment_id] if exp is not None else []
        runs = self._search(exp_ids, f"tags.`{TAG_KIND}` = 'pipeline'", max_results, "DESC")
        return [self._summary(run, RunSummary) for run in runs]

    def get_run(self, ref: str) -> RunDetail:
        """A pipeline run and its steps, by MLflow run id (of the pipeline or of one of its
        steps) or by toolkit run id (tag ``toolkit.run_id``)."""
        run = None
        if RUN_ID.match(ref):
            try:
                run = self._client.get_run(ref)
            except Exception:  # not an MLflow id after all; try it as a toolkit run id
                run = None
            parent = run.data.tags.get(MLFLOW_PARENT_RUN_ID) if run else None
            if run is not None and run.data.tags.get(TAG_KIND) == "step" and parent:
                with self._guard(f"read run {parent} from"):
                    run = self._client.get_run(parent)
        if run is None and "'" not in ref:
            query = f"tags.`{TAG_RUN_ID}` = '{ref}' and tags.`{TAG_KIND}` = 'pipeline'"
            found = self._search(self._all_experiments(), query, 1, "DESC")
            run = found[0] if found else None
        if run is None:
            raise UsageError(f"no pipeline run {ref!r} in {self.tracking_uri}")
        steps = self._search(
            [run.info.experiment_id],
            f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{run.info.run_id}'",
            1000,
            "ASC",
        )
        steps_ = tuple(self._step(s) for s in steps)
        return self._summary(run, RunDetail, artifact_uri=run.info.artifact_uri, steps=steps_)

    def _fields(self, run: Any) -> dict[str, Any]:
        """The fields every run view shares."""
        info, data = run.info, run.data
        start, end = info.start_time, info.end_time
        return {
            "run_id": info.run_id,
            "status": info.status,
            "start_time": datetime_from_ms(start),
            "end_time": datetime_from_ms(end),
            "duration_s": (end - start) / 1000 if start and end else None,
            "metrics": dict(data.metrics),
            "params": dict(data.params),
            "tags": dict(data.tags),
            "ui_url": self.ui_url(info.run_id, info.experiment_id),
        }

    def _summary(self, run: Any, cls: type[_R], **extra: Any) -> _R:
        return cls(
            **self._fields(run),
            toolkit_run_id=run.data.tags.get(TAG_RUN_ID),
            pipeline=run.data.tags.get(TAG_PIPELINE),
            run_name=run.info.run_name,
            experiment_id=run.info.experiment_id,
            **extra,
        )

    def _step(self, run: Any) -> StepDetail:
        step = run.data.tags.get(TAG_STEP, run.info.run_name or "")
        return StepDetail(**self._fields(run), step=step, artifact_uri=run.info.artifact_uri)


def end_open_runs(
    tracker: Any, status: str, *, error: BaseException | str | None = None
) -> list[str]:
    """``tracker.close_all``, for a :class:`Tracker` and its stand-in
    (:class:`toolkit.tracking.remote.RemoteTracker`): end every run it has open, steps first,
    skipping (and logging) one that cannot be ended."""
    closed = []
    for run_id in tracker.open_runs():
        try:
            tracker.end(run_id, status, error=error)
            closed.append(run_id)
        except Exception:
            log.exception("could not end MLflow run %s", run_id)
    return closed
