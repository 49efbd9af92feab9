"""The toy plug-in's peer: a line-protocol server (RETRY = retryable, REJECT = final); its sender."""
from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any, Literal

from tests.connectors.conformance import Peer, Sender


class ToyPeer(Peer):
    connector = "toy"
    secret = "conformance-toy-s3cret"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.port = 0
        self.payloads: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._next: str | None = None
        self._stalled = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            hello = await reader.readline()
            if hello.strip() != f"HELLO {self.secret}".encode():
                writer.write(b"DENIED\n")
                return
            writer.write(b"READY\n")
            while line := await reader.readline():
                verb, _, data = line.strip().partition(b" ")
                assert verb == b"SEND"
                self.payloads.append(base64.b64decode(data))
                if self._stalled:
                    continue
                answer, self._next = self._next or f"OK took {len(self.payloads)}", None
                writer.write(answer.encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def config(self, *, timeout: float) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "token": self.secret, "timeout": timeout}

    def answer_next(self, outcome: Literal["retryable", "final"]) -> None:
        self._next = "RETRY busy" if outcome == "retryable" else "REJECT unknown message type"

    def stall(self, on: bool) -> None:
        self._stalled = on

    def received(self) -> list[bytes]:
        return list(self.payloads)


PEER = ToyPeer


class ToySender(Sender):
    connector = "toy"

    async def send(self, source: Any, raw: bytes, *, timeout: float) -> bytes | None:
        reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
        try:
            writer.write(b"MSG " + base64.b64encode(raw) + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout)
            if not line:
                return None
            verb, _, data = line.strip().partition(b" ")
            return base64.b64decode(data) if verb == b"ACK" else None
        finally:
            writer.close()


SENDER = ToySender
