"""Log a :class:`~toolkit.guard.GuardedModel` as an MLflow pyfunc model, and load it back.

Part of the registry package, which with ``toolkit.tracking`` is the only code importing MLflow.
Like the registry, it uses an explicit :class:`~mlflow.MlflowClient` and never MLflow's process-global fluent state
(tracking URI, active run), which is unsafe next to parallel step threads.

How the guard becomes a pyfunc (MLflow 3.17):

* MLflow accepts a plain callable taking one argument as ``python_model``; a GuardedModel is
  one (``__call__``), so no ``PythonModel`` subclass is needed. MLflow wraps it and cloudpickles
  the object.
* ``toolkit.guard`` is pickled *by value* (``cloudpickle.register_pickle_by_value``): the classes
  travel inside the model, so loading and serving need numpy, pandas, pyarrow and scikit-learn,
  not the toolkit. Pass ``code_modules`` for project modules holding ``preprocess`` or a fallback
  function (functions defined in a notebook travel by value anyway).
* The signature declares the outputs only. An input schema makes MLflow rewrite every request
  before the guard sees it: a typed one converts or rejects the whole batch (one string in a
  numeric column: HTTP 400 for every row), and even all-optional ``Any`` columns make it drop
  the columns it does not list, so records holding none of them vanish (HTTP 200 with no
  predictions). Without one, every record reaches the guard, which decides each row (missing
  columns: rejected, unknown ones: ignored with a note); the contract is in the metadata.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

from toolkit.guard.model import OUTPUT_COLUMNS, GuardedModel

_RUNTIME_PACKAGES = ("mlflow", "scikit-learn", "pandas", "numpy", "pyarrow", "cloudpickle")
_NUMERIC_OUTPUTS = {"probability", "confidence", "latency_ms"}


def default_pip_requirements() -> list[str]:
    """What a served guarded model needs, pinned to this environment's versions (inferring
    requirements costs MLflow ~3 s in a subprocess)."""
    pins = []
    for package in _RUNTIME_PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            pins.append(f"{package}=={version(package)}")
    return pins


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Keep MLflow's notes about how it pickles the model (a warning and an info line on every
    registration, nothing the user can act on) out of the run's log; errors still show."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def warm_up() -> None:
    """Do now, e.g. on a thread while steps run, what logging a model pays for the first time:
    importing ``mlflow.pyfunc``, and MLflow's map of installed packages (~1.2 s: it lists every
    installed file to check the model's requirements against the environment)."""
    import mlflow.pyfunc  # noqa: F401

    with contextlib.suppress(Exception):  # a private helper: if it moved, logging pays later
        from mlflow.utils import requirements_utils

        requirements_utils._init_packages_to_modules_map()


