"""The readiness record a version carries from registration: no kernel, no store. It keeps what
the spec required and lacked, reads back exactly, scores the reproduction on today's evidence,
and a damaged one is an error, never "nothing required"."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import copy_example
from support.readiness import REMOVE, REPRODUCED, set_key, variant

from toolkit.core.settings import DEFAULT_SECRET_PATTERNS
from toolkit.readiness.controls import NOT_APPLICABLE, PASSED, Evidence, evaluate
from toolkit.readiness.record import ReadinessRecord, at_registration
from toolkit.specs.load import load_spec
from toolkit.specs.readiness_models import CONTROL_NAMES


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_example(tmp_path_factory.mktemp("record") / "example")
    (root / "uv.lock").write_text("# the lock\n")
    return root


def record_of(
    root: Path, name: str, mutate: Callable[[dict[str, Any]], None] | None = None
) -> ReadinessRecord:
    spec = load_spec(variant(root, name, mutate))
    source = f"pipelines/variant_{name}.yaml"
    return at_registration(spec, root, DEFAULT_SECRET_PATTERNS, source=source, run="r1")


def test_the_record_reads_back_as_written(example: Path) -> None:
    record = record_of(example, "ownerless", REMOVE["owner"])
    assert record.level == "production" and set(record.required) == set(CONTROL_NAMES)
    # Not reproduced at registration (scored again at promote), and no owner.
    assert [c.name for c in record.missing] == ["owner", "reproduced"]
    assert record.spec == "pipelines/variant_ownerless.yaml" and len(record.spec_sha256) == 64
    assert ReadinessRecord.from_json(record.to_json()) == record


def test_without_its_spec_the_record_stands_in_and_the_reproduction_is_read_now(
    example: Path,
) -> None:
    record = record_of(example, "recorded", REMOVE["owner"])
    report = record.report(REPRODUCED)
    assert [c.name for c in report.missing_required] == ["owner"]
    assert "(at registration)" in report.missing_required[0].detail
    assert "recorded at registration" in report.spec
    never = record.report(Evidence(None, None, "v3 (run r1)", "r1"))
    assert [c.name for c in never.missing_required] == ["owner", "reproduced"]
    # The lock is the one at registration: its absence now does not count against it.
    assert next(c for c in never.controls if c.name == "locked_environment").status == PASSED


def test_a_waived_control_stays_waived_and_a_floor_outlasts_a_lower_level(example: Path) -> None:
    waive = set_key("readiness.waive", {"alert_hook": "scored by hand"})
    record = record_of(example, "waived", waive)
    report = record.report(REPRODUCED)
    assert next(c for c in report.controls if c.name == "alert_hook").status == NOT_APPLICABLE
    assert report.ready
    # The spec edited down to draft and without an owner: the recorded controls still apply.
    down = variant(example, "down", set_key("owner", None))
    data = yaml.safe_load(down.read_text())
    data["readiness"] = {"level": "draft"}
    down.write_text(yaml.safe_dump(data, sort_keys=False))
    spec = load_spec(down)
    assert evaluate(spec, REPRODUCED, ()).ready
    held = evaluate(spec, REPRODUCED, (), record_of(example, "full").required)
    assert [c.name for c in held.missing_required] == ["owner"]


@pytest.mark.parametrize(
    "damage",
    [
        "{not json",
        "[]",
        json.dumps({"format": 1, "level": "none"}),
        "",
    ],
)
def test_a_damaged_record_is_an_error(damage: str) -> None:
    with pytest.raises(ValueError):
        ReadinessRecord.from_json(damage)


def test_a_record_naming_an_unknown_control_is_an_error(example: Path) -> None:
    data = json.loads(record_of(example, "full").to_json())
    data["required"] = ["owner", "ownr"]
    with pytest.raises(ValueError, match="unknown controls"):
        ReadinessRecord.from_json(json.dumps(data))
