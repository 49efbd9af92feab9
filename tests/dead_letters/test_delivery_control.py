"""Delivery control on real sockets: pause/resume (persisted), downtime windows, circuit breaker,
rate limit, and the block-vs-skip policy for a failed head message."""
from __future__ import annotations

import asyncio
import time

import pytest

from simpul.engine.delivery_gate import in_window
from simpul.engine.config.channel import DowntimeWindow
from tests.dead_letters.support import FAST_RETRY, fhir_channel, hh_mm, posted_mrns
from tests.helpers import adt, free_port, send_one


def _delivered(harness) -> int:
    return harness.sql("SELECT count(*) AS n FROM deliveries WHERE status='delivered'")[0].n


async def test_paused_destination_accumulates_while_the_other_flows_then_drains_in_order(
        store_harness, fhir_server, api_factory, tmp_path):
    harness = store_harness                       # on SQLite and PostgreSQL
    port = free_port()
    files = tmp_path / "files"
    more = f"- label: archive\n  order_by: patient\n  file: {{directory: {files}}}\n"
    engine = await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url, retry=FAST_RETRY,
                                                           more_destinations=more)}, http=True)
    api = api_factory(engine)
    await api.post("/api/destinations/adt/fhir/pause", {"reason": "FHIR server maintenance"})
    for n in range(3):
        await send_one(port, adt(f"P-{n}", patient="MRP", event="A08" if n else "A01"))
    await send_one(port, adt("Q-0", patient="MRQ"))
    await harness.wait_for(lambda: len(list(files.glob("*.json"))) == 4)       # the other destination flows
    status = {(r["channel"], r["destination"]): r for r in await api.get("/api/destinations")}
    assert status[("adt", "fhir")]["paused"] is True
    assert status[("adt", "fhir")]["queued"]["pending"] == 4
    assert status[("adt", "fhir")]["pause_reason"] == "FHIR server maintenance"
    assert harness.sql("SELECT count(*) AS n FROM delivery_attempts d JOIN deliveries x ON x.id = d.delivery_id "
                       "WHERE x.destination='fhir'")[0].n == 0
    await _wait_metric(harness, engine.http_port,
                       'simpul_queue_depth{channel="adt",destination="fhir",status="pending"} 4.0')
    # The pause is in the store: it survives a restart of the engine.
    await harness.stop()
    engine = await harness.start(http=True)
    api = api_factory(engine)
    paused = {r["destination"]: r["paused"] for r in await api.get("/api/destinations")}
    assert paused == {"archive": False, "fhir": True}
    await api.post("/api/destinations/adt/fhir/resume", {"reason": "maintenance over"})
    await harness.wait_for(lambda: _delivered(harness) == 8)
    assert [m for m in posted_mrns(fhir_server) if m == "MRP"] == ["MRP"] * 3
    order = [r.control_id for r in harness.sql(
        "SELECT m.control_id FROM deliveries d JOIN messages m ON m.id = d.message_id "
        "WHERE d.destination='fhir' AND m.patient_id='MRP' ORDER BY d.delivered_at")]
    assert order == ["P-0", "P-1", "P-2"]
    actions = [e["action"] for e in await api.get("/api/audit-events", action="destination.*")]
    assert actions[:2] == ["destination.resume", "destination.pause"]


async def _metrics(port: int) -> str:
    import httpx
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


async def _wait_metric(harness, port: int, line: str) -> None:
    deadline = time.monotonic() + 10
    while line not in await _metrics(port):
        assert time.monotonic() < deadline, f"metric never showed {line}"
        await asyncio.sleep(0.05)


async def test_downtime_window_defers_without_counting_attempts(harness, fhir_server, api_factory):
    port = free_port()
    fhir_server.stop()              # if the worker tried, it would fail and record attempts
    now = time.time()
    window = f'downtime: [{{start: "{hh_mm(now, -1)}", end: "{hh_mm(now, 3)}", timezone: UTC}}]'
    engine = await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url, retry=FAST_RETRY,
                                                           extra=window)}, http=True)
    await send_one(port, adt("DT-1", patient="MRD"))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM deliveries"))
    await asyncio.sleep(0.5)
    delivery = harness.sql("SELECT status, attempts FROM deliveries")[0]
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert harness.sql("SELECT count(*) AS n FROM delivery_attempts")[0].n == 0
    assert 'simpul_destination_in_downtime{channel="adt",destination="fhir"} 1.0' in await _metrics(engine.http_port)
    status = (await api_factory(engine).get("/api/destinations"))[0]
    assert status["in_downtime"] is True and status["queued"]["pending"] == 1


