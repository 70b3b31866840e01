"""Registration: log a model to a run, and register it as a new version with the alias
``candidate`` once every gate passed (the history entry and the policy bound to the model are
written under the model's lock; see :mod:`toolkit.release.registry`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from toolkit.gates.evaluation import GateReport
from toolkit.release import mlflow_registry
from toolkit.release.governance import GovernedStore
from toolkit.release.vocabulary import (
    CANDIDATE,
    DATA_PREFIX,
    TAG_GATES,
    TAG_GATES_PASSED,
    TAG_GIT_COMMIT,
    TAG_IDENTITY,
    TAG_METRICS_RUN_ID,
    TAG_MLFLOW_RUN_ID,
    TAG_REGISTERED_BY,
    TAG_RUN_ID,
    TAG_TRIGGERED_BY,
    ModelVersionInfo,
    PolicyRecord,
    key_part,
)

if TYPE_CHECKING:
    # Only the type: the record's module brings the spec models (pydantic) with it, which
    # reading the registry does not need.
    from toolkit.readiness.record import ReadinessRecord


class Registration(GovernedStore):
    """The store and its governance, plus logging models and registering versions."""

    def log_sklearn_model(
        self,
        run_id: str,
        model: object,
        *,
        name: str = "model",
        pip_requirements: list[str] | None = None,
        serialization_format: str | None = None,
    ) -> str:
        """Log a scikit-learn model (an estimator or a joblib file) to ``run_id``; return its
        ``models:/<model_id>`` URI.

        This replays what ``mlflow.sklearn.log_model`` does through this registry's explicit
        client: the fluent call reads the process-global tracking URI and active run, which is
        unsafe next to step threads. ``pip_requirements`` defaults to MLflow's pinned defaults,
        because inferring them runs a subprocess (~3 s). A path is loaded with joblib, which
        unpickles: pass only files the pipeline itself wrote.
        """
        if isinstance(model, str | Path):
            import joblib

            model = joblib.load(model)
        with self._guard(f"log model {name!r} to run {run_id}"):
            return mlflow_registry.log_sklearn(
                self._client,
                model,
                run_id=run_id,
                name=name,
                pip_requirements=pip_requirements,
                serialization_format=serialization_format,
            )

    def _source(self, model_uri: str) -> tuple[str, str | None]:
        """``(storage location, logged model id)``. The SQL registry store resolves
        ``models:/<id>`` through MLflow's *global* client, so it gets the location instead."""
        parsed = urlparse(model_uri)
        if parsed.scheme == "models" and parsed.path.strip("/").startswith("m-"):
            model_id = parsed.path.strip("/")
            return self._client.get_logged_model(model_id).artifact_location, model_id
        if parsed.scheme == "runs":
            run_id, _, path = (parsed.netloc + parsed.path).strip("/").partition("/")
            return self._client.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + path, None
        return model_uri, None

    def register(
        self,
        model_name: str,
        *,
        model_uri: str,
        run_id: str,
        gate_report: GateReport | Mapping[str, Any],
        policy: PolicyRecord | None = None,
        triggered_by: str | None = None,
        metrics_run_id: str | None = None,
        toolkit_run_id: str | None = None,
        git_commit: str | None = None,
        data_fingerprints: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        readiness: ReadinessRecord | None = None,
    ) -> ModelVersionInfo:
        """Register ``model_uri`` as a new version with alias ``candidate``, if every gate passed.

        ``run_id`` is the MLflow run that produced the model, ``metrics_run_id`` the one whose
        metrics the gates read (the gates step; champion comparisons read it later). A failed
        report raises :class:`~toolkit.core.errors.GateFailed` (or RegistryError for a gate that
        could not be evaluated) and registers nothing. The trainer recorded for self-approval
        checks is the caller's system identity (``triggered_by`` naming someone else is an
        admin override, recorded with the real user). ``policy`` is recorded on the model when
        it has none yet, or replaces it when at least as strict (a run can tighten, never
        loosen, the policy of a model). ``readiness`` (what the releasing spec required and
        lacked at this moment) is recorded on the version: ``promote`` holds it to that.
        """
        report = (
            gate_report
            if isinstance(gate_report, GateReport)
            else GateReport.from_dict(gate_report)
        )
        report.raise_for_failure()
        with self._guard(f"register model {model_name!r}"), self._lock(model_name):
            who = self.actor(triggered_by, model=model_name)  # under the lock: see admins
            all_tags = {
                **{str(k): str(v) for k, v in (tags or {}).items()},
                **{DATA_PREFIX + key_part(k): str(v) for k, v in (data_fingerprints or {}).items()},
                TAG_MLFLOW_RUN_ID: run_id,
                TAG_METRICS_RUN_ID: metrics_run_id or run_id,
                TAG_TRIGGERED_BY: who.name,
                TAG_IDENTITY: who.source,
                TAG_GATES: report.to_json(),
                TAG_GATES_PASSED: "true",
            }
            all_tags |= {TAG_REGISTERED_BY: who.real} if who.override else {}
            all_tags |= {TAG_RUN_ID: toolkit_run_id} if toolkit_run_id else {}
            all_tags |= {TAG_GIT_COMMIT: git_commit} if git_commit else {}
            if readiness is not None:
                from toolkit.readiness.record import TAG_READINESS

                all_tags[TAG_READINESS] = readiness.to_json()
            source, model_id = self._source(model_uri)
            try:
                self._client.create_registered_model(model_name)
            except Exception as exc:  # already registered, by now or by another process
                if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                    raise
            if policy is not None:
                self._bind_policy(model_name, policy, who)
            mv = self._client.create_model_version(
                model_name, source=source, run_id=run_id, tags=all_tags, model_id=model_id
            )
            version = str(mv.version)
            rm = self._model(model_name)  # one read for the history and the aliases
            aliases = self._aliases(rm)
            previous = aliases.get(CANDIDATE)
            reason = f"run {toolkit_run_id or run_id}"
            self._append(model_name, "registered", previous, version, who, rm=rm, reason=reason)
            self._write(self._client.set_registered_model_alias, model_name, CANDIDATE, version)
            # As get_version would read it, without reading the model twice more.
            created = self._client.get_model_version(model_name, version)
            return self._info(created, {**aliases, CANDIDATE: version})
