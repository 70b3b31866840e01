"""Processes under test: start in their own group, wait for states, tear down the whole group."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

TOOLKIT = [sys.executable, "-c", "from toolkit.cli import entry; entry()"]


def start_toolkit(
    args: Sequence[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """``toolkit ARGS`` as the console script runs it (``entry()``), in its own process group."""
    return subprocess.Popen(
        [*TOOLKIT, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_toolkit(
    args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    proc = start_toolkit(args, cwd, env)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill_group(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def daemon_pids(log: Path) -> list[int]:
    """The pids of the engine daemons that started listening, in order, from their shared log
    (``<project>/.toolkit/logs/engine-daemon.log``)."""
    if not log.exists():
        return []
    return [int(line.split()[2]) for line in log.read_text().splitlines() if " listening " in line]


def kill_daemons(log: Path) -> None:
    """SIGKILL every engine daemon that logged to ``log``: they outlive the runs that start
    them (their own session), so a test that starts some stops them."""
    for pid in daemon_pids(log):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """End a process and every child it started (kernels, servers); never raises."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(Exception):
        proc.wait(timeout=30)


def wait_for(predicate: Callable[[], object], timeout: float = 120, what: str = "") -> object:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def catches_signal(pid: int, signum: int) -> bool:
    """True once process ``pid`` has installed a handler for ``signum`` (from /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    return False


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc), e.g. the kernels of an orchestrator."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cell_running(runs: Path, step: str) -> bool:
    """A cell of ``step``'s partial notebook, in any run folder under ``runs``, is executing.

    papermill saves the partial notebook at each cell's start, but writes it first before it
    starts a kernel: only a cell marked running proves the step's kernel exists and runs it."""
    for partial in runs.glob(f"*/notebooks/.{step}.partial.ipynb"):
        try:
            cells = json.loads(partial.read_text())["cells"]
        except (OSError, ValueError, KeyError):  # being written
            continue
        if any(
            c.get("metadata", {}).get("papermill", {}).get("status") == "running" for c in cells
        ):
            return True
    return False
