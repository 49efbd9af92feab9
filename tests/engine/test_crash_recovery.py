"""Commit-then-ACK under `kill -9`: every message that got AA survives and is delivered exactly once.

The engine runs as its own process (`simpul run`) so SIGKILL is real: no shutdown code, no
flush, half-written transactions and leases left behind. Eight clients keep sending while the
process is killed in the middle of the ACK stream; after each restart every ACKed control id
must be in the store, and at the end every one of them must be delivered, one file each.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from simpul.errors import MllpError
from simpul.mllp.sender import open_mllp_connection
from tests.helpers import (
    EngineProcess, adt, file_destination_channel, free_port, segment, store_rows, write_settings,
)

ROUNDS = 3
CLIENTS = 8
ACKS_BEFORE_KILL = 300


async def _send_until_killed(engine: EngineProcess, round_number: int, acked: set[str]) -> int:
    """Clients send unique MSH-10s until the engine dies; returns how many AAs this round got."""
    before = len(acked)
    target = before + ACKS_BEFORE_KILL
    killed = False
    stopped_by: list[str] = []          # why clients stopped early, for the failure message

    async def client(n: int) -> None:
        nonlocal killed
        try:
            connection = await open_mllp_connection("127.0.0.1", engine.mllp_port, response_timeout=10)
        except (MllpError, OSError) as exc:
            stopped_by.append(f"connect: {type(exc).__name__}: {exc}")
            return
        i = 0
        try:
            while not killed:
                control_id = f"K{round_number}-{n}-{i}"
                ack = await connection.send(adt(control_id, patient=f"P{round_number}-{n}"))
                assert segment(ack, "MSA")[1:3] == ["AA", control_id]
                acked.add(control_id)
                i += 1
                if len(acked) >= target and not killed:
                    # The other seven clients have messages in flight right now.
                    killed = True
                    engine.kill()
        except (MllpError, OSError) as exc:
            if not killed:
                stopped_by.append(f"send: {type(exc).__name__}: {exc}")
            return      # the engine died under us: whatever had no AA yet is the sender's to resend
        finally:
            if not connection.closed:
                await connection.close()

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    assert killed, f"the clients stopped before the engine was killed: {stopped_by[:3]}"
    return len(acked) - before


def _delivered_files(out: Path) -> Counter[str]:
    """Control ids of the files the file destination wrote ({channel}-{delivery_id:08d}-{control_id}.json)."""
    return Counter(path.name.split("-", 2)[2].removesuffix(".json") for path in out.glob("*.json"))


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_every_acked_message_survives_sigkill_and_is_delivered_exactly_once(tmp_path: Path) -> None:
    mllp_port = free_port()
    out = tmp_path / "out"
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "adt.yaml").write_text(
        file_destination_channel("adt", mllp_port, out, order_by="control_id"))
    database_url = f"sqlite:///{tmp_path / 'simpul.db'}"
    # A short lease so deliveries the killed process had in flight are taken over quickly.
    settings = write_settings(tmp_path, database_url, http_port=free_port(), lease="2s")
    engine = EngineProcess(settings, mllp_port, tmp_path / "engine.log")
    acked: set[str] = set()
    try:
        for round_number in range(ROUNDS):
            await asyncio.to_thread(engine.start)
            got = await _send_until_killed(engine, round_number, acked)
            assert got >= ACKS_BEFORE_KILL
            stored = {row.control_id for row in store_rows(database_url, "SELECT control_id FROM messages")}
            missing = acked - stored
            assert not missing, f"round {round_number}: {len(missing)} ACKed message(s) lost, e.g. " \
                                f"{sorted(missing)[:5]}"

        await asyncio.to_thread(engine.start)
        deadline = time.monotonic() + 30
        while True:
            delivered = _delivered_files(out)
            if acked <= set(delivered):
                break
            if time.monotonic() > deadline:
                states = store_rows(database_url, "SELECT 'message' AS kind, status, count(*) AS n FROM messages "
                                                  "GROUP BY status UNION ALL SELECT 'delivery', status, count(*) "
                                                  "FROM deliveries GROUP BY status")
                raise AssertionError(f"{len(acked - set(delivered))} ACKed message(s) not delivered after "
                                     f"restart; store: {[tuple(row) for row in states]}")
            await asyncio.sleep(0.2)
        # Let anything still in flight finish, then stop gracefully and look at the final state.
        await asyncio.sleep(0.5)
        assert await asyncio.to_thread(engine.stop) == 0
    finally:
        engine.kill()

    delivered = _delivered_files(out)
    twice = {control_id: n for control_id, n in delivered.items() if n > 1}
    assert not twice, f"messages delivered to more than one file: {sorted(twice)[:5]}"
    duplicated_rows = store_rows(database_url, "SELECT message_id, destination, count(*) AS n FROM deliveries "
                                               "GROUP BY message_id, destination HAVING count(*) > 1")
    assert duplicated_rows == []
    # Every stored message (ACKed, or committed just before the kill) was routed and delivered.
    unfinished = store_rows(database_url, "SELECT m.control_id FROM messages m LEFT JOIN deliveries d "
                                          "ON d.message_id = m.id WHERE d.id IS NULL OR d.status != 'delivered'")
    assert unfinished == []
    assert set(delivered) == {row.control_id for row in store_rows(database_url, "SELECT control_id FROM messages")}