@pytest.mark.parametrize(("start", "end", "days", "utc", "inside"), [
    ("22:00", "02:00", ["mon"], "2026-11-23T23:30", True),     # Monday night
    ("22:00", "02:00", ["mon"], "2026-11-24T01:30", True),     # after midnight, window began Monday
    ("22:00", "02:00", ["mon"], "2026-11-25T01:30", False),    # Wednesday 01:30: Tuesday's window is off
    ("22:00", "02:00", ["mon"], "2026-11-24T02:00", False),    # end is exclusive
    ("08:00", "09:00", ["mon", "tue"], "2026-11-24T08:59", True),
])
def test_downtime_windows_wrap_midnight_and_respect_days(start, end, days, utc, inside):
    from datetime import datetime, timezone
    moment = datetime.fromisoformat(utc).replace(tzinfo=timezone.utc).timestamp()
    assert in_window(DowntimeWindow(start=start, end=end, days=days, timezone="UTC"), moment) is inside


def test_downtime_window_in_a_local_time_zone():
    from datetime import datetime, timezone
    # 23:30 in Jakarta (UTC+7) is 16:30 UTC.
    moment = datetime(2026, 11, 23, 16, 30, tzinfo=timezone.utc).timestamp()
    assert in_window(DowntimeWindow(start="23:00", end="01:00", timezone="Asia/Jakarta"), moment)
    assert not in_window(DowntimeWindow(start="23:00", end="01:00", timezone="UTC"), moment)


async def test_circuit_opens_after_consecutive_failures_and_a_probe_closes_it(harness, fhir_server, api_factory):
    port = free_port()
    fhir_server.stop()
    open_for = 3.0
    breaker = f"circuit_breaker: {{failures: 2, open_for: {open_for:g}s}}"
    retry = "retry: {max_attempts: 50, initial_delay: 20ms, max_delay: 20ms, jitter: false}"
    engine = await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url, retry=retry,
                                                           extra=breaker)}, http=True)
    await send_one(port, adt("CB-1", patient="MRC"))
    await harness.wait_for(lambda: harness.sql("SELECT count(*) AS n FROM delivery_attempts")[0].n >= 2)
    await _wait_metric(harness, engine.http_port,
                       'simpul_destination_circuit_state{channel="adt",destination="fhir"} 1.0')
    # Open: with 20 ms retries there would be an attempt every few polls; the circuit holds them
    # back for the whole window. Checked against the store's own time of the second failure, so a
    # slow machine checks less often but never checks past the window.
    opened_at = harness.sql("SELECT max(finished_at) AS opened FROM delivery_attempts")[0].opened
    checks = 0
    while time.time() < opened_at + open_for - 0.5:
        assert harness.sql("SELECT count(*) AS n FROM delivery_attempts")[0].n == 2
        checks += 1
        await asyncio.sleep(0.1)
    assert checks >= 3, "the machine was too slow to look inside the open window"
    fhir_server.start()
    await harness.wait_for(lambda: _delivered(harness) == 1, timeout=15)
    assert harness.sql("SELECT count(*) AS n FROM delivery_attempts")[0].n == 3      # exactly one probe
    await _wait_metric(harness, engine.http_port,
                       'simpul_destination_circuit_state{channel="adt",destination="fhir"} 0.0')


async def test_rate_limit_spreads_sends(harness, tmp_path):
    port = free_port()
    out = tmp_path / "out"
    from tests.helpers import channel_yaml
    await harness.start({"adt.yaml": channel_yaml("adt", port, f"""\
        - label: out
          order_by: none
          rate_limit: {{per_second: 5, burst: 1}}
          file: {{directory: {out}}}
        """)})
    for n in range(6):
        await send_one(port, adt(f"RL-{n}", patient=f"MR{n}"))
    await harness.wait_for(lambda: _delivered(harness) == 6)
    times = sorted(r.delivered_at for r in harness.sql("SELECT delivered_at FROM deliveries"))
    assert times[-1] - times[0] >= 0.8          # 6 sends at 5/s with a burst of 1: at least 5 gaps of 0.2 s


