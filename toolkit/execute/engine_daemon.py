"""The engine helper kept warm between runs: one process per Python environment and toolkit.

A run's own helper (:mod:`toolkit.execute.engine_helper`) imports GX and nbconvert again for
every run, seconds of CPU that an edit-and-rerun loop pays each time. The daemon does the same
work (contract checks, notebook HTML, and the run's MLflow calls and registration: see
:mod:`toolkit.execute.engine_tracking` and :mod:`toolkit.execute.engine_release`) with the same
handlers, but stays alive between runs for
a bounded idle time (``TOOLKIT_DAEMON_IDLE`` seconds, 900 by default), so the next run's checks
find GX imported. ``TOOLKIT_NO_DAEMON=1`` turns it off (runs then check their contracts
themselves, or start a helper of their own with ``TOOLKIT_HELPER=1``).

It is never needed for correctness: a run that cannot reach it, or loses it mid-run, does the
work itself (:class:`toolkit.execute.engine_client.EngineHelper`). It is never stale either: its
address is derived from the interpreter, the installed packages (the site-packages folder's
modification time) and the toolkit's own source files, so a changed toolkit or library gets a
daemon of its own, and the old one idles out. It holds nothing of a project (requests carry
absolute paths), so the projects of one environment share it: ``toolkit reproduce``, which runs
a copy of the project in a temporary folder, finds it warm too.

The socket lives in ``$TMPDIR/toolkit-<uid>/`` (a socket path is limited to about 100 bytes,
which a project folder can exceed), a folder only this user may enter; each connection also
proves it knows a per-user key (``multiprocessing.connection``'s challenge), since the daemon
unpickles what it receives. One daemon per address: it holds an exclusive lock on
``<address>.lock`` for its lifetime, so a second one started at the same time exits at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path

from toolkit.core.envflags import env_flag, env_marker

log = logging.getLogger(__name__)
NO_DAEMON_ENV = "TOOLKIT_NO_DAEMON"
IDLE_ENV = "TOOLKIT_DAEMON_IDLE"
DIR_ENV = "TOOLKIT_DAEMON_DIR"  # where its socket lives; keep the path short (~100 bytes max)
DEFAULT_IDLE_S = 900.0
DAEMON_MODULE = "toolkit.execute.engine_daemon"
CONNECT_WAIT_S = 5.0  # a new daemon's interpreter and imports, before its socket listens
KEY_BYTES = 32


# Set by CI services and in Airflow tasks: nobody runs the next edit there, and a process left
# behind a job is unwelcome (as Nx does for its daemon, CI gets none unless asked for).
SCHEDULED_ENV = ("CI", "AIRFLOW_CTX_DAG_ID")


def daemon_allowed(*, asked: bool) -> bool:
    """Whether a run may use (and start) the daemon: not with ``TOOLKIT_NO_DAEMON=1``, and not
    under CI or Airflow unless a helper was ``asked`` for (``TOOLKIT_HELPER=1``)."""
    if env_flag(NO_DAEMON_ENV):
        return False
    return asked or not any(env_marker(name) for name in SCHEDULED_ENV)


def idle_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S)))
    except ValueError:
        return DEFAULT_IDLE_S


def build_key() -> str:
    """What a daemon must have been started from to serve this run: the interpreter, the
    installed packages and the toolkit's source files (stat only: a few ms)."""
    digest = hashlib.sha256(sys.executable.encode())
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")):
        info = path.stat()
        digest.update(f"\0{path.relative_to(package)}:{info.st_mtime_ns}:{info.st_size}".encode())
    for folder in {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}:
        with contextlib.suppress(OSError):
            digest.update(f"\0{folder}:{Path(folder).stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def private_folder() -> Path | None:
    """``TOOLKIT_DAEMON_DIR``, or ``$TMPDIR/toolkit-<uid>``, created private; None when it
    exists but is not ours alone (then no daemon is used: another user could reach it)."""
    folder = Path(os.environ.get(DIR_ENV) or Path(tempfile.gettempdir()) / f"toolkit-{os.getuid()}")
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)
    try:
        info = folder.lstat()
    except OSError:
        return None
    private = stat.S_ISDIR(info.st_mode) and not info.st_mode & 0o077
    return folder if private and info.st_uid == os.getuid() else None


def _authkey(folder: Path) -> bytes | None:
    path = folder / "authkey"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        return key if len(key) == KEY_BYTES else None
    key = secrets.token_bytes(KEY_BYTES)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def _reach(address: Path, key: bytes) -> Connection | None:
    try:
        return Client(str(address), family="AF_UNIX", authkey=key)
    except (OSError, EOFError) as exc:  # no daemon, a stale socket, a daemon going away
        log.debug("engine daemon at %s: %s", address, exc)
        return None
    except Exception as exc:  # AuthenticationError: not ours; do the work without it
        log.warning("engine daemon at %s refused this run: %s", address, exc)
        return None


