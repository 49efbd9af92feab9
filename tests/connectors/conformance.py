"""The connector conformance contract: what every registered connector must do.

Every destination the registry knows (built-in or plug-in) is run through `test_conformance.py`
against a real peer on 127.0.0.1; every source with a factory through `test_source_conformance.py`
with a real sender. The peer for connector `<name>` lives in `peers/<name>.py` as a `Peer`
subclass named `PEER` (destinations) and a `Sender` subclass named `SENDER` (sources); a
registered connector without one fails the suite, so a new connector cannot skip it.
"""
from __future__ import annotations

import importlib
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal

from simpul.connectors import registry
from simpul.connectors.base import Outgoing

TOY_PLUGIN = Path(__file__).resolve().parent / "toy_plugin"
PATIENT_MARKER = "ZZCONFORMANCE^PATIENTNAME"   # stands for PHI: must never reach an error or log line


class Peer(ABC):
    """A real server the connector under test talks to, with knobs to make it misbehave."""

    connector: ClassVar[str]
    secret: ClassVar[str | None] = None       # a credential the config carries, if the connector has one
    final_errors: ClassVar[str | None] = None  # why the connector has no final error (None: it has)
    timeouts: ClassVar[str | None] = None      # why a send cannot hang (None: it can, and must time out)

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def stop(self) -> None:
        """Go away the way a peer does when it is shut down: the next send must fail, retryably."""

    @abstractmethod
    def config(self, *, timeout: float) -> dict[str, Any]:
        """The channel YAML mapping under the destination's connector key."""

    @abstractmethod
    def answer_next(self, outcome: Literal["retryable", "final"]) -> None:
        """The next send gets this answer; later ones succeed again (after `heal()`)."""

    async def heal(self) -> None:
        """Undo a fault that does not end by itself after one send (network peers: nothing to do)."""

    @abstractmethod
    def stall(self, on: bool) -> None:
        """While on, the peer takes each send and never answers."""

    @abstractmethod
    def received(self) -> list[bytes]:
        """Every payload the peer has taken, in order (including the ones it answered with an error)."""

    def outgoing(self, number: int) -> Outgoing:
        payload = (f"MSH|^~\\&|SIMPUL|HOSP|RECV|FAC|20240101120000||ADT^A01^ADT_A01|CONF-{number}|P|2.5.1\r"
                   f"PID|1||MR{number}^^^HOSP^MR||{PATIENT_MARKER}\r").encode()
        return Outgoing(payload=payload, content_type="x-application/hl7-v2+er7", control_id=f"CONF-{number}",
                        channel="conformance", destination="out", delivery_id=number, message_type="ADT^A01")

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def finish(self) -> None:
        """After the last stop: remove what the peer left on a shared service (queues, ...)."""


@contextmanager
def toy_plugin_installed() -> Iterator[None]:
    """The toy connector's distribution on sys.path, as `pip install` would leave it."""
    sys.path.insert(0, str(TOY_PLUGIN))
    registry.refresh()
    try:
        yield
    finally:
        sys.path.remove(str(TOY_PLUGIN))
        registry.refresh()


class Sender(ABC):
    """A real client of a source connector: it sends one message and reads what comes back."""

    connector: ClassVar[str]

    def config(self) -> dict[str, Any]:
        """The channel YAML mapping under `source: {<name>: ...}`; port 0 where there is a port."""
        return {"host": "127.0.0.1", "port": 0}

    async def aclose(self) -> None:
        """After the test: remove what the sender left on a shared service (queues, ...)."""

    @abstractmethod
    async def send(self, source: Any, raw: bytes, *, timeout: float) -> bytes | None:
        """Send `raw` to the started `source`; return the ACK the peer got back, None if the source
        closed the connection without one. A refused connection raises OSError."""


def destination_names() -> list[str]:
    with toy_plugin_installed():
        return [spec.name for spec in registry.destinations()]


def source_names() -> list[str]:
    """Sources the engine builds through the registry (http is served by the engine's own server)."""
    with toy_plugin_installed():
        return [spec.name for spec in registry.sources() if spec.create_source is not None]


def _kit(name: str, attribute: str) -> Any:
    try:
        module = importlib.import_module(f"tests.connectors.peers.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"tests.connectors.peers.{name}":
            raise
        return None
    kit = getattr(module, attribute, None)
    assert kit is None or kit.connector == name
    return kit


def peer_for(name: str, tmp_path: Path) -> Peer | None:
    peer_class: type[Peer] | None = _kit(name, "PEER")
    return peer_class(tmp_path) if peer_class is not None else None


def sender_for(name: str) -> Sender | None:
    sender_class: type[Sender] | None = _kit(name, "SENDER")
    return sender_class() if sender_class is not None else None
