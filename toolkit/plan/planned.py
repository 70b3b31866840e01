"""What a plan is: a frozen, ordered DAG of steps, each with every parameter, input and output
resolved and no reference back to the spec. Built by :func:`toolkit.plan.build.build_plan`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from toolkit.specs.models import GatesSpec, ModelSpec, ReleaseSpec

#: The run folder's subfolder holding every step's outputs.
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
        return self._by_name[name]

    @cached_property
    def _by_name(self) -> dict[str, PlannedStep]:
        # The scheduler looks steps up by name several times each: a scan made that quadratic.
        return {s.name: s for s in self.steps}

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
