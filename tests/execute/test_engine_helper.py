"""The engine helper, a process of the run's own or the project's daemon: what it does equals
what the orchestrator would do itself, and losing it only moves the work back into the
orchestrator."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES
from support.procs import children, cmdline, wait_for
from support.projects import mini_project

from toolkit.core.settings import load_settings
from toolkit.execute import engine_daemon
from toolkit.execute.engine_client import EngineHelper, start_helper
from toolkit.plan.build import build_plan
from toolkit.reports.notebook_html import render_html
from toolkit.specs.load import load_spec

NOTEBOOK = FIXTURES / "notebooks" / "ok.ipynb"


@pytest.fixture(scope="module")
def helper(tmp_path_factory: pytest.TempPathFactory) -> EngineHelper:
    log = tmp_path_factory.mktemp("helper") / "logs" / "engine-helper.log"
    started = EngineHelper.spawn(log, warm_gx=False, warm_html=True)
    yield started
    started.close()
    assert started.process is not None and started.process.returncode is not None


def test_a_render_by_the_helper_equals_one_in_process(helper: EngineHelper, tmp_path: Path) -> None:
    by_helper = helper.render(NOTEBOOK, tmp_path / "helper.html", "ok")
    here = render_html(NOTEBOOK, tmp_path / "here.html", title="ok")
    assert helper.failure is None  # the helper did it, no fallback
    assert by_helper.read_bytes() == here.read_bytes()


def _hands_back(helper: EngineHelper, tmp_path: Path) -> None:
    """The helper is gone: the render is done here, identical, and the helper is not used
    again."""
    out = helper.render(NOTEBOOK, tmp_path / "ok.html", "ok")
    assert helper.failure is not None and "ended" in helper.failure
    assert out.read_bytes() == render_html(NOTEBOOK, tmp_path / "b.html", title="ok").read_bytes()
    assert helper.ping() is None


def test_a_killed_helper_hands_the_work_back(tmp_path: Path) -> None:
    helper = EngineHelper.spawn(tmp_path / "engine-helper.log", warm_gx=False)
    assert helper.pid is not None
    os.kill(helper.pid, signal.SIGKILL)
    _hands_back(helper, tmp_path)
    helper.close()  # never hangs on a dead helper
    assert helper.process is not None and helper.process.returncode == -signal.SIGKILL


def test_which_helper_a_run_gets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def helper(notebooks: bool = True) -> EngineHelper | None:
        return start_helper(tmp_path, tmp_path / ".toolkit", contracts=False, notebooks=notebooks)

    monkeypatch.delenv("TOOLKIT_HELPER", raising=False)
    assert helper() is None  # by default the daemon, but not here (TOOLKIT_NO_DAEMON=1)
    monkeypatch.delenv("TOOLKIT_NO_DAEMON")
    monkeypatch.setenv("CI", "true")
    assert helper() is None  # nor under CI, unless asked for
    monkeypatch.setenv("TOOLKIT_HELPER", "off")
    monkeypatch.delenv("CI")
    assert helper() is None  # turned off
    monkeypatch.setenv("TOOLKIT_HELPER", "1")
    monkeypatch.setenv("TOOLKIT_NO_DAEMON", "1")
    assert helper(notebooks=False) is None  # nothing to do
    own = helper()  # asked for, without a daemon: a helper of the run's own
    assert own is not None and own.pid is not None and own.ping() == own.pid
    own.close()


# ----------------------------------------------------------------------------- the daemon

IDLE_S = 2


@pytest.fixture
def daemon_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The default outside CI and Airflow: the daemon; one of this test's own (a short private
    folder: socket paths are limited to ~100 bytes)."""
    for name in ("TOOLKIT_HELPER", "TOOLKIT_NO_DAEMON", "CI", "AIRFLOW_CTX_DAG_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOOLKIT_DAEMON_IDLE", str(IDLE_S))
    folder = tempfile.mkdtemp(prefix="tkd-")
    monkeypatch.setenv("TOOLKIT_DAEMON_DIR", folder)
    yield
    shutil.rmtree(folder, ignore_errors=True)


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _daemon(project: Path) -> EngineHelper:
    helper = start_helper(project / "run", project / ".toolkit", contracts=False, notebooks=True)
    assert helper is not None and helper.process is None, "expected a session with the daemon"
    return helper


@pytest.mark.usefixtures("daemon_env")
def test_the_daemon_stays_warm_between_runs_then_exits_when_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAREHOUSE_DSN", "postgres://analyst:hunter2@db/prod")
    first = _daemon(tmp_path)
    pid = first.ping()
    assert pid is not None and pid != os.getpid()
    # It outlives the run that started it: it keeps none of that run's credentials.
    assert b"hunter2" not in Path(f"/proc/{pid}/environ").read_bytes()
    assert (
        first.render(NOTEBOOK, tmp_path / "daemon.html", "ok").read_bytes()
        == render_html(NOTEBOOK, tmp_path / "here.html", title="ok").read_bytes()
    )
    assert first.failure is None
    first.close()
    second = _daemon(tmp_path)  # the next run: the same process, its imports done
    assert second.ping() == pid
    other = _daemon(tmp_path / "other")  # another project of this environment shares it
    assert other.ping() == pid
    other.close()
    time.sleep(IDLE_S + 1)
    assert not _gone(pid)  # a run still holds a session: not idle
    second.close()
    wait_for(lambda: _gone(pid), timeout=20, what=f"daemon {pid} to idle out")
    found = engine_daemon.address()
    assert found is not None and not found[0].exists()  # it took its socket file along


