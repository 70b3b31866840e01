"""The guarded model through real MLflow: logged as a pyfunc to a SQLite store, loaded back by
alias, loaded without the toolkit installed, and served by ``mlflow models serve``.

The input contract is the example's raw-data suite as ``toolkit contracts new`` drafts it, loaded
strictly from ``expectations/`` (so this imports Great Expectations once, at build time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support.data import add_example_features, breast_cancer_raw
from support.servers import model_server
from support.template_store import migrated_store

from toolkit.contracts.draft import draft_suite
from toolkit.guard.batch import read_batch
from toolkit.guard.build import build_guarded_model
from toolkit.guard.model import GuardedModel
from toolkit.release.guarded import load_guarded_model, log_guarded_model

MODEL_NAME = "breast_cancer_guarded"
RULES = """\
# Illustrative only, not medical advice: classic splits of the Wisconsin data.
rules:
  - {name: many_concave_points, when: worst_concave_points > 0.142, label: malignant}
  - {name: large_area, when: worst_area > 880, label: malignant}
default: {label: benign, reason: no suspicious measurement}
"""
_BLOCK_TOOLKIT = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "toolkit":
            raise ModuleNotFoundError(f"toolkit is not installed here: {name}")
sys.meta_path.insert(0, Block())
import mlflow.pyfunc, pandas as pd
out = mlflow.pyfunc.load_model(sys.argv[1]).predict(pd.DataFrame(json.loads(sys.argv[2])))
print(json.dumps({"paths": out["path"].tolist(), "toolkit": [m for m in sys.modules if m.startswith("toolkit")]}))
"""


add_features = add_example_features  # run inside the logged model


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return breast_cancer_raw()


