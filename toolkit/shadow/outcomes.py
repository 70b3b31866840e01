"""True outcomes joined to earlier decisions: each version's live metrics, per scoring batch.

Labels arrive later than decisions, in a file with a key column: a record id (the id column the
scoring wrote) or ``input_hash`` (in every decision record). The champion's decisions are found
through the decision index (:mod:`toolkit.guard.record_index`), a shadow's through the shadow's
batch log (:mod:`toolkit.shadow.batches`). Every label is accounted for: matched, for a record
never scored, a duplicate of an earlier label, or of the wrong type (not one of the model's
labels); none is dropped silently.

Metrics are those of the training gates (ROC AUC on the model's probability, accuracy,
precision, recall and F1 on the decision served) plus calibration (Brier score, expected
calibration error over 10 bins), per version and per batch (the batch's scoring time).
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolkit.core.errors import UsageError
from toolkit.guard.decisions import REJECTED
from toolkit.guard.record_index import coverage, index_path, lookup, reading
from toolkit.shadow.batches import read_batches

HASH_KEY = "input_hash"
ECE_BINS = 10


@dataclass(frozen=True)
class LabelCounts:
    rows: int
    matched: int  # labels joined to at least one decision
    unscored: int  # keys no decision record holds
    duplicates: int  # a key labelled again (the first label counts)
    wrong_type: int  # missing, or not one of the model's labels
    rejected: int  # joined decisions the guard rejected: no prediction to score

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class VersionOutcome:
    version: str  # registry version when known, else the guard's fingerprint
    guard: str  # the guard's fingerprint, as in the decision records
    role: str  # champion | shadow
    rows: int
    metrics: dict[str, float | None]
    batches: tuple[dict[str, Any], ...] = ()  # {"at", "rows", "metrics"}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Outcomes:
    model: str
    key: str
    label_column: str
    positive: str
    counts: LabelCounts
    versions: tuple[VersionOutcome, ...]
    breaches: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = self.counts.to_dict()
        data["versions"] = [v.to_dict() for v in self.versions]
        return data

    def summary_lines(self) -> list[str]:
        c = self.counts
        lines = [
            f"feedback for {self.model}: {c.rows} labels by {self.key!r}, {c.matched} joined; "
            f"{c.unscored} never scored, {c.duplicates} duplicate, {c.wrong_type} of the wrong "
            f"type, {c.rejected} decisions rejected by the guard (no prediction)"
        ]
        for v in self.versions:
            shown = ", ".join(f"{k} {m:.3f}" for k, m in v.metrics.items() if m is not None)
            lines.append(f"{v.role} v{v.version}: {v.rows} labelled decisions; {shown or 'n/a'}")
        lines += [f"ALERT: {b}" for b in self.breaches]
        return lines


def choose_label_column(columns: list[str], key: str, label: str | None) -> str:
    """The labels' column: ``label``, else the one column beside the key."""
    if key not in columns:
        raise UsageError(
            f"the labels file has no key column {key!r}; its columns: {', '.join(columns)}",
            hint="--key names the record id column the scoring wrote, or input_hash",
        )
    if label is not None:
        if label not in columns:
            raise UsageError(
                f"the labels file has no column {label!r}; its columns: {', '.join(columns)}"
            )
        return label
    others = [c for c in columns if c != key]
    if len(others) == 1:
        return others[0]
    for name in ("label", "outcome", "y"):
        if name in others:
            return name
    raise UsageError(
        f"which column holds the outcome? the labels file has {', '.join(others)} beside {key!r}",
        hint="name it with --label COLUMN",
    )


def decisions_for(runs_dir: Path, model: str, keys: list[str], by_hash: bool) -> Any:
    """The decision records of ``keys`` (champion: from the index; shadow: from the batch
    log), one row per decision: key, file, row, role, version, guard, at, prediction, path,
    probability.

    Raises:
        UsageError: ``model`` has no decision records at all.
    """
    import pandas as pd

    batches = read_batches(runs_dir, model)
    roles: dict[str, tuple[str, str | None]] = {}
    for b in batches:
        roles |= {b.champion_file: ("champion", b.champion_version)} if b.champion_file else {}
        roles |= {b.shadow_file: ("shadow", b.shadow_version)} if b.shadow_file else {}
    found: list[dict[str, Any]] = []
    with reading(index_path(runs_dir)) as conn:
        indexed = coverage(conn, model)[0] if conn is not None else 0
        if not indexed and not any(b.shadow_file for b in batches):
            raise UsageError(
                f"no decision records of {model!r} under {runs_dir}",
                hint="decision records are written when batches are scored with the guarded "
                "model (toolkit run pipelines/score.yaml, whose notebook calls "
                "write_decisions); score a batch first, or run toolkit decisions --reindex",
            )
        for k in keys:
            if conn is None:
                break
            for d in lookup(conn, model, **{HASH_KEY if by_hash else "record_id": k}):
                if roles.get(d["file"], ("",))[0] == "shadow":  # reindexed: read from the log
                    continue
                found.append({"key": k, "file": d["file"], "row": d["row"], "at": d["scored_at"]})
    frame = pd.DataFrame(found, columns=["key", "file", "row", "at"])
    parts = []
    for file, rows in frame.groupby("file"):
        with contextlib.suppress(OSError, ValueError):
            records = pd.read_parquet(file).iloc[rows["row"].to_numpy()]
            parts.append(_columns(records, rows["key"].to_numpy(), str(file), rows["at"]))
    wanted = set(keys)
    for b in batches:
        if not b.shadow_file or (not by_hash and not b.id_column):
            continue
        with contextlib.suppress(OSError, ValueError):
            records = pd.read_parquet(b.shadow_file)
            column = records[HASH_KEY if by_hash else b.id_column].astype(str)
            mine = records[column.isin(wanted).to_numpy()]
            ats = pd.Series([b.at] * len(mine))
            keyed = column[column.isin(wanted)].to_numpy()
            parts.append(_columns(mine, keyed, b.shadow_file, ats))
    if not parts:
        columns = ["key", "file", "at", "guard", "prediction", "path", "probability"]
        return pd.DataFrame(columns=[*columns, "role", "version"])
    out = pd.concat(parts, ignore_index=True)
    role = out["file"].map(lambda f: roles.get(f, ("champion", None)))
    out["role"] = [r[0] for r in role]
    out["version"] = [r[1] or g for r, g in zip(role, out["guard"], strict=True)]
    return out


