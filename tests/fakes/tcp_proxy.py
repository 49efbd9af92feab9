"""A TCP proxy on 127.0.0.1 in front of a real service, to make the service look down or stalled.

`stop()` closes the listening socket and cuts every proxied connection (the service "went away");
`start()` listens again on the same port. `stall(True)` holds every byte either way (a peer that
takes a request and never answers) until `stall(False)`; `stall_upstream(True)` holds only what
the client sends (a consumer's acks never reach the broker). Held bytes of a connection that
closes are dropped, and a closed side closes the other at once, as a dead process's would.
"""
from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._to_upstream = asyncio.Event()
        self._to_client = asyncio.Event()
        self._to_upstream.set()
        self._to_client.set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        await asyncio.sleep(0)

    def stall(self, on: bool) -> None:
        self.stall_upstream(on)
        if on:
            self._to_client.clear()
        else:
            self._to_client.set()

    def stall_upstream(self, on: bool) -> None:
        if on:
            self._to_upstream.clear()
        else:
            self._to_upstream.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        pumps = [asyncio.ensure_future(self._pump(reader, up_writer, self._to_upstream)),
                 asyncio.ensure_future(self._pump(up_reader, writer, self._to_client))]
        # Either side closing ends both, whatever is held.
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        for one in (writer, up_writer):
            self._writers.discard(one)
            one.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flowing: asyncio.Event) -> None:
        held = bytearray()
        arrived = asyncio.Event()

        async def flush() -> None:
            while True:
                await arrived.wait()
                arrived.clear()
                await flowing.wait()
                if held:
                    data = bytes(held)
                    held.clear()
                    writer.write(data)
                    await writer.drain()

        flusher = asyncio.ensure_future(flush())
        try:
            while data := await reader.read(65536):
                held += data
                arrived.set()
                if flusher.done():
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            flusher.cancel()
            with contextlib.suppress(BaseException):
                await flusher
