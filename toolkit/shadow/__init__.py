"""Shadow mode and delayed-label feedback: a candidate scores production batches beside the
champion (its decisions recorded, never used), and true outcomes, when they arrive, score both.
"""

from toolkit.shadow.batches import ShadowBatch, evidence, read_batches
from toolkit.shadow.scoring import SHADOW_COLUMN, Shadow, shadow_for
from toolkit.shadow.state import TAG_SHADOW, ShadowRegistry, ShadowState

__all__ = [
    "SHADOW_COLUMN",
    "TAG_SHADOW",
    "Shadow",
    "ShadowBatch",
    "ShadowRegistry",
    "ShadowState",
    "evidence",
    "read_batches",
    "shadow_for",
]
