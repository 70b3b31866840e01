"""A suite whose exact bytes GX validated once is loaded again without importing GX.

Importing GX costs seconds of CPU. A run validates every suite it attaches (and its guard's)
before the first step; ``toolkit plan``, a cached run and the guard compiled at registration
then read the file without GX. Any edit brings GX back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import run_here

from toolkit.contracts.suites import load_suite_once
from toolkit.core.errors import ContractError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "contracts"

# In a fresh process: load the suite and compile it into a guard's input contract, then say
# how many expectations it has and whether GX was imported to get there.
PROBE = """
import sys
from pathlib import Path
from toolkit.contracts.suites import load_suite_once
from toolkit.guard.build import compile_suite
exp, cache = Path(sys.argv[1]), Path(sys.argv[2])
suite = load_suite_once("orders", exp, cache)
contract = compile_suite("orders", exp, cache_dir=cache)
print(len(suite), sorted(contract.names), "great_expectations" in sys.modules)
"""


def _probe(exp: Path, cache: Path) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(exp), str(cache)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip()


def test_validated_once_then_read_without_gx_until_edited(tmp_path: Path) -> None:
    exp, cache = tmp_path / "expectations", tmp_path / "cache"
    exp.mkdir()
    shutil.copy(FIXTURES / "orders.json", exp)
    first = load_suite_once("orders", exp, cache)  # GX validates it, the marker is written
    assert list((cache / "suites").glob("*.ok"))
    columns = sorted({e["kwargs"]["column"] for e in first.expectations if "column" in e["kwargs"]})
    shown = _probe(exp, cache)
    assert shown.endswith("False"), shown
    assert shown.startswith(f"{len(first)} ")
    assert all(repr(c) in shown for c in columns)

    data = json.loads((exp / "orders.json").read_text())
    data["expectations"].append(
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}}
    )
    (exp / "orders.json").write_text(json.dumps(data))
    shown = _probe(exp, cache)  # new bytes: GX validates them again
    assert shown.startswith(f"{len(first) + 1} ") and shown.endswith("True"), shown


def test_a_bad_edit_after_validation_is_still_refused(tmp_path: Path) -> None:
    exp, cache = tmp_path / "expectations", tmp_path / "cache"
    exp.mkdir()
    shutil.copy(FIXTURES / "orders.json", exp)
    load_suite_once("orders", exp, cache)
    data = json.loads((exp / "orders.json").read_text())
    data["expectations"][0]["kwargs"]["mostly"] = "most"
    (exp / "orders.json").write_text(json.dumps(data))
    with pytest.raises(ContractError, match="mostly"):
        load_suite_once("orders", exp, cache)


def test_a_typo_in_the_guards_suite_fails_before_any_step(tmp_path: Path) -> None:
    project = tmp_path / "project"
    for item in ("notebooks", "pipelines", "expectations"):
        shutil.copytree(REPO / item, project / item)
    shutil.copy(REPO / "pyproject.toml", project)
    spec = project / "pipelines" / "train.yaml"
    text = spec.read_text()
    assert "suite: raw_measurements," in text
    spec.write_text(text.replace("suite: raw_measurements,", "suite: raw_measurment,"))
    result = run_here(project, "plan", "pipelines/train.yaml")
    assert result.returncode == 2  # a spec error, as documented
    said = result.stdout + result.stderr
    assert "guard.input_contract: unknown contract suite 'raw_measurment'" in said, said
    assert "raw_measurements" in said  # the did-you-mean
    assert not (project / "runs").exists()
