"""Plain JSON data from whatever results carry, so every receiver parses it.

Results of GX, pandas, numpy and MLflow hold numpy scalars, timestamps, NaN, sets and tuples;
``json.dumps`` either fails on them or writes ``NaN``, which is not JSON. Standard library only:
pandas' missing values are matched by type name, numpy's by ``tolist``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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
