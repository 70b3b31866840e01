"""``toolkit diff`` on two demo-like training runs that differ in ``C``, and the candidate's run
report showing its diff against the champion."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from conftest import MakeProject

from toolkit.cli.main import main
from toolkit.core.settings import load_settings
from toolkit.release.registry import Registry

TRAIN = """\
# %%
import joblib
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from toolkit import step

# %% tags=["parameters"]
C = 1.0
model = "model.joblib"

# %%
X, y = make_classification(n_samples=300, n_features=8, flip_y=0.2, random_state=0)
clf = LogisticRegression(C=C, max_iter=500).fit(X, y)
joblib.dump(clf, model)
step.log_metrics({"accuracy": clf.score(X, y), "C_used": C})
"""

SPEC = """
name: demo
steps:
  - name: train
    notebook: ../notebooks/train.py
    parameters: {C: 1.0}
    outputs: {model: model.joblib}
model: {name: demo_clf, step: train, output: model}
gates:
  step: train
  checks: ["accuracy >= 0.5"]
"""


@pytest.mark.slow
def test_diff_of_two_runs_and_the_candidates_report(
    make_project: MakeProject, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_project(SPEC, notebooks=(), store=True)
    (spec.parents[1] / "notebooks" / "train.py").write_text(TRAIN)
    monkeypatch.chdir(spec.parents[1])

    def run(*extra: str) -> dict:
        code = main(["run", str(spec), "--json", "--quiet", *extra])
        out, err = capsys.readouterr()
        assert code == 0, err
        return json.loads(out)

    first = run()
    assert first["registered"]["version"] == "1"
    uri = load_settings(spec).tracking_uri
    # Approved and promoted by whoever runs the test, under the policy recorded on the model at
    # registration (a policy passed here may only tighten it, so none is).
    registry = Registry(uri)
    registry.review("demo_clf", "1", decision="approved", note="test")
    registry.promote("demo_clf", "1")
    second = run("-p", "C=0.001")
    assert second["registered"]["version"] == "2"

    assert main(["diff", first["run_id"], second["run_id"]]) == 0
    text = capsys.readouterr().out
    assert "train.C: 1.0 -> 0.001" in text
    assert "train.model" not in text  # a path inside each run's own folder is no change
    assert "train.C_used: 1 -> 0.001 (-0.999)" in text
    assert "train.accuracy:" in text
    assert "notebook train (sources, nbdime):" in text and "+  C = 0.001" in text
    assert "/id" not in text  # execution-drawn cell ids are not changes
    assert '+  model = "<run>/data/model.joblib"' not in text  # same relative path: no change

    assert main(["diff", first["run_id"], second["run_id"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["parameters"] == [{"key": "train.C", "a": "1.0", "b": "0.001"}]
    c_used = next(m for m in data["metrics"] if m["key"] == "C_used")
    assert c_used["delta"] == pytest.approx(-0.999)
    assert any(o["field"] == "sha256" and o["output"] == "output.model" for o in data["outputs"])
    assert data["commit"] == [None, None] and data["changed"] is True
    assert [nb["changed"] for nb in data["notebooks"]] == [True]

    # The candidate (v2) was diffed against the champion's (v1) training run.
    run_dir = Path(second["run_dir"])
    saved = json.loads((run_dir / "diff_vs_champion.json").read_text())
    assert saved["a"] == first["run_id"] and saved["b"] == second["run_id"]
    page = (run_dir / "report.html").read_text()
    assert "What changed: demo_clf: candidate v2 vs champion v1" in page
    assert "C = 0.001" in page and "<script" not in page
    client = mlflow.MlflowClient(tracking_uri=uri)
    logged = {a.path for a in client.list_artifacts(second["mlflow_run_id"])}
    assert "diff_vs_champion.html" in logged
    # The first release had no champion to be compared with.
    assert not (Path(first["run_dir"]) / "diff_vs_champion.json").exists()
