"""Run one toolkit command as a second person: ``make demo``'s reviewer.

The example forbids self-approval, and on a local store the reviewer is the OS user, who also
trained the model. A real team reviews on an MLflow server with authentication, where the
reviewer is the account the server authenticated. This script does that for the demo: it serves
the project's own tracking store with MLflow's basic-auth app on loopback, creates the account
USER (a fresh random password, in a throwaway auth database under .cache/), grants it EDIT on
MODEL only, runs the command with that account's credentials, and stops the server.

    python -m toolkit.demo.second_reviewer USER MODEL -- toolkit review approve MODEL candidate

The accounts are made through the auth app's REST API (what ``mlflow.server.get_app_client``
calls), so this process never imports MLflow; the server runs as ``python -m mlflow``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

from toolkit.core.settings import load_settings

# The basic-auth app's routes (mlflow/server/auth/routes.py in MLflow 3.x).
CREATE_USER = "/api/2.0/mlflow/users/create"
GRANT_PERMISSION = "/api/3.0/mlflow/users/permissions/grant"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _post(url: str, route: str, body: dict[str, str], login: tuple[str, str]) -> None:
    """POST ``body`` as JSON with basic auth; an HTTP error raises (and the demo stops)."""
    token = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
    request = urllib.request.Request(
        url + route,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Basic {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30):
        pass


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    user, model, command = argv[0], argv[1], argv[3:]
    settings = load_settings()
    if not settings.tracking_uri.startswith("sqlite:///"):
        print(f"the demo reviews against a local SQLite store, not {settings.tracking_uri}")
        return 2
    folder = settings.root / ".cache" / "demo-auth"
    shutil.rmtree(folder, ignore_errors=True)  # a fresh admin password and accounts each time
    folder.mkdir(parents=True)
    admin = ("admin", "admin-" + os.urandom(8).hex())
    ini = folder / "basic_auth.ini"
    ini.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{folder / 'basic_auth.db'}\nadmin_username = {admin[0]}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # MLflow's credential cache: each request would otherwise re-check a scrypt hash.
        "auth_cache_ttl_seconds = 600\n"
    )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": os.urandom(16).hex(),
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    server = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth"]
    server += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server += ["--backend-store-uri", settings.tracking_uri]
    server += ["--default-artifact-root", str(settings.artifacts_dir)]
    with (folder / "server.log").open("wb") as log:
        proc = subprocess.Popen(server, env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                print((folder / "server.log").read_text(errors="replace")[-2000:])
                return 1
            time.sleep(0.25)
        import warnings

        # The server app's imports warn about Starlette internals: noise, not the demo's concern.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        password = f"pw-{user}-{os.urandom(8).hex()}"
        _post(url, CREATE_USER, {"username": user, "password": password}, admin)
        grant = {"username": user, "resource_type": "registered_model", "resource_id": model}
        _post(url, GRANT_PERMISSION, {**grant, "permission": "EDIT"}, admin)
        print(f"as {user} (authenticated by the MLflow server at {url}): {' '.join(command)}")
        reviewer_env = {**os.environ, "MLFLOW_TRACKING_URI": url,
                        "MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}  # fmt: skip
        return subprocess.run(command, env=reviewer_env, check=False).returncode
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
