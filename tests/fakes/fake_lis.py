"""FakeLis: a fault-injecting MLLP peer on loopback, for testing senders and MLLP destinations.

It deliberately does not reuse ``simpul.mllp`` (framing, ACK building): a test that talks to it checks
our code against an independent reading of the protocol.

    async with FakeLis(nack_every=3, nack_code="AR") as lis:
        conn = await open_mllp_connection("127.0.0.1", lis.port)
        ...
        assert len(lis.received) == 3

Knobs (``every`` counts messages 1-based across all connections; 0 = never):

* ``ack_code``: the code for ordinary answers (default AA).
* ``ack_codes``: a code per message, by 0-based arrival index; messages past the list use the rules below.
* ``answer``: ``callable(index, payload) -> code | None`` overriding every other rule (None: no answer).
* ``nack_every`` / ``nack_code``: answer ``nack_code`` (AE by default) to every n-th message.
* ``ack_delay``: seconds to wait before each answer.
* ``close_before_ack_every``: close the connection (FIN) instead of answering every n-th message.
* ``reset_before_ack_every``: reset the connection (RST) instead of answering every n-th message.
* ``drop_start_block_every``: send the answer without its 0x0B start block.
* ``drop_end_block_every``: send the answer without its 0x1C 0x0D end block.
* ``wrong_control_id_every``: answer with an MSA-2 that does not echo MSH-10.
* ``no_answer_every``: never answer every n-th message (the connection stays open).
* ``ssl``: an ``ssl.SSLContext`` to serve MLLP over TLS.
* ``order_answer``: ``callable(control_id, payload) -> segments`` appended after MSA, and the answer
  becomes an ORL^O22 (e.g. ``ORC|OK|<placer>|<filler>||IP``): the application acknowledgement a LIS
  gives to an order, carrying its filler number and status.

Sending results: ``await lis.send_to(port, message)`` delivers an ORU (or a status update) to the
engine's MLLP listener with Simpul's own MLLP sender, the way a LIS built on our library would, and
returns the engine's ACK. ``order_result(...)`` builds such an ORU for an order that was received.

Inspection: ``received`` (every payload, in arrival order, answered or not), ``received_on`` (the
1-based connection number of each), ``answered``, ``connections_accepted``, ``open_connections``.
"""
from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable, Sequence

from simpul.mllp.sender import open_mllp_connection

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\r"

__all__ = ["FakeLis"]


def _every(n: int, index: int) -> bool:
    return n > 0 and index % n == 0


def _control_id(payload: bytes) -> bytes:
    msh = payload.lstrip().split(b"\r", 1)[0].split(b"\n", 1)[0]
    if not msh.startswith(b"MSH") or len(msh) < 4:
        return b""
    fields = msh.split(msh[3:4])
    return fields[9] if len(fields) > 9 else b""


