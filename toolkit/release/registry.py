"""Model releases on the MLflow Model Registry: register, review, promote, roll back, audit.

A model version is treated like a software release. :meth:`Registry.register` refuses a version
whose gates failed, so such a model never reaches the registry; a registered version gets the
alias ``candidate``, reviewers approve or reject it (one version tag per reviewer, so
``min_approvals`` counts distinct people), :meth:`Registry.promote` moves the alias ``champion``
once the policy is met, and :meth:`Registry.rollback` moves it back in one call.

**Audit trail.** The history lives in the registry itself, so it survives the machine: one
registered-model tag per entry, ``toolkit.release.<seq:08d>-<uuid8>`` = JSON ``{action, from, to,
by, at, reason, forced, overrides}``. It is append-only: keys are never reused (the random suffix
keeps two writers that picked the same ``seq`` apart) and nothing here rewrites or deletes one.

**Concurrency.** MLflow has no compare-and-swap, so two promotions could interleave as "A writes
its entry, B writes its entry, B moves the alias, A moves the alias" and leave the alias
disagreeing with the history. Two layers prevent that:

1. *A per-model lock* serialises every write operation on one model: ``flock`` on a file next to
   the SQLite database (``<db dir>/.toolkit-locks/``), or in the temp dir for server URIs (which
   then only covers one machine). ``flock`` locks belong to open file descriptions, so they
   exclude threads of one process as well as processes. With it, ``from`` is always exact.
2. *Write the entry, then move the alias, then settle*, which keeps the end state consistent even
   without the lock (clients on different machines). The entries are totally ordered by key, and
   the invariant is "the champion alias equals the ``to`` of the latest promote/rollback entry".
   Settling re-reads the history and the alias and repairs the alias until one pass changes
   nothing. Every alias write is followed by a settle pass that starts after it; the last alias
   write overall is thus followed by a pass that sees every entry (each writer's entry precedes
   its own alias write) and an alias nobody changes again, so that pass finds it consistent or
   its repair is not the last write. No entry is lost; at worst two lockless promotions both
   record the same ``from``.

**Governance.** The release policy is bound to the registered model: recorded (tags, with the
source spec and its SHA-256) when a pipeline run first registers it; ``review`` and ``promote``
read it from there, and a policy given by the caller can only tighten it. Who acts comes from
the system (:mod:`toolkit.release.identity`), never from a flag: naming someone else needs an
admin override, recorded as such. A version whose source run did not finish successfully, or
that was marked unusable (:meth:`Registry.mark_unusable`), can be neither approved nor promoted.

MLflow is reached through :mod:`toolkit.release.mlflow_registry`, which imports it lazily: only an
explicit :class:`mlflow.MlflowClient`, never MLflow's process-global fluent state.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

from toolkit.core.errors import GateFailed, PermissionRefused, RegistryError, did_you_mean
from toolkit.release.registration import Registration
from toolkit.release.vocabulary import (
    CANDIDATE,
    CHAMPION,
    MAX_TEXT,
    MOVES,
    REVIEW_PREFIX,
    TAG_UNUSABLE,
    CandidateView,
    Decision,
    ModelVersionInfo,
    PolicyRecord,
    ReleaseEntry,
    Review,
    ReviewRecord,
    champion_stack,
    key_part,
    lock_path,
    now_iso,
    policy_problems,
    review_refusal,
    tighten,
    version_number,
)

if TYPE_CHECKING:
    from toolkit.specs.models import ReleaseSpec

__all__ = [
    "CANDIDATE",
    "CHAMPION",
    "CandidateView",
    "ModelVersionInfo",
    "PolicyRecord",
    "Registry",
    "ReleaseEntry",
    "ReviewRecord",
    "lock_path",
    "mark_unusable",
    "tighten",
]


class Registry(Registration):
    """Releases of registered models in the MLflow registry at ``tracking_uri``: registration,
    review, promotion and rollback (plumbing in :mod:`.store`, policy in :mod:`.governance`,
    logging and registering versions in :mod:`.registration`)."""

    # --- candidates --------------------------------------------------------------------------

    def candidates(
        self, model_name: str | None = None, *, policy: ReleaseSpec | None = None
    ) -> list[CandidateView]:
        """Versions whose gates passed that were never champion nor rejected, newest first.

        Each view says what still blocks its promotion (``problems``) under the model's recorded
        policy, tightened by ``policy`` if given; versions marked unusable are left out.
        """
        views = []
        with self._guard("list candidates"):
            for name in [model_name] if model_name else self._model_names():
                rm = self._model(name)
                aliases, history = self._aliases(rm), self._history(rm)
                released = {e.to_version for e in history if e.action in MOVES}
                champion = aliases.get(CHAMPION)
                champ_metrics = self._metrics(self._mv(name, champion)) if champion else {}
                try:
                    effective: ReleaseSpec | None = self.policy(name, policy)
                    no_policy = None
                except RegistryError as exc:
                    effective, no_policy = None, exc.message
                for mv in sorted(self._versions(name), key=lambda v: -int(v.version)):
                    info = self._info(mv, aliases)
                    if not info.gates_passed or info.version in released | {champion}:
                        continue
                    if TAG_UNUSABLE in info.tags:
                        continue
                    if any(r.decision == "rejected" for r in info.reviews):
                        continue
                    blocker, named = self._blockers(mv)
                    approvals: tuple[str, ...]
                    problems: tuple[str, ...]
                    if effective is None:
                        approved = (r.reviewer for r in info.reviews if r.decision == "approved")
                        approvals, problems = tuple(approved), (no_policy or "",)
                    else:
                        approvals, problems, _ = policy_problems(
                            info.tags, effective, named, first_release=champion is None
                        )
                    problems = ((blocker,) if blocker else ()) + tuple(problems)
                    links = {"model_uri": info.model_uri, "source": info.source}
                    links |= {k: v for k, v in info.tags.items() if k.endswith("run_id")}
                    if self.tracking_uri.startswith(("http://", "https://")):
                        base = self.tracking_uri.rstrip("/")
                        links["ui"] = f"{base}/#/models/{name}/versions/{info.version}"
                    views.append(
                        CandidateView(
                            version=info,
                            champion_version=champion,
                            champion_metrics=champ_metrics,
                            approvals=approvals,
                            problems=problems,
                            links=links,
                        )
                    )
        return views

    # --- review and release ------------------------------------------------------------------

    def review(
        self,
        model_name: str,
        version: str | int,
        *,
        decision: Decision,
        reviewer: str | None = None,
        note: str = "",
        policy: ReleaseSpec | None = None,
    ) -> ReviewRecord:
        """Record the caller's decision on a version (a tag per reviewer, plus a history entry).

        The reviewer is the caller's system identity; ``reviewer`` naming someone else is an
        admin override. The model's recorded policy applies, tightened by ``policy``: only its
        approvers may review when it lists some, and with ``forbid_self_approval`` whoever
        triggered the run cannot approve. A version from a run that did not finish, or marked
        unusable, cannot be approved.
        """
        version = version_number(version)
        if decision not in ("approved", "rejected"):
            raise RegistryError(f"a review decision is 'approved' or 'rejected', not {decision!r}")
        if reviewer is not None and not reviewer.strip():
            raise RegistryError("a review needs a reviewer name")
        with self._guard(f"review {model_name!r} v{version}"), self._lock(model_name):
            who = self.actor(reviewer, model=model_name)
            effective = self.policy(model_name, policy)
            mv = self._mv(model_name, version)
            aliases = self._aliases(self._model(model_name))
            blocker, named = self._blockers(mv)
            if blocker and decision == "approved":
                raise RegistryError(f"cannot approve {model_name!r} v{version}: {blocker}")
            refusal = review_refusal(who.name, decision, mv.tags or {}, effective, named)
            if refusal:
                hint = did_you_mean(who.name, effective.approvers) if effective.approvers else None
                raise PermissionRefused(
                    f"{who.name!r} cannot review {model_name!r}: {refusal}", hint=hint
                )
            if aliases.get(CHAMPION) == version:
                raise RegistryError(f"{model_name!r} v{version} is already the champion")
            recorded_by = who.real if who.override else None
            record = Review(who.name, decision, now_iso(), note[:MAX_TEXT], recorded_by)
            key = REVIEW_PREFIX + key_part(who.name)
            self._client.set_model_version_tag(model_name, version, key, json.dumps(asdict(record)))
            self._append(model_name, decision, None, version, who, reason=record.note)
            if decision == "rejected" and aliases.get(CANDIDATE) == version:
                self._drop_alias(model_name, CANDIDATE)
            tags = self._client.get_model_version(model_name, version).tags or {}
        approvals, problems, required = policy_problems(
            tags, effective, named, first_release=aliases.get(CHAMPION) is None
        )
        problems = ((blocker,) if blocker else ()) + problems
        return ReviewRecord(
            model_name, version, record, approvals, required, not problems, problems
        )

    def promote(
        self,
        model_name: str,
        version: str | int,
        *,
        policy: ReleaseSpec | None = None,
        by: str | None = None,
        force: bool = False,
        reason: str = "",
        readiness_gaps: tuple[str, ...] = (),
        readiness_source: str = "",
    ) -> ReleaseEntry:
        """Move ``champion`` to ``version`` if its gates passed and the policy is met.

        ``readiness_gaps`` are the required readiness controls its pipeline lacks (the caller
        scores them, :mod:`toolkit.commands.readiness`): any refuses it (exit 4) unless forced.
        ``readiness_source`` says where they were read (a spec, or the record made at
        registration), for the refusal.

        The policy is the model's recorded one, tightened by ``policy``. ``force=True`` (with a
        ``reason``) overrides the policy; the entry records that it did and what it overrode.
        Nothing overrides a source run that did not finish successfully or an unusable mark.
        """
        version = version_number(version)
        if force and not reason.strip():
            raise RegistryError("a forced promotion needs a reason")
        with self._guard(f"promote {model_name!r} v{version}"), self._lock(model_name):
            who = self.actor(by, model=model_name)
            effective = self.policy(model_name, policy)
            mv = self._mv(model_name, version)
            blocker, named = self._blockers(mv)
            if blocker:
                raise RegistryError(
                    f"cannot promote {model_name!r} v{version}: {blocker}",
                    hint="not even with --force: promote a version from a successful run",
                )
            current = self._settle(model_name)
            aliases = self._aliases(self._model(model_name))
            if current == version:
                raise RegistryError(f"{model_name!r} v{version} is already the champion")
            if readiness_gaps and not force:
                raise GateFailed(
                    f"cannot promote {model_name!r} v{version}: its pipeline lacks required "
                    "readiness controls: "
                    + "; ".join(readiness_gaps)
                    + (f" (readiness read from {readiness_source})" if readiness_source else ""),
                    hint="toolkit check --readiness prints the YAML or command that adds each; "
                    "or --force --reason TEXT (recorded in the release history)",
                )
            _, problems, _ = policy_problems(
                mv.tags or {}, effective, named, first_release=current is None
            )
            overridden = list(problems) + [f"readiness: {gap}" for gap in readiness_gaps]
            if problems and not force:
                raise RegistryError(
                    f"cannot promote {model_name!r} v{version}: " + "; ".join(problems),
                    hint=(
                        f"approve it (toolkit review approve {model_name} {version}), or "
                        if any("approval" in p for p in problems)
                        else ""
                    )
                    + "override the policy with force and a reason",
                )
            entry = self._append(
                model_name, "promoted", current, version, who,
                reason=reason, forced=force, overrides=overridden if force else [],
            )  # fmt: skip
            self._write(self._client.set_registered_model_alias, model_name, CHAMPION, version)
            if aliases.get(CANDIDATE) == version:
                self._drop_alias(model_name, CANDIDATE)
            self._settle(model_name)
        return entry

    def rollback(
        self, model_name: str, *, reason: str, by: str | None = None, to: str | int | None = None
    ) -> ReleaseEntry:
        """Move ``champion`` back to the previous champion, or to ``to`` (a past champion).
        A past champion marked unusable since, or whose run no longer exists, is refused."""
        if not reason.strip():
            raise RegistryError("a rollback needs a reason")
        target = None if to is None else version_number(to)
        with self._guard(f"roll back {model_name!r}"), self._lock(model_name):
            who = self.actor(by, model=model_name)
            current = self._settle(model_name)
            history = self._history(self._model(model_name))
            stack = champion_stack(history)
            while stack and stack[-1] == current:
                stack.pop()
            if target is None:
                if not stack:
                    raise RegistryError(
                        f"{model_name!r} has no previous champion to roll back to"
                        + (f" (v{current} is the first)" if current else "")
                    )
                target = stack[-1]
            elif target == current:
                raise RegistryError(f"{model_name!r} v{target} is already the champion")
            elif target not in {e.to_version for e in history if e.action in MOVES}:
                raise RegistryError(
                    f"{model_name!r} v{target} was never champion; a rollback returns to a "
                    "past champion",
                    hint=f"promote it instead: toolkit promote {model_name} {target}",
                )
            blocker, _ = self._blockers(self._mv(model_name, target))
            if blocker:
                raise RegistryError(f"cannot roll {model_name!r} back to v{target}: {blocker}")
            entry = self._append(
                model_name, "rolled_back", current, target, who, reason=reason, forced=False
            )
            self._write(self._client.set_registered_model_alias, model_name, CHAMPION, target)
            self._settle(model_name)
        return entry


def mark_unusable(tracking_uri: str, model_name: str, version: str | int, *, reason: str) -> None:
    """Mark ``model_name`` v``version`` in the registry at ``tracking_uri`` so that it can never
    be approved or promoted (see :meth:`Registry.mark_unusable`)."""
    Registry(tracking_uri).mark_unusable(model_name, version, reason=reason)
