"""A damaged MLflow store (truncated, overwritten, not a database) is a clear error, exit 1,
in every command that opens it: never exit 70 "this is a bug", and nothing half-written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from toolkit.cli.main import main

CORRUPTIONS = {
    "truncated to half": lambda data: data[: len(data) // 2],
    "truncated to 100 bytes": lambda data: data[:100],
    "header overwritten": lambda data: b"\xff" * 4096 + data[4096:],
    "not a database at all": lambda data: b"this is a text file, not SQLite\n" * 100,
}
COMMANDS = {
    "promote": ["promote", "m", "candidate"],
    "monitor": ["monitor", "m", "--batch", "batch.csv"],
    "runs list": ["runs", "list"],
    "releases": ["releases", "m"],
    "runs repair": ["runs", "repair"],
}


@pytest.fixture(scope="module")
def healthy_store(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a real, freshly migrated MLflow SQLite store."""
    import mlflow

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{path}").search_experiments()
    return path.read_bytes()


def _damaged_project(tmp_path: Path, damaged: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fixtures = Path(__file__).parents[1] / "fixtures" / "notebooks"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "m"\n[tool.toolkit]\n')
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "notebooks").mkdir()
    shutil.copy(fixtures / "ok.ipynb", tmp_path / "notebooks")
    (tmp_path / "pipelines" / "p.yaml").write_text(
        "name: p\nsteps:\n  - {name: a, notebook: ../notebooks/ok.ipynb, outputs: {out: a.txt}}\n"
    )
    (tmp_path / "batch.csv").write_text("x,y\n1,2\n")
    (tmp_path / "mlflow.db").write_bytes(damaged)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOOLKIT_NO_PREWARM", "1")


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_damaged_store_is_a_clear_error(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    healthy_store: bytes,
    corruption: str,
    command: str,
) -> None:
    """This command on a store damaged this way: exit 1, the store named as damaged, the file
    left as it was (nothing repaired behind the user's back)."""
    damaged = CORRUPTIONS[corruption](healthy_store)
    _damaged_project(tmp_path, damaged, monkeypatch)
    code = main(COMMANDS[command])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "is damaged" in err and str(tmp_path / "mlflow.db") in err, err
    assert "this is a bug" not in err
    assert (tmp_path / "mlflow.db").read_bytes() == damaged


@pytest.mark.slow
def test_run_on_a_truncated_store_fails_cleanly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    healthy_store: bytes,
) -> None:
    """`toolkit run` with a truncated store: exit 1 naming the store, and the run folder's
    summary says the run failed (not succeeded, not missing)."""
    damaged = CORRUPTIONS["truncated to half"](healthy_store)
    _damaged_project(tmp_path, damaged, monkeypatch)
    code = main(["run", "pipelines/p.yaml"])
    err = capsys.readouterr().err
    assert code == 1 and "is damaged" in err, err
    (summary,) = tmp_path.glob("runs/p/*/summary.json")
    assert '"status": "failed"' in summary.read_text()
