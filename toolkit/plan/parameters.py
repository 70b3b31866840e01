"""Parameters of a plan: ``-p`` overrides parsed and checked against the notebooks, secret
values read from the environment, and one step's parameters merged in order of precedence:
pipeline defaults < step parameters < ``-p`` overrides (resolved paths come last, in the plan).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from toolkit.core.errors import SpecError, UsageError, did_you_mean
from toolkit.specs.models import Pipeline
from toolkit.specs.notebook_params import NotebookParams
from toolkit.specs.param_values import ParamValueError, json_param
from toolkit.specs.step_models import SecretParam
from toolkit.specs.yaml12 import CoreSafeLoader


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` strings; values are read as YAML 1.2 core-schema values, like spec
    values (``3`` is an int, ``1e-3`` a float, ``on`` and ``2024-01-02`` strings).

    Raises:
        UsageError: a pair without ``=``.
        SpecError: a value that cannot be a notebook parameter (``!!binary``, ``!!set``, a
            mapping with a non-string key); the location is the ``-p`` option.
    """
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-p expects KEY=VALUE, got {pair!r}")
        try:
            result[key.strip()] = json_param(_override_value(raw))
        except ParamValueError as exc:
            raise SpecError(
                exc.message, location=f"-p {key.strip()}{exc.where}", hint=exc.hint
            ) from None
    return result


def _override_value(raw: str) -> Any:
    """One ``-p`` value. Text YAML would drop as a comment (``#x``, ``a #b``), leave empty or
    fail to parse keeps its text as a string: on a command line it is meant literally."""
    loader = CoreSafeLoader(raw)
    try:
        node = loader.get_single_node()
        if node is None or node.end_mark.index < len(raw.rstrip()):
            return raw
        return loader.construct_document(node)
    except yaml.YAMLError:
        return raw
    finally:
        loader.dispose()


def resolve_secret(name: str, value: Any) -> Any:
    """A parameter's value: a secret's is read from its environment variable, else given."""
    if not isinstance(value, SecretParam):
        return value
    if value.env:
        if value.env in os.environ:
            return os.environ[value.env]
        if value.value is None:
            raise UsageError(
                f"secret parameter {name!r} reads environment variable {value.env!r}, "
                "which is not set",
                hint=f"export {value.env}=... before running",
            )
    return value.value


def check_overrides(
    overrides: Mapping[str, Any],
    spec: Pipeline,
    params_of: Mapping[str, NotebookParams],
    declared_anywhere: set[str],
) -> None:
    """Refuse an override naming no step (``step.key``), no declared parameter (``key``), or
    a path the pipeline wires in the run folder (an output, or an input another step makes),
    which was ignored silently. An external input may be swapped (``-p batch=other.csv``)."""
    for key in overrides:
        target, dot, param = key.rpartition(".")
        wired = [
            s.name
            for s in spec.steps
            if (not dot or s.name == target)
            and (param in s.outputs or isinstance(s.inputs.get(param), str))
        ]
        if wired:
            raise UsageError(
                f"-p {key}: {param!r} is a path step {wired[0]!r} gets from the pipeline (an "
                "output, or another step's output): it is set in the run folder",
                hint=f"change steps({wired[0]}).outputs or inputs in the spec instead",
            )
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


def step_parameters(
    spec: Pipeline, name: str, params: NotebookParams, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Step ``name``'s parameters before paths: pipeline defaults the notebook declares, then
    the step's own, then ``-p`` overrides (``key`` for every step declaring it, ``step.key``).

    Raises:
        SpecError: a step parameter the notebook's ``parameters`` cell does not declare.
    """
    step = spec.step(name)
    declared = params.names
    merged: dict[str, Any] = {
        k: resolve_secret(k, v) for k, v in spec.parameters.items() if k in declared
    }
    for key, value in step.parameters.items():
        if not params.accepts(key):
            raise SpecError(
                f"parameter {key!r} is not in the parameters cell of {step.notebook.name}",
                path=spec.source,
                location=f"steps({name}).parameters.{key}",
                hint=did_you_mean(key, declared),
            )
        merged[key] = resolve_secret(key, value)
    for key, value in overrides.items():
        target, dot, param = key.rpartition(".")
        if (dot and target == name and params.accepts(param)) or (not dot and key in declared):
            merged[param if dot else key] = value
    return merged
