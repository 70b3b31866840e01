"""The trained model loaded (and logged) ahead of registration: the same model registration
would load, or the file loaded again, and logged again, when it changed or anything failed."""

from __future__ import annotations

import os
from pathlib import Path

import joblib
import pytest
from sklearn.linear_model import LogisticRegression

from toolkit.core.errors import RegistryError
from toolkit.execute.model_log import ModelPrefetch


def _model(path: Path, c: float) -> Path:
    joblib.dump(LogisticRegression(C=c).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]), path)
    return path


def test_the_model_loaded_and_logged_ahead_is_the_one_registered(tmp_path: Path) -> None:
    logged: list[object] = []

    def log(model: object) -> str:
        logged.append(model)
        return f"models:/m-{len(logged)}"

    prefetch = ModelPrefetch(_model(tmp_path / "model.joblib", 1.0), log)
    prefetch.start()
    first, uri = prefetch.take()
    assert first.C == 1.0 and uri == "models:/m-1" and logged == [first]
    assert prefetch.take() == (first, "models:/m-1")  # loaded and logged once, not again


def test_a_failed_log_ahead_is_left_to_registration(tmp_path: Path) -> None:
    def log(model: object) -> str:
        raise RuntimeError("the store is down")

    prefetch = ModelPrefetch(_model(tmp_path / "model.joblib", 1.0), log)
    prefetch.start()
    model, uri = prefetch.take()
    assert model.C == 1.0 and uri is None  # registration logs it, and reports any error


def test_a_model_file_replaced_after_loading_is_loaded_again(tmp_path: Path) -> None:
    path = _model(tmp_path / "model.joblib", 1.0)
    prefetch = ModelPrefetch(path, lambda model: "models:/m-old")
    prefetch.start()
    ahead, _ = prefetch.take()
    replacement = _model(tmp_path / "new.joblib", 2.0)
    os.replace(replacement, path)  # a later step rewrote it
    again, uri = prefetch.take()
    assert again is not ahead and again.C == 2.0
    assert uri is None  # what was logged ahead is not that model: registration logs this one


def test_an_unreadable_model_fails_at_registration_as_before(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_text("not a pickle")
    prefetch = ModelPrefetch(path)
    prefetch.start()  # fails quietly on its thread
    with pytest.raises(RegistryError, match="could not be loaded with joblib"):
        prefetch.take()


def test_without_start_the_model_is_loaded_when_taken(tmp_path: Path) -> None:
    model, uri = ModelPrefetch(_model(tmp_path / "model.joblib", 3.0)).take()
    assert model.C == 3.0 and uri is None


def test_a_model_logged_by_the_helper_is_never_loaded_here(tmp_path: Path) -> None:
    """load=False (the engine helper loads and logs it): this process never unpickles the
    model; a file replaced since leaves registration to log the new one."""
    seen: list[object] = []

    def log(model: object) -> str:
        seen.append(model)
        return "models:/m-helper"

    path = _model(tmp_path / "model.joblib", 1.0)
    prefetch = ModelPrefetch(path, log, load=False)
    prefetch.start()
    assert prefetch.take() == (None, "models:/m-helper") and seen == [None]
    os.replace(_model(tmp_path / "new.joblib", 2.0), path)
    assert prefetch.take() == (None, None)
