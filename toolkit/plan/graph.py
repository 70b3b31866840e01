"""The DAG of a plan: which step's output each input is, and an order to run the steps in.

Steps free to go in any order keep the spec's order: readers expect it.
"""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolkit.core.errors import SpecError, did_you_mean
from toolkit.plan.planned import PlannedInput
from toolkit.specs.models import Pipeline
from toolkit.specs.step_models import ExternalInput


def resolve_inputs(
    spec: Pipeline, data_dir: Path, overrides: dict[str, Any]
) -> tuple[dict[str, set[str]], dict[str, dict[str, PlannedInput]]]:
    """Each step's upstream steps, and its inputs as paths.

    ``-p KEY=FILE`` (or ``STEP.KEY=FILE``) swaps a file entering the pipeline; a ``STEP.KEY``
    used that way is removed from ``overrides``, which then holds parameters only.

    Raises:
        SpecError: an input that no step produces.
    """
    by_name = {s.name: s for s in spec.steps}  # looked up per input: a scan was O(steps^2)
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
            if producer not in by_name or output not in by_name[producer].outputs:
                all_refs = [f"{s.name}.{o}" for s in spec.steps for o in s.outputs]
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
            out = by_name[producer].output_specs()[output]
            graph[step.name].add(producer)
            resolved_inputs[step.name][key] = PlannedInput(
                path=data_dir / out.path, producer=producer, output=output
            )
    return graph, resolved_inputs


def order_steps(graph: Mapping[str, set[str]], spec: Pipeline) -> list[str]:
    """The steps in an order that runs every producer first; spec order among the free ones.

    Raises:
        SpecError: the steps form a cycle.
    """
    sorter = graphlib.TopologicalSorter(graph)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        raise SpecError(
            "the steps form a cycle: " + " -> ".join(cycle),
            path=spec.source,
            hint="a step cannot consume, directly or not, an output of itself",
        ) from exc
    # Of the steps whose producers are done, the first in spec order: a heap, not a scan of
    # every step per step (that made planning cubic in the number of steps).
    position = {name: i for i, name in enumerate(spec.step_names)}
    ready: list[tuple[int, str]] = []
    done: list[str] = []
    while sorter.is_active():
        for name in sorter.get_ready():
            heapq.heappush(ready, (position[name], name))
        name = heapq.heappop(ready)[1]
        done.append(name)
        sorter.done(name)
    return done
