"""The store's single writer: one thread that owns every write, with group commit.

Why one thread: SQLite has one writer at a time anyway, and funnelling writes through one
thread lets many concurrent ingests share one transaction and one fsync ("group commit").
An ingest waits on an asyncio future that resolves only after its transaction committed,
which is what makes "commit, then ACK" cheap: at 100 connections one fsync covers ~100 ACKs.

Lifecycle: `start()` once, submit work from the event loop, `stop()` drains and joins.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Engine

from simpul.engine.store.schema import messages
from simpul.errors import StoreError

log = logging.getLogger("simpul.store")

_STOP = object()


class _Job:
    __slots__ = ("future", "fn", "row")

    def __init__(self, future: asyncio.Future[Any], fn: Callable[[Connection], Any] | None,
                 row: dict[str, Any] | None) -> None:
        self.future = future
        self.fn = fn
        self.row = row


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class StoreWriter:
    def __init__(self, engine: Engine, *, max_batch: int = 500) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connection: Connection | None = None
        self.commits = 0
        self.committed_rows = 0

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

    def insert_message(self, row: dict[str, Any]) -> asyncio.Future[None]:
        """Queue one message row; the future resolves once it is durably committed."""
        assert self._loop is not None, "StoreWriter.start() first"
        future: asyncio.Future[None] = self._loop.create_future()
        self._queue.put(_Job(future, None, row))
        return future

    def run(self, fn: Callable[[Connection], Any]) -> asyncio.Future[Any]:
        """Run fn(connection) inside its own transaction on the writer thread."""
        assert self._loop is not None, "StoreWriter.start() first"
        future: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put(_Job(future, fn, None))
        return future

    def _run(self) -> None:
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        stopping = False
        while not stopping:
            batch = [get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(get_nowait())
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [job for job in batch if job is not _STOP]
            if not batch:
                continue
            results = self._commit_batch(batch)
            if self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(_settle, results)
        if self._connection is not None:
            self._connection.close()
            self._connection = None

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
            released = self._in_transaction(inserts, self._insert_rows)
            if jobs and self._loop is not None and not self._loop.is_closed():
                self._loop.call_soon_threadsafe(_settle, released)
            else:
                results.extend(released)
        if jobs:
            results.extend(self._in_transaction(jobs, self._run_jobs))
        return results

    def _in_transaction(self, jobs: list[_Job], work: Callable[[Connection, list[_Job]], list[Any]]
                        ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
        try:
            if self._connection is None:
                self._connection = self.engine.connect()
            with self._connection.begin():
                results = work(self._connection, jobs)
        except Exception as exc:  # the commit failed: inserters answer AE/CE, jobs see the error
            log.error("group commit of %d jobs failed: %s", len(jobs), type(exc).__name__)
            self._discard_connection()
            error = StoreError(f"commit failed: {type(exc).__name__}")
            return [(job.future, None, error) for job in jobs]
        self.commits += 1
        return results

    def _insert_rows(self, connection: Connection, jobs: list[_Job]) -> list[Any]:
        connection.execute(messages.insert(), [job.row for job in jobs])
        self.committed_rows += len(jobs)
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
