"""Open the store's database: SQLite (the embedded default) or PostgreSQL, by URL."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, create_engine, event
from sqlalchemy.engine import Engine, make_url

from simpul.store.migrate import upgrade_to_head

SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def open_database(url: str, *, sqlite_synchronous: str = "FULL", busy_timeout_ms: int = 5000,
                  migrate: bool = True) -> Engine:
    """Create the SQLAlchemy engine and bring the schema to the newest revision.

    SQLite runs in WAL mode with synchronous=FULL by default: WAL+NORMAL survives a process crash
    but may lose the last commits on power loss, and an ACKed message must survive both.
    """
    if url.startswith("sqlite"):
        _make_parent_folder(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000})
        synchronous = sqlite_synchronous.upper()
        if synchronous not in SQLITE_SYNCHRONOUS:
            raise ValueError(f"sqlite synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}")

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
            # 64 MB of page cache per connection (SQLite's default is 2 MB): the claim's index
            # seeks and the processor's reads stay in memory with a large backlog instead of
            # going back to the file for every page.
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.close()
            # pysqlite's own implicit transaction handling breaks SAVEPOINT (the writer runs every
            # job of a group commit in a savepoint), so SQLAlchemy emits BEGIN itself.
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(connection: Any) -> None:
            # Writers take the write lock up front (IMMEDIATE): a deferred transaction that reads
            # and then writes fails at once with SQLITE_BUSY when another process wrote meanwhile,
            # whatever the busy timeout. Reads (Engine.read) opt out with `simpul_read=True`.
            read_only = connection.get_execution_options().get("simpul_read", False)
            connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")
    else:
        engine = create_engine(url, pool_pre_ping=True)
    if migrate:
        upgrade_to_head(engine)
    return engine


def _make_parent_folder(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


async def read_in_thread(engine: Engine, fn: Callable[[Connection], Any]) -> Any:
    """Run a read on its own connection in a worker thread: WAL readers never block the writer,
    and the event loop never waits on the database."""
    def run() -> Any:
        with engine.connect().execution_options(simpul_read=True) as connection:
            return fn(connection)
    return await asyncio.to_thread(run)


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key of the one row an INSERT wrote (every table here has an integer `id`)."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the statement inserted no row")
    return int(key[0])
