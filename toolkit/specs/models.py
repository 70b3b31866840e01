"""Pipeline specs: the pydantic models of ``pipelines/*.yaml`` and :func:`load_spec`.

A spec names the pipeline, gives default parameters and lists steps. Each step is a notebook
with its own parameters, declared inputs (``<step>.<output>`` references, or files entering the
pipeline from outside) and declared outputs (paths inside the run folder). Paths are resolved
against the spec file's folder. Everything a reader needs to fix a broken spec is in the error:
the file, the dotted field path and, for typos, a "did you mean".
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from toolkit.core.errors import SpecError, did_you_mean

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
OnFail = Literal["error", "warn"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Output(_Model):
    """A file a step writes, relative to the run's data folder, with an optional contract."""

    path: str = Field(
        description="where the step writes it, relative to the run's data folder "
        "(runs/PIPELINE/RUN/data/); the notebook gets the absolute path as a parameter",
        examples=["model.joblib", "features/train.parquet"],
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
        return value


class ExternalInput(_Model):
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


class SecretParam(_Model):
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


class Step(_Model):
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
            raise ValueError(f"step name {value!r} must be an identifier (letters, digits, _ or -)")
        return value

    @field_validator("outputs", mode="after")
    @classmethod
    def _normalise_outputs(cls, value: dict[str, str | Output]) -> dict[str, str | Output]:
        return {k: Output(path=v) if isinstance(v, str) else v for k, v in value.items()}

    def output_specs(self) -> dict[str, Output]:
        return {k: v for k, v in self.outputs.items() if isinstance(v, Output)}


class ModelSpec(_Model):
    """The model a pipeline releases: which step output holds it, and its registry name."""

    name: str = Field(
        description="the registered model's name in the MLflow registry",
        examples=["breast_cancer_clf"],
    )
    step: str = Field(description="the step that writes the model", examples=["train"])
    output: str = Field(
        description="that step's output holding the model (a joblib file)", examples=["model"]
    )


class GatesSpec(_Model):
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


class ReleaseSpec(_Model):
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


class Pipeline(_Model):
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
    alerts: dict[str, Any] | None = Field(
        default=None,
        description="alert hooks: {webhook: URL, command: CMD}",
        examples=[{"webhook": "https://alerts.example.com/hook"}],
    )
    # Set by load_spec, not written by users: kept out of the JSON Schema.
    source: SkipJsonSchema[Path] = Field(default=Path("."), exclude=True)
    content_hash: SkipJsonSchema[str] = Field(default="", exclude=True)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(f"pipeline name {value!r} must be an identifier")
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


def _known_keys() -> set[str]:
    keys: set[str] = set()
    for model in (
        Pipeline,
        Step,
        Output,
        ExternalInput,
        SecretParam,
        ModelSpec,
        GatesSpec,
        ReleaseSpec,
    ):
        keys |= set(model.model_fields)
    return keys - {"source", "content_hash"}


def _format_loc(loc: tuple[int | str, ...], data: Any) -> str:
    """Turn pydantic's loc into ``steps[1](train).outputs.model`` for humans."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            try:
                node = node[item]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    label += f"({node['name']})"
            except (IndexError, KeyError, TypeError):
                node = None
            parts.append(label)
        else:
            if item in {"str", "ExternalInput", "Output", "SecretParam"} or "[" in item:
                continue  # union-branch labels, not fields the user wrote
            parts.append(("." if parts else "") + item)
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def _parse_secret_params(params: Any) -> Any:
    if not isinstance(params, dict):
        return params
    return {
        k: SecretParam(**v) if isinstance(v, dict) and v.get("secret") is True else v
        for k, v in params.items()
    }


def _error_from_validation(exc: ValidationError, path: Path, data: Any) -> SpecError:
    # Report the first error precisely; list the count of others so nothing is hidden.
    # A typo shows up twice (unknown key + missing key); the unknown one explains both.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    # ``path`` or ``{path: ..., contract: ...}``: a mapping was meant as the second form, so the
    # plain-string alternative's complaint ("should be a valid string") only hides the real one.
    meant_mapping = [
        e
        for e in errors
        if not (e["loc"] and e["loc"][-1] == "str" and isinstance(e.get("input"), dict))
    ]
    errors = meant_mapping or errors
    first = errors[0]
    loc = tuple(first["loc"])
    location = _format_loc(loc, data)
    hint = None
    if first["type"] == "extra_forbidden":
        key = str(loc[-1])
        message = f"unknown key {key!r}"
        hint = did_you_mean(key, _known_keys())
    elif first["type"] == "missing":
        message = f"missing required key {str(loc[-1])!r}"
    else:
        message = first["msg"].removeprefix("Value error, ")
    others = len(errors) - 1
    if others:
        message += f" (and {others} more problem{'s' if others > 1 else ''})"
    return SpecError(message, path=path, location=location or None, hint=hint)


# Limits of a spec file, so that a hostile or broken one fails at once instead of exhausting
# memory later (a "billion laughs" file expands nine aliases of ten into 10**9 nodes).
MAX_SPEC_BYTES = 1 << 20
MAX_SPEC_ALIASES = 100
MAX_SPEC_DEPTH = 50
MAX_SPEC_NODES = 100_000
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")


def load_yaml_bounded(raw: bytes, path: Path) -> Any:
    """``yaml.safe_load`` with limits on aliases, nesting depth and expanded size.

    The node graph is composed first (aliases are shared nodes there, so composing is cheap) and
    measured as if every alias were expanded; only a graph within the limits is constructed.

    Raises:
        SpecError: the document exceeds a limit (the message names which one).
    """
    # Flow nesting ("[[[[...") is measured on the brackets alone before PyYAML sees it: its
    # scanner takes seconds on such input before its composer would give up.
    depth = deepest = 0
    for char in raw.translate(None, _NOT_BRACKETS):
        depth += 1 if char in b"[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_SPEC_DEPTH:
        raise SpecError(
            f"spec refused by the bounded YAML loader: nested deeper than {MAX_SPEC_DEPTH} levels",
            path=path,
        )
    loader = yaml.SafeLoader(raw)
    try:
        node = loader.get_single_node()
    except RecursionError as exc:  # PyYAML composes recursively: absurd nesting ends here
        raise SpecError(
            f"spec refused by the bounded YAML loader: nested deeper than {MAX_SPEC_DEPTH} levels",
            path=path,
        ) from exc
    finally:
        loader.dispose()
    if node is None:
        return None
    _check_node_limits(node, path)
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_node_limits(root: yaml.Node, path: Path) -> None:
    """Count aliases, depth and expanded nodes of a composed YAML graph; raise past a limit."""
    seen: dict[int, int] = {}  # node id -> expanded size, once measured
    aliases = 0

    def refuse(what: str) -> SpecError:
        return SpecError(
            f"spec refused by the bounded YAML loader: {what}",
            path=path,
            hint="specs need neither deep nesting nor repeated aliases; write the values out",
        )

    def size(node: yaml.Node, depth: int) -> int:
        nonlocal aliases
        if depth > MAX_SPEC_DEPTH:
            raise refuse(f"nested deeper than {MAX_SPEC_DEPTH} levels")
        key = id(node)
        if key in seen:
            aliases += 1  # a node reached twice is an alias (or a merge key) of it
            if aliases > MAX_SPEC_ALIASES:
                raise refuse(f"more than {MAX_SPEC_ALIASES} aliases")
            return seen[key]
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item, depth + 1)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k, depth + 1) + size(v, depth + 1)
        if total > MAX_SPEC_NODES:
            raise refuse(f"more than {MAX_SPEC_NODES} values once aliases are expanded")
        seen[key] = total
        return total

    size(root, 0)


def load_spec(path: Path | str) -> Pipeline:
    """Read, validate and resolve a pipeline spec.

    Raises:
        SpecError: the file is missing, is not YAML, or does not describe a valid pipeline.
    """
    path = Path(path).expanduser().resolve()
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise SpecError(
                f"spec file is larger than {MAX_SPEC_BYTES // 1024} KiB: refused unread",
                path=path,
                hint="a spec lists steps and parameters; put data in files it names",
            )
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        hint = None
        if path.parent.is_dir():
            hint = did_you_mean(path.name, [p.name for p in path.parent.glob("*.y*ml")])
        raise SpecError("spec file not found", path=path, hint=hint) from exc
    except OSError as exc:
        raise SpecError(f"cannot read spec file: {exc.strerror}", path=path) from exc
    try:
        data = load_yaml_bounded(raw, path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError(f"invalid YAML: {problem}", path=path, location=where) from exc
    if not isinstance(data, dict):
        raise SpecError("a spec must be a YAML mapping with 'name' and 'steps'", path=path)
    data = dict(data)
    data["parameters"] = _parse_secret_params(data.get("parameters", {}))
    if isinstance(data.get("steps"), list):
        data["steps"] = [
            {
                **s,
                "parameters": _parse_secret_params(s.get("parameters", {})),
                **({"env": _parse_secret_params(s["env"])} if "env" in s else {}),
            }
            if isinstance(s, dict)
            else s
            for s in data["steps"]
        ]
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        raise _error_from_validation(exc, path, data) from exc
    return _resolve_paths(pipeline, path, hashlib.sha256(raw).hexdigest())


def _resolve_paths(pipeline: Pipeline, path: Path, digest: str) -> Pipeline:
    base = path.parent
    steps = []
    for step in pipeline.steps:
        inputs = {
            k: v.model_copy(update={"path": (base / v.path).resolve()})
            if isinstance(v, ExternalInput)
            else v
            for k, v in step.inputs.items()
        }
        steps.append(
            step.model_copy(
                update={
                    "notebook": (base / step.notebook).resolve(),
                    "inputs": inputs,
                    "cwd": (base / step.cwd).resolve() if step.cwd is not None else None,
                }
            )
        )
    return pipeline.model_copy(update={"steps": steps, "source": path, "content_hash": digest})


def discover_specs(pipelines_dir: Path) -> list[Path]:
    """All spec files in a project's ``pipelines/`` folder, sorted."""
    if not pipelines_dir.is_dir():
        return []
    return sorted([*pipelines_dir.glob("*.yaml"), *pipelines_dir.glob("*.yml")])
