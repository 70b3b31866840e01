"""Data contracts: Great Expectations suites kept as hand-written JSON in ``expectations/``.

A contract is ``expectations/<name>.json`` holding ``name``, optional ``meta`` and a list of
``expectations`` (``type``, ``kwargs``, optional ``meta``, ``notes``, ``severity``). There is no
GX project folder: one ephemeral GX context per process validates DataFrames, and results are
rendered by :mod:`toolkit.contracts.result`, not by GX Data Docs.

This is the only toolkit module that imports ``great_expectations``, and only inside functions:
the import costs ~2 s and ``toolkit --help`` must stay fast.

Notebook use::

    from toolkit import contracts
    contracts.check(df, "raw_measurements")     # renders in JupyterLab; never raises on failure
"""

from __future__ import annotations

import functools
import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.contracts.result import (
    MAX_EXAMPLES,
    ContractResult,
    ExpectationOutcome,
    jsonable,
    outcome_from_gx,
)
from toolkit.core.errors import ContractError, did_you_mean
from toolkit.core.fsutil import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ContractResult",
    "ExpectationOutcome",
    "Suite",
    "check",
    "check_file",
    "list_suites",
    "load_suite",
    "validate",
    "write_result",
]

SEVERITIES = ("critical", "warning", "info")
_SUITE_KEYS = {"name", "meta", "expectations", "notes", "id"}
_EXPECTATION_KEYS = {"type", "kwargs", "meta", "notes", "description", "severity", "id"}
# Expectation-level fields that GX would silently take from kwargs if a user put them there.
_RESERVED_KWARGS = _EXPECTATION_KEYS - {"type", "kwargs"} | {"rendered_content"}
_INDEX_KEY = "toolkit_index"  # our meta tag that maps GX results back to suite order
# BASIC, not SUMMARY/COMPLETE: SUMMARY builds the full list of failing row indices (and a query
# string naming every one) before truncating, ~1 s and tens of MB per failing expectation on
# 1M rows. BASIC still gives counts, percents and a bounded example list. We ask for more
# examples than we keep so that repeated values still leave a few distinct ones.
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": 4 * MAX_EXAMPLES}


@dataclass(frozen=True)
class Suite:
    """A contract suite as loaded (and checked) from ``expectations/<name>.json``.

    Attributes:
        name: the suite name, equal to the file stem.
        path: the JSON file.
        expectations: one dict per expectation, in file order, each with ``type``, ``kwargs``,
            ``severity`` (defaulted to ``critical``) and any ``meta``/``notes`` given.
        meta: the suite's ``meta`` mapping.
    """

    name: str
    path: Path
    expectations: tuple[dict[str, Any], ...]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.expectations)


# ----------------------------------------------------------------------------- loading suites

_SUITE_CACHE: dict[Path, tuple[tuple[int, int], Suite]] = {}
_SUITE_CACHE_LOCK = threading.Lock()


def _suite_names(expectations_dir: Path) -> list[str]:
    return sorted(p.stem for p in expectations_dir.glob("*.json") if p.is_file())


def load_suite(name: str, expectations_dir: Path) -> Suite:
    """Load and strictly check the suite ``<expectations_dir>/<name>.json``.

    Parsed suites are cached per (path, mtime, size), so a run loads each file once and an edit
    is picked up on the next call.

    Raises:
        ContractError: unknown suite (with a did-you-mean hint), invalid JSON (file and line),
            or an invalid expectation (file, index, type and offending field).
    """
    expectations_dir = Path(expectations_dir)
    stem = name.removesuffix(".json")
    if not stem or Path(stem).name != stem:
        raise ContractError(f"invalid contract suite name {name!r}: use the file stem")
    path = expectations_dir / f"{stem}.json"
    if not path.is_file():
        if not expectations_dir.is_dir():
            raise ContractError(
                f"unknown contract suite {stem!r}: folder {expectations_dir} does not exist"
            )
        names = _suite_names(expectations_dir)
        available = "available: " + ", ".join(names) if names else "the folder has no *.json suites"
        hint = " ".join(filter(None, [did_you_mean(stem, names), available]))
        raise ContractError(f"unknown contract suite {stem!r} in {expectations_dir}", hint=hint)
    stat = path.stat()
    key, stamp = path.resolve(), (stat.st_mtime_ns, stat.st_size)
    with _SUITE_CACHE_LOCK:
        cached = _SUITE_CACHE.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    suite = _parse_suite(path)
    with _SUITE_CACHE_LOCK:
        _SUITE_CACHE[key] = (stamp, suite)
    return suite


