"""A loaded channel ready to run: its compiled filter and its mapping.

The processor asks `accepts(fields)` (the filter), maps accepted messages in the mapping pool,
then asks `deliveries_for(...)` for one delivery per destination. `map` maps in this process
(dead-letter replay uses it).
"""
from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from simpul.connectors.cloudevents import CLOUDEVENTS_JSON, looks_like_event
from simpul.connectors.cloudevents import VERSION_ID as EVENT_VERSION_ID
from simpul.engine.config.channel import Channel, Destination
from simpul.engine.filter_expression import Evaluator, compile_expression
from simpul.engine.mapping_pool import map_stored
from simpul.mappings import MappingSpec, load_mapping

FHIR_JSON = "application/fhir+json"
HL7_V2 = "x-application/hl7-v2+er7"


@dataclass
class RoutedDelivery:
    destination: Destination
    payload: bytes
    content_type: str
    order_key: str


def effective_mapping_spec(spec: MappingSpec | str | None, default_timezone: str | None) -> MappingSpec | str | None:
    """The channel's mapping spec with the engine's `default_timezone` filled in where it sets none."""
    if default_timezone is None:
        return spec
    if spec is None or isinstance(spec, str):
        spec = MappingSpec(builtin=spec or "v2_to_fhir")
    if spec.default_timezone is None:
        spec = spec.model_copy(update={"default_timezone": default_timezone})
    return spec


class ChannelRuntime:
    def __init__(self, channel: Channel, path: Path, *, default_timezone: str | None = None) -> None:
        self.channel = channel
        self.path = path
        self.name = channel.name
        self._expression: Evaluator | None = (
            compile_expression(channel.filter.expression) if channel.filter.expression else None)
        self.mapping_spec = effective_mapping_spec(channel.mapping, default_timezone)
        self.mapping = load_mapping(self.mapping_spec, base_dir=path.parent)
        self.needs_mapping = any(d.sends == "mapped" for d in channel.destinations)

    def accepts(self, fields: Mapping[str, str]) -> bool:
        f = self.channel.filter
        if f.message_types and not any(fnmatch.fnmatchcase(fields["message_type"], pattern)
                                       or fnmatch.fnmatchcase(fields["message_type"], pattern + "^*")
                                       for pattern in f.message_types):
            return False
        if f.event_types and not (fields["version_id"] == EVENT_VERSION_ID and any(
                fnmatch.fnmatchcase(fields["message_type"], pattern) for pattern in f.event_types)):
            return False
        if f.sending_application and fields["sending_application"] not in f.sending_application:
            return False
        if f.sending_facility and fields["sending_facility"] not in f.sending_facility:
            return False
        if self._expression is not None and not self._expression(fields):
            return False
        return True

    def map(self, text: str) -> bytes:
        """Map in this process (used by `simpul map`; the engine maps in its mapping pool)."""
        return orjson.dumps(self.mapping.map(text))

    def map_stored(self, raw: bytes, charset: str) -> tuple[bytes, str]:
        """Map a stored message (HL7v2 or an event) in this process, as the pool would: (payload,
        content type). Dead-letter replay uses it."""
        return map_stored(self.mapping, raw, charset)[0], self.mapping.output_content_type

    @staticmethod
    def raw_content_type(raw: bytes) -> str:
        """What a `payload: raw` destination is sent: an event as its envelope, else HL7v2."""
        return CLOUDEVENTS_JSON if looks_like_event(raw) else HL7_V2

    def deliveries_for(self, raw: bytes, mapped: bytes | None, fields: Mapping[str, str],
                       message_id: int) -> list[RoutedDelivery]:
        """One delivery per destination; mapped destinations get nothing when mapping failed."""
        deliveries: list[RoutedDelivery] = []
        for destination in self.channel.destinations:
            key = order_key(destination.order_by, fields, message_id)
            if destination.sends == "raw":
                # An event goes on as its CloudEvents envelope, exactly as it arrived (or was emitted).
                deliveries.append(RoutedDelivery(destination, raw, self.raw_content_type(raw), key))
            elif mapped is not None:
                deliveries.append(RoutedDelivery(destination, mapped, self.mapping.output_content_type, key))
        return deliveries


_ORDER_FIELDS = {"patient": "patient_id", "visit": "visit_number", "accession": "accession_number",
                 "placer": "placer_number", "filler": "filler_number", "control_id": "control_id"}


def order_key(order_by: str, fields: Mapping[str, Any], message_id: int) -> str:
    """FIFO lane of a delivery. `none` gives every message its own lane, so nothing waits."""
    if order_by == "none":
        return f"#{message_id}"
    return str(fields.get(_ORDER_FIELDS[order_by], ""))
