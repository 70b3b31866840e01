"""``toolkit new pipeline``: draft a spec from notebooks that already exist, in a given order.

Each notebook becomes a step. Its parameters come from its cell tagged ``parameters`` (a
notebook without one has none and runs as is). Parameters whose values look like file paths
become inputs or outputs, guessed in this order, and each guess says what it rests on:

1. the notebook's code: ``pd.read_csv(raw)`` reads ``raw``, ``df.to_parquet(out)`` writes ``out``;
2. another notebook naming the same file: the earlier one writes it, the later one reads it;
3. the parameter's name (``out_path``, ``input_file``);
4. whether the file exists (it does: an input).

An input whose file an earlier step writes is wired to that step's output (``step.key``);
otherwise it is a file entering the pipeline (``{path: ...}``, relative to the spec). Relative
defaults are resolved against the notebook's folder, the kernel's working folder. Guesses from
1 and 2 are marked sure; 3 and 4 get a "check" in the spec and in the printed summary. The spec
is written only if it loads, and never over an existing file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from toolkit.commands.templating import render_text
from toolkit.core.errors import ToolkitError, UsageError
from toolkit.core.fsutil import write_new_text
from toolkit.core.settings import load_settings
from toolkit.specs.load import load_spec
from toolkit.specs.notebook_params import PARAMETERS_TAG, load_cells, read_params
from toolkit.specs.notebook_paths import looks_like_path, name_hint, scan_usage
from toolkit.specs.schema import SCHEMA_COMMENT, SCHEMA_FILE
from toolkit.specs.step_models import NAME_RE


class DraftError(ToolkitError):
    """``toolkit new pipeline`` will not write that spec (exit 2); nothing was written."""


@dataclass(frozen=True)
class NewPipelineRequest:
    """What ``toolkit new pipeline`` was asked: the pipeline's name and its notebooks, in order."""

    name: str
    notebooks: tuple[Path, ...]
    root: Path | None = None  # the project root; default: the project containing the cwd
    schema_comment: str | None = None  # default: the project's, if pipelines/ has its schema


@dataclass
class PathGuess:
    """One path parameter of a step, read as an input or an output, and why."""

    param: str
    kind: str  # "input" or "output"
    default: str
    resolved: Path
    reason: str
    sure: bool
    spec_value: str = ""  # "step.key" (wired), a path relative to the spec, or an output file
    external: bool = False


@dataclass
class DraftedStep:
    name: str
    notebook: Path
    notebook_rel: str
    has_parameters_cell: bool
    kernel: str | None
    parameters: dict[str, Any] = field(default_factory=dict)  # not paths: notebook defaults
    paths: list[PathGuess] = field(default_factory=list)

    def guess(self, param: str) -> PathGuess:
        return next(g for g in self.paths if g.param == param)

    @property
    def inputs(self) -> list[PathGuess]:
        return [g for g in self.paths if g.kind == "input"]

    @property
    def outputs(self) -> list[PathGuess]:
        return [g for g in self.paths if g.kind == "output"]


@dataclass(frozen=True)
class NewPipelineResult:
    """The spec written, the steps as guessed, and what a person must check."""

    name: str
    spec_path: Path
    steps: tuple[DraftedStep, ...]
    checks: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.name,
            "spec": str(self.spec_path),
            "steps": [
                {
                    "name": s.name,
                    "notebook": str(s.notebook),
                    "parameters_cell": s.has_parameters_cell,
                    "parameters": s.parameters,
                    "inputs": {g.param: _entry(g) for g in s.inputs},
                    "outputs": {g.param: g.spec_value for g in s.outputs},
                    "guesses": [
                        {"param": g.param, "kind": g.kind, "reason": g.reason, "sure": g.sure}
                        for g in s.paths
                    ],
                }
                for s in self.steps
            ],
            "checks": list(self.checks),
        }

    def to_text(self, cwd: Path | None = None) -> str:
        rel = _relative_to(cwd or Path.cwd())
        lines = [f"drafted {rel(self.spec_path)} from {len(self.steps)} notebook(s):"]
        for s in self.steps:
            cell = "" if s.has_parameters_cell else " (no parameters cell)"
            lines.append(f"  step {s.name}: {rel(s.notebook)}{cell}")
            for g in s.paths:
                arrow = "<-" if g.kind == "input" else "->"
                mark = "" if g.sure else "  [check]"
                lines.append(f"    {g.kind:<6} {g.param} {arrow} {g.spec_value}: {g.reason}{mark}")
            if s.parameters:
                lines.append(f"    kept at the notebook's defaults: {', '.join(s.parameters)}")
        if self.checks:
            lines.append("check:")
            lines += [f"  - {c}" for c in self.checks]
        spec = rel(self.spec_path)
        lines.append(f"next: toolkit check {spec} && toolkit plan {spec}")
        return "\n".join(lines)


