"""The one module of ``toolkit.release`` that imports MLflow: the registry's client, logging a
model (scikit-learn, or a guarded pyfunc) as an MLflow LoggedModel, loading a pyfunc back, and
asking an MLflow server who the caller is.

The rest of the package (store, governance, registration, registry, guarded, identity) works
through these functions and the client :func:`connect` returns. MLflow is imported inside each
function (~1 s), so importing the toolkit, ``toolkit --help`` included, never pays for it. Only an
explicit :class:`mlflow.MlflowClient` is used, never MLflow's process-global fluent state
(tracking URI, active run), which is unsafe next to parallel step threads.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Collection, Sequence
from typing import Any
from urllib.parse import urlparse

from toolkit.core import sqlite_store
from toolkit.core.mlflow_env import use_mlflow_defaults


def connect(tracking_uri: str) -> Any:
    """An :class:`mlflow.MlflowClient` for the tracking store and registry at ``tracking_uri``."""
    use_mlflow_defaults()  # before the import
    from mlflow import MlflowClient

    fresh = sqlite_store.seed(tracking_uri)  # a new store: copied, not migrated, if it can be
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if fresh:  # MLflow has just built it: the next new store will be a copy
        sqlite_store.keep(tracking_uri)
    return client


def warm_up() -> None:
    """Do now, e.g. on a thread while steps run, what logging a model pays for the first time:
    importing ``mlflow.pyfunc``, and MLflow's map of installed packages (~1.2 s: it lists every
    installed file to check the model's requirements against the environment)."""
    use_mlflow_defaults()
    import mlflow.pyfunc  # noqa: F401

    with contextlib.suppress(Exception):  # a private helper: if it moved, logging pays later
        from mlflow.utils import requirements_utils

        requirements_utils._init_packages_to_modules_map()


def log_model(
    client: Any,
    save: Callable[[str, Any], None],
    *,
    run_id: str | None,
    name: str,
    tags: dict[str, str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Any:
    """Log a model to ``run_id``'s experiment (the Default one without a run) and return the
    READY :class:`mlflow.entities.LoggedModel`; ``save(folder, mlflow_model)`` writes it.

    This replays what the flavours' ``log_model`` do through an explicit client: theirs read the
    process-global tracking URI and active run. On any failure the logged model is marked FAILED.
    """
    from mlflow.entities import LoggedModelOutput
    from mlflow.models import Model

    experiment_id = client.get_run(run_id).info.experiment_id if run_id else "0"  # "Default"
    logged = client.create_logged_model(experiment_id, name=name, source_run_id=run_id, tags=tags)
    try:
        if run_id:
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
        meta = Model(
            artifact_path=logged.artifact_location,
            model_uuid=logged.model_id,
            run_id=run_id,
            model_id=logged.model_id,
            metadata=metadata,
        )
        with tempfile.TemporaryDirectory(prefix="toolkit-model-") as tmp:
            local = os.path.join(tmp, "model")
            save(local, meta)
            client.log_model_artifacts(logged.model_id, local)
    except BaseException:
        with contextlib.suppress(Exception):
            client.finalize_logged_model(logged.model_id, "FAILED")
        raise
    client.finalize_logged_model(logged.model_id, "READY")
    return logged


def log_sklearn(
    client: Any,
    model: object,
    *,
    run_id: str,
    name: str,
    pip_requirements: list[str] | None = None,
    serialization_format: str | None = None,
) -> str:
    """Log a fitted scikit-learn model to ``run_id``; return its ``models:/<model_id>`` URI.

    ``pip_requirements`` defaults to MLflow's pinned defaults, because inferring them runs a
    subprocess (~3 s)."""
    import mlflow.sklearn

    fmt = serialization_format or mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS
    reqs = pip_requirements or mlflow.sklearn.get_default_pip_requirements(
        include_cloudpickle=fmt == "cloudpickle", include_skops=fmt == "skops"
    )

    def save(local: str, meta: Any) -> None:
        mlflow.sklearn.save_model(
            model, local, mlflow_model=meta, serialization_format=fmt, pip_requirements=reqs
        )

    logged = log_model(client, save, run_id=run_id, name=name)
    return f"models:/{logged.model_id}"


def log_pyfunc(
    client: Any,
    python_model: Callable[[Any], Any],
    *,
    run_id: str | None,
    name: str,
    tags: dict[str, str],
    metadata: dict[str, Any],
    outputs: Sequence[str],
    numeric_outputs: Collection[str],
    input_example: Any,
    pip_requirements: list[str],
) -> Any:
    """Log a callable as a pyfunc model (MLflow cloudpickles it); return the LoggedModel.

    The signature declares ``outputs`` only (doubles for ``numeric_outputs``, strings for the
    rest, none required): an input schema would make MLflow rewrite every request before the
    model sees it (see :mod:`toolkit.release.guarded`).
    """
    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, DataType, Schema

    columns = [
        ColSpec(DataType.double if c in numeric_outputs else DataType.string, c, required=False)
        for c in outputs
    ]
    signature = ModelSignature(inputs=None, outputs=Schema(columns))

    def save(local: str, meta: Any) -> None:
        mlflow.pyfunc.save_model(
            local,
            python_model=python_model,
            mlflow_model=meta,
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements,
        )

    return log_model(client, save, run_id=run_id, name=name, tags=tags, metadata=metadata)


def load_python_model(location: str, *, tracking_uri: str) -> Any:
    """The object logged as ``python_model`` of the pyfunc model stored at ``location`` (a
    storage URI or a local folder), downloaded first unless the store is local."""
    use_mlflow_defaults()
    import mlflow.artifacts
    import mlflow.pyfunc

    if urlparse(location).scheme in ("", "file"):  # a local store: nothing to download
        return mlflow.pyfunc.load_model(location).unwrap_python_model()
    with tempfile.TemporaryDirectory(prefix="toolkit-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=tmp, tracking_uri=tracking_uri
        )
        return mlflow.pyfunc.load_model(local).unwrap_python_model()


def server_request(tracking_uri: str, endpoint: str, method: str = "GET") -> Any:
    """One HTTP request to the MLflow server, with the credentials MLflow's own client sends
    (``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` or ``~/.mlflow/credentials``, read now); the
    raw response, whatever its status. One attempt: no 4-minute retry on a dead server."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    return http_request(get_default_host_creds(tracking_uri), endpoint, method, max_retries=1)
