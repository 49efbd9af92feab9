"""The MSH segment: the only header reader in Simpul.

:func:`read_header` reads it from the raw bytes on the ingest hot path: only the MSH line is decoded
(as Latin-1, so no byte can fail: MSH fields are ASCII in practice and Latin-1 round-trips every
byte for the ACK); the rest of the message is not looked at. The mapping's reader hands the decoded
MSH line to :func:`read_msh_line`, so both apply the same rules. Field values are kept as they appear
on the wire (escape sequences unresolved): an ACK echoes them verbatim; ``header.text(value)``
resolves them when a person reads one.

Field numbering follows the standard: MSH-1 is the field separator itself, so MSH-n is item
``n - 1`` of the MSH line split on that separator.
"""
from __future__ import annotations

from dataclasses import dataclass

from simpul.errors import HeaderError

from .delimiters import Delimiters, read_delimiters, unescape

__all__ = ["MessageHeader", "read_header", "read_msh_line", "read_msh_delimiters", "is_enhanced_mode"]

_BOM = b"\xef\xbb\xbf"
_LEADING_WHITESPACE = b" \t\r\n"
_BATCH_HEADERS = (b"FHS", b"BHS")


@dataclass(slots=True)
class MessageHeader:
    """The MSH fields Simpul routes, acknowledges and writes by. Texts are whole ER7 field values.

    Read from a message by :func:`read_header`; built by hand (all fields defaulted) to tell the
    FHIR->v2 writer what to put in the MSH of a message it writes.
    """

    field_separator: str = "|"  # MSH-1
    encoding_characters: str = "^~\\&"  # MSH-2: component, repetition, escape, subcomponent[, truncation]
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
    def delimiters(self) -> Delimiters:
        return read_delimiters(self.field_separator, self.encoding_characters)

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

    def text(self, value: str) -> str:
        """Plain text of one of this header's ER7 values (escape sequences resolved)."""
        return unescape(value, self.delimiters)

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


def is_enhanced_mode(header: MessageHeader) -> bool:
    """True when the sender asked for enhanced acknowledgement (MSH-15 or MSH-16 valued)."""
    return bool(header.accept_ack_type or header.application_ack_type)


def _not_msh() -> HeaderError:
    return HeaderError("message does not start with an MSH segment", segment="MSH", field=0,
                       hl7_error_code="100")


def read_header(raw: bytes) -> MessageHeader:
    """Read the MSH segment of one HL7 v2 message.

    Tolerates a UTF-8 BOM, leading white space and a batch envelope (FHS/BHS lines) before MSH;
    segments may end in CR, LF or CRLF. Raises :class:`HeaderError` with ``segment="MSH"``, the
    field number and the table 0357 code: 100 when there is no MSH first, 101 when MSH-9 or MSH-10
    is empty, 102 when MSH-1 or MSH-2 is unusable. Reasons never quote message content.
    """
    start = 3 if raw[:3] == _BOM else 0
    size = len(raw)
    while start < size and raw[start] in _LEADING_WHITESPACE:
        start += 1
    if raw[start:start + 3] != b"MSH":
        # A batch envelope (FHS/BHS lines) around one message: read the message's MSH.
        while raw[start:start + 3] in _BATCH_HEADERS:
            end = start
            while end < size and raw[end] not in b"\r\n":
                end += 1
            start = end
            while start < size and raw[start] in _LEADING_WHITESPACE:
                start += 1
        if raw[start:start + 3] != b"MSH":
            raise _not_msh()
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
    return read_msh_line(raw[start:end].decode("latin-1"), terminator)


def read_msh_delimiters(line: str) -> Delimiters:
    """MSH-1 and MSH-2 of one MSH line, nothing else (an ACK is read with these even when its
    other MSH fields are empty); HeaderError as :func:`read_header` gives it."""
    return _split_msh(line)[0]


def _split_msh(line: str) -> tuple[Delimiters, list[str]]:
    if line[:3] != "MSH":
        raise _not_msh()
    if len(line) < 4:
        raise HeaderError("MSH-1 field separator missing", segment="MSH", field=1)
    sep = line[3]
    fields = line.split(sep)
    return read_delimiters(sep, fields[1]), fields


def read_msh_line(line: str, terminator: bytes = b"\r") -> MessageHeader:
    """Read one MSH line (no terminator); the same rules and errors as :func:`read_header`."""
    delimiters, fields = _split_msh(line)
    sep = delimiters.field
    # Pad so MSH-18 (fields[17]) always exists.
    if len(fields) < 18:
        fields.extend([""] * (18 - len(fields)))

    code, event, structure = (fields[8].split(delimiters.component) + ["", ""])[:3]
    if not code:
        raise HeaderError("MSH-9 message type is empty", segment="MSH", field=9, hl7_error_code="101")
    control_id = fields[9]
    if not control_id:
        raise HeaderError("MSH-10 message control id is empty", segment="MSH", field=10,
                          hl7_error_code="101")
    charset = fields[17]
    if charset:
        charset = charset.split(delimiters.repetition, 1)[0]

    return MessageHeader(
        field_separator=sep,
        encoding_characters=delimiters.encoding_characters,
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
