"""The engine: store, listeners, processor, delivery workers, HTTP, and hot reload.

By default (`ingest_process: true`) the listeners and the ACK path run in a child process
(engine/ingest_process.py) and this process does everything behind the ACK; with `false`
everything runs here (the tests' default, and handy for debugging).

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
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

import uvicorn
from prometheus_client import generate_latest
from sqlalchemy import Connection, func, select

from simpul.connectors.registry import create_destination
from simpul.engine.channel_runtime import ChannelRuntime
from simpul.engine.config.channels import channel_files_stamp, load_channels
from simpul.engine.config.settings import Settings
from simpul.engine.delivery import DestinationWorker
from simpul.engine.delivery_gate import DeliveryControl
from simpul.engine.ingest_process import IngestProcess
from simpul.engine.listeners import ListenerSet, source_keys, wanted_listeners
from simpul.engine.mapping_pool import MappingPool, specs_of
from simpul.engine.metrics import IngestMetrics, Metrics
from simpul.engine import nodes, orders
from simpul.engine.config.channel import OrderTracking
from simpul.engine.processor import Processor
from simpul.engine.queue_metrics import refresh_queue_gauges
from simpul.errors import ConfigError
from simpul.store.database import open_database, read_in_thread
from simpul.store.schema import messages
from simpul.store.status import MessageStatus
from simpul.store.writer import StoreWriter

log = logging.getLogger("simpul.engine")

# Work that layers above the engine run inside it (retention, the HTTP app). The engine only
# knows these shapes, so it never imports the operations or API layers; the composition root
# (simpul/app.py) passes them in.
BackgroundJob = Callable[["Engine"], Coroutine[Any, Any, None]]
HttpAppFactory = Callable[["Engine"], Any]

# How long this process's writer gathers bookkeeping jobs (routing results, claims, outcomes)
# before it commits them. While the ingest process is busy, every commit of ours makes its
# inserts wait for the SQLite write lock, so we commit less often (measured at 100 connections:
# 5 ms -> ~3,500 msg/s with p99 200 ms; 100-200 ms -> ~5,500 msg/s with p99 50 ms). When
# ingest is quiet, deliveries move on at once.
# How often the order SLA clock looks for late orders (engine/orders.py mark_overdue): an
# order_overdue event is raised at most this long after its deadline.
ORDER_CLOCK_INTERVAL = 1.0
QUIET_JOB_INTERVAL = 0.005
BUSY_JOB_INTERVAL = 0.1
BUSY_FOR = 0.25


class Engine:
    def __init__(self, settings: Settings, *, background_jobs: Mapping[str, BackgroundJob] | None = None,
                 http_app: HttpAppFactory | None = None) -> None:
        self.settings = settings
        self._background_jobs = dict(background_jobs or {})
        self._http_app = http_app
        self.metrics = Metrics()
        self.ingest_metrics = IngestMetrics()
        self.owner = settings.engine_id or f"{socket.gethostname()}:{os.getpid()}"
        self.db: Any = None
        self.writer: StoreWriter | None = None
        self.channels: dict[str, ChannelRuntime] = {}
        self._by_source: dict[str, list[ChannelRuntime]] = {}
        self._listener_set: ListenerSet | None = None
        self._ingest_process: IngestProcess | None = None
        self._ingest_busy_at = 0.0
        self.workers: dict[tuple[str, str], tuple[str, DestinationWorker, asyncio.Task[None]]] = {}
        self.processor: Processor | None = None
        self._mapping_pool: MappingPool | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._http: Any = None
        self.http_port: int | None = None
        self._channel_stamp: tuple[Any, ...] = ()
        self.channel_set_hash = ""
        self._started_at = time.time()
        self._drift_seen: dict[str, list[str]] = {}
        self._unroutable_seen = 0
        self._heartbeat_stop = asyncio.Event()
        self.started = asyncio.Event()

    # ---- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start everything, or nothing: a failure part-way stops what had started (the ingest
        child, the writer thread, listeners), so a refused start exits instead of hanging on them."""
        try:
            await self._start()
        except BaseException:
            try:
                await self.stop()
            except Exception as exc:  # noqa: BLE001 - the start failure is the error to report
                log.error("cleanup after a failed start failed", extra={"error_class": type(exc).__name__})
            raise

    async def _start(self) -> None:
        loaded = self._load_channels_or_raise()
        self.db = await asyncio.to_thread(
            open_database, self.settings.database_url(),
            sqlite_synchronous=self.settings.database.sqlite_synchronous,
            busy_timeout_ms=int(self.settings.database.busy_timeout * 1000))
        self.writer = StoreWriter(self.db, max_batch=self.settings.database.group_commit_max,
                                  durable_setting=self.settings.database.sqlite_synchronous, job_interval=QUIET_JOB_INTERVAL)
        self.writer.start()
        # Refuse to start when commits would not wait for the disk (StoreError names the level).
        await self.writer.check_durability()
        self.processor = Processor(self.writer, self.metrics, self.channels_for, self.wake_workers, self.read,
                                   self._current_mapping_pool, self.sources)
        if not self.settings.ingest_process:
            self._listener_set = ListenerSet(self.writer, self.ingest_metrics, self.read, self._message_committed)
        await self._apply(loaded)
        if self.settings.ingest_process:
            self._ingest_process = IngestProcess(self.settings, self._message_committed)
            await self._ingest_process.start()
            self._tasks.append(asyncio.create_task(self._relax_writer_when_ingest_is_quiet(), name="writer-pace"))
        self._tasks.append(asyncio.create_task(self.processor.run(), name="processor"))
        self._tasks.append(asyncio.create_task(self._heartbeat(), name="heartbeat"))
        self._tasks.append(asyncio.create_task(self._order_clock(), name="order-clock"))
        self._tasks.append(asyncio.create_task(refresh_queue_gauges(
            self, interval=min(5.0, self.settings.delivery.poll_interval * 20)), name="queue-gauges"))
        for name, job in self._background_jobs.items():
            self._tasks.append(asyncio.create_task(job(self), name=name))
        if self.settings.http.enabled:
            await self._start_http()
        if self.settings.reload_interval > 0:
            self._tasks.append(asyncio.create_task(self._watch_channels(), name="reload"))
        self.started.set()
        log.info("engine started", extra={"channels": sorted(self.channels), "http_port": self.http_port,
                                          "listeners": self.listener_ports()})

    async def stop(self) -> None:
        # The heartbeat ends between two beats, not mid-read: a read cancelled here would finish
        # in its thread after the pool is disposed and leave a connection open.
        self._heartbeat_stop.set()
        beating = [task for task in self._tasks if task.get_name() == "heartbeat"]
        if beating:
            await asyncio.wait(beating, timeout=10)
        if self.writer is not None and self.channel_set_hash:
            try:
                await asyncio.wait_for(self.writer.run(lambda connection: nodes.withdraw(connection, self.owner)), 5)
            except Exception as exc:  # noqa: BLE001 - the row goes stale on its own; stopping matters more
                log.warning("could not withdraw from engine_nodes", extra={"error_class": type(exc).__name__})
        if self._ingest_process is not None:
            await self._ingest_process.stop()
            self._ingest_process = None
        if self._listener_set is not None:
            await self._listener_set.close()
        if self.processor is not None:
            self.processor.stop()
        for _, worker, task in self.workers.values():
            await worker.stop()
            task.cancel()
        self.workers.clear()
        if self._http is not None:
            # Let uvicorn close its connections itself (it looks at should_exit every 0.1 s);
            # cancelled mid-way it would leave accepted sockets open.
            self._http.should_exit = True
            serving = [task for task in self._tasks if task.get_name() == "http"]
            if serving:
                await asyncio.wait(serving, timeout=5)
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

    def sources(self) -> list[str]:
        """The source keys this process's channels listen on: the only messages it routes."""
        return list(self._by_source)

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
                    runtimes.append(ChannelRuntime(item.channel, item.path,
                                                   default_timezone=self.settings.default_timezone))
                except ConfigError as exc:
                    raise ConfigError(f"{item.document.file}: mapping: {exc}") from None
        return runtimes

    def _stamp(self) -> tuple[Any, ...]:
        return channel_files_stamp(self.settings.channels_path())

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
        for runtime in runtimes:
            for source in source_keys(runtime.channel):
                by_source.setdefault(source, []).append(runtime)
        if self._listener_set is not None:
            # Listeners whose settings did not change keep running, with their open connections.
            await self._listener_set.apply(wanted_listeners([runtime.channel for runtime in runtimes]),
                                           wait_for_ports=0.0 if self.started.is_set() else 10.0)
        specs = specs_of(runtimes)
        if self._mapping_pool is None or self._mapping_pool.specs != specs:
            # A new pool loads the edited mappings; the old one finishes nothing more (its batch is
            # retried: messages stay `received` until their outcome is written).
            old, self._mapping_pool = self._mapping_pool, MappingPool(specs, self.settings.mapping_workers)
            if old is not None:
                old.close()
        self.channels = {runtime.name: runtime for runtime in runtimes}
        self._by_source = by_source
        self.channel_set_hash = nodes.channel_set_hash(runtimes)
        # Workers are replaced only when their destination's settings changed.
        wanted_workers: dict[tuple[str, str], tuple[str, Any, OrderTracking | None]] = {}
        for runtime in runtimes:
            tracking = runtime.channel.orders
            for destination in runtime.channel.destinations:
                fingerprint = destination.model_dump_json() + (tracking.model_dump_json() if tracking else "")
                wanted_workers[(runtime.name, destination.label)] = (fingerprint, destination, tracking)
        for key in list(self.workers):
            if key not in wanted_workers or self.workers[key][0] != wanted_workers[key][0]:
                _, worker, task = self.workers.pop(key)
                await worker.stop()
                task.cancel()
        for key, (fingerprint, destination, tracking) in wanted_workers.items():
            if key in self.workers:
                continue
            worker = DestinationWorker(
                key[0], key[1], create_destination(destination.connector_name, destination.connector_config),
                destination.retry, writer=self.writer, metrics=self.metrics,
                max_in_flight=destination.max_in_flight, lease=self.settings.delivery.lease,
                poll_interval=self.settings.delivery.poll_interval, owner=self.owner,
                control=DeliveryControl.for_destination(destination), ordered=destination.order_by != "none",
                run_length=destination.run_length,
                on_outcomes=_order_answers(tracking, key[0], destination.label, destination.connector_name)
                if tracking is not None else None)
            task = asyncio.create_task(worker.run(), name=f"deliver:{key[0]}/{key[1]}")
            self.workers[key] = (fingerprint, worker, task)
        if self.processor is not None:
            self.processor.wake.set()
        # Last: an await before the workers are replaced would let an old worker claim a delivery
        # of the new channels and lose the claim when it is stopped (its lease would then hold it).
        await self._publish()

    # ---- orders: the SLA clock (engine/orders.py) ----------------------------------------------
    async def check_orders(self, now: float | None = None) -> list[dict[str, Any]]:
        """Mark the orders past their SLA (once each) and raise order_overdue; `now` for tests."""
        assert self.writer is not None
        at = time.time() if now is None else now
        late: list[dict[str, Any]] = await self.writer.run(lambda connection: orders.mark_overdue(connection, at))
        for order in late:
            self.metrics.orders_overdue.labels(order["kind"], order["priority"]).inc()
            log.warning("order overdue", extra={"order_id": order["order_id"], "kind": order["kind"],
                                                "priority": order["priority"]})
        return late

    async def _order_clock(self) -> None:
        while True:
            await asyncio.sleep(ORDER_CLOCK_INTERVAL)
            if not any(runtime.channel.orders is not None for runtime in self.channels.values()):
                continue
            try:
                await self.check_orders()
            except Exception as exc:  # noqa: BLE001 - the store is down; the next tick tries again
                log.warning("order SLA check failed", extra={"error_class": type(exc).__name__})

    # ---- several processes on one store (engine/nodes.py) -------------------------------------
    async def _publish(self) -> None:
        assert self.writer is not None
        owner, channel_set, sources, started_at = self.owner, self.channel_set_hash, self.sources(), self._started_at
        await self.writer.run(lambda connection: nodes.publish(
            connection, owner=owner, channel_set=channel_set, sources=sources, started_at=started_at))

    async def _heartbeat(self) -> None:
        while not self._heartbeat_stop.is_set():
            try:
                await self._publish()
                self._report_cluster(await self.read(nodes.cluster_view))
            except Exception as exc:  # noqa: BLE001 - the store is down; /healthz says so, retry later
                log.warning("engine heartbeat failed", extra={"error_class": type(exc).__name__})
            try:
                await asyncio.wait_for(self._heartbeat_stop.wait(), nodes.HEARTBEAT)
            except TimeoutError:
                pass

    def _report_cluster(self, view: nodes.ClusterView) -> None:
        self.metrics.config_drift.set(int(bool(view.drift)))
        self.metrics.channel_sets.set(max(len(view.drift), 1 if view.nodes else 0))
        waiting = sum(view.unknown_sources.values())
        self.metrics.unroutable_received.set(waiting)
        if view.drift != self._drift_seen:
            if view.drift:
                log.warning("config drift: engine processes on this store run different channel sets",
                            extra={"channel_sets": view.drift, "this_node": self.owner,
                                   "channel_set_hash": self.channel_set_hash})
            else:
                log.info("config drift resolved: every engine process runs the same channel set")
            self._drift_seen = view.drift
        if waiting and waiting != self._unroutable_seen:
            log.warning("messages wait for a source no live engine process listens on",
                        extra={"sources": view.unknown_sources})
        self._unroutable_seen = waiting

    def _message_committed(self) -> None:
        if self.processor is not None:
            self.processor.wake.set()
        if self._ingest_process is not None and self.writer is not None:
            self._ingest_busy_at = time.monotonic()
            self.writer.job_interval = BUSY_JOB_INTERVAL

    def _current_mapping_pool(self) -> MappingPool:
        if self._mapping_pool is None:
            raise RuntimeError("the mapping pool is not running (engine not started or stopping)")
        return self._mapping_pool

    async def _relax_writer_when_ingest_is_quiet(self) -> None:
        while True:
            await asyncio.sleep(BUSY_FOR / 2)
            if self.writer is not None and time.monotonic() - self._ingest_busy_at > BUSY_FOR:
                self.writer.job_interval = QUIET_JOB_INTERVAL

    def wake_workers(self, touched: set[tuple[str, str]]) -> None:
        """Tell the workers of these (channel, destination) pairs that new work is queued for them."""
        for key in touched:
            entry = self.workers.get(key)
            if entry is not None:
                entry[1].wake.set()

    def known_destinations(self) -> set[tuple[str, str]]:
        """(channel, destination label) of every loaded channel."""
        return {(name, d.label) for name, runtime in self.channels.items() for d in runtime.channel.destinations}

    def delivery_control(self, channel: str, destination: str) -> DeliveryControl | None:
        """The running worker's gate (downtime, circuit), or None when no worker runs for it."""
        entry = self.workers.get((channel, destination))
        return entry[1].control if entry is not None else None

    # ---- reads, health, http -----------------------------------------------------------------
    async def read(self, fn: Callable[[Connection], Any]) -> Any:
        """Run a read on its own connection in a thread (WAL readers do not block the writer)."""
        return await read_in_thread(self.db, fn)

    async def health(self) -> dict[str, Any]:
        report: dict[str, Any] = {"status": "ok", "channels": sorted(self.channels),
                                  "listeners": self.listener_ports()}
        # The durability level read back from each process's committing connection.
        report["store_durability"] = {"engine": self.writer.durable_level if self.writer else None}
        if self._ingest_process is not None:
            report["store_durability"]["ingest"] = self._ingest_process.durable_level
            report["ingest_process"] = {"alive": self._ingest_process.alive,
                                        "restarts": self._ingest_process.restarts}
            if not self._ingest_process.alive:
                report["status"] = "unavailable"
        try:
            assert self.writer is not None
            # Through the writer, so a stuck writer or a missing table shows, not just a live socket.
            backlog = await asyncio.wait_for(self.writer.run(_unprocessed_count, durable=False), 5)
            report["unprocessed_messages"] = backlog
            view = await asyncio.wait_for(self.read(nodes.cluster_view), 5)
            report["channel_set_hash"] = self.channel_set_hash
            report.update(view.health())
        except Exception as exc:  # noqa: BLE001 - health reports, it does not raise
            report.update(status="unavailable", store=type(exc).__name__)
        return report

    def listener_ports(self) -> dict[str, int]:
        """Source key -> bound port, wherever the listeners run."""
        if self._ingest_process is not None:
            return dict(self._ingest_process.listeners)
        return self._listener_set.ports() if self._listener_set is not None else {}

    async def metrics_text(self) -> bytes:
        """Both registries in one Prometheus exposition (the ingest half may live in the child)."""

        own = generate_latest(self.metrics.registry)
        if self._ingest_process is not None:
            return own + (await self._ingest_process.metrics_text()).encode()
        return own + generate_latest(self.ingest_metrics.registry)

    async def _start_http(self) -> None:
        if self._http_app is None:
            raise ConfigError("http.enabled is set but this engine was built without an HTTP app")
        host, port = self.settings.http.host, self.settings.http.port
        # Bound here, not by uvicorn: its bind failure ends in sys.exit() inside a task, which
        # would leave the engine half started; this way a taken port is a start refusal.
        try:
            listening = socket.create_server((host, port), reuse_port=False)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConfigError(f"http: cannot listen on {host}:{port} ({reason.lower()})") from None
        # In a thread: building the app may read and write the store (the API checks that an
        # admin exists before it serves anything).
        try:
            app = await asyncio.to_thread(self._http_app, self)
        except BaseException:
            listening.close()
            raise
        config = uvicorn.Config(app, host=host, port=port,
                                log_config=None, access_log=False, lifespan="off")
        self._http = uvicorn.Server(config)
        self._http.install_signal_handlers = lambda: None
        self._tasks.append(asyncio.create_task(self._http.serve(sockets=[listening]), name="http"))
        for _ in range(200):
            if self._http.started:
                break
            await asyncio.sleep(0.01)
        if self._http.servers:
            self.http_port = self._http.servers[0].sockets[0].getsockname()[1]


def _order_answers(tracking: OrderTracking, channel: str, label: str,
                   connector: str) -> Callable[[Connection, list[tuple[int, bytes, str, str | None]]], None]:
    """The delivery hook of a channel that tracks orders: the receiver's answers join the timelines."""
    def record(connection: Connection, outcomes: list[tuple[int, bytes, str, str | None]]) -> None:
        now = time.time()
        for message_id, payload, outcome, response in outcomes:
            orders.apply_delivery(connection, orders.Answer(message_id, payload, outcome, response, channel, label,
                                                            connector), tracking, now)
    return record


def _unprocessed_count(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(messages)
                                  .where(messages.c.status == MessageStatus.RECEIVED)).scalar_one())
