"""Every error Simpul raises on purpose.

    SimpulError
    ├── ConfigError                      channel/engine YAML that cannot be used
    │   └── MissingVariable              a ${VAR} with no value in the environment
    ├── MllpError                        the MLLP transport
    │   ├── FrameError                   bytes that are not a valid MLLP frame
    │   │   └── FrameTooLarge            a frame over the configured size limit
    │   ├── MllpTimeout(TimeoutError)    connect, idle, partial-frame or response deadline
    │   ├── MllpConnectionError(ConnectionError)
    │   ├── AckMismatch                  MSA-2 does not echo the MSH-10 that was sent
    │   ├── AckUnreadable                the peer answered with something that is not an ACK
    │   └── NegativeAck                  the peer answered AE/CE/AR/CR (one class per outcome)
    │       ├── ApplicationErrorAck      AE: receiver-side problem, resend later
    │       ├── ApplicationRejectAck     AR: the message itself is refused
    │       ├── CommitErrorAck           CE
    │       └── CommitRejectAck          CR
    ├── MessageError(ValueError)         an HL7v2 message we cannot read
    │   ├── HeaderError                  MSH missing or unreadable (names segment and field)
    │   ├── CharsetError                 bytes that do not decode in the declared MSH-18 charset
    │   └── EventUnreadable              a body that is not a CloudEvents 1.0 JSON event we can read
    ├── MappingError(ValueError)         a message the mapping cannot turn into FHIR
    │   └── UnsupportedMessageType
    │       └── NothingToMap             a supported type with no segment the map reads (MSH only)
    ├── StoreError                       the durable store refused or failed a commit
    │   ├── ArchiveIncomplete            a retention pass left a channel unarchived (nothing of it removed)
    │   └── ArchiveUnreadable            an archive file that is damaged, altered or not ours
    ├── OperationRefused(ValueError)     an on-call action refused by its guard (cap, no reason, ...)
    │   ├── NotFound                     the dead letter (archive, ...) named by id does not exist
    │   ├── InvalidParameter             a query parameter the API cannot use (400)
    │   ├── ActorRequired                a change with no one named as doing it
    │   └── ReplayOverCap                more dead letters match than the cap allows
    └── ConnectorError                   a destination failed; the retry policy reads only these two:
        ├── ConnectorUnavailable         retryable: timeouts, refused connections, 5xx, AE/CE
        └── ConnectorRejected            final: 4xx, AR/CR, a payload the receiver will never take

Messages name control ids, channels and stage labels, never segment contents:
patient data stays out of exception text and therefore out of logs.

The HTTP API answers each class with an RFC 9457 problem document whose status follows the class
(simpul/api/problems.py); `problem_document` below builds the document for both HTTP servers.
"""
from __future__ import annotations


class SimpulError(Exception):
    """Root of every error Simpul raises on purpose."""


class ConfigError(SimpulError):
    """A configuration file that cannot be used; `findings` holds one line per problem."""

    def __init__(self, message: str, findings: list[str] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or [message]


class MissingVariable(ConfigError):
    pass


class MllpError(SimpulError):
    pass


class FrameError(MllpError):
    pass


class FrameTooLarge(FrameError):
    pass


class MllpTimeout(MllpError, TimeoutError):
    pass


class MllpConnectionError(MllpError, ConnectionError):
    pass


class AckMismatch(MllpError):
    pass


class AckUnreadable(MllpError):
    pass


class NegativeAck(MllpError):
    """The peer answered with a negative acknowledgement.

    `ack` is the raw ACK payload (unframed) and `control_id` the MSH-10 we sent.
    """

    ack_code = ""

    def __init__(self, message: str, *, ack: bytes = b"", control_id: str = "") -> None:
        super().__init__(message)
        self.ack = ack
        self.control_id = control_id


class ApplicationErrorAck(NegativeAck):
    ack_code = "AE"


class ApplicationRejectAck(NegativeAck):
    ack_code = "AR"


class CommitErrorAck(NegativeAck):
    ack_code = "CE"


class CommitRejectAck(NegativeAck):
    ack_code = "CR"


class MessageError(SimpulError, ValueError):
    """An HL7v2 message that cannot be read.

    `segment` and `field` locate the problem (e.g. "MSH", 9) for the ERR segment of the ACK.
    """

    def __init__(self, reason: str, *, segment: str = "", sequence: int = 1, field: int = 0,
                 hl7_error_code: str = "102") -> None:
        where = f"{segment}-{field}" if segment and field else segment
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.segment = segment
        self.sequence = sequence
        self.field = field
        # HL7 table 0357: 100 segment sequence, 101 required field missing, 102 data type,
        # 103 table value not found, 200 unsupported message type, 207 application internal error
        self.hl7_error_code = hl7_error_code


class HeaderError(MessageError):
    pass


class CharsetError(MessageError):
    pass


class EventUnreadable(MessageError):
    """A CloudEvents message that cannot be read (not JSON, a required attribute missing, data that
    does not match its content type). The text names the attribute, never a value."""


class MappingError(SimpulError, ValueError):
    def __init__(self, reason: str, *, segment: str = "", field: int = 0) -> None:
        where = f"{segment}-{field}" if segment and field else segment
        super().__init__(f"{where}: {reason}" if where else reason)
        self.reason = reason
        self.segment = segment
        self.field = field


class UnsupportedMessageType(MappingError):
    pass


class NothingToMap(UnsupportedMessageType):
    """The message type has a map, but this message holds nothing it reads (e.g. MSH only):
    an empty transaction Bundle would be sent for nothing, so it is a dead letter instead."""


class StoreError(SimpulError):
    pass


class ArchiveIncomplete(StoreError):
    """A retention pass could not archive some channel; `report` is the pass's report (as a dict)."""

    def __init__(self, message: str, *, report: dict[str, object]) -> None:
        super().__init__(message)
        self.report = report


class ArchiveUnreadable(StoreError):
    """An archive file that cannot be read back: damaged, altered, wrong key, unknown format."""


class ConnectorError(SimpulError):
    """A destination failed. `response` keeps what the receiver answered (an ACK, an OperationOutcome)."""

    def __init__(self, message: str, *, response: str | bytes | None = None) -> None:
        super().__init__(message)
        self.response = response


class ConnectorUnavailable(ConnectorError):
    """Retryable: the receiver may take the same payload later."""


class ConnectorRejected(ConnectorError):
    """Final: the receiver will never take this payload as it is."""


class OperationRefused(SimpulError, ValueError):
    """An on-call operation (replay, edit, discard, pause) that cannot be done as asked:
    an unknown id or destination, a missing reason, a batch over its cap. Added for dead_letters/."""


class NotFound(OperationRefused):
    """The item named by id (a dead letter, an archive) does not exist."""


class InvalidParameter(OperationRefused):
    """A query parameter the API cannot use (a cursor it did not hand out, a date that is not one)."""


class ActorRequired(OperationRefused):
    """A change that does not say who makes it (the audit trail needs an actor)."""


class ReplayOverCap(OperationRefused):
    """More dead letters match than the cap allows; `preview` shows what would have been replayed."""

    def __init__(self, message: str, *, preview: dict[str, object]) -> None:
        super().__init__(message)
        self.preview = preview


def problem_document(status: int, title: str, detail: str = "", **extra: object) -> dict[str, object]:
    """The RFC 9457 problem document for an HTTP error (both HTTP servers build theirs here).

    `type` stays about:blank: the status and title say it all; `extra` adds members such as a
    replay preview. Like exception text, `detail` never holds patient data.
    """
    document: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        document["detail"] = detail
    document.update(extra)
    return document
