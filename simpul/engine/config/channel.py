"""The channel YAML model: source -> filter -> mapping -> labelled destinations.

A channel file reads top to bottom the way data flows. Unknown keys are errors (with a
"did you mean" hint); cross-field rules are validators with a one-line reason.
"""
from __future__ import annotations

import re
import zoneinfo
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, create_model, field_validator, model_validator

from simpul.config_types import Duration, StrictModel
from simpul.connectors import registry
from simpul.connectors.base import ConnectorSpec
from simpul.engine.filter_expression import compile_expression
from simpul.errors import ConfigError
from simpul.mappings.options import MappingSpec

LABEL = r"^[a-z0-9][a-z0-9_-]{0,62}$"

Strict = StrictModel


def _one_of(names: list[str]) -> str:
    return " or ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " or " + names[-1]


def _connector_fields(role: Literal["source", "destination"], base: type[BaseModel]) -> dict[str, Any]:
    """One optional key per registered connector that can play `role`, described by its spec."""
    fields: dict[str, Any] = {}
    for spec in registry.specs():
        model = spec.source if role == "source" else spec.destination
        description = spec.source_description if role == "source" else spec.destination_description
        if model is None:
            continue
        if spec.name in base.model_fields:
            # a connector called e.g. "retry" would silently replace the destination's own key
            raise ConfigError(f"connector '{spec.name}' has the name of a {role} key; rename it")
        fields[spec.name] = (model | None, Field(None, description=description))
    return fields


SOURCE_CONNECTORS = [spec.name for spec in registry.sources()]
DESTINATION_CONNECTORS = [spec.name for spec in registry.destinations()]
RAW_BY_DEFAULT = [spec.name for spec in registry.destinations() if spec.default_payload == "raw"]


class SourceBase(Strict):
    """Where a channel's messages come from: exactly one source connector (generated below)."""

    @model_validator(mode="after")
    def _one_transport(self) -> "SourceBase":
        chosen = [name for name in SOURCE_CONNECTORS if getattr(self, name, None) is not None]
        if len(chosen) != 1:
            raise ValueError(f"a source needs exactly one of {_one_of(SOURCE_CONNECTORS)}")
        return self

    @property
    def kind(self) -> str:
        """The source connector's name (its key in the YAML)."""
        return next(name for name in SOURCE_CONNECTORS if getattr(self, name, None) is not None)

    @property
    def settings(self) -> BaseModel:
        settings: BaseModel = getattr(self, self.kind)
        return settings


