"""Read back what a tracked pipeline run recorded: the one place reproduce and diff load runs.

A run's facts live in its MLflow runs: ``summary.json`` and ``environment.json`` on the pipeline
run; metrics, ``data.*`` tags and ``fingerprints.json`` on each step's run. Missing artifacts
(older runs, a failed upload) become empty values, never errors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.errors import ToolkitError, UsageError, did_you_mean
from toolkit.tracking.client import Tracker
from toolkit.tracking.comparison import RunSide, StepSide
from toolkit.tracking.vocabulary import RunDetail, StepDetail


@dataclass(frozen=True)
class LoadedRun:
    """A pipeline run as recorded: its MLflow view plus the JSON artifacts reproduce/diff use."""

    detail: RunDetail
    summary: dict[str, Any]
    environment: dict[str, Any] | None
    step_runs: dict[str, StepDetail] = field(default_factory=dict)  # the latest run per step

    @property
    def name(self) -> str:
        return self.detail.toolkit_run_id or self.detail.run_id

    @property
    def commit(self) -> str | None:
        return self.detail.tags.get("git.commit")

    @property
    def dirty(self) -> bool:
        return self.detail.tags.get("git.dirty") == "true"


def read_artifact(tracker: Tracker, run_id: str, name: str) -> Any:
    try:
        return tracker.read_json(run_id, name)
    except (ToolkitError, OSError, ValueError):
        return None


def find_run(tracker: Tracker, ref: str, pipeline: str | None = None) -> RunDetail:
    """The pipeline run ``ref`` (toolkit or MLflow id); exit-2 errors with a did-you-mean.

    With ``pipeline``, a run of another pipeline is refused the same way: its id is right,
    but it is not the run the user meant.
    """
    try:
        run = tracker.get_run(ref)
    except UsageError as exc:
        raise UsageError(exc.message, hint=_suggest(tracker, ref, pipeline)) from exc
    if pipeline is not None and run.pipeline != pipeline:
        hint = _suggest(tracker, ref, pipeline) or f"toolkit runs list {pipeline}"
        raise UsageError(
            f"run {ref!r} is a run of pipeline {run.pipeline!r}, not {pipeline!r}", hint=hint
        )
    return run


def _suggest(tracker: Tracker, ref: str, pipeline: str | None) -> str | None:
    try:
        runs = tracker.list_runs(pipeline, max_results=200)
    except ToolkitError:
        return None
    ids = [r.toolkit_run_id for r in runs if r.toolkit_run_id]
    hint = did_you_mean(ref, ids)
    if hint is None and ids:
        hint = f"recent runs: {', '.join(ids[:3])} (toolkit runs list)"
    return hint


def load_run(tracker: Tracker, ref: str, pipeline: str | None = None) -> LoadedRun:
    detail = find_run(tracker, ref, pipeline)
    summary = read_artifact(tracker, detail.run_id, "summary.json") or {}
    env = read_artifact(tracker, detail.run_id, "environment.json")
    latest: dict[str, StepDetail] = {}
    for step in detail.steps:  # oldest first: a retried or resumed step keeps its last run
        latest[step.step] = step
    return LoadedRun(detail, summary, env if isinstance(env, dict) else None, latest)


def step_fingerprints(tracker: Tracker, step: StepDetail) -> dict[str, dict[str, Any]]:
    """``{"input.key"|"output.key": fingerprint}`` a step logged (paths, rows, schema, hash)."""
    data = read_artifact(tracker, step.run_id, "fingerprints.json")
    return data if isinstance(data, dict) else {}


def output_hashes(step: StepDetail) -> dict[str, str]:
    """``{"output.key": sha256}`` from a step run's ``data.output.*.sha256`` tags."""
    return {
        k.removeprefix("data.").removesuffix(".sha256"): v
        for k, v in step.tags.items()
        if k.startswith("data.output.") and k.endswith(".sha256")
    }


def _notebook(tracker: Tracker, step: StepDetail | None, entry: dict[str, Any]) -> Any:
    """The executed notebook: the step run's artifact, else the run folder's copy (a cached
    step logs none of its own; its folder links the one it reused)."""
    name = entry.get("name", "")
    if step is not None and step.tags.get("toolkit.cached") != "true":
        found = read_artifact(tracker, step.run_id, f"notebook/{name}.ipynb")
        if isinstance(found, dict):
            return found
    local = entry.get("notebook")
    if local and Path(local).is_file():
        try:
            return json.loads(Path(local).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    return None


def load_side(tracker: Tracker, ref: str, *, notebooks: bool = True) -> RunSide:
    """A run as :func:`toolkit.tracking.comparison.diff_runs` compares it."""
    run = load_run(tracker, ref)
    steps: dict[str, StepSide] = {}
    for entry in run.summary.get("steps") or []:
        name = entry.get("name", "")
        mlrun = run.step_runs.get(name)
        prints = step_fingerprints(tracker, mlrun) if mlrun else {}
        metrics = dict(entry.get("metrics") or {})
        if mlrun:
            metrics.update(mlrun.metrics)
        steps[name] = StepSide(
            status=str(entry.get("status")),
            metrics={k: v for k, v in metrics.items() if k != "duration_s"},
            fingerprints={k: v for k, v in prints.items() if k.startswith("output.")},
            contracts={
                f"{c.get('direction')}.{c.get('target')}": bool(c.get("success"))
                for c in entry.get("contracts") or []
            },
            notebook=_relative(_notebook(tracker, mlrun, entry), run) if notebooks else None,
        )
    gates = (run.summary.get("gates") or {}).get("gates") or []
    return RunSide(
        name=run.name,
        pipeline=run.detail.pipeline,
        commit=run.commit,
        dirty=run.dirty,
        parameters=_parameters(run),
        steps=steps,
        gates={str(g.get("name")): g for g in gates},
        environment=run.environment,
        mlflow_run_id=run.detail.run_id,
    )


def _parameters(run: LoadedRun) -> dict[str, str]:
    """Pipeline parameters and every step's (``step.key``), as MLflow recorded them (text).

    Paths inside the run's own folder differ between any two runs; they are shown relative to
    it (``<run>/data/model.joblib``), so only real changes remain.
    """
    per_step = {
        f"{name}.{k}": v for name, step in run.step_runs.items() for k, v in step.params.items()
    }
    # A pipeline-level value (a spec default or `-p KEY=...`) shows where it landed: in the
    # steps that declare it. Only values no step received stay at the pipeline level.
    received = {key.split(".", 1)[1] for key in per_step}
    params = {k: v for k, v in run.detail.params.items() if k not in received}
    params.update(per_step)
    run_dir = str(run.summary.get("run_dir") or "")
    if run_dir:
        params = {k: v.replace(run_dir, "<run>") for k, v in params.items()}
    return params


def _relative(notebook: Any, run: LoadedRun) -> Any:
    """The executed notebook with the run folder's path shown as ``<run>``: the injected
    parameters name files inside each run's own folder, which is no change between runs."""
    run_dir = str(run.summary.get("run_dir") or "")
    if not isinstance(notebook, dict) or not run_dir:
        return notebook
    return json.loads(json.dumps(notebook).replace(json.dumps(run_dir)[1:-1], "<run>"))
