"""The MLLP destination's peer: FakeLis, an independent MLLP receiver (AE = retryable, AR = final).
The MLLP source's sender: a plain socket that frames by hand (not simpul.mllp)."""
from __future__ import annotations

import asyncio

from pathlib import Path
from typing import Any, Literal

from tests.connectors.conformance import Peer, Sender
from tests.fakes.fake_lis import FakeLis


class _SamePortLis(FakeLis):
    """FakeLis that binds a given port, so a restarted receiver comes back where it was."""

    def __init__(self, *, port: int, **knobs: Any) -> None:
        super().__init__(**knobs)
        self.requested_port = port

    async def start(self) -> FakeLis:
        self._server = await asyncio.start_server(self._serve, self.host, self.requested_port, ssl=self.ssl)
        return self


class MllpPeer(Peer):
    connector = "mllp"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.port = 0
        self.lis: FakeLis | None = None
        self._earlier: list[bytes] = []
        self._next: str | None = None
        self._stalled = False

    def _answer(self, _index: int, _payload: bytes) -> str | None:
        if self._stalled:
            return None
        code, self._next = self._next or "AA", None
        return code

    async def start(self) -> None:
        self.lis = await _SamePortLis(answer=self._answer, port=self.port).start()
        self.port = self.lis.port

    async def stop(self) -> None:
        if self.lis is not None:
            await self.lis.stop()
            self._earlier += self.lis.received
            self.lis = None

    def config(self, *, timeout: float) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "connect_timeout": timeout, "response_timeout": timeout}

    def answer_next(self, outcome: Literal["retryable", "final"]) -> None:
        self._next = "AE" if outcome == "retryable" else "AR"

    def stall(self, on: bool) -> None:
        self._stalled = on

    def received(self) -> list[bytes]:
        return self._earlier + (self.lis.received if self.lis is not None else [])


PEER = MllpPeer


class MllpSender(Sender):
    connector = "mllp"

    async def send(self, source: Any, raw: bytes, *, timeout: float) -> bytes | None:
        reader, writer = await asyncio.open_connection("127.0.0.1", source.port)
        try:
            writer.write(b"\x0b" + raw + b"\x1c\r")
            await writer.drain()
            try:
                framed = await asyncio.wait_for(reader.readuntil(b"\x1c\r"), timeout)
            except asyncio.IncompleteReadError:
                return None
            return framed[framed.index(b"\x0b") + 1:-2]
        finally:
            writer.close()


SENDER = MllpSender
