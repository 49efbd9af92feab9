"""Building and reading HL7 v2 acknowledgements (ACK messages), on bytes.

``build_ack`` answers a message using only its MSH (see :func:`simpul.v2.read_header`), so even a
message whose body cannot be parsed gets a proper AR/AE. The ACK reuses the original's field separator
and encoding characters, which lets the original's MSH-3..6 be echoed verbatim (already encoded with
the same delimiters). Text we add (MSA-3, ERR-8) is escaped by :func:`simpul.v2.escape`, line breaks
written as spaces.

``read_ack`` is the sender's side: it pulls MSA-1, MSA-2 and a human-readable text out of an answer.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from simpul.errors import AckUnreadable, HeaderError, MessageError
from simpul.v2 import DEFAULT, Delimiters, MessageHeader, escape, read_msh_delimiters, split_segments, unescape

__all__ = ["ACK_CODES", "HL7_ERROR_TEXTS", "build_ack", "read_ack"]

# HL7 table 0008 acknowledgement codes (original mode A*, enhanced-mode commit C*).
ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})

# HL7 table 0357 message error condition codes used by Simpul.
HL7_ERROR_TEXTS = {
    "0": "Message accepted",
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "103": "Table value not found",
    "200": "Unsupported message type",
    "201": "Unsupported event code",
    "202": "Unsupported processing id",
    "203": "Unsupported version id",
    "207": "Application internal error",
}

_clock_cache: tuple[int, str] = (-1, "")


def _timestamp(now: datetime | None) -> str:
    """MSH-7 as DTM with offset when known: YYYYMMDDHHMMSS+ZZZZ."""
    global _clock_cache
    if now is not None:
        return now.strftime("%Y%m%d%H%M%S%z")
    # strftime costs microseconds; at thousands of ACKs per second, format once per second.
    second = int(time.time())
    if _clock_cache[0] != second:
        stamp = datetime.fromtimestamp(second, timezone.utc).astimezone().strftime("%Y%m%d%H%M%S%z")
        _clock_cache = (second, stamp)
    return _clock_cache[1]


def build_ack(
    header: MessageHeader | None,
    ack_code: str,
    *,
    text: str = "",
    error: MessageError | None = None,
    ack_control_id: str,
    now: datetime | None = None,
    receiving_application: str = "SIMPUL",
    receiving_facility: str = "",
) -> bytes:
    """Build an unframed ACK for the message whose MSH is ``header`` (None: MSH unreadable).

    ``receiving_application``/``receiving_facility`` name us; they are used for MSH-3/4 when the
    original did not value MSH-5/6. Segments end in CR. The result is latin-1 encoded, which echoes
    the original MSH bytes exactly (the header was decoded as latin-1); characters of ``text`` or the
    error reason outside latin-1 become "?".
    """
    if ack_code not in ACK_CODES:
        raise ValueError(f"unknown acknowledgement code {ack_code!r}")
    if header is not None:
        delimiters = header.delimiters
        sep, enc = header.field_separator, header.encoding_characters
        # Sending application/facility of the ACK is the receiver named by the original.
        our_app = header.receiving_application or _text(receiving_application, delimiters)
        our_facility = header.receiving_facility or _text(receiving_facility, delimiters)
        their_app = header.sending_application
        their_facility = header.sending_facility
        event = header.trigger_event
        acked_control_id = header.control_id
        processing_id = header.processing_id or "P"
        version_id = header.version_id or "2.5.1"
        charset = header.charset
    else:
        delimiters = DEFAULT
        sep, enc = DEFAULT.field, DEFAULT.encoding_characters
        our_app = _text(receiving_application, delimiters)
        our_facility = _text(receiving_facility, delimiters)
        their_app = their_facility = event = acked_control_id = charset = ""
        processing_id, version_id = "P", "2.5.1"
    comp = enc[0]
    message_type = f"ACK{comp}{event}{comp}ACK" if event else "ACK"

    msh = [
        "MSH", enc, our_app, our_facility, their_app, their_facility, _timestamp(now), "",
        message_type, _text(ack_control_id, delimiters), processing_id, version_id,
    ]
    if charset:
        # MSH-13..17 empty, MSH-18 echoes the character set the echoed fields are written in.
        msh += ["", "", "", "", "", charset]
    # MSA-2 echoes MSH-10 of the message being acknowledged.
    msa = ["MSA", ack_code, acked_control_id]
    if text:
        msa.append(_text(text, delimiters))  # MSA-3 text message (kept for older receivers)
    segments = [sep.join(msh), sep.join(msa)]

    if error is not None:
        location = ""
        if error.segment:
            location = f"{error.segment}{comp}{error.sequence}"
            if error.field:
                location += f"{comp}{error.field}"
        code = error.hl7_error_code or "207"
        condition = comp.join((code, HL7_ERROR_TEXTS.get(code, ""), "HL70357"))
        # ERR-1 (deprecated) empty, ERR-2 location, ERR-3 condition, ERR-4 severity,
        # ERR-5..7 empty, ERR-8 user message.
        segments.append(sep.join(("ERR", "", location, condition, "E", "", "", "",
                                  _text(error.reason, delimiters))))
    segments.append("")
    return "\r".join(segments).encode("latin-1", errors="replace")


def read_ack(payload: bytes) -> tuple[str, str, str]:
    """Return (MSA-1 ack code, MSA-2 control id, text) from an ACK payload.

    The text is MSA-3 when valued, else ERR-8 of the first ERR segment, else "". Raises
    :class:`AckUnreadable` when there is no MSA segment or MSA-1 is empty.
    """
    delimiters = DEFAULT
    msa: list[str] | None = None
    err_text = ""
    for raw_line in split_segments(_decode(payload)):
        line = raw_line.lstrip("\ufeff \t")
        if line[:3] == "MSH" and len(line) > 8:
            try:
                delimiters = read_msh_delimiters(line)
            except HeaderError:
                pass  # an ACK with odd MSH-2: read it with the default delimiters
        elif line[:3] == "MSA" and msa is None:
            msa = line.split(delimiters.field)
        elif line[:3] == "ERR" and not err_text:
            fields = line.split(delimiters.field)
            if len(fields) > 8:
                err_text = fields[8]
    if msa is None:
        raise AckUnreadable("the answer has no MSA segment")
    msa += ["", "", ""]
    code = msa[1].split(delimiters.component, 1)[0].strip()
    if not code:
        raise AckUnreadable("MSA-1 acknowledgement code is empty")
    text = msa[3] or err_text
    # Only the delimiter escapes are resolved: the text is shown to a person as the peer wrote it.
    return code, msa[2].strip(), unescape(text, delimiters, formatting=False)


def _text(text: str, delimiters: Delimiters) -> str:
    """Free text we add to an ACK: escaped, line breaks as spaces (read in terminals and logs)."""
    return escape(text, delimiters, line_breaks="space")


def _decode(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode("latin-1")