def address() -> tuple[Path, bytes] | None:
    """Where the daemon listens, and the key it asks for; None when no private folder or key
    can be had (no daemon then)."""
    folder = private_folder()
    key = _authkey(folder) if folder is not None else None
    if folder is None or key is None:
        return None
    return folder / f"engine-{build_key()}.sock", key


def connect(log_path: Path, *, start: bool = True) -> Connection | None:
    """A connection to the daemon, started (detached, logging to ``log_path``) when there is
    none and ``start``; None when it cannot be reached in time, and the run does without it."""
    if (found := address()) is None:
        return None
    address_, key = found
    if (conn := _reach(address_, key)) is not None or not start:
        return conn
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with log_path.open("ab") as out:
            # Its own session: it outlives this run, and a Ctrl-C of the run is not its business.
            subprocess.Popen(
                [sys.executable, "-m", DAEMON_MODULE, str(address_), str(idle_seconds())],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
                cwd=address_.parent,  # requests carry absolute paths; pin no project folder
                env=_daemon_env(),
            )
    except OSError as exc:
        log.warning("could not start the engine daemon: %s", exc)
        return None
    deadline = time.monotonic() + CONNECT_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.02)
        if (conn := _reach(address_, key)) is not None:
            return conn
    log.warning("the engine daemon did not answer within %.0f s", CONNECT_WAIT_S)
    return None


# What the daemon's work (GX, nbconvert, the toolkit) reads from the environment. It outlives the
# run that starts it, so it gets nothing else: no credentials or secrets kept for minutes in a
# process that does not need them.
ENV_KEPT = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV", "SYSTEMROOT")
ENV_PREFIXES = ("LC_", "PYTHON", "JUPYTER", "IPYTHON", "XDG_", "TOOLKIT_", "GX_")


def _daemon_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in ENV_KEPT or k.startswith(ENV_PREFIXES)}


class _Activity:
    """Open sessions and the time of the last one's end: what the idle timeout looks at."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sessions = 0
        self.since = time.monotonic()

    def begin(self) -> None:
        with self.lock:
            self.sessions += 1

    def end(self) -> None:
        with self.lock:
            self.sessions -= 1
            self.since = time.monotonic()

    def idle_for(self) -> float:
        with self.lock:
            return 0.0 if self.sessions else time.monotonic() - self.since


def _lock_path(address: Path) -> Path:
    return address.with_name(address.name + ".lock")


def _exit_when_idle(activity: _Activity, idle: float, address: Path) -> None:
    def watch() -> None:
        while activity.idle_for() < idle:
            time.sleep(min(5.0, idle / 4))
        # A run connecting right now gets an end of file, and does its work itself. The lock
        # file goes too, so that the folder does not fill up with one per toolkit build: a
        # daemon starting right now may then run beside another one for a moment, unreached,
        # until it idles out.
        for path in (address, _lock_path(address)):
            with contextlib.suppress(OSError):
                path.unlink()
        os._exit(0)

    threading.Thread(target=watch, name="toolkit-daemon-idle", daemon=True).start()


def main(argv: list[str]) -> int:
    from toolkit.execute import engine_helper
    from toolkit.execute.engine_render import RenderWorker

    engine_helper.fault("start")
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    address, idle = Path(argv[0]), float(argv[1])
    key = _authkey(address.parent)
    lock = _lock_path(address).open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another daemon serves this address
    if key is None:
        return 1
    with contextlib.suppress(FileNotFoundError):
        address.unlink()  # a dead daemon's socket: nobody holds its lock
    listener = Listener(str(address), family="AF_UNIX", authkey=key)
    print(f"engine daemon {os.getpid()} listening at {address} (idle exit: {idle:g} s)", flush=True)
    activity = _Activity()
    _exit_when_idle(activity, idle, address)
    renders = RenderWorker()

    def warm() -> None:  # nbconvert is the render process's, not the daemon's
        engine_helper.warm_all(html=False, mlflow=True)
        renders.warm_up()

    threading.Thread(target=warm, name="toolkit-daemon-warm", daemon=True).start()
    work = threading.Lock()  # one check or registry call at a time, whichever run sent it

    def session(conn: Connection) -> None:
        try:
            engine_helper.serve(conn, conn, work, renders)
        finally:
            conn.close()
            activity.end()

    while True:
        try:
            conn = listener.accept()
        except Exception as exc:  # a client that failed the challenge, or went away
            print(f"refused a connection: {exc}", file=sys.stderr)
            continue
        activity.begin()
        threading.Thread(target=session, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
