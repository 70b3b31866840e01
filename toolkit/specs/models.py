"""Pipeline specs: the pydantic models of ``pipelines/*.yaml``.

A spec names the pipeline, gives default parameters and lists steps. Each step is a notebook
with its own parameters, declared inputs (``<step>.<output>`` references, or files entering the
pipeline from outside) and declared outputs (paths inside the run folder); the step's models are
in :mod:`toolkit.specs.step_models`. Reading and validating a file is :func:`toolkit.specs.load.load_spec`.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from toolkit.core.errors import did_you_mean
from toolkit.specs.readiness_models import OwnerSpec, ReadinessSpec
from toolkit.specs.step_models import NAME_RE, SecretParam, SpecModel, Step


class ModelSpec(SpecModel):
    """The model a pipeline releases: which step output holds it, and its registry name."""

    name: str = Field(
        description="the registered model's name in the MLflow registry",
        examples=["breast_cancer_clf"],
    )
    step: str = Field(description="the step that writes the model", examples=["train"])
    output: str = Field(
        description="that step's output holding the model (a joblib file)", examples=["model"]
    )
    out_of_scope: list[str] = Field(
        default_factory=list,
        description="uses the model is not meant for (shown on its model card)",
        examples=[["screening without a clinician's review"]],
    )


class GatesSpec(SpecModel):
    """Release gates, evaluated after ``step`` (usually ``evaluate``) has logged its metrics.

    Each check is a small expression: ``roc_auc >= 0.95``, ``roc_auc >= champion.roc_auc - 0.01``,
    ``predict_p95_ms <= 20``, or ``contracts`` (every contract of the run passed).
    """

    step: str = Field(
        description="the step whose logged metrics the checks read", examples=["evaluate"]
    )
    checks: list[str] = Field(
        min_length=1,
        description="expressions that must all hold for the model to be registered: METRIC OP "
        "NUMBER, METRIC OP champion.METRIC +/- NUMBER, or contracts",
        examples=[["roc_auc >= 0.95", "recall >= champion.recall - 0.02", "contracts"]],
    )


class ReleaseSpec(SpecModel):
    """Who must approve a candidate before it can be promoted to champion."""

    require_approval: bool = Field(
        default=True,
        description="a candidate needs reviews before promotion to champion",
        examples=[True],
    )
    min_approvals: int = Field(
        default=1, ge=0, description="how many distinct approvals promotion needs", examples=[2]
    )
    approvers: list[str] = Field(
        default_factory=list,
        description="who may approve (user names); empty: anyone",
        examples=[["alice", "bob"]],
    )
    forbid_self_approval: bool = Field(
        default=False,
        description="the user who triggered the run that registered the candidate may not "
        "approve it",
        examples=[True],
    )
    shadow: list[str] = Field(
        default_factory=list,
        description="checks on the evidence of shadow scoring a candidate must meet before "
        "promotion (shadow.batches, shadow.agreement, shadow.rows, shadow.psi, shadow.errors)",
        examples=[["shadow.batches >= 3", "shadow.agreement >= 0.9"]],
    )


class Pipeline(SpecModel):
    """A whole pipeline file."""

    name: str = Field(
        description="the pipeline's name (an identifier): its runs go to runs/NAME/ and its "
        "MLflow experiment is NAME",
        examples=["train"],
    )
    description: str = Field(
        default="",
        description="what the pipeline does, for humans",
        examples=["Breast-cancer classifier, from raw measurements to evaluated model."],
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="defaults passed to every notebook that declares them; override with "
        "toolkit run -p KEY=VALUE; {secret: true, env: VAR} for a secret",
        examples=[{"seed": 42, "db_password": {"secret": True, "env": "DB_PASSWORD"}}],
    )
    steps: list[Step] = Field(
        min_length=1,
        description="the notebooks to run; the order of execution follows their inputs",
        examples=[[{"name": "train", "notebook": "../notebooks/train.ipynb"}]],
    )
    model: ModelSpec | None = Field(
        default=None,
        description="the model the pipeline releases, registered when the gates pass",
        examples=[{"name": "breast_cancer_clf", "step": "train", "output": "model"}],
    )
    gates: GatesSpec | None = Field(
        default=None,
        description="release gates checked after a step logged its metrics",
        examples=[{"step": "evaluate", "checks": ["roc_auc >= 0.95"]}],
    )
    release: ReleaseSpec = Field(
        default_factory=ReleaseSpec,
        description="who must approve a candidate before it is promoted",
        examples=[{"require_approval": True, "min_approvals": 1}],
    )
    guard: dict[str, Any] | None = Field(
        default=None,
        description="the guarded model's configuration (see toolkit.guard)",
        examples=[{"model_name": "breast_cancer_clf", "confidence": {"min_confidence": 0.7}}],
    )
    monitoring: dict[str, Any] | None = Field(
        default=None,
        description="drift and rate thresholds (see toolkit.monitor)",
        examples=[{"fallback_rate_alert": 0.2}],
    )
    feedback: dict[str, float] | None = Field(
        default=None,
        description="lowest acceptable live metric per name, once true outcomes arrive "
        "(toolkit feedback alerts below it)",
        examples=[{"roc_auc": 0.9, "recall": 0.85}],
    )
    alerts: dict[str, Any] | None = Field(
        default=None,
        description="alert hooks: {webhook: URL, command: CMD}",
        examples=[{"webhook": "https://alerts.example.com/hook"}],
    )
    owner: OwnerSpec | None = Field(
        default=None,
        description="who answers for the released model: a name or team, and a contact",
        examples=[{"team": "diagnostics", "contact": "diagnostics-oncall@example.com"}],
    )
    readiness: ReadinessSpec = Field(
        default_factory=ReadinessSpec,
        description="which production controls promotion requires (toolkit check --readiness)",
        examples=[{"level": "production"}],
    )
    # Set by load_spec, not written by users: kept out of the JSON Schema.
    source: SkipJsonSchema[Path] = Field(default=Path("."), exclude=True)
    content_hash: SkipJsonSchema[str] = Field(default="", exclude=True)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(
                f"pipeline name {value!r} must be an identifier (letters, digits, _ or -; "
                "at most 64 characters)"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Pipeline:
        names = [s.name for s in self.steps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"step names must be unique; repeated: {', '.join(dupes)}")
        writers: dict[str, str] = {}
        for step in self.steps:
            for key, out in step.output_specs().items():
                norm = str(PurePosixPath(out.path))
                if norm in writers:
                    raise ValueError(
                        f"two steps write the same output {norm!r}: "
                        f"{writers[norm]} and {step.name}.{key}"
                    )
                writers[norm] = f"{step.name}.{key}"
        # A folder output is removed whole before its step runs again: nothing else may be in it.
        for norm, writer in writers.items():
            for parent in PurePosixPath(norm).parents:
                if str(parent) in writers:
                    raise ValueError(
                        f"output {norm!r} ({writer}) is inside the output folder {str(parent)!r} "
                        f"({writers[str(parent)]}), which is replaced whenever its step runs"
                    )
        for section, ref in (("model.step", self.model), ("gates.step", self.gates)):
            if ref is not None and ref.step not in names:
                hint = did_you_mean(ref.step, names)
                raise ValueError(
                    f"{section}: no step named {ref.step!r}" + (f"; {hint}" if hint else "")
                )
        for step in self.steps:
            for key, out in step.output_specs().items():
                if out.same_rows_as and out.same_rows_as not in step.inputs:
                    raise ValueError(
                        f"steps({step.name}).outputs.{key}.same_rows_as: {step.name!r} has no "
                        f"input {out.same_rows_as!r}"
                    )
        if self.model and self.model.output not in self.step(self.model.step).outputs:
            raise ValueError(
                f"model.output: step {self.model.step!r} has no output {self.model.output!r}"
            )
        return self

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    @property
    def step_names(self) -> list[str]:
        return [s.name for s in self.steps]

    def secret_names(self) -> frozenset[str]:
        """Parameters declared ``{secret: true}`` anywhere in the spec."""
        names = {k for k, v in self.parameters.items() if isinstance(v, SecretParam)}
        for step in self.steps:
            names |= {k for k, v in step.parameters.items() if isinstance(v, SecretParam)}
        return frozenset(names)
