"""The readiness a version was registered at, recorded on the version itself.

The readiness level lives in the spec, and a spec can be edited, moved or deleted after a run
registered its model, or be missing from the checkout of whoever promotes. So registration
records, as the version tag :data:`TAG_READINESS` (JSON), what the releasing spec required and
lacked at that moment, with the spec's path and SHA-256. ``promote`` holds the version to it:
as a floor when the spec still loads, in its place when it does not. Pure: no MLflow here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.core.errors import GateFailed
from toolkit.core.jsonable import dumps
from toolkit.readiness.controls import (
    MISSING,
    NOT_APPLICABLE,
    PASSED,
    REQUIRED_AT,
    Control,
    Evidence,
    ReadinessReport,
    evaluate,
    reproduced,
)
from toolkit.specs.models import Pipeline
from toolkit.specs.readiness_models import CONTROL_NAMES

TAG_READINESS = "toolkit.readiness"  # version tag, set at registration
FORMAT = 1
#: Controls whose evidence is gathered after registration (the version's reproduction, read
#: from the store): always scored now. Every other control depends on the spec and the files
#: beside it (or the lock at registration) and is taken from the record when the spec is gone.
AFTER_REGISTRATION = frozenset({"reproduced"})
MAX_DETAIL = 300  # per detail and fix: the tag stays a few KB however long a finding is


class ReadinessUnknown(GateFailed):
    """Promotion refused: the readiness a version must meet cannot be read (no loadable spec
    and no record, or a record that is unreadable). Never read as "nothing required"."""


@dataclass(frozen=True)
class ReadinessRecord:
    """What the releasing spec required of a version, and lacked, when it was registered."""

    pipeline: str
    model: str
    level: str
    required: tuple[str, ...]
    missing: tuple[Control, ...]  # every control missing then, required or not
    waived: tuple[str, ...]
    spec: str  # the spec's path, relative to the project when inside it
    spec_sha256: str

    @classmethod
    def from_report(cls, report: ReadinessReport, spec: str, spec_sha256: str) -> ReadinessRecord:
        if report.model is None:
            raise ValueError(f"{report.pipeline} releases no model: no readiness to record")
        missing = tuple(
            Control(c.name, MISSING, c.required, c.detail[:MAX_DETAIL], (c.fix or "")[:MAX_DETAIL])
            for c in report.controls
            if c.status == MISSING
        )
        return cls(
            pipeline=report.pipeline,
            model=report.model,
            level=report.level,
            required=tuple(c.name for c in report.controls if c.required),
            missing=missing,
            waived=tuple(c.name for c in report.controls if c.status == NOT_APPLICABLE),
            spec=spec,
            spec_sha256=spec_sha256,
        )

    def to_json(self) -> str:
        return dumps(
            {
                "format": FORMAT, "pipeline": self.pipeline, "model": self.model,
                "level": self.level, "required": list(self.required),
                "missing": [{"name": c.name, "detail": c.detail, "fix": c.fix}
                            for c in self.missing],
                "waived": list(self.waived), "spec": self.spec, "spec_sha256": self.spec_sha256,
            },
            sort_keys=True,
        )  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> ReadinessRecord:
        """The record in ``text``; ValueError for anything but a well-formed one (a damaged
        record must never read as one that requires nothing)."""
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON ({exc.msg})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a format-{FORMAT} readiness record")
        if data.get("level") not in REQUIRED_AT:
            raise ValueError(f"unknown readiness level {data.get('level')!r}")
        names = [*_strings(data, "required"), *_strings(data, "waived")]
        missing = data.get("missing")
        if not isinstance(missing, list) or not all(
            isinstance(m, dict) and all(isinstance(m.get(k), str) for k in ("name", "detail"))
            for m in missing
        ):
            raise ValueError("'missing' is not a list of {name, detail, fix}")
        unknown = {*names, *(m["name"] for m in missing)} - set(CONTROL_NAMES)
        if unknown:
            raise ValueError(f"unknown controls {sorted(unknown)}")
        for key in ("pipeline", "model", "spec", "spec_sha256"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ValueError(f"no {key!r}")
        required = _strings(data, "required")
        return cls(
            pipeline=data["pipeline"],
            model=data["model"],
            level=data["level"],
            required=required,
            missing=tuple(
                Control(
                    m["name"], MISSING, m["name"] in required, m["detail"], m.get("fix") or None
                )
                for m in missing
            ),
            waived=_strings(data, "waived"),
            spec=data["spec"],
            spec_sha256=data["spec_sha256"],
        )

    def report(self, evidence: Evidence) -> ReadinessReport:
        """The version scored without its spec: each control as it was at registration, except
        those whose evidence comes later (:data:`AFTER_REGISTRATION`), scored on ``evidence``."""
        missing = {c.name: c for c in self.missing}
        controls = []
        for name in CONTROL_NAMES:
            required = name in self.required
            if name in AFTER_REGISTRATION and name not in self.waived:
                ok, detail, fix = reproduced(evidence, Path(self.spec).name)
                controls.append(Control(name, PASSED if ok else MISSING, required, detail, fix))
            elif name in self.waived:
                controls.append(Control(name, NOT_APPLICABLE, False, "waived at registration"))
            elif name in missing:
                was = missing[name]
                detail = f"{was.detail} (at registration)"
                controls.append(Control(name, MISSING, required, detail, was.fix))
            else:
                controls.append(Control(name, PASSED, required, "passed at registration"))
        label = f"{self.spec} as recorded at registration (sha256 {self.spec_sha256[:12]})"
        return ReadinessReport(self.pipeline, label, self.model, self.level, tuple(controls))


def _strings(data: dict[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{key!r} is not a list of control names")
    return tuple(value)


def at_registration(
    spec: Pipeline, root: Path, secret_patterns: Iterable[str], *, source: str, run: str
) -> ReadinessRecord:
    """The record for a version ``spec``'s run ``run`` is registering: the spec and the lock at
    ``root`` as they are now; the version is not reproduced yet (scored again at promote)."""
    from toolkit.core.lineage.machine import lock_info

    evidence = Evidence(lock_info(root), candidate=f"run {run}", reproduce_run=run)
    report = evaluate(spec, evidence, secret_patterns)
    return ReadinessRecord.from_report(report, source, spec.content_hash)
