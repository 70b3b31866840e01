"""Planning: turn a spec into a frozen, ordered DAG of steps before anything runs.

The plan resolves every parameter a step will receive, in this order of precedence:
pipeline defaults < step parameters < ``-p`` overrides < resolved input and output paths.
Pipeline defaults reach only the steps whose notebooks declare them; everything explicit must
exist in the notebook's ``parameters`` cell, or planning fails with a "did you mean".
The plan's types are :mod:`toolkit.plan.planned`, its DAG :mod:`toolkit.plan.graph`, its
parameters :mod:`toolkit.plan.parameters`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from toolkit.core.errors import NotebookError, SpecError, UsageError, did_you_mean
from toolkit.plan.graph import order_steps, resolve_inputs
from toolkit.plan.kernels import check_kernels
from toolkit.plan.parameters import check_overrides, resolve_secret, step_parameters
from toolkit.plan.planned import DATA_DIR, Plan, PlannedInput, PlannedOutput, PlannedStep
from toolkit.specs.models import Pipeline
from toolkit.specs.notebook_params import NotebookParams, read_params
from toolkit.specs.step_models import SecretParam


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

    check_kernels(spec)
    data_dir = run_dir / DATA_DIR
    graph, resolved_inputs = resolve_inputs(spec, data_dir, overrides)
    order = order_steps(graph, spec)

    selected = set(only) or set(names)
    declared_anywhere = set().union(*(p.names for p in params_of.values()))
    check_overrides(overrides, spec, params_of, declared_anywhere)

    secret_names = spec.secret_names()
    secret_values: set[str] = set()
    steps: list[PlannedStep] = []
    by_name = {s.name: s for s in spec.steps}  # spec.step() scans: quadratic over a pipeline
    for name in order:
        if name not in selected:
            continue
        step = by_name[name]
        declared = params_of[name].names
        merged = step_parameters(spec, name, params_of[name], overrides)
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
        env = {k: str(resolve_secret(k, v) or "") for k, v in step.env.items()}
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
    pipeline_params = {k: resolve_secret(k, v) for k, v in spec.parameters.items()}
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
