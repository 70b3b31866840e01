"""The Great Expectations adapter: the only toolkit module that imports ``great_expectations``.

It checks one expectation against GX's registry and constructor, and validates a DataFrame
against a list of expectations in one ephemeral GX context per process. GX is imported inside
functions only: the import costs ~2 s and ``toolkit --help`` must stay fast. What a suite file
may contain is :mod:`toolkit.contracts.suites`; what a result holds is
:mod:`toolkit.contracts.result`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.contracts.result import MAX_EXAMPLES
from toolkit.core.errors import ContractError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

_INDEX_KEY = "toolkit_index"  # our meta tag that maps GX results back to suite order
# BASIC, not SUMMARY/COMPLETE: SUMMARY builds the full list of failing row indices (and a query
# string naming every one) before truncating, ~1 s and tens of MB per failing expectation on
# 1M rows. BASIC still gives counts, percents and a bounded example list. We ask for more
# examples than we keep so that repeated values still leave a few distinct ones.
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 4 * MAX_EXAMPLES}


@functools.cache
def gx_version() -> str:
    """The installed GX version, read from package metadata (importing GX costs seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("great_expectations")
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def shipped_types() -> frozenset[str]:
    """The expectation types GX ships, from its package's file names, without importing it.

    Each core expectation is ``great_expectations/expectations/core/<type>.py``. Empty when GX
    is not installed; a type registered by a plugin is not in it (ask :func:`check_expectation`).
    """
    import importlib.util

    spec = importlib.util.find_spec("great_expectations")  # finds the package, runs none of it
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    folder = Path(next(iter(spec.submodule_search_locations))) / "expectations" / "core"
    return frozenset(p.stem for p in folder.glob("expect_*.py"))


def check_expectation(path: Path, where: str, etype: str, normalised: dict[str, Any]) -> None:
    """Raise naming file, index, type and field unless GX accepts this expectation.

    GX's own constructor silently drops an unknown type (it only logs), so the type is checked
    against the registry first and then the kwargs are validated by building the GX object.

    Raises:
        ContractError: an unknown type (with a did-you-mean) or invalid kwargs.
    """
    import_gx()
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.expectations.registry import (
        list_registered_expectation_implementations,
    )

    known = list_registered_expectation_implementations()
    if etype not in known:
        raise ContractError(
            f"{path}: {where}: unknown expectation type {etype!r}",
            hint=did_you_mean(etype, known) or "see the GX expectation gallery for valid types",
        )
    try:
        ExpectationConfiguration(**normalised).to_domain_obj()
    except Exception as exc:  # GX raises pydantic, GX and plain Python errors alike here
        raise ContractError(f"{path}: {where}: {_describe_kwargs_error(exc)}") from exc


def _describe_kwargs_error(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"invalid expectation: {exc}"
    by_field: dict[str, str] = {}
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        # A union-typed field (min_value: float | date | dict...) reports one error per member;
        # the first is the useful one.
        by_field.setdefault(f"field 'kwargs.{loc}'" if loc else "kwargs", err.get("msg", ""))
    return "; ".join(f"{where}: {msg}" for where, msg in by_field.items())


_GX_LOCK = threading.Lock()
_GX_STATE: dict[str, Any] = {}


_IMPORT_LOCK = threading.Lock()


def import_gx() -> None:
    """Import GX completely, once. Its expectation registry fills up during the import, so a
    thread must never look at it while another thread is still importing (one lock for both)."""
    with _IMPORT_LOCK:
        import great_expectations  # noqa: F401


def warm_up() -> None:
    """Import GX and build the context now (seconds), e.g. on a thread while kernels start."""
    import_gx()
    with _GX_LOCK:
        _gx_batch_definition()


def _gx_batch_definition() -> Any:
    """Build the process-wide ephemeral context on first use. Call with ``_GX_LOCK`` held."""
    if "batch_definition" in _GX_STATE:
        return _GX_STATE["batch_definition"]
    import_gx()
    import great_expectations as gx

    _tune_gx()
    context = gx.get_context(mode="ephemeral")  # mode= or GX walks up looking for a project
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}
    # The default Data Docs site points into a fresh $TMPDIR folder; we render our own HTML,
    # so remove it and nothing can ever be built there.
    for site in list(context.get_site_names()):
        context.delete_data_docs_site(site)
    batch_definition = (
        context.data_sources.add_pandas("toolkit")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
    )
    _GX_STATE.update(context=context, batch_definition=batch_definition)
    return batch_definition


def _tune_gx() -> None:
    """Remove four costs GX 1.24 pays on every pandas validation that we do not need (the
    last two: :func:`_memoise_configuration`, :func:`_fast_metric_ids`).

    Measured on 1M rows x 10 columns (see benchmarks/bench_contracts.py):

    * Every batch load hashes the whole frame (``hash_pandas_object``, ~0.1 s) to put a
      ``pandas_data_fingerprint`` in batch markers. We never read it, so hashing is switched
      off by setting the size threshold under which GX hashes to 0. (Process-wide: a notebook
      using GX directly after this also gets no fingerprint.)
    * column mean/sum/stdev scan every value in a Python loop for ``decimal.Decimal`` (~0.4 s
      per expectation). A numpy array whose dtype is not ``object`` cannot hold a Decimal, so
      we answer False for those without the scan; object arrays keep GX's own check.
    """
    import great_expectations.util as gx_util
    from great_expectations.execution_engine import pandas_execution_engine

    if hasattr(pandas_execution_engine, "HASH_THRESHOLD"):
        pandas_execution_engine.HASH_THRESHOLD = 0
    original = getattr(gx_util, "does_ndarray_contain_decimal_dtype", None)
    if original is None or getattr(original, "_toolkit_fast", False):
        return

    def does_ndarray_contain_decimal_dtype(data: Any) -> bool:
        dtype = getattr(data, "dtype", None)
        if dtype is not None and dtype.kind != "O":
            return False
        return bool(original(data))

    does_ndarray_contain_decimal_dtype._toolkit_fast = True  # type: ignore[attr-defined]
    gx_util.does_ndarray_contain_decimal_dtype = does_ndarray_contain_decimal_dtype
    _memoise_configuration()
    _fast_metric_ids()


# Whether a validation reuses each expectation's configuration (see _memoise_configuration).
MEMOISE_CONFIGURATIONS = True
_MEMO = threading.local()  # .configs: {id(expectation): (expectation, configuration)}


def _memoise_configuration() -> None:
    """Build each expectation's configuration once per validation, not once per access.

    GX 1.24's ``Expectation.configuration`` is a property that serialises the pydantic model
    and builds a new ``ExpectationConfiguration`` on every access, and a validation reads it
    about 80 times per expectation (for each domain and success key, the result format, the
    result): 8,192 builds, half the time, for the example's 98-expectation suite on 426 rows.
    Inside :func:`run_validation` (one thread, under the GX lock, the suite built there and
    not changed while GX reads it) the first build is kept; anywhere else GX behaves as
    shipped.
    """
    from great_expectations.expectations.expectation import Expectation

    shipped = Expectation.__dict__.get("configuration")
    if not isinstance(shipped, property) or getattr(shipped.fget, "_toolkit_fast", False):
        return
    build = shipped.fget
    assert build is not None

    def configuration(self: Any) -> Any:
        configs = getattr(_MEMO, "configs", None)
        if configs is None:
            return build(self)
        found = configs.get(id(self))
        if found is None or found[0] is not self:
            found = configs[id(self)] = (self, build(self))
        return found[1]

    configuration._toolkit_fast = True  # type: ignore[attr-defined]
    Expectation.configuration = property(configuration)


_PLAIN = (str, int, bool, type(None))


def _plain(value: Any) -> bool:
    """JSON as it is: what GX's ``convert_to_json_serializable`` would return unchanged (its
    tuples become lists, as ``json.dumps`` makes them too)."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is float:
        return value == value  # NaN becomes None there
    if kind in (list, tuple):
        return all(_plain(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    return False


def _fast_metric_ids() -> None:
    """Skip GX's value-by-value conversion when a metric's kwargs are plain JSON already.

    Building the metric graph of a validation makes two ids per metric (``IDDict.to_id``:
    the md5 of the kwargs as JSON, after ``convert_to_json_serializable`` looked at every
    value with a dozen ``isinstance`` and ``numpy.issubdtype`` checks): 4,170 of them, a third
    of the example's 98-expectation validation. Kwargs of column names, flags, numbers and
    lists of them are JSON already, so the md5 of ``json.dumps`` of the same dict is the same
    id. Anything else (numpy values, dates, NaN, an ``IDDict`` with keys it leaves out) goes
    to GX's own code.
    """
    from great_expectations.core.id_dict import IDDict

    shipped = IDDict.to_id
    if getattr(shipped, "_toolkit_fast", False):
        return

    def to_id(self: Any, id_keys: Any = None, id_ignore_keys: Any = None) -> Any:
        whole = id_keys is None and id_ignore_keys is None and not self._id_ignore_keys
        if whole and len(self) > 1 and all(type(k) is str and _plain(v) for k, v in self.items()):
            text = json.dumps(self, sort_keys=True)
            return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()
        return shipped(self, id_keys, id_ignore_keys)

    to_id._toolkit_fast = True  # type: ignore[attr-defined]
    IDDict.to_id = to_id


def _release_batches(batch_definition: Any) -> None:
    """Drop GX's reference to the last validated frame.

    GX keeps it until the next validation, so a 1M-row frame would stay alive for as long as a
    notebook kernel or the runner lives.
    """
    manager = batch_definition.data_asset.datasource.get_execution_engine().batch_manager
    manager.reset_batch_cache()
    manager.batch_data_cache.clear()


def current_context() -> Any:
    """The process-wide ephemeral GX context, or None before the first validation."""
    return _GX_STATE.get("context")


def run_validation(
    name: str, expectations: Sequence[dict[str, Any]], df: pd.DataFrame
) -> dict[int, Any]:
    """Validate ``df`` against ``expectations`` in one GX validation; GX's result per index.

    Safe to call from several threads: GX's pandas engine keeps the current batch in shared
    state, so validations are serialised on one lock (they are GIL-bound anyway).
    """
    if not expectations:
        return {}
    import_gx()
    import great_expectations as gx

    configs = [
        {**e, "meta": {**(e.get("meta") or {}), _INDEX_KEY: i}} for i, e in enumerate(expectations)
    ]
    with _GX_LOCK:
        batch_definition = _gx_batch_definition()
        gx_suite = gx.ExpectationSuite(name=name, expectations=configs)
        _MEMO.configs = {} if MEMOISE_CONFIGURATIONS else None
        try:
            batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
            run = batch.validate(gx_suite, result_format=_RESULT_FORMAT)
        finally:
            _MEMO.configs = None
            _release_batches(batch_definition)
    # Results come back grouped by column, not in suite order: map them by our meta tag.
    return {int(res.expectation_config.meta[_INDEX_KEY]): res for res in run.results}
