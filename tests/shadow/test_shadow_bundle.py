"""The release bundle over HTTP, with a real ``mlflow models serve``: the response is the
champion's, the shadow's decisions land in the decision log off the response path, and a shadow
that raises leaves the response intact (its failure is a line of the log)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import support.data
from support.guards import MESSY_BATCH, example_guard
from support.servers import model_server
from support.template_store import migrated_store

from toolkit.guard.batch import read_batch
from toolkit.shadow.bundle import ReleaseBundle
from toolkit.shadow.serving import log_bundle

pytestmark = pytest.mark.slow
VERSIONS = {"champion_version": "1", "shadow_version": "2"}


@pytest.fixture(scope="module")
def guards() -> tuple[Any, Any]:
    return example_guard("bundle_clf"), example_guard("bundle_clf", sample=40)


def post(url: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    body = json.dumps({"dataframe_records": records}).encode()
    request = urllib.request.Request(
        f"{url}/invocations", body, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["predictions"]


def lines(log: Path, want: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
        if len(found) >= want:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{log}: fewer than {want} lines after {timeout} s")


def records(guard: Any, n: int) -> list[dict[str, Any]]:
    raw = read_batch(MESSY_BATCH, guard.contract).head(n)
    return json.loads(raw.to_json(orient="records"))


@pytest.mark.parametrize("broken", [False, True], ids=["shadow", "shadow-raises"])
def test_served_bundle_answers_as_the_champion_and_logs_the_shadow(
    guards: tuple[Any, Any], tmp_path: Path, broken: bool
) -> None:
    champion, shadow = guards
    log = tmp_path / "decisions.jsonl"
    bundle = ReleaseBundle(
        champion, "not a model" if broken else shadow, decision_log=str(log), versions=VERSIONS
    )
    uri = migrated_store(tmp_path / "mlflow.db")
    model_uri = log_bundle(bundle, tracking_uri=uri, code_modules=[support.data])
    sent = records(champion, 8)
    expected = champion(pd.DataFrame(sent))
    with model_server(model_uri, uri, tmp_path) as url:
        answer = post(url, sent)
        logged = lines(log, 1 if broken else len(sent))
    assert [a["prediction"] for a in answer] == expected["prediction"].tolist()
    assert [a["path"] for a in answer] == expected["path"].tolist()
    assert all(line["shadow"] and line["shadow_version"] == "2" for line in logged)
    if broken:
        assert logged[0]["error"].startswith("AttributeError")
    else:
        assert [x["decision"]["version"] for x in logged] == [shadow.version] * len(sent)
        assert [x["champion"]["prediction"] for x in logged] == expected["prediction"].tolist()