@pytest.mark.usefixtures("daemon_env")
def test_a_killed_daemon_hands_the_work_back_and_the_next_run_starts_another(
    tmp_path: Path,
) -> None:
    helper = _daemon(tmp_path)
    pid = helper.ping()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # its socket file stays behind
    _hands_back(helper, tmp_path)
    helper.close()  # never hangs on a dead daemon
    replacement = _daemon(tmp_path)
    new_pid = replacement.ping()
    assert new_pid not in {None, pid}
    replacement.close()
    wait_for(lambda: _gone(new_pid), timeout=20, what="the new daemon to idle out")


def _renderers(daemon: int) -> list[int]:
    return [c for c in children(daemon) if "spawn_main" in cmdline(c)]


def _niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


@pytest.mark.usefixtures("daemon_env")
def test_the_daemon_renders_in_a_lower_priority_process_that_dies_with_it(
    tmp_path: Path,
) -> None:
    """A render holds no GIL of the daemon's (its checks and registry calls would wait on it),
    and its CPU goes to the kernels first; the process never outlives the daemon."""
    helper = _daemon(tmp_path)
    pid = helper.ping()
    assert pid is not None
    by_daemon = helper.render(NOTEBOOK, tmp_path / "daemon.html", "ok")
    assert helper.failure is None
    assert (
        by_daemon.read_bytes()
        == render_html(NOTEBOOK, tmp_path / "here.html", title="ok").read_bytes()
    )
    (renderer,) = _renderers(pid)
    assert _niceness(renderer) > _niceness(pid)
    assert helper.ping() == pid  # the first connection still serves while renders go aside
    helper.close()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _gone(renderer), timeout=20, what="the render process to follow its daemon")


@pytest.mark.usefixtures("daemon_env")
def test_a_render_process_that_dies_is_replaced_and_the_daemon_serves_on(tmp_path: Path) -> None:
    helper = _daemon(tmp_path)
    pid = helper.ping()
    assert pid is not None
    helper.render(NOTEBOOK, tmp_path / "first.html", "ok")
    (first,) = _renderers(pid)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: _gone(first), timeout=20, what="the render process to die")
    expected = render_html(NOTEBOOK, tmp_path / "here.html", title="ok").read_bytes()
    for name in ("second", "third"):  # handed back to this process, or to a new render process
        assert helper.render(NOTEBOOK, tmp_path / f"{name}.html", "ok").read_bytes() == expected
    assert helper.failure is None and helper.ping() == pid  # the daemon itself lives on
    (second,) = wait_for(lambda: _renderers(pid), timeout=20, what="a new render process")
    assert second != first
    helper.close()
    os.kill(pid, signal.SIGKILL)


MODEL_SPEC = """
name: ahead
steps:
  - {name: fit, notebook: ../notebooks/ok.ipynb, outputs: {out: model.joblib}}
model: {name: ahead_model, step: fit, output: out}
gates: {step: fit, checks: ["accuracy >= 0.5"]}
"""


def _writer_once_read(fifo: Path) -> int | None:
    """The write end of ``fifo`` once a reader has opened it, else None."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None


@pytest.mark.usefixtures("daemon_env")
def test_logging_the_model_ahead_never_holds_up_the_runs_other_requests(tmp_path: Path) -> None:
    """Logging the model ahead can take seconds (loading the model imports its libraries); it
    goes beside the run's checks, never in front of them. Here the model file is a pipe that
    nobody writes yet: the daemon waits on it, and still answers the run's other requests."""
    plan = build_plan(load_spec(mini_project(tmp_path, MODEL_SPEC, ("ok",))), tmp_path / "run")
    model = plan.step("fit").outputs["out"].path
    model.parent.mkdir(parents=True)
    os.mkfifo(model)
    helper = _daemon(tmp_path)
    pid = helper.ping()
    assert pid is not None
    logged: list[tuple[bool, object]] = []
    args = (plan, load_settings(tmp_path), "no-such-run")
    ahead = threading.Thread(target=lambda: logged.append(helper.release("log_ahead", *args)))
    ahead.start()
    writer = wait_for(lambda: _writer_once_read(model), timeout=60, what="the daemon to read")
    assert isinstance(writer, int)
    answered: list[int | None] = []
    ping = threading.Thread(target=lambda: answered.append(helper.ping()))
    ping.start()
    ping.join(timeout=60)
    answered_while_reading, still_reading = list(answered), ahead.is_alive()
    os.write(writer, b"not a pickle")
    os.close(writer)
    ahead.join(timeout=60)
    assert answered_while_reading == [pid] and still_reading
    assert logged == [(False, None)]  # an unreadable model: left to registration, as before
    helper.close()
    os.kill(pid, signal.SIGKILL)


@pytest.mark.usefixtures("daemon_env")
def test_one_daemon_per_address_even_when_two_start_at_once(tmp_path: Path) -> None:
    found = engine_daemon.address()
    assert found is not None
    address = found[0]
    cmd = [sys.executable, "-m", engine_daemon.DAEMON_MODULE, str(address), str(IDLE_S)]
    procs = [subprocess.Popen(cmd) for _ in range(2)]
    try:
        wait_for(address.exists, timeout=30, what="a daemon to listen")
        session = _daemon(tmp_path)  # reaches the one that listens; starts no third
        serving = session.ping()
        assert serving in {p.pid for p in procs}
        (other,) = [p for p in procs if p.pid != serving]
        assert other.wait(timeout=30) == 0  # the address was taken: it left at once
        session.close()
        (server,) = [p for p in procs if p.pid == serving]
        assert server.wait(timeout=30) == 0  # idle: it left, and took its socket file along
        assert not address.exists()
    finally:
        for proc in procs:
            proc.kill()
