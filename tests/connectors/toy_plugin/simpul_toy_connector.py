"""toy: a line protocol over TCP, both ways (a connector added by one file, for tests).

Features
    Source: listens; each `MSG <base64 message>` line is ingested and answered `ACK <base64 ack>`
    (or `NOACK` when the message asked for none).
    Destination: one persistent connection, opened lazily and reopened after any failure.
Connection
    host, port; as a destination, `token` authenticates the connection (use ${VAR}).
Options
    timeout (destination).
Errors
    refused or dropped connections, timeouts, `RETRY` answers: retryable; `REJECT` answers and a
    refused token: final.

Destination protocol (one line each way): `HELLO <token>` -> `READY` | `DENIED`, then per delivery
`SEND <base64 payload>` -> `OK <text>` | `RETRY <reason>` | `REJECT <reason>`.
"""
from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from simpul.config_types import Duration
from simpul.connectors.base import ConnectorSpec, Outgoing, Receive
from simpul.errors import ConnectorRejected, ConnectorUnavailable


class ToySourceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(ge=0, le=65535, description="TCP port (0 picks a free one).")


class ToySource:
    def __init__(self, config: ToySourceConfig, receive: Receive) -> None:
        self.config = config
        self.receive = receive
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        return int(self._server.sockets[0].getsockname()[1]) if self._server is not None else 0

    async def start(self) -> None:
        await self.close()
        self._server = await asyncio.start_server(self._serve, self.config.host, self.config.port)

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while line := await reader.readline():
                verb, _, data = line.strip().partition(b" ")
                if verb != b"MSG":
                    break
                try:
                    ack = await self.receive(base64.b64decode(data))
                except Exception:   # noqa: BLE001 - nothing committed, so nothing is acknowledged
                    break
                writer.write(b"NOACK\n" if ack is None else b"ACK " + base64.b64encode(ack) + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


class ToyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Toy server host.")
    port: int = Field(ge=1, le=65535, description="Toy server port.")
    token: str = Field(description="Shared secret sent on connect; use ${VAR}.")
    timeout: Duration = Field(5.0, description="Deadline for connecting and for each answer.")


class ToyDestination:
    def __init__(self, config: ToyConfig) -> None:
        self.config = config
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._encode: Callable[[bytes], bytes] | None = None

    async def connect(self) -> None:
        # a heavy optional library in a real connector: loaded only when a channel uses this one
        import simpul_toy_codec

        self._encode = simpul_toy_codec.encode
        await self.close()
        where = f"{self.config.host}:{self.config.port}"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.config.host, self.config.port), self.config.timeout)
            writer.write(f"HELLO {self.config.token}\n".encode())
            answer = await asyncio.wait_for(reader.readline(), self.config.timeout)
        except (OSError, TimeoutError) as exc:
            raise ConnectorUnavailable(f"toy server {where} unreachable ({type(exc).__name__})") from exc
        if answer.strip() != b"READY":
            writer.close()
            if answer.strip() == b"DENIED":
                raise ConnectorRejected(f"toy server {where} refused the token")
            raise ConnectorUnavailable(f"toy server {where} closed the connection before READY")
        self._streams = reader, writer

    async def send(self, outgoing: Outgoing) -> str:
        if self._streams is None:
            await self.connect()
        assert self._streams is not None and self._encode is not None
        reader, writer = self._streams
        try:
            writer.write(b"SEND " + self._encode(outgoing.payload) + b"\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.readline(), self.config.timeout)
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise ConnectorUnavailable(f"toy server failed for message {outgoing.control_id} "
                                       f"({type(exc).__name__})") from exc
        if not answer:
            await self.close()
            raise ConnectorUnavailable(f"toy server closed the connection before answering message "
                                       f"{outgoing.control_id}")
        verb, _, text = answer.decode("utf-8", "replace").strip().partition(" ")
        if verb == "OK":
            return text
        if verb == "REJECT":
            raise ConnectorRejected(f"toy server rejected message {outgoing.control_id}", response=text)
        await self.close()
        raise ConnectorUnavailable(f"toy server asked to retry message {outgoing.control_id}", response=text)

    async def close(self) -> None:
        if self._streams is not None:
            _, writer = self._streams
            self._streams = None
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass


CONNECTOR = ConnectorSpec(
    name="toy", source=ToySourceConfig, create_source=ToySource,
    source_description="Listen for the toy line protocol (a plug-in, for tests).",
    destination=ToyConfig, create_destination=ToyDestination,
    destination_description="Send each payload to a toy line-protocol server (a plug-in, for tests).")