def _columns(records: Any, keys: Any, file: str, ats: Any) -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "key": keys,
            "file": file,
            "at": np.asarray(ats),
            "guard": records["version"].astype(str).to_numpy(),
            "prediction": records["prediction"].astype(object).to_numpy(),
            "path": records["path"].astype(str).to_numpy(),
            "probability": pd.to_numeric(records["probability"], errors="coerce").to_numpy(),
        }
    )


def live_metrics(y: np.ndarray, served: np.ndarray, proba: np.ndarray) -> dict[str, float | None]:
    """The training gates' metrics on live outcomes (``y`` 0/1), plus calibration."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    out: dict[str, float | None] = {
        "accuracy": float(accuracy_score(y, served)),
        "precision": float(precision_score(y, served, zero_division=0)),
        "recall": float(recall_score(y, served, zero_division=0)),
        "f1": float(f1_score(y, served, zero_division=0)),
        "roc_auc": None,
        "brier": None,
        "ece": None,
    }
    scored = np.isfinite(proba)
    if scored.any():
        p, t = proba[scored], y[scored]
        out["brier"] = float(np.mean((p - t) ** 2))
        bins = np.minimum((p * ECE_BINS).astype(int), ECE_BINS - 1)
        gaps = [abs(p[bins == b].mean() - t[bins == b].mean()) * (bins == b).sum()
                for b in range(ECE_BINS) if (bins == b).any()]  # fmt: skip
        out["ece"] = float(sum(gaps) / len(p))
        if len(set(t.tolist())) == 2:
            from sklearn.metrics import roc_auc_score

            out["roc_auc"] = float(roc_auc_score(t, p))
    return out


def join_outcomes(
    labels: Any,
    decisions: Any,
    *,
    model: str,
    key: str,
    label_column: str,
    positive: str | None = None,
) -> Outcomes:
    """Each version's live metrics from ``labels`` (the file's frame) and their decisions."""
    keys = labels[key].astype(str)
    duplicate = keys.duplicated().to_numpy()
    truth = labels[label_column].astype(object).where(labels[label_column].notna(), None)
    known = {str(v) for v in decisions["prediction"].dropna()}
    valid = truth.map(lambda v: v is not None and str(v) in known).to_numpy()
    scored = keys.isin(set(decisions["key"])).to_numpy()
    first = ~duplicate
    counts_base = dict(
        rows=len(labels), duplicates=int(duplicate.sum()),
        unscored=int((first & ~scored).sum()), wrong_type=int((first & scored & ~valid).sum()),
    )  # fmt: skip
    good = first & scored & valid
    outcome = dict(zip(keys[good], truth[good].map(str), strict=True))
    joined = decisions[decisions["key"].isin(outcome)].copy()
    rejected = joined["path"] == REJECTED
    joined = joined[~rejected]
    positive = positive or _positive(joined)
    joined["y"] = (joined["key"].map(outcome) == positive).astype(int)
    joined["served"] = (joined["prediction"].astype(str) == positive).astype(int)
    versions = []
    for (role, version, guard), rows in joined.groupby(["role", "version", "guard"], sort=False):
        per_batch = tuple(
            {"at": at, "rows": len(b), "metrics": _metrics(b)}
            for at, b in rows.groupby("at", sort=True)
        )
        versions.append(VersionOutcome(str(version), str(guard), str(role), len(rows),
                                       _metrics(rows), per_batch))  # fmt: skip
    versions.sort(key=lambda v: (v.role != "champion", v.version))
    counts = LabelCounts(matched=int(good.sum()), rejected=int(rejected.sum()), **counts_base)
    return Outcomes(model, key, label_column, positive, counts, tuple(versions))


def _metrics(rows: Any) -> dict[str, float | None]:
    return live_metrics(
        rows["y"].to_numpy(), rows["served"].to_numpy(), rows["probability"].to_numpy(float)
    )


def _positive(joined: Any) -> str:
    """The label the probability is for: the prediction of the most probable model decision."""
    answered = joined[(joined["path"] == "model") & joined["probability"].notna()]
    if not len(answered):
        raise UsageError("no labelled decision was made by the model, so nothing can be scored",
                         hint="pass --positive LABEL")  # fmt: skip
    return str(answered.loc[answered["probability"].idxmax(), "prediction"])


def breaches(outcomes: Outcomes, floors: dict[str, float]) -> list[str]:
    """Each live metric of each version below its floor (the spec's ``feedback:``)."""
    found = []
    for v in outcomes.versions:
        for name, floor in floors.items():
            value = v.metrics.get(name)
            if value is not None and value < floor:
                found.append(f"{v.role} v{v.version}: live {name} {value:.3f} < {floor:g}")
    return found
