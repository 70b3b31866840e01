"""The model card's shape: titled sections of facts, tables and what is missing. Built from
records only (:mod:`toolkit.cards.collect`), rendered as Markdown here and as an offline page by
:mod:`toolkit.reports.model_card`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

SECTIONS = (
    "Identity",
    "Training data",
    "Evaluation",
    "Guard",
    "Review",
    "Production so far",
    "Lineage",
)


@dataclass
class Table:
    caption: str
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]] = field(default_factory=list)


@dataclass
class Section:
    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # what no record says, in plain words

    def fact(self, label: str, value: object) -> None:
        self.facts.append((label, str(value)))


@dataclass
class ModelCard:
    model: str
    version: str
    generated_at: str
    event: str
    sections: list[Section]

    def section(self, title: str) -> Section:
        return next(s for s in self.sections if s.title == title)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(card: ModelCard) -> str:
    """The card as Markdown: one heading per section, facts as a list, tables as tables."""
    lines = [
        f"# Model card: {card.model} v{card.version}",
        "",
        f"Generated {card.generated_at} from the registry and tracking records ({card.event}); "
        "nothing in it was written by hand.",
    ]
    for section in card.sections:
        lines += ["", f"## {section.title}", ""]
        lines += [f"- **{label}:** {value}" for label, value in section.facts]
        for table in section.tables:
            lines += ([""] if lines[-1] else []) + [f"*{table.caption}*", ""]
            lines.append("| " + " | ".join(table.headers) + " |")
            lines.append("|" + "---|" * len(table.headers))
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
        if section.missing:
            lines.append("")
            lines += [f"- _Not recorded:_ {m}" for m in section.missing]
    return "\n".join(lines) + "\n"
