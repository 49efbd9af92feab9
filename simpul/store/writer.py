"""The store's single writer: one thread that owns every write, with group commit.

Why one thread: SQLite has one writer at a time anyway, and funnelling writes through one
thread lets many concurrent ingests share one transaction and one fsync ("group commit").
An ingest waits on an asyncio future that resolves only after its transaction committed,
which is what makes "commit, then ACK" cheap: at 100 connections one fsync covers ~100 ACKs.

Durability: message inserts always commit fully durable (fsync; SQLite synchronous=FULL or
PostgreSQL synchronous_commit=on), because an ACK promises them. Bookkeeping jobs (routing
results, claims, attempt outcomes) commit without waiting for the disk unless submitted with
`durable=True`: losing the last of them in a power cut only means a message is routed or sent
again (at-least-once, idempotent receivers), and the next durable commit flushes them anyway
(the WAL is sequential). This keeps fsyncs, and the write lock, for what needs them.

Lifecycle: `start()` once, submit work from the event loop, `stop()` drains and joins.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.engine import Engine

from simpul.store.schema import messages
from simpul.errors import StoreError

log = logging.getLogger("simpul.store")

_STOP = object()
SLOW_TRANSACTION = 0.1
# What `PRAGMA synchronous` reads back as, per level name.
_SQLITE_SYNCHRONOUS_CODES = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}


def insert_rows(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows with the driver's executemany, in the caller's transaction.

    For the big inserts on the hot paths (messages, deliveries with their payloads):
    SQLAlchemy's per-row parameter processing cost more than a third of the ingest process's
    CPU at 100 connections, all of it while holding the SQLite write lock.
    """
    columns = [column.name for column in table.columns if column.name != "id"]
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    statement = (f"INSERT INTO {table.name} ({', '.join(columns)}) "
                 f"VALUES ({', '.join([marker] * len(columns))})")
    cursor = _driver(connection).cursor()
    try:
        cursor.executemany(statement, [tuple(row.get(name) for name in columns) for row in rows])
    finally:
        cursor.close()


def _driver(connection: Connection) -> Any:
    """The DB-API connection under a SQLAlchemy one (sqlite3 or psycopg), for what SQLAlchemy would wrap
    in a transaction or slow down."""
    driver = connection.connection.driver_connection
    assert driver is not None, "the connection is closed"
    return driver


