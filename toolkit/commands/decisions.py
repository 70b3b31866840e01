"""``toolkit decisions``: why did the guard decide that? The decision records of one record
(by id or input hash) across scoring runs, found through the index
(:mod:`toolkit.guard.record_index`), never by scanning run folders."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from toolkit.commands.releases import parse_moment
from toolkit.core.errors import UsageError
from toolkit.guard.record_index import coverage, index_path, lookup, reading, rebuild

IGNORED = "ignored unknown columns: "  # the guard's note (toolkit.guard.input_contract)


@dataclass(frozen=True)
class DecisionsRequest:
    model: str
    record_id: str | None = None
    input_hash: str | None = None
    since: str | None = None  # ISO 8601; naive means UTC


@dataclass(frozen=True)
class Decision:
    """One decision record, as ``toolkit decisions`` shows it."""

    model: str
    version: str | None
    record_id: str | None
    input_hash: str | None
    scored_at: str
    path: str | None
    reason: str | None
    rule: str | None
    prediction: str | None
    confidence: float | None
    top_features: dict[str, float] | None
    contract: dict[str, str] = field(default_factory=dict)  # field -> "passed" or why it failed
    run: dict[str, str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_decisions(request: DecisionsRequest, runs_dir: Path) -> list[Decision]:
    """The decisions recorded for the request's record, oldest first.

    Raises:
        UsageError: neither or both of id and hash, a bad ``since``, or nothing recorded
            (exit 2, with the range searched).
    """
    if (request.record_id is None) == (request.input_hash is None):
        raise UsageError("give one of --id RECORD_ID or --input-hash H")
    since = None
    if request.since is not None:
        since = parse_moment(request.since, "--since").astimezone(UTC)
    bound = since.isoformat(timespec="milliseconds") if since else None
    db = index_path(runs_dir)
    with reading(db) as conn:
        rows = [] if conn is None else lookup(
            conn, request.model, record_id=request.record_id,
            input_hash=request.input_hash, since=bound,
        )  # fmt: skip
        if not rows:
            span = (0, None, None) if conn is None else coverage(conn, request.model)
    if not rows:
        what = f"id {request.record_id}" if request.record_id is not None else (
            f"input hash {request.input_hash}"
        )  # fmt: skip
        count, first, last = span
        searched = (
            f"{count} decision records of {request.model} scored {first} .. {last}"
            if count
            else f"no decision records of {request.model}"
        )
        raise UsageError(
            f"no decision recorded for {request.model} {what}"
            + (f" since {bound}" if bound else "")
            + f": searched {searched} in {db}",
            hint="if records were written without the index, rebuild it: "
            "toolkit decisions --reindex",
        )
    return [_decision(row) for row in rows]


def reindex(runs_dir: Path) -> tuple[Path, int, int]:
    """Rebuild the index from the records under ``runs_dir``: (index, files, rows)."""
    return rebuild(runs_dir)


def contract_verdict(
    path: str | None, reason: str | None, notes: str | None, fields: list[str]
) -> dict[str, str]:
    """Each input field's verdict: a rejection's reason names the failing fields
    (``"column: why; column: why"``), the notes the fields the contract ignored, the others
    passed. Empty when it is not recorded (a rejection naming no field, e.g. the guard failing
    on the record)."""
    verdict = dict.fromkeys(fields, "passed")
    if notes and notes.startswith(IGNORED):
        for name in notes.removeprefix(IGNORED).split(", "):
            if name in verdict:
                verdict[name] = "ignored: not in the input contract"
    if path != "rejected":
        return verdict
    failed = {}
    for part in (reason or "").split("; "):
        name, sep, why = part.partition(": ")
        if sep and name in verdict:
            failed[name] = why
    return {**verdict, **failed} if failed else {}


def _decision(row: dict[str, Any]) -> Decision:
    tops = json.loads(row["top_features"]) if row.get("top_features") else None
    run = {"pipeline": row["pipeline"], "run_id": row["run_id"], "step": row["step"]}
    return Decision(
        model=row["model"], version=row["version"], record_id=row["record_id"],
        input_hash=row["input_hash"], scored_at=row["scored_at"], path=row["path"],
        reason=row["reason"], rule=row["rule"], prediction=row["prediction"],
        confidence=row["confidence"], top_features=tops,
        contract=contract_verdict(
            row["path"], row["reason"], row["notes"], json.loads(row["fields"])
        ),
        run={**run, "file": row["file"], "row": str(row["row"])},
    )  # fmt: skip


def describe(decision: Decision) -> str:
    """The text form: one block per decision."""
    d = decision
    lines = [
        f"{d.scored_at}  {d.model} version {d.version}  record {d.record_id}  (input {d.input_hash})",
        f"  path: {d.path}" + (f": {d.reason}" if d.reason else ""),
    ]
    if d.rule:
        lines.append(f"  fallback rule: {d.rule}")
    confidence = "-" if d.confidence is None else f"{d.confidence:.3f}"
    lines.append(f"  prediction: {d.prediction or '-'}  confidence: {confidence}")
    if d.top_features:
        tops = ", ".join(f"{k} {v:+g}" for k, v in d.top_features.items())
        lines.append(f"  top features: {tops}")
    other = {k: v for k, v in d.contract.items() if v != "passed"}
    passed = len(d.contract) - len(other)
    if not d.contract:
        lines.append("  input contract: per-field verdict not recorded")
    else:
        lines.append(f"  input contract: {passed} fields passed")
        lines += [f"    {k}: {v}" for k, v in other.items()]
    run = d.run
    lines.append(
        f"  run: {run.get('pipeline')}/{run.get('run_id')} step {run.get('step')}"
        f" ({run.get('file')} row {run.get('row')})"
    )
    return "\n".join(lines)
