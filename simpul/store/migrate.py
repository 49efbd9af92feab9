"""Bring a database to the newest schema with alembic, one process at a time.

Several engine processes (and `simpul migrate`) may start at once on an empty database. Without
a lock each runs the first revision and all but one die on `alembic_version`'s unique key or a
table that already exists. PostgreSQL: a session advisory lock on a fixed key, held on the
connection that migrates; SQLite: an exclusive flock on `<database file>.migrate.lock`. The
process that waited finds the schema at head and does nothing.
"""
from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Any fixed 64-bit number works; this one spells "simpulmg" in ASCII, so it is recognisable in
# pg_locks and unlikely to collide with another application's advisory locks.
MIGRATION_LOCK_KEY = 0x73696D70756C6D67


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade_to_head(engine: Engine) -> None:
    config = alembic_config()
    with engine.connect() as connection, _migration_lock(engine, connection):
        with connection.begin():
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


@contextmanager
def _migration_lock(engine: Engine, connection: Connection) -> Iterator[None]:
    if engine.dialect.name == "postgresql":
        # A session lock (not a transaction one): it is held across alembic's own transaction and
        # released explicitly, or by the server if this process dies.
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
        return
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        yield                       # in-memory or other: one process only, nothing to guard
        return
    with open(f"{database}.migrate.lock", "a+b") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
