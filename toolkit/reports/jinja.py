"""Pages and text built from result objects: one Jinja2 environment, autoescaped.

Templates live in ``toolkit/reports/templates``. Every page is self-contained: inline CSS, no
scripts, no external assets, so it opens offline and from an MLflow artifact view alike.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def environment() -> Any:
    """The shared Jinja2 environment (autoescape on for every template)."""
    import jinja2  # lazy: only pages need it

    return jinja2.Environment(
        loader=jinja2.PackageLoader("toolkit.reports", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def render(template: str, **context: Any) -> str:
    return str(environment().get_template(template).render(**context))