class _Job:
    __slots__ = ("future", "fn", "row", "durable")

    def __init__(self, future: asyncio.Future[Any], fn: Callable[[Connection], Any] | None,
                 row: dict[str, Any] | None, durable: bool = True) -> None:
        self.future = future
        self.fn = fn
        self.row = row
        self.durable = durable


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class StoreWriter:
    def __init__(self, engine: Engine, *, max_batch: int = 500, durable_setting: str = "FULL",
                 job_interval: float = 0.0, wal_autocheckpoint: int | None = None) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.durable_setting = durable_setting      # SQLite synchronous level for durable commits
        # Bookkeeping jobs wait at least this long after the previous ones, so they commit in
        # bigger batches and take the write lock less often (inserts never wait).
        self.job_interval = job_interval
        self._last_jobs = 0.0
        self._held: list[_Job] = []
        # SQLite: a commit that crosses the WAL threshold also checkpoints (copies the WAL into
        # the database file and fsyncs it) before it returns. The ingest process raises its
        # threshold so ACKs do not wait for that; the engine process's commits checkpoint.
        self.wal_autocheckpoint = wal_autocheckpoint
        self._durability: bool | None = None
        # The level the connection that commits messages reported back after it was set
        # (SQLite: OFF/NORMAL/FULL/EXTRA; PostgreSQL: synchronous_commit), for /healthz.
        self.durable_level: str | None = None
        self._level_checked = False              # PostgreSQL: synchronous_commit read on this connection
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: Connection | None = None

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="simpul-store-writer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    async def check_durability(self) -> str:
        """Commit one empty durable transaction on the writer's own connection and return the
        durability level it ran with; raises StoreError if that level is not the configured one
        (an engine whose ACK would not wait for the disk must not start)."""
        await self.run(lambda connection: None, durable=True)
        assert self.durable_level is not None
        return self.durable_level

    def insert_message(self, row: dict[str, Any]) -> asyncio.Future[None]:
        """Queue one message row; the future resolves once it is durably committed."""
        assert self._loop is not None, "StoreWriter.start() first"
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.put(_Job(future, None, row))
        return future

    def run(self, fn: Callable[[Connection], Any], *, durable: bool = False) -> asyncio.Future[Any]:
        """Run fn(connection) in a savepoint of the next batch transaction on the writer thread.

        `durable=True` for writes a person made (an on-call action, an audit event): the
        commit waits for the disk like a message insert does.
        """
        assert self._loop is not None, "StoreWriter.start() first"
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put(_Job(future, fn, None, durable))
        return future

    def _run(self) -> None:
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        stopping = False
        while not stopping:
            if self._held:
                wait = self._last_jobs + self.job_interval - time.monotonic()
                try:
                    batch = [get(timeout=max(wait, 0.0))] if wait > 0 else []
                except queue.Empty:
                    batch = []
            else:
                batch = [get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [job for job in batch if job is not _STOP]
            batch = self._hold_jobs(batch, stopping)
            if not batch:
                continue
            results = self._commit_batch(batch)
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(_settle, results)
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _hold_jobs(self, batch: list[_Job], stopping: bool) -> list[_Job]:
        """Inserts go now; jobs go now only if job_interval has passed (or a durable one is waiting)."""
        if self.job_interval <= 0:
            return batch
        self._held.extend(job for job in batch if job.fn is not None)
        ready = [job for job in batch if job.fn is None]
        due = time.monotonic() >= self._last_jobs + self.job_interval
        if self._held and (due or stopping or any(job.durable for job in self._held)):
            ready.extend(self._held)
            self._held = []
            self._last_jobs = time.monotonic()
        return ready

    def _commit_batch(self, batch: list[_Job]) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        """Message inserts first, in one transaction (one fsync), and their waiters are released
        at once: an ACK never waits behind the processor's or the delivery workers' writes. Then
        every other job of the batch in a second transaction, each in its own savepoint so one
        failing job rolls back alone. If a commit fails, every waiter of that transaction hears it.
        """
        inserts = [job for job in batch if job.row is not None]
        jobs = [job for job in batch if job.fn is not None]
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        if inserts:
            released = self._in_transaction(inserts, self._insert_rows, durable=True)
            if jobs and self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(_settle, released)
            else:
                results.extend(released)
        if jobs:
            results.extend(self._in_transaction(jobs, self._run_jobs, durable=any(job.durable for job in jobs)))
        return results

    def _in_transaction(self, jobs: list[_Job], work: Callable[[Connection, list[_Job]], list[Any]],
                        durable: bool) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        try:
            if self._connection is None:
                self._connection = self.engine.connect()
                self._durability = None
                self._level_checked = False
                if self.wal_autocheckpoint is not None and self._connection.dialect.name == "sqlite":
                    _driver(self._connection).execute(
                        f"PRAGMA wal_autocheckpoint={int(self.wal_autocheckpoint)}")
            self._set_durability(self._connection, durable)
            with self._connection.begin():
                began = time.monotonic()
                if not durable and self._connection.dialect.name == "postgresql":
                    self._connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
                results = work(self._connection, jobs)
        except Exception as exc:  # the commit failed: inserters answer AE/CE, jobs see the error
            log.error("group commit of %d jobs failed: %s", len(jobs), type(exc).__name__)
            self._discard_connection()
            error = exc if isinstance(exc, StoreError) else StoreError(f"commit failed: {type(exc).__name__}")
            return [(job.future, None, error) for job in jobs]
        held = time.monotonic() - began
        if held > SLOW_TRANSACTION:
            # The write lock was held this long: other writers (the other engine process) waited.
            names = sorted({getattr(job.fn, "__qualname__", "insert") for job in jobs})
            log.warning("slow store transaction", extra={"seconds": round(held, 3), "jobs": len(jobs),
                                                         "durable": durable, "kinds": names[:5]})
        return results

    def _set_durability(self, connection: Connection, durable: bool) -> None:
        if self._durability == durable:
            return
        if connection.dialect.name == "postgresql":
            if durable and not self._level_checked:
                # A server or database default of `off` would make every commit, ACKed inserts
                # included, return before the WAL is flushed: refuse to run on it.
                level = str(connection.exec_driver_sql("SHOW synchronous_commit").scalar())
                connection.rollback()
                if level == "off":
                    raise StoreError("PostgreSQL runs with synchronous_commit=off: an ACKed message "
                                     "could be lost in a crash; set it to on")
                self.durable_level, self._level_checked = level, True
            self._durability = durable
            return
        if connection.dialect.name != "sqlite":
            return
        level = self.durable_setting if durable else "NORMAL"
        # On the driver connection: through SQLAlchemy the statement would open a transaction.
        driver = _driver(connection)
        try:
            driver.execute(f"PRAGMA synchronous={level}")
            (code,) = driver.execute("PRAGMA synchronous").fetchone()
        except Exception as exc:
            raise StoreError(f"SQLite refused synchronous={level}: {exc}") from exc
        if code != _SQLITE_SYNCHRONOUS_CODES[level]:
            raise StoreError(f"SQLite runs with synchronous={code} after synchronous={level} was set")
        if durable:
            self.durable_level = level
        self._durability = durable

    def _insert_rows(self, connection: Connection, jobs: list[_Job]) -> list[Any]:
        insert_rows(connection, messages, [job.row for job in jobs if job.row is not None])
        return [(job.future, None, None) for job in jobs]

    def _run_jobs(self, connection: Connection, jobs: list[_Job]) -> list[Any]:
        results: list[Any] = []
        for job in jobs:
            assert job.fn is not None
            savepoint = connection.begin_nested()
            try:
                value = job.fn(connection)
            except Exception as exc:
                savepoint.rollback()
                log.error("store job %s failed: %s", getattr(job.fn, "__qualname__", "?"), type(exc).__name__)
                results.append((job.future, None, exc))
            else:
                savepoint.commit()
                results.append((job.future, value, None))
        return results

    def _discard_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except Exception:  # noqa: BLE001 - already broken; a new one is opened next time
                pass
            self._connection = None
