"""``toolkit new step``: scaffold a notebook step and add it to a pipeline spec.

The new notebook (rendered from ``toolkit/templates/step.ipynb``) has a tagged ``parameters``
cell whose inputs are wired to the outputs of the step it follows (``--after``, by default the
spec's last step), one output of its own, and an example of the in-notebook API
(:mod:`toolkit.step`). The spec is edited as text, so its comments,
key order and layout stay exactly as they were: the new step's lines are inserted after the last
line of the step it follows. The edit is checked by parsing the result before anything is
written, and both files are written atomically, the notebook first.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from toolkit.commands import templating
from toolkit.commands.templating import yaml_scalar
from toolkit.core.errors import ToolkitError, did_you_mean
from toolkit.core.fsutil import atomic_write_text
from toolkit.core.settings import Settings, load_settings
from toolkit.specs.load import discover_specs, load_spec
from toolkit.specs.models import Pipeline
from toolkit.specs.notebook_params import load_cells
from toolkit.specs.notebook_source import to_percent_text
from toolkit.specs.step_models import NAME_RE

NOTEBOOKS_DIR = "notebooks"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESERVED = {"step", "json", "Path", "inputs", "found", "summary"}  # names the template uses


class ScaffoldError(ToolkitError):
    """``toolkit new`` was asked for something it will not do (exit 2): a name that is taken,
    an unknown pipeline or step, or a spec it cannot edit safely."""


@dataclass(frozen=True)
class NewStepRequest:
    """What ``toolkit new step`` was asked: the step's name, the spec, and the step it follows."""

    name: str
    pipeline: str | None = None
    after: str | None = None
    root: Path | None = None  # the project root; default: the project containing the cwd
    format: str = "ipynb"  # or "py": a jupytext percent script, reviewable as text


@dataclass(frozen=True)
class NewStepResult:
    """What was created: the notebook, the edited spec, and how the step is wired."""

    step: str
    pipeline: str
    spec_path: Path
    notebook: Path
    after: str
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def to_text(self, cwd: Path | None = None) -> str:
        def rel(path: Path) -> str:
            try:
                return str(path.relative_to(cwd or Path.cwd()))
            except ValueError:
                return str(path)

        wired = ", ".join(f"{k} <- {v}" for k, v in self.inputs.items()) or "no inputs"
        outs = ", ".join(f"{k} -> {v}" for k, v in self.outputs.items())
        return (
            f"created {rel(self.notebook)}\n"
            f"added step {self.step!r} to {rel(self.spec_path)} after {self.after!r}\n"
            f"  inputs:  {wired}\n"
            f"  outputs: {outs}\n"
            f"next: edit the notebook (make lab), then `toolkit check` and "
            f"`toolkit run {rel(self.spec_path)}`"
        )


# ----------------------------------------------------------------------------- resolving


def resolve_pipeline(root: Path, pipeline: str | None) -> Path:
    """The spec file meant by ``pipeline``: a path, a file stem or a pipeline's ``name``.

    Without ``pipeline`` the project must have exactly one spec in ``pipelines/``.
    """
    specs = discover_specs(root / "pipelines")
    if pipeline is None:
        if len(specs) == 1:
            return specs[0]
        if not specs:
            raise ScaffoldError(
                f"no pipelines in {root / 'pipelines'}",
                hint="create pipelines/NAME.yaml first, or pass --pipeline PATH",
            )
        names = ", ".join(p.stem for p in specs)
        raise ScaffoldError(
            f"this project has several pipelines ({names}); say which one with --pipeline",
            hint=f"e.g. --pipeline {specs[0].stem}",
        )
    candidate = Path(pipeline).expanduser()
    looks_like_path = candidate.suffix in {".yaml", ".yml"} or len(candidate.parts) > 1
    if looks_like_path:
        for base in (Path.cwd(), root):
            path = candidate if candidate.is_absolute() else base / candidate
            if path.is_file():
                return path.resolve()
    else:
        for spec in specs:
            if spec.stem == pipeline or _declared_name(spec) == pipeline:
                return spec.resolve()
    known = [p.stem for p in specs]
    hint = did_you_mean(candidate.stem if looks_like_path else pipeline, known)
    raise ScaffoldError(
        f"no pipeline {pipeline!r} (known: {', '.join(known) or 'none'})",
        hint=hint or "pass a spec path such as pipelines/train.yaml",
    )


