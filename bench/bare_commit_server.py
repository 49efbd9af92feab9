"""Bare reference 2: commit, then ACK, with group commit and nothing else.

    python bench/bare_commit_server.py --database sqlite:///path.db | postgresql://user@host/db [--port 0]

The least a durable MLLP server must do: frame, insert the raw bytes, commit durably, then ACK.
One writer thread takes every frame that arrived while the previous commit ran and commits
them in one transaction (group commit, up to 500, as Simpul's writer). The fsync policy is
Simpul's default profile: SQLite in WAL mode with synchronous=FULL (simpul/store/database.py),
or PostgreSQL with synchronous_commit on (the server default). No parsing beyond MSH-10 for the
ACK, no dedup, no indexes beyond the primary key.
Prints ``PORT <n>`` once listening on 127.0.0.1; serves until SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import asyncio
import queue
import signal
import sqlite3
import sys
import threading
import time
from typing import Any

from mllp_frames import FrameSplitter, ack_for

MAX_BATCH = 500
TABLE = "bench_bare_messages"


def connect(url: str) -> tuple[Any, str]:
    """A DB-API connection with Simpul's default durability, and its parameter marker."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1]
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id INTEGER PRIMARY KEY, received_at REAL, "
                           "control_id TEXT, raw BLOB)")
        return connection, "?"
    # Late import: psycopg is needed only for the PostgreSQL reference.
    import psycopg
    connection = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    connection.execute("SET synchronous_commit = on")
    connection.execute(f"DROP TABLE IF EXISTS {TABLE}")
    connection.execute(f"CREATE TABLE {TABLE} (id BIGSERIAL PRIMARY KEY, received_at DOUBLE PRECISION, "
                       "control_id TEXT, raw BYTEA)")
    return connection, "%s"


class GroupCommitter(threading.Thread):
    """Commits whatever is queued in one transaction, then releases every ACK of the group."""

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(daemon=True, name="bare-writer")
        self.connection, marker = connect(url)
        self.statement = f"INSERT INTO {TABLE} (received_at, control_id, raw) VALUES ({marker}, {marker}, {marker})"
        self.loop = loop
        self.jobs: queue.SimpleQueue[tuple[asyncio.Transport, bytes] | None] = queue.SimpleQueue()

    def run(self) -> None:
        while True:
            first = self.jobs.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self.jobs.put(None)
                    break
                batch.append(job)
            now = time.time()
            cursor = self.connection.cursor()
            cursor.execute("BEGIN")
            cursor.executemany(self.statement, [(now, b"", raw) for _, raw in batch])
            cursor.execute("COMMIT")
            cursor.close()
            self.loop.call_soon_threadsafe(_release, batch)


def _release(batch: list[tuple[asyncio.Transport, bytes]]) -> None:
    for transport, raw in batch:
        if not transport.is_closing():
            transport.write(ack_for(raw))


class CommitThenAck(asyncio.Protocol):
    def __init__(self, committer: GroupCommitter) -> None:
        self.committer = committer
        self.frames = FrameSplitter()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        for payload in self.frames.feed(data):
            self.committer.jobs.put((self.transport, payload))


async def main(url: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    committer = GroupCommitter(url, loop)
    committer.start()
    server = await loop.create_server(lambda: CommitThenAck(committer), "127.0.0.1", port, backlog=1024)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()
    committer.jobs.put(None)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--port", type=int, default=0)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.database, arguments.port))
    sys.exit(0)
