"""Guarded scoring under malformed input: over HTTP against a real ``mlflow models serve``, and
in batch from CSV files, every input record gets exactly one decision (model, fallback or
rejected), a bad value rejects only its own row, and nothing crashes.

One guarded model is logged to a SQLite MLflow store and served once for the whole module.
"""

from __future__ import annotations

import json
import math
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from support.data import breast_cancer_raw
from support.servers import healthy, model_server
from support.template_store import migrated_store

from toolkit.core.errors import ContractError
from toolkit.guard.batch import read_batch
from toolkit.guard.build import build_guarded_model, compile_expectations
from toolkit.guard.model import GuardedModel
from toolkit.release.guarded import load_guarded_model, log_guarded_model

PATHS = {"model", "fallback", "rejected"}
RULES = "rules:\n  - {name: large_area, when: worst_area > 880, label: malignant}\n"
RULES += "default: {label: benign}\n"


def add_features(df: pd.DataFrame) -> pd.DataFrame:
    """A derived feature, computed inside the served model."""
    df["log_mean_area"] = np.log(df["mean_area"])
    return df


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    # the label stays numeric here (``target``): this guard is built without the example's rules
    df = breast_cancer_raw()
    df["target"] = (df.pop("diagnosis") == "benign").astype(int)
    return df


@pytest.fixture(scope="module")
def guard(raw: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> GuardedModel:
    measures = [c for c in raw.columns if c not in ("patient_id", "target")]
    expectations: list[dict[str, Any]] = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "patient_id"}},
        {"type": "expect_column_values_to_match_regex",
         "kwargs": {"column": "patient_id", "regex": "^P[0-9]+$"}},
    ]  # fmt: skip
    for column in measures:
        expectations += [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column}},
            {"type": "expect_column_values_to_be_between",
             "kwargs": {"column": column, "min_value": 0, "max_value": float(raw[column].max()) * 2}},
        ]  # fmt: skip
    folder = tmp_path_factory.mktemp("guard")
    (folder / "rules.yaml").write_text(RULES)
    estimator = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    estimator.fit(add_features(raw[measures].copy()), (raw["target"] == 0).astype(int))
    config = {
        "model_name": "faults",
        "input_contract": compile_expectations(expectations, name="raw"),
        "output_contract": {"labels": {0: "benign", 1: "malignant"}},
        "confidence": {"min_confidence": 0.9},
        "fallback": {"rules": "rules.yaml"},
    }
    return build_guarded_model(
        estimator, config, base_dir=folder, preprocess=add_features, input_example=raw.head(3)
    )


@pytest.fixture(scope="module")
def logged(guard: GuardedModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(tracking URI, ``models:/faults/1``): the guard logged and registered in SQLite."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = migrated_store(root / "mlflow.db")
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("faults", str(root / "artifacts")))
    log_guarded_model(
        guard,
        tracking_uri=uri,
        run_id=run.info.run_id,
        registered_model_name="faults",
        code_modules=[sys.modules[__name__]],
    )
    client.set_terminated(run.info.run_id)
    return uri, "models:/faults/1"


