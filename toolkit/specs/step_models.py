"""Pipeline specs, the step level: one notebook step, its inputs, outputs and secret values.

The pipeline-level models (the whole file, the model it releases, its gates and release policy)
are in :mod:`toolkit.specs.models`; reading a file into them is :mod:`toolkit.specs.load`.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Names become file names (notebooks, logs, locks), which the OS caps at 255 bytes: a 250-character
# step name passed check, then failed with ENAMETOOLONG (exit 70) when its notebook was written.
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
OnFail = Literal["error", "warn"]


class SpecModel(BaseModel):
    """Every spec model: unknown keys are refused and loaded specs never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Output(SpecModel):
    """A file or folder a step writes, relative to the run's data folder, with an optional
    contract."""

    path: str = Field(
        description="where the step writes it, relative to the run's data folder "
        "(runs/PIPELINE/RUN/data/); the notebook gets the absolute path as a parameter",
        examples=["model.joblib", "features/train.parquet", "mlflow_model"],
    )
    contract: str | None = Field(
        default=None,
        description="the data contract checked after the step writes it: a suite name in "
        "expectations/ (without .json)",
        examples=["features"],
    )
    on_fail: OnFail = Field(
        default="error",
        description="a violated contract fails the run (error, exit 3) or is only recorded (warn)",
        examples=["warn"],
    )
    same_rows_as: str | None = Field(
        default=None,
        description="an input of the same step whose row count this must equal",
        examples=["test"],
    )

    @field_validator("path")
    @classmethod
    def _inside_run_folder(cls, value: str) -> str:
        pure = PurePosixPath(value)
        if not value or pure.is_absolute() or ".." in pure.parts:
            raise ValueError(
                f"output path {value!r} must be relative and stay inside the run folder "
                "(outputs are written per run so runs never overwrite each other)"
            )
        if not pure.parts:  # "." or "./": the data folder itself, every step's outputs at once
            raise ValueError(
                f"output path {value!r} is the run's data folder itself: name a file or a folder "
                "inside it (a folder output is replaced whole when its step runs)"
            )
        return value


class ExternalInput(SpecModel):
    """A file entering the pipeline from outside, with an optional contract on its content."""

    path: Path = Field(
        description="the file, relative to the spec's folder (or absolute)",
        examples=["batches/clean.csv"],
    )
    contract: str | None = Field(
        default=None,
        description="the data contract checked before the step runs: a suite name in "
        "expectations/ (without .json)",
        examples=["production_records"],
    )
    on_fail: OnFail = Field(
        default="error",
        description="a violated contract stops the run (error, exit 3) or is only recorded (warn)",
        examples=["warn"],
    )


class SecretParam(SpecModel):
    """A parameter whose value must never be logged; read from ``env`` or given as ``value``."""

    secret: Literal[True] = Field(
        description="marks the parameter secret: its value is redacted everywhere", examples=[True]
    )
    env: str | None = Field(
        default=None,
        description="the environment variable holding the value",
        examples=["DB_PASSWORD"],
    )
    value: Any = Field(
        default=None,
        description="the value itself, when no env is given (prefer env)",
        examples=["s3cr3t"],
    )


class Step(SpecModel):
    """One notebook step."""

    name: str = Field(
        description="the step's name, unique in the pipeline (letters, digits, _ or -); "
        "other steps refer to its outputs as NAME.OUTPUT",
        examples=["train"],
    )
    notebook: Path = Field(
        description="the notebook to execute, relative to the spec's folder",
        examples=["../notebooks/train.ipynb"],
    )
    description: str = Field(
        default="", description="what the step does, for humans", examples=["Fit the model."]
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="values injected into the notebook's cell tagged 'parameters' (they "
        "override the pipeline's); {secret: true, env: VAR} for a secret",
        examples=[{"C": 1.0, "test_size": 0.25}],
    )
    inputs: dict[str, str | ExternalInput] = Field(
        default_factory=dict,
        description="parameter name -> STEP.OUTPUT of an earlier step, or {path: FILE} for a "
        "file entering the pipeline; the notebook gets the absolute path",
        examples=[{"train": "features.train", "batch": {"path": "batches/clean.csv"}}],
    )
    outputs: dict[str, str | Output] = Field(
        default_factory=dict,
        description="parameter name -> a path in the run's data folder, or {path, contract, "
        "on_fail, same_rows_as}; the notebook gets the absolute path and must write the file",
        examples=[{"model": "model.joblib", "train": {"path": "train.parquet", "contract": "f"}}],
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        description="seconds for the whole step; it fails (exit 1) when they run out",
        examples=[600],
    )
    retries: int = Field(
        default=0,
        ge=0,
        description="further attempts after a failed one (a scheduler's task retries too)",
        examples=[2],
    )
    retry_delay: float = Field(
        default=0.0, ge=0, description="seconds to wait between attempts", examples=[30]
    )
    cache: bool = Field(
        default=True,
        description="reuse the outputs of an identical earlier execution; false for steps that "
        "read the outside world (a database, the clock)",
        examples=[False],
    )
    preload: list[str] | None = Field(
        default=None,
        description="modules to import in the step's kernel while earlier steps run "
        "(default: the notebook's own top-level imports)",
        examples=[["pandas", "sklearn.linear_model"]],
    )
    kernel: str | None = Field(
        default=None,
        description="Jupyter kernelspec to run the notebook in (default: settings)",
        examples=["python3"],
    )
    env: dict[str, str | SecretParam] = Field(
        default_factory=dict,
        description="environment variables of the step's kernel: strings, or "
        "{secret: true, env: NAME} to pass one of the caller's variables unlogged",
        examples=[{"OMP_NUM_THREADS": "1", "API_TOKEN": {"secret": True, "env": "API_TOKEN"}}],
    )
    cwd: Path | None = Field(
        default=None,
        description="the kernel's working folder, relative to the spec (default: the "
        "notebook's folder)",
        examples=["../data"],
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(
                f"step name {value!r} must be an identifier (letters, digits, _ or -; "
                "at most 64 characters)"
            )
        return value

    @field_validator("outputs", mode="before")
    @classmethod
    def _outputs_as_mappings(cls, value: Any) -> Any:
        # ``out: model`` is validated as ``out: {path: model}``, so that an invalid path is
        # reported at ``outputs.out.path`` (after validation it would lose the output's name).
        if isinstance(value, dict):
            return {k: {"path": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("outputs", mode="after")
    @classmethod
    def _normalise_outputs(cls, value: dict[str, str | Output]) -> dict[str, str | Output]:
        return {k: Output(path=v) if isinstance(v, str) else v for k, v in value.items()}

    def output_specs(self) -> dict[str, Output]:
        return {k: v for k, v in self.outputs.items() if isinstance(v, Output)}
