"""Several `simpul run` processes on one PostgreSQL store (real processes, real sockets).

The destination is the fake LIS over MLLP, which records every message it receives (not an
idempotent file name), so a delivery sent twice shows as two receipts.
"""
from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from simpul.engine.delivery import BATCH, OUTCOMES_AHEAD
from simpul.mllp.sender import open_mllp_connection
from tests.fakes.fake_lis import FakeLis
from tests.helpers import (
    EngineProcess, adt, channel_yaml, free_port, segment, store_execute, store_rows, write_settings,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

MAX_IN_FLIGHT = 8
LEASE_SECONDS = 3


def lis_channel(port: int, lis_port: int, *, extra: str = "") -> str:
    return channel_yaml("adt", port, f"""\
        - label: lis
          order_by: patient
          max_in_flight: {MAX_IN_FLIGHT}
          mllp: {{host: 127.0.0.1, port: {lis_port}, response_timeout: 10s}}
          retry: {{max_attempts: 100, initial_delay: 100ms, max_delay: 500ms, jitter: false}}
        """) + extra


def engine_in(folder: Path, database_url: str, channels: dict[str, str]) -> tuple[EngineProcess, int]:
    """An engine process with its own folder, MLLP port and HTTP port (not started)."""
    folder.mkdir()
    (folder / "channels").mkdir()
    for name, text in channels.items():
        (folder / "channels" / name).write_text(text)
    http_port = free_port()
    settings = write_settings(folder, database_url, http_port=http_port, lease=f"{LEASE_SECONDS}s", poll_interval="50ms")
    with settings.open("a") as extra:
        extra.write("mapping_workers: 0\n")
    mllp_port = int(channels["adt.yaml"].split("port: ", 1)[1].split()[0])
    return EngineProcess(settings, mllp_port, folder / "engine.log"), http_port


def http_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.loads(response.read())


def http_text(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read().decode()


def control_id_of(payload: bytes) -> str:
    return payload.split(b"\r", 1)[0].split(b"|")[9].decode()


@dataclass
class Load:
    sent: int = 0                   # frames written, resends after a refused connection included
    acked: list[str] = field(default_factory=list)


async def send_patients(port: int, messages: list[tuple[str, str]], load: Load) -> None:
    """Send in order on one connection, each message until it is ACKed AA (reconnecting while the
    engine is down): a patient's order is the order its messages were ACKed."""
    connection: Any = None
    for control_id, patient in messages:
        while True:
            try:
                if connection is None:
                    connection = await open_mllp_connection("127.0.0.1", port, connect_timeout=2,
                                                            response_timeout=10)
                load.sent += 1
                ack = await connection.send(adt(control_id, patient=patient))
                assert segment(ack, "MSA")[1] == "AA", ack
                load.acked.append(control_id)
                break
            except (OSError, TimeoutError, EOFError, asyncio.IncompleteReadError) as exc:
                del exc
            except Exception as exc:  # noqa: BLE001 - the MLLP client's own errors: engine killed mid-frame
                if isinstance(exc, AssertionError):
                    raise
            if connection is not None:
                await connection.close()
                connection = None
            await asyncio.sleep(0.1)
    if connection is not None:
        await connection.close()


def plan(engine: int, connections: int, patients: int, per_patient: int) -> list[list[tuple[str, str]]]:
    """Per connection, its messages: `patients` patients interleaved, `per_patient` messages each."""
    return [[(f"E{engine}C{c}P{p}S{s:03d}", f"PT-{engine}-{c}-{p}")
             for s in range(per_patient) for p in range(patients)] for c in range(connections)]


async def test_three_engines_started_together_deliver_every_acked_message_once_in_order_through_kill_9(
        tmp_path: Path, postgres_database: str) -> None:
    url = postgres_database
    kills: list[tuple[float, float]] = []    # (just before SIGKILL, once the process is gone)
    receipts: list[tuple[float, str]] = []

    def record(index: int, payload: bytes) -> str:
        receipts.append((time.monotonic(), control_id_of(payload)))
        return "AA"

    async with FakeLis(answer=record) as lis:
        engines = [engine_in(tmp_path / f"node{n}", url, {"adt.yaml": lis_channel(free_port(), lis.port)})
                   for n in range(3)]
        # All three at the same instant on an empty database: the migrations race is the lock's.
        await asyncio.gather(*(asyncio.to_thread(engine.start, 30.0) for engine, _ in engines))
        started = time.monotonic()
        loads = [Load() for _ in engines]
        per_connection = [plan(n, connections=4, patients=10, per_patient=10) for n in range(3)]
        senders = [asyncio.create_task(send_patients(engine.mllp_port, messages, loads[n]))
                   for n, (engine, _) in enumerate(engines) for messages in per_connection[n]]
        victim = engines[0][0]
        total = sum(len(messages) for connections in per_connection for messages in connections)
        for fraction in (0.3, 0.6):
            while len(loads[0].acked) < fraction * total / 3 and not all(task.done() for task in senders):
                await asyncio.sleep(0.05)
            before = time.monotonic()
            await asyncio.to_thread(victim.kill)
            kills.append((before, time.monotonic()))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(victim.start, 30.0)
        await asyncio.gather(*senders)
        acked = {control_id for load in loads for control_id in load.acked}

        def settled() -> bool:
            delivered, = store_rows(url, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0]
            return delivered >= len(acked)

        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(settled):
            assert time.monotonic() < deadline, "not every ACKed message was delivered within 60s"
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)       # a late duplicate would arrive now
        elapsed = time.monotonic() - started
        for engine, _ in engines:
            engine.stop()

    # The store: one message and one delivery per ACKed message, and one recorded `delivered`
    # attempt per delivery (the issue saw two for 45 deliveries).
    stored = {row[0] for row in store_rows(url, "SELECT control_id FROM messages")}
    assert stored == acked
    recorded = store_rows(url, "SELECT d.id, count(a.id) FROM deliveries d LEFT JOIN delivery_attempts a "
                               "ON a.delivery_id = d.id AND a.outcome = 'delivered' GROUP BY d.id")
    store_duplicates = [row for row in recorded if row[1] != 1]
    not_routed = store_rows(url, "SELECT count(*) FROM messages WHERE status <> 'routed'")[0][0]

    # The receiver: everything ACKed arrived. A second copy is allowed only for a send that was in
    # flight in the process killed between the two copies: the first copy reached the receiver
    # before that process was gone, the second after it was gone (another process took the
    # abandoned delivery over once its lease ran out: at-least-once). Two copies with no kill
    # between them would be two processes holding one delivery.
    copies: dict[str, list[float]] = {}
    for at, control_id in receipts:
        copies.setdefault(control_id, []).append(at)
    missing = acked - set(copies)

    def resent_after(times: list[float], kill: tuple[float, float]) -> bool:
        _, gone = kill
        return times[0] <= gone < times[-1]

    resent_after_kill = [cid for cid, times in copies.items()
                         if len(times) > 1 and any(resent_after(times, kill) for kill in kills)]
    duplicates = [cid for cid, times in copies.items() if len(times) > 1 and cid not in resent_after_kill]
    # Per-patient order as the receiver saw it: the first copies of a patient's messages arrive in
    # sequence, and so do the copies sent again after a kill (the unrecorded tail of a key's run
    # is sent again from its first unrecorded message, in order).
    last: dict[str, int] = {}
    last_resent: dict[str, int] = {}
    arrived: set[str] = set()
    violations = 0
    for _, control_id in receipts:
        patient, seq = control_id.rsplit("S", 1)
        lane = last_resent if control_id in arrived else last
        if int(seq) < lane.get(patient, -1):
            violations += 1
        lane[patient] = int(seq)
        arrived.add(control_id)
    print(f"\nthree engines, {len(kills)} x kill -9 of one: sent={sum(load.sent for load in loads)} "
          f"acked={len(acked)} delivered={len(set(copies) & acked)} receipts={len(receipts)} "
          f"duplicates={len(duplicates)} resent_after_kill={len(resent_after_kill)} "
          f"order_violations={violations} store_duplicates={len(store_duplicates)} not_routed={not_routed} "
          f"seconds={elapsed:.1f}")
    assert len(recorded) == len(acked)
    assert store_duplicates == []
    assert not_routed == 0
    assert len(acked) == total
    assert missing == set()
    assert duplicates == [], [(cid, [round(at - started, 2) for at in copies[cid]],
                               [(round(b - started, 2), round(g - started, 2)) for b, g in kills])
                              for cid in duplicates]
    assert violations == 0
    # What a kill can make send again: per key being sent, the outcomes not yet committed.
    assert len(resent_after_kill) <= len(kills) * MAX_IN_FLIGHT * (OUTCOMES_AHEAD + BATCH)


async def test_two_engines_with_different_channel_sets_report_drift_and_unroute_nothing(
        tmp_path: Path, postgres_database: str) -> None:
    url = postgres_database
    async with FakeLis() as lis:
        port_a, port_b = free_port(), free_port()
        orders = channel_yaml("orders", free_port(), f"""\
            - label: lis
              mllp: {{host: 127.0.0.1, port: {lis.port}}}
            """, message_types="[ORU^R01]")
        (a, http_a), (b, http_b) = (
            engine_in(tmp_path / "a", url, {"adt.yaml": lis_channel(port_a, lis.port)}),
            engine_in(tmp_path / "b", url, {"adt.yaml": lis_channel(port_b, lis.port), "orders.yaml": orders}))
        await asyncio.gather(asyncio.to_thread(a.start, 30.0), asyncio.to_thread(b.start, 30.0))
        try:
            loads = [Load(), Load()]
            await asyncio.gather(*(send_patients(engine.mllp_port, messages, loads[n])
                                   for n, engine in enumerate((a, b))
                                   for messages in plan(n, connections=2, patients=5, per_patient=10)))
            acked = len(loads[0].acked) + len(loads[1].acked)
            deadline = time.monotonic() + 30
            while store_rows(url, "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0] < acked:
                assert time.monotonic() < deadline, dict(store_rows(
                    url, "SELECT status, count(*) FROM messages GROUP BY status"))
                await asyncio.sleep(0.2)
            statuses = dict(store_rows(url, "SELECT status, count(*) FROM messages GROUP BY status"))
            assert statuses == {"routed": acked} and acked == 200

            # Both report the drift: two channel sets, one process each.
            for port in (http_a, http_b):
                health = await asyncio.to_thread(http_json, port, "/healthz")
                drift = health["config_drift"]
                assert drift["detected"] is True
                assert sorted(len(owners) for owners in drift["channel_sets"].values()) == [1, 1]
                assert health["channel_set_hash"] in drift["channel_sets"]
                assert len(health["engine_nodes"]) == 2
            # The gauge follows the heartbeat (every 5 s); the log says it once.
            deadline = time.monotonic() + 15
            while "simpul_config_drift 1.0" not in await asyncio.to_thread(http_text, http_a, "/metrics"):
                assert time.monotonic() < deadline, "simpul_config_drift did not become 1"
                await asyncio.sleep(0.5)
            assert "config drift" in (tmp_path / "a" / "engine.log").read_text()

            # A stops; a message of A's source left `received` (as a crash would leave it) waits:
            # B has no channel for that source, so it neither routes nor unroutes it, and says so.
            a.stop()
            source_a = f"mllp:127.0.0.1:{port_a}"
            store_execute(url, "INSERT INTO messages (received_at, source, status, sending_application, "
                          "sending_facility, receiving_application, receiving_facility, message_type, control_id, "
                          "version_id, charset, content_hash, patient_id, visit_number, placer_number, "
                          "filler_number, accession_number, raw, ack_code, duplicates) VALUES (1.0, :source, "
                          "'received', 'SIMRS', 'RSUD', '', '', 'ADT^A01', 'LEFT-1', '2.5.1', '', '', 'MR9', "
                          "'', '', '', '', :raw, 'AA', 0)", source=source_a, raw=adt("LEFT-1", patient="MR9"))
            health = await asyncio.to_thread(http_json, http_b, "/healthz")
            assert health["unroutable_received"] == {"messages": 1, "sources": {source_a: 1}}
            assert health["config_drift"]["detected"] is False        # A withdrew at its stop
            await asyncio.sleep(1.5)                                  # B's processor polls every second
            assert store_rows(url, "SELECT status FROM messages WHERE control_id = 'LEFT-1'")[0][0] == "received"
            print(f"\ntwo engines, different channel sets: acked={acked} routed={statuses.get('routed')} "
                  f"unrouted={statuses.get('unrouted', 0)} drift=reported unroutable_received=1")
        finally:
            a.stop()
            b.stop()


async def test_two_engines_with_the_same_channels_share_one_source_and_keep_every_patients_order(
        tmp_path: Path, postgres_database: str) -> None:
    """Identical channel files (an HTTP source on "any free port" has the same source key in both):
    no drift, and each patient's messages, posted alternately to the two processes, reach the
    receiver once each and in order, whichever process routed and delivered them."""
    url = postgres_database
    receipts: list[str] = []

    def record(index: int, payload: bytes) -> str:
        receipts.append(control_id_of(payload))
        return "AA"

    async with FakeLis(answer=record) as lis:
        channel = f"""\
name: adt
source:
  http: {{host: 127.0.0.1, port: 0, path: /hl7/adt}}
destinations:
  - label: lis
    order_by: patient
    max_in_flight: {MAX_IN_FLIGHT}
    mllp: {{host: 127.0.0.1, port: {lis.port}, response_timeout: 10s}}
"""
        engines = []
        for name in ("a", "b"):
            folder = tmp_path / name
            (folder / "channels").mkdir(parents=True)
            (folder / "channels" / "adt.yaml").write_text(channel)
            http_port = free_port()
            settings = write_settings(folder, url, http_port=http_port, lease="3s")
            with settings.open("a") as extra:
                extra.write("mapping_workers: 0\n")
            # Ready when the API answers (it starts after the listeners).
            engines.append((EngineProcess(settings, http_port, folder / "engine.log"), http_port))
        await asyncio.gather(*(asyncio.to_thread(engine.start, 30.0) for engine, _ in engines))
        try:
            healths = [await asyncio.to_thread(http_json, port, "/healthz") for _, port in engines]
            assert healths[0]["channel_set_hash"] == healths[1]["channel_set_hash"]
            assert [health["config_drift"]["detected"] for health in healths] == [False, False]
            posts = [health["listeners"]["http:adt/hl7/adt"] for health in healths]
            patients, per_patient = 20, 15

            async def one_patient(p: int) -> None:
                async with httpx.AsyncClient(timeout=10) as client:
                    for s in range(per_patient):
                        response = await client.post(
                            f"http://127.0.0.1:{posts[s % 2]}/hl7/adt", content=adt(f"H{p}S{s:03d}", patient=f"PH{p}"),
                            headers={"Content-Type": "x-application/hl7-v2+er7"})
                        assert segment(response.content, "MSA")[1] == "AA"

            await asyncio.gather(*(one_patient(p) for p in range(patients)))
            total = patients * per_patient
            deadline = time.monotonic() + 40
            while len(set(receipts)) < total:
                assert time.monotonic() < deadline, f"{len(set(receipts))} of {total} delivered"
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)
        finally:
            for engine, _ in engines:
                engine.stop()
    last: dict[str, int] = {}
    violations = 0
    for control_id in receipts:
        patient, seq = control_id.rsplit("S", 1)
        violations += int(seq) < last.get(patient, -1)
        last[patient] = int(seq)
    statuses = dict(store_rows(url, "SELECT status, count(*) FROM messages GROUP BY status"))
    print(f"\ntwo engines, one shared source: acked={total} delivered={len(set(receipts))} "
          f"receipts={len(receipts)} order_violations={violations} statuses={statuses}")
    assert len(receipts) == len(set(receipts)) == total
    assert violations == 0
    assert statuses == {"routed": total}
