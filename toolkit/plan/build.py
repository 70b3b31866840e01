"""Planning: turn a spec into a frozen, ordered DAG of steps before anything runs.

The plan resolves every parameter a step will receive, in this order of precedence:
pipeline defaults < step parameters < ``-p`` overrides < resolved input and output paths.
Pipeline defaults reach only the steps whose notebooks declare them; everything explicit must
exist in the notebook's ``parameters`` cell, or planning fails with a "did you mean".
"""

from __future__ import annotations

import graphlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from toolkit.core.errors import NotebookError, SpecError, UsageError, did_you_mean
from toolkit.specs.models import GatesSpec, ModelSpec, Pipeline, ReleaseSpec
from toolkit.specs.notebook_params import NotebookParams, read_params
from toolkit.specs.step_models import ExternalInput, SecretParam

DATA_DIR = "data"


@dataclass(frozen=True)
class PlannedInput:
    """A resolved input: the absolute path, and which step produces it (None: external)."""

    path: Path
    producer: str | None = None
    output: str | None = None
    contract: str | None = None
    on_fail: str = "error"


@dataclass(frozen=True)
class PlannedOutput:
    path: Path
    contract: str | None = None
    on_fail: str = "error"
    same_rows_as: str | None = None


@dataclass(frozen=True)
class PlannedStep:
    """Everything needed to execute one step, with no reference back to the spec."""

    name: str
    notebook: Path
    parameters: Mapping[str, Any]
    inputs: Mapping[str, PlannedInput]
    outputs: Mapping[str, PlannedOutput]
    upstream: frozenset[str]
    timeout: float | None = None
    retries: int = 0
    retry_delay: float = 0.0
    secret_params: frozenset[str] = frozenset()
    cache: bool = True
    preload: tuple[str, ...] | None = None
    kernel: str | None = None  # None: the project's default kernel
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None  # None: the notebook's folder
    secret_env: frozenset[str] = frozenset()

    @property
    def workdir(self) -> Path:
        """The kernel's working folder: the step's ``cwd:``, else the notebook's folder."""
        return self.cwd or self.notebook.parent


