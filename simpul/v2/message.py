"""A parsed message for the mappings: segments of raw field strings, components on demand.

Field numbering follows the standard: ``seg[3]`` is PID-3. For MSH, ``msh[1]`` is the field
separator and ``msh[2]`` the encoding characters, so ``msh[9]`` is MSH-9 as everywhere else.
Nothing is validated beyond what every reader checks (:func:`read_msh_line`, no binary data):
components, repetitions and escape sequences are only resolved when a map asks for them.
"""
from __future__ import annotations

import re
from collections.abc import Iterator

from simpul.errors import HeaderError

from .charset import codec_for
from .delimiters import Delimiters
from .header import MessageHeader, read_msh_line
from .segments import BATCH_SEGMENTS, check_no_binary, split_segments

__all__ = ["Segment", "Message", "parse_message"]

_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}$")


class Segment:
    """One segment: its id and raw field strings (repetitions and components unsplit)."""

    __slots__ = ("name", "fields", "enc", "index", "used")

    def __init__(self, name: str, fields: list[str], enc: Delimiters, index: int) -> None:
        self.name = name
        self.fields = fields
        self.enc = enc
        self.index = index  # position in the message, 0 = MSH
        # Bit n set once a map has read field n: what is left over is reported as not mapped
        # (the mappings' unmapped-field report). An int, not a set: it costs one `|=` per read on the hot path.
        self.used = 0

    def __getitem__(self, n: int) -> str:
        """Raw text of field n ("" when absent)."""
        self.used |= 1 << n
        f = self.fields
        return f[n] if n < len(f) else ""

    def __repr__(self) -> str:  # no field contents: they may be patient data
        return f"<Segment {self.name} #{self.index}>"

    def reps(self, n: int) -> list[str]:
        """Raw repetitions of field n, empty ones and the explicit null left out."""
        raw = self[n]  # marks the field used
        if not raw or raw == '""':
            return []
        if self.enc.repetition not in raw or (self.name == "MSH" and n == 2):
            return [raw]
        return [r for r in raw.split(self.enc.repetition) if r and r != '""']

    def first(self, n: int) -> str:
        """Raw first repetition of field n."""
        # Hot path (called hundreds of times per message): field lookup inlined.
        self.used |= 1 << n
        f = self.fields
        if n >= len(f):
            return ""
        raw = f[n]
        if not raw:
            return raw
        rep = self.enc.repetition
        if rep in raw:
            raw = raw.split(rep, 1)[0]
        return "" if raw == '""' else raw

    def comps(self, n: int) -> list[str]:
        """Raw components of the first repetition of field n."""
        return self.first(n).split(self.enc.component)

    def text(self, n: int, component: int = 1, subcomponent: int = 1) -> str:
        """Decoded text at field n / component / subcomponent of the first repetition ("" if empty)."""
        self.used |= 1 << n
        f = self.fields
        if n >= len(f):
            return ""
        raw = f[n]
        if not raw:
            return raw
        enc = self.enc
        if enc.repetition in raw:
            raw = raw.split(enc.repetition, 1)[0]
        if raw == '""':
            return ""
        if component > 1 or enc.component in raw:
            parts = raw.split(enc.component)
            if component > len(parts):
                return ""
            raw = parts[component - 1]
        if enc.subcomponent in raw:
            parts = raw.split(enc.subcomponent)
            raw = parts[subcomponent - 1] if subcomponent <= len(parts) else ""
        elif subcomponent > 1:
            return ""
        if enc.escape in raw or raw == '""':
            return enc.decode(raw)
        return raw


class Message:
    """A parsed message: its header, its segments in order and a by-name index."""

    __slots__ = ("header", "segments", "enc", "_by_name")

    def __init__(self, segments: list[Segment], enc: Delimiters, header: MessageHeader | None = None) -> None:
        self.segments = segments
        self.enc = enc
        self.header = header  # as read by parse_message (None for a Message assembled by hand)
        by_name: dict[str, list[Segment]] = {}
        for seg in segments:
            by_name.setdefault(seg.name, []).append(seg)
        self._by_name = by_name

    @property
    def msh(self) -> Segment:
        return self.segments[0]

    def all(self, name: str) -> list[Segment]:
        return self._by_name.get(name, [])

    def one(self, name: str) -> Segment | None:
        segs = self._by_name.get(name)
        return segs[0] if segs else None

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments)

    @property
    def message_code(self) -> str:
        return self.msh.text(9, 1).strip().upper()

    @property
    def trigger_event(self) -> str:
        return self.msh.text(9, 2).strip().upper()

    @property
    def structure(self) -> str:
        return self.msh.text(9, 3).strip().upper()

    @property
    def control_id(self) -> str:
        return self.msh.text(10)


def parse_message(text: str) -> Message:
    """Read one decoded HL7v2 message with the rules every Simpul reader applies.

    A BOM, blank lines, leading white space and a batch envelope (FHS/BHS/BTS/FTS lines) are
    skipped; the MSH line is read by :func:`read_msh_line`; an unknown MSH-18 and control characters
    are refused. Raises
    :class:`HeaderError` or :class:`MessageError` (segment/field named, never content). A line that
    is not a segment (a value wrapped by the sender, e.g. base64) continues the previous segment's
    last field.
    """
    if text[:1] == "\ufeff":
        text = text[1:]
    raw_lines = split_segments(text)
    check_no_binary(text, raw_lines)
    lines = [line for line in raw_lines if line.strip() and line[:3] not in BATCH_SEGMENTS]
    if not lines:
        raise HeaderError("message does not start with an MSH segment", segment="MSH", field=0,
                          hl7_error_code="100")
    head = lines[0] = lines[0].lstrip(" \t")
    header = read_msh_line(head)
    codec_for(header.charset)  # an MSH-18 the byte readers refuse is refused here too
    enc = header.delimiters
    fs = enc.field
    segments: list[Segment] = []
    for line in lines:
        name = line[:3]
        if name == "MSH":
            fields = ["MSH", fs] + line[4:].split(fs)
        elif (len(line) == 3 or line[3] == fs) and _SEGMENT_ID.match(name):
            fields = line.split(fs)
        elif segments:
            # A raw line break inside a value (e.g. base64 wrapped by a sender): the line
            # continues the previous segment's last field.
            segments[-1].fields[-1] += line
            continue
        else:
            continue
        segments.append(Segment(name, fields, enc, len(segments)))
    return Message(segments, enc, header)
