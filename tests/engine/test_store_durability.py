"""Power loss: the connections that commit messages run with `synchronous=FULL`, in both processes.

A `kill -9` cannot tell FULL from NORMAL (the OS still writes the WAL out), so these tests read
the level back from the connections themselves: through /healthz of a real `simpul run` (the
ingest process commits the messages there), and inside a durable job of the in-process writer.
An engine whose store cannot commit durably must refuse to start instead of ACKing on a promise
it cannot keep.
"""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from simpul.store.database import open_database
from simpul.store.writer import StoreWriter
from simpul.errors import StoreError
from tests.conftest import _drop_postgres_database, _postgres_database
from tests.helpers import (
    SIMPUL_CLI, EngineHarness, EngineProcess, adt, file_destination_channel, free_port, segment, send_one,
    write_settings,
)


def _health(http_port: int) -> dict[str, object]:
    """/healthz, waiting for the HTTP side (it starts after the listeners `EngineProcess` waits for)."""
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=5) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("level", ["FULL", "EXTRA"])
async def test_both_processes_commit_with_the_configured_synchronous_level(tmp_path: Path, level: str) -> None:
    mllp_port, http_port = free_port(), free_port()
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "adt.yaml").write_text(file_destination_channel("adt", mllp_port, tmp_path / "out"))
    settings = write_settings(tmp_path, f"sqlite:///{tmp_path / 'simpul.db'}", http_port=http_port)
    if level != "FULL":      # FULL must be the default: the file does not name it
        settings.write_text(settings.read_text().replace("database:\n", f"database:\n  sqlite_synchronous: {level}\n"))
    engine = EngineProcess(settings, mllp_port, tmp_path / "engine.log")
    await asyncio.to_thread(engine.start)
    try:
        assert segment(await send_one(mllp_port, adt("DUR-1")), "MSA")[1] == "AA"
        health = await asyncio.to_thread(_health, http_port)
        assert health["ingest_process"] == {"alive": True, "restarts": 0}   # the two-process layout
        assert health["store_durability"] == {"engine": level, "ingest": level}
    finally:
        assert await asyncio.to_thread(engine.stop) == 0


async def test_the_in_process_writer_commits_messages_on_a_full_connection(harness: EngineHarness) -> None:
    port = free_port()
    engine = await harness.start({"adt.yaml": file_destination_channel("adt", port, harness.tmp_path / "out")})
    assert segment(await send_one(port, adt("DUR-2")), "MSA")[1] == "AA"
    assert engine.writer is not None
    # Read inside a durable job: the same connection, set up the way it commits message inserts.
    code = await engine.writer.run(lambda connection: connection.connection.driver_connection.execute(
        "PRAGMA synchronous").fetchone()[0], durable=True)
    assert code == 2                      # FULL


async def test_a_sqlite_connection_that_refuses_the_level_fails_the_durability_check(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'simpul.db'}")

    @event.listens_for(db, "connect")
    def _left_in_a_transaction(dbapi_connection: object, _record: object) -> None:
        # SQLite refuses to change the safety level inside a transaction: "Safety level may
        # not be changed inside a transaction". A real refusal, not a stand-in for one.
        dbapi_connection.execute("BEGIN")  # type: ignore[attr-defined]

    db.dispose()           # drop the connections the migration opened, so every new one has the listener
    writer = StoreWriter(db)
    writer.start()
    try:
        with pytest.raises(StoreError, match="refused synchronous=FULL"):
            await writer.check_durability()
        # And a message insert on it is refused too (the sender gets AE), never committed half-durable.
        with pytest.raises(StoreError):
            await writer.insert_message({"control_id": "X"})
    finally:
        await writer.stop()
        db.dispose()


@pytest.fixture
def postgres_without_synchronous_commit() -> Iterator[str]:
    url = _postgres_database()
    admin = sa.create_engine(url)
    with admin.connect() as connection:
        connection.execute(sa.text(f'ALTER DATABASE "{url.rsplit("/", 1)[1]}" SET synchronous_commit = off'))
        connection.commit()
    admin.dispose()
    yield url
    _drop_postgres_database(url)


@pytest.mark.postgres
def test_simpul_run_refuses_a_postgres_store_without_synchronous_commit(
        tmp_path: Path, postgres_without_synchronous_commit: str) -> None:
    mllp_port = free_port()
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "adt.yaml").write_text(file_destination_channel("adt", mllp_port, tmp_path / "out"))
    settings = write_settings(tmp_path, postgres_without_synchronous_commit, http_port=free_port())
    result = subprocess.run([str(SIMPUL_CLI), "run", "-c", str(settings)], capture_output=True, text=True,
                            timeout=30, cwd=tmp_path, env={**os.environ, "SIMPUL_LOG_LEVEL": "ERROR"})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "refusing to start" in result.stderr
    assert "synchronous_commit=off" in result.stderr
