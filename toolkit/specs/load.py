"""Reading a pipeline spec: bounded YAML, secret parameters, validation into
:class:`~toolkit.specs.models.Pipeline`, and paths resolved against the spec's folder.

Everything a reader needs to fix a broken spec is in the error: the file, the dotted field path
and, for typos, a "did you mean".
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from toolkit.core.errors import SpecError, did_you_mean
from toolkit.specs.bounded_yaml import MAX_SPEC_BYTES, load_yaml_bounded
from toolkit.specs.field_errors import error_from_validation
from toolkit.specs.models import Pipeline
from toolkit.specs.param_values import ParamValueError, json_param
from toolkit.specs.step_models import ExternalInput, SecretParam


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
    data["parameters"] = _parse_secret_params(
        _json_params(data.get("parameters", {}), path, "parameters")
    )
    if isinstance(data.get("steps"), list):
        data["steps"] = [
            {
                **s,
                "parameters": _parse_secret_params(
                    _json_params(s.get("parameters", {}), path, _step_loc(i, s) + ".parameters")
                ),
                **({"env": _parse_secret_params(s["env"])} if "env" in s else {}),
            }
            if isinstance(s, dict)
            else s
            for i, s in enumerate(data["steps"])
        ]
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        raise error_from_validation(exc, path, data) from exc
    return _resolve_paths(pipeline, path, hashlib.sha256(raw).hexdigest())


def _resolve_paths(pipeline: Pipeline, path: Path, digest: str) -> Pipeline:
    base = path.parent
    resolved: dict[Path, Path] = {}

    def resolve(relative: Path) -> Path:
        # Steps share notebooks and folders: each is resolved (a syscall per component) once.
        if relative not in resolved:
            resolved[relative] = (base / relative).resolve()
        return resolved[relative]

    steps = []
    for step in pipeline.steps:
        inputs = {
            k: v.model_copy(update={"path": resolve(v.path)}) if isinstance(v, ExternalInput) else v
            for k, v in step.inputs.items()
        }
        steps.append(
            step.model_copy(
                update={
                    "notebook": resolve(step.notebook),
                    "inputs": inputs,
                    "cwd": resolve(step.cwd) if step.cwd is not None else None,
                }
            )
        )
    return pipeline.model_copy(update={"steps": steps, "source": path, "content_hash": digest})


def discover_specs(pipelines_dir: Path) -> list[Path]:
    """All spec files in a project's ``pipelines/`` folder, sorted."""
    if not pipelines_dir.is_dir():
        return []
    return sorted([*pipelines_dir.glob("*.yaml"), *pipelines_dir.glob("*.yml")])


def _step_loc(index: int, step: dict[Any, Any]) -> str:
    name = step.get("name")
    return f"steps[{index}]" + (f"({name})" if isinstance(name, str) else "")


def _json_params(params: Any, path: Path, location: str) -> Any:
    """Parameters with dates as ISO strings; a value that is not a JSON type is refused here, so
    ``check`` and ``plan`` catch it rather than the step that would fail to pass it."""
    if not isinstance(params, dict):
        return params  # pydantic says what a parameters section must be
    try:
        return json_param(params)
    except ParamValueError as exc:
        raise SpecError(
            exc.message, path=path, location=location + exc.where, hint=exc.hint
        ) from None


def _parse_secret_params(params: Any) -> Any:
    if not isinstance(params, dict):
        return params
    return {
        k: SecretParam(**v) if isinstance(v, dict) and v.get("secret") is True else v
        for k, v in params.items()
    }
