"""Read back what a tracked pipeline run recorded: the one place reproduce and diff load runs.

A run's facts live in its MLflow runs: ``summary.json`` and ``environment.json`` on the pipeline
run; metrics, ``data.*`` tags and ``fingerprints.json`` on each step's run. Missing artifacts
(older runs, a failed upload) become empty values, never errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolkit.errors import ToolkitError, UsageError, did_you_mean
from toolkit.tracking import Tracker
from toolkit.tracking_types import RunDetail, StepDetail


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
