"""Governance on top of the store: the release policy bound to a model, and versions that must
never be released (unfinished source run, or marked unusable)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from toolkit.core.errors import PermissionRefused, RegistryError
from toolkit.release.admins import (
    SET_ADMINS,
    TAG_ADMINS,
    admins_value,
    clean_admins,
    creator,
    recorded_admins,
)
from toolkit.release.identity import MLFLOW_AUTH, Actor
from toolkit.release.store import RegistryStore
from toolkit.release.vocabulary import (
    CANDIDATE,
    MAX_TEXT,
    TAG_MLFLOW_RUN_ID,
    TAG_TRIGGERED_BY,
    TAG_UNUSABLE,
    PolicyRecord,
    ReleaseEntry,
    at_least_as_strict,
    now_iso,
    tighten,
    version_number,
)

if TYPE_CHECKING:
    from toolkit.specs.models import ReleaseSpec


class GovernedStore(RegistryStore):
    """The store, plus the policy a model carries, who may act as its release admin, and what
    blocks a version's release."""

    # --- release admins (see :mod:`.admins`) -------------------------------------------------

    def actor(self, as_name: str | None = None, *, model: str | None = None) -> Actor:
        """The author of a record: the caller, or ``as_name`` when a release admin of
        ``model`` acts for them (see :meth:`admin_refusal`)."""
        me = self.identity()
        name = (as_name or "").strip()
        if not name or name == me.name:
            return Actor(me.name, me.name, me.source)
        refusal = self.admin_refusal(model)
        if refusal is not None:
            who, hint = refusal
            raise PermissionRefused(
                f"you are {me.name!r} ({me.source}); acting as {name!r} is an admin override "
                f"that only {who} may use",
                hint=hint or f"leave the name out to act as {me.name}, or have {name} run it",
            )
        return Actor(name, me.name, me.source)

    def admin_refusal(self, model: str | None) -> tuple[str, str | None] | None:
        """None when the caller is a release admin of ``model``, else ``(who is, a hint)``.

        On an authenticating server: its admins. Else the admins recorded with the model (an
        unreadable list refuses); for a model not registered yet, the project's list (its
        registration records it). A model without a list has none, except that whoever first
        registered it records this project's list (in the history) when it names them.
        """
        me = self.identity()
        if me.source == MLFLOW_AUTH:
            return None if me.is_admin else ("the MLflow server's admins", None)
        rm = self._model_or_none(model) if model else None
        if rm is None:
            listed = self.admins or ()
            who = "the OS users listed in [tool.toolkit] release_admins"
            return None if me.name in listed else (who, None)
        recorded = recorded_admins(rm.name, rm.tags or {})
        fix = SET_ADMINS.format(model=rm.name)
        if recorded is None:
            if me.name in (self.admins or ()) and me.name == creator(self._history(rm)):
                self._record_project_admins(rm.name, Actor(me.name, me.name, me.source))
                return None
            return (
                f"the release admins recorded with {rm.name!r} (none are)",
                f"whoever first registered {rm.name!r} records them once: {fix}",
            )
        if me.name in recorded:
            return None
        hint = None
        if me.name in (self.admins or ()):
            hint = (
                "this project's [tool.toolkit] release_admins names you, but the admins "
                f"recorded with {rm.name!r} are the ones that count; one of them changes them: "
                + fix
            )
        return f"the release admins recorded with {rm.name!r} ({', '.join(recorded)})", hint

    def _record_project_admins(self, name: str, who: Actor) -> None:
        """Record this project's release admins as the model's, unless it has a list already
        (or the project's list is not known here, or empty)."""
        if not self.admins or TAG_ADMINS in (self._model(name).tags or {}):
            return
        value = admins_value(self.admins)
        self._write(self._client.set_registered_model_tag, name, TAG_ADMINS, value)
        self._append(
            name, "admins_recorded", None, None, who,
            reason="release admins: " + ", ".join(self.admins)
            + " (this project's [tool.toolkit] release_admins)",
        )  # fmt: skip

    # --- the policy bound to the model -------------------------------------------------------

    def _bind_policy(self, name: str, record: PolicyRecord, who: Actor) -> None:
        """Record ``record`` on a model that has none, or that it tightens; else keep the
        recorded one (a looser spec never loosens a model's policy)."""
        current = PolicyRecord.from_tags(name, self._model(name).tags or {})
        if current is not None and (
            current.policy == record.policy or not at_least_as_strict(record.policy, current.policy)
        ):
            return
        for key, value in record.tags().items():
            self._write(self._client.set_registered_model_tag, name, key, value)
        if current is not None:
            self._append(name, "policy_tightened", None, None, who, reason=record.describe())
        else:
            self._record_project_admins(name, who)

    def policy(self, model_name: str, tightened_by: ReleaseSpec | None = None) -> ReleaseSpec:
        """The release policy of ``model_name``, tightened by ``tightened_by`` if given.

        A model without a recorded policy (registered before policies were bound to models, or
        by hand) is refused, never treated as "no policy"."""
        with self._guard(f"read the release policy of {model_name!r}"):
            recorded = PolicyRecord.from_tags(model_name, self._model(model_name).tags or {})
        if recorded is None:
            raise RegistryError(
                f"{model_name!r} has no recorded release policy, so it cannot be reviewed or "
                "promoted (it was registered before policies were bound to models, or by hand)",
                hint="run the pipeline that trains it again (its next registration records the "
                f"policy), or pass --pipeline SPEC naming the spec whose model is {model_name}",
            )
        return recorded.policy if tightened_by is None else tighten(recorded.policy, tightened_by)

    def policy_record(self, model_name: str) -> PolicyRecord | None:
        with self._guard(f"read the release policy of {model_name!r}"):
            return PolicyRecord.from_tags(model_name, self._model(model_name).tags or {})

    def record_policy(
        self, model_name: str, record: PolicyRecord, *, reason: str, by: str | None = None
    ) -> ReleaseEntry:
        """Record ``record`` as the policy of ``model_name``: anyone for a model that has none
        yet; replacing a recorded policy by anything not at least as strict needs a release
        admin of the model (the only way to loosen a policy, and it is in the history). The
        first policy recorded also records this project's release admins (:mod:`.admins`)."""
        if not reason.strip():
            raise RegistryError("recording a release policy needs a reason")
        with self._guard(f"record the release policy of {model_name!r}"), self._lock(model_name):
            who = self.actor(by, model=model_name)
            try:
                current = PolicyRecord.from_tags(model_name, self._model(model_name).tags or {})
                damaged = None
            except RegistryError as exc:  # unreadable: only an admin may record one again
                current, damaged = None, exc
            loosens = current is not None and not at_least_as_strict(record.policy, current.policy)
            refusal = self.admin_refusal(model_name) if loosens or damaged else None
            if refusal is not None:
                admins, hint = refusal
                what = "replace the unreadable" if damaged else "loosen the"
                now = str(damaged) if damaged else current.describe() if current else ""
                raise PermissionRefused(
                    f"this would {what} release policy of {model_name!r} ({now}); "
                    f"only {admins} may",
                    hint=hint,
                )
            for key, value in record.tags().items():
                self._write(self._client.set_registered_model_tag, model_name, key, value)
            action = "policy_recorded" if current is None and not damaged else "policy_changed"
            entry = self._append(
                model_name, action, None, None, who, reason=f"{reason} - {record.describe()}"
            )
            if current is None and not damaged:
                self._record_project_admins(model_name, who)
            return entry

    def release_admins(self, model_name: str) -> tuple[str, ...] | None:
        """The release admins recorded with ``model_name`` (None: none recorded); an
        unreadable list raises :class:`PermissionRefused`."""
        with self._guard(f"read the release admins of {model_name!r}"):
            return recorded_admins(model_name, self._model(model_name).tags or {})

    def set_admins(self, model_name: str, names: Iterable[str], *, reason: str) -> ReleaseEntry:
        """Replace the release admins recorded with ``model_name`` (in the history, with the
        reason): a recorded admin may, or a server admin. A model with no list, or an
        unreadable one, gets one from whoever first registered it, and only from them."""
        names = clean_admins(names)
        if not reason.strip():
            raise RegistryError("changing a model's release admins needs a reason")
        with self._guard(f"record the release admins of {model_name!r}"), self._lock(model_name):
            who = self.actor()
            rm = self._model(model_name)
            try:
                listed = recorded_admins(model_name, rm.tags or {})
            except PermissionRefused:  # unreadable: recorded again like a missing list
                listed = None
            hint = None
            if who.source == MLFLOW_AUTH:
                allowed, only = self.identity().is_admin, "the MLflow server's admins"
            elif listed:
                allowed, only = who.name in listed, f"its release admins ({', '.join(listed)})"
                if who.name in (self.admins or ()):
                    hint = (
                        "this project's [tool.toolkit] release_admins names you; the list "
                        "recorded with the model is the one that counts"
                    )
            else:
                first = creator(self._history(rm))
                allowed = who.name == first
                only = f"whoever first registered it ({first or 'unknown: it has no history'})"
            if not allowed:
                raise PermissionRefused(
                    f"you are {who.name!r} ({who.source}); the release admins of "
                    f"{model_name!r} may be changed only by {only}",
                    hint=hint,
                )
            self._write(
                self._client.set_registered_model_tag, model_name, TAG_ADMINS, admins_value(names)
            )
            action = "admins_recorded" if listed is None else "admins_changed"
            was = f" (were {', '.join(listed)})" if listed else ""
            return self._append(
                model_name, action, None, None, who,
                reason=f"{reason} - release admins: {', '.join(names)}{was}",
            )  # fmt: skip

    def tag_version(self, model_name: str, version: str | int, key: str, value: str) -> None:
        """Set one tag on a version (e.g. where its latest model card is)."""
        version = version_number(version)
        with self._guard(f"tag {model_name!r} v{version}"):
            self._write(self._client.set_model_version_tag, model_name, version, key, value)

    # --- versions that must not be released --------------------------------------------------

    def mark_unusable(self, model_name: str, version: str | int, *, reason: str) -> None:
        """Mark a version so it can never be approved or promoted: for a version registered by
        a run that then failed (the caller's run record could not be written, or it was
        interrupted). Idempotent; the mark and a history entry stay in the registry."""
        version = version_number(version)
        with self._guard(f"mark {model_name!r} v{version} unusable"), self._lock(model_name):
            who = self.actor()
            self._mv(model_name, version)
            mark = {"reason": reason[:MAX_TEXT], "at": now_iso(), "by": who.name}
            self._write(
                self._client.set_model_version_tag,
                model_name,
                version,
                TAG_UNUSABLE,
                json.dumps(mark),
            )
            self._append(model_name, "marked_unusable", None, version, who, reason=reason)
            if self._aliases(self._model(model_name)).get(CANDIDATE) == version:
                self._drop_alias(model_name, CANDIDATE)

    def withdraw_run(self, model_name: str, run_id: str, *, reason: str) -> list[str]:
        """:meth:`mark_unusable` every version of ``model_name`` registered from MLflow run
        ``run_id``: a run interrupted while it registered never learnt the version's number.
        Returns the versions marked."""
        marked = [str(v.version) for v in self._versions(model_name) if v.run_id == run_id]
        for version in marked:
            self.mark_unusable(model_name, version, reason=reason)
        return marked

    def _drop_alias(self, name: str, alias: str) -> None:
        """Remove a convenience alias. A server may let EDIT users set but not delete aliases
        (MANAGE): the alias is only a pointer, so that refusal changes nothing that matters."""
        try:
            self._client.delete_registered_model_alias(name, alias)
        except Exception as exc:
            if getattr(exc, "error_code", None) not in (
                "PERMISSION_DENIED",
                "RESOURCE_DOES_NOT_EXIST",
            ):
                raise

    def _blockers(self, mv: Any) -> tuple[str | None, frozenset[str]]:
        """``(why this version may not be released or None, names its source run records)``.

        The source run must have finished successfully: a version registered by a run that
        later FAILED, was KILLED, is still RUNNING (registration precedes the run's end) or
        was deleted is not a release."""
        tags = mv.tags or {}
        if TAG_UNUSABLE in tags:
            try:
                why = json.loads(tags[TAG_UNUSABLE]).get("reason", "")
            except (TypeError, ValueError, AttributeError):
                why = tags[TAG_UNUSABLE]
            return f"it was marked unusable ({why})", frozenset()
        run_id = tags.get(TAG_MLFLOW_RUN_ID) or mv.run_id
        if not run_id:
            return "it records no source run, so nothing shows its run finished", frozenset()
        try:
            run = self._client.get_run(run_id)
        except Exception as exc:
            if not self._missing(exc):
                raise
            return f"its source run {run_id} no longer exists", frozenset()
        named = frozenset(
            v for k in ("mlflow.user", TAG_TRIGGERED_BY) if (v := run.data.tags.get(k))
        )
        if run.info.lifecycle_stage == "deleted":
            return f"its source run {run_id} was deleted", named
        if run.info.status != "FINISHED":
            state = (
                "is still RUNNING" if run.info.status == "RUNNING" else f"ended {run.info.status}"
            )
            return f"its source run {run_id} {state}, not FINISHED", named
        return None, named
