"""Pages and text built from result objects: one Jinja2 environment, autoescaped.

The code lives in :mod:`toolkit.reports.jinja`; this file only re-exports.
"""

from toolkit.reports.jinja import (
    environment,
    render,
)

__all__ = [
    "environment",
    "render",
]
