"""Champion vs shadow on the batches both scored: agreement, the prediction distribution's PSI,
fallback and rejected rates, latency, and the records where they disagree (both decision
records side by side). Read from the batch log and the two files of records it points at.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.core.errors import UsageError
from toolkit.guard.decisions import FALLBACK, REJECTED
from toolkit.monitor.drift import psi
from toolkit.shadow.batches import ShadowBatch, log_path, read_batches

SHOWN = ("prediction", "probability", "path", "reason", "confidence", "version", "input_hash")
BINS = 10


@dataclass(frozen=True)
class Side:
    """One version's figures over the compared batches."""

    version: str | None
    rows: int
    fallback_rate: float
    rejected_rate: float
    latency_ms_p50: float | None
    latency_ms_max: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ShadowReport:
    model: str
    shadow_version: str | None
    since: str | None
    batches: int  # scored by both
    failed_batches: int  # the shadow failed: nothing to compare
    compared: int  # rows both answered
    agreed: int
    agreement: float | None
    psi: float | None  # the shadow's probability distribution against the champion's
    champion_rejected_only: int
    shadow_rejected_only: int
    champion: Side
    shadow: Side
    errors: tuple[str, ...] = ()
    disagreements: tuple[dict[str, Any], ...] = ()
    disagreements_total: int = 0
    evidence: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["champion"], data["shadow"] = self.champion.to_dict(), self.shadow.to_dict()
        return data

    def summary_lines(self) -> list[str]:
        pct = f"{self.agreement:.1%}" if self.agreement is not None else "n/a"
        lines = [
            f"shadow of {self.model}: v{self.shadow_version} beside champion "
            f"v{self.champion.version}" + (f" (since {self.since})" if self.since else ""),
            f"batches scored by both: {self.batches}; shadow failed on {self.failed_batches}",
            f"agreement: {pct} of {self.compared} rows both answered "
            f"({self.disagreements_total} disagree)",
            "prediction PSI (shadow vs champion): "
            + (f"{self.psi:.3f}" if self.psi is not None else "n/a"),
            f"rejected by the champion only: {self.champion_rejected_only}; "
            f"by the shadow only: {self.shadow_rejected_only}",
        ]
        for name, side in (("champion", self.champion), ("shadow", self.shadow)):
            p50 = f"{side.latency_ms_p50:.1f} ms" if side.latency_ms_p50 is not None else "n/a"
            lines.append(
                f"{name} v{side.version}: {side.rows} rows, fallback {side.fallback_rate:.1%}, "
                f"rejected {side.rejected_rate:.1%}, batch latency p50 {p50}"
            )
        lines += [f"shadow error: {e}" for e in self.errors[:5]]
        for d in self.disagreements[:10]:
            c, s = d["champion"], d["shadow"]
            lines.append(
                f"  {d.get('record_id') or d['input_hash']}: champion {c['prediction']} "
                f"({c['path']}), shadow {s['prediction']} ({s['path']})"
            )
        return lines


