"""MLflow tracking for pipeline runs: one run per pipeline run, one nested run per step.

Steps run in parallel threads of one process, so nothing here uses MLflow's fluent API
(``mlflow.start_run``, ``mlflow.log_metric``...): its active run is process-global state and
parallel steps would log into each other. Instead one :class:`~mlflow.MlflowClient` is shared
and every call names its run id explicitly.

The one module of ``toolkit.tracking`` that imports MLflow, inside functions (~1 s) so that
``toolkit --help`` and the in-notebook API stay fast. Reading runs back is in
:mod:`toolkit.tracking.run_queries`, which :class:`Tracker` inherits.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from toolkit.core import sqlite_store
from toolkit.core.errors import TrackingError
from toolkit.core.jsonable import dumps
from toolkit.core.lineage import current_user
from toolkit.core.mlflow_env import use_mlflow_defaults
from toolkit.tracking.run_queries import OpenRun, RunQueries, end_open_runs
from toolkit.tracking.vocabulary import (
    END_STATUSES,
    MAX_ENTITIES_PER_BATCH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VALUE,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VALUE,
    MLFLOW_NOTE,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_SOURCE_NAME,
    MLFLOW_SOURCE_TYPE,
    MLFLOW_USER,
    TAG_KIND,
    TAG_PIPELINE,
    TAG_RUN_ID,
    TAG_STEP,
    Metric,
    error_tags,
    now_ms,
    slug,
    stringify,
)


class Tracker(RunQueries):
    """Explicit-run-id MLflow logging, safe to share between step threads.

    ``redact`` (e.g. a :class:`toolkit.core.secrets.Redactor`) is applied to every param value, tag
    value, JSON/text artifact and error message this tracker writes; it may be set after
    construction, once the run's secrets are known. Files passed to :meth:`log_artifact` are
    logged as they are: scrub notebooks first (:func:`toolkit.core.secrets.scrub_notebook`).
    Every backend failure is raised as :class:`~toolkit.core.errors.TrackingError`.
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        artifacts_dir: Path | None = None,
        redact: Callable[[str], str] | None = None,
        user: str | None = None,
    ) -> None:
        use_mlflow_defaults()  # before the import
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.artifacts_dir = Path(artifacts_dir).resolve() if artifacts_dir else None
        self.redact = redact
        # MLflow records "unknown" unless the mlflow.user tag is set explicitly.
        self.user = user or current_user()
        fresh = sqlite_store.seed(tracking_uri)  # a new store: copied, not migrated, if it can be
        with self._guard("connect to"):
            self._client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        if fresh:  # MLflow has just built it: the next new store will be a copy
            sqlite_store.keep(tracking_uri)
        # Re-entrant: close_all() runs from signal handlers, which interrupt the main thread
        # possibly while it holds this lock.
        self._lock = threading.RLock()
        self._experiments: dict[str, str] = {}
        self._open: dict[str, OpenRun] = {}
        self._ended: set[str] = set()

    def experiment_id(self, pipeline: str) -> str:
        """The id of the experiment named ``pipeline``, created on first use."""
        with self._lock:
            if pipeline in self._experiments:
                return self._experiments[pipeline]
            with self._guard(f"get experiment {pipeline!r} from"):
                exp = self._client.get_experiment_by_name(pipeline)
                if exp is None:
                    location = None
                    if self.artifacts_dir and not self.is_remote:
                        # Otherwise artifacts land in ./mlruns of whatever the cwd is.
                        location = (self.artifacts_dir / slug(pipeline)).as_uri()
                    try:
                        exp_id = self._client.create_experiment(
                            pipeline, artifact_location=location, tags={TAG_PIPELINE: pipeline}
                        )
                    except Exception:  # another process created it first
                        exp = self._client.get_experiment_by_name(pipeline)
                        if exp is None:
                            raise
                        exp_id = exp.experiment_id
                elif exp.lifecycle_stage != "active":
                    raise TrackingError(
                        f"experiment {pipeline!r} is deleted in {self.tracking_uri}",
                        hint=f"restore it: mlflow experiments restore -x {exp.experiment_id}",
                    )
                else:
                    exp_id = exp.experiment_id
            self._experiments[pipeline] = exp_id
            return exp_id

    def _create(
        self,
        experiment_id: str,
        name: str,
        tags: Mapping[str, object],
        params: Mapping[str, object],
        parent: str | None,
        inherited: dict[str, str],
        start_time: int | None = None,
    ) -> str:
        clean = {k: self._value(v, MAX_TAG_VALUE) for k, v in tags.items()}
        with self._guard(f"create run {name!r} in"):
            run = self._client.create_run(experiment_id, start_time, tags=clean, run_name=name)
        run_id = run.info.run_id
        with self._lock:
            self._open[run_id] = OpenRun(experiment_id, parent, run.info.artifact_uri, inherited)
        if params:
            self.log_params(run_id, params)
        return run_id

    def start_pipeline(
        self,
        pipeline: str,
        *,
        run_name: str,
        params: Mapping[str, object],
        tags: Mapping[str, object],
        toolkit_run_id: str | None = None,
        source: str | None = None,
        description: str | None = None,
        start_time: int | None = None,
    ) -> str:
        """Open the parent run of one pipeline run in experiment ``pipeline``; return its id.
        ``start_time`` (ms): when the run began, since MLflow would date it from this call."""
        inherited = {TAG_PIPELINE: pipeline, TAG_RUN_ID: toolkit_run_id or ""}
        inherited = {k: v for k, v in inherited.items() if v}
        system = self._system_tags("JOB", source, description)
        all_tags = {**system, **tags, **inherited, TAG_KIND: "pipeline"}
        exp_id = self.experiment_id(pipeline)
        return self._create(exp_id, run_name, all_tags, params, None, inherited, start_time)

    def _system_tags(self, kind: str, source: str | None, note: str | None) -> dict[str, object]:
        tags = {MLFLOW_SOURCE_TYPE: kind, MLFLOW_USER: self.user, MLFLOW_SOURCE_NAME: source}
        return {k: v for k, v in {**tags, MLFLOW_NOTE: note}.items() if v}

    def start_step(
        self,
        parent_run_id: str,
        step: str,
        *,
        params: Mapping[str, object],
        tags: Mapping[str, object] | None = None,
        source: str | None = None,
        description: str | None = None,
        start_time: int | None = None,
    ) -> str:
        """Open a step's run nested under ``parent_run_id`` (same experiment); return its id."""
        with self._lock:
            parent = self._open.get(parent_run_id)
        if parent is not None:
            exp_id, inherited = parent.experiment_id, dict(parent.inherited)
        else:  # a parent opened by another process or tracker
            with self._guard(f"read run {parent_run_id} from"):
                info = self._client.get_run(parent_run_id)
            exp_id = info.info.experiment_id
            keep = (TAG_PIPELINE, TAG_RUN_ID)
            inherited = {k: v for k, v in info.data.tags.items() if k in keep}
        all_tags = {
            **self._system_tags("NOTEBOOK", source, description),
            **(tags or {}),
            **inherited,
            MLFLOW_PARENT_RUN_ID: parent_run_id,
            TAG_KIND: "step",
            TAG_STEP: step,
        }
        return self._create(exp_id, step, all_tags, params, parent_run_id, inherited, start_time)

    # --- logging -----------------------------------------------------------------------------

    def _log_batch(
        self,
        run_id: str,
        *,
        metrics: Iterable[Metric] = (),
        params: Mapping[str, object] | None = None,
        tags: Mapping[str, object] | None = None,
    ) -> None:
        """As few log_batch requests as MLflow's limits allow (100 params, 100 tags,
        1000 metrics, 1000 entities in all per request)."""
        from mlflow.entities import Metric as MlflowMetric
        from mlflow.entities import Param, RunTag

        now = now_ms()
        ms = [
            MlflowMetric(str(key), float(value), ts if ts is not None else now, step or 0)
            for key, value, step, ts in metrics
        ]
        ps = [Param(str(k), self._value(v, MAX_PARAM_VALUE)) for k, v in (params or {}).items()]
        tg = [RunTag(str(k), self._value(v, MAX_TAG_VALUE)) for k, v in (tags or {}).items()]
        what = "metrics" if ms else "params" if ps else "tags"
        with self._guard(f"log {what} to run {run_id} in"):
            while ms or ps or tg:
                p, ps = ps[:MAX_PARAMS_TAGS_PER_BATCH], ps[MAX_PARAMS_TAGS_PER_BATCH:]
                t, tg = tg[:MAX_PARAMS_TAGS_PER_BATCH], tg[MAX_PARAMS_TAGS_PER_BATCH:]
                room = min(MAX_METRICS_PER_BATCH, MAX_ENTITIES_PER_BATCH - len(p) - len(t))
                m, ms = ms[:room], ms[room:]
                self._client.log_batch(run_id, metrics=m, params=p, tags=t)

    def _value(self, value: object, limit: int) -> str:
        """Stringify (JSON for containers), redact, then truncate to MLflow's limit."""
        return stringify(self._scrub(stringify(value, 1 << 30)), limit)

    def log_metrics(self, run_id: str, metrics: Iterable[Metric]) -> None:
        """Log ``(key, value, step, timestamp_ms)`` tuples in as few requests as possible.

        A missing step means 0 and a missing timestamp means now, as in MLflow.
        """
        self._log_batch(run_id, metrics=metrics)

    def log_params(self, run_id: str, params: Mapping[str, object]) -> None:
        """Log params; values are stringified (JSON for containers), redacted, truncated.

        MLflow params are immutable: re-logging a key with a *different* value fails.
        """
        self._log_batch(run_id, params=params)

    def set_tags(self, run_id: str, tags: Mapping[str, object]) -> None:
        """Set (or overwrite) tags; values are stringified, redacted and truncated."""
        self._log_batch(run_id, tags=tags)

    def _repo(self, run_id: str) -> Any:
        """The artifact repository of a run this tracker opened, else None.

        MlflowClient.log_artifact first looks the run up (a ~5 ms query) to learn its artifact
        URI; create_run already told us, so runs opened here skip that round trip.
        """
        with self._lock:
            record = self._open.get(run_id)
            if record is None:
                return None
            if record.repo is None:
                from mlflow.store.artifact.artifact_repository_registry import (
                    get_artifact_repository,
                )

                record.repo = get_artifact_repository(
                    record.artifact_uri, tracking_uri=self.tracking_uri
                )
            return record.repo

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        """Upload a file, or a folder's contents, under ``artifact_path`` of the run."""
        path = Path(path)
        with self._guard(f"log artifact {path.name} to run {run_id} in"):
            repo = self._repo(run_id)
            if repo is None:
                upload = self._client.log_artifacts if path.is_dir() else self._client.log_artifact
                upload(run_id, str(path), artifact_path)
            elif path.is_dir():
                repo.log_artifacts(str(path), artifact_path)
            else:
                repo.log_artifact(str(path), artifact_path)

    def read_json(self, run_id: str, artifact_file: str) -> Any:
        """Read back a JSON artifact (e.g. ``summary.json``) of a run."""
        import mlflow

        with self._guard(f"download {artifact_file} of run {run_id} from"):
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact_file, tracking_uri=self.tracking_uri
            )
        return json.loads(Path(local).read_text(encoding="utf-8"))

    def log_dict(self, run_id: str, data: object, artifact_file: str) -> None:
        """Log ``data`` as a JSON artifact (redacted, ``default=str`` for dates and paths)."""
        self.log_text(run_id, dumps(data, indent=2) + "\n", artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """Log ``text`` (redacted) as the artifact ``artifact_file``, a relative posix path."""
        folder, _, name = artifact_file.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="toolkit-artifact-") as tmp:
            local = Path(tmp, name)
            local.write_text(self._scrub(text), encoding="utf-8")
            self.log_artifact(run_id, local, folder or None)

    # --- ending ------------------------------------------------------------------------------

    def end(
        self,
        run_id: str,
        status: str,
        *,
        error: BaseException | str | None = None,
        tags: Mapping[str, object] | None = None,
        metrics: Iterable[Metric] = (),
        end_time_ms: int | None = None,
    ) -> None:
        """Terminate a run with FINISHED, FAILED or KILLED. Calling it again is a no-op.

        ``error`` adds ``toolkit.error.type``/``toolkit.error.message`` tags (redacted). Final
        ``tags`` and ``metrics`` travel in the same request as those: one round trip less per
        step than separate calls. The duration is MLflow's own end time minus start time.
        """
        status = status.upper()
        if status not in END_STATUSES:
            raise ValueError(f"status must be one of {sorted(END_STATUSES)}, not {status!r}")
        with self._lock:
            if run_id in self._ended:
                return
        final: dict[str, object] = dict(tags or {})
        if error is not None:
            final.update(error_tags(error))
        self._log_batch(run_id, metrics=metrics, tags=final)
        with self._guard(f"end run {run_id} in"):
            self._client.set_terminated(run_id, status=status, end_time=end_time_ms or now_ms())
        with self._lock:
            self._open.pop(run_id, None)
            self._ended.add(run_id)

    def close_all(self, status: str, *, error: BaseException | str | None = None) -> list[str]:
        """End every run this tracker left open (steps first); return their ids.

        Meant for signal handlers and ``finally`` blocks, so it never raises: a run that cannot
        be ended is logged and skipped, and the others are still closed.
        """
        return end_open_runs(self, status, error=error)

    @contextlib.contextmanager
    def failing(self) -> Iterator[None]:
        """Within the block, any error (an interrupt included) ends every run this tracker
        still has open as FAILED, then propagates: a command's run is never left RUNNING."""
        try:
            yield
        except BaseException:
            self.close_all("FAILED")
            raise

    def end_orphaned_steps(self, parent_run_id: str, steps: Iterable[str]) -> list[str]:
        """End as KILLED the step runs of ``steps`` under ``parent_run_id`` still RUNNING.

        For a caller that knows no live process owns them (it holds those steps' locks): their
        process was killed (SIGKILL, OOM, a scheduler's kill) before it could close them.
        Returns the ids ended.
        """
        wanted = set(steps)
        if not wanted:
            return []
        with self._guard(f"read run {parent_run_id} from"):
            exp_id = self._client.get_run(parent_run_id).info.experiment_id
        query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'"
        query += " and attributes.status = 'RUNNING'"
        ended = []
        for run in self._search([exp_id], query, 1000, "ASC"):
            if run.data.tags.get(TAG_STEP) in wanted:
                self.end(
                    run.info.run_id,
                    "KILLED",
                    error="its process ended before the step did (killed); a later attempt "
                    "or the run's finish closed it",
                )
                ended.append(run.info.run_id)
        return ended
