"""The MLLP listener: an asyncio server that turns a byte stream into calls of one handler.

Lifecycle of a connection::

    accepted ─(over max_connections: closed at once, counted as refused)
       │
    reading ── frames decoded ──► queue ──► handler(payload) one at a time ──► ACK written in order
       │
    closed on: peer EOF (after the queued answers are written, plain TCP only), idle_timeout without
    a byte, a frame left incomplete for frame_timeout, a handler over handler_timeout, an oversize
    frame (after answering AR), a handler exception, or MllpServer.close().

The handler receives one unframed payload and returns the unframed ACK (or None: answer nothing).
It is awaited strictly in order per connection. Deadlines are checked by one server-wide timer
every quarter of the shortest timeout (at most every second), so the data path never touches a
timer. A Protocol (not Streams) is used: ``transport.write`` without a StreamWriter per message is
measurably cheaper at thousands of messages per second.
"""
from __future__ import annotations

import asyncio
import logging
import ssl as ssl_module
import traceback
import uuid
from collections import deque
from typing import Awaitable, Callable

from pydantic import BaseModel, ConfigDict, Field

from simpul.errors import FrameTooLarge, HeaderError, MessageError
from simpul.v2 import read_header

from .ack import build_ack
from .framing import DEFAULT_MAX_FRAME_BYTES, END_BLOCK, START_BLOCK, FrameDecoder

__all__ = ["Handler", "ListenerSettings", "ListenerEvents", "MllpServer", "start_mllp_server"]

logger = logging.getLogger("simpul.mllp.listener")

Handler = Callable[[bytes], Awaitable[bytes | None]]

# Stop reading from a peer that pipelines this many unanswered frames; resume below the low mark.
_QUEUE_HIGH = 256
_QUEUE_LOW = 64


class ListenerSettings(BaseModel):
    """Limits of an MLLP listener (``source.mllp`` in a channel file)."""

    model_config = ConfigDict(extra="forbid")

    max_frame_bytes: int = Field(
        default=DEFAULT_MAX_FRAME_BYTES, ge=1,
        description="Largest accepted message in bytes. A larger frame is answered with AR "
                    "(when its MSH is readable) and the connection is closed.")
    idle_timeout: float = Field(
        default=600.0, gt=0,
        description="Seconds a connection may stay silent (no byte at all) before it is closed.")
    frame_timeout: float = Field(
        default=30.0, gt=0,
        description="Seconds a started frame may stay incomplete before the connection is closed.")
    max_connections: int = Field(
        default=200, ge=1,
        description="Open connections allowed at once; a connection over the cap is closed at once.")
    handler_timeout: float = Field(
        default=60.0, gt=0,
        description="Seconds the engine may take to answer one message before the connection is "
                    "closed without an ACK (the sender then resends).")


class ListenerEvents:
    """Hooks the engine overrides to count metrics. Called on the event loop; keep them cheap."""

    def connection_opened(self) -> None: ...

    def connection_closed(self) -> None: ...

    def connection_refused(self) -> None: ...

    def junk_skipped(self, n: int) -> None: ...

    def frame_too_large(self) -> None: ...

    def timed_out(self, kind: str) -> None:
        """``kind`` is "idle", "frame" or "handler"."""


class _Oversize:
    __slots__ = ("prefix",)

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix


