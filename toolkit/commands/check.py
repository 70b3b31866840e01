"""``toolkit check``: lint every pipeline of a project without running anything.

It reports all problems it can find, not just the first: specs that don't validate, missing
notebooks, and parameters or paths a spec passes that the notebook does not declare. It warns
(without failing) where a notebook would silently overwrite a value the pipeline injects: an
unconditional top-level ``x = ...`` after the injection point (the top of a notebook without a
``parameters`` cell).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolkit.core.errors import SpecError, ToolkitError, did_you_mean
from toolkit.gates.evaluation import parse_checks
from toolkit.plan.build import build_plan
from toolkit.specs.load import load_spec
from toolkit.specs.models import Pipeline
from toolkit.specs.notebook_params import overwritten, read_params
from toolkit.specs.step_models import ExternalInput, Output


@dataclass(frozen=True)
class Problem:
    spec: Path
    message: str
    hint: str | None = None
    warning: bool = False  # reported, but the project still passes

    def __str__(self) -> str:
        text = f"{self.spec}: {self.message}"
        return f"{text}\n  hint: {self.hint}" if self.hint else text


def check_spec(path: Path) -> list[Problem]:
    """All problems found in one spec and the notebooks it uses."""
    return _check_one(path)[1]


def _check_one(path: Path) -> tuple[Pipeline | None, list[Problem]]:
    try:
        spec = load_spec(path)
    except ToolkitError as exc:
        return None, [_problem(path, exc)]
    problems = _check_steps(spec)
    if not [p for p in problems if not p.warning]:
        try:
            build_plan(spec, spec.source.parent / ".check-run")
        except ToolkitError as exc:
            problems.append(_problem(spec.source, exc))
    if spec.gates is not None:
        # The parser ``run`` uses before anything executes: check must not pass what run refuses.
        try:
            parse_checks(spec.gates.checks, path=spec.source)
        except ToolkitError as exc:
            problems.append(_problem(spec.source, exc))
    problems += _check_contracts(spec)
    return spec, problems


def _problem(path: Path, exc: ToolkitError) -> Problem:
    """A problem from an error: a :class:`SpecError`'s message already names the file (which
    the problem shows once, itself) and the field or line."""
    message = exc.message
    if isinstance(exc, SpecError) and exc.path is not None:
        message = message.removeprefix(f"{exc.path}: ")
    return Problem(path, message, exc.hint)


def _check_contracts(spec: Pipeline) -> list[Problem]:
    """Every suite a spec names must load; without importing GX (seconds), see ``load_suite``."""
    from toolkit.contracts.suites import load_suite
    from toolkit.core.settings import load_settings

    settings = load_settings(spec.source)
    expectations_dir = settings.expectations_dir
    problems = []
    for step in spec.steps:
        attached: list[tuple[str, str, ExternalInput | Output]] = [
            ("inputs", k, v) for k, v in step.inputs.items() if not isinstance(v, str)
        ]
        attached += [("outputs", k, v) for k, v in step.output_specs().items()]
        for direction, key, item in attached:
            if item.contract is None:
                continue
            try:
                load_suite(item.contract, expectations_dir, gx=False)
            except ToolkitError as exc:
                problems.append(
                    Problem(
                        spec.source,
                        f"step {step.name!r}, {direction}.{key}: {exc.message}",
                        exc.hint,
                    )
                )
    return problems


def _check_steps(spec: Pipeline) -> list[Problem]:
    problems: list[Problem] = []
    declared_anywhere: set[str] = set()
    for step in spec.steps:
        try:
            params = read_params(step.notebook)
        except ToolkitError as exc:
            problems.append(Problem(spec.source, f"step {step.name!r}: {exc.message}", exc.hint))
            continue
        declared_anywhere |= params.names
        explicit = [("parameter", k) for k in step.parameters]
        explicit += [("input", k) for k in step.inputs]
        explicit += [("output", k) for k in step.outputs]
        injected = {key for _, key in explicit} | (set(spec.parameters) & params.names)
        for key, cell in sorted(overwritten(params, injected).items()):
            where = "the top" if params.open else "the parameters cell"
            problems.append(
                Problem(
                    spec.source,
                    f"step {step.name!r}: cell {cell} of {step.notebook.name} assigns {key!r} "
                    f"unconditionally, after the value the pipeline injects at {where}; "
                    "the notebook's value wins",
                    f"keep the default but let an injected value win: `try: {key}` / "
                    f"`except NameError: {key} = ...`, or tag a cell 'parameters'",
                    warning=True,
                )
            )
        for kind, key in explicit:
            if not params.accepts(key):
                problems.append(
                    Problem(
                        spec.source,
                        f"step {step.name!r} passes {kind} {key!r}, but the parameters cell of "
                        f"{step.notebook.name} does not declare it",
                        did_you_mean(key, params.names) or f"add `{key} = ...` to that cell",
                    )
                )
    if not [p for p in problems if not p.warning]:
        for key in spec.parameters:
            if key not in declared_anywhere:
                problems.append(
                    Problem(
                        spec.source,
                        f"pipeline parameter {key!r} is declared by no step's notebook",
                        did_you_mean(key, declared_anywhere),
                    )
                )
    return problems


def check_project(specs: list[Path]) -> list[Problem]:
    """Check each spec, and that no two share a name; an empty list means the project is
    clean."""
    problems: list[Problem] = []
    named: dict[str, Path] = {}
    for path in specs:
        spec, found = _check_one(path)
        problems += found
        if spec is None:
            continue
        first = named.setdefault(spec.name, path)
        if first != path:
            # Runs are filed by name: the two would share runs/NAME, the run lock, --resume
            # ids and the MLflow experiment, and `runs list NAME` would mix them.
            problems.append(
                Problem(
                    path,
                    f"pipeline name {spec.name!r} is also the name of {first}: their runs, run "
                    "lock and MLflow experiment would be shared",
                    hint="give each spec a name of its own (the `name:` field)",
                    warning=True,
                )
            )
    return problems
