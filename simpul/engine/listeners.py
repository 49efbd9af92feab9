"""The listeners of the engine, one per source, each with its own Ingest and dedup index.

MLLP: channels that name the same host:port share one listener. HTTP: one server per host:port,
one route per path. File: one folder poller per folder (engine/file_source.py). Any other source connector from the registry: one per channel, built by its
`create_source`. `ListenerSet.apply` starts what is new, stops what went away, restarts a
listener only when its settings changed, and leaves the others (and their open connections)
alone: that is what makes hot reload safe for senders.
Used by the engine process itself, or by the separate ingest process (engine/ingest_process.py).
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, select

from simpul.config_types import IngestOptions
from simpul.connectors import registry
from simpul.connectors.base import Receive, SourceConnector
from simpul.connectors.events import EventsSource, event_source
from simpul.connectors.file import FileSourceConfig
from simpul.connectors.fhir_orders import FhirOrderSource
from simpul.connectors.http import HttpSource
from simpul.connectors.mllp import MllpSource, MllpSourceConnector
from simpul.engine.config.channel import Channel
from simpul.engine.event_ingest import EventIngest
from simpul.engine.fhir_order_source import FhirOrderServer
from simpul.engine.file_source import FilePoller
from simpul.engine.http_source import HttpSourceServer
from simpul.engine.ingest import DedupIndex, Ingest, _Seen
from simpul.engine.metrics import IngestMetrics
from simpul.errors import ConfigError
from simpul.mllp.listener import ListenerEvents
from simpul.store.schema import messages
from simpul.store.status import MessageStatus
from simpul.store.writer import StoreWriter

log = logging.getLogger("simpul.listeners")

Read = Callable[[Callable[[Connection], Any]], Awaitable[Any]]


def source_keys(channel: Channel) -> list[str]:
    """The store sources whose messages this channel routes: its listener's key, or one
    `event:<type>` per event type of an `events` source."""
    events = channel.source.settings
    if isinstance(events, EventsSource):
        return [event_source(name) for name in events.types]
    return [source_key(channel)]


def source_key(channel: Channel) -> str:
    """The channel's source as one name (its listener's key; `events:a,b` for an events source)."""
    events = channel.source.settings
    if isinstance(events, EventsSource):
        return "events:" + ",".join(events.types)
    # Port 0 (tests) means "any free port": such a listener is the channel's own.
    folder = channel.source.settings
    if isinstance(folder, FileSourceConfig):
        return f"file:{folder.directory}"
    http = channel.source.settings
    if isinstance(http, HttpSource):
        return f"http:{http.host}:{http.port}{http.path}" if http.port else f"http:{channel.name}{http.path}"
    orders = channel.source.settings
    if isinstance(orders, FhirOrderSource):
        return (f"fhir_orders:{orders.host}:{orders.port}{orders.base_path}" if orders.port
                else f"fhir_orders:{channel.name}")
    mllp = channel.source.settings
    if not isinstance(mllp, MllpSource):
        kind = channel.source.kind
        if registry.spec(kind).create_source is None:
            raise ConfigError(f"channel {channel.name}: the engine has no listener for a '{kind}' source yet")
        return f"{kind}:{channel.name}"
    return f"mllp:{mllp.host}:{mllp.port}" if mllp.port else f"mllp:{channel.name}"


def wanted_listeners(channels: list[Channel]) -> dict[str, BaseModel]:
    # An events source has nothing to listen on: emit_event writes into the store directly.
    return {source_key(channel): channel.source.settings for channel in channels
            if channel.enabled and not isinstance(channel.source.settings, EventsSource)}


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
    settings: BaseModel          # MllpSource, or a plug-in source's config
    source: SourceConnector
    ingest: Ingest


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
        self.file_sources: dict[str, FilePoller] = {}

    def ports(self) -> dict[str, int]:
        ports = {key: port for key, listener in self.listeners.items()
                 if isinstance(port := getattr(listener.source, "port", None), int)}
        ports.update({key: self.http_servers[server].port for key, (_, server) in self.http_sources.items()})
        return ports

    async def apply(self, wanted: dict[str, BaseModel], *, wait_for_ports: float = 0.0) -> None:
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

    async def _apply(self, wanted: dict[str, BaseModel]) -> None:
        # http and file sources are served by the engine itself (below); the rest are connectors.
        own = {key: settings for key, settings in wanted.items()
               if not isinstance(settings, (HttpSource, FileSourceConfig))}
        http = {key: settings for key, settings in wanted.items() if isinstance(settings, HttpSource)}
        for key in list(self.listeners):
            if key not in own or self.listeners[key].settings != own[key]:
                await self.listeners.pop(key).source.close()
        for key, settings in own.items():
            if key not in self.listeners:
                self.listeners[key] = await self._start(key, settings)
        await self._apply_http(http)
        await self._apply_files({key: s for key, s in wanted.items() if isinstance(s, FileSourceConfig)})

    async def _apply_files(self, wanted: dict[str, FileSourceConfig]) -> None:
        for key in list(self.file_sources):
            if key not in wanted or self.file_sources[key].settings != wanted[key]:
                await self.file_sources.pop(key).close()
        for key, settings in wanted.items():
            if key in self.file_sources:
                continue
            dedup = DedupIndex(settings.dedup_window)
            await self._refill_dedup(key, dedup)
            ingest = Ingest(key, self.writer, dedup, self.metrics, default_charset=settings.default_charset,
                            fallback_charset=settings.fallback_charset, on_committed=self.on_committed)
            poller = FilePoller(key, settings, ingest)
            poller.start()
            self.file_sources[key] = poller

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
            await listener.source.close()
        self.listeners.clear()
        for server in self.http_servers.values():
            await server.close()
        self.http_servers.clear()
        self.http_sources.clear()
        for poller in self.file_sources.values():
            await poller.close()
        self.file_sources.clear()

    async def _start(self, key: str, settings: BaseModel) -> Listener:
        # A plug-in source's config need not carry the ingest options: the defaults apply then.
        options = settings if isinstance(settings, IngestOptions) else IngestOptions.model_validate({})
        dedup = DedupIndex(options.dedup_window)
        await self._refill_dedup(key, dedup)
        ingest = Ingest(key, self.writer, dedup, self.metrics, default_charset=options.default_charset,
                        fallback_charset=options.fallback_charset, on_committed=self.on_committed)
        source: SourceConnector
        if isinstance(settings, MllpSource):
            source = MllpSourceConnector(settings, ingest.handle, events=_CountingEvents(self.metrics, key))
            await source.start()
            log.info("listening", extra={"source": key, "port": source.port, "tls": bool(settings.tls)})
        elif isinstance(settings, FhirOrderSource):
            source = FhirOrderServer(settings, ingest)
            await source.start()
            log.info("listening for FHIR orders", extra={"source": key, "port": source.port})
        else:
            spec = registry.spec(key.split(":", 1)[0])
            factory = spec.create_source
            assert factory is not None      # source_key refuses a source without one
            receive: Receive = ingest.handle
            if spec.source_takes == "events":
                receive = EventIngest(key, self.writer, dedup, self.metrics, ingest).handle
            source = factory(settings, receive)
            await source.start()
            log.info("source started", extra={"source": key})
        return Listener(settings, source, ingest)

    async def _refill_dedup(self, source: str, dedup: DedupIndex) -> None:
        """Resends after a restart still get their original ACK: refill from the store."""
        horizon = time.time() - dedup.window

        def recent(connection: Connection) -> list[Any]:
            m = messages.c
            return list(connection.execute(
                select(m.sending_application, m.sending_facility, m.control_id, m.content_hash, m.ack,
                       m.received_at)
                .where(m.source == source, m.received_at >= horizon, m.status != MessageStatus.REJECTED)
                .order_by(m.id).limit(dedup.max_entries)))

        for row in await self.read(recent):
            dedup.put((row[0], row[1], row[2]), _Seen(row[3], row[4], row[5], None))
