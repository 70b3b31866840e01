"""Servers for tests, on loopback: free ports, health waits, process-group teardown, and an
MLflow tracking server with MLflow's own authentication (``--app-name basic-auth``).

Each server runs in its own session (``start_new_session=True``) so that one ``killpg`` stops
it with every child it spawned (uvicorn workers, job consumers)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from support.template_store import migrated_store

STARTUP_TIMEOUT_S = 600.0  # ~7 s on an idle 2-core machine; minutes on a loaded shared one


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy(url: str, path: str = "/health") -> bool:
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], log: Path, *, path: str = "/health"
) -> None:
    """Wait until ``url`` + ``path`` answers 200; raise with the log's tail if the process dies or
    the startup timeout passes."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not healthy(url, path):
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(
                f"server at {url} did not become healthy (rc={proc.poll()}):\n{tail}"
            )
        time.sleep(0.25)


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session=True``), then
    SIGKILL it if it is still there after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def spawn(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (so ``stop_group`` reaches every child it spawns), with
    stdout and stderr in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def mlflow_env(**extra: str) -> dict[str, str]:
    """The environment for an ``mlflow`` subprocess: no telemetry, and this venv's ``bin`` on
    PATH (the scoring server execs ``uvicorn`` by name, and pytest may run unactivated)."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **extra}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _start_tracking_server(root: Path, *, store: bool) -> tuple[subprocess.Popen[bytes], str]:
    if store:
        # --artifacts-destination makes the server's default artifact root this proxy URI.
        migrated_store(root / "server.db", artifact_root="mlflow-artifacts:/")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri"]
    argv += [f"sqlite:///{root / 'server.db'}", "--artifacts-destination", str(root / "artifacts")]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    # One worker and no job runner: ~2 processes and ~4 s to ready instead of ~16 and ~15 s.
    env = mlflow_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    proc = spawn(argv, cwd=root, env=env, log=root / "server.log")
    try:
        wait_healthy(url, proc, root / "server.log")
    except BaseException:
        stop_group(proc)
        raise
    return proc, url


@contextlib.contextmanager
def tracking_server(root: Path, *, store: bool = False) -> Iterator[str]:
    """A plain ``mlflow server`` (SQLite store and artifacts under ``root``) on loopback; its URL.

    ``store=True``: the server opens a migrated, empty store (``template_store``) instead of
    migrating a new one."""
    proc, url = _start_tracking_server(root, store=store)
    try:
        yield url
    finally:
        stop_group(proc)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _stop_foreign_group(pgid: int, timeout: float = 20.0) -> None:
    """``stop_group`` for a server another process started (so this one cannot wait for it):
    SIGTERM its group, then SIGKILL what is left after ``timeout``."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pgid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                return
            if state == "Z":  # exited; its parent, the worker that started it, reaps it
                return
            time.sleep(0.1)


_SERVING_OTHERS: list[subprocess.Popen[bytes]] = []


@contextlib.contextmanager
def shared_tracking_server(shared: Path) -> Iterator[tuple[str, Path]]:
    """One ``tracking_server`` (migrated store) for every process that enters this with the same
    ``shared`` folder, e.g. the pytest-xdist workers of one run: ``(url, artifacts folder)``.

    A server costs ~15 s of CPU to start (two processes importing MLflow); started once per
    worker, each worker whose files use it paid that. The first to enter starts it, the others
    count themselves in (``shared/mlflow-server.json``, under a file lock), and the last to leave
    stops it. Tests that use it already share it with whatever ran before them on their worker,
    so they name their experiments and models apart.
    """
    shared.mkdir(parents=True, exist_ok=True)
    state = shared / "mlflow-server.json"
    proc: subprocess.Popen[bytes] | None = None
    with _locked(shared / "mlflow-server.lock"):
        info = json.loads(state.read_text()) if state.exists() else None
        if info is None:
            root = Path(tempfile.mkdtemp(prefix="mlflow-server-", dir=shared))
            proc, url = _start_tracking_server(root, store=True)
            info = {"url": url, "pgid": proc.pid, "root": str(root), "users": 0}
        info["users"] += 1
        state.write_text(json.dumps(info))
    try:
        yield info["url"], Path(info["root"]) / "artifacts"
    finally:
        with _locked(shared / "mlflow-server.lock"):
            info = json.loads(state.read_text())
            info["users"] -= 1
            if info["users"] > 0:
                state.write_text(json.dumps(info))
                if proc is not None:  # still serving others: not garbage while this one exits
                    _SERVING_OTHERS.append(proc)
            else:
                state.unlink()
                if proc is not None and proc.pid == info["pgid"]:
                    stop_group(proc)
                else:
                    _stop_foreign_group(info["pgid"])


@contextlib.contextmanager
def model_server(model_uri: str, tracking_uri: str, folder: Path) -> Iterator[str]:
    """``mlflow models serve`` of ``model_uri`` on loopback (local env, one worker); its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri]
    argv += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    env = mlflow_env(MLFLOW_TRACKING_URI=tracking_uri)
    proc = spawn(argv, cwd=folder, env=env, log=folder / "serve.log")
    try:
        wait_healthy(url, proc, folder / "serve.log", path="/ping")
        yield url
    finally:
        stop_group(proc)


@dataclass
class AuthServer:
    """A running ``mlflow server --app-name basic-auth``: its URL and its accounts."""

    url: str
    root: Path
    admin: tuple[str, str]
    passwords: dict[str, str] = field(default_factory=dict)

    def admin_client(self):
        """MLflow's user/permission admin client, authenticated as the server's admin."""
        from mlflow.server import get_app_client

        with credentials(*self.admin):
            return get_app_client("basic-auth", tracking_uri=self.url)

    def add_user(self, name: str) -> str:
        """Create ``name`` with a fresh password (12+ characters, as the server requires)."""
        password = f"pw-{name}-{os.urandom(6).hex()}"
        with credentials(*self.admin):
            self.admin_client().create_user(name, password)
        self.passwords[name] = password
        return password

    def grant_model(self, user: str, model: str, permission: str) -> None:
        """Give ``user`` ``permission`` (READ, USE, EDIT, MANAGE, DENY) on a registered model."""
        with credentials(*self.admin):
            self.admin_client().grant_user_permission(user, "registered_model", model, permission)

    def as_user(self, name: str | None) -> contextlib.AbstractContextManager[None]:
        """MLflow client credentials of ``name`` (None: no credentials at all)."""
        return credentials(name, self.passwords[name] if name else None)


@contextlib.contextmanager
def credentials(username: str | None, password: str | None) -> Iterator[None]:
    """Set (or, with None, remove) MLflow's client credentials for the duration of the block:
    MLflow reads them from the environment on every request."""
    keys = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
    saved = {k: os.environ.get(k) for k in keys}
    try:
        for key, value in zip(keys, (username, password), strict=True):
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def mlflow_auth_server(
    root: Path, *, default_permission: str = "READ", store: bool = False
) -> Iterator[AuthServer]:
    """Start an MLflow tracking server with basic-auth on loopback in ``root``; stop it (and
    every child) on exit. ``default_permission=READ``: a governed registry, where only a
    model's creator (MANAGE) and users granted EDIT may write to it. ``store=True``: its
    tracking store starts migrated (``template_store``); the auth database is still new."""
    root.mkdir(parents=True, exist_ok=True)
    if store:
        migrated_store(root / "mlflow.db", artifact_root=(root / "artifacts").resolve())
    admin = ("admin", f"admin-{os.urandom(8).hex()}")
    ini = root / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = sqlite:///{root / 'basic_auth.db'}\n"
        f"admin_username = {admin[0]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # MLflow's own credential cache (off by default): without it every request re-checks a
        # scrypt hash, ~0.14 s of CPU, and one CLI command makes dozens of requests. Only
        # successful checks are cached; wrong or missing credentials are still refused each time.
        "auth_cache_ttl_seconds = 600\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",  # 2 processes instead of 9
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        env.pop(key, None)
    log_path = root / "server.log"
    argv = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    argv += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    argv += ["--default-artifact-root", str(root / "artifacts")]
    proc = spawn(argv, cwd=root, env=env, log=log_path)
    try:
        wait_healthy(url, proc, log_path)
        yield AuthServer(url, root, admin)
    finally:
        stop_group(proc)
