"""Shared fixtures for the MLLP tests: an ACK-ing handler, recorded events, trustme certificates."""
from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme

from simpul.mllp.ack import build_ack
from simpul.mllp.framing import END_BLOCK, START_BLOCK
from simpul.mllp.listener import ListenerEvents
from simpul.v2 import read_header


def hl7(control_id: str, body: str = "PID|1||123^^^RS^MR||DOE^JANE") -> bytes:
    """A small ADT^A01 with the given MSH-10."""
    return (f"MSH|^~\\&|HIS|RS|SIMPUL|HUB|20240501083000||ADT^A01^ADT_A01|{control_id}|P|2.5.1\r"
            f"{body}\r").encode()


class RecordingEvents(ListenerEvents):
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.junk = 0

    def connection_opened(self) -> None:
        self.counts["opened"] += 1

    def connection_closed(self) -> None:
        self.counts["closed"] += 1

    def connection_refused(self) -> None:
        self.counts["refused"] += 1

    def junk_skipped(self, n: int) -> None:
        self.junk += n

    def frame_too_large(self) -> None:
        self.counts["too_large"] += 1

    def timed_out(self, kind: str) -> None:
        self.counts[f"timeout_{kind}"] += 1


class AckingHandler:
    """Answers AA to every message and remembers what it got."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self._ids = itertools.count(1)

    async def __call__(self, payload: bytes) -> bytes | None:
        self.received.append(payload)
        return build_ack(read_header(payload), "AA", ack_control_id=f"A{next(self._ids)}")


class RawClient:
    """A bare MLLP client on asyncio streams, for byte-exact tests of the listener."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, **kwargs: object) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, **kwargs)  # type: ignore[arg-type]
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_frame(self, timeout: float = 5.0) -> bytes:
        block = await asyncio.wait_for(self.reader.readuntil(END_BLOCK), timeout)
        assert block.startswith(START_BLOCK)
        return block[1:-2]

    async def read_eof(self, timeout: float = 5.0) -> bytes:
        """Everything until the server closes; fails the test if it does not close in time."""
        return await asyncio.wait_for(self.reader.read(), timeout)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


@pytest.fixture
def events() -> RecordingEvents:
    return RecordingEvents()


@pytest.fixture
def handler() -> AckingHandler:
    return AckingHandler()


@pytest.fixture
async def clients() -> AsyncIterator[list[RawClient]]:
    opened: list[RawClient] = []
    yield opened
    for client in opened:
        await client.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    ca = trustme.CA()
    folder = tmp_path_factory.mktemp("tls")
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("lis.example.test")
    files = {
        "ca": folder / "ca.pem",
        "server_cert": folder / "server.pem",
        "server_key": folder / "server.key",
        "client_cert": folder / "client.pem",
        "client_key": folder / "client.key",
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.cert_chain_pems[0].write_to_path(str(files["server_cert"]))
    server.private_key_pem.write_to_path(str(files["server_key"]))
    client.cert_chain_pems[0].write_to_path(str(files["client_cert"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    return files
