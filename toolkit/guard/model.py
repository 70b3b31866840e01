"""The guarded model: raw records in, one decision record per row out.

For each batch, :meth:`GuardedModel.predict`:

1. checks every row against the compiled input contract; failing rows take the ``rejected`` path
   with a reason naming each offending column, and never reach the model;
2. derives the model's features from the raw columns (``preprocess`` is logged with the model,
   so training and serving cannot skew) and rejects rows whose features are not finite;
3. scores the rest; rows breaking the output contract, rows below the confidence threshold and,
   when the model itself raises, all rows go to the fallback (``fallback`` path);
4. records model name and version, confidence, latency, an input hash and, for linear models,
   the top contributing features (coefficient x standardised value).

The output has one row per input row, with the input's index. Every step is vectorised over the
batch; ``benchmarks/bench_guard.py`` measures the cost against a bare ``predict_proba``.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from toolkit.guard.decisions import SMALL, contributions_json, decision_table
from toolkit.guard.explain import top_contributions
from toolkit.guard.input_contract import CheckResult, InputContract
from toolkit.guard.one_record import record_check
from toolkit.guard.policy import (
    ConfidencePolicy,
    Fallback,
    OutputContract,
    RuleFallback,
    row_max,
)
from toolkit.guard.sklearn_path import (
    finite_inputs,
    linear_parts,
    linear_proba,
    numpy_twin,
    plain_linear,
    scaled_proba,
    transform,
)


class GuardedModel:
    """A fitted classifier wrapped with input/output contracts, a confidence policy, a fallback.

    Args:
        estimator: a fitted scikit-learn style classifier (``predict_proba``, ``classes_``),
            typically a Pipeline; a linear final step is explained per row.
        contract: the compiled input contract (:func:`toolkit.guard.compile_suite`).
        output: class-to-label mapping and threshold.
        policy: the confidence policy.
        fallback: decides unsure rows without the model; None leaves them without a prediction.
        preprocess: contract columns -> model features (a DataFrame, or None after adding columns
            in place). Without it, an estimator fitted on a DataFrame gets its fitted columns.
        model_name, version: written into every decision record; the version defaults to a
            fingerprint of the estimator and the guard's configuration.
        top_k: contributing features recorded per row; 0 records none (cheaper batches).
        input_example: a few raw records, logged with the model (contract columns only).
    """

    def __init__(
        self,
        estimator: Any,
        *,
        contract: InputContract,
        output: OutputContract,
        policy: ConfidencePolicy | None = None,
        fallback: Fallback | None = None,
        preprocess: Callable[[pd.DataFrame], pd.DataFrame | None] | None = None,
        model_name: str = "model",
        version: str | None = None,
        top_k: int = 3,
        input_example: pd.DataFrame | None = None,
    ) -> None:
        self.estimator, self.contract, self.output = estimator, contract, output
        self.policy, self.fallback = policy or ConfidencePolicy(), fallback
        self.preprocess, self.model_name, self.top_k = preprocess, model_name, top_k
        if input_example is not None:
            kept = [c for c in input_example.columns if c in set(contract.names)]
            input_example = input_example.loc[:, kept].head(5).copy()
        self.input_example = input_example
        names = getattr(estimator, "feature_names_in_", None)
        self.feature_names = None if names is None else [str(c) for c in names]
        self._labels = np.array(output.labels, dtype=object)
        # sklearn checks a DataFrame's feature names on every call (~1 ms for one row, 5x the
        # arithmetic of scaler + linear model). Columns are selected by name here, so a twin
        # without recorded names is fed numpy instead, provided it agrees on a probe.
        self._numpy_model = numpy_twin(estimator, self.feature_names)
        self._linear = linear_parts(estimator, self._numpy_model or estimator)
        # sklearn's arithmetic without its per-call validation, if it gives the same bits
        self._plain = self._linear is not None and plain_linear(*self._linear[:2])
        self._one_record = record_check(contract)  # a valid record without the matrix set-up
        self.version = ""  # describe() reads it while the fingerprint is computed
        self.version = version or self.fingerprint()

    def predict(
        self, data: pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any]
    ) -> pd.DataFrame:
        """Score raw records: one output row per input row, columns
        :data:`toolkit.guard.decisions.OUTPUT_COLUMNS`.

        ``probability`` is the model's probability of the second class for a binary model (of
        the predicted class otherwise), kept on ``fallback`` rows; ``confidence`` is the highest
        class probability; ``latency_ms`` is the time taken for the whole batch. Missing: NaN.
        """
        start = time.perf_counter()
        df = data if isinstance(data, pd.DataFrame) else _as_frame(data)
        try:
            out = self._decide(df, start)
        except Exception as exc:  # a bug or an input nobody foresaw: isolate the row(s) at fault
            if len(df) > 1:  # one record that breaks the guard must not take its batch down
                out = pd.concat([self.predict(df.iloc[[i]]) for i in range(len(df))])
            else:
                out = self._unanswered(df, exc, start)
        if len(out) != len(df):  # scored + fallback + rejected = input rows, whatever happened
            raise RuntimeError(f"the guard answered {len(out)} of {len(df)} records")
        return out

    def _decide(self, df: pd.DataFrame, start: float) -> pd.DataFrame:
        fast = self.__dict__.get("_one_record") if len(df) == 1 else None  # None: older pickles
        n, check = len(df), (fast and fast(df)) or self.contract.check(df)
        path = np.where(check.valid, np.int8(0), np.int8(2))
        reasons = check.reasons  # this call's own check: written in place, not copied
        codes = np.full(n, -1, dtype=np.intp)  # index of the predicted label; -1: none
        probability, confidence = np.full(n, np.nan), np.full(n, np.nan)
        rows, tops = np.flatnonzero(check.valid), None
        to_fallback: list[tuple[np.ndarray, str]] = []
        rules = np.full(n, None, dtype=object)  # the fallback rule that fired, per row
        if rows.size:
            frame = check.frame if rows.size == n else check.frame.iloc[rows]
            try:
                rows, proba, contrib = self._score(frame, rows, path, reasons)
            except Exception as exc:  # a failing model must not fail the batch: fall back
                to_fallback.append((rows, f"model error: {type(exc).__name__}: {exc}"))
                rows, proba, contrib = rows[:0], np.empty((0, 0)), None
            if rows.size:
                at = slice(None) if rows.size == n else rows  # every row: no index arrays
                codes[at] = chosen = self.output.predicted_index(proba)
                confidence[at] = row_max(proba)
                binary = proba.shape[1] == 2
                probability[at] = proba[:, 1] if binary else proba[np.arange(rows.size), chosen]
                broken = self.output.violations(proba)
                unsure = self.policy.unsure(confidence[at]) & ~broken
                to_fallback.append((rows[broken], "output contract: probabilities outside [0, 1]"))
                to_fallback.append((rows[unsure], self.policy.reason))
                if contrib is not None and self.top_k:
                    tops = (rows, self._explain(*contrib, chosen=chosen))
        for positions, why in to_fallback:
            if positions.size:
                taken: Any = slice(None)  # a rules file reads a few columns: take those only
                if isinstance(self.fallback, RuleFallback):
                    read = self.fallback.columns
                    taken = [c in read for c in check.frame.columns]
                picked = check.frame.iloc[positions, taken]
                self._fall_back(picked, positions, why, path, codes, reasons, rules)
        if path.shape != (n,) or not ((path >= 0) & (path <= 2)).all():  # isin: 5x slower
            raise RuntimeError("a record was left without a decision")
        latency = np.full(n, (time.perf_counter() - start) * 1000.0)
        numbers = {"probability": probability, "confidence": confidence, "latency_ms": latency}
        return self._table(df.index, numbers, codes, path, reasons, check, tops, rules)

    def _unanswered(self, df: pd.DataFrame, exc: Exception, start: float) -> pd.DataFrame:
        """Rejected decisions for records the guard failed on, with the error as the reason."""
        n = len(df)
        reason = f"the guard failed on this record: {type(exc).__name__}: {exc}"
        texts = np.array([_safe_repr(r) for r in df.to_dict("records")], dtype=object)
        hashes = pd.util.hash_array(texts) if n else np.empty(0, np.uint64)
        check = CheckResult(np.zeros(n, bool), np.full(n, reason, object), df.iloc[:, :0], hashes)
        nan, latency = np.full(n, np.nan), np.full(n, (time.perf_counter() - start) * 1000.0)
        numbers = {"probability": nan, "confidence": nan, "latency_ms": latency}
        codes, path = np.full(n, -1, np.intp), np.full(n, 2, np.int8)
        return self._table(df.index, numbers, codes, path, check.reasons, check, None)

    def _table(
        self,
        index: pd.Index,
        numbers: dict[str, np.ndarray],
        codes: np.ndarray,
        path: np.ndarray,
        reasons: np.ndarray,
        check: CheckResult,
        tops: tuple[np.ndarray, Any] | None,
        rules: np.ndarray | None = None,
    ) -> pd.DataFrame:
        return decision_table(
            index, numbers, codes, path, reasons, check, tops,
            labels=self.output.labels, model_name=self.model_name, version=self.version,
            rules=rules,
        )  # fmt: skip

    def __call__(self, model_input: pd.DataFrame) -> pd.DataFrame:
        """The MLflow pyfunc entry point: :meth:`predict` with missing values as None.

        MLflow's scoring server writes NaN as a bare ``NaN`` token, which strict JSON parsers
        (browsers, Java) reject; None becomes ``null``.
        """
        out = self.predict(model_input)
        return out.astype(object).where(out.notna(), None)

    def describe(self) -> dict[str, Any]:
        """The guard's configuration as JSON-able data (logged as MLflow model metadata)."""
        fallback = (
            None
            if self.fallback is None
            else {"name": self.fallback.name, "source": getattr(self.fallback, "source", "")}
        )
        output = {"labels": dict(self.output.class_labels), "threshold": self.output.threshold}
        return {
            "model_name": self.model_name,
            "version": self.version,
            "estimator": type(self.estimator).__name__,
            "input_contract": self.contract.describe(),
            "output_contract": output,
            "min_confidence": self.policy.min_confidence,
            "fallback": fallback,
            "explained": self._linear is not None and self.top_k > 0,
            "top_k": self.top_k,
        }

    def fingerprint(self) -> str:
        """12 hex digits identifying the estimator and the guard's configuration."""
        try:
            digest = hashlib.sha256(pickle.dumps(self.estimator, protocol=5))
        except Exception:  # not picklable by the standard library (e.g. a local class)
            digest = hashlib.sha256(repr(self.estimator).encode())
        config = {k: v for k, v in self.describe().items() if k != "version"}
        if isinstance(self.fallback, RuleFallback):
            # The rules themselves, not the file they were read from: the same model and rules
            # are the same version in any checkout (the path is absolute).
            rules = (self.fallback.rules, self.fallback.default_label, self.fallback.default_reason)
            config["fallback"] = {"name": self.fallback.name, "rules": repr(rules)}
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        return digest.hexdigest()[:12]

    def features(self, frame: pd.DataFrame) -> tuple[pd.DataFrame | None, np.ndarray]:
        """The model's input for contract-checked rows, as float64 (and as a DataFrame when the
        estimator needs one): ``preprocess``, then the fitted columns.

        Raises:
            KeyError: a fitted column is neither in the contract nor made by ``preprocess``.
        """
        return self._columns(self._preprocessed(frame))

    def _preprocessed(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.preprocess is None:
            return frame
        copied = frame.copy(deep=False)  # copy-on-write: the contract frame stays as it is
        with np.errstate(all="ignore"):  # e.g. log(0): non-finite features are rejected
            result = self.preprocess(copied)
        return copied if result is None else result

    def _columns(self, frame: pd.DataFrame) -> tuple[pd.DataFrame | None, np.ndarray]:
        names = self.feature_names
        if names is None:
            return frame, frame.to_numpy(np.float64)
        if self._numpy_model is not None and len(frame) <= SMALL:  # frame[names]: ~0.7 ms
            where = {c: i for i, c in enumerate(frame.columns.tolist())}
            if missing := [c for c in names if c not in where]:
                raise KeyError(f"features missing after preprocessing: {missing}")
            return None, frame.to_numpy(object)[:, [where[c] for c in names]].astype(np.float64)
        if self._numpy_model is not None:  # one copy, not frame[names] (a copy) + to_numpy
            values = np.empty((len(frame), len(names)), order="F")
            for j, name in enumerate(names):
                values[:, j] = frame[name].to_numpy()
            return None, values
        x = frame[names]
        return x, x.to_numpy(np.float64)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("_numbers", "_keys")}  # caches

    def _score(
        self, frame: pd.DataFrame, rows: np.ndarray, path: np.ndarray, reasons: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, Any]:
        """Probabilities (and linear contributions) of the rows whose features are finite."""
        ready, linear, wanted = self._preprocessed(frame), self._linear, self.feature_names
        fused = len(rows) > SMALL and self.__dict__.get("_plain") and self._numpy_model is not None
        if fused and linear is not None and wanted is not None and np.all(linear[3] != 0):
            # (a zero coefficient could hide a NaN feature from the score)
            done = scaled_proba(*linear[:2], [ready[name].to_numpy() for name in wanted])
            if done is not None:  # every feature finite: the batch is scored as it is
                return rows, done[1], (done[0], linear[3], linear[2])
        x, values = self._columns(ready)
        finite = np.isfinite(values).all(axis=1)
        if not finite.all():  # e.g. log(0): the contract let it through, the model cannot score it
            columns = self.feature_names or [str(c) for c in getattr(x, "columns", ())]
            names = np.array(columns, dtype=np.object_)
            for k in np.flatnonzero(~finite):
                bad = ", ".join(names[~np.isfinite(values[k])])
                reasons[rows[k]] = f"features not finite after preprocessing: {bad}"
            path[rows[~finite]] = 2
            rows, values = rows[finite], values[finite]
            x = None if x is None else x.iloc[np.flatnonzero(finite)]
        if not rows.size:
            return rows, np.empty((0, len(self._labels))), None
        runner = self._numpy_model if self._numpy_model is not None else self.estimator
        z = values if self._numpy_model is not None else x
        with finite_inputs():
            if self._linear is None:
                return rows, np.asarray(runner.predict_proba(z), dtype=np.float64), None
            steps, final, features, coef = self._linear
            # features() built the numpy input for this call: steps may overwrite it
            own = self._numpy_model is not None and self.feature_names is not None
            if own and len(rows) <= SMALL and self.__dict__.get("_plain"):  # one record: ~0.4 ms
                z, proba = linear_proba(steps, final, values)
                return rows, proba, (z, coef, features)
            for step in steps:  # Pipeline.transform adds ~0.2 ms of routing checks per call
                z, own = transform(step, z, own=own)
            z = np.asarray(z, dtype=np.float64)
            proba = np.asarray(final.predict_proba(z), dtype=np.float64)
            return rows, proba, (z, coef, features)

    def _explain(
        self, z: np.ndarray, coef: np.ndarray, features: list[str], *, chosen: np.ndarray
    ) -> Any:
        """Top-k contributions (coefficient x transformed value) per row, as JSON objects.

        Signed: a positive value pushes towards the second class (binary) or the predicted one.
        """
        top, values = top_contributions(z, coef, chosen, min(self.top_k, z.shape[1]))
        cached = self.__dict__.get("_keys")  # the names as JSON: once, not per call
        if cached is None or cached[0] is not features:
            cached = self._keys = (features, [json.dumps(name) for name in features])
        keys = cached[1]
        text, self._numbers = contributions_json(top, values, keys, self.__dict__.get("_numbers"))
        return text

    def _fall_back(
        self,
        rows: pd.DataFrame,
        positions: np.ndarray,
        why: str,
        path: np.ndarray,
        codes: np.ndarray,
        reasons: np.ndarray,
        rules: np.ndarray,
    ) -> None:
        path[positions], codes[positions] = 1, -1
        if self.fallback is None:
            reasons[positions] = f"{why}; no fallback configured"
            return
        try:
            named = getattr(self.fallback, "decide_named", None)
            if named is not None:  # rules: the record names the rule that fired
                labels, because, fired = named(rows)
            else:  # a function decides: its name is the rule
                labels, because = self.fallback.decide(rows)
                fired = np.full(len(rows), self.fallback.name, dtype=object)
            rules[positions] = fired
        except Exception as exc:  # the last line of defence failed: no answer is safer
            path[positions] = 2
            reasons[positions] = (
                f"{why}; fallback {self.fallback.name} failed: {type(exc).__name__}: {exc}"
            )
            return
        reasons[positions] = why + "; " + because
        index = {label: i for i, label in enumerate(self.output.labels)}
        codes[positions] = found = np.fromiter(map(index.get, labels, [-1] * len(labels)), np.intp)
        for k in np.flatnonzero(found < 0).tolist():
            if (label := labels[k]) is not None and label == label:  # not None/NaN: outside
                path[positions[k]] = 2
                reasons[positions[k]] = f"{why}; fallback returned {label!r}, not an allowed label"


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # the record is what broke the guard: its repr may break too
        return object.__repr__(value)


def _as_frame(data: Any) -> pd.DataFrame:
    if isinstance(data, Mapping) and all(np.ndim(v) == 0 for v in data.values()):
        return pd.DataFrame([data])  # one record
    return pd.DataFrame(data if isinstance(data, Mapping) else list(data))