class Filter(Strict):
    message_types: list[str] = Field(default_factory=list, description="MSH-9 code^event; '*' wildcards, e.g. ADT^*.")
    sending_application: list[str] = Field(default_factory=list, description="MSH-3 (first component).")
    sending_facility: list[str] = Field(default_factory=list, description="MSH-4 (first component).")
    event_types: list[str] = Field(default_factory=list, description="CloudEvents type of an event (rabbitmq "
                                   "source); '*' wildcards, e.g. lab_order_*.", examples=[["lab_order_created"]])
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


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class DowntimeWindow(Strict):
    """A planned, recurring outage (e.g. a LIS that shuts its interface every night).

    Inside the window the destination's worker claims nothing: no attempt is made or counted
    and no backoff grows, and the destination reports `in_downtime` so alerts can stay quiet.
    """

    days: list[Weekday] = Field(
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


class DestinationBase(Strict):
    """One labelled delivery stage; exactly one destination connector key (generated below)."""

    label: str = Field(pattern=LABEL, description="Names this stage in logs, metrics and dead letters.")
    order_by: Literal["patient", "visit", "accession", "placer", "filler", "control_id", "channel", "none"] = Field(
        "patient", description="FIFO per this key; a failing message blocks only its own key. channel = one "
                               "lane for the whole destination (strict order); none = no order.")
    payload: Literal["mapped", "raw"] | None = Field(
        None, description="What to send: the mapping's output or the original message "
                          f"(default: raw for {_one_of(RAW_BY_DEFAULT)}, mapped otherwise).")
    max_in_flight: int = Field(8, ge=1, le=256, description="Keys being sent at once (one delivery at a time "
                                                             "per key).")
    run_length: int = Field(100, ge=1, le=10_000, description="Most waiting deliveries of one key taken under one "
                                                              "claim and sent in order (a busy key goes at the "
                                                              "receiver's speed).")
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
    @model_validator(mode="after")
    def _one_connector(self) -> "DestinationBase":
        chosen = [name for name in DESTINATION_CONNECTORS if getattr(self, name, None) is not None]
        if len(chosen) != 1:
            raise ValueError(f"a destination needs exactly one connector ({', '.join(DESTINATION_CONNECTORS)}); "
                             f"found {len(chosen) or 'none'}")
        return self

    @property
    def connector_name(self) -> str:
        return next(name for name in DESTINATION_CONNECTORS if getattr(self, name, None) is not None)

    @property
    def connector(self) -> ConnectorSpec:
        return registry.spec(self.connector_name)

    @property
    def connector_config(self) -> BaseModel:
        config: BaseModel = getattr(self, self.connector_name)
        return config

    @property
    def sends(self) -> str:
        return self.payload or self.connector.default_payload


# The connector keys are fields generated from the registry; type checkers see the base classes,
# which carry every rule and property the rest of the code uses.
if TYPE_CHECKING:
    Source = SourceBase
    Destination = DestinationBase
else:
    Source = create_model("Source", __base__=SourceBase, **_connector_fields("source", SourceBase))
    Destination = create_model("Destination", __base__=DestinationBase,
                               **_connector_fields("destination", DestinationBase))


class CriticalRule(Strict):
    """A per-test critical limit, for results whose sender does not flag OBX-8 (or flags too little)."""

    code: str = Field(description="OBX-3.1, the test code (e.g. a LOINC code).", examples=["2823-3"])
    below: float | None = Field(None, description="A numeric OBX-5 below this is critical.")
    above: float | None = Field(None, description="A numeric OBX-5 above this is critical.")

    @model_validator(mode="after")
    def _a_limit(self) -> "CriticalRule":
        if self.below is None and self.above is None:
            raise ValueError("a critical rule needs below, above or both")
        return self


class OrderTracking(Strict):
    """Track orders and their results on this channel (docs/lab-and-radiology.md).

    Orders this channel carries (ORM/OML/OMI) start a timeline; order acknowledgements and status
    updates (ORR/ORL, ORC-5), results (ORU, OBR-25) and the receiver's answer to each order
    (AA/AE/AR) add steps to it. Results for an order nobody placed are kept and flagged.
    """

    kind: Literal["lab", "radiology"] = Field(description="What the orders are: lab tests or imaging studies.")
    sla: dict[Literal["stat", "asap", "routine"], Duration] = Field(
        default_factory=dict, description="Time from placing to a final result, per priority (OBR-5 / TQ1-9: "
                                          "S stat, A asap, R routine); a later final result raises "
                                          "order_overdue once.", examples=[{"stat": "60m", "routine": "24h"}])
    critical_flags: list[str] = Field(["HH", "LL", "AA"], description="OBX-8 abnormal flags that make a "
                                                                     "result critical.")
    critical_rules: list[CriticalRule] = Field(default_factory=list, description="Per-test critical limits.")
    study_destination: str | None = Field(
        None, pattern=LABEL, description="Radiology: the label of this channel's FHIR destination that gets the "
                                         "ImagingStudy a dicomweb destination found (a transaction Bundle).",
        examples=["fhir"])


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
    orders: OrderTracking | None = Field(
        None, description="Track the orders and results this channel carries: timeline, SLA, critical values.")

    @model_validator(mode="after")
    def _study_destination_exists(self) -> "Channel":
        wanted = self.orders.study_destination if self.orders is not None else None
        if wanted and wanted not in {d.label for d in self.destinations}:
            raise ValueError(f"orders.study_destination '{wanted}' is not a destination label of this channel")
        return self

    @field_validator("destinations")
    @classmethod
    def _unique_labels(cls, values: list[Destination]) -> list[Destination]:
        seen: set[str] = set()
        for destination in values:
            if destination.label in seen:
                raise ValueError(f"destination label '{destination.label}' is used twice")
            seen.add(destination.label)
        return values
