"""The release path against a real ``mlflow server`` on loopback (REST registry, proxied
artifacts): versions come back as strings there, errors as REST error codes, and clients on
different machines get no shared lock. Slow: the server needs ~5 s to come up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

# Shared scenario and helpers (tests/release is on sys.path: pytest's default rootdir import).
from test_registry import (
    GOOD,
    OPEN,
    Env,
    X,
    _assert_consistent,
    _promote_all_at_once,
    _registered,
    full_release_path,
    make_env,
)

from toolkit.core.errors import RegistryError
from toolkit.release.registry import lock_path

pytestmark = pytest.mark.slow

MODELS = ("served", "rest-errors", "served-race")


@pytest.fixture(scope="module")
def server(mlflow_server: tuple[str, Path]) -> tuple[str, Path]:
    """``(url, root)`` of the session's loopback MLflow server (tests/conftest.py)."""
    url, artifacts = mlflow_server
    return url, artifacts.parent


@pytest.fixture(scope="module")
def env(server: tuple[str, Path]) -> Iterator[Env]:
    url, root = server
    yield make_env(root, url)
    # Server URIs lock in the temp dir (keyed by URI, so by this port): leave none behind.
    for name in MODELS:
        lock_path(url, name).unlink(missing_ok=True)


def test_full_release_path_against_a_server(
    env: Env, server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env.uri)

    def load(name: str) -> int:
        return int(mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(X[:1])[0])

    full_release_path(env, "served", load)
    # The model files went through the server into its artifacts destination.
    assert list((server[1] / "artifacts").rglob("MLmodel"))
    # Every version of "served" has been champion, so none is waiting for review.
    assert [c for c in env.registry.candidates() if c.version.name == "served"] == []
    assert env.registry.get_version("served", 2).aliases == ("champion",)


def test_bad_input_over_rest(env: Env) -> None:
    env.release("rest-errors", GOOD)
    with pytest.raises(RegistryError) as caught:
        env.registry.get_version("rest-error", 1)
    assert caught.value.hint == "did you mean 'rest-errors'?"
    with pytest.raises(RegistryError, match="has no version 4; versions: 1"):
        env.registry.promote("rest-errors", 4, policy=OPEN, by="x")
    with pytest.raises(RegistryError, match="no previous champion"):
        env.registry.rollback("rest-errors", by="x", reason="r")


def test_lockless_concurrent_promotions_over_rest_settle(env: Env) -> None:
    """Clients on different machines share no lock: the alias must still end on the latest
    history entry, with no entry lost."""
    name = "served-race"
    _registered(env, name, 6)
    _promote_all_at_once(env, name, [1, 2, 3], local_lock=False)
    _assert_consistent(env, name, 3)
    _promote_all_at_once(env, name, [4, 5, 6], local_lock=False)
    _assert_consistent(env, name, 6)
