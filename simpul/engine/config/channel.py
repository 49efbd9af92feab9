"""The channel YAML model: source -> filter -> mapping -> labelled destinations.

A channel file reads top to bottom the way data flows. Unknown keys are errors (with a
"did you mean" hint); cross-field rules are validators with a one-line reason.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from simpul.connectors.base import CONNECTORS
from simpul.connectors.file import FileDestinationConfig
from simpul.connectors.fhir_server import FhirServerConfig
from simpul.connectors.mllp import MllpDestinationConfig
from simpul.engine.config.durations import Duration
from simpul.engine.filter_expression import compile_expression
from simpul.mappings.options import MappingSpec
from simpul.mllp.listener import ListenerSettings
from simpul.mllp.tls import TlsSettings

LABEL = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestOptions(Strict):
    """How a source reads and dedups what arrives, whatever the transport."""

    default_charset: str = Field("utf-8", description="Charset when MSH-18 is empty.")
    fallback_charset: str | None = Field(
        None, description="Charset to try when the bytes do not decode in the declared one "
                          "(e.g. windows-1252 for senders that mislabel Latin-1 text). "
                          "Without it such a message is answered AE.")
    dedup_window: Duration = Field(86400.0, description="A resent message (same MSH-3, MSH-4, MSH-10 and "
                                                         "content) within this window gets its original ACK back.")

    @field_validator("default_charset", "fallback_charset")
    @classmethod
    def _known_codec(cls, value: str | None) -> str | None:
        import codecs
        if value is not None:
            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown charset '{value}'") from None
        return value


class MllpSource(ListenerSettings, IngestOptions):
    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 for every interface.")
    port: int = Field(ge=0, le=65535, description="TCP port (0 picks a free one, for tests).", examples=[2577])
    tls: TlsSettings | None = Field(None, description="Serve MLLP over TLS 1.2+ (1.3 preferred).")


class HttpSource(IngestOptions):
    """HL7v2 over HTTP: POST one message as the request body; the ACK is the response body."""

    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 for every interface.")
    port: int = Field(ge=0, le=65535, description="TCP port; channels may share one (each with its own path).",
                      examples=[8090])
    path: str = Field("/hl7", pattern=r"^/[A-Za-z0-9/_.-]*$", description="URL path that takes the POSTs.",
                      examples=["/hl7/lab"])
    max_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="Largest accepted request body (413 above).")


class Source(Strict):
    mllp: MllpSource | None = Field(None, description="Receive HL7v2 over MLLP.")
    http: HttpSource | None = Field(None, description="Receive HL7v2 over HTTP POST (the ACK is the response).")

    @model_validator(mode="after")
    def _one_transport(self) -> "Source":
        if (self.mllp is None) == (self.http is None):
            raise ValueError("a source needs exactly one of mllp or http")
        return self

    @property
    def settings(self) -> MllpSource | HttpSource:
        return self.mllp if self.mllp is not None else self.http  # type: ignore[return-value]


class Filter(Strict):
    message_types: list[str] = Field(default_factory=list, description="MSH-9 code^event; '*' wildcards, e.g. ADT^*.")
    sending_application: list[str] = Field(default_factory=list, description="MSH-3 (first component).")
    sending_facility: list[str] = Field(default_factory=list, description="MSH-4 (first component).")
    expression: str | None = Field(None, description="A boolean expression over message fields, e.g. "
                                                     "\"message_type == 'ORU^R01' and patient_id != ''\".")

    @field_validator("expression")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            compile_expression(value)     # raises ValueError with the reason
        return value

    @field_validator("message_types")
    @classmethod
    def _message_type_shape(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"[A-Z0-9*]{1,3}(\^[A-Z0-9*]{1,3})?|\*", value):
                raise ValueError(f"'{value}' is not a message type such as ORU^R01 or ADT^*")
        return values


class RetryPolicy(Strict):
    max_attempts: int = Field(10, ge=1, description="Attempts before the delivery is dead-lettered.")
    initial_delay: Duration = Field(1.0, description="Wait after the first failure.")
    max_delay: Duration = Field(300.0, description="Cap of the exponential backoff.")
    multiplier: float = Field(2.0, ge=1.0, description="Backoff growth per attempt.")
    jitter: bool = Field(True, description="Add up to one initial_delay of random jitter.")
    max_age: Duration | None = Field(None, description="Give up this long after the message arrived, "
                                                       "whatever the attempts.")

    @model_validator(mode="after")
    def _delays_in_order(self) -> "RetryPolicy":
        if self.max_delay < self.initial_delay:
            raise ValueError("max_delay must be >= initial_delay")
        return self


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class DowntimeWindow(Strict):
    """A planned, recurring outage (e.g. a LIS that shuts its interface every night).

    Inside the window the destination's worker claims nothing: no attempt is made or counted
    and no backoff grows, and the destination reports `in_downtime` so alerts can stay quiet.
    """

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: list(WEEKDAYS), description="Days the window starts on (default every day).")
    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="Local start time, HH:MM.",
                       examples=["23:00"])
    end: str = Field(pattern=r"^([01][0-9]|2[0-4]):[0-5][0-9]$",
                     description="Local end time, HH:MM; earlier than start means it ends the next day.",
                     examples=["01:30"])
    timezone: str = Field("UTC", description="IANA time zone of start/end, e.g. Asia/Jakarta.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        import zoneinfo
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{value}'") from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> "DowntimeWindow":
        if self.start == self.end:
            raise ValueError("start and end are the same time: the window would be empty")
        return self


class CircuitBreaker(Strict):
    failures: int = Field(5, ge=1, description="Consecutive retryable failures that open the circuit.")
    open_for: Duration = Field(30.0, description="How long the circuit stays open before one half-open probe.")


class RateLimit(Strict):
    per_second: float = Field(gt=0, description="Sends per second, sustained.")
    burst: int = Field(1, ge=1, description="Sends allowed at once after an idle period.")


class ArchiveSettings(Strict):
    """Where expired messages go before they leave the hot store (docs/operate/retention.md)."""

    directory: str = Field(description="Folder for archive files (relative paths: from the settings base "
                                       "folder). Copy it off-site; the store keeps only the file index.",
                           examples=["/var/lib/simpul/archive"])
    encrypt: bool = Field(False, description="AES-256-GCM with the first key of SIMPUL_ARCHIVE_KEYS "
                                             "(\"id:base64key,...\"; the others still decrypt).")


class RetentionPolicy(Strict):
    """How long this channel's messages stay in the hot store. Nothing leaves it unarchived."""

    content: Duration = Field("90d", validate_default=True, description="Age after which a finished message (all deliveries "
                                                        "done, no open dead letter) is archived, then removed "
                                                        "with its deliveries, attempts and dead letters.")
    metadata: Duration | None = Field(None, description="Age after which the archive index entry (control id, "
                                                        "patient id, type, time) is removed too; empty = kept.")
    archive: ArchiveSettings = Field(description="Where archived messages are written.")

    @model_validator(mode="after")
    def _metadata_outlives_content(self) -> "RetentionPolicy":
        if self.metadata is not None and self.metadata < self.content:
            raise ValueError("metadata must be >= content: the index of an archive outlives its messages")
        return self


