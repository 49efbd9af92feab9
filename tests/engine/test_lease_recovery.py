"""Leases: a delivery a crashed worker left `in_flight` is taken over once its lease expires, not before.

The crashed state is made the way SIGKILL leaves it: a row `in_flight` with another process's
`lease_owner` and a `lease_until`, written straight into the store of a stopped engine.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.fakes.fhir_server import FakeFhirServer
from tests.helpers import (
    EngineHarness, adt, channel_yaml, file_destination_channel, free_port, send_one, segment, store_execute,
)


async def test_expired_lease_is_taken_over_and_a_live_lease_is_respected(tmp_path: Path, database_url: str) -> None:
    harness = EngineHarness(tmp_path, database_url)
    port = free_port()
    out = tmp_path / "out"
    await harness.start({"adt.yaml": file_destination_channel("adt", port, out)}, lease=1.0)
    try:
        for control_id, patient in (("CRASH-EXPIRED", "MR-A"), ("CRASH-LIVE", "MR-B")):
            assert segment(await send_one(port, adt(control_id, patient=patient)), "MSA")[1] == "AA"
        await harness.wait_for(lambda: len(harness.sql(
            "SELECT id FROM deliveries WHERE status = 'delivered'")) == 2)
    finally:
        await harness.stop()

    for path in out.glob("*.json"):
        path.unlink()
    ids = {row.control_id: row.id for row in harness.sql(
        "SELECT d.id, m.control_id FROM deliveries d JOIN messages m ON m.id = d.message_id")}
    now = time.time()
    crashed = ("UPDATE deliveries SET status = 'in_flight', lease_owner = :owner, lease_until = :until, "
               "delivered_at = NULL WHERE id = :id")
    store_execute(database_url, crashed, owner="dead-host:1", until=now - 30, id=ids["CRASH-EXPIRED"])
    # A lease far longer than any stall of a loaded machine: the test never races it.
    store_execute(database_url, crashed, owner="busy-host:2", until=now + 600, id=ids["CRASH-LIVE"])

    await harness.start(lease=1.0)
    try:
        expired = await harness.wait_for(lambda: list(out.glob("*-CRASH-EXPIRED.json")), timeout=30)
        assert len(expired) == 1
        # The claim that took the expired delivery saw the live one too (both are in_flight under
        # another owner); let a few more polls pass. The other worker's lease is still valid: its
        # delivery is left alone.
        await harness.wait_for(lambda: harness.sql(
            "SELECT id FROM deliveries WHERE id = :id AND status = 'delivered'", id=ids["CRASH-EXPIRED"]), timeout=30)
        await asyncio.sleep(0.5)
        live = harness.sql("SELECT status, lease_owner FROM deliveries WHERE id = :id", id=ids["CRASH-LIVE"])[0]
        assert (live.status, live.lease_owner) == ("in_flight", "busy-host:2")
        assert not list(out.glob("*-CRASH-LIVE.json"))

        # Its worker dies now: once the lease has run out, the delivery is taken over.
        store_execute(database_url, "UPDATE deliveries SET lease_until = :until WHERE id = :id",
                      until=time.time() - 1, id=ids["CRASH-LIVE"])
        await harness.wait_for(lambda: list(out.glob("*-CRASH-LIVE.json")), timeout=30)
        # The file is written before the outcome is recorded: wait for the record too.
        await harness.wait_for(lambda: len(harness.sql(
            "SELECT id FROM deliveries WHERE status = 'delivered'")) == 2, timeout=30)
        rows = harness.sql("SELECT id, status, attempts, lease_owner FROM deliveries ORDER BY id")
        assert all(row.status == "delivered" and row.lease_owner is None for row in rows)
        # Each was sent once before the "crash" and once after the takeover; both attempts are kept.
        assert [row.attempts for row in rows] == [2, 2]
        history = harness.sql("SELECT delivery_id, outcome FROM delivery_attempts ORDER BY id")
        assert sorted((row.delivery_id, row.outcome) for row in history) == sorted(
            [(ids["CRASH-EXPIRED"], "delivered")] * 2 + [(ids["CRASH-LIVE"], "delivered")] * 2)
    finally:
        await harness.stop()


async def test_a_send_slower_than_the_lease_is_renewed_and_not_taken_over_by_another_engine(
        tmp_path: Path, sqlite_url: str, fhir_server: FakeFhirServer) -> None:
    """Two engines share one store; the first one's send takes 2.5 leases. Its lease must move
    forward while it sends, and the second engine, polling the same queue every 50 ms, must never
    take the delivery over (that would POST the Bundle a second time)."""
    fhir_server.delay(2.5)                         # each answer takes longer than two leases
    destination = f"""\
        - label: fhir
          fhir_server: {{base_url: "{fhir_server.base_url}", timeout: 10s}}
        """
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = EngineHarness(tmp_path / "a", sqlite_url), EngineHarness(tmp_path / "b", sqlite_url)
    port = free_port()
    await first.start({"adt.yaml": channel_yaml("adt", port, destination)}, lease=1.0, engine_id="engine-a")
    try:
        # The same channel and destination on another port: the second engine works the same queue.
        await second.start({"adt.yaml": channel_yaml("adt", free_port(), destination)}, lease=1.0,
                           engine_id="engine-b")
        assert segment(await send_one(port, adt("SLOW-1", patient="MRSLOW")), "MSA")[1] == "AA"
        seen: list[tuple[str, str | None, float | None]] = []
        deadline = time.monotonic() + 30
        while True:
            row = first.sql("SELECT status, lease_owner, lease_until FROM deliveries")
            if row:
                seen.append((row[0].status, row[0].lease_owner, row[0].lease_until))
                if row[0].status == "delivered":
                    break
            assert time.monotonic() < deadline, f"not delivered within 30 s: {seen[-3:]}"
            await asyncio.sleep(0.05)
    finally:
        await second.stop()
        await first.stop()

    in_flight = [(owner, until) for status, owner, until in seen if status == "in_flight"]
    assert in_flight, "the delivery was never seen in flight"
    assert {owner for owner, _ in in_flight} == {"engine-a"}, "the second engine took the delivery over"
    leases = sorted({until for _, until in in_flight})
    # Claimed with a 1 s lease; a 2.5 s send needs at least two renewals to stay ahead of it.
    assert len(leases) >= 3, f"the lease did not move forward during the send: {leases}"
    assert leases[-1] - leases[0] >= 1.0
    posts = [request for request in fhir_server.requests if request.method == "POST"]
    assert len(posts) == 1
    attempts = first.sql("SELECT attempt, outcome FROM delivery_attempts")
    assert [(a.attempt, a.outcome) for a in attempts] == [(1, "delivered")]
