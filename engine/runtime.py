"""The engine: store, listeners, processor, delivery workers, HTTP, and hot reload, in one process.

Start-up order matters (recovery before work): the schema is migrated, the dedup index is
refilled from the store, and only then do listeners accept connections and workers claim
deliveries. Deliveries left in flight by a crashed process are taken over when their lease
expires; messages left `received` are routed again by the processor.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, text

from simpul.connectors.base import create_connector
from simpul.engine.channel_runtime import ChannelRuntime
from simpul.engine.config.channel import Channel, MllpSource
from simpul.engine.config.channels import load_channels
from simpul.engine.config.settings import Settings
from simpul.dead_letters.delivery_control import DeliveryControl
from simpul.dead_letters.queue_metrics import refresh_queue_gauges
from simpul.engine.delivery import DestinationWorker
from simpul.engine.ingest import DedupIndex, Ingest, _Seen
from simpul.engine.mapping_pool import MappingPool, specs_of
from simpul.engine.metrics import Metrics
from simpul.engine.processor import Processor
from simpul.engine.store.database import open_database
from simpul.engine.store.schema import messages
from simpul.engine.store.writer import StoreWriter
from simpul.errors import ConfigError
from simpul.mllp.listener import ListenerEvents, MllpServer, start_mllp_server
from simpul.mllp.tls import server_ssl_context

log = logging.getLogger("simpul.engine")


def source_key(channel: Channel) -> str:
    mllp = channel.source.mllp
    # Port 0 (tests) means "any free port": such a listener is the channel's own.
    return f"mllp:{mllp.host}:{mllp.port}" if mllp.port else f"mllp:{channel.name}"


class _CountingEvents(ListenerEvents):
    def __init__(self, metrics: Metrics, source: str) -> None:
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
class _Listener:
    settings: MllpSource
    server: MllpServer
    ingest: Ingest


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.owner = settings.engine_id or f"{socket.gethostname()}:{os.getpid()}"
        self.db: Any = None
        self.writer: StoreWriter | None = None
        self.channels: dict[str, ChannelRuntime] = {}
        self._by_source: dict[str, list[ChannelRuntime]] = {}
        self.listeners: dict[str, _Listener] = {}
        self.workers: dict[tuple[str, str], tuple[str, DestinationWorker, asyncio.Task[None]]] = {}
        self.processor: Processor | None = None
        self._mapping_pool: MappingPool | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._http: Any = None
        self.http_port: int | None = None
        self._channel_stamp: tuple[Any, ...] = ()
        self.started = asyncio.Event()

    # ---- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        loaded = self._load_channels_or_raise()
        self.db = await asyncio.to_thread(
            open_database, self.settings.database_url(),
            sqlite_synchronous=self.settings.database.sqlite_synchronous,
            busy_timeout_ms=int(self.settings.database.busy_timeout * 1000))
        self.writer = StoreWriter(self.db, max_batch=self.settings.database.group_commit_max)
        self.writer.start()
        self.processor = Processor(self.writer, self.metrics, self.channels_for, self._wake_workers, self.read,
                                   lambda: self._mapping_pool)
        await self._apply(loaded)
        self._tasks.append(asyncio.create_task(self.processor.run(), name="processor"))
        self._tasks.append(asyncio.create_task(refresh_queue_gauges(
            self, interval=min(5.0, self.settings.delivery.poll_interval * 20)), name="queue-gauges"))
        if self.settings.http.enabled:
            await self._start_http()
        if self.settings.reload_interval > 0:
            self._tasks.append(asyncio.create_task(self._watch_channels(), name="reload"))
        self.started.set()
        log.info("engine started", extra={"channels": sorted(self.channels), "http_port": self.http_port,
                                          "listeners": {k: v.server.port for k, v in self.listeners.items()}})

    async def stop(self) -> None:
        for listener in self.listeners.values():
            await listener.server.close()
        self.listeners.clear()
        if self.processor is not None:
            self.processor.stop()
        for _, worker, task in self.workers.values():
            await worker.stop()
            task.cancel()
        self.workers.clear()
        if self._http is not None:
            self._http.should_exit = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._mapping_pool is not None:
            self._mapping_pool.close()
            self._mapping_pool = None
        if self.writer is not None:
            await self.writer.stop()
        if self.db is not None:
            self.db.dispose()
        log.info("engine stopped")

    async def run_forever(self) -> None:
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.stop()

    # ---- channels and hot reload ------------------------------------------------------------
    def channels_for(self, source: str) -> list[ChannelRuntime]:
        return self._by_source.get(source, [])

    def _load_channels_or_raise(self) -> list[ChannelRuntime]:
        path = self.settings.channels_path()
        loaded, findings = load_channels([path], relative_to=self.settings.base_dir)
        if findings:
            raise ConfigError(f"invalid channels in {path}", [str(f) for f in findings])
        self._channel_stamp = self._stamp()
        runtimes = []
        for item in loaded:
            if item.channel.enabled:
                try:
                    runtimes.append(ChannelRuntime(item.channel, item.path))
                except ConfigError as exc:
                    raise ConfigError(f"{item.document.file}: mapping: {exc}") from None
        return runtimes

    def _stamp(self) -> tuple[Any, ...]:
        path = self.settings.channels_path()
        if not path.is_dir():
            return ()
        return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in path.iterdir()
                            if p.suffix in (".yaml", ".yml")))

    async def _watch_channels(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            if self._stamp() == self._channel_stamp:
                continue
            await self.reload()

    async def reload(self) -> bool:
        """Apply edited channel files. An invalid edit is logged and the running channels stay."""
        try:
            loaded = self._load_channels_or_raise()
        except ConfigError as exc:
            self._channel_stamp = self._stamp()
            log.error("channel reload refused; the running channels stay", extra={"findings": exc.findings})
            return False
        await self._apply(loaded)
        log.info("channels reloaded", extra={"channels": sorted(self.channels)})
        return True

    async def _apply(self, runtimes: list[ChannelRuntime]) -> None:
        assert self.writer is not None
        by_source: dict[str, list[ChannelRuntime]] = {}
        wanted_listeners: dict[str, MllpSource] = {}
        for runtime in runtimes:
            key = source_key(runtime.channel)
            by_source.setdefault(key, []).append(runtime)
            wanted_listeners[key] = runtime.channel.source.mllp
        # Listeners whose settings did not change keep running, with their open connections.
        for key in list(self.listeners):
            if key not in wanted_listeners or self.listeners[key].settings != wanted_listeners[key]:
                await self.listeners.pop(key).server.close()
        for key, settings in wanted_listeners.items():
            if key not in self.listeners:
                self.listeners[key] = await self._start_listener(key, settings)
        specs = specs_of(runtimes)
        if self._mapping_pool is None or self._mapping_pool.specs != specs:
            # A new pool loads the edited mappings; the old one finishes nothing more (its batch is
            # retried: messages stay `received` until their outcome is written).
            old, self._mapping_pool = self._mapping_pool, MappingPool(specs, self.settings.mapping_workers)
            if old is not None:
                old.close()
        self.channels = {runtime.name: runtime for runtime in runtimes}
        self._by_source = by_source
        # Workers are replaced only when their destination's settings changed.
        wanted_workers: dict[tuple[str, str], tuple[str, Any]] = {}
        for runtime in runtimes:
            for destination in runtime.channel.destinations:
                wanted_workers[(runtime.name, destination.label)] = (destination.model_dump_json(), destination)
        for key in list(self.workers):
            if key not in wanted_workers or self.workers[key][0] != wanted_workers[key][0]:
                _, worker, task = self.workers.pop(key)
                await worker.stop()
                task.cancel()
        for key, (fingerprint, destination) in wanted_workers.items():
            if key in self.workers:
                continue
            worker = DestinationWorker(
                key[0], key[1], create_connector(destination.connector_name, destination.connector_config),
                destination.retry, writer=self.writer, metrics=self.metrics,
                max_in_flight=destination.max_in_flight, lease=self.settings.delivery.lease,
                poll_interval=self.settings.delivery.poll_interval, owner=self.owner,
                control=DeliveryControl.for_destination(destination))
            task = asyncio.create_task(worker.run(), name=f"deliver:{key[0]}/{key[1]}")
            self.workers[key] = (fingerprint, worker, task)
        if self.processor is not None:
            self.processor.wake.set()

    async def _start_listener(self, key: str, settings: MllpSource) -> _Listener:
        assert self.writer is not None
        dedup = DedupIndex(settings.dedup_window)
        await self._refill_dedup(key, dedup)
        ingest = Ingest(key, self.writer, dedup, self.metrics, default_charset=settings.default_charset,
                        fallback_charset=settings.fallback_charset, on_committed=self._message_committed)
        ssl_context = server_ssl_context(settings.tls) if settings.tls else None
        listener_settings = settings.model_dump(include=set(_listener_fields()))
        from simpul.mllp.listener import ListenerSettings
        server = await start_mllp_server(ingest.handle, host=settings.host, port=settings.port,
                                         settings=ListenerSettings(**listener_settings), ssl=ssl_context,
                                         events=_CountingEvents(self.metrics, key))
        log.info("listening", extra={"source": key, "port": server.port, "tls": bool(ssl_context)})
        return _Listener(settings, server, ingest)

    async def _refill_dedup(self, source: str, dedup: DedupIndex) -> None:
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

    def _message_committed(self) -> None:
        if self.processor is not None:
            self.processor.wake.set()

    def _wake_workers(self, touched: set[tuple[str, str]]) -> None:
        for key in touched:
            entry = self.workers.get(key)
            if entry is not None:
                entry[1].wake.set()

    # ---- reads, health, http -----------------------------------------------------------------
    async def read(self, fn: Callable[[Connection], Any]) -> Any:
        """Run a read on its own connection in a thread (WAL readers do not block the writer)."""
        def run() -> Any:
            with self.db.connect() as connection:
                return fn(connection)
        return await asyncio.to_thread(run)

    async def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {"status": "ok", "channels": sorted(self.channels),
                                  "listeners": {k: v.server.port for k, v in self.listeners.items()}}
        try:
            assert self.writer is not None
            await asyncio.wait_for(self.writer.run(lambda c: c.execute(text("SELECT 1")).scalar()), 5)
        except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
            report.update(status="unavailable", store=type(exc).__name__)
        return report

    async def _start_http(self) -> None:
        import uvicorn

        from simpul.engine.http_api import create_app

        config = uvicorn.Config(create_app(self), host=self.settings.http.host, port=self.settings.http.port,
                                log_config=None, access_log=False, lifespan="off")
        self._http = uvicorn.Server(config)
        self._http.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._tasks.append(asyncio.create_task(self._http.serve(), name="http"))
        for _ in range(200):
            if self._http.started:
                break
            await asyncio.sleep(0.01)
        if self._http.servers:
            self.http_port = self._http.servers[0].sockets[0].getsockname()[1]


def _listener_fields() -> list[str]:
    from simpul.mllp.listener import ListenerSettings
    return list(ListenerSettings.model_fields)
