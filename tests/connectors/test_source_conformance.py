"""The contract of every source connector the engine builds from the registry (mllp, the toy plug-in).

`receive` here is the boundary the engine's ingest sits behind: it gets the raw message and returns
the ACK. What the engine relies on:
- start/close are repeatable and a restarted source serves again; close is idempotent;
- the exact bytes reach `receive`, and exactly what it returns reaches the sender;
- when `receive` fails (nothing committed), the sender gets no ACK, and the source keeps serving;
- after close, nothing is accepted;
- no message content in a log line.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from simpul.connectors import registry

from tests.connectors.conformance import PATIENT_MARKER, Sender

TIMEOUT = 5.0
MESSAGE = (f"MSH|^~\\&|LIS|LAB|SIMPUL|RSUD|20240101120000||ADT^A01^ADT_A01|SRC-1|P|2.5.1\r"
           f"PID|1||MR1^^^RSUD^MR||{PATIENT_MARKER}\r").encode()
ACK = b"MSH|^~\\&|SIMPUL|RSUD|LIS|LAB|20240101120001||ACK^A01^ACK|ACK-SRC-1|P|2.5.1\rMSA|AA|SRC-1\r"


class Receiver:
    """Stands where the engine's ingest stands: records each message and answers a fixed ACK."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.failing = False

    async def __call__(self, raw: bytes) -> bytes | None:
        self.received.append(raw)
        if self.failing:
            raise RuntimeError("store unavailable")
        return ACK


@pytest.fixture
async def started(source_name: str, sender: Sender) -> AsyncIterator[tuple[Any, Receiver]]:
    spec = registry.spec(source_name)
    assert spec.source is not None and spec.create_source is not None
    receiver = Receiver()
    source = spec.create_source(spec.source.model_validate(sender.config()), receiver)
    await source.start()
    yield source, receiver
    await source.close()


async def test_the_exact_message_reaches_receive_and_its_ack_reaches_the_sender(
        started: tuple[Any, Receiver], sender: Sender) -> None:
    source, receiver = started
    assert await sender.send(source, MESSAGE, timeout=TIMEOUT) == ACK
    assert await sender.send(source, MESSAGE.replace(b"SRC-1", b"SRC-2"), timeout=TIMEOUT) == ACK
    assert receiver.received == [MESSAGE, MESSAGE.replace(b"SRC-1", b"SRC-2")]


async def test_start_and_close_twice_then_serve_again(started: tuple[Any, Receiver], sender: Sender) -> None:
    source, receiver = started
    port = getattr(source, "port", None)
    await source.close()
    await source.close()
    if port:    # a listening source: its port no longer accepts
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
    await source.start()
    await source.start()
    assert await sender.send(source, MESSAGE, timeout=TIMEOUT) == ACK
    assert receiver.received == [MESSAGE]


async def test_a_failed_receive_gets_no_ack_and_the_source_keeps_serving(
        started: tuple[Any, Receiver], sender: Sender, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    source, receiver = started
    receiver.failing = True
    assert await sender.send(source, MESSAGE, timeout=TIMEOUT) is None
    receiver.failing = False
    assert await sender.send(source, MESSAGE, timeout=TIMEOUT) == ACK
    assert receiver.received == [MESSAGE, MESSAGE]
    assert PATIENT_MARKER not in caplog.text + "".join(str(record.args) for record in caplog.records)
