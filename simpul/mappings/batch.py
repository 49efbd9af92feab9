"""Files of HL7v2 messages: one message, several messages one after another, or an HL7 batch
(FHS/BHS ... BTS/FTS envelopes, v2 chapter 2.10). Pure bytes, no I/O.

`split_file(data)` returns every message (segments joined with \\r, bytes otherwise unchanged, so
MSH-18 still decides the charset) and the problems that would make a reader lose one: text before
the first MSH that is not an envelope, or a BTS-1/FTS-1 count that does not match what the file
holds. A caller that maps the messages refuses the file when there is a problem, so a message is
never dropped without a word.
"""
from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field

_LINE_BREAK = re.compile(rb"\r\n|\n|\r")
_ENVELOPES = (b"FHS", b"BHS", b"BTS", b"FTS")


@dataclass
class SplitFile:
    messages: list[bytes] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # one line each, no message content
    batches: int = 0                                     # BHS segments seen


def _count(line: bytes) -> int | None:
    """BTS-1 / FTS-1 (message or batch count) of an envelope trailer line, if valued."""
    if len(line) < 5:
        return None
    parts = line.split(line[3:4])
    value = parts[1].strip() if len(parts) > 1 else b""
    return int(value) if value.isdigit() else None


def split_file(data: bytes) -> SplitFile:
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    out = SplitFile()
    current: list[bytes] | None = None
    in_batch = 0          # messages since the last BHS
    batches_in_file = 0   # BHS since the last FHS
    stray = 0
    for line in _LINE_BREAK.split(data):
        if not line.strip():
            continue
        head = line[:3]
        if head == b"MSH":
            current = [line]
            out.messages.append(b"")  # filled in below
            in_batch += 1
        elif head in _ENVELOPES:
            current = None
            if head == b"BHS":
                out.batches += 1
                batches_in_file += 1
                in_batch = 0
            elif head == b"FHS":
                batches_in_file = 0
            elif head == b"BTS":
                expected = _count(line)
                if expected is not None and expected != in_batch:
                    out.problems.append(f"batch {out.batches}: BTS-1 says {expected} message(s), "
                                        f"the batch holds {in_batch}")
            else:
                expected = _count(line)
                if expected is not None and expected != batches_in_file:
                    out.problems.append(f"FTS-1 says {expected} batch(es), the file holds {batches_in_file}")
            continue
        elif current is not None:
            current.append(line)
        else:
            stray += 1
            continue
        out.messages[-1] = b"\r".join(current) + b"\r"
    if stray:
        out.problems.append(f"{stray} line(s) outside any message (no MSH before them)")
    return out
