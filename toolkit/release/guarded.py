"""Log a :class:`~toolkit.guard.GuardedModel` as an MLflow pyfunc model, and load it back.

MLflow itself is called through :mod:`toolkit.release.mlflow_registry` (an explicit client, never
MLflow's process-global fluent state, which is unsafe next to parallel step threads).

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
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from urllib.parse import urlparse

from toolkit.guard.decisions import OUTPUT_COLUMNS
from toolkit.guard.model import GuardedModel
from toolkit.release import mlflow_registry

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
    """Pay now, e.g. on a thread while steps run, the one-off costs of logging a model
    (importing ``mlflow.pyfunc``, MLflow's map of installed packages: 1-2 s)."""
    mlflow_registry.warm_up()


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
    client = mlflow_registry.connect(tracking_uri)
    tags = {
        "toolkit.guard.version": guarded.version,
        "toolkit.guard.model_name": guarded.model_name,
    }
    # MLflow writes the metadata as YAML: JSON round-trip for plain lists and dicts.
    metadata = {"toolkit_guard": json.loads(json.dumps(guarded.describe(), default=str))}
    with pickled_by_value(code_modules), _quiet("mlflow.pyfunc"):
        logged = mlflow_registry.log_pyfunc(
            client,
            guarded,
            run_id=run_id,
            name=name,
            tags=tags,
            metadata=metadata,
            outputs=OUTPUT_COLUMNS,
            numeric_outputs=_NUMERIC_OUTPUTS,
            input_example=guarded.input_example,
            pip_requirements=list(pip_requirements or default_pip_requirements()),
        )
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
    client = mlflow_registry.connect(tracking_uri)
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
    wrapped = mlflow_registry.load_python_model(location, tracking_uri=tracking_uri)
    func = getattr(wrapped, "func", wrapped)  # MLflow wraps a callable twice
    return getattr(func, "__wrapped__", func)


@contextlib.contextmanager
def pickled_by_value(extra: Sequence[ModuleType]) -> Iterator[None]:
    """Pickle ``toolkit.guard`` (and ``extra``) by value for the duration of the block, so a
    served model needs no toolkit installed."""
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
