"""Commit-then-ACK under `kill -9`: every message that got AA survives and is delivered, once.

The engine runs as its own process (`simpul run`) so SIGKILL is real: no shutdown code, no
flush, half-written transactions and leases left behind. Eight clients keep sending while the
process is killed in the middle of the ACK stream; after each restart every ACKed control id
must be in the store, and at the end every one of them must have reached the destination.

The destination is a fake LIS that records every message it receives and on which connection, so
a second send is counted, not hidden by an idempotent receiver. One engine life never sends a
message twice; a message is sent again by the next life only when the kill landed between its
send and the record of its outcome (the store then holds exactly one `delivered` attempt for it).
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from simpul.errors import MllpError
from simpul.mllp.sender import open_mllp_connection
from tests.fakes.fake_lis import FakeLis
from tests.helpers import EngineProcess, adt, channel_yaml, free_port, segment, store_rows, write_settings

ROUNDS = 3
CLIENTS = 8
ACKS_BEFORE_KILL = 300
# The kill must also cut deliveries: each life has sent at least this many to the LIS when it dies.
DELIVERED_BEFORE_KILL = 50


async def _send_until_killed(engine: EngineProcess, round_number: int, acked: set[str],
                             delivering: Callable[[], bool]) -> int:
    """Clients send unique MSH-10s until the engine dies; returns how many AAs this round got.
    The kill lands once this round has ACKed enough and the engine is delivering (`delivering`)."""
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
                    if delivering():
                        # The other seven clients have messages in flight right now.
                        killed = True
                        engine.kill()
                    else:
                        # Keep ACKs in flight while the engine catches up, without piling up a backlog.
                        await asyncio.sleep(0.05)
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


def _control_id(payload: bytes) -> str:
    return payload.split(b"\r", 1)[0].decode().split("|")[9]


async def _wait_until_the_dead_engine_is_disconnected(lis: FakeLis) -> int:
    """After SIGKILL the kernel closes the engine's sockets; once the fake has read every byte the
    dead engine sent (its handlers end at EOF), returns how many connections it has accepted so far:
    connections up to that number belong to lives that are over."""
    deadline = time.monotonic() + 10
    await asyncio.sleep(0.2)           # let the loop accept connections the kernel completed before the kill
    while lis.open_connections:
        assert time.monotonic() < deadline, "the killed engine's connections to the LIS did not close"
        await asyncio.sleep(0.05)
    return lis.connections_accepted


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_every_acked_message_survives_sigkill_and_is_delivered_once(tmp_path: Path) -> None:
    mllp_port = free_port()
    lis = await FakeLis().start()
    (tmp_path / "channels").mkdir()
    (tmp_path / "channels" / "adt.yaml").write_text(channel_yaml("adt", mllp_port, f"""\
        - label: lis
          order_by: control_id
          mllp: {{host: 127.0.0.1, port: {lis.port}}}
        """))
    database_url = f"sqlite:///{tmp_path / 'simpul.db'}"
    # A short lease so deliveries the killed process had in flight are taken over quickly.
    settings = write_settings(tmp_path, database_url, http_port=free_port(), lease="2s")
    engine = EngineProcess(settings, mllp_port, tmp_path / "engine.log")
    acked: set[str] = set()
    last_connection_of_life: list[int] = []      # per killed life: the highest LIS connection number it used
    try:
        for round_number in range(ROUNDS):
            await asyncio.to_thread(engine.start)
            received_before = len(lis.received)
            got = await _send_until_killed(engine, round_number, acked,
                                           lambda: len(lis.received) >= received_before + DELIVERED_BEFORE_KILL)
            assert got >= ACKS_BEFORE_KILL
            last_connection_of_life.append(await _wait_until_the_dead_engine_is_disconnected(lis))
            stored = {row.control_id for row in store_rows(database_url, "SELECT control_id FROM messages")}
            missing = acked - stored
            assert not missing, f"round {round_number}: {len(missing)} ACKed message(s) lost, e.g. " \
                                f"{sorted(missing)[:5]}"

        await asyncio.to_thread(engine.start)
        deadline = time.monotonic() + 60
        while True:
            received = {_control_id(payload) for payload in lis.received}
            if acked <= received:
                break
            if time.monotonic() > deadline:
                states = store_rows(database_url, "SELECT 'message' AS kind, status, count(*) AS n FROM messages "
                                                  "GROUP BY status UNION ALL SELECT 'delivery', status, count(*) "
                                                  "FROM deliveries GROUP BY status")
                raise AssertionError(f"{len(acked - received)} ACKed message(s) not delivered after "
                                     f"restart; store: {[tuple(row) for row in states]}")
            await asyncio.sleep(0.2)
        # Stop gracefully once every delivery is recorded, then look at the final state.
        deadline = time.monotonic() + 30
        while store_rows(database_url, "SELECT id FROM deliveries WHERE status != 'delivered' LIMIT 1"):
            assert time.monotonic() < deadline, "deliveries still unfinished 30 s after everything arrived"
            await asyncio.sleep(0.2)
        assert await asyncio.to_thread(engine.stop) == 0
    finally:
        engine.kill()
        await lis.stop()

    def life_of(connection: int) -> int:
        return next((life for life, last in enumerate(last_connection_of_life) if connection <= last), ROUNDS)

    receipts: dict[str, list[int]] = {}
    for payload, connection in zip(lis.received, lis.received_on, strict=True):
        receipts.setdefault(_control_id(payload), []).append(life_of(connection))
    twice_in_one_life = {cid: lives for cid, lives in receipts.items() if len(lives) != len(set(lives))}
    assert not twice_in_one_life, f"one engine life sent a message twice: {sorted(twice_in_one_life.items())[:5]}"
    stored = {row.control_id for row in store_rows(database_url, "SELECT control_id FROM messages")}
    # Every stored message (ACKed, or committed just before the kill) reached the LIS, and nothing else did.
    assert set(receipts) == stored
    assert acked <= stored
    # A message is sent again only when the kill cut it between send and record: the store then
    # holds the one attempt of the life that finished it, never two `delivered` attempts.
    delivered_attempts = store_rows(database_url, "SELECT d.message_id, count(a.id) AS n FROM deliveries d "
                                                  "LEFT JOIN delivery_attempts a ON a.delivery_id = d.id "
                                                  "AND a.outcome = 'delivered' GROUP BY d.id")
    assert len(delivered_attempts) == len(stored)
    assert {row.n for row in delivered_attempts} == {1}
    resent = {cid: lives for cid, lives in receipts.items() if len(lives) > 1}
    # Each kill cuts at most the sends that were between "sent" and "recorded" at that moment.
    assert len(resent) <= ROUNDS * 50, f"{len(resent)} messages sent again after a restart"
    duplicated_rows = store_rows(database_url, "SELECT message_id, destination, count(*) AS n FROM deliveries "
                                               "GROUP BY message_id, destination HAVING count(*) > 1")
    assert duplicated_rows == []
    print(f"ACKed {len(acked)}, stored {len(stored)}, resent after a kill {len(resent)}, receipts per life "
          f"{Counter(life for lives in receipts.values() for life in lives)}")
