"""Who is acting on the registry: taken from the system, never from a flag or an env variable.

* **Local store** (SQLite, file store) and an MLflow server **without** authentication: the OS
  user of the process, looked up by its effective uid in the password database. Not
  ``getpass.getuser()``, which believes ``$USER``/``$LOGNAME`` first: ``USER=bob toolkit ...``
  must not make anyone bob.
* **MLflow server with authentication** (``mlflow server --app-name basic-auth``): the user the
  server authenticated, from ``GET /api/2.0/mlflow/users/current`` made with the credentials
  MLflow's own client sends with every write (``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` or
  ``~/.mlflow/credentials``, read at call time). The server also decides what that user may do:
  its permissions on the registered model apply to every write that follows.

Limits, stated plainly: on a local store anyone who can write the database file can write any
record with MLflow's API or SQL, so the OS user only keeps honest people honest; the server is
the place for a boundary. There, tags (including the trainer recorded at registration) are
client claims too: a user with EDIT on the model can rewrite them through the raw API. The
toolkit never writes a name it did not get from the system, and records overrides as such.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from toolkit.core.errors import PermissionRefused, TrackingError
from toolkit.release import mlflow_registry

OS_USER, MLFLOW_AUTH = "os-user", "mlflow-auth"
CURRENT_USER_ENDPOINT = "/api/2.0/mlflow/users/current"


@dataclass(frozen=True)
class Identity:
    """The system's answer to "who is this": a name, where it came from, and admin rights there."""

    name: str
    source: str  # OS_USER or MLFLOW_AUTH
    is_admin: bool = False


@dataclass(frozen=True)
class Actor:
    """Who a record names (``name``) and who really made it (``real``): equal unless an admin
    recorded a decision for someone else, which the record then says (``override``)."""

    name: str
    real: str
    source: str

    @property
    def override(self) -> bool:
        return self.name != self.real

    def record(self) -> dict[str, object]:
        """The fields every history entry and review carries about its author."""
        data: dict[str, object] = {"identity": self.source}
        if self.override:
            data |= {"recorded_by": self.real, "override": True}
        return data


def os_identity() -> Identity:
    """The OS user of this process, by effective uid (``uid:N`` when it has no passwd entry,
    as in containers started with an arbitrary uid)."""
    uid = os.geteuid()
    try:
        import pwd

        return Identity(pwd.getpwuid(uid).pw_name, OS_USER)
    except (KeyError, ImportError):
        return Identity(f"uid:{uid}", OS_USER)


def server_identity(tracking_uri: str) -> Identity | None:
    """The authenticated user of an MLflow server, or None when the server has no
    authentication (the endpoint does not exist there)."""
    try:
        response = mlflow_registry.server_request(tracking_uri, CURRENT_USER_ENDPOINT)
    except Exception as exc:
        raise TrackingError(
            f"could not ask the MLflow server at {tracking_uri} who you are: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if response.status_code == 404:
        return None
    if response.status_code == 401:
        raise PermissionRefused(
            f"the MLflow server at {tracking_uri} did not authenticate you",
            hint="set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
            "~/.mlflow/credentials) to your account on that server",
        )
    try:
        response.raise_for_status()
        user = response.json()["user"]
        return Identity(str(user["username"]), MLFLOW_AUTH, bool(user.get("is_admin")))
    except Exception as exc:
        raise TrackingError(
            f"the MLflow server at {tracking_uri} gave no usable answer to "
            f"{CURRENT_USER_ENDPOINT} (HTTP {response.status_code}): {exc}"
        ) from exc


def system_identity(tracking_uri: str) -> Identity:
    """The identity that applies to ``tracking_uri``: the server's user when it authenticates,
    else the OS user."""
    if tracking_uri.startswith(("http://", "https://")):
        found = server_identity(tracking_uri)
        if found is not None:
            return found
    return os_identity()