class FakeLis:
    """A lab system that receives HL7 over MLLP and answers the way the knobs say."""

    def __init__(
        self,
        *,
        ack_code: str = "AA",
        ack_codes: Sequence[str] = (),
        answer: Callable[[int, bytes], str | None] | None = None,
        nack_every: int = 0,
        nack_code: str = "AE",
        ack_delay: float = 0.0,
        close_before_ack_every: int = 0,
        reset_before_ack_every: int = 0,
        drop_start_block_every: int = 0,
        drop_end_block_every: int = 0,
        wrong_control_id_every: int = 0,
        no_answer_every: int = 0,
        host: str = "127.0.0.1",
        ssl: ssl_module.SSLContext | None = None,
        order_answer: Callable[[bytes, bytes], Sequence[str]] | None = None,
    ) -> None:
        self.order_answer = order_answer
        self.ack_code = ack_code
        self.ack_codes = list(ack_codes)
        self.answer = answer
        self.nack_every = nack_every
        self.nack_code = nack_code
        self.ack_delay = ack_delay
        self.close_before_ack_every = close_before_ack_every
        self.reset_before_ack_every = reset_before_ack_every
        self.drop_start_block_every = drop_start_block_every
        self.drop_end_block_every = drop_end_block_every
        self.wrong_control_id_every = wrong_control_id_every
        self.no_answer_every = no_answer_every
        self.host = host
        self.ssl = ssl
        self.received: list[bytes] = []  # payloads in arrival order
        self.received_on: list[int] = []  # for each payload, the 1-based number of its connection
        self.answered: list[str] = []  # the MSA-1 code of every answer actually sent
        self.connections_accepted = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "FakeLis is not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> FakeLis:
        self._server = await asyncio.start_server(self._serve, self.host, 0, ssl=self.ssl,
                                                  limit=16 * 1024 * 1024)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if self._server is not None:
            await self._server.wait_closed()

    @property
    def open_connections(self) -> int:
        """Connections whose handler still runs (a peer that died is counted until its EOF is read)."""
        return len(self._writers)

    async def __aenter__(self) -> FakeLis:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def send_to(self, port: int, message: bytes, host: str = "127.0.0.1", timeout: float = 5.0) -> bytes:
        """Send one message (a result, a status update) to an engine listener; returns its ACK."""
        connection = await open_mllp_connection(host, port, response_timeout=timeout)
        try:
            return await connection.send(message)
        finally:
            await connection.close()

    def _code_for(self, index: int, payload: bytes) -> str | None:
        if self.answer is not None:
            return self.answer(index, payload)
        if index <= len(self.ack_codes):
            return self.ack_codes[index - 1]
        if _every(self.nack_every, index):
            return self.nack_code
        return self.ack_code

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connections_accepted += 1
        connection_number = self.connections_accepted
        try:
            while True:
                block = await reader.readuntil(END_BLOCK)
                start = block.find(START_BLOCK)
                if start < 0:
                    continue  # junk without a start block
                payload = block[start + 1:-len(END_BLOCK)]
                self.received.append(payload)
                self.received_on.append(connection_number)
                index = len(self.received)
                if _every(self.reset_before_ack_every, index):
                    writer.transport.abort()
                    break
                if _every(self.close_before_ack_every, index):
                    writer.close()
                    break
                code = self._code_for(index, payload)
                if code is None or _every(self.no_answer_every, index):
                    continue
                if self.ack_delay:
                    await asyncio.sleep(self.ack_delay)
                control_id = _control_id(payload)
                if _every(self.wrong_control_id_every, index):
                    control_id += b"-WRONG"
                kind = b"ACK^R01^ACK"
                extra = b""
                if self.order_answer is not None and code in ("AA", "CA"):
                    segments = self.order_answer(control_id, payload)
                    if segments:
                        kind = b"ORL^O22^ORL_O22"
                        extra = "".join(f"{segment}\r" for segment in segments).encode()
                ack = (b"MSH|^~\\&|FAKE_LIS|LAB|||20240101120000||" + kind + b"|ACK" + control_id
                       + b"|P|2.5.1\rMSA|" + code.encode() + b"|" + control_id
                       + b"|fake lis answered " + code.encode() + b"\r" + extra)
                start_block = b"" if _every(self.drop_start_block_every, index) else START_BLOCK
                end = b"" if _every(self.drop_end_block_every, index) else END_BLOCK
                writer.write(start_block + ack + end)
                await writer.drain()
                self.answered.append(code)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                ssl_module.SSLError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.transport.abort()


def order_result(control_id: str, *, placer: str, filler: str, code: str = "2823-3^Potassium^LN",
                 status: str = "F", value: str = "4.1", flag: str = "N", patient: str = "MR001",
                 collected: str = "20261126081500+0700") -> bytes:
    """An ORU^R01 from the fake LIS for one order: OBR-25 `status` (P, F, C), one OBX with `flag` (OBX-8)."""
    segments = [f"MSH|^~\\&|FAKE_LIS|LAB|SIMPUL|RSUD|20261126101500+0700||ORU^R01^ORU_R01|{control_id}|P|2.5.1",
                f"PID|1||{patient}^^^RSUD^MR||Suharto^Budi||19800517|M",
                f"ORC|RE|{placer}|{filler}||CM",
                f"OBR|1|{placer}|{filler}|{code}|||{collected}||||||||||||||||||{status}",
                f"OBX|1|NM|{code}||{value}|mmol/L^mmol/L^UCUM|3.5-5.1|{flag}|||{status}"]
    return ("\r".join(segments) + "\r").encode()
