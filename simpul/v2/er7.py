"""ER7 text assembly for outbound HL7 v2: joining leaves into fields and segments, no I/O.

A field is built from leaf strings: a component is a list of subcomponents, a field repetition a list
of components. Every leaf is escaped with :func:`simpul.v2.delimiters.escape` (HL7 v2.5.1 2.7.4), so
callers pass plain text. Messages written here use the default delimiters ``|^~\\&``.
"""
from __future__ import annotations

from collections.abc import Sequence

from .delimiters import DEFAULT
from .delimiters import escape as _escape
from .segments import join_segments

__all__ = ["escape", "component", "composite", "repeated", "SegmentBuilder", "msh_text", "join_segments"]

FIELD = DEFAULT.field
COMPONENT = DEFAULT.component
REPETITION = DEFAULT.repetition
SUBCOMPONENT = DEFAULT.subcomponent


def escape(text: str) -> str:
    """Plain text -> ER7 text with the default delimiters (line breaks as ``\\.br\\``)."""
    return _escape(text, DEFAULT)


def component(value: str | Sequence[str]) -> str:
    """One component from a string or a sequence of subcomponents (trailing empties trimmed)."""
    if isinstance(value, str):
        return escape(value)
    return SUBCOMPONENT.join(escape(part) for part in value).rstrip(SUBCOMPONENT)


def composite(components: Sequence[str | Sequence[str]]) -> str:
    """One field repetition from its components (trailing empties trimmed)."""
    return COMPONENT.join(component(c) for c in components).rstrip(COMPONENT)


def repeated(repetitions: Sequence[str]) -> str:
    """Several already-built repetitions of one field, empty ones dropped."""
    return REPETITION.join(r for r in repetitions if r)


class SegmentBuilder:
    """Fields by number (1-based, as the standard numbers them); `text()` gives the ER7 segment.

    Values given to `set` are already ER7 (built with `composite`/`escape`), so they are not escaped again.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.fields: dict[int, str] = {}

    def set(self, number: int, er7_value: str | None) -> None:
        if er7_value:
            self.fields[number] = er7_value

    def text(self) -> str:
        last = max(self.fields, default=0)
        values = [self.fields.get(n, "") for n in range(1, last + 1)]
        return FIELD.join([self.name, *values])


def msh_text(fields: dict[int, str]) -> str:
    """MSH, whose numbering counts the field separator itself as MSH-1 and MSH-2 as the encoding characters."""
    last = max(fields, default=2)
    values = [fields.get(n, "") for n in range(3, last + 1)]
    return FIELD.join(["MSH", DEFAULT.encoding_characters, *values])