class _MllpProtocol(asyncio.Protocol):
    """One accepted connection."""

    __slots__ = (
        "_server", "_loop", "_decoder", "_queue", "_worker", "_transport", "_peer", "_registered",
        "_last_rx", "_frame_started", "_handling_since", "_lost", "_stopping", "_eof",
        "_read_paused", "_write_paused", "_write_waiter", "_keep_open_on_eof", "_ignore_input",
    )

    def __init__(self, server: MllpServer) -> None:
        self._server = server
        self._loop = server._loop
        self._decoder = FrameDecoder(server.settings.max_frame_bytes)
        self._queue: deque[bytes | _Oversize] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._peer = "?"
        self._registered = False
        self._last_rx = 0.0
        self._frame_started = 0.0
        self._handling_since: float | None = None
        self._lost = False  # transport gone: nothing can be written any more
        self._stopping = False  # answer what is in hand, then close
        self._eof = False
        self._ignore_input = False  # after an oversize frame or while the server stops
        self._read_paused = False
        self._write_paused = False
        self._write_waiter: asyncio.Future[None] | None = None
        self._keep_open_on_eof = True

    # -- transport callbacks -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        server = self._server
        if server._closing or len(server._connections) >= server.settings.max_connections:
            self._lost = True
            transport.abort()
            server.events.connection_refused()
            return
        self._transport = transport
        self._registered = True
        peer = transport.get_extra_info("peername")
        if peer:
            self._peer = f"{peer[0]}:{peer[1]}"
        # Returning True from eof_received is not supported on SSL transports.
        self._keep_open_on_eof = transport.get_extra_info("sslcontext") is None
        self._last_rx = self._loop.time()
        server._connections.add(self)
        server.events.connection_opened()

    def data_received(self, data: bytes) -> None:
        if self._ignore_input or self._lost:
            return
        decoder = self._decoder
        now = self._loop.time()
        self._last_rx = now
        was_partial = decoder.partial
        junk_before = decoder.junk_bytes
        try:
            frames = decoder.feed(data)
        except FrameTooLarge as exc:
            frames = exc.frames  # type: ignore[attr-defined]
            self._queue.extend(frames)
            self._queue.append(_Oversize(decoder.oversize_prefix))
            self._ignore_input = True  # the stream cannot be trusted past this point
            self._pause_reading()
            self._server.events.frame_too_large()
            self._start_worker()
            return
        finally:
            junk = decoder.junk_bytes - junk_before
            if junk:
                self._server.events.junk_skipped(junk)
        if decoder.partial and (frames or not was_partial):
            self._frame_started = now
        if frames:
            queue = self._queue
            queue.extend(frames)
            if self._worker is None:
                self._start_worker()
            if len(queue) >= _QUEUE_HIGH:
                self._pause_reading()

    def eof_received(self) -> bool | None:
        self._eof = True
        if self._worker is not None and self._keep_open_on_eof:
            return True  # keep the write side open: queued answers still go out, then we close
        return None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._queue.clear()  # the peer will never see those answers; it resends them
        self._wake_writer()
        if self._registered:
            self._registered = False
            self._server._connections.discard(self)
            self._server.events.connection_closed()
            self._server._connection_gone()

    # -- worker ----------------------------------------------------------------------------------

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = self._loop.create_task(self._drain())

    async def _drain(self) -> None:
        handler = self._server._handler
        queue = self._queue
        transport = self._transport
        assert transport is not None
        try:
            while queue:
                item = queue.popleft()
                if type(item) is _Oversize:
                    self._answer_oversize(item.prefix)
                    return
                assert isinstance(item, bytes)
                self._handling_since = self._loop.time()
                ack = await handler(item)
                self._handling_since = None
                if self._lost:
                    return
                if ack is not None:
                    transport.write(b"".join((START_BLOCK, ack, END_BLOCK)))
                    if self._write_paused:
                        self._write_waiter = self._loop.create_future()
                        await self._write_waiter
                        self._write_waiter = None
                        if self._lost:
                            return
                if self._stopping:
                    self._close()
                    return
                if self._read_paused and len(queue) <= _QUEUE_LOW and not self._ignore_input:
                    self._read_paused = False
                    transport.resume_reading()
            if self._eof or self._stopping:
                self._close()
        except asyncio.CancelledError:
            self._close(abort=True)
            raise
        except Exception as exc:  # the engine's handler should never raise; never kill the server
            logger.error("MLLP handler raised %s on connection from %s; closing it\n%s",
                         type(exc).__name__, self._peer, "".join(traceback.format_tb(exc.__traceback__)))
            self._close(abort=True)
        finally:
            self._handling_since = None
            self._worker = None

    def _answer_oversize(self, prefix: bytes) -> None:
        limit = self._server.settings.max_frame_bytes
        try:
            header = read_header(prefix)
        except HeaderError:
            logger.warning("MLLP frame over %d bytes from %s with no readable MSH; closing",
                           limit, self._peer)
        else:
            logger.warning("MLLP message %s from %s exceeds %d bytes; answering AR and closing",
                           header.control_id, self._peer, limit)
            error = MessageError(f"message exceeds the size limit of {limit} bytes",
                                 hl7_error_code="207")
            ack = build_ack(header, "AR", error=error, text="message too large",
                            ack_control_id=uuid.uuid4().hex[:20])
            if not self._lost and self._transport is not None:
                self._transport.write(b"".join((START_BLOCK, ack, END_BLOCK)))
        self._close()

    # -- helpers ---------------------------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._read_paused and not self._lost and self._transport is not None:
            self._read_paused = True
            self._transport.pause_reading()

    def _wake_writer(self) -> None:
        waiter = self._write_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _close(self, abort: bool = False) -> None:
        """Close the connection; ``transport.close`` still flushes what was written."""
        self._stopping = True
        self._ignore_input = True
        transport = self._transport
        if transport is not None and not self._lost:
            if abort:
                transport.abort()
            else:
                transport.close()

    def _check_deadlines(self, now: float) -> None:
        """Called by the server timer: enforce the handler, frame and idle deadlines."""
        settings = self._server.settings
        events = self._server.events
        if self._handling_since is not None:
            if now - self._handling_since >= settings.handler_timeout:
                logger.warning("MLLP handler took over %.0f s on connection from %s; closing",
                               settings.handler_timeout, self._peer)
                events.timed_out("handler")
                if self._worker is not None:
                    self._worker.cancel()
                self._close(abort=True)
            return
        if self._decoder.partial and not self._read_paused:
            if now - self._frame_started >= settings.frame_timeout:
                logger.info("MLLP frame from %s incomplete after %.0f s; closing",
                            self._peer, settings.frame_timeout)
                events.timed_out("frame")
                self._close(abort=True)
                return
        if now - self._last_rx >= settings.idle_timeout:
            if self._stopping:  # already closing but the peer does not take our last bytes
                self._close(abort=True)
                return
            logger.info("MLLP connection from %s idle for %.0f s; closing",
                        self._peer, settings.idle_timeout)
            events.timed_out("idle")
            self._close()


