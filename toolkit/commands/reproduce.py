"""``toolkit reproduce``: re-run a past pipeline run from its recorded commit and say what matched.

The recorded commit is checked out into a temporary git worktree (the user's tree, index and
branch are never touched) and the pipeline runs there with the recorded parameters, every step
executed afresh. Inputs git does not hold at that commit (ignored data, files outside the
repository) must still have the content hash the original recorded, or reproduce refuses.

The reproduction writes where the original did: the run folder under the user's runs dir and the
same tracking store, so the two sit side by side. Its MLflow run is tagged with the original and
the verdict, and the original's run folder and report show its latest reproduction.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.commands.checkout import checkout, external_inputs, provide, require_commit, tracked_at
from toolkit.commands.reproduce_verdict import (
    NOTHING,
    NOTHING_HINT,
    ReproduceReport,
    RunFacts,
    StepFacts,
    judge,
)
from toolkit.core.errors import UsageError
from toolkit.core.fsutil import atomic_write_json
from toolkit.core.jsonable import numbers
from toolkit.core.lineage import git_info
from toolkit.core.settings import Settings, load_settings
from toolkit.execute.cache import ALL
from toolkit.execute.orchestrator import EventSink, RunRequest, run_pipeline
from toolkit.reports.run_report import REPRODUCTION_FILE, render_run_report, write_run_report
from toolkit.tracking.client import Tracker
from toolkit.tracking.run_facts import LoadedRun, load_run, output_hashes, step_fingerprints

TAG_REPRODUCES = "toolkit.reproduces"  # on the reproduction: the original's MLflow run id
TAG_REPRODUCED_BY = "toolkit.reproduced_by"  # on the original: its latest reproduction
TAG_VERDICT = "toolkit.reproduce.verdict"


@dataclass(frozen=True)
class ReproduceRequest:
    run: str
    start: Path = field(default_factory=Path.cwd)
    pipeline: str | None = None  # refuse a run of another pipeline
    allow_dirty: bool = False
    allow_changed_inputs: bool = False
    strict_env: bool = False
    rtol: float = 1e-6
    atol: float = 1e-9
    workers: int | None = None


def reproduce(request: ReproduceRequest, on_event: EventSink | None = None) -> ReproduceReport:
    """Re-run ``request.run`` from its commit in a temporary worktree and compare.

    Raises:
        UsageError: unknown run, no or missing commit, a dirty original without
            ``allow_dirty``, changed or missing inputs without ``allow_changed_inputs``.
    """
    settings = load_settings(request.start)
    tracker = Tracker(settings.tracking_uri, artifacts_dir=settings.artifacts_dir)
    original = load_run(tracker, request.run, request.pipeline)
    commit, notes = _recorded_commit(original, request.allow_dirty)
    spec = Path(str(original.summary.get("spec") or ""))
    if not original.summary.get("spec"):
        raise UsageError(f"run {original.name} has no summary.json naming its spec")
    repo = _repository(spec, settings)
    try:
        rel_spec = spec.resolve().relative_to(repo)
    except ValueError as exc:
        raise UsageError(f"the spec {spec} of run {original.name} is outside {repo}") from exc
    require_commit(repo, commit, original.name)
    if not tracked_at(repo, commit, rel_spec):
        raise UsageError(f"commit {commit[:12]} has no {rel_spec.as_posix()}: it was not committed")
    # A .nan or .inf parameter was recorded as "NaN"/"Infinity": run again with the float.
    params = numbers(original.summary.get("parameters"))
    overrides = {k: v for k, v in params.items() if v != "***"}
    if len(overrides) != len(params):
        notes.append("secret -p values were redacted and are not re-applied")
    inputs = _checked_inputs(tracker, original, repo, commit, request.allow_changed_inputs, notes)
    with checkout(repo, commit) as tree:
        provide(inputs, repo, tree)
        with _writing_beside_the_original(settings, tree / settings.root.relative_to(repo)):
            report = run_pipeline(
                # Reproducing means executing again: the step cache would hand back the original.
                RunRequest(
                    spec_path=tree / rel_spec,
                    overrides=overrides,
                    workers=request.workers,
                    force=(ALL,),
                ),
                on_event,
            )
    if report.mlflow_run_id is None:
        raise UsageError("the reproduction was not tracked, so there is nothing to compare with")
    new = load_run(tracker, report.mlflow_run_id)
    verdict, comparisons, skipped, more = judge(
        facts(original),
        facts(new),
        rtol=request.rtol,
        atol=request.atol,
        strict_env=request.strict_env,
    )
    result = ReproduceReport(
        original_run=original.name,
        new_run=report.run_id,
        verdict=verdict,
        comparisons=tuple(comparisons),
        skipped_metrics=tuple(skipped),
        notes=tuple(notes + more),
        hint=NOTHING_HINT if verdict == NOTHING else None,
        commit=commit,
        mlflow_run_id=report.mlflow_run_id,
    )
    _record(tracker, settings, original, result)
    return result


def _recorded_commit(original: LoadedRun, allow_dirty: bool) -> tuple[str, list[str]]:
    commit = original.commit
    if commit is None:
        raise UsageError(
            f"run {original.name} recorded no git commit (it ran outside a git repository), "
            "so its code cannot be checked out"
        )
    notes = []
    if original.dirty:
        if not allow_dirty:
            raise UsageError(
                f"run {original.name} ran from a tree with uncommitted or untracked changes: "
                f"commit {commit[:12]} is not the code it ran",
                hint="pass --allow-dirty to reproduce it from the commit anyway",
            )
        notes.append("the original ran from a dirty tree; reproduced from its commit")
    return commit, notes


def _repository(spec: Path, settings: Settings) -> Path:
    for where in (spec.parent, settings.root):
        root = git_info(where).get("root") if where.is_dir() else None
        if root:
            return Path(root).resolve()
    raise UsageError(f"neither {spec.parent} nor {settings.root} is inside a git repository")


def _checked_inputs(
    tracker: Tracker,
    original: LoadedRun,
    repo: Path,
    commit: str,
    allow_changed: bool,
    notes: list[str],
) -> list[Any]:
    """Inputs from outside the commit, found by their recorded fingerprints."""
    recorded: dict[str, dict[str, Any]] = {}
    produced: set[Path] = set()
    for step in original.summary.get("steps") or []:
        produced |= {Path(p).resolve() for p in (step.get("outputs") or {}).values()}
    for name, step in original.step_runs.items():
        for key, facts in step_fingerprints(tracker, step).items():
            if key.startswith("input."):
                recorded[f"{name}.{key}"] = facts
    inputs = external_inputs(repo, commit, recorded, produced)
    gone = [i for i in inputs if i.current is None]
    if gone:
        listed = "; ".join(f"{i.name} ({i.path})" for i in gone)
        raise UsageError(
            f"input(s) of run {original.name} no longer exist: {listed}",
            hint="restore them at the recorded paths; reproduce needs the data the run read",
        )
    changed = [i for i in inputs if i.changed]
    if changed:
        listed = "; ".join(
            f"{i.name} {i.path} sha256 {i.recorded[:12]} -> {(i.current or '')[:12]}"
            for i in changed
        )
        if not allow_changed:
            raise UsageError(
                f"input(s) changed since run {original.name}: {listed}",
                hint="restore the recorded data, or pass --allow-changed-inputs to run on "
                "the data as it is now",
            )
        notes.append(f"inputs changed since the original (--allow-changed-inputs): {listed}")
    return inputs


@contextmanager
def _writing_beside_the_original(settings: Settings, project: Path) -> Iterator[None]:
    """Point the worktree's run at the user's runs dir and tracking store, and its kernels at
    the worktree's own modules; environment variables are how settings are overridden."""
    src = [project / "src"] if (project / "src").is_dir() else []
    inherited = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    pythonpath = os.pathsep.join([str(project), *map(str, src), *inherited])
    wanted = {
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
        "TOOLKIT_RUNS_DIR": str(settings.runs_dir),
        "TOOLKIT_ARTIFACTS_DIR": str(settings.artifacts_dir),
        "PYTHONPATH": pythonpath,
    }
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def facts(run: LoadedRun) -> RunFacts:
    """What the verdict compares, from a loaded run."""
    steps: dict[str, StepFacts] = {}
    for entry in run.summary.get("steps") or []:
        name = entry.get("name", "")
        mlrun = run.step_runs.get(name)
        error = entry.get("error") or {}
        steps[name] = StepFacts(
            status=str(entry.get("status")),
            metrics=dict(mlrun.metrics) if mlrun else numbers(entry.get("metrics")),
            fingerprints=output_hashes(mlrun) if mlrun else {},
            exception=error.get("ename") or error.get("kind"),
        )
    gates = (run.summary.get("gates") or {}).get("gates") or []
    return RunFacts(
        status=str(run.summary.get("status") or run.detail.status),
        steps=steps,
        gates={str(g.get("name")): bool(g.get("passed")) for g in gates},
        environment=run.environment,
    )


def _record(
    tracker: Tracker, settings: Settings, original: LoadedRun, result: ReproduceReport
) -> None:
    """Link the reproduction and the original both ways; the original's report shows it."""
    data = result.to_dict()
    new_id = result.mlflow_run_id or ""
    tracker.set_tags(
        new_id,
        {
            TAG_REPRODUCES: original.detail.run_id,
            f"{TAG_REPRODUCES}.run": original.name,
            TAG_VERDICT: result.verdict,
        },
    )
    tracker.log_dict(new_id, data, "reproduce.json")
    tracker.set_tags(
        original.detail.run_id,
        {
            TAG_REPRODUCED_BY: new_id,
            f"{TAG_REPRODUCED_BY}.run": result.new_run,
            TAG_VERDICT: result.verdict,
        },
    )
    run_dir = Path(str(original.summary.get("run_dir") or ""))
    if original.summary.get("run_dir") and run_dir.is_dir():
        atomic_write_json(run_dir / REPRODUCTION_FILE, data)
        write_run_report(run_dir, secret_patterns=settings.secret_patterns)
        page = render_run_report(run_dir, target="mlflow", secret_patterns=settings.secret_patterns)
        tracker.log_text(original.detail.run_id, page, "report.html")
