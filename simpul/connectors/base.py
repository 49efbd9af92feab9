"""The contract every destination connector keeps, and the lazy table of connector names.

Lifecycle: `connect()` once before the first send (may be retried by the runtime), `send(payload)`
for each delivery, `close()` on shutdown or reload. `send` returns a short response text kept on
the delivery row, or raises `ConnectorUnavailable` (retryable) or `ConnectorRejected` (final):
the delivery runtime's retry policy reads only those two. A connector module imports its heavy
third-party libraries inside connect(), so they load only when a channel uses that connector.
"""
from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any, Protocol

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


# name -> "module:ConfigClass:ConnectorClass"; modules import lazily
CONNECTORS: dict[str, str] = {
    "fhir_server": "simpul.connectors.fhir_server:FhirServerConfig:FhirServerConnector",
    "mllp": "simpul.connectors.mllp:MllpDestinationConfig:MllpDestination",
    "file": "simpul.connectors.file:FileDestinationConfig:FileDestination",
}


def _resolve(name: str) -> tuple[Any, Any]:
    try:
        target = CONNECTORS[name]
    except KeyError:
        close = difflib.get_close_matches(name, CONNECTORS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"unknown connector '{name}'{hint}") from None
    module_name, config_name, class_name = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, config_name), getattr(module, class_name)


def config_model(name: str) -> type[BaseModel]:
    config, _ = _resolve(name)
    return config  # type: ignore[no-any-return]


def create_connector(name: str, config: BaseModel) -> Connector:
    _, connector_class = _resolve(name)
    return connector_class(config)  # type: ignore[no-any-return]