def _entry(g: PathGuess) -> Any:
    return {"path": g.spec_value} if g.external else g.spec_value


def _relative_to(base: Path) -> Any:
    def rel(path: Path) -> str:
        try:
            return str(path.relative_to(base))
        except ValueError:
            return str(path)

    return rel


# ----------------------------------------------------------------------------- reading notebooks


def _step_name(notebook: Path, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", notebook.stem)
    if not NAME_RE.match(name):
        name = f"nb_{name}"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    return name


def _read_step(path: Path, name: str, spec_dir: Path) -> DraftedStep:
    nb = load_cells(path)  # NotebookError (exit 2) when missing or not a notebook
    cells = nb["cells"]
    tagged = [
        i
        for i, c in enumerate(cells)
        if c.get("cell_type") == "code"
        and PARAMETERS_TAG in (c.get("metadata", {}).get("tags") or [])
    ]
    defaults = read_params(path).defaults if tagged else {}
    sources = [
        "".join(c["source"]) if isinstance(c.get("source"), list) else str(c.get("source", ""))
        for i, c in enumerate(cells)
        if c.get("cell_type") == "code" and i not in tagged[:1]
    ]
    paths = {k: v for k, v in defaults.items() if looks_like_path(v)}
    usage = scan_usage(sources, paths)
    step = DraftedStep(
        name=name,
        notebook=path,
        notebook_rel=PurePosixPath(os.path.relpath(path, spec_dir)).as_posix(),
        has_parameters_cell=bool(tagged),
        kernel=(nb.get("metadata", {}).get("kernelspec") or {}).get("name"),
        parameters={k: v for k, v in defaults.items() if k not in paths},
    )
    for key, value in paths.items():
        resolved = Path(os.path.normpath(path.parent / value))
        used = usage[key]
        if used.writes:
            guess = PathGuess(key, "output", value, resolved, f"written by {used.writes[0]}", True)
        elif used.reads:
            guess = PathGuess(key, "input", value, resolved, f"read by {used.reads[0]}", True)
        else:
            guess = PathGuess(key, "", value, resolved, "", False)
        step.paths.append(guess)
    return step


# ----------------------------------------------------------------------------- guessing


def _classify(steps: list[DraftedStep]) -> None:
    """Settle the guesses the code left open, from other notebooks, names and the disk."""
    for i, step in enumerate(steps):
        for g in step.paths:
            if g.kind:
                continue
            others = [
                (j, s.name, o.param)
                for j, s in enumerate(steps)
                for o in s.paths
                if j != i and o.resolved == g.resolved
            ]
            earlier = [o for o in others if o[0] < i]
            later = [o for o in others if o[0] > i]
            readers = [o for o in later if steps[o[0]].guess(o[2]).kind != "output"]
            hint = name_hint(g.param)
            if earlier:
                g.kind, g.sure = "input", True
                g.reason = f"the same file as {earlier[-1][1]}.{earlier[-1][2]}"
            elif readers and not g.resolved.exists():
                # Named by a later notebook that reads it: written here, read there. (A file
                # that exists may just be read by both: decided below.)
                g.kind, g.sure = "output", True
                g.reason = f"the file {readers[0][1]}.{readers[0][2]} reads"
            elif hint:
                g.kind, g.reason = hint, f"guessed from the name {g.param!r}"
            elif g.resolved.exists():
                g.kind, g.reason = "input", "guessed: the file exists"
            else:
                g.kind, g.reason = "output", "guessed: the file does not exist yet"


def _wire(steps: list[DraftedStep], spec_dir: Path) -> None:
    """Give every guess its spec value; wire inputs to the earlier step writing the file."""
    writers: dict[Path, str] = {}
    by_file_name: dict[str, list[str]] = {}
    taken: set[str] = set()
    for step in steps:
        for g in step.inputs:
            ref = writers.get(g.resolved)
            same_name = by_file_name.get(g.resolved.name, [])
            if ref is None and len(same_name) == 1:
                ref, g.sure = same_name[0], False
                g.reason += f"; wired by file name to {ref}"
            if ref is not None:
                g.spec_value = ref
                if g.sure and "wired" not in g.reason:
                    g.reason += f"; {ref} writes it"
                continue
            g.external = True
            g.spec_value = PurePosixPath(os.path.relpath(g.resolved, spec_dir)).as_posix()
        for g in step.outputs:
            file_name = g.resolved.name or g.param
            if file_name in taken:
                file_name = f"{step.name}-{file_name}"
            taken.add(file_name)
            g.spec_value = file_name
            writers[g.resolved] = f"{step.name}.{g.param}"
            by_file_name.setdefault(g.resolved.name, []).append(f"{step.name}.{g.param}")


def _checks(steps: list[DraftedStep], project_kernel: str) -> list[str]:
    checks: list[str] = []
    for step in steps:
        if not step.has_parameters_cell:
            checks.append(
                f"{step.name}: its notebook has no cell tagged 'parameters'; it runs as is, and "
                "files it reads or writes are not tracked. Tag the cell holding its settings "
                "'parameters' and draft again to wire them"
            )
        for g in step.paths:
            if not g.sure:
                checks.append(f"{step.name}.{g.param} ({g.default!r}) as an {g.kind}: {g.reason}")
            if g.external and not g.resolved.exists():
                checks.append(f"{step.name}.{g.param}: the input {g.resolved} does not exist")
        if step.kernel and step.kernel not in {project_kernel, "python3", "python"}:
            checks.append(
                f"{step.name}: the notebook was saved with kernel {step.kernel!r}; steps run in "
                f"the project's kernel {project_kernel!r}"
            )
    if any(step.outputs for step in steps):
        checks.append(
            "outputs go to the run folder: each notebook must write to the path its parameter "
            "receives, not to a path written in its code"
        )
    return checks


# ----------------------------------------------------------------------------- the command


def new_pipeline(request: NewPipelineRequest) -> NewPipelineResult:
    """Draft ``pipelines/NAME.yaml`` from ``request.notebooks`` and write it.

    Raises:
        DraftError: the name is invalid or its spec exists (nothing is written).
        NotebookError: a notebook is missing, unreadable, or its parameters cell is not Python.
        UsageError: no notebooks were given.
    """
    settings = load_settings(request.root)
    root = settings.root
    if not NAME_RE.match(request.name):
        raise DraftError(
            f"pipeline name {request.name!r} must be an identifier (letters, digits, _ or -)"
        )
    spec_dir = root / "pipelines"
    spec_path = spec_dir / f"{request.name}.yaml"
    for existing in (spec_path, spec_path.with_suffix(".yml")):
        if existing.exists():
            raise DraftError(
                f"{existing} already exists; toolkit new pipeline never overwrites a spec",
                hint="pick another name, or add the notebooks to it with `toolkit new step`",
            )
    if not request.notebooks:
        raise UsageError("give the notebooks in order: --notebooks a.ipynb b.ipynb ...")
    steps: list[DraftedStep] = []
    for notebook in request.notebooks:
        path = notebook.expanduser().absolute()
        steps.append(_read_step(path, _step_name(path, {s.name for s in steps}), spec_dir))
    _classify(steps)
    _wire(steps, spec_dir)
    comment = request.schema_comment
    if comment is None and (spec_dir / SCHEMA_FILE).is_file():
        comment = SCHEMA_COMMENT  # editors then validate the draft like the project's specs
    spec_rel = os.path.relpath(spec_path, Path.cwd())
    text = render_text(
        "pipeline.yaml.j2",
        {
            "name": request.name,
            "steps": steps,
            "spec_rel": spec_rel if not spec_rel.startswith("..") else str(spec_path),
            "schema_comment": comment,
        },
    )
    _verify(text, request.name, steps, spec_path)
    write_new_text(spec_path, text)
    return NewPipelineResult(
        request.name, spec_path, tuple(steps), tuple(_checks(steps, settings.kernel))
    )


def _verify(text: str, name: str, steps: list[DraftedStep], spec_path: Path) -> None:
    """The rendered text must read back as the intended spec, and load as a valid one."""
    expected: dict[str, Any] = {"name": name, "steps": []}
    for step in steps:
        entry: dict[str, Any] = {"name": step.name, "notebook": step.notebook_rel}
        if step.inputs:
            entry["inputs"] = {g.param: _entry(g) for g in step.inputs}
        if step.outputs:
            entry["outputs"] = {g.param: g.spec_value for g in step.outputs}
        expected["steps"].append(entry)
    if yaml.safe_load(text) != expected:
        raise DraftError(
            "the drafted spec did not read back as intended (a bug); write it by hand",
            hint=yaml.safe_dump(expected, sort_keys=False),
        )
    made = not spec_path.parent.exists()
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    probe = spec_path.with_name(f".{spec_path.stem}.{os.getpid()}.draft.yaml")
    try:
        probe.write_text(text, encoding="utf-8")
        load_spec(probe)  # same folder as the spec: relative paths resolve the same way
    except ToolkitError as exc:
        if made:
            probe.unlink(missing_ok=True)
            spec_path.parent.rmdir()
        raise DraftError(f"the drafted spec would not load: {exc.message}", hint=exc.hint) from exc
    finally:
        probe.unlink(missing_ok=True)