@functools.cache
def _gx_version() -> str:
    """The installed GX version, read from package metadata (importing GX costs seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("great_expectations")
    except PackageNotFoundError:
        return "unknown"


def load_suite_once(name: str, expectations_dir: Path, cache_dir: Path | None) -> None:
    """Validate a suite file, unless its exact bytes already passed with this GX version.

    Importing GX costs seconds; ``toolkit check``, ``toolkit plan`` and a fully cached run
    should not pay it for a suite nobody edited. Any edit changes the hash and brings GX back.

    Raises:
        ContractError: the suite is missing or invalid.
    """
    path = expectations_dir / f"{name.removesuffix('.json')}.json"
    marker = None
    if cache_dir is not None and path.is_file() and Path(name).name == name:
        from toolkit.core.fsutil import sha256_file

        marker = cache_dir / "suites" / f"{sha256_file(path)}-{_gx_version()}.ok"
        if marker.exists():
            return
    load_suite(name, expectations_dir)
    if marker is not None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()


def list_suites(expectations_dir: Path) -> list[Suite]:
    """Load every ``*.json`` suite of ``expectations_dir``, sorted by name (none if no folder).

    Raises:
        ContractError: the first suite file that is invalid.
    """
    expectations_dir = Path(expectations_dir)
    if not expectations_dir.is_dir():
        return []
    return [load_suite(n, expectations_dir) for n in _suite_names(expectations_dir)]


def _parse_suite(path: Path) -> Suite:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ContractError(f"{path}: cannot read contract suite: {exc}") from exc
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ContractError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(spec, dict):
        raise ContractError(f"{path}: a contract suite must be a JSON object")
    _reject_unknown(path, "suite", spec, _SUITE_KEYS)
    name = spec.get("name", path.stem)
    if name != path.stem:
        raise ContractError(
            f"{path}: name {name!r} differs from the file name",
            hint=f"rename the file to {name}.json or set name to {path.stem!r}",
        )
    meta, raw = spec.get("meta") or {}, spec.get("expectations")
    if not isinstance(meta, dict):
        raise ContractError(f"{path}: meta must be a JSON object")
    if not isinstance(raw, list):
        raise ContractError(f"{path}: expectations must be a JSON list")
    expectations = tuple(_check_expectation(path, i, e) for i, e in enumerate(raw))
    return Suite(name=name, path=path, expectations=expectations, meta=meta)


def _reject_unknown(path: Path, where: str, data: dict[str, Any], allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise ContractError(
                f"{path}: {where}: unknown field {key!r}",
                hint=did_you_mean(key, allowed) or "allowed: " + ", ".join(sorted(allowed)),
            )


def _check_expectation(path: Path, index: int, entry: Any) -> dict[str, Any]:
    """Return the normalised expectation or raise naming file, index, type and field.

    GX's own constructor silently drops an unknown type (it only logs), so the type is checked
    against the registry first and then the kwargs are validated by building the GX object.
    """
    where = f"expectations[{index}]"
    if not isinstance(entry, dict):
        raise ContractError(f"{path}: {where}: must be a JSON object")
    etype = entry.get("type")
    if not isinstance(etype, str) or not etype:
        raise ContractError(f"{path}: {where}: missing field 'type'")
    where = f"{where} ({etype})"
    _reject_unknown(path, where, entry, _EXPECTATION_KEYS)
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise ContractError(f"{path}: {where}: field 'kwargs' must be a JSON object")
    if misplaced := sorted(_RESERVED_KWARGS & set(kwargs)):
        raise ContractError(
            f"{path}: {where}: field 'kwargs.{misplaced[0]}' belongs next to 'type', not in kwargs"
        )
    if not isinstance(entry.get("meta", {}), dict):
        raise ContractError(f"{path}: {where}: field 'meta' must be a JSON object")
    notes = entry.get("notes", "")
    if not isinstance(notes, str) and not (
        isinstance(notes, list) and all(isinstance(n, str) for n in notes)
    ):
        raise ContractError(f"{path}: {where}: field 'notes' must be a string or list of strings")
    severity = entry.get("severity", "critical")
    if severity not in SEVERITIES:
        raise ContractError(
            f"{path}: {where}: field 'severity' is {severity!r}; use one of {', '.join(SEVERITIES)}"
        )
    normalised = {**entry, "kwargs": kwargs, "severity": severity}

    _import_gx()
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
    return normalised


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


# ----------------------------------------------------------------------------- validating

_GX_LOCK = threading.Lock()
_GX_STATE: dict[str, Any] = {}


_IMPORT_LOCK = threading.Lock()


def _import_gx() -> None:
    """Import GX completely, once. Its expectation registry fills up during the import, so a
    thread must never look at it while another thread is still importing (one lock for both)."""
    with _IMPORT_LOCK:
        import great_expectations  # noqa: F401


def warm_up() -> None:
    """Import GX and build the context now (seconds), e.g. on a thread while kernels start."""
    _import_gx()
    with _GX_LOCK:
        _gx_batch_definition()


def _gx_batch_definition() -> Any:
    """Build the process-wide ephemeral context on first use. Call with ``_GX_LOCK`` held."""
    if "batch_definition" in _GX_STATE:
        return _GX_STATE["batch_definition"]
    _import_gx()
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
    """Remove two costs GX 1.24 pays on every pandas validation that we do not need.

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


