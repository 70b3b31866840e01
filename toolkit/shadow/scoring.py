"""Shadow scoring of a batch: while a version shadows the champion, every batch the champion
scores is also scored by the shadow, on a worker thread started once the champion's answer is
in the caller's hands, and its decision records are written beside the champion's, marked
``shadow``. The caller's output is the champion's, unchanged.

A shadow that cannot be loaded or that raises never fails the caller: the failure is recorded
in the batch log (:mod:`toolkit.shadow.batches`) and the batch counts as not shadowed.

Use (the score notebook)::

    shadow = shadow_for(model_uri, tracking_uri=tracking_uri)   # None: no shadow set
    out = guard.predict(raw)
    if shadow:                                                   # returns at once
        shadow.submit(raw, decisions_path, id_column="patient_id")
    ...                                                          # the champion's records
    if shadow:
        shadow.finish(out)
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from toolkit.guard.decisions import REJECTED
from toolkit.release.vocabulary import CHAMPION, now_iso
from toolkit.shadow.batches import ShadowBatch, append, evidence, log_path, read_batches
from toolkit.shadow.state import ShadowRegistry, ShadowState

if TYPE_CHECKING:
    import pandas as pd

SHADOW_COLUMN = "shadow"  # True on the shadow's decision records


def registered_name(model_uri: str) -> str | None:
    """The registered model a ``models:/NAME@alias`` or ``models:/NAME/VERSION`` URI names."""
    parsed = urlparse(model_uri)
    ref = (parsed.netloc + parsed.path).strip("/")
    if parsed.scheme != "models" or not ref or ref.startswith("m-"):
        return None
    name, at, _ = ref.partition("@")
    return name if at else name.split("/", 1)[0]


def shadow_for(
    model_uri: str, *, tracking_uri: str, runs_dir: str | Path | None = None
) -> Shadow | None:
    """The shadow to run beside ``model_uri``'s champion, or None when none is set (or the URI
    names no registered model). Loading the shadow's model may fail: the Shadow then records
    the failure when finished, and the caller goes on."""
    name = registered_name(model_uri)
    if name is None:
        return None
    registry = ShadowRegistry(tracking_uri)
    try:
        state = registry.shadow(name)
    except Exception:  # no such model yet, or an unreachable store: the champion's load says
        return None
    if state is None:
        return None
    champion = None
    with contextlib.suppress(Exception):
        champion = registry.resolve(name, CHAMPION)
    if champion == state.version:  # promoted since: it shadows nothing
        return None
    guard, error = None, None
    try:
        from toolkit.release.guarded import load_guarded_model

        guard = load_guarded_model(f"models:/{name}/{state.version}", tracking_uri=tracking_uri)
    except Exception as exc:
        error = f"loading v{state.version}: {type(exc).__name__}: {exc}"
    return Shadow(state, guard, champion, registry=registry, runs_dir=runs_dir, error=error)


class Shadow:
    """One shadow version scoring the batches of one scoring run."""

    def __init__(
        self,
        state: ShadowState,
        guard: Any,
        champion_version: str | None,
        *,
        registry: ShadowRegistry | None = None,
        runs_dir: str | Path | None = None,
        error: str | None = None,
    ) -> None:
        self.state, self.guard, self.champion_version = state, guard, champion_version
        self.registry, self.error = registry, error
        self.runs_dir = Path(runs_dir) if runs_dir is not None else None
        self._thread: threading.Thread | None = None
        self._raw: pd.DataFrame | None = None
        self._out: pd.DataFrame | None = None
        self._ms: float | None = None
        self.id_column: str | None = None
        self.decisions = self.shadow_file = Path("decisions.parquet")

    def submit(
        self, raw: pd.DataFrame, decisions: str | Path, *, id_column: str | None = None
    ) -> None:
        """Start scoring ``raw`` with the shadow on a worker thread, and writing its decision
        records beside ``decisions`` (the champion's file, ``NAME.shadow.parquet``); returns
        at once. The writing overlaps the champion's own (Parquet and pyarrow release the GIL)."""
        self._raw, self.id_column = raw, id_column
        self.decisions = Path(decisions).resolve()
        self.shadow_file = self.decisions.with_name(
            self.decisions.stem + ".shadow" + self.decisions.suffix
        )
        if self.guard is None:
            return
        self._thread = threading.Thread(target=self._score, name="toolkit-shadow", daemon=True)
        self._thread.start()

    def _score(self) -> None:
        start = time.perf_counter()
        try:
            self._out = self.guard.predict(self._raw)
        except BaseException as exc:  # the shadow's problem, never the caller's
            self.error = f"{type(exc).__name__}: {exc}"
            return
        finally:
            self._ms = (time.perf_counter() - start) * 1000
        try:
            self._write(self.shadow_file, self.id_column)
        except BaseException as exc:
            self.error = f"recording: {type(exc).__name__}: {exc}"

    def finish(self, champion: pd.DataFrame, *, timeout: float | None = None) -> ShadowBatch:
        """Wait for the shadow, compare it with ``champion`` (the output the caller got) and
        log the batch; never raises."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self.error = self.error or f"still scoring after {timeout:g} s"
        runs_dir = self.runs_dir or default_runs_dir(self.decisions)
        counts: dict[str, int] = {}
        if self.error is None and self._out is not None:
            try:
                counts = compare_paths(champion, self._out)
            except Exception as exc:
                self.error = f"comparing: {type(exc).__name__}: {exc}"
        batch = ShadowBatch(
            at=now_iso(),
            model=self.state.model,
            champion_version=self.champion_version,
            shadow_version=self.state.version,
            rows=len(champion),
            champion_file=str(self.decisions),
            shadow_file=None if self.error else str(self.shadow_file),
            id_column=self.id_column,
            champion_ms=batch_ms(champion),
            shadow_ms=None if self.error else self._ms,
            error=self.error,
            run={k: os.environ.get(f"TOOLKIT_{k.upper()}") for k in ("pipeline", "run_id", "step")},
            **({} if self.error else counts),
        )
        with contextlib.suppress(Exception):  # a full disk must not fail the caller either
            log = log_path(runs_dir, self.state.model)
            append(log, batch.to_dict())
            if self.registry is not None:
                found = evidence(read_batches(runs_dir, self.state.model), self.state.version)
                self.registry.record_evidence(self.state.model, self.state.version, found)
        return batch

    def _write(self, path: Path, id_column: str | None) -> None:
        """The shadow's records as the champion's are written (same Parquet metadata, so a
        ``toolkit decisions --reindex`` can read them), without indexing them as they are
        written: indexing costs as much as scoring (~10,000 records/s), and the index answers
        for what was served. Feedback and the report find them through the batch log."""
        import pandas as pd

        from toolkit.guard.batch import storable
        from toolkit.guard.record_index import RunRef, write_records

        assert self._raw is not None and self._out is not None
        records = pd.concat([storable(self._raw), self._out], axis=1)
        records[SHADOW_COLUMN] = True
        meta = {"id_column": id_column, "scored_at": now_iso(), **RunRef.from_env().__dict__}
        write_records(path, records, meta)


def default_runs_dir(decisions: Path) -> Path:
    """The runs folder of the pipeline run executing now, else the decisions' folder."""
    run_dir = os.environ.get("TOOLKIT_RUN_DIR")
    return Path(run_dir).parent.parent if run_dir else decisions.parent


def batch_ms(out: pd.DataFrame) -> float | None:
    """The guard's time for the whole batch (each row's ``latency_ms`` holds it)."""
    if not len(out) or "latency_ms" not in out:
        return None
    return float(out["latency_ms"].max())


def compare_paths(champion: pd.DataFrame, shadow: pd.DataFrame) -> dict[str, int]:
    """Row by row: answered by both and agreeing, and rejected by one contract only."""
    a_rej = (champion["path"] == REJECTED).to_numpy()
    b_rej = (shadow["path"] == REJECTED).to_numpy()
    both = ~a_rej & ~b_rej
    same = (
        champion["prediction"].astype(object).to_numpy()
        == shadow["prediction"].astype(object).to_numpy()
    )
    return {
        "compared": int(both.sum()),
        "agreed": int((both & same).sum()),
        "champion_rejected_only": int((a_rej & ~b_rej).sum()),
        "shadow_rejected_only": int((b_rej & ~a_rej).sum()),
        "both_rejected": int((a_rej & b_rej).sum()),
    }
