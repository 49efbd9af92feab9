"""Segment and message boundaries: the only place Simpul splits ER7 text into lines or messages.

Segments end in CR (HL7 v2 2.7.1); LF and CRLF are accepted because senders and text editors use
them. ``str.splitlines`` is not used: it also splits on NEL, VT, FS ..., which may be data.
"""
from __future__ import annotations

import codecs
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from simpul.errors import MessageError

__all__ = ["SEGMENT_TERMINATOR", "BATCH_SEGMENTS", "split_segments", "join_segments",
           "check_no_binary", "split_messages", "split_file", "SplitFile"]

SEGMENT_TERMINATOR = "\r"
# File and batch header/trailer segments: an envelope around messages, not part of any message.
BATCH_SEGMENTS = frozenset({"FHS", "BHS", "BTS", "FTS"})
_BATCH_PREFIXES = tuple(name.encode() for name in sorted(BATCH_SEGMENTS))

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LINE_BREAK = re.compile(rb"\r\n|\n|\r")


def split_segments(text: str) -> list[str]:
    """The lines of a decoded message, split on CR, LF or CRLF; blank lines are kept (so line
    numbers stay those of the text) and dropping them is the caller's choice."""
    if "\n" in text:
        text = text.replace("\r\n", "\r").replace("\n", "\r")
    return text.split("\r")


def join_segments(segments: Sequence[str]) -> str:
    """Each segment ended by a carriage return, the last one included."""
    return "".join(segment + SEGMENT_TERMINATOR for segment in segments)


def check_no_binary(text: str, lines: list[str]) -> None:
    """Refuse control characters (NUL, BEL, ESC ...): never text, they mean a corrupted stream or a
    binary payload sent raw. :class:`MessageError` (table 0357 code 102) names the line number of
    ``lines`` (as :func:`split_segments` gave them), never its content."""
    if _CONTROL.search(text) is None:  # the common case: one scan of the whole message
        return
    for number, line in enumerate(lines, start=1):
        if _CONTROL.search(line):
            raise MessageError(f"line {number} contains binary data (a control character)",
                               hl7_error_code="102")


@dataclass
class SplitFile:
    """The messages of a file and what would make a reader lose one (one line each, no content)."""

    messages: list[bytes] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    batches: int = 0   # BHS segments seen


def _envelope_count(line: bytes) -> int | None:
    """BTS-1 / FTS-1 (message or batch count) of a trailer line, if valued."""
    parts = line.split(line[3:4]) if len(line) > 4 else []
    value = parts[1].strip() if len(parts) > 1 else b""
    return int(value) if value.isdigit() else None


def split_file(data: bytes) -> SplitFile:
    """Split a file or batch into messages, each with CR segment terminators, bytes otherwise unchanged.

    Every MSH line starts a message; batch envelopes (FHS/BHS/BTS/FTS) and blank lines are left out;
    a UTF-8 BOM is dropped. Lines before the first MSH form a message of their own, which the
    header reader then refuses (so nothing is dropped without a reason). A BTS-1 or FTS-1 count
    that does not match what the batch or file holds is a problem: a message went missing on the way.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    out = SplitFile()
    messages: list[list[bytes]] = []
    in_batch = 0          # messages since the last BHS
    batches_in_file = 0   # BHS since the last FHS
    for line in _LINE_BREAK.split(data):
        if not line.strip():
            continue
        if line.startswith(_BATCH_PREFIXES):
            head = line[:3]
            if head == b"BHS":
                out.batches += 1
                batches_in_file += 1
                in_batch = 0
            elif head == b"FHS":
                batches_in_file = 0
            elif head == b"BTS":
                expected = _envelope_count(line)
                if expected is not None and expected != in_batch:
                    out.problems.append(f"batch {out.batches}: BTS-1 says {expected} message(s), "
                                        f"the batch holds {in_batch}")
            else:
                expected = _envelope_count(line)
                if expected is not None and expected != batches_in_file:
                    out.problems.append(f"FTS-1 says {expected} batch(es), the file holds {batches_in_file}")
            continue
        if line.startswith(b"MSH") or not messages:
            messages.append([line])
            in_batch += 1
        else:
            messages[-1].append(line)
    out.messages = [b"\r".join(lines) + b"\r" for lines in messages]
    return out


def split_messages(data: bytes) -> list[bytes]:
    """The messages of a file or batch (:func:`split_file` without the envelope count check)."""
    return split_file(data).messages
