"""Model cards: one per registered version, from records only (see :mod:`.collect`)."""

from toolkit.cards.model import ModelCard, to_markdown
from toolkit.cards.publish import build, refresh

__all__ = ["ModelCard", "build", "refresh", "to_markdown"]
