"""events: the engine's own business events (critical_result, lab_result_received, ...) as a channel source.

Features
    Code in the engine calls `simpul.engine.events.emit_event(connection, "critical_result", ...)`
    inside its own transaction: the event (a CloudEvents 1.0 JSON envelope) is stored as a received
    message on the internal source `event:<type>` in that same commit, so it exists exactly when
    the work that caused it does. A channel whose source is `events: {types: [...]}` routes it
    like any message: filters, mappings, durable deliveries with retries and dead letters (usually
    to a `rabbitmq` destination). Several channels may take the same type.
Connection
    None: nothing listens; the store is the queue.
Options
    `types`: the event types the channel takes. A priority event (`priority=True`) is routed
    before any backlog; give urgent types a channel of their own so their deliveries have their
    own worker too (see the Events page).
"""
from __future__ import annotations

from pydantic import Field, field_validator

from simpul.config_types import StrictModel
from simpul.connectors.base import ConnectorSpec
from simpul.connectors.cloudevents import EVENT_TYPE, valid_type

SOURCE_PREFIX = "event:"


def event_source(event_type: str) -> str:
    """The store's source key of one event type: what `emit_event` writes and a channel listens on."""
    return f"{SOURCE_PREFIX}{event_type}"


class EventsSource(StrictModel):
    """Events the engine emits itself (emit_event), by type."""

    types: list[str] = Field(min_length=1, description="CloudEvents types this channel takes.",
                             examples=[["critical_result", "lab_result_received"]])

    @field_validator("types")
    @classmethod
    def _type_names(cls, values: list[str]) -> list[str]:
        for value in values:
            if not valid_type(value):
                raise ValueError(f"'{value}' is not an event type (letters, digits, _ . -; pattern {EVENT_TYPE})")
        if len(set(values)) != len(values):
            raise ValueError("an event type is listed twice")
        return values


# No create_source: nothing is read from outside. The engine routes messages stored on the
# `event:<type>` sources to the channels that list the type (engine/listeners.source_keys).
CONNECTOR = ConnectorSpec(
    name="events", source=EventsSource,
    source_description="Business events the engine emits itself (critical_result, ...), by type.")
