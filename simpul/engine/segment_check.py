"""The one content check ingest makes before the ACK: no binary data in the message.

Structure (segment IDs, groups, cardinality) is left to the mapping, as lenient parsers do:
senders wrap long base64 fields over several lines or send odd Z-lines, and a message the
engine stored can always be looked at and replayed. But control characters (NUL, BEL, ESC ...)
are never text: they mean a corrupted stream or a binary payload sent raw, and the sender
learns it at once from an AR naming the line instead of a dead letter later.
"""
from __future__ import annotations

import re

from simpul.errors import MessageError

# Segments are separated by CR; LF and CRLF are accepted because senders use them.
# (str.splitlines would also split on NEL, VT, FS ... which may be data in a field.)
SEGMENT_SEPARATOR = re.compile(r"\r\n|\r|\n")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def split_segments(text: str) -> list[str]:
    return SEGMENT_SEPARATOR.split(text)


def check_no_binary(text: str, lines: list[str]) -> None:
    """Raise MessageError (HL7 error 102, data type) naming the first line with a control
    character. The reason names the line number, never its content."""
    if _CONTROL.search(text) is None:          # the common case: one scan of the whole message
        return
    for number, line in enumerate(lines, start=1):
        if _CONTROL.search(line):
            raise MessageError(f"line {number} contains binary data (a control character)",
                               hl7_error_code="102")
