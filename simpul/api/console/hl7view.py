"""A raw HL7v2 message for a person: each segment and field with its name (PID-3 Patient
Identifier List), read with simpul.v2's one reader; names come from hl7apy's v2.5 structures."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from hl7apy import load_reference
from hl7apy.exceptions import ChildNotFound

from simpul.errors import MessageError
from simpul.v2.message import parse_message

NAME_VERSION = "2.5"


@dataclass(frozen=True)
class FieldView:
    position: str      # "PID-3"
    name: str          # "Patient Identifier List" ("" when the structure does not name it)
    value: str


@dataclass(frozen=True)
class SegmentView:
    name: str
    fields: list[FieldView]


@lru_cache(maxsize=4096)
def field_name(segment: str, n: int) -> str:
    try:
        reference = load_reference(f"{segment}_{n}", "Field", NAME_VERSION)
    except (ChildNotFound, KeyError, ValueError):
        return ""
    name = reference[3] if len(reference) > 3 and isinstance(reference[3], str) else ""
    return name.replace("_", " ").title()


def segments_of(text: str) -> list[SegmentView] | None:
    """Segments with named, valued fields; None when the text is not a readable HL7v2 message."""
    try:
        message = parse_message(text)
    except MessageError:
        return None
    found = []
    for segment in message:
        fields = []
        for n, value in enumerate(segment.fields[1:], start=1):
            if value:
                fields.append(FieldView(f"{segment.name}-{n}", field_name(segment.name, n), value))
        found.append(SegmentView(segment.name, fields))
    return found