class MllpServer:
    """A running MLLP listener. Create with :func:`start_mllp_server`; stop with :meth:`close`."""

    def __init__(self, handler: Handler, settings: ListenerSettings, events: ListenerEvents) -> None:
        self.settings = settings
        self.events = events
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        self._server: asyncio.Server | None = None
        self._connections: set[_MllpProtocol] = set()
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None
        self._all_gone: asyncio.Future[None] | None = None
        self._address: tuple[str, int] = ("", 0)
        shortest = min(settings.idle_timeout, settings.frame_timeout, settings.handler_timeout)
        self._tick = min(1.0, shortest / 4)

    @property
    def port(self) -> int:
        """The bound TCP port (useful after binding port 0)."""
        return self._address[1]

    @property
    def host(self) -> str:
        return self._address[0]

    @property
    def connection_count(self) -> int:
        """Connections currently open (refused ones are not counted)."""
        return len(self._connections)

    async def _start(self, host: str, port: int, ssl: ssl_module.SSLContext | None) -> None:
        self._server = await self._loop.create_server(
            lambda: _MllpProtocol(self), host, port, ssl=ssl,
            ssl_handshake_timeout=max(1.0, self.settings.frame_timeout) if ssl else None,
            reuse_address=True, backlog=max(100, self.settings.max_connections))
        name = self._server.sockets[0].getsockname()
        self._address = (str(name[0]), int(name[1]))
        self._timer = self._loop.call_later(self._tick, self._on_tick)

    def _on_tick(self) -> None:
        now = self._loop.time()
        for connection in list(self._connections):
            connection._check_deadlines(now)
        if not self._closing:
            self._timer = self._loop.call_later(self._tick, self._on_tick)

    def _connection_gone(self) -> None:
        if not self._connections and self._all_gone is not None and not self._all_gone.done():
            self._all_gone.set_result(None)

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, let in-flight handlers finish and answer (up to ``grace`` seconds),
        drop frames not yet started (their senders resend), close every connection, and wait."""
        if self._closing:
            return
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            self._server.close()
        workers = []
        for connection in list(self._connections):
            connection._stopping = True
            connection._ignore_input = True
            connection._pause_reading()
            connection._queue.clear()
            if connection._worker is not None:
                workers.append(connection._worker)
            else:
                connection._close()
        if workers:
            _, stuck = await asyncio.wait(workers, timeout=grace)
            for worker in stuck:  # a handler past the grace period: cancel it, leak no task
                worker.cancel()
            if stuck:
                await asyncio.wait(stuck, timeout=1.0)
        if self._connections:
            self._all_gone = self._loop.create_future()
            for connection in list(self._connections):
                connection._close(abort=connection._worker is not None)
            try:
                await asyncio.wait_for(asyncio.shield(self._all_gone), timeout=max(grace, 1.0))
            except asyncio.TimeoutError:
                for connection in list(self._connections):
                    connection._close(abort=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> MllpServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def start_mllp_server(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    settings: ListenerSettings | None = None,
    ssl: ssl_module.SSLContext | None = None,
    events: ListenerEvents | None = None,
) -> MllpServer:
    """Start listening; returns once the socket is bound (read ``.port`` when binding port 0)."""
    server = MllpServer(handler, settings or ListenerSettings(), events or ListenerEvents())
    await server._start(host, port, ssl)
    return server
