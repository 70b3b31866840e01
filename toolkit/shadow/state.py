"""Which version shadows a model's champion: a registered-model tag, set and cleared through the
registry with an entry in the release history, so that ``toolkit releases`` tells when a
candidate started and stopped scoring production batches beside the champion.

The evidence its shadow scoring gathered (batches, agreement) is a tag on the shadow *version*
(:data:`~toolkit.release.vocabulary.TAG_SHADOW_EVIDENCE`), so that a release policy's
``shadow:`` checks are evaluated where every other promotion check is: on the version's tags.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from toolkit.core.errors import RegistryError
from toolkit.release.registry import Registry
from toolkit.release.vocabulary import CHAMPION, TAG_SHADOW_EVIDENCE, now_iso

TAG_SHADOW = "toolkit.shadow"  # registered-model tag: JSON {version, since, by}
STARTED, STOPPED = "shadow_started", "shadow_stopped"


@dataclass(frozen=True)
class ShadowState:
    """The version shadowing ``model``'s champion, since when and set by whom."""

    model: str
    version: str
    since: str
    by: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_state(model: str, tags: dict[str, str]) -> ShadowState | None:
    raw = tags.get(TAG_SHADOW)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return ShadowState(model, str(data["version"]), str(data["since"]), str(data["by"]))
    except (TypeError, ValueError, KeyError):
        return None  # a damaged tag shadows nothing: scoring never depends on it


class ShadowRegistry(Registry):
    """The registry, plus setting, clearing and reading a model's shadow."""

    def shadow(self, model: str) -> ShadowState | None:
        """The current shadow of ``model``, or None."""
        with self._guard(f"read the shadow of {model!r}"):
            return parse_state(model, dict(self._model(model).tags or {}))

    def start_shadow(self, model: str, ref: str) -> ShadowState:
        """Make version ``ref`` (a number or an alias such as ``candidate``) shadow the champion.

        Raises:
            RegistryError: no such version, it is the champion, or there is no champion.
        """
        version = self.resolve(model, ref)
        with self._guard(f"start shadowing {model!r} v{version}"), self._lock(model):
            who = self.actor()
            self._mv(model, version)  # a missing version: exit 2 listing the versions
            champion = self._settle(model)
            if champion is None:
                raise RegistryError(
                    f"{model!r} has no champion for v{version} to shadow",
                    hint=f"promote a version first: toolkit promote {model} VERSION",
                )
            if champion == version:
                raise RegistryError(
                    f"{model!r} v{version} is the champion; a shadow is another version",
                    hint=f"shadow a candidate: toolkit shadow start {model} candidate",
                )
            state = ShadowState(model, version, now_iso(), who.name)
            value = json.dumps({"version": version, "since": state.since, "by": who.name})
            self._write(self._client.set_registered_model_tag, model, TAG_SHADOW, value)
            self._append(
                model, STARTED, champion, version, who, reason=f"shadows champion v{champion}"
            )
        return state

    def stop_shadow(self, model: str) -> ShadowState:
        """End the shadow of ``model``; the one that ended. Raises RegistryError without one."""
        with self._guard(f"stop the shadow of {model!r}"), self._lock(model):
            who = self.actor()
            state = parse_state(model, dict(self._model(model).tags or {}))
            if state is None:
                raise RegistryError(f"{model!r} has no shadow to stop")
            self._write(self._client.delete_registered_model_tag, model, TAG_SHADOW)
            champion = self._aliases(self._model(model)).get(CHAMPION)
            self._append(model, STOPPED, champion, state.version, who, reason="shadow stopped")
        return state

    def record_evidence(self, model: str, version: str, evidence: dict[str, float]) -> None:
        """Tag ``version`` with the shadow evidence gathered so far (what policies check)."""
        with self._guard(f"record the shadow evidence of {model!r} v{version}"):
            payload = json.dumps({**evidence, "at": now_iso()}, sort_keys=True)
            self._write(
                self._client.set_model_version_tag, model, version, TAG_SHADOW_EVIDENCE, payload
            )
