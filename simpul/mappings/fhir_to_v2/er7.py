"""ER7 text assembly for outbound HL7 v2: escaping and joining, no I/O and no hl7apy.

A field is built from leaf strings: a component is a list of subcomponents, a field repetition a list
of components. Every leaf is escaped here (HL7 v2.5.1 2.7.4), so callers pass plain text.
"""
from __future__ import annotations

from collections.abc import Sequence

FIELD = "|"
COMPONENT = "^"
REPETITION = "~"
ESCAPE = "\\"
SUBCOMPONENT = "&"
ENCODING_CHARACTERS = COMPONENT + REPETITION + ESCAPE + SUBCOMPONENT
SEGMENT_TERMINATOR = "\r"

_ESCAPES = (
    (ESCAPE, "\\E\\"),  # first, so the escapes added below are not escaped again
    (FIELD, "\\F\\"),
    (COMPONENT, "\\S\\"),
    (SUBCOMPONENT, "\\T\\"),
    (REPETITION, "\\R\\"),
)


def escape(text: str) -> str:
    """Plain text -> ER7 text: delimiters become \\F\\ \\S\\ \\T\\ \\R\\ \\E\\, line breaks \\.br\\."""
    for raw, escaped in _ESCAPES:
        text = text.replace(raw, escaped)
    return text.replace("\r\n", "\\.br\\").replace("\n", "\\.br\\").replace("\r", "\\.br\\")


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
    return FIELD.join(["MSH", ENCODING_CHARACTERS, *values])


def join_segments(segments: Sequence[str]) -> str:
    """Each segment ended by a carriage return (HL7 v2 2.7.1), the last one included."""
    return "".join(segment + SEGMENT_TERMINATOR for segment in segments)
