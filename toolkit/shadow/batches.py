"""The shadow's batch log: one JSON line per batch both versions scored, appended as each
batch is done, at ``<runs_dir>/shadow/<model>.jsonl``. It points at the two files of decision
records (the champion's and the shadow's, side by side) and keeps the batch's counts, so the
report and the evidence a policy checks never rescan the runs folder.

Append-only and one ``write`` per line (``O_APPEND``): concurrent scoring runs interleave whole
lines. A line that does not parse (a crash mid-write) is skipped by readers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from toolkit.core.jsonable import dumps


@dataclass(frozen=True)
class ShadowBatch:
    """One batch scored by the champion and its shadow (``error``: the shadow failed)."""

    at: str
    model: str
    champion_version: str | None
    shadow_version: str
    rows: int
    champion_file: str | None = None
    shadow_file: str | None = None
    id_column: str | None = None
    compared: int = 0  # rows both versions answered (neither rejected)
    agreed: int = 0
    champion_rejected_only: int = 0  # rejected by the champion's contract, accepted by the shadow's
    shadow_rejected_only: int = 0
    both_rejected: int = 0
    champion_ms: float | None = None
    shadow_ms: float | None = None
    error: str | None = None
    run: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """The batch's shadow figures as step metrics (the scoring run's report shows them)."""
        found = {"shadow_failed": float(self.error is not None)}
        if self.error is None:
            found |= {
                "shadow_compared_rows": float(self.compared),
                "shadow_rejected_only_rows": float(self.shadow_rejected_only),
                "champion_rejected_only_rows": float(self.champion_rejected_only),
            }
            if self.compared:
                found["shadow_agreement"] = self.agreed / self.compared
        return found


def log_path(runs_dir: Path, model: str) -> Path:
    return Path(runs_dir) / "shadow" / f"{model}.jsonl"


def append(path: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line (one ``write`` on an ``O_APPEND`` descriptor)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (dumps(record, default=str, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON Lines file, skipping lines that do not parse."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


def read_batches(runs_dir: Path, model: str, *, since: str | None = None) -> list[ShadowBatch]:
    """The batches logged for ``model``, oldest first, from ``since`` (ISO time) on."""
    names = {f.name for f in ShadowBatch.__dataclass_fields__.values()}
    batches = []
    for data in read_lines(log_path(runs_dir, model)):
        try:
            batch = ShadowBatch(**{k: v for k, v in data.items() if k in names})
        except TypeError:
            continue
        if since is None or batch.at >= since:
            batches.append(batch)
    return batches


def evidence(batches: Iterable[ShadowBatch], version: str) -> dict[str, float]:
    """What shadow scoring of ``version`` showed so far: the metrics a policy's ``shadow:``
    checks name (``shadow.batches`` counts the batches it scored without failing)."""
    mine = [b for b in batches if b.shadow_version == version]
    ok = [b for b in mine if b.error is None]
    compared = sum(b.compared for b in ok)
    found: dict[str, float] = {
        "shadow.batches": float(len(ok)),
        "shadow.errors": float(len(mine) - len(ok)),
        "shadow.rows": float(sum(b.rows for b in ok)),
    }
    if compared:
        found["shadow.agreement"] = sum(b.agreed for b in ok) / compared
    return found
