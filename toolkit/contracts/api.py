"""Validating data against a contract: the notebook API (``check``) and the files of a result.

Notebook use::

    from toolkit import contracts
    contracts.check(df, "raw_measurements")     # renders in JupyterLab; never raises on failure
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.contracts.gx_adapter import run_validation
from toolkit.contracts.result import ContractResult, outcome_from_gx
from toolkit.contracts.suites import Suite, load_suite
from toolkit.core.fsutil import atomic_write_json, atomic_write_text
from toolkit.core.jsonable import jsonable

if TYPE_CHECKING:
    import pandas as pd


def validate(df: pd.DataFrame, suite: Suite, *, data_name: str = "") -> ContractResult:
    """Validate ``df`` against every expectation of ``suite`` in one GX validation.

    Safe to call from several threads (see :func:`toolkit.contracts.gx_adapter.run_validation`).

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
    gx_results = run_validation(suite.name, suite.expectations, df)
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
