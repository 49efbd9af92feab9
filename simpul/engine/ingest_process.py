"""Ingest in its own process: the MLLP listeners, the ACK path and the message writer.

Why: everything behind the ACK (routing, mapping, delivery bookkeeping) is Python CPU work. In
one process it competes with the listeners for the GIL, and ACK latency grows with the backlog.
In its own process the ACK path keeps a core's worth of interpreter to itself; the two
processes meet only in the store (the engine process picks up `received` messages).

The child is spawned (never forked from a process that runs threads), dies with its parent
(PR_SET_PDEATHSIG plus a watchdog), watches the channel files itself for listener changes,
serves its metrics on a private loopback port that the engine's /metrics merges, and tells
the parent over a pipe when messages were committed (so processing starts at once) and which
ports it listens on.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from multiprocessing.connection import Connection
from typing import Any

import httpx
from prometheus_client import start_http_server

from simpul.engine.config.channels import channel_files_stamp, load_channels
from simpul.engine.config.settings import Settings
from simpul.engine.listeners import ListenerSet, wanted_listeners
from simpul.engine.logs import configure_logging
from simpul.engine.metrics import IngestMetrics
from simpul.engine.process_guard import die_with_parent
from simpul.errors import ConfigError
from simpul.store.database import open_database, read_in_thread
from simpul.store.writer import StoreWriter

log = logging.getLogger("simpul.ingest_process")

START_TIMEOUT = 60.0
NOTIFY_DELAY = 0.002          # coalesce commit notifications: at most one per 2 ms
START_PORT_WAIT = 10.0        # a crashed predecessor may still hold the port for a moment


def ingest_process_main(settings_data: dict[str, Any], base_dir: str, pipe: Connection) -> None:
    """Entry point of the child process."""
    die_with_parent()

    settings = Settings.model_validate({**settings_data, "base_dir": base_dir})
    configure_logging(settings.log.level, settings.log.format)
    try:
        asyncio.run(_IngestService(settings, pipe).run())
    except Exception as exc:  # noqa: BLE001 - report to the parent, which prints it and exits
        with contextlib.suppress(OSError):
            pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
        raise SystemExit(2) from None


class _IngestService:
    def __init__(self, settings: Any, pipe: Connection) -> None:
        self.settings = settings
        self.pipe = pipe
        self._notify_scheduled = False
        self._stamp: tuple[Any, ...] = ()
        self.durable_level: str | None = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        database = self.settings.database
        db = await asyncio.to_thread(open_database, self.settings.database_url(),
                                     sqlite_synchronous=database.sqlite_synchronous,
                                     busy_timeout_ms=int(database.busy_timeout * 1000), migrate=False)
        # 100,000 pages (~400 MB of WAL) is a safety net for when the engine process is not
        # committing; normally its commits checkpoint long before.
        writer = StoreWriter(db, max_batch=database.group_commit_max, durable_setting=database.sqlite_synchronous,
                             wal_autocheckpoint=100_000)
        writer.start()
        # The ACK promises a durable commit: refuse to start if this connection cannot give one.
        self.durable_level = await writer.check_durability()
        metrics = IngestMetrics()
        metrics_server, _ = start_http_server(0, addr="127.0.0.1", registry=metrics.registry)

        self.listeners = ListenerSet(writer, metrics, lambda fn: read_in_thread(db, fn), self._committed)
        self.metrics_port = metrics_server.server_port
        await self._apply(first=True)
        watcher = asyncio.create_task(self._watch()) if self.settings.reload_interval > 0 else None
        await stop.wait()
        if watcher is not None:
            watcher.cancel()
        await self.listeners.close()
        await writer.stop()
        metrics_server.shutdown()
        db.dispose()

    async def _apply(self, first: bool = False) -> None:
        path = self.settings.channels_path()
        self._stamp = channel_files_stamp(path)
        loaded, findings = load_channels([path], relative_to=self.settings.base_dir)
        if findings:
            if first:
                raise RuntimeError("invalid channels: " + "; ".join(str(f) for f in findings))
            return   # the engine process logs the findings; the running listeners stay
        await self.listeners.apply(wanted_listeners([item.channel for item in loaded]),
                                   wait_for_ports=START_PORT_WAIT if first else 0.0)
        self.pipe.send(("status", {"listeners": self.listeners.ports(), "metrics_port": self.metrics_port,
                                   "durable_level": self.durable_level}))

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reload_interval)
            if channel_files_stamp(self.settings.channels_path()) != self._stamp:
                try:
                    await self._apply()
                except OSError as exc:
                    log.error("listener change failed", extra={"error": str(exc)})

    def _committed(self) -> None:
        if not self._notify_scheduled:
            self._notify_scheduled = True
            asyncio.get_running_loop().call_later(NOTIFY_DELAY, self._notify)

    def _notify(self) -> None:
        self._notify_scheduled = False
        with contextlib.suppress(OSError):
            self.pipe.send(("committed",))


class IngestProcess:
    """The engine's handle on the child: start, restart when it dies, stop, metrics, ports."""

    def __init__(self, settings: Any, on_committed: Any) -> None:
        self.settings = settings
        self.on_committed = on_committed
        self.listeners: dict[str, int] = {}
        self.metrics_port: int | None = None
        self.durable_level: str | None = None     # read back from the child's committing connection
        self.restarts = 0
        self._process: Any = None
        self._pipe: Connection | None = None
        self._ready: asyncio.Future[None] | None = None
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    async def start(self) -> None:
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="ingest-supervisor")

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")
        receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=ingest_process_main, name="simpul-ingest",
            args=(self.settings.model_dump(mode="json"), str(self.settings.base_dir), send))
        self._process.start()
        send.close()
        self._pipe = receive
        self._ready = loop.create_future()
        loop.add_reader(receive.fileno(), self._readable)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT)
        except TimeoutError:
            self._process.kill()
            raise ConfigError("the ingest process did not start in time") from None

    def _readable(self) -> None:
        assert self._pipe is not None
        try:
            while self._pipe.poll():
                message = self._pipe.recv()
                if message[0] == "committed":
                    self.on_committed()
                elif message[0] == "status":
                    self.listeners = message[1]["listeners"]
                    self.metrics_port = message[1]["metrics_port"]
                    self.durable_level = message[1]["durable_level"]
                    if self._ready is not None and not self._ready.done():
                        self._ready.set_result(None)
                elif message[0] == "failed" and self._ready is not None and not self._ready.done():
                    self._ready.set_exception(ConfigError(f"the ingest process failed: {message[1]}"))
        except (EOFError, OSError):
            self._closed_pipe()

    def _closed_pipe(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._pipe.fileno())
            self._pipe.close()
            self._pipe = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(ConfigError("the ingest process exited during start-up"))

    async def _supervise(self) -> None:
        """A dead ingest process means no listener: log it and start a new one."""
        while not self._stopping:
            await asyncio.sleep(1.0)
            if self._stopping or self.alive:
                continue
            log.error("ingest process died; restarting it", extra={"exitcode": self._process.exitcode})
            self._closed_pipe()
            self.listeners = {}
            self.restarts += 1
            try:
                await self._spawn()
            except Exception as exc:  # noqa: BLE001 - keep trying: senders are waiting
                log.error("ingest process restart failed", extra={"error": str(exc)})

    async def stop(self) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.cancel()
        if self._process is not None and self._process.is_alive():
            self._process.terminate()          # SIGTERM: listeners close, in-flight commits finish
            await asyncio.to_thread(self._process.join, 15)
            if self._process.is_alive():
                self._process.kill()
                await asyncio.to_thread(self._process.join, 5)
        self._closed_pipe()

    async def metrics_text(self) -> str:
        if self.metrics_port is None:
            return ""
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                response = await client.get(f"http://127.0.0.1:{self.metrics_port}/metrics")
            return response.text
        except httpx.HTTPError:
            return ""
