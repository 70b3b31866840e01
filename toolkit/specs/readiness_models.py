"""Pipeline specs, the accountability part: who owns the model a pipeline releases, and which
production controls its ``readiness:`` level requires (checked by :mod:`toolkit.readiness`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from toolkit.core.errors import did_you_mean
from toolkit.specs.step_models import SpecModel

#: Every control ``toolkit check --readiness`` scores, in report order. The checks themselves
#: are in :mod:`toolkit.readiness.controls`; the names live here so a spec can be validated
#: without importing them.
CONTROL_NAMES: tuple[str, ...] = (
    "input_contract",
    "output_contract",
    "evaluation_gate",
    "champion_comparison",
    "latency_budget",
    "review_policy",
    "owner",
    "fallback_rules",
    "monitoring_thresholds",
    "alert_hook",
    "locked_environment",
    "reproduced",
    "secrets",
)
Level = Literal["draft", "staging", "production"]


def unknown_controls(names: list[str] | dict[str, str], where: str) -> None:
    """Refuse control names the checker does not know (a typo would silently require nothing)."""
    for name in names:
        if name not in CONTROL_NAMES:
            hint = did_you_mean(name, CONTROL_NAMES)
            raise ValueError(
                f"{where}: unknown readiness control {name!r}"
                + (f"; {hint}" if hint else f"; the controls are {', '.join(CONTROL_NAMES)}")
            )


class OwnerSpec(SpecModel):
    """Who answers for the model: a person or a team, and how to reach them."""

    name: str | None = Field(
        default=None, description="the person accountable for the model", examples=["Ada Byron"]
    )
    team: str | None = Field(
        default=None, description="the team accountable for the model", examples=["diagnostics"]
    )
    contact: str | None = Field(
        default=None,
        description="how to reach the owner: an e-mail, a chat channel, an on-call alias",
        examples=["diagnostics-oncall@example.com"],
    )

    @model_validator(mode="after")
    def _someone(self) -> OwnerSpec:
        if not (self.name or self.team):
            raise ValueError("owner needs a name or a team")
        return self


class ReadinessSpec(SpecModel):
    """Which production controls must be in place before the released model is promoted."""

    level: Level = Field(
        default="draft",
        description="draft (nothing required, only reported), staging (contracts, gate, "
        "review, owner, lock, secrets) or production (every control)",
        examples=["production"],
    )
    require: list[str] = Field(
        default_factory=list,
        description="controls required on top of the level's",
        examples=[["latency_budget"]],
    )
    waive: dict[str, str] = Field(
        default_factory=dict,
        description="control -> why it does not apply to this pipeline (reported as not "
        "applicable, with the reason)",
        examples=[{"latency_budget": "scored in nightly batches only"}],
    )

    @field_validator("require")
    @classmethod
    def _known_required(cls, value: list[str]) -> list[str]:
        unknown_controls(value, "readiness.require")
        return value

    @field_validator("waive")
    @classmethod
    def _known_waived(cls, value: dict[str, str]) -> dict[str, str]:
        unknown_controls(value, "readiness.waive")
        for name, reason in value.items():
            if not str(reason).strip():
                raise ValueError(f"readiness.waive.{name}: say why it does not apply")
        return value
