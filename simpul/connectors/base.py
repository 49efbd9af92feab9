"""The contract every connector keeps, and the declaration each connector module makes.

A source connector's lifecycle: `start()` begins reading (binds, subscribes) and returns once it
is ready; each message it reads goes to `receive(raw)`, the engine's ingest, which commits it and
returns the ACK (None when MSH-15 asked for none) for the source to give back to its peer;
`close()` stops reading. `start()` after `close()` starts again; `close()` may be repeated.

A destination connector's lifecycle: `connect()` once before the first send (the runtime may call
it again after a failure), `send(outgoing)` for each delivery, `close()` on shutdown or reload;
`close()` may be called more than once, and `connect()` again after it. `send` returns a short
response text kept on the delivery row, or raises `ConnectorUnavailable` (retryable) or
`ConnectorRejected` (final): the delivery runtime's retry policy reads only those two. Error text
names the peer and the failure, never the payload or a credential.

Each module in this package (and each `simpul.connectors` entry point) declares one
`CONNECTOR = ConnectorSpec(...)`; `simpul.connectors.registry` finds them by name.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from simpul.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One delivery as a connector sees it."""

    payload: bytes
    content_type: str
    control_id: str
    channel: str
    destination: str
    delivery_id: int
    message_type: str = ""


class Connector(Protocol):
    async def connect(self) -> None: ...

    async def send(self, outgoing: Outgoing) -> str: ...

    async def close(self) -> None: ...


Receive = Callable[[bytes], Awaitable[bytes | None]]


class SourceConnector(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """What one connector module declares; the channel models and `simpul docs` are built from it.

    `source` + `create_source`: the config model under `source: {<name>: ...}` when the connector
    can receive, and the factory that turns a validated config and the engine's `Receive` into a
    `SourceConnector`. The engine serves `http` sources itself (channels share one HTTP server per
    port), so that built-in declares no factory.
    `destination` + `create_destination`: the config model under a destination's `<name>:` key and
    the factory that turns a validated config into a `Connector`.
    `default_payload`: what a destination sends when the channel does not say (`payload:`).
    `source_takes`: what the engine's `Receive` handed to `create_source` takes: `hl7v2` (the
    MLLP ingest; its answer is the ACK) or `events` (a broker source: CloudEvents JSON or HL7v2;
    the answer is read with `cloudevents.outcome_of`, and a failed commit raises).
    """

    name: str
    source: type[BaseModel] | None = None
    source_description: str = ""
    create_source: Callable[[Any, Receive], SourceConnector] | None = None
    destination: type[BaseModel] | None = None
    destination_description: str = ""
    create_destination: Callable[[Any], Connector] | None = None
    default_payload: Literal["mapped", "raw"] = "mapped"
    source_takes: Literal["hl7v2", "events"] = "hl7v2"

    def __post_init__(self) -> None:
        if self.source is None and self.destination is None:
            raise ConfigError(f"connector '{self.name}' is neither a source nor a destination")
        if (self.destination is None) != (self.create_destination is None):
            raise ConfigError(f"connector '{self.name}': a destination needs both a config model "
                              "and create_destination")

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(role for role, model in (("source", self.source), ("destination", self.destination))
                     if model is not None)
