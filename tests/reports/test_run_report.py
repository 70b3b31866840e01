"""The run report: one offline HTML page built from a run folder, secrets masked, links relative."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from toolkit.reports.run_report import SECTIONS, render_run_report, write_run_report

SECRET = "hunter2-Very-Secret"


def _contract(run: Path, step: str, target: str, failures: list[dict[str, Any]]) -> dict:
    ok = not failures
    return {
        "target": target,
        "direction": "outputs",
        "suite": "features",
        "on_fail": "error",
        "path": f"{run}/data/{target}.parquet",
        "success": ok,
        "blocking": not ok,
        "status": "passed" if ok else "failed",
        "statistics": {
            "evaluated_expectations": 104,
            "successful_expectations": 104 - len(failures),
            "unsuccessful_expectations": len(failures),
            "success_percent": 100.0 * (104 - len(failures)) / 104,
        },
        "failures": failures,
        "summary": [],
        "json": f"{run}/contracts/{step}/{step}.{target}.json",
        "html": f"{run}/contracts/{step}/{step}.{target}.html",
    }


FAILURE = {
    "index": 51,
    "type": "expect_column_values_to_be_between",
    "column": "compactness_error",
    "kwargs": {"column": "compactness_error", "min_value": 0.0, "max_value": 0.117},
    "severity": "critical",
    "success": False,
    "observed_value": None,
    "unexpected_count": 1,
    "unexpected_percent": 0.6993006993006993,
    "examples": [0.1354, "<script>alert(1)</script>"],
    "error": None,
    "details": None,
    "notes": "sample range 0.002252 .. 0.1064",
}


def _step(run: Path, name: str, status: str, **extra: Any) -> dict:
    return {
        "name": name,
        "status": status,
        "started_at": "2026-11-25T16:56:38.252+00:00",
        "ended_at": "2026-11-25T16:56:43.448+00:00",
        "duration": 5.196 if status != "skipped" else None,
        "notebook": f"{run}/notebooks/{name}.ipynb" if status != "skipped" else None,
        "metrics": {},
        "outputs": {},
        "error": None,
        "reason": None,
        "contracts": [],
        "attempts": 1 if status != "skipped" else 0,
        "mlflow_run_id": None,
        **extra,
    }


def make_run(tmp_path: Path, *, failing: bool = False) -> Path:
    """A run folder shaped like runs/train/<id>: plan, summary, contracts, notebooks, events."""
    run = tmp_path / "runs" / "train" / "20261125-165630-3e5bf4"
    for sub in ("notebooks", "events", "logs", "data", "contracts/features"):
        (run / sub).mkdir(parents=True)
    for name in ("ingest", "features", "train"):
        (run / "notebooks" / f"{name}.ipynb").write_text("{}")
    (run / "contracts/features/features.train.html").write_text("<html></html>")
    (run / "data/train.parquet").write_bytes(b"PAR1")
    (run / "data/model.bin").write_bytes(b"weights")
    (run / "events/train.jsonl").write_text(
        "".join(
            json.dumps({"kind": "metric", "key": "cv_auc", "value": v, "step": i}) + "\n"
            for i, v in enumerate([0.98, 0.99, 0.97])
        )
    )
    plan = {
        "pipeline": "train",
        "spec": "/work/main/pipelines/train.yaml",
        "spec_hash": "84fe979aea82900fb03b6f0f1be251072ea91ff5f72a44e5ff92e56d78122250",
        "run_dir": str(run),
        "steps": [
            {
                "name": "ingest",
                "upstream": [],
                "parameters": {"source": "sklearn", "db_password": "***"},
            },
            {
                "name": "features",
                "upstream": ["ingest"],
                "parameters": {"seed": 42, "train": f"{run}/data/train.parquet"},
            },
            # A secret-looking name the spec did not declare: the report masks it anyway.
            {
                "name": "train",
                "upstream": ["features"],
                "parameters": {"api_token": SECRET, "C": 1.0},
                "outputs": {"model": f"{run}/data/model.bin"},
            },
        ],
    }
    contract = _contract(run, "features", "train", [FAILURE] if failing else [])
    steps = [
        _step(run, "ingest", "succeeded", metrics={"rows": 569.0}, mlflow_run_id="1f9d33ab"),
        _step(run, "features", "failed" if failing else "succeeded", contracts=[contract]),
        _step(
            run,
            "train",
            "skipped" if failing else "succeeded",
            metrics={} if failing else {"roc_auc": 0.9966, "cv_auc": 0.97},
            reason="upstream step 'features' failed" if failing else None,
        ),
    ]
    if failing:
        steps[1]["error"] = {
            "kind": "contract",
            "message": "contract violated on output 'train' (suite 'features')",
            "details": ["FAIL [critical] expect_column_values_to_be_between (compactness_error)"],
        }
    gates = {
        "passed": not failing,
        "champion_version": "2",
        "gates": [
            {
                "name": "roc_auc",
                "expression": "roc_auc >= champion.roc_auc - 0.01",
                "kind": "champion",
                "passed": True,
                "value": 0.9966,
                "threshold": 0.9866,
                "op": ">=",
                "note": "vs champion v2",
                "error": False,
            },
            {
                "name": "contracts",
                "expression": "contracts",
                "kind": "contracts",
                "passed": not failing,
                "value": None,
                "threshold": None,
                "op": None,
                "note": "",
                "error": False,
            },
        ],
        "summary": [],
    }
    summary = {
        "run_id": run.name,
        "pipeline": "train",
        "status": "failed" if failing else "succeeded",
        "run_dir": str(run),
        "spec": plan["spec"],
        "started_at": "2026-11-25T16:56:36.526+00:00",
        "ended_at": "2026-11-25T16:56:58.966+00:00",
        "duration": 22.439,
        "steps": steps,
        "parameters": {"db_password": "***", "C": 1.0},
        "mlflow_run_id": "6c93fc29f0e4",
        "tracking_uri": "sqlite:////work/main/mlflow.db",
        "gates": gates,
        "registered": None
        if failing
        else {"name": "clf", "version": "3", "model_uri": "models:/clf/3"},
        "exit_code": 3 if failing else 0,
    }
    (run / "plan.json").write_text(json.dumps(plan))
    (run / "summary.json").write_text(json.dumps(summary))
    return run


def _hrefs(page: str) -> list[str]:
    return re.findall(r"""(?:href|src)\s*=\s*["']([^"']*)""", page)


def test_sections_title_and_dag_hooks(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    page = render_run_report(run)
    title = re.search(r"<title>(.*?)</title>", page).group(1)  # type: ignore[union-attr]
    assert "train" in title and run.name in title
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page
    for name in ("ingest", "features", "train"):
        assert f"data-step='{name}' data-status='succeeded'" in page
    assert "<script" not in page
    assert "Registered <strong>clf</strong> version 3" in page
    assert "compared with champion version 2" in page
    assert "<polyline" in page  # the cv_auc folds as a sparkline


def test_failing_run_shows_statuses_and_failing_examples(tmp_path: Path) -> None:
    page = render_run_report(make_run(tmp_path, failing=True))
    assert "data-step='features' data-status='failed'" in page
    assert "data-step='train' data-status='skipped'" in page
    assert "expect_column_values_to_be_between" in page and "compactness_error" in page
    assert "0.1354" in page and "1 (0.699%)" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # examples are escaped
    assert "upstream step &#x27;features&#x27; failed" in page
    assert "Nothing was registered." in page


def test_offline_and_links_stay_inside_the_run_folder(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    page = render_run_report(run)
    links = _hrefs(page)
    assert not [u for u in links if u.startswith(("http:", "https:", "//"))]
    assert "notebooks/features.ipynb" in links
    assert "contracts/features/features.train.html" in links
    assert not [u for u in links if u.startswith("/")]
    # A report written elsewhere links back into the run folder.
    elsewhere = render_run_report(run, base=tmp_path)
    assert f"runs/train/{run.name}/notebooks/train.ipynb" in _hrefs(elsewhere)


def test_secrets_masked_by_name_too(tmp_path: Path) -> None:
    page = render_run_report(make_run(tmp_path))
    assert SECRET not in page
    assert "api_token" in page and "***" in page


def test_mlflow_copy_links_step_runs_not_files(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    page = render_run_report(run, target="mlflow")
    assert not [u for u in _hrefs(page) if not u.startswith("#")]
    assert "in step run <code>1f9d33ab</code>" in page
    linked = render_run_report(run, target="mlflow", step_links={"ingest": "http://h:5000/#/x"})
    assert 'href="http://h:5000/#/x"' in linked


def test_write_records_lineage_and_never_raises(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    path = write_run_report(run, root=tmp_path)
    assert path == run / "report.html"
    lineage = json.loads((run / "lineage.json").read_text())
    assert lineage["data"]["train.output.model"]["size"] == 7
    assert "python" in lineage["environment"]
    page = path.read_text()
    assert "Data fingerprints" in page and lineage["environment"]["python"] in page
    assert "train.output.model" in page
    (run / "plan.json").write_text("{not json")  # a broken folder: a report anyway, no raise
    assert write_run_report(run, root=tmp_path) == run / "report.html"


def test_moved_run_folder_still_links(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    moved = run.rename(tmp_path / "copy")
    assert "notebooks/ingest.ipynb" in _hrefs(render_run_report(moved))


@pytest.mark.parametrize("missing", ["summary.json", "plan.json"])
def test_partial_run_folder_renders(tmp_path: Path, missing: str) -> None:
    run = make_run(tmp_path)
    (run / missing).unlink()
    page = render_run_report(run)
    assert "data-step='ingest'" in page


def test_write_survives_a_rendering_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import toolkit.reports.run_report as module

    def boom(*args: object, **kwargs: object) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(module, "render_run_report", boom)
    assert write_run_report(make_run(tmp_path), root=tmp_path) is None


def test_champion_diff_and_reproduction_sections_keep_the_run_title(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    diff = {"a": "r1", "b": run.name, "changed": True, "notes": [], "commit": ["a1", "b2"]}
    diff |= {k: [] for k in ("parameters", "steps", "metrics", "gates", "contracts", "outputs")}
    diff |= {"environment": [], "notebooks": [], "with_outputs": False, "title": "vs <v2>"}
    (run / "diff_vs_champion.json").write_text(json.dumps(diff))
    (run / "reproduction.json").write_text(json.dumps({"headline": "same <b>", "notes": ["n"]}))
    page = render_run_report(run)
    title = re.search(r"<title>(.*?)</title>", page).group(1)  # type: ignore[union-attr]
    assert run.name in title and "v2" not in title  # the diff's title names its section only
    assert '<section id="changes"><h2>What changed: vs &lt;v2&gt;</h2>' in page
    assert '<div class="rundiff">' in page and '<section id="reproduction">' in page
    assert "same &lt;b&gt;" in page and '<a href="#reproduction">' in page