@pytest.fixture(scope="module")
def guard(raw: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> GuardedModel:
    project = tmp_path_factory.mktemp("project")
    (project / "expectations").mkdir()
    suite = draft_suite(raw, "raw_measurements")
    del suite["meta"]["review"]
    (project / "expectations" / "raw_measurements.json").write_text(json.dumps(suite))
    (project / "fallback_rules.yaml").write_text(RULES)
    measures = [c for c in raw.columns if c not in ("patient_id", "diagnosis")]
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    estimator.fit(add_features(raw[measures].copy()), (raw["diagnosis"] == "malignant").astype(int))
    config = {
        "model_name": MODEL_NAME,
        "input_contract": {"suite": "raw_measurements", "exclude_columns": ["diagnosis"]},
        "output_contract": {"labels": {0: "benign", 1: "malignant"}},
        "confidence": {"min_confidence": 0.9},
        "fallback": {"rules": "fallback_rules.yaml"},
    }
    return build_guarded_model(
        estimator,
        config,
        expectations_dir=project / "expectations",
        base_dir=project,
        preprocess=add_features,
        input_example=raw.head(3),
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    root = tmp_path_factory.mktemp("mlflow")
    return migrated_store(root / "mlflow.db"), root / "artifacts"


@pytest.fixture(scope="module")
def logged(guard: GuardedModel, store: tuple[str, Path]) -> str:
    """The guard logged to a run and registered with alias ``champion``; returns its URI."""
    uri, artifacts = store
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("guard", artifact_location=str(artifacts))
    run = client.create_run(experiment)
    model_uri = log_guarded_model(
        guard,
        tracking_uri=uri,
        run_id=run.info.run_id,
        registered_model_name=MODEL_NAME,
        # by value: the server can import neither this test module nor tests/support
        code_modules=[sys.modules[__name__], sys.modules[add_example_features.__module__]],
    )
    client.set_terminated(run.info.run_id)
    versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    assert len(versions) == 1
    client.set_registered_model_alias(MODEL_NAME, "champion", versions[0].version)
    return model_uri


@pytest.fixture
def global_uri(store: tuple[str, Path]) -> Iterator[str]:
    """``mlflow.pyfunc.load_model("models:/...")`` reads the global tracking URI."""
    mlflow.set_tracking_uri(store[0])
    yield store[0]
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def requests(raw: pd.DataFrame, guard: GuardedModel) -> dict[str, list[dict[str, Any]]]:
    """Raw records, as JSON clients send them: valid, invalid and borderline ones."""
    scored = guard.predict(raw)
    columns = [c for c in raw.columns if c != "diagnosis"]

    def records(rows: pd.DataFrame) -> list[dict[str, Any]]:
        return json.loads(rows[columns].to_json(orient="records"))

    invalid = records(raw.head(3))
    invalid[0]["mean_radius"] = None
    invalid[1]["worst_area"] = "a lot"
    invalid[2]["mean_texture"] = -4.0
    return {
        "valid": records(raw[(scored["path"] == "model").to_numpy()].head(3)),
        "invalid": invalid,
        "unsure": records(raw[(scored["path"] == "fallback").to_numpy()].head(3)),
    }


def _check_decisions(out: pd.DataFrame, kinds: list[str]) -> None:
    assert out["path"].tolist() == kinds
    for kind, (_, row) in zip(kinds, out.iterrows(), strict=True):
        assert row["model"] == MODEL_NAME and len(row["input_hash"]) == 16
        if kind == "model":
            assert row["prediction"] in ("benign", "malignant") and pd.isna(row["reason"])
            assert len(json.loads(row["top_features"])) == 3
        elif kind == "fallback":
            assert row["reason"].startswith("confidence below 0.9; rule ")
            assert row["prediction"] in ("benign", "malignant")
        else:
            assert pd.isna(row["prediction"]) and pd.isna(row["probability"]) and row["reason"]


def test_logged_model_loads_by_alias_and_predicts(
    logged: str, global_uri: str, requests: dict[str, list[dict[str, Any]]], guard: GuardedModel
) -> None:
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    batch = pd.DataFrame(requests["valid"] + requests["invalid"] + requests["unsure"])
    out = model.predict(batch)
    _check_decisions(out, ["model"] * 3 + ["rejected"] * 3 + ["fallback"] * 3)
    assert out["probability"].iloc[3] is None  # None, not NaN: the scoring server writes null
    reasons = out["reason"].iloc[3:6].tolist()
    assert reasons[0] == "mean_radius: is null"
    assert reasons[1] == "worst_area: 'a lot' is a str, expected a number"
    assert reasons[2].startswith("mean_texture: -4 is below the minimum")
    assert (out["version"] == guard.version).all()
    direct = guard.predict(batch)  # the logged model behaves as the one in memory
    assert out["input_hash"].tolist() == direct["input_hash"].tolist()
    assert out["top_features"].iloc[:3].tolist() == direct["top_features"].iloc[:3].tolist()
    meta = model.metadata.metadata["toolkit_guard"]
    assert meta["input_contract"]["suite"] == "raw_measurements" and meta["min_confidence"] == 0.9
    skipped = {(s["type"], s["column"]) for s in meta["input_contract"]["skipped"]}
    assert skipped == {
        ("expect_table_row_count_to_be_between", ""),
        ("expect_column_values_to_be_of_type", "diagnosis"),
        ("expect_column_values_to_not_be_null", "diagnosis"),
        ("expect_column_values_to_be_in_set", "diagnosis"),
    }
    example = model.input_example
    assert (
        example is not None
        and "diagnosis" not in example.columns
        and "patient_id" in example.columns
    )


def test_load_guarded_model_returns_the_guard_for_batch_scoring(
    logged: str, store: tuple[str, Path], raw: pd.DataFrame, guard: GuardedModel
) -> None:
    loaded = load_guarded_model(f"models:/{MODEL_NAME}@champion", tracking_uri=store[0])
    assert loaded.version == guard.version
    pd.testing.assert_frame_equal(
        loaded.predict(raw.head(100)).drop(columns="latency_ms"),
        guard.predict(raw.head(100)).drop(columns="latency_ms"),
    )
    by_id = load_guarded_model(logged, tracking_uri=store[0])
    assert by_id.predict(raw.head(2))["path"].tolist() == ["model", "model"]


def test_the_logged_model_does_not_need_the_toolkit(
    logged: str, store: tuple[str, Path], requests: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    location = (
        MlflowClient(tracking_uri=store[0])
        .get_logged_model(logged.split("/")[-1])
        .artifact_location
    )
    batch = requests["valid"][:1] + requests["invalid"][:1] + requests["unsure"][:1]
    done = subprocess.run(
        [sys.executable, "-c", _BLOCK_TOOLKIT, location, json.dumps(batch)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"paths": ["model", "rejected", "fallback"], "toolkit": []}
    requirements = (Path(location.removeprefix("file://")) / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} == {
        "mlflow",
        "scikit-learn",
        "pandas",
        "numpy",
        "pyarrow",
        "cloudpickle",
    }


def test_a_model_saved_by_earlier_code_loads_and_answers_as_it_did(
    store: tuple[str, Path], tmp_path: Path
) -> None:
    """A guarded model logged before the guard's batch path was rewritten (its classes pickled
    by value with it) loads with today's code, gives the decisions it gave then, and scores a
    CSV batch read by ``read_batch``: a bad cell rejects its row only."""
    folder = Path(__file__).parents[1] / "fixtures" / "models"
    expected = json.loads((folder / "guarded_before_expected.json").read_text())
    columns = ["prediction", "path", "reason", "input_hash", "top_features"]
    served = mlflow.pyfunc.load_model(str(folder / "guarded_before"))
    out = served.predict(pd.DataFrame(expected["records"]))
    assert json.loads(out[columns].to_json(orient="records")) == expected["expected"]
    old = load_guarded_model(str(folder / "guarded_before"), tracking_uri=store[0])
    records = pd.DataFrame(expected["records"][:3] * 4).astype({"mean_area": object})
    records.loc[5, "mean_area"] = "abc"
    records.to_csv(tmp_path / "batch.csv", index=False)
    decided = old.predict(read_batch(tmp_path / "batch.csv", old.contract))
    assert np.flatnonzero(decided["path"] == "rejected").tolist() == [5]
    assert decided["reason"].iloc[5] == "mean_area: 'abc' is a str, expected a number"


@pytest.mark.slow
def test_mlflow_models_serve_gives_guarded_decisions(
    logged: str, store: tuple[str, Path], requests: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    with model_server(f"models:/{MODEL_NAME}@champion", store[0], tmp_path) as url:
        batch = requests["valid"][:2] + requests["invalid"] + requests["unsure"][:2]
        batch[0]["sent_by"] = "client-7"  # an unknown field: the guard ignores it, with a note
        body = json.dumps({"dataframe_records": batch}).encode()
        request = urllib.request.Request(
            f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(
                response.read(),
                parse_constant=lambda token: pytest.fail(f"not strict JSON: {token}"),
            )
        out = pd.DataFrame(payload["predictions"])
        _check_decisions(out, ["model"] * 2 + ["rejected"] * 3 + ["fallback"] * 2)
        assert out["reason"].iloc[3] == "worst_area: 'a lot' is a str, expected a number"
        assert (out["notes"] == "ignored unknown columns: sent_by").all()
