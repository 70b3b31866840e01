"""The registry's plumbing: one MLflow client, the per-model lock, idempotent writes, the
append-only history, alias settling, identity, and read-only queries (see the package doc)."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from toolkit.core.errors import (
    LockedError,
    PermissionRefused,
    RegistryError,
    ToolkitError,
    TrackingError,
    did_you_mean,
)
from toolkit.core.locks import file_lock
from toolkit.gates.evaluation import GateReport
from toolkit.release import mlflow_registry
from toolkit.release.identity import Actor, Identity, system_identity
from toolkit.release.vocabulary import (
    CHAMPION,
    ENTRY_KEY,
    MAX_TEXT,
    MOVES,
    PERMANENT,
    RELEASE_PREFIX,
    SETTLE_ROUNDS,
    TAG_GATES,
    TAG_METRICS_RUN_ID,
    WRITE_ATTEMPTS,
    ModelVersionInfo,
    ReleaseEntry,
    lock_path,
    now_iso,
    parse_entry,
    parse_reviews,
    version_number,
)


class RegistryStore:
    """The MLflow registry at ``tracking_uri``, as the release operations use it.

    ``local_lock=False`` skips the per-model file lock (layer 1 of the package docstring); it
    exists to test the lockless path, which is what clients on different machines get.
    ``admins`` is the project's ``[tool.toolkit] release_admins``: recorded with a model when its
    policy is first recorded (:mod:`.admins`), after which only the model's recorded admins may
    act for someone else (``reviewer=``/``by=`` naming another person) or loosen its policy
    where identity is the OS user; on an authenticating MLflow server only the server's admins
    may. ``None``: the project's list is not known here, and nothing is recorded. Backend
    failures raise :class:`TrackingError`; invalid requests :class:`RegistryError`, refusals by
    identity or server permission :class:`PermissionRefused`, and then nothing has changed.
    """

    def __init__(
        self,
        tracking_uri: str,
        *,
        lock_timeout: float = 60.0,
        local_lock: bool = True,
        admins: Iterable[str] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.lock_timeout = lock_timeout
        self.local_lock = local_lock
        self.admins = None if admins is None else tuple(dict.fromkeys(admins))
        self._identity: Identity | None = None
        self._client = mlflow_registry.connect(tracking_uri)

    # --- identity ----------------------------------------------------------------------------

    def identity(self) -> Identity:
        """Who this process is to the registry (asked once per instance)."""
        if self._identity is None:
            self._identity = system_identity(self.tracking_uri)
        return self._identity

    # --- plumbing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except ToolkitError:
            raise
        except Exception as exc:  # MlflowException, HTTP and SQL errors
            code = getattr(exc, "error_code", None)
            if code == "UNAUTHENTICATED":
                raise PermissionRefused(
                    f"the MLflow server at {self.tracking_uri} did not authenticate you, so it "
                    f"refused to {action}",
                    hint="set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                    "~/.mlflow/credentials) to your account on that server",
                ) from exc
            if code == "PERMISSION_DENIED":
                who = self._identity.name if self._identity else "you"
                raise PermissionRefused(
                    f"the MLflow server at {self.tracking_uri} refused to let {who} {action} "
                    "(PERMISSION_DENIED)",
                    hint="ask someone with MANAGE on the model (or an admin) to grant you EDIT",
                ) from exc
            raise TrackingError(
                f"could not {action} in the registry at {self.tracking_uri}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    @contextlib.contextmanager
    def _lock(self, model: str) -> Iterator[None]:
        if not self.local_lock:
            yield
            return
        path = lock_path(self.tracking_uri, model)
        busy = LockedError(
            f"another release operation on model {model!r} held its lock for "
            f"{self.lock_timeout:g} s ({path})"
        )
        with file_lock(path, timeout=self.lock_timeout, busy=lambda holder: busy):
            yield

    @staticmethod
    def _write(call: Any, *args: Any) -> None:
        """An idempotent write, retried on transient conflicts: without the lock two clients
        creating the same alias race in MLflow's select-then-insert (an IntegrityError)."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                call(*args)
                return
            except Exception as exc:
                code = getattr(exc, "error_code", None)
                if code in PERMANENT or attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))

    @staticmethod
    def _missing(exc: Exception) -> bool:
        return getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"

    def _model_names(self) -> list[str]:
        names, token = [], None
        while True:
            page = self._client.search_registered_models(max_results=1000, page_token=token)
            names += [m.name for m in page]
            token = page.token
            if not token:
                return names

    def _model_or_none(self, name: str) -> Any:
        """The registered model ``name``, None when it is not registered."""
        try:
            return self._client.get_registered_model(name)
        except Exception as exc:
            if not self._missing(exc):
                raise
        return None

    def _model(self, name: str) -> Any:
        try:
            return self._client.get_registered_model(name)
        except Exception as exc:
            if not self._missing(exc):
                raise
        hint = did_you_mean(name, self._model_names())
        raise RegistryError(f"no registered model {name!r} in {self.tracking_uri}", hint=hint)

    def _versions(self, name: str) -> list[Any]:
        if "'" in name:
            raise RegistryError(f"model names with quotes are not supported: {name!r}")
        found, token = [], None
        while True:
            page = self._client.search_model_versions(
                f"name='{name}'", max_results=1000, page_token=token
            )
            found += list(page)
            token = page.token
            if not token:
                return found

    def _mv(self, name: str, version: str) -> Any:
        self._model(name)
        try:
            return self._client.get_model_version(name, version)
        except Exception as exc:
            if not self._missing(exc):
                raise
        known = sorted((int(v.version) for v in self._versions(name)), reverse=True)
        listed = ", ".join(map(str, known[:20])) or "none"
        raise RegistryError(f"model {name!r} has no version {version}; versions: {listed}")

    def _info(self, mv: Any, aliases: Mapping[str, str]) -> ModelVersionInfo:
        version, tags = str(mv.version), dict(mv.tags or {})
        gates = None
        with contextlib.suppress(TypeError, ValueError, KeyError):
            gates = GateReport.from_dict(json.loads(tags[TAG_GATES]))
        created = datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC).isoformat()
        return ModelVersionInfo(
            name=mv.name,
            version=version,
            source=mv.source,
            run_id=mv.run_id,
            model_id=getattr(mv, "model_id", None),
            created_at=created if mv.creation_timestamp else None,
            aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
            tags=tags,
            gates=gates,
            reviews=parse_reviews(tags),
        )

    @staticmethod
    def _aliases(rm: Any) -> dict[str, str]:
        return {alias: str(v) for alias, v in (rm.aliases or {}).items()}  # int on sqlite

    def _history(self, rm: Any) -> list[ReleaseEntry]:
        entries = (parse_entry(rm.name, k, v) for k, v in (rm.tags or {}).items())
        return sorted((e for e in entries if e is not None), key=lambda e: e.key)

    def _append(
        self,
        name: str,
        action: str,
        frm: str | None,
        to: str | None,
        by: Actor,
        *,
        rm: Any = None,
        **extra: Any,
    ) -> ReleaseEntry:
        """Add one history entry under a fresh key: never overwrites (append-only). ``rm``: the
        model as just read under the caller's lock, which saves reading it again."""
        tags = (rm if rm is not None else self._model(name)).tags or {}
        seqs = [int(m.group(1)) for k in tags if (m := ENTRY_KEY.match(k))]
        key = f"{RELEASE_PREFIX}{max(seqs, default=0) + 1:08d}-{uuid.uuid4().hex[:8]}"
        value: dict[str, object] = {
            "action": action,
            "from": frm,
            "to": to,
            "by": by.name[:200],
            "at": now_iso(),
        }
        value |= {**by.record(), **extra}
        value["reason"] = str(value.get("reason") or "")[:MAX_TEXT]
        self._write(self._client.set_registered_model_tag, name, key, json.dumps(value))
        entry = parse_entry(name, key, json.dumps(value))
        assert entry is not None
        return entry

    def _settle(self, name: str) -> str | None:
        """Make the champion alias agree with the latest promote/rollback entry (see module
        doc) and return it. Run before each move too: the entry is the write-ahead record, so
        a writer that died between its entry and its alias write is completed, not undone."""
        for _ in range(SETTLE_ROUNDS):
            rm = self._model(name)  # history and aliases in one read
            moves = [e for e in self._history(rm) if e.action in MOVES]
            want, have = (moves[-1].to_version if moves else None), self._aliases(rm).get(CHAMPION)
            if want is None or have == want:
                return have
            self._write(self._client.set_registered_model_alias, name, CHAMPION, want)
        raise TrackingError(f"the champion alias of {name!r} kept changing; run the command again")

    # --- queries -----------------------------------------------------------------------------

    def get_version(self, model_name: str, version: str | int) -> ModelVersionInfo:
        """One version, with its aliases, tags, gate results and reviews."""
        version = version_number(version)
        with self._guard(f"read {model_name!r} v{version}"):
            mv = self._mv(model_name, version)
            return self._info(mv, self._aliases(self._model(model_name)))

    def resolve(self, model_name: str, ref: str | int) -> str:
        """A version number from a number or an alias (``candidate``, ``champion``)."""
        ref = str(ref)
        if ref.isdigit():
            return ref
        with self._guard(f"resolve {model_name!r}@{ref}"):
            aliases = self._aliases(self._model(model_name))
        for alias_name, version in aliases.items():
            if alias_name == ref:
                return str(version)
        raise RegistryError(
            f"model {model_name!r} has no version {ref!r} and no alias {ref!r}",
            hint=did_you_mean(ref, list(aliases)) or "pass a version number",
        )

    def releases(self, model_name: str) -> list[ReleaseEntry]:
        """The full history of ``model_name``, oldest first."""
        with self._guard(f"read the history of {model_name!r}"):
            return self._history(self._model(model_name))

    def champion_metrics(self, model_name: str) -> tuple[str | None, dict[str, float]]:
        """The champion's version and the metrics its gates read; ``(None, {})`` before the
        first release (including when the model is not registered yet)."""
        with self._guard(f"read the champion of {model_name!r}"):
            try:
                rm = self._client.get_registered_model(model_name)
            except Exception as exc:
                if self._missing(exc):
                    return None, {}
                raise
            version = self._aliases(rm).get(CHAMPION)
            if version is None:
                return None, {}
            return version, self._metrics(self._mv(model_name, version))

    def _metrics(self, mv: Any) -> dict[str, float]:
        tags = mv.tags or {}
        try:
            run = self._client.get_run(tags.get(TAG_METRICS_RUN_ID) or mv.run_id)
            return {k: float(v) for k, v in run.data.metrics.items()}
        except Exception as exc:  # the run was deleted: fall back on the values gates recorded
            if not self._missing(exc):
                raise
            report = self._info(mv, {}).gates
            return (
                {g.name: g.value for g in report.results if g.value is not None} if report else {}
            )
