"""Environment switches and markers read one way everywhere (``toolkit.core.envflags``)."""

from __future__ import annotations

import pytest

from toolkit.core.envflags import env_flag, env_marker
from toolkit.core.lineage import scheduler_context
from toolkit.execute.engine_client import helper_mode
from toolkit.execute.engine_daemon import daemon_allowed
from toolkit.tracking.run_tracking import tracking_disabled


@pytest.mark.parametrize(
    ("value", "flag", "marker"),
    [
        ("1", True, True),
        (" TRUE ", True, True),
        ("yes", True, True),
        ("On", True, True),
        ("0", False, False),
        ("false", False, False),
        ("No", False, False),
        (" off", False, False),
        ("", None, False),
        ("   ", None, False),
        ("woodpecker", None, True),  # a CI service naming itself
        ("ture", None, True),  # a typo flips no switch
    ],
)
def test_flag_and_marker(value: str, flag: bool | None, marker: bool) -> None:
    env = {"X": value}
    assert env_flag("X", env) is flag
    assert env_marker("X", env) is marker
    assert env_flag("UNSET", env) is None and env_marker("UNSET", env) is False


@pytest.mark.parametrize("ci", ["true", "1", "on", "drone", "0", "false", "off", "no", ""])
def test_daemon_and_scheduler_agree_on_ci(ci: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both used to read ``CI`` with their own value sets: ``CI=on`` or ``CI=drone`` kept the
    daemon off, but the run was not recorded as a CI run; ``CI=no`` kept the daemon off too."""
    for name in ("CI", "AIRFLOW_CTX_DAG_ID", "TOOLKIT_NO_DAEMON", "TOOLKIT_CTX_SCHEDULER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CI", ci)
    in_ci = scheduler_context({"CI": ci})["scheduler"] == "ci"
    assert in_ci is (ci not in {"0", "false", "off", "no", ""})
    assert daemon_allowed(asked=False) is not in_ci
    assert daemon_allowed(asked=True) is True  # asked for (TOOLKIT_HELPER=1): CI or not


@pytest.mark.parametrize(
    ("helper", "mode"), [("1", "on"), ("yes", "on"), ("0", "off"), ("OFF", "off"), ("", "auto")]
)
def test_helper_mode(helper: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLKIT_HELPER", helper)
    assert helper_mode() == mode


@pytest.mark.parametrize(("value", "off"), [("0", True), ("no", True), ("1", False), ("", False)])
def test_tracking_switch(value: str, off: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLKIT_TRACKING", value)
    assert tracking_disabled() is off


def test_no_daemon_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CI", "AIRFLOW_CTX_DAG_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOOLKIT_NO_DAEMON", "Yes")
    assert daemon_allowed(asked=True) is False
    monkeypatch.setenv("TOOLKIT_NO_DAEMON", "0")
    assert daemon_allowed(asked=False) is True
