"""Build and log a release bundle (:mod:`toolkit.shadow.bundle`) for ``mlflow models serve``:
the champion and the version shadowing it, from the registry, as one pyfunc model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from toolkit.core.errors import RegistryError
from toolkit.release import mlflow_registry
from toolkit.release.guarded import default_pip_requirements, load_guarded_model
from toolkit.release.vocabulary import CHAMPION
from toolkit.shadow.bundle import ReleaseBundle
from toolkit.shadow.state import ShadowRegistry

NUMERIC = frozenset({"probability", "confidence", "latency_ms"})


def build_bundle(tracking_uri: str, model: str, decision_log: Path) -> ReleaseBundle:
    """The champion of ``model`` and its current shadow, as one bundle.

    Raises:
        RegistryError: ``model`` has no champion or no shadow.
    """
    registry = ShadowRegistry(tracking_uri)
    state = registry.shadow(model)
    if state is None:
        raise RegistryError(
            f"{model!r} has no shadow to bundle",
            hint=f"set one first: toolkit shadow start {model} candidate",
        )
    champion = registry.resolve(model, CHAMPION)
    guards = [
        load_guarded_model(f"models:/{model}/{v}", tracking_uri=tracking_uri)
        for v in (champion, state.version)
    ]
    versions = {"champion_version": champion, "shadow_version": state.version}
    return ReleaseBundle(*guards, decision_log=str(decision_log.resolve()), versions=versions)


def log_bundle(
    bundle: ReleaseBundle, *, tracking_uri: str, code_modules: Sequence[ModuleType] = ()
) -> str:
    """Log ``bundle`` as a pyfunc model; its ``models:/<model_id>`` URI. ``code_modules``:
    project modules the guards' preprocess or fallback functions live in, pickled by value."""
    from toolkit.guard.decisions import OUTPUT_COLUMNS

    client = mlflow_registry.connect(tracking_uri)
    tags = {"toolkit.bundle.model": bundle.model_name,
            **{f"toolkit.bundle.{k}": v for k, v in bundle.versions.items()}}  # fmt: skip
    import toolkit.shadow.bundle
    from toolkit.release.guarded import pickled_by_value

    # The bundle's own module too: serving needs no toolkit.
    with pickled_by_value([toolkit.shadow.bundle, *code_modules]):
        logged = mlflow_registry.log_pyfunc(
            client, bundle, run_id=None, name="release-bundle", tags=tags,
            metadata={"toolkit_bundle": _jsonable(bundle.describe())},
            outputs=OUTPUT_COLUMNS, numeric_outputs=NUMERIC,
            input_example=bundle.input_example, pip_requirements=default_pip_requirements(),
        )  # fmt: skip
    return f"models:/{logged.model_id}"


def _jsonable(data: Any) -> Any:
    import json

    return json.loads(json.dumps(data, default=str))