def log_guarded_model(
    guarded: GuardedModel,
    *,
    tracking_uri: str,
    run_id: str | None,
    name: str = "model",
    registered_model_name: str | None = None,
    pip_requirements: Sequence[str] | None = None,
    code_modules: Sequence[ModuleType] = (),
) -> str:
    """Log ``guarded`` as a pyfunc model (to ``run_id``'s experiment when given) and return its
    ``models:/<model_id>`` URI; with ``registered_model_name``, also create a model version.

    The model's metadata holds :meth:`GuardedModel.describe` under ``toolkit_guard``, and its
    input example is ``guarded.input_example`` (raw records).
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow.pyfunc
    from mlflow import MlflowClient
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    experiment_id = client.get_run(run_id).info.experiment_id if run_id else "0"  # "Default"
    tags = {
        "toolkit.guard.version": guarded.version,
        "toolkit.guard.model_name": guarded.model_name,
    }
    logged = client.create_logged_model(experiment_id, name=name, source_run_id=run_id, tags=tags)
    # MLflow writes the metadata as YAML: JSON round-trip for plain lists and dicts.
    metadata = {"toolkit_guard": json.loads(json.dumps(guarded.describe(), default=str))}
    meta = Model(
        artifact_path=logged.artifact_location,
        model_uuid=logged.model_id,
        run_id=run_id,
        model_id=logged.model_id,
        metadata=metadata,
    )
    try:
        if run_id:
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        with (
            tempfile.TemporaryDirectory(prefix="toolkit-guard-") as tmp,
            _by_value(code_modules),
            _quiet("mlflow.pyfunc"),
        ):
            local = os.path.join(tmp, "model")
            mlflow.pyfunc.save_model(
                local,
                python_model=guarded,
                mlflow_model=meta,
                signature=_signature(guarded),
                input_example=guarded.input_example,
                pip_requirements=list(pip_requirements or default_pip_requirements()),
            )
            client.log_model_artifacts(logged.model_id, local)
    except BaseException:
        with contextlib.suppress(Exception):
            client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.finalize_logged_model(logged.model_id, "READY")
    if registered_model_name:
        try:
            client.create_registered_model(registered_model_name)
        except Exception as exc:  # already registered, earlier or by another process
            if getattr(exc, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                raise
        # The SQL registry resolves models:/<id> through MLflow's global client: pass the location.
        client.create_model_version(
            registered_model_name,
            source=logged.artifact_location,
            run_id=run_id,
            model_id=logged.model_id,
            tags=tags,
        )
    return f"models:/{logged.model_id}"


def load_guarded_model(model_uri: str, *, tracking_uri: str) -> GuardedModel:
    """The GuardedModel inside a logged pyfunc model (``models:/<id>``, ``models:/NAME@alias``,
    ``models:/NAME/VERSION`` or ``runs:/RUN/PATH``), for batch scoring.

    Calling it directly skips MLflow's per-value schema enforcement of ``Any`` columns (a Python
    loop over every cell, seconds per 100k rows) and keeps NaN rather than None.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow.artifacts
    import mlflow.pyfunc
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    parsed = urlparse(model_uri)
    ref = (parsed.netloc + parsed.path).strip("/")
    location = model_uri
    if parsed.scheme == "models" and ref.startswith("m-"):
        location = client.get_logged_model(ref).artifact_location
    elif parsed.scheme == "models":
        name, at, alias = ref.partition("@")
        mv = (
            client.get_model_version_by_alias(name, alias)
            if at
            else client.get_model_version(*ref.rsplit("/", 1))
        )
        location = (
            client.get_logged_model(mv.model_id).artifact_location if mv.model_id else mv.source
        )
    elif parsed.scheme == "runs":
        run_id, _, path = ref.partition("/")
        location = client.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + path
    if urlparse(location).scheme in ("", "file"):  # a local store: nothing to download
        wrapped = mlflow.pyfunc.load_model(location).unwrap_python_model()
    else:
        with tempfile.TemporaryDirectory(prefix="toolkit-guard-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=tmp, tracking_uri=tracking_uri
            )
            wrapped = mlflow.pyfunc.load_model(local).unwrap_python_model()
    func = getattr(wrapped, "func", wrapped)  # MLflow wraps a callable twice
    return getattr(func, "__wrapped__", func)


def _signature(guarded: GuardedModel) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, DataType, Schema

    outputs = Schema(
        [
            ColSpec(
                DataType.double if c in _NUMERIC_OUTPUTS else DataType.string, c, required=False
            )
            for c in OUTPUT_COLUMNS
        ]
    )
    return ModelSignature(inputs=None, outputs=outputs)


@contextlib.contextmanager
def _by_value(extra: Sequence[ModuleType]) -> Iterator[None]:
    """Pickle ``toolkit.guard`` (and ``extra``) by value for the duration of the block."""
    import cloudpickle

    import toolkit.guard

    modules = [toolkit.guard, *extra]
    for module in modules:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        for module in modules:
            cloudpickle.unregister_pickle_by_value(module)
