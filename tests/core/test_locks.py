"""The one file lock (toolkit.core.locks): modes, waiting, the holder's record, and its errors."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from toolkit.core.errors import LockedError
from toolkit.core.locks import file_lock, holder_record, is_locked
from toolkit.core.runlock import pipeline_lock


class Busy(Exception):
    def __init__(self, holder: dict) -> None:
        super().__init__(holder)
        self.holder = holder


def _other_process_holds(path: Path, *, shared: bool = False) -> subprocess.Popen[str]:
    """A holder in another process (flock is per open file, so the test's own thread would do
    too, but a process is what the callers guard against)."""
    code = (
        "import sys, time; from pathlib import Path; from toolkit.core.locks import file_lock, "
        "holder_record\n"
        f"with file_lock(Path({str(path)!r}), shared={shared}) as held:\n"
        "    held.write_record(holder_record('other'))\n"
        "    print('held', flush=True); sys.stdin.readline()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _release(proc: subprocess.Popen[str]) -> None:
    proc.communicate("\n", timeout=30)


def test_busy_gets_the_holders_record_and_decides_the_error(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "a.lock"
    proc = _other_process_holds(path)
    try:
        assert is_locked(path)
        with pytest.raises(Busy) as caught, file_lock(path, timeout=0, busy=Busy):
            pass
        assert caught.value.holder["run_id"] == "other"
        assert caught.value.holder["pid"] == proc.pid
        with (
            pytest.raises(LockedError, match="held by another process"),
            file_lock(path, timeout=0),
        ):
            pass
    finally:
        _release(proc)
    assert not is_locked(path)
    with file_lock(path, timeout=0):
        pass


def test_shared_holders_coexist_and_keep_exclusive_out(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    proc = _other_process_holds(path, shared=True)
    try:
        with (
            file_lock(path, shared=True, timeout=0),
            pytest.raises(LockedError),
            file_lock(path, timeout=0),
        ):
            pass
    finally:
        _release(proc)


def test_timeout_waits_then_gives_up(tmp_path: Path) -> None:
    path = tmp_path / "t.lock"
    proc = _other_process_holds(path)
    try:
        started = time.monotonic()
        with pytest.raises(Busy), file_lock(path, timeout=0.3, busy=Busy):
            pass
        assert 0.25 <= time.monotonic() - started < 5
    finally:
        _release(proc)


def test_a_waiter_gets_the_lock_once_it_is_let_go(tmp_path: Path) -> None:
    path = tmp_path / "w.lock"
    order: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with file_lock(path):
            first_in.set()
            time.sleep(0.2)
            order.append("first")

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(10)
    with file_lock(path, timeout=10):
        order.append("second")
    thread.join()
    assert order == ["first", "second"]


def test_the_record_is_written_and_cleared(tmp_path: Path) -> None:
    path = tmp_path / "r.lock"
    with file_lock(path) as held:
        assert held.read_record() is None
        held.write_record(holder_record("run-1", shared=False))
        assert held.read_record()["run_id"] == "run-1"
        held.clear_record()
        assert path.read_text() == ""


def test_pipeline_lock_message_names_the_holder(tmp_path: Path) -> None:
    with (
        pipeline_lock(tmp_path, "pipe", "run-a"),
        pytest.raises(LockedError, match=r"already running .*run run-a, pid \d+"),
        pipeline_lock(tmp_path, "pipe", "run-b"),
    ):
        pass
    assert (tmp_path / "pipe.lock").read_text() == ""  # let go properly: no stale record
