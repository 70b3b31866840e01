"""The trained model loaded ahead of registration: the same model registration would load, or
the file loaded again when it changed or could not be read."""

from __future__ import annotations

import os
from pathlib import Path

import joblib
import pytest
from sklearn.linear_model import LogisticRegression

from toolkit.core.errors import RegistryError
from toolkit.execute.release_stage import ModelPrefetch


def _model(path: Path, c: float) -> Path:
    joblib.dump(LogisticRegression(C=c).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]), path)
    return path


def test_the_model_loaded_ahead_is_the_one_registered(tmp_path: Path) -> None:
    prefetch = ModelPrefetch(_model(tmp_path / "model.joblib", 1.0))
    prefetch.start()
    first = prefetch.take()
    assert first.C == 1.0
    assert prefetch.take() is first  # loaded once, not again


def test_a_model_file_replaced_after_loading_is_loaded_again(tmp_path: Path) -> None:
    path = _model(tmp_path / "model.joblib", 1.0)
    prefetch = ModelPrefetch(path)
    prefetch.start()
    ahead = prefetch.take()
    replacement = _model(tmp_path / "new.joblib", 2.0)
    os.replace(replacement, path)  # a retried step rewrote it
    again = prefetch.take()
    assert again is not ahead and again.C == 2.0


def test_an_unreadable_model_fails_at_registration_as_before(tmp_path: Path) -> None:
    path = tmp_path / "model.joblib"
    path.write_text("not a pickle")
    prefetch = ModelPrefetch(path)
    prefetch.start()  # fails quietly on its thread
    with pytest.raises(RegistryError, match="could not be loaded with joblib"):
        prefetch.take()


def test_without_start_the_model_is_loaded_when_taken(tmp_path: Path) -> None:
    assert ModelPrefetch(_model(tmp_path / "model.joblib", 3.0)).take().C == 3.0