@dataclass(frozen=True)
class Plan:
    """A pipeline ready to run: steps in a valid execution order."""

    pipeline: str
    spec_path: Path
    spec_hash: str
    run_dir: Path
    steps: tuple[PlannedStep, ...]
    secret_values: frozenset[str] = field(default_factory=frozenset)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    secret_params: frozenset[str] = frozenset()
    model: ModelSpec | None = None
    gates: GatesSpec | None = None
    release: ReleaseSpec = field(default_factory=ReleaseSpec)
    guard: Mapping[str, Any] | None = None

    def step(self, name: str) -> PlannedStep:
        return next(s for s in self.steps if s.name == name)

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def downstream(self, name: str) -> set[str]:
        """Every step that depends on ``name``, directly or not."""
        found: set[str] = set()
        frontier = {name}
        while frontier:
            frontier = {s.name for s in self.steps if s.upstream & frontier} - found
            found |= frontier
        return found

    def graph(self) -> dict[str, set[str]]:
        return {s.name: set(s.upstream) for s in self.steps}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, with secret parameters masked."""
        return {
            "pipeline": self.pipeline,
            "spec": str(self.spec_path),
            "spec_hash": self.spec_hash,
            "run_dir": str(self.run_dir),
            "steps": [
                {
                    "name": s.name,
                    "notebook": str(s.notebook),
                    "upstream": sorted(s.upstream),
                    "parameters": {
                        k: ("***" if k in s.secret_params else v) for k, v in s.parameters.items()
                    },
                    "inputs": {k: str(v.path) for k, v in s.inputs.items()},
                    "outputs": {k: str(v.path) for k, v in s.outputs.items()},
                    "timeout": s.timeout,
                    "retries": s.retries,
                    **({"kernel": s.kernel} if s.kernel else {}),
                    **({"cwd": str(s.cwd)} if s.cwd else {}),
                    **(
                        {"env": {k: ("***" if k in s.secret_env else v) for k, v in s.env.items()}}
                        if s.env
                        else {}
                    ),
                }
                for s in self.steps
            ],
        }


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` strings; values are YAML scalars (``3`` is an int, ``a`` a string)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-p expects KEY=VALUE, got {pair!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        result[key.strip()] = value
    return result


def _resolve_secret(name: str, value: Any) -> Any:
    if not isinstance(value, SecretParam):
        return value
    if value.env:
        import os

        if value.env in os.environ:
            return os.environ[value.env]
        if value.value is None:
            raise UsageError(
                f"secret parameter {name!r} reads environment variable {value.env!r}, "
                "which is not set",
                hint=f"export {value.env}=... before running",
            )
    return value.value


def _order(graph: Mapping[str, set[str]], spec: Pipeline) -> list[str]:
    sorter = graphlib.TopologicalSorter(graph)
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        raise SpecError(
            "the steps form a cycle: " + " -> ".join(cycle),
            path=spec.source,
            hint="a step cannot consume, directly or not, an output of itself",
        ) from exc
    # Keep spec order among steps that are free to go in any order: readers expect it.
    position = {name: i for i, name in enumerate(spec.step_names)}
    ready = sorted(order, key=lambda n: position[n])
    done: list[str] = []
    while ready:
        for name in ready:
            if graph[name] <= set(done):
                done.append(name)
                ready.remove(name)
                break
    return done


def build_plan(
    spec: Pipeline,
    run_dir: Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    only: Sequence[str] = (),
    previous_outputs: Callable[[str, str], Path | None] | None = None,
) -> Plan:
    """Build the plan for one run.

    Args:
        spec: the validated pipeline.
        run_dir: the folder this run will write to (it is not created here).
        overrides: ``-p`` values; ``key`` applies to every step declaring it, ``step.key`` to one.
        only: run just these steps; inputs from other steps come from ``previous_outputs``.
        previous_outputs: looks up ``(step, output)`` in earlier runs, for ``only``.

    Raises:
        SpecError: a reference that nothing produces, or a cycle.
        NotebookError: a missing notebook or one without a ``parameters`` cell.
        UsageError: an override or ``only`` naming something unknown.
    """
    overrides = dict(overrides or {})
    names = spec.step_names
    for name in only:
        if name not in names:
            raise UsageError(f"--only: no step named {name!r}", hint=did_you_mean(name, names))
    params_of: dict[str, NotebookParams] = {}
    for i, step in enumerate(spec.steps):
        try:
            params_of[step.name] = read_params(step.notebook)
        except NotebookError as exc:
            raise NotebookError(
                f"step {step.name!r} (steps[{i}] in {spec.source.name}): {exc.message}",
                hint=exc.hint,
            ) from exc

    _check_kernels(spec)
    data_dir = run_dir / DATA_DIR
    graph: dict[str, set[str]] = {}
    resolved_inputs: dict[str, dict[str, PlannedInput]] = {}
    for i, step in enumerate(spec.steps):
        graph[step.name] = set()
        resolved_inputs[step.name] = {}
        for key, ref in step.inputs.items():
            where = f"steps[{i}]({step.name}).inputs.{key}"
            if isinstance(ref, ExternalInput):
                # -p KEY=FILE (or STEP.KEY=FILE) swaps a file entering the pipeline.
                swapped = overrides.pop(f"{step.name}.{key}", overrides.get(key))
                path = Path(str(swapped)).expanduser().resolve() if swapped else ref.path
                resolved_inputs[step.name][key] = PlannedInput(
                    path=path, contract=ref.contract, on_fail=ref.on_fail
                )
                continue
            producer, _, output = ref.partition(".")
            all_refs = [f"{s.name}.{o}" for s in spec.steps for o in s.outputs]
            if producer not in names or output not in spec.step(producer).outputs:
                hint = did_you_mean(ref, all_refs)
                if hint is None and ("/" in ref or not output):
                    hint = "for a file entering the pipeline, write {path: FILE}"
                raise SpecError(
                    f"input {ref!r} is not produced by any step "
                    f"(known outputs: {', '.join(all_refs) or 'none'})",
                    path=spec.source,
                    location=where,
                    hint=hint,
                )
            out = spec.step(producer).output_specs()[output]
            graph[step.name].add(producer)
            resolved_inputs[step.name][key] = PlannedInput(
                path=data_dir / out.path, producer=producer, output=output
            )
    order = _order(graph, spec)

    selected = set(only) or set(names)
    declared_anywhere = set().union(*(p.names for p in params_of.values()))
    _check_overrides(overrides, spec, params_of, declared_anywhere)

    secret_names = spec.secret_names()
    secret_values: set[str] = set()
    steps: list[PlannedStep] = []
    for name in order:
        if name not in selected:
            continue
        step = spec.step(name)
        declared = params_of[name].names
        merged: dict[str, Any] = {
            k: _resolve_secret(k, v) for k, v in spec.parameters.items() if k in declared
        }
        for key, value in step.parameters.items():
            if not params_of[name].accepts(key):
                raise SpecError(
                    f"parameter {key!r} is not in the parameters cell of {step.notebook.name}",
                    path=spec.source,
                    location=f"steps({name}).parameters.{key}",
                    hint=did_you_mean(key, declared),
                )
            merged[key] = _resolve_secret(key, value)
        for key, value in overrides.items():
            target, dot, param = key.rpartition(".")
            if (dot and target == name and params_of[name].accepts(param)) or (
                not dot and key in declared
            ):
                merged[param if dot else key] = value
        inputs = dict(resolved_inputs[name])
        for key, planned in inputs.items():
            if planned.producer and planned.producer not in selected:
                earlier = (
                    previous_outputs(planned.producer, planned.output or "")
                    if (previous_outputs)
                    else None
                )
                if earlier is None:
                    raise UsageError(
                        f"step {name!r} needs {planned.producer}.{planned.output}, which no "
                        "earlier run produced",
                        hint=f"add --only {planned.producer}, or run the whole pipeline once",
                    )
                inputs[key] = PlannedInput(path=earlier, producer=None, output=planned.output)
        outputs = {
            k: PlannedOutput(
                path=data_dir / o.path,
                contract=o.contract,
                on_fail=o.on_fail,
                same_rows_as=o.same_rows_as,
            )
            for k, o in step.output_specs().items()
        }
        for key in (*inputs, *outputs):
            if not params_of[name].accepts(key):
                raise SpecError(
                    f"{key!r} is passed as a path but is not in the parameters cell of "
                    f"{step.notebook.name}",
                    path=spec.source,
                    location=f"steps({name})",
                    hint=did_you_mean(key, declared) or f'add `{key} = "..."` to that cell',
                )
        merged.update({k: str(v.path) for k, v in inputs.items()})
        merged.update({k: str(v.path) for k, v in outputs.items()})
        secrets = frozenset(k for k in merged if k in secret_names)
        secret_values |= {str(merged[k]) for k in secrets if merged[k] not in (None, "")}
        env = {k: str(_resolve_secret(k, v) or "") for k, v in step.env.items()}
        secret_env = frozenset(k for k, v in step.env.items() if isinstance(v, SecretParam))
        secret_values |= {env[k] for k in secret_env if env[k]}
        steps.append(
            PlannedStep(
                name=name,
                notebook=step.notebook,
                parameters=merged,
                inputs=inputs,
                outputs=outputs,
                upstream=frozenset(graph[name] & selected),
                timeout=step.timeout,
                retries=step.retries,
                retry_delay=step.retry_delay,
                secret_params=secrets,
                cache=step.cache,
                preload=tuple(step.preload) if step.preload is not None else None,
                kernel=step.kernel,
                env=env,
                cwd=step.cwd,
                secret_env=secret_env,
            )
        )
    pipeline_params = {k: _resolve_secret(k, v) for k, v in spec.parameters.items()}
    pipeline_params.update({k: v for k, v in overrides.items() if "." not in k})
    return Plan(
        model=spec.model,
        gates=spec.gates,
        release=spec.release,
        guard=spec.guard,
        parameters=pipeline_params,
        secret_params=secret_names,
        pipeline=spec.name,
        spec_path=spec.source,
        spec_hash=spec.content_hash,
        run_dir=run_dir,
        steps=tuple(steps),
        secret_values=frozenset(secret_values),
    )


def _check_overrides(
    overrides: Mapping[str, Any],
    spec: Pipeline,
    params_of: Mapping[str, NotebookParams],
    declared_anywhere: set[str],
) -> None:
    for key in overrides:
        target, dot, param = key.rpartition(".")
        if dot:
            if target not in params_of:
                raise UsageError(
                    f"-p {key}: no step named {target!r}",
                    hint=did_you_mean(target, spec.step_names),
                )
            if not params_of[target].accepts(param):
                raise UsageError(
                    f"-p {key}: step {target!r} has no parameter {param!r}",
                    hint=did_you_mean(param, params_of[target].names),
                )
        elif key not in declared_anywhere:
            raise UsageError(
                f"-p {key}: no notebook in pipeline {spec.name!r} declares a parameter {key!r}",
                hint=did_you_mean(key, declared_anywhere),
            )


def installed_kernels() -> list[str]:
    """Names of the Jupyter kernelspecs this environment can start."""
    from jupyter_client.kernelspec import KernelSpecManager

    return sorted(KernelSpecManager().find_kernel_specs())


def _check_kernels(spec: Pipeline) -> None:
    """A step's ``kernel:`` must name an installed kernelspec, before anything runs."""
    wanted = [(i, s) for i, s in enumerate(spec.steps) if s.kernel]
    if not wanted:
        return  # jupyter_client stays unimported on the common path
    known = installed_kernels()
    for i, step in wanted:
        if step.kernel not in known:
            raise SpecError(
                f"unknown kernel {step.kernel!r}; installed kernelspecs: {', '.join(known)}",
                path=spec.source,
                location=f"steps[{i}]({step.name}).kernel",
                hint=did_you_mean(step.kernel or "", known)
                or "install one with `python -m ipykernel install --sys-prefix --name NAME`",
            )
