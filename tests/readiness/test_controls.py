"""Readiness on spec variants of the shipped example: no kernel, no store. The example meets
every control; removing any one of them makes it missing, and required at `production`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import copy_example
from support.readiness import LOCK, REMOVE, REPRODUCED, drop_check, set_key, variant

from toolkit.core.errors import ExitCode, SpecError
from toolkit.core.settings import DEFAULT_SECRET_PATTERNS
from toolkit.readiness.controls import MISSING, NOT_APPLICABLE, PASSED, Evidence, evaluate
from toolkit.specs.load import load_spec
from toolkit.specs.readiness_models import CONTROL_NAMES


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_example(tmp_path_factory.mktemp("readiness") / "example")


def test_every_control_is_covered_by_a_removal() -> None:
    assert sorted(REMOVE) == sorted(CONTROL_NAMES)


def test_the_example_is_production_ready(example: Path) -> None:
    report = evaluate(
        load_spec(variant(example, "full", None)), REPRODUCED, DEFAULT_SECRET_PATTERNS
    )
    assert report.level == "production"
    assert {c.name: c.status for c in report.controls} == dict.fromkeys(CONTROL_NAMES, PASSED)
    assert report.ready and "ready (13 passed" in report.summary_line()


@pytest.mark.parametrize("control", CONTROL_NAMES)
def test_removing_a_control_makes_it_missing_and_required(example: Path, control: str) -> None:
    removal = REMOVE[control]
    evidence = removal if isinstance(removal, Evidence) else REPRODUCED
    mutate = None if isinstance(removal, Evidence) else removal
    report = evaluate(
        load_spec(variant(example, control, mutate)), evidence, DEFAULT_SECRET_PATTERNS
    )
    missing = [c for c in report.controls if c.status != PASSED]
    assert [c.name for c in missing] == [control]
    assert missing[0].status == MISSING and missing[0].required and missing[0].fix
    assert not report.ready and control in report.summary_line()


def test_an_owner_without_contact_is_missing_with_the_fix(example: Path) -> None:
    path = variant(example, "no_contact", set_key("owner", {"team": "diagnostics-ml"}))
    owner = next(c for c in evaluate(load_spec(path), REPRODUCED, ()).controls if c.name == "owner")
    assert owner.status == MISSING and "no contact" in owner.detail
    assert owner.fix == "owner: {team: diagnostics-ml, contact: EMAIL_OR_CHANNEL}"


@pytest.mark.parametrize("section", ["waive", "require"])
def test_an_unknown_control_name_is_a_spec_error_with_a_suggestion(
    example: Path, section: str
) -> None:
    typo = {"ownr": "x"} if section == "waive" else ["ownr"]
    path = variant(example, f"typo_{section}", set_key(f"readiness.{section}", typo))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.exit_code == ExitCode.USAGE
    assert "unknown readiness control 'ownr'" in str(caught.value)
    assert "owner" in str(caught.value)


def test_a_waived_control_is_not_applicable_with_its_reason(example: Path) -> None:
    def mutate(spec: dict[str, Any]) -> None:
        drop_check("_ms")(spec)
        spec["readiness"]["waive"] = {"latency_budget": "scored in nightly batches only"}

    report = evaluate(load_spec(variant(example, "waived", mutate)), REPRODUCED, ())
    latency = next(c for c in report.controls if c.name == "latency_budget")
    assert (latency.status, latency.required) == (NOT_APPLICABLE, False)
    assert "nightly batches" in latency.detail and report.ready


def test_draft_requires_nothing_and_staging_a_subset(example: Path) -> None:
    for level, ready in (("draft", True), ("staging", True), ("production", False)):
        path = variant(example, f"level_{level}", set_key("readiness.level", level))
        report = evaluate(load_spec(path), Evidence(LOCK), ())
        assert report.ready is ready, level  # never reproduced: only production requires it


def test_secrets_typed_into_a_notebook_are_found(example: Path) -> None:
    nb_path = example / "notebooks" / "features.ipynb"
    original = nb_path.read_text()
    nb = json.loads(original)
    nb["cells"].append({"cell_type": "code", "metadata": {}, "execution_count": None,
                        "outputs": [], "source": ["API_TOKEN = 'tok-123456789'\n"]})  # fmt: skip
    nb_path.write_text(json.dumps(nb))
    try:
        report = evaluate(
            load_spec(variant(example, "nb", None)), REPRODUCED, DEFAULT_SECRET_PATTERNS
        )
    finally:
        nb_path.write_text(original)
    secrets = next(c for c in report.controls if c.name == "secrets")
    assert secrets.status == MISSING and "'API_TOKEN'" in secrets.detail
    assert "features.ipynb" in secrets.detail


def test_a_pipeline_without_a_model_is_not_scored(example: Path) -> None:
    report = evaluate(load_spec(example / "pipelines" / "score.yaml"), REPRODUCED, ())
    assert not report.applicable and report.controls == ()
    assert "registers no model" in report.summary_line()
