"""Identity for releases comes from the system: environment variables do not change it."""

from __future__ import annotations

import os
import pwd

import pytest

from toolkit.release.identity import OS_USER, Actor, os_identity, system_identity


def test_the_os_user_is_read_by_uid_not_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = pwd.getpwuid(os.geteuid()).pw_name
    for var in ("USER", "LOGNAME", "LNAME", "USERNAME"):
        monkeypatch.setenv(var, "someone-else")
    assert os_identity().name == real
    assert os_identity().source == OS_USER
    # A local store never asks a server, and MLflow's credentials do not name anyone there.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "someone-else")
    assert system_identity("sqlite:////tmp/x/mlflow.db").name == real


def test_an_actor_records_an_override_only_when_it_acts_for_someone_else() -> None:
    assert Actor("alice", "alice", OS_USER).record() == {"identity": OS_USER}
    acting = Actor("alice", "ops", OS_USER)
    assert acting.override
    assert acting.record() == {"identity": OS_USER, "recorded_by": "ops", "override": True}
