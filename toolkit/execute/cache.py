"""Content-addressed step cache: reuse an identical earlier execution instead of running it.

A step's key hashes everything that decides its results:

- the notebook's source, with outputs and execution counts stripped;
- its resolved parameters, with paths to data replaced by the data's content hash;
- the contract suites attached to it (a changed suite must re-check the data);
- the content of every file a string parameter names (a path passed as a plain parameter);
- the toolkit version, the kernel and the step's environment variables.

An entry also records every file the kernel actually read without the spec declaring it (its
file audit); a hit is only taken while each still has the recorded hash, and an execution that
read a file it could not hash is never stored: the cache cannot vouch for it.

Because inputs are keyed by content, not by path or timestamp, a step whose upstream re-ran
but wrote identical bytes stays cached. An entry (``.toolkit/cache/<pipeline>/<step>/<key>.json``)
records the hash of every output (a folder's tree hash); a hit is only taken when the outputs
still have those hashes, so a deleted or edited output means the step runs again. Reused outputs
are hard-linked (copied across filesystems; a folder file by file, :mod:`toolkit.execute.links`)
into the new run's folder, so every run folder stays complete; the cache then
follows the newest copies (:mod:`toolkit.execute.cache_copies`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit import __version__
from toolkit.core.fsutil import atomic_write_json
from toolkit.core.jsonable import numbers
from toolkit.execute.cache_copies import CopyIndex
from toolkit.execute.file_audit import still_same
from toolkit.execute.hashing import FileHashes, digest, notebook_source_hash
from toolkit.execute.links import link_output
from toolkit.plan.planned import Plan, PlannedStep
from toolkit.reports.summary import CACHED, StepReport

CACHE_FORMAT = 1
ALL = "*"


@dataclass(frozen=True)
class Decision:
    """Whether a step can be reused, and why (shown by ``toolkit plan`` and the progress log)."""

    step: str
    key: str | None
    parts: Mapping[str, Any] = field(default_factory=dict)
    entry: Mapping[str, Any] | None = None
    reason: str = ""

    @property
    def hit(self) -> bool:
        return self.entry is not None


class StepCache:
    """Looks up and records step executions of one pipeline in one project."""

    def __init__(
        self,
        root: Path,
        pipeline: str,
        *,
        kernel: str,
        expectations_dir: Path,
        force: frozenset[str] = frozenset(),
    ) -> None:
        self.dir = root / "cache" / pipeline
        self.root = root.parent  # the project folder (the cache lives in its .toolkit/)
        self.kernel = kernel
        self.expectations_dir = expectations_dir
        self.force = force
        self.hashes = FileHashes()
        self.copies = CopyIndex(self.dir)

    # -- keys ----------------------------------------------------------------------------------
    def parts(self, step: PlannedStep, input_hashes: Mapping[str, str | None]) -> dict[str, Any]:
        data_keys = set(step.inputs) | set(step.outputs)
        suites = {
            f"{direction}.{key}": self.hashes.of(self.expectations_dir / f"{item.contract}.json")
            for direction, items in (("inputs", step.inputs), ("outputs", step.outputs))
            for key, item in items.items()
            if item.contract
        }
        plain = {k: v for k, v in step.parameters.items() if k not in data_keys}
        return {
            "format": CACHE_FORMAT,
            "toolkit": __version__,
            "kernel": step.kernel or self.kernel,
            "notebook": notebook_source_hash(step.notebook),
            "parameters": digest(plain),
            "env": digest(dict(step.env)),
            "cwd": str(step.cwd) if step.cwd else None,
            "param_files": self._param_files(step, plain),
            "inputs": dict(sorted(input_hashes.items())),
            "outputs": sorted(step.outputs),
            "contracts": suites,
        }

    def _param_files(self, step: PlannedStep, params: Mapping[str, Any]) -> dict[str, str]:
        """Hash of each file a plain string parameter names, relative to the kernel's folder."""
        found = {}
        for value in params.values():
            if not isinstance(value, str) or not value or len(value) > 4096 or "\n" in value:
                continue
            path = step.workdir / Path(value).expanduser()
            with contextlib.suppress(OSError, ValueError):
                if path.is_file():
                    found[str(path.resolve())] = self.hashes.of(path) or ""
        return found

    def decide(
        self,
        step: PlannedStep,
        upstream: Mapping[str, Mapping[str, str]],
        earlier: Decision | None = None,
    ) -> Decision:
        """Decide for a step whose upstream steps are done; ``upstream`` maps their output hashes.

        ``earlier`` is this run's preview of the step: a hit whose parts are still the same has
        the same key and entry (entries are written under the pipeline's lock, and a step the
        preview found cached is not executed), so the entry is not read and hashed again; its
        files are checked again all the same.
        """
        input_hashes: dict[str, str | None] = {}
        for key, item in step.inputs.items():
            if item.producer:
                input_hashes[key] = upstream.get(item.producer, {}).get(item.output or "")
            else:
                input_hashes[key] = self.hashes.of(item.path)
        parts = self.parts(step, input_hashes)
        known = earlier if earlier is not None and earlier.hit and earlier.parts == parts else None
        key = known.key if known is not None and known.key else digest(parts)
        if not step.cache:
            return Decision(step.name, key, parts, reason="caching is off for this step")
        if ALL in self.force or step.name in self.force:
            return Decision(step.name, key, parts, reason="--force")
        missing = [k for k, v in input_hashes.items() if v is None]
        if missing:
            return Decision(step.name, key, parts, reason=f"input {missing[0]!r} is missing")
        if known is not None and known.entry is not None:
            entry = dict(known.entry)
        else:
            read = self._read(step.name, f"{key}.json")
            if read is None:
                return Decision(step.name, key, parts, reason=self._why_changed(step.name, parts))
            entry = self.copies.newest(step.name, read)
        damaged = [
            name
            for name, rec in entry["outputs"].items()
            if not self.hashes.matches(Path(rec["path"]), rec)
        ]
        if damaged:
            return Decision(
                step.name,
                key,
                parts,
                reason=f"cached output {damaged[0]!r} was deleted or changed since run "
                f"{entry['run_id']}",
            )
        changed = [p for p, rec in entry.get("reads", {}).items() if not self._same(p, rec)]
        if changed:
            return Decision(
                step.name, key, parts, reason=f"reads {self.show(changed[0])}, which changed"
            )
        return Decision(step.name, key, parts, entry=entry, reason=f"run {entry['run_id']}")

    def _why_changed(self, step: str, parts: Mapping[str, Any]) -> str:
        last = self._read(step, "_latest.json")
        if last is None:
            return "never ran"
        before = last.get("parts", {})
        if last.get("unvouched") and before == parts:
            return (
                f"reads {self.show(last['unvouched'])}, which the cache cannot vouch for "
                "(it could not be hashed): the step runs every time"
            )
        files_before = before.get("param_files", {})
        for path, hashed in parts.get("param_files", {}).items():
            if path in files_before and files_before[path] != hashed:
                return f"reads {self.show(path)}, which changed"
        for label, name in (
            ("notebook", "notebook"),
            ("parameters", "parameters"),
            ("contract suite", "contracts"),
            ("kernel", "kernel"),
            ("env", "env"),
            ("working folder", "cwd"),
            ("files named by parameters", "param_files"),
            ("toolkit version", "toolkit"),
            ("outputs", "outputs"),
        ):
            if before.get(name) != parts.get(name):
                return f"{label} changed"
        inputs_before = before.get("inputs", {})
        for key, hashed in parts.get("inputs", {}).items():
            if inputs_before.get(key) != hashed:
                return f"input {key!r} changed"
        return "no matching earlier run"

    # -- storage -------------------------------------------------------------------------------
    def _read(self, step: str, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads((self.dir / step / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # absent, or cut short: a miss either way
        return data if isinstance(data, dict) and data.get("format") == CACHE_FORMAT else None

    def store(self, step: PlannedStep, decision: Decision, report: StepReport, run_id: str) -> dict:
        """Record a successful execution; return its output hashes (for downstream keys)."""
        outputs = {name: self.hashes.record(item.path) for name, item in step.outputs.items()}
        hashes = {k: v["sha256"] for k, v in outputs.items()}
        if decision.key is None or not step.cache:
            return hashes
        unvouched = sorted(p for p, rec in report.reads.items() if rec is None)
        if unvouched:
            # An execution that read a file nobody can hash must not be reused; remember why,
            # so that ``toolkit plan`` can say so.
            atomic_write_json(
                self.dir / step.name / "_latest.json",
                {
                    "format": CACHE_FORMAT,
                    "step": step.name,
                    "run_id": run_id,
                    "parts": dict(decision.parts),
                    "unvouched": unvouched[0],
                },
            )
            (self.dir / step.name / f"{decision.key}.json").unlink(missing_ok=True)
            return hashes
        report_data = {
            k: v
            for k, v in report.__dict__.items()
            if k in ("metrics", "contracts", "notebook", "attempts", "duration", "mlflow_run_id")
        }
        entry = {
            "format": CACHE_FORMAT,
            "key": decision.key,
            "step": step.name,
            "run_id": run_id,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "parts": dict(decision.parts),
            "outputs": outputs,
            "reads": dict(report.reads),
            "report": report_data,
        }
        atomic_write_json(self.dir / step.name / f"{decision.key}.json", entry)
        atomic_write_json(self.dir / step.name / "_latest.json", entry)
        self.copies.stored(step.name, decision.key)
        return hashes

    def _same(self, path: str, recorded: dict[str, Any] | None) -> bool:
        return still_same(Path(path), recorded, self.hashes.matches)

    def show(self, path: str) -> str:
        """A path as a person reads it: relative to the project when inside it."""
        with contextlib.suppress(ValueError):
            return str(Path(path).relative_to(self.root))
        return path

    def reuse(self, step: PlannedStep, decision: Decision, run_dir: Path) -> StepReport:
        """Link a hit's outputs (and executed notebook) into this run; return its report."""
        entry = decision.entry
        assert entry is not None
        old = dict(entry["report"])
        outputs = {}
        for name, rec in entry["outputs"].items():
            link_output(Path(rec["path"]), step.outputs[name].path)
            outputs[name] = {**rec, "path": str(step.outputs[name].path)}
        notebook = None
        if old.get("notebook") and Path(old["notebook"]).exists():
            notebook = run_dir / "notebooks" / f"{step.name}.ipynb"
            link_output(Path(old["notebook"]), notebook)
            old["notebook"] = str(notebook)
        # Follow the newest copies (same bytes, same inode), so that deleting old run folders
        # does not empty the cache; written once for the whole run (save_copies).
        self.copies.moved(step.name, entry, outputs, old.get("notebook"))
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        return StepReport(
            name=step.name,
            status=CACHED,
            started_at=now,
            ended_at=now,
            duration=0.0,
            notebook=str(notebook) if notebook else None,
            metrics=numbers(old.get("metrics")),  # "NaN" back to NaN: gates see what was logged
            outputs={k: str(v.path) for k, v in step.outputs.items()},
            contracts=tuple(old.get("contracts") or ()),
            reason=f"cached from run {entry['run_id']}",
            attempts=0,
        )

    # -- whole runs ----------------------------------------------------------------------------
    def run_key(
        self, plan: Plan, decisions: Mapping[str, Decision], context: Mapping[str, Any]
    ) -> str | None:
        """Key of a whole run: every step's key, what the release stage depends on, and where
        it records (an untracked run registered nothing, so it cannot stand in for a tracked one).
        """
        if any(d.key is None for d in decisions.values()):
            return None
        return digest(
            {
                "context": dict(context),
                "steps": {name: d.key for name, d in sorted(decisions.items())},
                "model": plan.model.model_dump() if plan.model else None,
                "gates": plan.gates.model_dump() if plan.gates else None,
                "release": plan.release.model_dump(),
            }
        )

    def record_run(self, run_key: str, run_id: str, outcome: Mapping[str, Any]) -> None:
        atomic_write_json(
            self.dir / "_runs" / f"{run_key}.json",
            {"format": CACHE_FORMAT, "run_id": run_id, **outcome},
        )

    def previous_run(self, run_key: str) -> dict[str, Any] | None:
        return self._read("_runs", f"{run_key}.json")

    def save_copies(self) -> None:
        """Record where this run put the files of the steps it reused (once, at its end)."""
        self.copies.save()


def preview(cache: StepCache, plan: Plan) -> dict[str, Decision]:
    """What a run would reuse, without running anything: walks the plan in order.

    A step after one that must run cannot be decided yet (its inputs don't exist); it is
    reported as running, which is right unless the upstream step writes identical bytes.
    """
    decisions: dict[str, Decision] = {}
    hashes: dict[str, dict[str, str]] = {}
    for step in plan.steps:
        pending = [u for u in sorted(step.upstream) if not decisions[u].hit]
        if pending:
            decisions[step.name] = Decision(
                step.name, None, reason=f"upstream step {pending[0]!r} runs"
            )
            continue
        decision = cache.decide(step, hashes)
        decisions[step.name] = decision
        if decision.entry is not None:
            hashes[step.name] = {k: v["sha256"] for k, v in decision.entry["outputs"].items()}
    return decisions
