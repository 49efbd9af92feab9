"""The MLLP listeners of the engine, one per source, each with its own Ingest and dedup index.

Channels that name the same host:port share one listener. `ListenerSet.apply` starts what is
new, stops what went away, restarts a listener only when its settings changed, and leaves the
others (and their open connections) alone: that is what makes hot reload safe for senders.
Used by the engine process itself, or by the separate ingest process (engine/ingest_process.py).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Connection, select

from simpul.connectors.http import HttpSource
from simpul.connectors.mllp import MllpSource
from simpul.engine.config.channel import Channel
from simpul.engine.http_source import HttpSourceServer
from simpul.engine.ingest import DedupIndex, Ingest, _Seen
from simpul.engine.metrics import IngestMetrics
from simpul.engine.store.schema import messages
from simpul.engine.store.writer import StoreWriter
from simpul.errors import ConfigError
from simpul.mllp.listener import ListenerEvents, ListenerSettings, MllpServer, start_mllp_server
from simpul.mllp.tls import server_ssl_context

log = logging.getLogger("simpul.listeners")

Read = Callable[[Callable[[Connection], Any]], Awaitable[Any]]


def source_key(channel: Channel) -> str:
    # Port 0 (tests) means "any free port": such a listener is the channel's own.
    http = channel.source.settings
    if isinstance(http, HttpSource):
        return f"http:{http.host}:{http.port}{http.path}" if http.port else f"http:{channel.name}{http.path}"
    mllp = channel.source.settings
    if not isinstance(mllp, MllpSource):
        raise ConfigError(f"channel {channel.name}: the engine has no listener for a "
                          f"'{channel.source.kind}' source yet")
    return f"mllp:{mllp.host}:{mllp.port}" if mllp.port else f"mllp:{channel.name}"


def wanted_listeners(channels: list[Channel]) -> dict[str, MllpSource | HttpSource]:
    # source_key refuses a source kind without a listener, so every value here is one of the two
    return {source_key(channel): cast(MllpSource | HttpSource, channel.source.settings)
            for channel in channels if channel.enabled}


class _CountingEvents(ListenerEvents):
    def __init__(self, metrics: IngestMetrics, source: str) -> None:
        self._connections = metrics.connections.labels(source)
        self._junk = metrics.junk_bytes.labels(source)
        self._events = metrics.listener_events
        self._source = source

    def connection_opened(self) -> None:
        self._connections.inc()

    def connection_closed(self) -> None:
        self._connections.dec()

    def connection_refused(self) -> None:
        self._events.labels(self._source, "refused").inc()

    def junk_skipped(self, n: int) -> None:
        self._junk.inc(n)

    def frame_too_large(self) -> None:
        self._events.labels(self._source, "frame_too_large").inc()

    def timed_out(self, kind: str) -> None:
        self._events.labels(self._source, f"timeout_{kind}").inc()


@dataclass
class Listener:
    settings: MllpSource
    server: MllpServer
    ingest: Ingest


_LISTENER_FIELDS = set(ListenerSettings.model_fields)


class ListenerSet:
    def __init__(self, writer: StoreWriter, metrics: IngestMetrics, read: Read,
                 on_committed: Callable[[], Any]) -> None:
        self.writer = writer
        self.metrics = metrics
        self.read = read
        self.on_committed = on_committed
        self.listeners: dict[str, Listener] = {}
        # HL7 over HTTP: one server per host:port, one route (with its Ingest) per source path.
        self.http_servers: dict[tuple[str, int, str], HttpSourceServer] = {}
        self.http_sources: dict[str, tuple[HttpSource, tuple[str, int, str]]] = {}

    def ports(self) -> dict[str, int]:
        ports = {key: listener.server.port for key, listener in self.listeners.items()}
        ports.update({key: self.http_servers[server].port for key, (_, server) in self.http_sources.items()})
        return ports

    async def apply(self, wanted: dict[str, MllpSource | HttpSource], *, wait_for_ports: float = 0.0) -> None:
        """Start, stop or restart listeners to match `wanted`.

        `wait_for_ports`: at start-up after a crash, the dying process may hold a port for a
        moment longer; keep trying that long before giving up (0 on reload: fail at once).
        """
        deadline = asyncio.get_running_loop().time() + wait_for_ports
        while True:
            try:
                return await self._apply(wanted)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or asyncio.get_running_loop().time() >= deadline:
                    raise
                await asyncio.sleep(0.2)

    async def _apply(self, wanted: dict[str, MllpSource | HttpSource]) -> None:
        mllp = {key: settings for key, settings in wanted.items() if isinstance(settings, MllpSource)}
        http = {key: settings for key, settings in wanted.items() if isinstance(settings, HttpSource)}
        for key in list(self.listeners):
            if key not in mllp or self.listeners[key].settings != mllp[key]:
                await self.listeners.pop(key).server.close()
        for key, settings in mllp.items():
            if key not in self.listeners:
                self.listeners[key] = await self._start(key, settings)
        await self._apply_http(http)

    async def _apply_http(self, wanted: dict[str, HttpSource]) -> None:
        for key in list(self.http_sources):
            settings, server_key = self.http_sources[key]
            if key not in wanted or wanted[key] != settings:
                self.http_servers[server_key].routes.pop(settings.path, None)
                del self.http_sources[key]
        for key, settings in wanted.items():
            if key in self.http_sources:
                continue
            # Port 0 (tests): the source's own server, keyed by its source key.
            server_key = (settings.host, settings.port, "" if settings.port else key)
            server = self.http_servers.get(server_key)
            if server is None:
                server = HttpSourceServer(settings.host, settings.port)
                await server.start()
                self.http_servers[server_key] = server
                log.info("listening for HL7 over HTTP", extra={"source": key, "port": server.port})
            dedup = DedupIndex(settings.dedup_window)
            await self._refill_dedup(key, dedup)
            ingest = Ingest(key, self.writer, dedup, self.metrics, default_charset=settings.default_charset,
                            fallback_charset=settings.fallback_charset, on_committed=self.on_committed)
            server.routes[settings.path] = (ingest, settings.max_bytes)
            self.http_sources[key] = (settings, server_key)
        for server_key in [k for k, server in self.http_servers.items() if not server.routes]:
            await self.http_servers.pop(server_key).close()

    async def close(self) -> None:
        for listener in self.listeners.values():
            await listener.server.close()
        self.listeners.clear()
        for server in self.http_servers.values():
            await server.close()
        self.http_servers.clear()
        self.http_sources.clear()

    async def _start(self, key: str, settings: MllpSource) -> Listener:
        dedup = DedupIndex(settings.dedup_window)
        await self._refill_dedup(key, dedup)
        ingest = Ingest(key, self.writer, dedup, self.metrics, default_charset=settings.default_charset,
                        fallback_charset=settings.fallback_charset, on_committed=self.on_committed)
        ssl_context = server_ssl_context(settings.tls) if settings.tls else None
        server = await start_mllp_server(
            ingest.handle, host=settings.host, port=settings.port,
            settings=ListenerSettings(**settings.model_dump(include=_LISTENER_FIELDS)), ssl=ssl_context,
            events=_CountingEvents(self.metrics, key))
        log.info("listening", extra={"source": key, "port": server.port, "tls": bool(ssl_context)})
        return Listener(settings, server, ingest)

    async def _refill_dedup(self, source: str, dedup: DedupIndex) -> None:
        """Resends after a restart still get their original ACK: refill from the store."""
        horizon = time.time() - dedup.window

        def recent(connection: Connection) -> list[Any]:
            m = messages.c
            return list(connection.execute(
                select(m.sending_application, m.sending_facility, m.control_id, m.content_hash, m.ack,
                       m.received_at)
                .where(m.source == source, m.received_at >= horizon, m.status != "rejected")
                .order_by(m.id).limit(dedup.max_entries)))

        for row in await self.read(recent):
            dedup.put((row[0], row[1], row[2]), _Seen(row[3], row[4], row[5], None))
