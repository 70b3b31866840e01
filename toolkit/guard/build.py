"""Guarded scoring: wrap a trained model so that it is safe to call in production.

A :class:`GuardedModel` takes raw records (the raw-data contract's columns), rejects invalid
rows with a reason, derives features inside the model (no train/serve skew), routes unsure rows
to a fallback, and returns one decision record per row. This module is the build-time front
door: it compiles contract suites and builds guards from the pipeline spec's ``guard`` section
(or a small YAML/JSON/Python file); the submodules are what a logged model carries::

    guard = build_guarded_model(estimator, {
        "model_name": "breast_cancer",
        "input_contract": {"suite": "raw_measurements", "exclude_columns": ["diagnosis"]},
        "output_contract": {"labels": {0: "benign", 1: "malignant"}, "threshold": 0.5},
        "confidence": {"min_confidence": 0.7},
        "fallback": {"rules": "guard/fallback_rules.yaml"},  # or {"python": "pkg.mod:func"}
        "explain": {"top_k": 3},
    }, expectations_dir=root / "expectations", base_dir=root, preprocess=add_features,
       input_example=raw.head(5))
    guard.predict(records)  # -> DataFrame, one row per input row

Nothing here imports MLflow; logging a guard as a pyfunc model belongs to the registry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from toolkit.guard.decisions import FALLBACK, MODEL, OUTPUT_COLUMNS, PATHS, REJECTED
from toolkit.guard.input_contract import (
    ANY,
    NUMERIC,
    STRING,
    CheckResult,
    ColumnRule,
    InputContract,
    is_number,
)
from toolkit.guard.model import GuardedModel
from toolkit.guard.policy import (
    CallableFallback,
    ConfidencePolicy,
    OutputContract,
    RuleFallback,
    load_rules,
    resolve_callable,
)

__all__ = [
    "FALLBACK", "MODEL", "OUTPUT_COLUMNS", "PATHS", "REJECTED", "CallableFallback", "CheckResult",
    "ColumnRule", "ConfidencePolicy", "GuardedModel", "InputContract", "OutputContract",
    "RuleFallback", "build_guarded_model", "compile_expectations", "compile_suite",
    "load_guard_config", "load_rules",
]  # fmt: skip

_CONFIG_KEYS = {
    "model_name",
    "version",
    "input_contract",
    "output_contract",
    "confidence",
    "fallback",
    "explain",
}
_NUMERIC_TYPES = {"int", "integer", "long", "float", "double", "number", "numeric", "decimal"}
_NUMERIC_TYPES |= {f"{p}{b}" for p in ("int", "uint", "float") for b in (8, 16, 32, 64)}
_STRING_TYPES = {"str", "string", "stringdtype", "unicode", "str_"}
_TABLE = ("expect_table_columns_to_match_set", "expect_table_columns_to_match_ordered_list")
_FLAGS = {"expect_column_to_exist": "required", "expect_column_values_to_not_be_null": "not_null"}
_SETS = ("expect_column_values_to_be_in_set", "expect_column_values_to_not_be_in_set")
_TYPES = ("expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list")
_BETWEEN, _REGEX = "expect_column_values_to_be_between", "expect_column_values_to_match_regex"


# ----------------------------------------------------------------------------- contracts


def compile_suite(
    name: str,
    expectations_dir: Path,
    *,
    exclude_columns: Iterable[str] = (),
    cache_dir: Path | None = None,
) -> InputContract:
    """Compile ``<expectations_dir>/<name>.json``, loaded strictly so that typos fail here.

    With ``cache_dir`` (a run's), a suite whose exact bytes GX already validated is not
    validated again: a run checks every suite it attaches before its first step, and importing
    GX again in the orchestrator at registration would cost seconds of CPU on the critical path.

    Raises:
        ContractError: unknown or invalid suite, or a column declared both numeric and string.
    """
    # Imports GX (seconds) unless the suite already passed: build time only.
    from toolkit.contracts.suites import load_suite_once

    suite = load_suite_once(name, Path(expectations_dir), cache_dir)
    return compile_expectations(
        suite.expectations, name=suite.name, exclude_columns=exclude_columns
    )


def compile_expectations(
    expectations: Iterable[Mapping[str, Any]], *, name: str, exclude_columns: Iterable[str] = ()
) -> InputContract:
    """Compile suite expectations (``{type, kwargs, severity?}`` dicts) into an online contract;
    see :mod:`toolkit.guard.input_contract` for what is compiled and what is skipped.

    Expectations on one column merge: tightest bounds, intersection of allowed sets, union of
    forbidden ones.

    Raises:
        ContractError: a column is declared both numeric and string.
    """
    from toolkit.core.errors import ContractError

    excluded = tuple(sorted(set(exclude_columns)))
    specs: dict[str, dict[str, Any]] = {}
    skipped: list[tuple[str, str, str]] = []
    closed = False

    def spec(column: str, kind: str = ANY) -> dict[str, Any]:
        current = specs.setdefault(column, {"name": column, "kind": ANY})
        if ANY not in (kind, current["kind"]) and kind != current["kind"]:
            raise ContractError(
                f"suite {name!r}: column {column!r} is declared both {current['kind']} and {kind}"
            )
        current["kind"] = current["kind"] if kind == ANY else kind
        return current

    for entry in expectations:
        etype, kw = entry["type"], dict(entry.get("kwargs") or {})
        column = str(kw.get("column", ""))
        if why := _why_skipped(etype, kw, entry.get("severity", "critical"), column, excluded):
            skipped.append((etype, column, why))
        elif etype in _TABLE:
            for col in kw.get("column_set") or kw.get("column_list") or ():
                if col not in excluded:
                    spec(col)["required"] = True
            closed = closed or kw.get("exact_match", True) is not False
        elif etype in _FLAGS:
            spec(column)[_FLAGS[etype]] = True
        elif etype == _BETWEEN:
            rule, low, high = spec(column, NUMERIC), kw.get("min_value"), kw.get("max_value")
            if low is not None and low >= rule.get("min_value", -math.inf):
                rule.update(min_value=float(low), strict_min=bool(kw.get("strict_min")))
            if high is not None and high <= rule.get("max_value", math.inf):
                rule.update(max_value=float(high), strict_max=bool(kw.get("strict_max")))
        elif etype == _SETS[0]:
            values = tuple(kw.get("value_set") or ())
            kind = (
                NUMERIC
                if values and all(map(is_number, values))
                else STRING
                if values and all(isinstance(v, str) for v in values)
                else ANY
            )
            rule = spec(column, kind)
            rule["value_set"] = tuple(v for v in rule.get("value_set", values) if v in values)
        elif etype == _SETS[1]:
            rule = spec(column)
            rule["forbidden"] = rule.get("forbidden", ()) + tuple(kw.get("value_set") or ())
        elif etype == _REGEX:
            spec(column, STRING)["regex"] = kw["regex"]
        else:  # of_type / in_type_list: _why_skipped let through numeric or string types only
            spec(column, _type_kind(kw["type_"] if "type_" in kw else kw["type_list"][0]) or ANY)
    rules = []
    for column in sorted(specs):
        rule = specs[column]
        for key in ("value_set", "forbidden"):  # numeric sets are compared as float64
            if rule["kind"] == NUMERIC and rule.get(key) is not None:
                rule[key] = tuple(float(v) for v in rule[key] if is_number(v))
        rules.append(ColumnRule(**rule))
    return InputContract(name, tuple(rules), closed, tuple(skipped), excluded)


def _why_skipped(
    etype: str, kw: dict[str, Any], severity: str, column: str, excluded: tuple[str, ...]
) -> str | None:
    """Why an expectation is not checked online, or None when it is compiled."""
    if severity == "info":
        return "info severity is not enforced"
    if column and column in excluded:
        return "column excluded from the online contract"
    if kw.get("row_condition"):
        return "row_condition is not supported online"
    bounds = (kw.get("min_value"), kw.get("max_value"))
    if etype == _BETWEEN and not all(v is None or is_number(v) for v in bounds):
        return "non-numeric bounds are not supported online"
    if etype in _TYPES:
        types = [kw.get("type_")] if "type_" in kw else list(kw.get("type_list") or [None])
        kinds = {_type_kind(t) for t in types}
        return (
            None
            if len(kinds) == 1 and None not in kinds
            else f"types {types} are not all numeric or all string"
        )
    if etype in (*_TABLE, *_FLAGS, *_SETS, _BETWEEN, _REGEX):
        return None
    return "batch-level expectation: checked by batch scoring only"


def _type_kind(type_name: Any) -> str | None:
    name = str(type_name).lower()
    return NUMERIC if name in _NUMERIC_TYPES else STRING if name in _STRING_TYPES else None


# ----------------------------------------------------------------------------- guards


def build_guarded_model(
    estimator: Any,
    config: Mapping[str, Any],
    *,
    expectations_dir: Path | None = None,
    base_dir: Path | None = None,
    preprocess: Callable[[pd.DataFrame], pd.DataFrame | None] | None = None,
    input_example: pd.DataFrame | None = None,
    cache_dir: Path | None = None,
) -> GuardedModel:
    """Build a :class:`GuardedModel` from a config dict, checked against the estimator.

    Args:
        estimator: the fitted classifier.
        config: the spec's ``guard`` section (module docstring). ``input_contract`` may also be
            a compiled :class:`InputContract`, and ``fallback`` a Python callable.
        expectations_dir: where the input contract's suite lives.
        base_dir: what a relative rules file or ``file.py:function`` is relative to.
        preprocess: contract columns -> model features, run inside the model.
        input_example: a few raw records, checked end to end here and logged with the model.
        cache_dir: a project's cache folder: a suite GX already validated is not validated
            again (:func:`compile_suite`).

    Raises:
        SpecError: an unknown or invalid key, labels not covering the estimator's classes, a
            rules file error, or model features the contract's columns cannot provide.
        ContractError: the suite cannot be loaded or compiled.
    """
    from toolkit.core.errors import SpecError, did_you_mean

    if unknown := sorted(set(config) - _CONFIG_KEYS):
        hint = did_you_mean(unknown[0], _CONFIG_KEYS) or "allowed: " + ", ".join(
            sorted(_CONFIG_KEYS)
        )
        raise SpecError(f"unknown key {unknown[0]!r}", location="guard", hint=hint)
    contract = config.get("input_contract")
    if not isinstance(contract, InputContract):
        spec = {"suite": contract} if isinstance(contract, str) else contract
        if (
            not isinstance(spec, Mapping)
            or not isinstance(spec.get("suite"), str)
            or expectations_dir is None
        ):
            hint = (
                "input_contract: {suite: raw, exclude_columns: [label]}, and pass expectations_dir"
            )
            raise SpecError(
                "needs a suite name and an expectations_dir",
                location="guard.input_contract",
                hint=hint,
            )
        excluded = spec.get("exclude_columns") or ()
        contract = compile_suite(
            spec["suite"], Path(expectations_dir), exclude_columns=excluded, cache_dir=cache_dir
        )
    output = _output_contract(estimator, config.get("output_contract") or {})
    confidence = config.get("confidence", 0.0)
    confidence = (
        confidence.get("min_confidence", 0.0) if isinstance(confidence, Mapping) else confidence
    )
    if not _is_fraction(confidence):
        raise SpecError(
            f"min_confidence must be a number in [0, 1], not {confidence!r}",
            location="guard.confidence.min_confidence",
        )
    top_k = (config.get("explain") or {}).get("top_k", 3)
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0:
        raise SpecError(
            f"top_k must be an integer >= 0, not {top_k!r}", location="guard.explain.top_k"
        )
    fallback = _fallback(config.get("fallback"), Path(base_dir or "."), output, contract)
    guard = GuardedModel(
        estimator,
        contract=contract,
        output=output,
        policy=ConfidencePolicy(float(confidence)),
        fallback=fallback,
        preprocess=preprocess,
        model_name=str(config.get("model_name") or type(estimator).__name__),
        version=config.get("version"),
        top_k=top_k,
        input_example=input_example,
    )
    if guard.feature_names is not None and contract.names:  # fail here, not in production
        example = (
            input_example
            if input_example is not None
            else pd.DataFrame({n: [None] for n in contract.names})
        )
        try:
            guard.features(contract.check(example).frame)
        except KeyError as exc:
            hint = "declare the columns in the suite, or derive them in preprocess"
            message = f"the model's features cannot be derived from the contract's columns: {exc}"
            raise SpecError(message, location="guard.input_contract", hint=hint) from exc
        except Exception:  # e.g. preprocessing an all-null row: unrelated to missing columns
            pass
    return guard


def _is_fraction(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def _output_contract(estimator: Any, spec: Mapping[str, Any]) -> OutputContract:
    from toolkit.core.errors import SpecError

    classes = [str(c) for c in getattr(estimator, "classes_", [])]
    if not classes:
        raise SpecError(
            "the estimator has no classes_: is it a fitted classifier?", location="guard"
        )
    labels = spec.get("labels") or {c: c for c in classes}
    if isinstance(labels, list | tuple):  # in the order of the estimator's classes_
        labels = dict(zip(classes, labels, strict=False))
    mapping = {str(k): str(v) for k, v in labels.items()}
    if missing := [c for c in classes if c not in mapping]:
        raise SpecError(
            f"labels do not cover the model's classes {missing}",
            location="guard.output_contract.labels",
        )
    threshold = spec.get("threshold")
    if threshold is not None and not (_is_fraction(threshold) and 0.0 < threshold < 1.0):
        raise SpecError(
            f"threshold must be a number in (0, 1), not {threshold!r}",
            location="guard.output_contract.threshold",
        )
    return OutputContract(
        tuple((c, mapping[c]) for c in classes), None if threshold is None else float(threshold)
    )


def _fallback(value: Any, base: Path, output: OutputContract, contract: InputContract) -> Any:
    from toolkit.core.errors import SpecError

    if value is None:
        return None
    if callable(value):
        return CallableFallback(value, getattr(value, "__name__", "python fallback"))
    if isinstance(value, Mapping) and set(value) == {"rules"}:
        return load_rules(
            base / value["rules"],
            allowed_labels=output.labels,
            known_columns=contract.names or None,
        )
    if isinstance(value, Mapping) and set(value) == {"python"}:
        return CallableFallback(
            resolve_callable(value["python"], base_dir=base), str(value["python"])
        )
    raise SpecError(
        f"invalid fallback {value!r}",
        location="guard.fallback",
        hint="use {rules: file.yaml} or {python: 'module:function'}",
    )


def load_guard_config(path: Path) -> dict[str, Any]:
    """A guard config from YAML/JSON (optionally under a top-level ``guard`` key) or from a
    Python file defining ``GUARD = {...}`` (which may hold functions and compiled contracts).

    Raises:
        SpecError: unreadable file, invalid syntax, or no mapping found.
    """
    import runpy

    import yaml

    from toolkit.core.errors import SpecError

    path = Path(path)
    try:
        if path.suffix == ".py":
            data = runpy.run_path(str(path), run_name=f"toolkit_guard_config_{path.stem}").get(
                "GUARD"
            )
        else:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML
    except OSError as exc:
        raise SpecError(f"cannot read guard config: {exc.strerror or exc}", path=path) from exc
    except (yaml.YAMLError, SyntaxError) as exc:
        raise SpecError(f"invalid guard config: {exc}", path=path) from exc
    data = data["guard"] if isinstance(data, Mapping) and set(data) == {"guard"} else data
    if not isinstance(data, Mapping):
        raise SpecError(
            "a guard config must be a mapping (in a .py file: GUARD = {...})", path=path
        )
    return dict(data)
