"""A lean reader for the MSH segment, on bytes, for the ingest hot path.

Only the MSH line is decoded (as latin-1, so no byte can fail: MSH fields are ASCII in practice and
latin-1 round-trips every byte for the ACK). The rest of the message is not looked at. Field values
are kept as they appear on the wire (no unescaping); HL7 escape sequences do not occur in the MSH
fields read here in practice.

Field numbering follows the standard: MSH-1 is the field separator itself, so MSH-n is item
``n - 1`` of the MSH line split on that separator.
"""
from __future__ import annotations

from dataclasses import dataclass

from simpul.errors import HeaderError

__all__ = ["MessageHeader", "read_header", "is_enhanced_mode"]

_BOM = b"\xef\xbb\xbf"
_LEADING_WHITESPACE = b" \t\r\n"


@dataclass(slots=True)
class MessageHeader:
    """The MSH fields the engine routes and acknowledges by. Texts are the full field values."""

    field_separator: str  # MSH-1
    encoding_characters: str  # MSH-2: component, repetition, escape, subcomponent[, truncation]
    sending_application: str = ""  # MSH-3
    sending_facility: str = ""  # MSH-4
    receiving_application: str = ""  # MSH-5
    receiving_facility: str = ""  # MSH-6
    message_datetime: str = ""  # MSH-7
    message_type: str = ""  # MSH-9.1^MSH-9.2, always joined with "^"
    message_structure: str = ""  # MSH-9.3
    control_id: str = ""  # MSH-10
    processing_id: str = ""  # MSH-11
    version_id: str = ""  # MSH-12
    accept_ack_type: str = ""  # MSH-15
    application_ack_type: str = ""  # MSH-16
    charset: str = ""  # MSH-18, first repetition
    segment_terminator: bytes = b"\r"  # what ended the MSH line on the wire

    @property
    def component_separator(self) -> str:
        return self.encoding_characters[0]

    @property
    def repetition_separator(self) -> str:
        return self.encoding_characters[1]

    @property
    def escape_character(self) -> str:
        return self.encoding_characters[2]

    @property
    def subcomponent_separator(self) -> str:
        return self.encoding_characters[3]

    @property
    def message_code(self) -> str:
        """MSH-9.1, e.g. "ADT"."""
        return self.message_type.partition("^")[0]

    @property
    def trigger_event(self) -> str:
        """MSH-9.2, e.g. "A01" ("" when absent, as in many ACKs)."""
        return self.message_type.partition("^")[2]

    def _first(self, value: str) -> str:
        return value.split(self.encoding_characters[0], 1)[0]

    @property
    def sending_application_name(self) -> str:
        """MSH-3.1 (HD namespace id)."""
        return self._first(self.sending_application)

    @property
    def sending_facility_name(self) -> str:
        """MSH-4.1 (HD namespace id)."""
        return self._first(self.sending_facility)

    @property
    def receiving_application_name(self) -> str:
        """MSH-5.1 (HD namespace id)."""
        return self._first(self.receiving_application)

    @property
    def receiving_facility_name(self) -> str:
        """MSH-6.1 (HD namespace id)."""
        return self._first(self.receiving_facility)


_encoding_checked: dict[str, bool] = {"^~\\&": True}


def _usable_encoding(encoding: str) -> bool:
    """MSH-2 is 4 or 5 distinct non-alphanumeric characters (memoised: senders reuse one value)."""
    usable = _encoding_checked.get(encoding)
    if usable is None:
        usable = (4 <= len(encoding) <= 5 and len(set(encoding)) == len(encoding)
                  and not any(c.isalnum() or c.isspace() for c in encoding))
        if len(_encoding_checked) < 64:
            _encoding_checked[encoding] = usable
    return usable


def is_enhanced_mode(header: MessageHeader) -> bool:
    """True when the sender asked for enhanced acknowledgement (MSH-15 or MSH-16 valued)."""
    return bool(header.accept_ack_type or header.application_ack_type)


def read_header(raw: bytes) -> MessageHeader:
    """Read the MSH segment of one HL7 v2 message.

    Tolerates a UTF-8 BOM and leading whitespace; segments may end in CR, LF or CRLF. Raises
    :class:`HeaderError` with ``segment="MSH"``, the field number and the table 0357 code:
    100 when the message does not start with MSH, 101 when MSH-9 or MSH-10 is empty, 102 when
    MSH-1 or MSH-2 is unusable. Reasons never quote message content.
    """
    start = 3 if raw[:3] == _BOM else 0
    size = len(raw)
    while start < size and raw[start] in _LEADING_WHITESPACE:
        start += 1
    if raw[start:start + 3] != b"MSH":
        raise HeaderError("message does not start with an MSH segment", segment="MSH",
                          field=0, hl7_error_code="100")
    cr = raw.find(b"\r", start)
    # Look for LF only up to the first CR (+1 for CRLF): never scan a long CR-separated body for it.
    lf = raw.find(b"\n", start, size if cr < 0 else cr + 2)
    if cr < 0 and lf < 0:
        end, terminator = size, b"\r"
    elif lf < 0 or 0 <= cr < lf:
        end = cr
        terminator = b"\r\n" if lf == cr + 1 else b"\r"
    else:
        end, terminator = lf, b"\n"
    line = raw[start:end].decode("latin-1")

    if len(line) < 4:
        raise HeaderError("MSH-1 field separator missing", segment="MSH", field=1)
    sep = line[3]
    if sep.isalnum() or sep.isspace():
        raise HeaderError("MSH-1 field separator is not a usable delimiter", segment="MSH", field=1)
    fields = line.split(sep)
    encoding = fields[1]
    if len(encoding) == 5 and len(set(encoding)) == 4:
        # MSH-2 "^~\\&" (the escape character written twice: a string-escaping slip some senders make)
        # is not a truncation character: read the four delimiters once each, as the mapping's parser does.
        encoding = "".join(dict.fromkeys(encoding))
    if not _usable_encoding(encoding):
        raise HeaderError("MSH-2 encoding characters are not 4 or 5 distinct delimiters",
                          segment="MSH", field=2)
    # Pad so MSH-18 (fields[17]) always exists.
    if len(fields) < 18:
        fields.extend([""] * (18 - len(fields)))

    message_type = fields[8]
    code, event, structure = (message_type.split(encoding[0]) + ["", ""])[:3]
    if not code:
        raise HeaderError("MSH-9 message type is empty", segment="MSH", field=9,
                          hl7_error_code="101")
    control_id = fields[9]
    if not control_id:
        raise HeaderError("MSH-10 message control id is empty", segment="MSH", field=10,
                          hl7_error_code="101")
    charset = fields[17]
    if charset:
        charset = charset.split(encoding[1], 1)[0]

    return MessageHeader(
        field_separator=sep,
        encoding_characters=encoding,
        sending_application=fields[2],
        sending_facility=fields[3],
        receiving_application=fields[4],
        receiving_facility=fields[5],
        message_datetime=fields[6],
        message_type=f"{code}^{event}" if event else code,
        message_structure=structure,
        control_id=control_id,
        processing_id=fields[10],
        version_id=fields[11],
        accept_ack_type=fields[14],
        application_ack_type=fields[15],
        charset=charset,
        segment_terminator=terminator,
    )
