"""The shipped example project, end to end, as a user runs it: a fresh copy and the real CLI
(its ``main``, in this process: see ``support.cli``; the second reviewer is a real process).

One module-scoped project walks the README tour: train, reproduce, review (as a second person:
the example forbids self-approval), promote, then a worse model that the champion gate stops.
The project is a git repository with the dependency lock, as a clone is: the example is held to
`readiness: production`, which needs both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from conftest import REPO, copy_example
from support.browser import chromium
from support.cli import run_here

from toolkit.core.settings import load_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_example(tmp_path_factory.mktemp("example") / "example", store=True)
    # The example's 200 ms latency budgets are wall-clock measurements: on a 2-core machine running
    # the suite's other workers they fail for reasons that have nothing to do with the tour. The
    # copy gets a budget no machine misses; the latency gate itself is tested in tests/gates.
    for spec in ("train.yaml", "score.yaml"):
        path = root / "pipelines" / spec
        text = path.read_text()
        relaxed = text.replace("latency_p95_ms <= 200", "latency_p95_ms <= 60000")
        relaxed = relaxed.replace("predict_p95_ms <= 200", "predict_p95_ms <= 60000")
        assert relaxed != text, f"the example's latency gate moved: update {__file__}"
        path.write_text(relaxed)
    for name in ("uv.lock", ".gitignore"):
        shutil.copy(REPO / name, root / name)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the example"]):
        subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root, check=True
        )
    return root


def toolkit(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_here(project, *args)


def test_1_training_pipeline_runs_end_to_end(project: Path) -> None:
    proc = toolkit(project, "run", "pipelines/train.yaml", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert [s["name"] for s in summary["steps"]] == ["ingest", "features", "train", "evaluate"]
    assert {s["status"] for s in summary["steps"]} == {"succeeded"}
    assert summary["steps"][3]["metrics"]["roc_auc"] > 0.95
    assert Path(summary["run_dir"], "data", "predictions.parquet").exists()
    # Every contract of the example passed, including the predictions' row count.
    contracts = [c for s in summary["steps"] for c in s["contracts"]]
    assert {c["suite"] for c in contracts} == {"raw_measurements", "features", "predictions"}
    assert all(c["success"] for c in contracts)
    # MLflow holds the pipeline run and its four step runs.
    uri = load_settings(project).tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("train")
    runs = client.search_runs([exp.experiment_id])
    children = [
        r for r in runs if r.data.tags.get("mlflow.parentRunId") == summary["mlflow_run_id"]
    ]
    assert len(children) == 4
    assert all(r.info.status == "FINISHED" for r in runs)
    # Gates passed and the model became a candidate.
    assert summary["gates"]["passed"] is True
    assert summary["registered"]["version"] == "1"
    # The run report's readiness line: everything but the reproduction, which comes next.
    assert summary["readiness"].startswith("readiness production: NOT ready (12 passed")
    assert summary["readiness"].endswith("required but missing: reproduced")
    assert client.get_model_version_by_alias("breast_cancer_clf", "candidate").version in (1, "1")
    # The spec's release policy is now bound to the model, with the spec's path and hash.
    tags = client.get_registered_model("breast_cancer_clf").tags
    assert tags["toolkit.policy.source"] == "pipelines/train.yaml"
    assert json.loads(tags["toolkit.policy"])["min_approvals"] == 1
    # And the version carries the readiness it was registered at (promote's floor).
    record = json.loads(
        client.get_model_version("breast_cancer_clf", "1").tags["toolkit.readiness"]
    )
    assert (record["level"], record["spec"]) == ("production", "pipelines/train.yaml")
    assert [m["name"] for m in record["missing"]] == ["reproduced"]


def test_2_review_promote_and_load_the_champion(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not reproduced yet: `production` readiness refuses it, whatever the reviews say.
    refused = toolkit(project, "promote", "breast_cancer_clf", "candidate")
    assert refused.returncode == 4, refused.stderr
    assert "lacks required readiness controls: reproduced (v1" in refused.stderr
    run_id = json.loads(toolkit(project, "runs", "list", "train", "--json").stdout)[0]
    reproduced = toolkit(project, "reproduce", run_id["toolkit_run_id"])
    assert reproduced.returncode in (0, 7), reproduced.stdout + reproduced.stderr[-2000:]
    ready = toolkit(project, "check", "--readiness", "pipelines/train.yaml")
    assert ready.returncode == 0 and "production: ready" in ready.stdout, ready.stdout
    assert (
        toolkit(project, "promote", "breast_cancer_clf", "candidate").returncode == 2
    )  # unreviewed
    mine = toolkit(project, "review", "approve", "breast_cancer_clf", "candidate")
    assert mine.returncode == 2 and "self-approval is forbidden" in mine.stderr
    # The second person `make demo` uses: an account on an MLflow server with authentication.
    approve = subprocess.run(
        [sys.executable, "-m", "toolkit.demo.second_reviewer", "reviewer",
         "breast_cancer_clf", "--", sys.executable, "-m", "toolkit", "review", "approve",
         "breast_cancer_clf", "candidate", "--note", "checked the notebooks"],
        cwd=project, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert approve.returncode == 0, approve.stdout + approve.stderr[-3000:]
    # The reproduction registered its own, identical version (v2, now the candidate), whose
    # run records the verdict too: that is the one reviewed and promoted, as `make demo` does.
    assert "approved breast_cancer_clf v2 by reviewer" in approve.stdout
    assert toolkit(project, "promote", "breast_cancer_clf", "candidate").returncode == 0
    # The environment, not mlflow.set_tracking_uri: global state would leak into other tests.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", load_settings(project).tracking_uri)
    model = mlflow.pyfunc.load_model("models:/breast_cancer_clf@champion")
    test = pd.read_parquet(next(project.glob("runs/train/*/data/test.parquet")))
    features = test.drop(columns=["patient_id", "label"])
    assert len(model.predict(features)) == len(test)


@pytest.mark.browser
def test_2b_the_champions_model_card_opens_offline(project: Path, tmp_path: Path) -> None:
    uri = load_settings(project).tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("breast_cancer_clf", "champion")
    card_uri = champion.tags["toolkit.card"]  # the latest card, logged when it was promoted
    assert card_uri.endswith("-promoted.html")
    run_id, _, artifact = card_uri.removeprefix("runs:/").partition("/")
    page = Path(client.download_artifacts(run_id, artifact, str(tmp_path)))
    with chromium() as browser:
        browser.page.goto(page.as_uri())
        titles = browser.page.locator("section h2").all_inner_texts()
        owner = browser.page.locator("#identity").inner_text()
        review = browser.page.locator("#review").inner_text()
        browser.screenshot("model-card")
    assert titles == ["Identity", "Training data", "Evaluation", "Guard", "Review",
                      "Production so far", "Lineage"]  # fmt: skip
    assert "diagnostics-ml@example.com" in owner and "reviewer" in review
    assert browser.requests and browser.external_requests() == []


def test_3_a_worse_model_fails_the_champion_gate(project: Path) -> None:
    proc = toolkit(project, "run", "pipelines/train.yaml", "-p", "train.C=0.001", "--json")
    assert proc.returncode == 4, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    failed = [g for g in summary["gates"]["gates"] if not g["passed"]]
    assert [g["expression"] for g in failed] == ["recall >= champion.recall - 0.02"]
    assert summary["registered"] is None
    uri = load_settings(project).tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name='breast_cancer_clf'")
    assert sorted(int(v.version) for v in versions) == [1, 2]  # trained, reproduced
    history = json.loads(toolkit(project, "releases", "breast_cancer_clf", "--json").stdout)
    assert [e["action"] for e in history] == ["registered", "registered", "approved", "promoted"]


def test_4_batch_scoring_accounts_for_every_row(project: Path) -> None:
    clean = toolkit(project, "run", "pipelines/score.yaml", "--json")
    assert clean.returncode == 0, clean.stderr[-2000:]
    messy = toolkit(
        project, "run", "pipelines/score.yaml", "-p", "batch=pipelines/batches/messy.csv", "--json"
    )
    assert messy.returncode == 0, messy.stderr[-2000:]  # invalid rows are quarantined, not fatal
    summary = json.loads(messy.stdout)
    metrics = summary["steps"][0]["metrics"]
    rows = len(pd.read_csv(project / "pipelines" / "batches" / "messy.csv"))
    assert metrics["scored_rows"] + metrics["fallback_rows"] + metrics["rejected_rows"] == rows
    assert metrics["rejected_rows"] >= 3
    data = Path(summary["run_dir"], "data")
    quarantine = pd.read_parquet(data / "quarantine.parquet")
    assert len(quarantine) == metrics["rejected_rows"] and quarantine["reason"].str.len().min() > 0
    assert len(pd.read_parquet(data / "decisions.parquet")) == rows
    warned = summary["steps"][0]["contracts"][0]
    assert warned["suite"] == "production_records" and warned["success"] is False


def test_5_monitoring_alerts_on_the_shifted_batch(project: Path) -> None:
    import http.server
    import threading

    received: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/alert"
    try:
        batches = project / "pipelines" / "batches"
        messy = toolkit(
            project, "monitor", "breast_cancer_clf", "--batch", str(batches / "messy.csv")
        )
        assert messy.returncode == 5 and "rejected-row rate" in messy.stderr  # no webhook given
        # The first scoring run of test_4 scored the clean batch: monitor its output as it is.
        scored = sorted(project.glob("runs/score/*/data/decisions.parquet"))[0]
        for batch in (batches / "clean.csv", scored):
            ok = toolkit(
                project, "monitor", "breast_cancer_clf", "--batch", str(batch), "--webhook", url
            )
            assert ok.returncode == 0, ok.stdout + ok.stderr[-2000:]
        shifted = toolkit(
            project,
            "monitor",
            "breast_cancer_clf",
            "--batch",
            str(batches / "shifted.csv"),
            "--webhook",
            url,
            "--json",
        )
        assert shifted.returncode == 5, shifted.stderr[-2000:]
    finally:
        server.shutdown()
    assert len(received) == 1
    alert = received[0]
    assert alert["model"] == "breast_cancer_clf" and alert["batch"] == "shifted.csv"
    assert Path(json.loads(shifted.stdout)["report"]).exists()
    uri = load_settings(project).tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("monitor-breast_cancer_clf")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 4
    history = client.get_metric_history(runs[0].info.run_id, "drift.psi_max")
    assert history and history[0].step > 1_000_000_000  # the batch time is the step
