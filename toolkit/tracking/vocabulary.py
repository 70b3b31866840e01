"""Tracking vocabulary shared without importing MLflow: tag names, limits, run views."""

from __future__ import annotations

import json
import posixpath
import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from toolkit.core.jsonable import jsonable

# Tag names: part of the interface (searches and `toolkit runs` depend on them).
TAG_RUN_ID = "toolkit.run_id"
TAG_PIPELINE = "toolkit.pipeline"
TAG_STEP = "toolkit.step"
TAG_KIND = "toolkit.kind"  # "pipeline" | "step": lets searches skip the nested runs
TAG_VERSION = "toolkit.version"
TAG_SPEC_HASH = "toolkit.spec_hash"
TAG_ERROR_TYPE = "toolkit.error.type"
TAG_ERROR_MESSAGE = "toolkit.error.message"
TAG_GIT_COMMIT = "git.commit"
TAG_GIT_DIRTY = "git.dirty"
TAG_GIT_BRANCH = "git.branch"
TAG_LOCK_HASH = "toolkit.lock.sha256"  # the dependency lock the run was installed from
# MLflow's system tags, which its UI understands.
MLFLOW_PARENT_RUN_ID = "mlflow.parentRunId"
MLFLOW_RUN_NAME = "mlflow.runName"
MLFLOW_USER = "mlflow.user"
MLFLOW_SOURCE_NAME = "mlflow.source.name"
MLFLOW_SOURCE_TYPE = "mlflow.source.type"
MLFLOW_NOTE = "mlflow.note.content"
MLFLOW_GIT_COMMIT = "mlflow.source.git.commit"
MLFLOW_GIT_BRANCH = "mlflow.source.git.branch"
MLFLOW_GIT_REPO_URL = "mlflow.source.git.repoURL"

# MLflow 3.17 limits (mlflow/utils/validation.py).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
TRUNCATED = "...[truncated]"
END_STATUSES = frozenset({"FINISHED", "FAILED", "KILLED"})
MAX_KEY_LENGTH = 250
KEY_CHARS = re.compile(r"^[/\w.\- :]*$")
RUN_ID = re.compile(r"^[0-9a-f]{32}$")

Metric = tuple[str, float, int | None, int | None]  # (key, value, step, timestamp_ms)


def valid_metric_key(key: str) -> bool:
    """MLflow's rule for metric and param names (it rejects the whole batch otherwise)."""
    return (
        0 < len(key) <= MAX_KEY_LENGTH
        and KEY_CHARS.match(key) is not None
        and posixpath.normpath(key) == key
        and not key.startswith(("/", ".."))
    )


def now_ms() -> int:
    return int(time.time() * 1000)


def error_tags(error: BaseException | str) -> dict[str, str]:
    """The tags that say why a run ended: the exception's type (or "Error") and message."""
    kind = type(error).__name__ if isinstance(error, BaseException) else "Error"
    return {TAG_ERROR_TYPE: kind, TAG_ERROR_MESSAGE: str(error) or kind}


def stringify(value: object, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "pipeline"


def datetime_from_ms(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=UTC) if ms else None


def lineage_tags(
    git: Mapping[str, object] | None = None,
    *,
    spec_hash: str | None = None,
    toolkit_version: str | None = None,
    scheduler: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Tags for a pipeline run from :func:`toolkit.core.lineage.git_info` / ``scheduler_context``."""
    tags: dict[str, str] = {}
    git = git or {}
    if git.get("commit"):
        tags[TAG_GIT_COMMIT] = tags[MLFLOW_GIT_COMMIT] = str(git["commit"])
    if git.get("branch"):
        tags[TAG_GIT_BRANCH] = tags[MLFLOW_GIT_BRANCH] = str(git["branch"])
    if git.get("dirty") is not None:
        tags[TAG_GIT_DIRTY] = str(git["dirty"]).lower()
    if git.get("repo_url"):
        tags[MLFLOW_GIT_REPO_URL] = str(git["repo_url"])
    if spec_hash:
        tags[TAG_SPEC_HASH] = spec_hash
    if toolkit_version:
        tags[TAG_VERSION] = toolkit_version
    for key, value in (scheduler or {}).items():
        tags[f"scheduler.{key.lower()}"] = str(value)
    return tags


@dataclass(frozen=True)
class StepDetail:
    """One step's nested run, as shown by ``toolkit runs show``."""

    run_id: str
    step: str
    status: str
    start_time: datetime | None
    end_time: datetime | None
    duration_s: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    artifact_uri: str | None = None
    ui_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass(frozen=True)
class RunSummary:
    """One pipeline run (the parent MLflow run)."""

    run_id: str
    toolkit_run_id: str | None
    pipeline: str | None
    run_name: str | None
    status: str
    start_time: datetime | None
    end_time: datetime | None
    duration_s: float | None
    experiment_id: str
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    ui_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass(frozen=True)
class RunDetail(RunSummary):
    """A pipeline run with its step runs, oldest step first."""

    artifact_uri: str | None = None
    steps: tuple[StepDetail, ...] = ()