@pytest.fixture(scope="module")
def server(logged: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow models serve`` of the registered guard on loopback; its base URL."""
    uri, model_uri = logged
    with model_server(model_uri, uri, tmp_path_factory.mktemp("serve")) as url:
        yield url


def _post(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def _records(raw: pd.DataFrame, rows: list[int]) -> list[dict[str, Any]]:
    return json.loads(raw.drop(columns="target").iloc[rows].to_json(orient="records"))


def _decisions(status: int, payload: Any, records: int) -> pd.DataFrame:
    """The invariant: HTTP 200 and one decision per record, each on exactly one path."""
    assert status == 200, payload
    out = pd.DataFrame(payload["predictions"])
    assert len(out) == records
    if records:
        assert set(out["path"]) <= PATHS and out["path"].notna().all()
        counts = out["path"].value_counts()
        assert sum(int(counts.get(p, 0)) for p in PATHS) == records
    return out


# ----------------------------------------------------------------------------- HTTP: bad records

# (id, a function of one valid record returning the bad record, what the reason must say).
BAD_RECORDS = [
    ("string_in_numeric", lambda r: {**r, "mean_area": "656.1"}, "mean_area: '656.1' is a str"),
    ("word_in_numeric", lambda r: {**r, "mean_area": "abc"}, "mean_area: 'abc' is a str"),
    ("bool_in_numeric", lambda r: {**r, "mean_radius": True}, "mean_radius: True is a bool"),
    ("number_in_string", lambda r: {**r, "patient_id": 1234}, "patient_id: 1234 is a int"),
    ("null_numeric", lambda r: {**r, "mean_texture": None}, "mean_texture: is null"),
    ("null_string", lambda r: {**r, "patient_id": None}, "patient_id: is null"),
    ("regex_mismatch", lambda r: {**r, "patient_id": "x; DROP"}, "does not match"),
    ("negative", lambda r: {**r, "mean_area": -1.0}, "mean_area: -1 is below the minimum 0"),
    ("huge_float", lambda r: {**r, "mean_area": 1e300}, "mean_area: 1e+300 is above the maximum"),
    ("huge_int", lambda r: {**r, "mean_area": 10**400}, "mean_area: inf is above the maximum"),
    ("nested_object", lambda r: {**r, "mean_area": {"a": [1]}}, "mean_area: {'a': [1]} is a dict"),
    ("nested_list", lambda r: {**r, "worst_area": [1, [2]]}, "worst_area: [1, [2]] is a list"),
    ("missing_column", lambda r: {k: v for k, v in r.items() if k != "mean_radius"},
     "mean_radius: is null"),
    ("only_unknown_columns", lambda r: {"foo": 1, "bar": "x"}, "mean_area: is null"),
    ("empty_object", lambda r: {}, "patient_id: is null"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bad", "reason"), [c[1:] for c in BAD_RECORDS], ids=[c[0] for c in BAD_RECORDS]
)
def test_http_bad_record_is_rejected_alone(server: str, raw: pd.DataFrame, bad, reason) -> None:
    """HTTP record with a bad or missing value between two valid ones: only it is rejected,
    with a reason naming the value; 3 records in, 3 decisions out."""
    good = _records(raw, [0, 1, 2])
    status, payload = _post(
        server, json.dumps({"dataframe_records": [good[0], bad(good[1]), good[2]]}).encode()
    )
    out = _decisions(status, payload, 3)
    assert (
        out["path"].tolist()[0::2] != ["rejected", "rejected"]
        and "rejected" not in out["path"].iloc[[0, 2]].tolist()
    )
    assert out["path"].iloc[1] == "rejected" and reason in out["reason"].iloc[1]


@pytest.mark.slow
def test_http_records_with_none_of_the_contract_columns_are_rejected(server: str) -> None:
    """HTTP batch where no record has any contract column (used to answer 200 with no
    predictions): every record is rejected for its missing columns, one decision each."""
    status, payload = _post(
        server, json.dumps({"dataframe_records": [{"foo": 1}, {"bar": 2}, {}]}).encode()
    )
    out = _decisions(status, payload, 3)
    assert (out["path"] == "rejected").all()
    assert out["reason"].str.contains("mean_area: missing column").all()


@pytest.mark.slow
def test_http_non_finite_json_tokens_reject_their_rows(server: str, raw: pd.DataFrame) -> None:
    """HTTP body with NaN, Infinity and -Infinity tokens (accepted by Python's JSON parser):
    each such record is rejected for its own value, the valid one is scored."""
    good = _records(raw, [0, 1, 2, 3])
    body = json.dumps({"dataframe_records": good})
    for i, token in ((1, "NaN"), (2, "Infinity"), (3, "-Infinity")):
        body = body.replace(json.dumps(good[i]["mean_area"]), token, 1)
    out = _decisions(*_post(server, body.encode()), 4)
    assert out["path"].tolist()[0] != "rejected" and (out["path"].iloc[1:] == "rejected").all()
    assert out["reason"].iloc[1:].tolist() == [
        "mean_area: is null",
        "mean_area: inf is above the maximum 5002",
        "mean_area: -inf is below the minimum 0",
    ]


@pytest.mark.slow
def test_http_extra_columns_are_ignored_with_a_note(server: str, raw: pd.DataFrame) -> None:
    """HTTP records with fields the contract does not know: scored as usual, one decision each,
    and the decision records say which fields were ignored."""
    records = [{**r, "sent_by": "client-7"} for r in _records(raw, [0, 1])]
    out = _decisions(*_post(server, json.dumps({"dataframe_records": records}).encode()), 2)
    assert "rejected" not in out["path"].tolist()
    assert (out["notes"] == "ignored unknown columns: sent_by").all()


@pytest.mark.slow
def test_http_duplicate_column_rejects_the_ambiguous_records(
    server: str, raw: pd.DataFrame
) -> None:
    """HTTP ``dataframe_split`` naming a contract column twice: which value counts is unknown,
    so its records are rejected ("sent more than once"), one decision each, no error."""
    record = _records(raw, [0])[0]
    columns = [*record, "mean_area"]
    data = [[*record.values(), 1.0], [*record.values(), 2.0]]
    body = {"dataframe_split": {"columns": columns, "data": data}}
    out = _decisions(*_post(server, json.dumps(body).encode()), 2)
    assert (out["path"] == "rejected").all()
    assert out["reason"].str.contains("mean_area: sent more than once").all()


@pytest.mark.slow
def test_http_empty_batch_gets_an_empty_answer(server: str) -> None:
    """HTTP ``dataframe_records: []``: zero records in, zero decisions out, HTTP 200."""
    _decisions(*_post(server, b'{"dataframe_records": []}'), 0)


# (id, body): payloads that are not a batch of records at all.
MALFORMED = [
    ("empty_body", b""),
    ("not_json", b"{not json"),
    ("truncated_json", b'{"dataframe_records": [{"mean_area": 1'),
    ("json_scalar", b"42"),
    ("unknown_format_key", b'{"records": [{"mean_area": 1}]}'),
    ("records_not_a_list", b'{"dataframe_records": "abc"}'),
    (
        "split_rows_longer_than_columns",
        b'{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}',
    ),
    ("binary_junk", bytes(range(256))),
]


@pytest.mark.slow
@pytest.mark.parametrize("body", [c[1] for c in MALFORMED], ids=[c[0] for c in MALFORMED])
def test_http_malformed_payload_is_a_client_error(
    server: str, raw: pd.DataFrame, body: bytes
) -> None:
    """HTTP payload that holds no records: a 4xx with a message (no 5xx, no empty 200), and
    the server keeps answering valid requests."""
    status, payload = _post(server, body)
    assert 400 <= status < 500, (status, payload)
    assert isinstance(payload, str) and payload.strip()
    assert healthy(server, "/ping")
    _decisions(*_post(server, json.dumps({"dataframe_records": _records(raw, [0])}).encode()), 1)


# ----------------------------------------------------------------------------- batch CSV files


@pytest.fixture(scope="module")
def loaded(logged: tuple[str, str]) -> GuardedModel:
    """The registered guard loaded back for batch scoring, as the scoring notebook does."""
    return load_guarded_model(logged[1], tracking_uri=logged[0])


def _batch(raw: pd.DataFrame, folder: Path, edits: dict[tuple[int, str], str]) -> Path:
    """A CSV of 20 raw records as an extract would write it, with some cells overwritten."""
    lines = raw.drop(columns="target").head(20).to_csv(index=False).splitlines()
    header = lines[0].split(",")
    for (row, column), text in edits.items():
        cells = lines[row + 1].split(",")
        cells[header.index(column)] = text
        lines[row + 1] = ",".join(cells)
    path = folder / "batch.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


# (id, edits {(row, column): cell text}, rows expected rejected)
BAD_CELLS = [
    ("word_in_numeric", {(5, "mean_area"): "abc"}, [5]),
    ("two_bad_cells_two_rows", {(0, "mean_area"): "abc", (19, "worst_area"): "1,5"}, [0, 19]),
    ("empty_cell", {(7, "mean_texture"): ""}, [7]),
    ("na_marker", {(8, "mean_texture"): "NA"}, [8]),
    ("out_of_range", {(3, "mean_radius"): "-5"}, [3]),
    ("infinite_text", {(4, "mean_radius"): "inf"}, [4]),
    ("bad_id", {(9, "patient_id"): "??"}, [9]),
    ("every_numeric_column_of_one_row", {(2, c): "x" for c in ("mean_radius", "worst_area", "area_error")}, [2]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("edits", "rejected"), [c[1:] for c in BAD_CELLS], ids=[c[0] for c in BAD_CELLS]
)
def test_batch_bad_cell_rejects_only_its_row(
    loaded: GuardedModel, raw: pd.DataFrame, tmp_path: Path, edits: dict, rejected: list[int]
) -> None:
    """Batch CSV with bad cells: only the rows holding them are rejected (pandas alone would
    make the whole column text and reject all 20), 20 records in, 20 decisions out."""
    if "1,5" in edits.values():  # a comma inside a cell must be quoted, as any CSV writer does
        edits = {k: '"1,5"' if v == "1,5" else v for k, v in edits.items()}
    out = loaded.predict(read_batch(_batch(raw, tmp_path, edits), loaded.contract))
    assert len(out) == 20 and set(out["path"]) <= PATHS
    assert np.flatnonzero(out["path"] == "rejected").tolist() == rejected
    for row in rejected:
        assert out["reason"].iloc[row]


def test_batch_short_row_is_rejected_alone(
    loaded: GuardedModel, raw: pd.DataFrame, tmp_path: Path
) -> None:
    """Batch CSV line with fewer fields than the header: its missing cells are nulls, so that
    row alone is rejected; 20 decisions."""
    path = _batch(raw, tmp_path, {})
    lines = path.read_text().splitlines()
    lines[11] = ",".join(lines[11].split(",")[:10])
    path.write_text("\n".join(lines) + "\n")
    out = loaded.predict(read_batch(path, loaded.contract))
    assert len(out) == 20 and np.flatnonzero(out["path"] == "rejected").tolist() == [10]


def test_batch_bytes_that_are_not_utf8_reject_only_their_row(
    loaded: GuardedModel, raw: pd.DataFrame, tmp_path: Path
) -> None:
    """A byte that is not UTF-8 in a number (used to fail the whole batch with a decode
    error: no decision at all) rejects its row alone, and the cell keeps the byte, visibly."""
    path = _batch(raw, tmp_path, {(5, "mean_area"): "12@"})
    data = path.read_bytes().replace(b"12@", b"12\xe9")
    path.write_bytes(data)
    assert b"\xe9" in data
    batch = read_batch(path, loaded.contract)
    out = loaded.predict(batch)
    assert len(out) == 20 and np.flatnonzero(out["path"] == "rejected").tolist() == [5]
    assert batch["mean_area"].iloc[5] == "12\\xe9"  # the cell as sent, byte included


def test_batch_long_row_is_a_clear_error(
    loaded: GuardedModel, raw: pd.DataFrame, tmp_path: Path
) -> None:
    """Batch CSV line with more fields than the header: which field is which is unknown, so
    reading fails with a ContractError naming the file and line, rather than dropping it."""
    path = _batch(raw, tmp_path, {})
    lines = path.read_text().splitlines()
    lines[6] += ",1,2"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ContractError, match=r"batch\.csv: cannot read the batch: .*line 7"):
        read_batch(path, loaded.contract)


def test_batch_header_only_is_an_empty_result(
    loaded: GuardedModel, raw: pd.DataFrame, tmp_path: Path
) -> None:
    """Batch CSV with a header and no rows (used to fail with IndexError): zero records,
    zero decisions, with the output's columns; no error."""
    path = tmp_path / "header.csv"
    path.write_text(",".join(raw.drop(columns="target").columns) + "\n")
    batch = read_batch(path, loaded.contract)
    out = loaded.predict(batch)
    assert len(batch) == 0 and len(out) == 0 and "path" in out.columns


def test_batch_without_header_is_a_clear_error(loaded: GuardedModel, tmp_path: Path) -> None:
    """Batch file of 0 bytes: not even a header, so a ContractError saying so."""
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ContractError, match="no header line"):
        read_batch(path, loaded.contract)


def test_batch_invariant_holds_on_a_large_messy_batch(
    loaded: GuardedModel, raw: pd.DataFrame, tmp_path: Path
) -> None:
    """Batch CSV of all 569 records with 1 in 7 rows holding a bad cell somewhere: exactly
    those rows are rejected, and scored + fallback + rejected = 569."""
    frame = raw.drop(columns="target").astype(object)
    columns = [c for c in frame.columns if c != "patient_id"]
    bad_rows = list(range(0, len(frame), 7))
    for k, row in enumerate(bad_rows):
        frame.iloc[row, frame.columns.get_loc(columns[k % len(columns)])] = ["abc", "", "-1"][k % 3]
    path = tmp_path / "messy.csv"
    frame.to_csv(path, index=False)
    out = loaded.predict(read_batch(path, loaded.contract))
    counts = out["path"].value_counts()
    assert sum(int(counts.get(p, 0)) for p in PATHS) == len(out) == len(frame)
    assert np.flatnonzero(out["path"] == "rejected").tolist() == bad_rows
    assert not math.isnan(out.loc[out["path"] == "model", "probability"].min())


# ----------------------------------------------------------------------------- the scoring notebook


def _score_notebook(batch: Path, logged: tuple[str, str], folder: Path) -> dict[str, float]:
    """Run ``notebooks/score.ipynb`` in a real kernel on ``batch``; the metrics it recorded."""
    import papermill

    events = folder / "events.jsonl"
    outputs = {k: str(folder / f"{k}.parquet") for k in ("predictions", "decisions", "quarantine")}
    env = {"MLFLOW_TRACKING_URI": logged[0], "TOOLKIT_EVENTS_FILE": str(events)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits the environment of the process starting it
    try:
        papermill.execute_notebook(
            str(Path(__file__).parents[2] / "notebooks" / "score.ipynb"),
            str(folder / "score.out.ipynb"),
            parameters={
                "batch": str(batch),
                "model_uri": logged[1],
                "latency_sample": 5,
                **outputs,
            },
            kernel_name="python3",
            cwd=str(folder),
            progress_bar=False,
        )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    return {e["key"]: e["value"] for e in lines if e.get("kind") == "metric"}


@pytest.mark.slow
@pytest.mark.parametrize("case", ["bad_cell", "header_only"])
def test_scoring_notebook_accounts_for_every_row(
    case: str, logged: tuple[str, str], raw: pd.DataFrame, tmp_path: Path
) -> None:
    """Scoring notebook on a batch CSV with one bad cell (used to reject all rows) or with a
    header only (used to fail with IndexError): it finishes, scored + fallback + rejected =
    input rows, and the decision and quarantine files hold every record, bad cell included."""
    if case == "bad_cell":
        batch, rows = _batch(raw, tmp_path, {(5, "mean_area"): "abc"}), 20
    else:
        batch, rows = tmp_path / "header.csv", 0
        batch.write_text(",".join(raw.drop(columns="target").columns) + "\n")
    metrics = _score_notebook(batch, logged, tmp_path)
    decided = metrics["scored_rows"] + metrics["fallback_rows"] + metrics["rejected_rows"]
    assert metrics["rows"] == decided == rows
    assert metrics["rejected_rows"] == (1 if rows else 0)
    assert metrics["latency_p95_ms"] > 0  # measured on the logged input example when empty
    decisions = pd.read_parquet(tmp_path / "decisions.parquet")
    quarantine = pd.read_parquet(tmp_path / "quarantine.parquet")
    assert len(decisions) == rows and len(quarantine) == metrics["rejected_rows"]
    if rows:
        assert quarantine["mean_area"].tolist() == ["abc"]
        assert quarantine["reason"].tolist() == ["mean_area: 'abc' is a str, expected a number"]
