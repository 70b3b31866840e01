"""Spec variants of the shipped example, each missing one production control: shared by the
readiness unit tests and the promote refusals (tests/commands/test_readiness_promote.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from toolkit.readiness.controls import Evidence

LOCK = {"file": "uv.lock", "sha256": "ab" * 32}
REPRODUCED = Evidence(LOCK, "identical", "v1 (run r1)", "r1")


def drop_check(word: str) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        spec["gates"]["checks"] = [c for c in spec["gates"]["checks"] if word not in c]

    return mutate


def _drop_contracts_of(step: str) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        for s in spec["steps"]:
            if s["name"] == step:
                s["outputs"] = {k: v["path"] if isinstance(v, dict) else v
                                for k, v in s["outputs"].items()}  # fmt: skip

    return mutate


def set_key(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node[key]
        if value is None:
            node.pop(last)
        else:
            node[last] = value

    return mutate


def _no_output_contract(spec: dict[str, Any]) -> None:
    spec["guard"].pop("output_contract")
    _drop_contracts_of("evaluate")(spec)


#: How to take each control away from the example (spec edits) or from its evidence.
REMOVE: dict[str, Callable[[dict[str, Any]], None] | Evidence] = {
    "input_contract": _drop_contracts_of("ingest"),
    "output_contract": _no_output_contract,
    "evaluation_gate": set_key(
        "gates.checks", ["predict_p95_ms <= 50", "roc_auc >= champion.roc_auc"]
    ),
    "champion_comparison": drop_check("champion"),
    "latency_budget": drop_check("_ms"),
    "review_policy": set_key("release.forbid_self_approval", False),
    "owner": set_key("owner", None),
    "fallback_rules": set_key("guard.fallback", None),
    "monitoring_thresholds": set_key("monitoring", None),
    "alert_hook": set_key("alerts", None),
    "locked_environment": Evidence(None, "identical", "v1 (run r1)", "r1"),
    "reproduced": Evidence(LOCK, "differing", "v1 (run r1)", "r1"),
    "secrets": set_key("parameters.db_password", "hunter2-literal"),
}


def variant(root: Path, name: str, mutate: Callable[[dict[str, Any]], None] | None) -> Path:
    data = yaml.safe_load((root / "pipelines" / "train.yaml").read_text())
    if mutate is not None:
        mutate(data)
    path = root / "pipelines" / f"variant_{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