def build_report(
    runs_dir: Path,
    model: str,
    *,
    since: str | None = None,
    version: str | None = None,
    limit: int = 100,
) -> ShadowReport:
    """Compare the champion and the shadow (``version``, default the latest logged) of
    ``model`` on the batches both scored since ``since``.

    Raises:
        UsageError: no batch was ever shadow-scored for ``model``.
    """
    import pandas as pd

    from toolkit.shadow.batches import evidence

    every = read_batches(runs_dir, model, since=since)
    if version is None and every:
        version = every[-1].shadow_version
    batches = [b for b in every if b.shadow_version == version]
    if not batches:
        raise UsageError(
            f"no batch of {model!r} was scored with a shadow"
            + (f" since {since}" if since else "")
            + f" ({log_path(runs_dir, model)})",
            hint=f"set one (toolkit shadow start {model} candidate), then score batches "
            "(toolkit run pipelines/score.yaml)",
        )
    ok = [b for b in batches if b.error is None and b.shadow_file and b.champion_file]
    frames = [pair for b in ok if (pair := _pair(b)) is not None]
    champ = pd.concat([c for c, _, _ in frames], ignore_index=True) if frames else None
    shad = pd.concat([s for _, s, _ in frames], ignore_index=True) if frames else None
    ids = pd.concat([i for _, _, i in frames], ignore_index=True) if frames else None
    disagree: list[dict[str, Any]] = []
    total = 0
    drift = None
    if champ is not None and shad is not None and ids is not None:
        answered = (champ["path"] != REJECTED) & (shad["path"] != REJECTED)
        differ = answered & (
            champ["prediction"].astype(object) != shad["prediction"].astype(object)
        )
        total = int(differ.sum())
        for i in np.flatnonzero(differ.to_numpy())[:limit]:
            disagree.append(
                {
                    "record_id": None if pd.isna(ids.iloc[i]) else str(ids.iloc[i]),
                    "input_hash": str(champ["input_hash"].iloc[i]),
                    "champion": _record(champ.iloc[i]),
                    "shadow": _record(shad.iloc[i]),
                }
            )
        drift = probability_psi(champ, shad)
    return ShadowReport(
        model=model,
        shadow_version=version,
        since=since,
        batches=len(ok),
        failed_batches=len(batches) - len(ok),
        compared=sum(b.compared for b in ok),
        agreed=sum(b.agreed for b in ok),
        agreement=(sum(b.agreed for b in ok) / c) if (c := sum(b.compared for b in ok)) else None,
        psi=drift,
        champion_rejected_only=sum(b.champion_rejected_only for b in ok),
        shadow_rejected_only=sum(b.shadow_rejected_only for b in ok),
        champion=_side(ok[-1].champion_version if ok else None, champ, [b.champion_ms for b in ok]),
        shadow=_side(version, shad, [b.shadow_ms for b in ok]),
        errors=tuple(b.error for b in batches if b.error),
        disagreements=tuple(disagree),
        disagreements_total=total,
        evidence=evidence(batches, version or ""),
    )


def _pair(batch: ShadowBatch) -> tuple[Any, Any, Any] | None:
    """The two files' records, row for row (both scored the same rows in the same order)."""
    import pandas as pd

    try:
        champ = pd.read_parquet(batch.champion_file)
        shad = pd.read_parquet(batch.shadow_file)
    except (OSError, ValueError):  # a run folder cleaned up since: that batch is gone
        return None
    if len(champ) != len(shad):
        return None
    ids = champ[batch.id_column] if batch.id_column in champ else pd.Series([None] * len(champ))
    return champ, shad, ids.astype(object)


def _record(row: Any) -> dict[str, Any]:
    out = {}
    for key in SHOWN:
        value = row.get(key)
        with contextlib.suppress(TypeError, ValueError):
            if value is not None and value != value:  # NaN
                value = None
        out[key] = value.item() if hasattr(value, "item") else value
    return out


def _side(version: str | None, frame: Any, times: list[float | None]) -> Side:
    rows = 0 if frame is None else len(frame)
    paths = frame["path"] if frame is not None else None
    rate = (lambda p: float((paths == p).mean())) if rows else (lambda p: 0.0)
    ms = [t for t in times if t is not None]
    return Side(
        version=version,
        rows=rows,
        fallback_rate=rate(FALLBACK),
        rejected_rate=rate(REJECTED),
        latency_ms_p50=float(np.median(ms)) if ms else None,
        latency_ms_max=float(max(ms)) if ms else None,
    )


def probability_psi(champion: Any, shadow: Any) -> float | None:
    """PSI of the shadow's predicted probabilities against the champion's, over the
    champion's deciles (rows either answered)."""
    a = champion["probability"].to_numpy(dtype=float, na_value=np.nan)
    b = shadow["probability"].to_numpy(dtype=float, na_value=np.nan)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if not len(a) or not len(b):
        return None
    edges = np.unique(np.quantile(a, np.linspace(0, 1, BINS + 1))[1:-1])
    count = lambda v: np.bincount(np.searchsorted(edges, v, side="right"), minlength=len(edges) + 1)  # noqa: E731
    return psi(count(a), count(b))
