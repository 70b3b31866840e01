"""Step cache keys and the plan record, without kernels: what changes a key and what doesn't."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import MakeProject

from toolkit.execute.cache import notebook_source_hash, preview
from toolkit.execute.orchestrator import RunRequest, prepare, step_cache
from toolkit.execute.run_record import plan_record

SPEC = """
name: keys
steps:
  - {name: a, notebook: ../notebooks/leaks_secret.ipynb, parameters: {db_password: "s3cret-value"}, outputs: {out: a.txt}}
"""


def test_notebook_hash_ignores_outputs_and_counts_but_not_code(tmp_path: Path) -> None:
    cell = {"cell_type": "code", "metadata": {}, "source": ["x = 1\n", "print(x)"]}
    nb = {"cells": [dict(cell, outputs=[], execution_count=None)], "metadata": {}}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(nb))
    base = notebook_source_hash(path)
    nb["cells"][0].update(outputs=[{"output_type": "stream", "text": "1"}], execution_count=3)
    path.write_text(json.dumps(nb))
    assert notebook_source_hash(path) == base
    nb["cells"][0]["source"] = "x = 2\nprint(x)"
    path.write_text(json.dumps(nb))
    assert notebook_source_hash(path) != base
    nb["cells"][0]["source"] = "x = 1\nprint(x)"
    nb["cells"][0]["metadata"]["tags"] = ["parameters"]  # tags decide what papermill injects
    path.write_text(json.dumps(nb))
    assert notebook_source_hash(path) != base


def test_a_never_run_step_is_planned_to_run_and_secrets_stay_masked(
    make_project: MakeProject,
) -> None:
    spec = make_project(SPEC, notebooks=("leaks_secret",))
    settings, plan = prepare(RunRequest(spec), run_id="r1")
    decisions = preview(step_cache(settings, plan), plan)
    assert decisions["a"].reason == "never ran" and not decisions["a"].hit
    # The key never stores a secret in clear: only digests of the parameters.
    assert "s3cret-value" not in json.dumps(decisions["a"].parts)
    # plan.json masks names that look secret even when the spec doesn't declare them secret.
    record = plan_record(plan, settings)
    assert record["steps"][0]["parameters"]["db_password"] != "s3cret-value"
    assert record["steps"][0]["parameters"]["out"].endswith("a.txt")