def _statuses(harness) -> dict[str, str]:
    return {r.control_id: r.status for r in harness.sql(
        "SELECT m.control_id, d.status FROM deliveries d JOIN messages m ON m.id = d.message_id")}


async def test_block_policy_holds_only_the_failed_key_until_replay_then_keeps_order(harness, fhir_server,
                                                                                   api_factory):
    """MRA fails (503) while MRB is served, at the same time: MRB flows while MRA's head is retried,
    then held; MRA's second message waits until the replay, then both go in order."""
    port = free_port()
    fhir_server.fail_identifier("MRA", status=503)
    slow_retry = "retry: {max_attempts: 3, initial_delay: 300ms, max_delay: 300ms, jitter: false}"
    engine = await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url, retry=slow_retry,
                                                           extra="on_failure: block")}, http=True)
    await send_one(port, adt("BL-1", patient="MRA"))
    await send_one(port, adt("BL-3", patient="MRB"))
    await send_one(port, adt("BL-2", patient="MRA", event="A08"))
    def head() -> tuple[str, int]:
        row = harness.sql("SELECT d.status, d.attempts FROM deliveries d JOIN messages m ON m.id = d.message_id "
                          "WHERE m.control_id = 'BL-1'")
        return (row[0].status, row[0].attempts) if row else ("", 0)

    # MRB flows while MRA has failed at least once and is not yet dead-lettered (3 tries, 0.3 s apart).
    await harness.wait_for(lambda: _delivered(harness) == 1 and head()[1] >= 1)
    assert head()[0] in ("pending", "in_flight")
    await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
    fhir_server.clear_identifier("MRA")
    await asyncio.sleep(0.3)
    assert _statuses(harness) == {"BL-1": "held", "BL-2": "pending", "BL-3": "delivered"}
    api = api_factory(engine)
    queue = await api.get("/api/destinations/adt/fhir/queue")
    assert [row["control_id"] for row in queue] == ["BL-1", "BL-2"]
    await api.post("/api/dead-letters/replay", {"patient_id": "MRA", "confirm": True, "reason": "fixed"})
    await harness.wait_for(lambda: _delivered(harness) == 3)
    order = [r.control_id for r in harness.sql(
        "SELECT m.control_id FROM deliveries d JOIN messages m ON m.id = d.message_id "
        "WHERE d.status='delivered' AND m.patient_id='MRA' ORDER BY d.delivered_at")]
    assert order == ["BL-1", "BL-2"]


async def test_skip_policy_poison_message_does_not_hold_up_its_own_or_other_keys(harness, fhir_server):
    """MRA's message is rejected while MRB's is accepted at the same time; after the dead letter
    MRA's next message is delivered (skip: the key moves on)."""
    port = free_port()
    fhir_server.reject_identifier("MRA", "poison for MRA")
    await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)})
    await send_one(port, adt("SK-1", patient="MRA"))
    await send_one(port, adt("SK-3", patient="MRB"))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
    await harness.wait_for(lambda: _delivered(harness) == 1)
    fhir_server.clear_identifier("MRA")
    await send_one(port, adt("SK-2", patient="MRA", event="A08"))
    await harness.wait_for(lambda: _delivered(harness) == 2)
    assert _statuses(harness) == {"SK-1": "dead", "SK-2": "delivered", "SK-3": "delivered"}


async def test_discarding_a_held_dead_letter_releases_its_key(harness, fhir_server, api_factory):
    port = free_port()
    fhir_server.reject_next(1)
    engine = await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url, extra="on_failure: block")},
                                 http=True)
    await send_one(port, adt("HD-1", patient="MRH"))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
    await send_one(port, adt("HD-2", patient="MRH", event="A08"))
    await asyncio.sleep(0.3)
    assert _delivered(harness) == 0
    await api_factory(engine).post("/api/dead-letters/discard", {"control_id": "HD-1",
                                                                           "reason": "duplicate from sender"})
    await harness.wait_for(lambda: _delivered(harness) == 1)
