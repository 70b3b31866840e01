"""The engine helper process: what it does equals what the orchestrator would do itself, and
losing it only moves the work back into the orchestrator."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from conftest import FIXTURES

from toolkit.execute.engine_client import EngineHelper, start_helper
from toolkit.reports.notebook_html import render_html


@pytest.fixture(scope="module")
def helper(tmp_path_factory: pytest.TempPathFactory) -> EngineHelper:
    log = tmp_path_factory.mktemp("helper") / "logs" / "engine-helper.log"
    started = EngineHelper(log, warm_gx=False, warm_html=True)
    yield started
    started.close()
    assert started.process is not None and started.process.returncode is not None


def test_a_render_by_the_helper_equals_one_in_process(helper: EngineHelper, tmp_path: Path) -> None:
    notebook = FIXTURES / "notebooks" / "ok.ipynb"
    by_helper = helper.render(notebook, tmp_path / "helper.html", "ok")
    here = render_html(notebook, tmp_path / "here.html", title="ok")
    assert helper.failure is None  # the helper did it, no fallback
    assert by_helper.read_bytes() == here.read_bytes()


def test_a_killed_helper_hands_the_work_back(tmp_path: Path) -> None:
    helper = EngineHelper(tmp_path / "engine-helper.log", warm_gx=False)
    assert helper.pid is not None
    os.kill(helper.pid, signal.SIGKILL)
    out = helper.render(FIXTURES / "notebooks" / "ok.ipynb", tmp_path / "ok.html", "ok")
    assert helper.failure is not None and "ended" in helper.failure
    assert (
        out.read_bytes()
        == render_html(
            FIXTURES / "notebooks" / "ok.ipynb", tmp_path / "b.html", title="ok"
        ).read_bytes()
    )
    helper.close()  # never hangs on a dead helper
    assert helper.process is not None and helper.process.returncode == -signal.SIGKILL


def test_the_helper_is_off_unless_turned_on_and_needs_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOOLKIT_HELPER", raising=False)
    assert start_helper(tmp_path, contracts=True, notebooks=True) is None
    monkeypatch.setenv("TOOLKIT_HELPER", "1")
    assert start_helper(tmp_path, contracts=False, notebooks=False) is None
    helper = start_helper(tmp_path, contracts=False, notebooks=True)
    assert helper is not None and helper.pid is not None
    helper.close()
