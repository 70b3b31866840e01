"""Plain, strict JSON from whatever results carry, so every receiver parses it.

Results of GX, pandas, numpy and MLflow hold numpy scalars, timestamps, NaN, sets and tuples;
``json.dumps`` either fails on them or writes ``NaN``, which is not JSON (JavaScript, Java and
strict jq parsers reject it). Standard library only: pandas' missing values are matched by type
name, numpy's by ``tolist``.

Two representations, for two meanings:

* :func:`jsonable` normalises *data* (GX results, drift payloads): there NaN is pandas' missing
  value, so it becomes null, like pandas' ``to_json``.
* :func:`dumps`, the one writer of the toolkit's JSON, writes a non-finite float that is still
  there (a metric, a parameter) as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``, as
  protobuf's JSON mapping does. A metric that was NaN must stay NaN when a run is resumed, reused
  from the cache or reproduced: null would read back as "not logged", and would lose the sign of
  an infinity, so a gate verdict could change silently. :func:`number` reads them back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def jsonable(value: Any) -> Any:
    """Return ``value`` as plain JSON data.

    NaN, infinities, ``pandas.NA`` and ``NaT`` become None; numpy scalars and arrays become
    Python numbers and lists; dates and datetimes become ISO strings; mapping keys become
    strings; tuples become lists and sets sorted lists; anything else its ``str``.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    # pandas.NA and NaT are singletons whose truth value is ambiguous; match them by type name
    # so this module need not import pandas.
    if type(value).__name__ in {"NAType", "NaTType"}:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return jsonable(float(value))
    if hasattr(value, "tolist"):  # numpy scalar or array
        return jsonable(value.tolist())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _finite_or_text(value: Any) -> Any:
    if isinstance(value, float):  # numpy's float64 too: it subclasses float
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {k: _finite_or_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_text(v) for v in value]
    return value


def dumps(
    value: Any,
    *,
    indent: int | None = None,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = str,
) -> str:
    """``value`` as strict JSON text: non-finite floats as ``"NaN"``/``"Infinity"``/``"-Infinity"``.

    ``allow_nan=False`` makes a non-finite float that escaped the conversion (a type it does not
    walk) raise here, in tests, instead of reaching a reader as invalid JSON.
    """
    return json.dumps(
        _finite_or_text(value), indent=indent, sort_keys=sort_keys, default=default, allow_nan=False
    )


def number(value: Any) -> Any:
    """A value read back from the toolkit's JSON: ``"NaN"``/``"Infinity"``/``"-Infinity"`` as the
    float they stand for, anything else unchanged."""
    if isinstance(value, str) and value in NONFINITE:
        return NONFINITE[value]
    return value


def numbers(values: Mapping[str, Any] | None) -> dict[str, Any]:
    """A mapping read back from the toolkit's JSON (metrics, parameters), with :func:`number`."""
    return {k: number(v) for k, v in (values or {}).items()}
