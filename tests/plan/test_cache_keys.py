"""Step cache keys and the plan record, without kernels: what changes a key and what doesn't."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import MakeProject

from toolkit.core.lineage import fingerprint
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


FOLDER_INPUT = """
name: folder_input
steps:
  - name: a
    notebook: ../notebooks/writes_folder.ipynb
    inputs: {inp: {path: ../data/seed}}
    outputs: {out: model}
"""


def test_a_folder_input_is_keyed_by_its_content(make_project: MakeProject) -> None:
    spec = make_project(FOLDER_INPUT, notebooks=("writes_folder",))
    seed = spec.parents[1] / "data" / "seed"
    (seed / "sub").mkdir(parents=True)
    (seed / "sub" / "part.txt").write_text("1;")

    def key_input(**overrides: str) -> str | None:
        settings, plan = prepare(RunRequest(spec, overrides=overrides), run_id="r1")
        return preview(step_cache(settings, plan), plan)["a"].parts["inputs"]["inp"]

    hashed = key_input()
    assert hashed == fingerprint(seed)["sha256"]  # the same folder hash as lineage's
    (seed / "sub" / "part.txt").write_text("2;")
    assert key_input() not in (hashed, None)
    # -p inp=FOLDER swaps in another folder, hashed the same way.
    other = spec.parents[1] / "other"
    shutil.copytree(seed, other)
    assert key_input(inp=str(other)) == key_input()