def _release_batches(batch_definition: Any) -> None:
    """Drop GX's reference to the last validated frame.

    GX keeps it until the next validation, so a 1M-row frame would stay alive for as long as a
    notebook kernel or the runner lives.
    """
    manager = batch_definition.data_asset.datasource.get_execution_engine().batch_manager
    manager.reset_batch_cache()
    manager.batch_data_cache.clear()


def validate(df: pd.DataFrame, suite: Suite, *, data_name: str = "") -> ContractResult:
    """Validate ``df`` against every expectation of ``suite`` in one GX validation.

    Safe to call from several threads: GX's pandas engine keeps the current batch in shared
    state, so validations are serialised on one lock (they are GIL-bound anyway).

    Args:
        df: the data.
        suite: a suite from :func:`load_suite`.
        data_name: what the data is (file name, step output...), shown in reports.

    Returns:
        The result; failing expectations do not raise.
    """
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate() needs a pandas DataFrame, not {type(df).__name__}")
    validated_at = datetime.now(UTC).isoformat(timespec="seconds")
    gx_results: dict[int, Any] = {}
    if suite.expectations:
        _import_gx()
        import great_expectations as gx

        configs = [
            {**e, "meta": {**(e.get("meta") or {}), _INDEX_KEY: i}}
            for i, e in enumerate(suite.expectations)
        ]
        with _GX_LOCK:
            batch_definition = _gx_batch_definition()
            gx_suite = gx.ExpectationSuite(name=suite.name, expectations=configs)
            try:
                batch = batch_definition.get_batch(batch_parameters={"dataframe": df})
                run = batch.validate(gx_suite, result_format=_RESULT_FORMAT)
            finally:
                _release_batches(batch_definition)
        # Results come back grouped by column, not in suite order: map them by our meta tag.
        for res in run.results:
            gx_results[int(res.expectation_config.meta[_INDEX_KEY])] = res
    columns = {str(c) for c in df.columns}
    outcomes = tuple(
        outcome_from_gx(i, e, gx_results.get(i), columns) for i, e in enumerate(suite.expectations)
    )
    return ContractResult(
        suite_name=suite.name,
        data_name=data_name,
        outcomes=outcomes,
        row_count=len(df),
        suite_path=str(suite.path),
        validated_at=validated_at,
        meta=jsonable(suite.meta),
    )


# ----------------------------------------------------------------------------- entry points


def check(
    data: pd.DataFrame | str | Path,
    suite: str,
    *,
    expectations_dir: Path | None = None,
) -> ContractResult:
    """Validate a DataFrame or a CSV/Parquet file against a named suite: the notebook API.

    Args:
        data: a DataFrame, or the path of a CSV/Parquet file.
        suite: the suite name (file stem in the expectations folder).
        expectations_dir: where suites live; by default the project's ``expectations_dir``,
            found from the current directory (a notebook runs in its own folder).

    Returns:
        The result, which renders as HTML in JupyterLab. It does not raise on failing data.

    Raises:
        ContractError: the suite or the data file cannot be loaded.
    """
    if expectations_dir is None:
        from toolkit.core.settings import load_settings

        expectations_dir = load_settings(Path.cwd()).expectations_dir
    loaded = load_suite(suite, Path(expectations_dir))
    if isinstance(data, str | Path):
        from toolkit.core.tables import read_table

        return validate(read_table(data), loaded, data_name=Path(data).name)
    return validate(data, loaded)


def check_file(suite_name: str, data_file: Path, expectations_dir: Path) -> ContractResult:
    """Validate a CSV/Parquet file against a suite (``toolkit contracts check SUITE FILE``)."""
    return check(Path(data_file), suite_name, expectations_dir=expectations_dir)


def write_result(result: ContractResult, out_dir: Path) -> tuple[Path, Path]:
    """Write ``<data_name or suite>.json`` and ``.html`` into ``out_dir``, each atomically.

    Returns:
        The JSON path and the HTML path.
    """
    stem = result.file_stem()
    json_path, html_path = Path(out_dir) / f"{stem}.json", Path(out_dir) / f"{stem}.html"
    atomic_write_json(json_path, result.to_dict())
    atomic_write_text(html_path, result.to_html())
    return json_path, html_path