def _declared_name(spec: Path) -> str | None:
    try:
        data = yaml.safe_load(spec.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data.get("name") if isinstance(data, dict) else None


def _identifier(key: str, taken: set[str]) -> str:
    """A Python identifier for an output key, unique among ``taken``."""
    ident = re.sub(r"\W", "_", key)
    if not _IDENT.match(ident):
        ident = f"_{ident}"
    base, n = ident, 2
    while ident in taken or ident in _RESERVED:
        ident, n = f"{base}_{n}", n + 1
    return ident


def _kernelspec(upstream_notebook: Path, settings: Settings) -> dict[str, Any]:
    """The kernel the other notebooks use (the upstream one's), else the project's kernel."""
    try:
        spec = load_cells(upstream_notebook).get("metadata", {}).get("kernelspec")
    except ToolkitError:
        spec = None
    if isinstance(spec, dict) and spec.get("name"):
        return dict(spec)
    return {"name": settings.kernel, "display_name": settings.kernel, "language": "python"}


# ----------------------------------------------------------------------------- the notebook


def render_notebook(
    *,
    name: str,
    pipeline: str,
    after: str,
    inputs: dict[str, tuple[str, str]],
    output: tuple[str, str],
    kernelspec: dict[str, Any],
) -> str:
    """The new step's notebook as nbformat 4 JSON text, from ``templates/step.ipynb``.

    ``inputs`` maps a parameter to ``(reference, default path)``; ``output`` is
    ``(parameter, default path)``.
    """
    out_key, out_default = output
    context = {
        "name": name,
        "pipeline": pipeline,
        "after": after,
        "inputs": inputs,
        "out_key": out_key,
        "out_default": out_default,
    }
    return templating.render_notebook("step.ipynb", context, kernelspec=kernelspec)


# ----------------------------------------------------------------------------- the spec, as text


def _end_line(node: yaml.Node) -> int:
    """0-based index of the last line a block node's content is on."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _end_line(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _end_line(node.value[-1])
    end = node.end_mark
    return end.line if end.column > 0 else end.line - 1


def _step_name(node: yaml.Node) -> str | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if getattr(key, "value", None) == "name" and isinstance(value, yaml.ScalarNode):
                return str(value.value)
    return None


def insert_step_text(text: str, after: str, entry: dict[str, Any], *, path: Path) -> str:
    """Return the spec ``text`` with ``entry`` inserted as a step right after step ``after``.

    Only lines are added: comments, order and formatting of everything else are kept.

    Raises:
        ScaffoldError: the ``steps`` list is not a block sequence of block mappings.
    """
    cannot = f"cannot add the step to {path} automatically"
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise ScaffoldError(f"{cannot}: it is not valid YAML ({exc})") from exc
    steps = None
    if isinstance(root, yaml.MappingNode):
        steps = next((v for k, v in root.value if getattr(k, "value", None) == "steps"), None)
    if not isinstance(steps, yaml.SequenceNode) or steps.flow_style or not steps.value:
        raise ScaffoldError(f"{cannot}: 'steps' is not a block list", hint=_by_hand(entry))
    items = steps.value
    index = next((i for i, item in enumerate(items) if _step_name(item) == after), None)
    if index is None:
        raise ScaffoldError(f"{cannot}: no step {after!r} in its text", hint=_by_hand(entry))
    item = items[index]
    if not isinstance(item, yaml.MappingNode) or item.flow_style:
        raise ScaffoldError(
            f"{cannot}: step {after!r} is not written as a block mapping", hint=_by_hand(entry)
        )
    lines = text.splitlines(keepends=True)
    col = item.start_mark.column
    first = lines[item.start_mark.line]
    prefix = first[:col] if first[:col].strip() == "-" else " " * max(col - 2, 0) + "- "
    indent = " " * len(prefix)
    sub = 2
    for _, value in item.value:
        if isinstance(value, yaml.MappingNode) and not value.flow_style and value.value:
            sub = max(value.value[0][0].start_mark.column - col, 1)
            break
    block = [
        f"{prefix}name: {yaml_scalar(entry['name'])}",
        f"{indent}notebook: {yaml_scalar(entry['notebook'])}",
    ]
    for section in ("inputs", "outputs"):
        if entry.get(section):
            block.append(f"{indent}{section}:")
            block += [
                f"{indent}{' ' * sub}{yaml_scalar(k)}: {yaml_scalar(v)}"
                for k, v in entry[section].items()
            ]
    # Separate steps by a blank line when the file does.
    separated = any(_blank_before(lines, it.start_mark.line) for it in items[1:])
    last = _end_line(item)
    if len(items) == 1:
        separated = last + 1 < len(lines) and not lines[last + 1].strip()
    head = lines[: last + 1]
    if head and not head[-1].endswith("\n"):
        head[-1] += "\n"
    new_lines = [*head, *(["\n"] if separated else []), *(ln + "\n" for ln in block)]
    new_text = "".join(new_lines + lines[last + 1 :])

    old_data, new_data = yaml.safe_load(text), yaml.safe_load(new_text)
    expected = dict(old_data)
    expected["steps"] = [*old_data["steps"][: index + 1], entry, *old_data["steps"][index + 1 :]]
    if new_data != expected:
        raise ScaffoldError(
            f"{cannot}: the edit did not read back as expected", hint=_by_hand(entry)
        )
    return new_text


def _blank_before(lines: list[str], line: int) -> bool:
    """Whether a blank line precedes ``line``, skipping the comment lines just above it."""
    i = line - 1
    while i >= 0 and lines[i].lstrip().startswith("#"):
        i -= 1
    return i >= 0 and not lines[i].strip()


def _by_hand(entry: dict[str, Any]) -> str:
    return "add it by hand under steps:\n" + yaml.safe_dump([entry], sort_keys=False)


# ----------------------------------------------------------------------------- the command


def _check_name(name: str, spec: Pipeline, notebook: Path, root: Path) -> None:
    if not NAME_RE.match(name):
        raise ScaffoldError(
            f"step name {name!r} must be an identifier (letters, digits, _ or -)",
            hint=f"e.g. {re.sub(r'[^A-Za-z0-9_-]', '_', name).lstrip('0123456789-') or 'report'}",
        )
    if name in spec.step_names:
        raise ScaffoldError(
            f"pipeline {spec.name!r} already has a step named {name!r}",
            hint=f"pick another name (steps: {', '.join(spec.step_names)})",
        )
    if notebook.exists():
        raise ScaffoldError(
            f"notebook {notebook.relative_to(root)} already exists",
            hint="pick another step name; to reuse that notebook, add the step to the spec by hand",
        )


def new_step(request: NewStepRequest) -> NewStepResult:
    """Create ``notebooks/NAME.ipynb`` and add step ``NAME`` to the pipeline's spec.

    Raises:
        ScaffoldError: the name is taken (step or notebook), the pipeline or ``after`` step is
            unknown, or the spec's layout cannot be edited safely.
        SpecError: the spec does not load.
    """
    settings = load_settings(request.root)
    root = settings.root
    spec_path = resolve_pipeline(root, request.pipeline)
    spec = load_spec(spec_path)
    suffix = ".py" if request.format == "py" else ".ipynb"
    notebook = root / NOTEBOOKS_DIR / f"{request.name}{suffix}"
    _check_name(request.name, spec, notebook, root)
    after = request.after or spec.step_names[-1]
    if after not in spec.step_names:
        raise ScaffoldError(
            f"--after: pipeline {spec.name!r} has no step {after!r} "
            f"(steps: {', '.join(spec.step_names)})",
            hint=did_you_mean(after, spec.step_names),
        )
    upstream = spec.step(after)
    dev_dir = settings.runs_dir / "dev"

    def default(rel: str) -> str:
        return PurePosixPath(os.path.relpath(dev_dir / rel, notebook.parent)).as_posix()

    inputs: dict[str, tuple[str, str]] = {}
    for key, out in upstream.output_specs().items():
        inputs[_identifier(key, set(inputs))] = (f"{after}.{key}", default(out.path))
    out_key = _identifier("result", set(inputs))
    taken = {str(PurePosixPath(o.path)) for s in spec.steps for o in s.output_specs().values()}
    out_path, n = f"{request.name}.json", 2
    while out_path in taken:
        out_path, n = f"{request.name}_{n}.json", n + 1

    notebook_text = render_notebook(
        name=request.name,
        pipeline=spec.name,
        after=after,
        inputs=inputs,
        output=(out_key, default(out_path)),
        kernelspec=_kernelspec(upstream.notebook, settings),
    )
    if request.format == "py":
        notebook_text = to_percent_text(notebook_text)
    entry: dict[str, Any] = {
        "name": request.name,
        "notebook": PurePosixPath(os.path.relpath(notebook, spec_path.parent)).as_posix(),
    }
    if inputs:
        entry["inputs"] = {k: ref for k, (ref, _) in inputs.items()}
    entry["outputs"] = {out_key: out_path}
    text = spec_path.read_text(encoding="utf-8")
    new_text = insert_step_text(text, after, entry, path=spec_path)
    _validate(new_text, spec_path)

    atomic_write_text(notebook, notebook_text)
    try:
        atomic_write_text(spec_path, new_text)
    except BaseException:
        notebook.unlink(missing_ok=True)
        raise
    return NewStepResult(
        step=request.name,
        pipeline=spec.name,
        spec_path=spec_path,
        notebook=notebook,
        after=after,
        inputs={k: ref for k, (ref, _) in inputs.items()},
        outputs={out_key: out_path},
    )


def _validate(text: str, spec_path: Path) -> None:
    """Load the edited spec from a temporary file beside the real one (same relative paths)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{spec_path.stem}.", suffix=".new", dir=spec_path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        load_spec(tmp)
    except ToolkitError as exc:
        raise ScaffoldError(
            f"the edited spec would not load: {exc.message}", hint=exc.hint
        ) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)