class Destination(Strict):
    label: str = Field(pattern=LABEL, description="Names this stage in logs, metrics and dead letters.")
    order_by: Literal["patient", "visit", "accession", "placer", "filler", "control_id", "none"] = Field(
        "patient", description="FIFO per this key; a failing message blocks only its own key.")
    payload: Literal["mapped", "raw"] | None = Field(
        None, description="What to send: the mapping's output or the original message "
                          "(default: raw for mllp, mapped otherwise).")
    max_in_flight: int = Field(8, ge=1, le=256, description="Deliveries in flight at once (always one per key).")
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Attempts and backoff before a dead "
                                                                        "letter (retryable errors only).")
    on_failure: Literal["skip", "block"] = Field(
        "skip", description="When a key's head message is dead-lettered: skip = the key moves on (default); "
                            "block = the key waits until the dead letter is replayed or discarded.")
    downtime: list[DowntimeWindow] = Field(default_factory=list,
                                           description="Planned outages: no sends, no attempts counted.")
    circuit_breaker: CircuitBreaker | None = Field(
        None, description="Stop sending after N consecutive failures; probe with one send after open_for.")
    rate_limit: RateLimit | None = Field(None, description="Most sends per second to this destination.")
    fhir_server: FhirServerConfig | None = Field(None, description="POST the mapped Bundle to a FHIR server.")
    mllp: MllpDestinationConfig | None = Field(None, description="Send HL7v2 over MLLP and check the ACK.")
    file: FileDestinationConfig | None = Field(None, description="Write each payload to a file in a folder.")

    @model_validator(mode="after")
    def _one_connector(self) -> "Destination":
        chosen = [name for name in CONNECTORS if getattr(self, name, None) is not None]
        if len(chosen) != 1:
            raise ValueError(f"a destination needs exactly one connector ({', '.join(CONNECTORS)}); "
                             f"found {len(chosen) or 'none'}")
        return self

    @property
    def connector_name(self) -> str:
        return next(name for name in CONNECTORS if getattr(self, name, None) is not None)

    @property
    def connector_config(self) -> BaseModel:
        return getattr(self, self.connector_name)  # type: ignore[no-any-return]

    @property
    def sends(self) -> str:
        return self.payload or ("raw" if self.connector_name == "mllp" else "mapped")


class Channel(Strict):
    name: str = Field(pattern=LABEL, description="Unique channel name.")
    description: str = Field("", description="Free text for people reading the channel list.")
    enabled: bool = Field(True, description="false keeps the file but runs nothing from it.")
    source: Source = Field(description="Where messages come from.")
    filter: Filter = Field(default_factory=Filter, description="Which messages of the source this channel takes "
                                                               "(all rules must match; empty = all).")
    mapping: MappingSpec | str = Field("v2_to_fhir", description="Built-in map name or a mapping spec.")
    destinations: list[Destination] = Field(min_length=1, description="Where the result goes, each with its "
                                                                      "own queue, order and retry policy.")
    retention: RetentionPolicy | None = Field(
        None, description="Archive, then remove, finished messages after this long (absent: keep everything).")

    @field_validator("destinations")
    @classmethod
    def _unique_labels(cls, values: list[Destination]) -> list[Destination]:
        seen: set[str] = set()
        for destination in values:
            if destination.label in seen:
                raise ValueError(f"destination label '{destination.label}' is used twice")
            seen.add(destination.label)
        return values
