"""Compatibility path: ``from toolkit.preview import ...`` keeps working after the move to
:mod:`toolkit.release.preview` (notebooks written for the old layout import it).
"""

from toolkit.release.preview import (
    GatePreview,
    PreviewRow,
    gate_preview,
)

__all__ = [
    "GatePreview",
    "PreviewRow",
    "gate_preview",
]
