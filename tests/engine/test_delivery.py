"""Delivery to real receivers: a FHIR server that is down and comes back, one that rejects,
FIFO per patient, and the mllp destination's ACK handling."""
from __future__ import annotations

import json

import pytest

from simpul.mllp.sender import open_mllp_connection
from tests.fakes.fake_lis import FakeLis
from tests.helpers import adt, channel_yaml, free_port, segment, send_one

FAST_RETRY = "retry: {max_attempts: 50, initial_delay: 50ms, max_delay: 200ms, jitter: false}"


def fhir_channel(port: int, base_url: str, retry: str = FAST_RETRY, order_by: str = "patient") -> str:
    return channel_yaml("adt", port, f"""\
        - label: fhir
          order_by: {order_by}
          fhir_server: {{base_url: "{base_url}", timeout: 2s}}
          {retry}
        """)


async def test_fhir_server_down_then_back_gets_every_bundle_after_retries(harness, fhir_server):
    port = free_port()
    fhir_server.stop()
    await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)})
    for n in range(3):
        ack = await send_one(port, adt(f"DOWN-{n}", patient=f"MR{n}"))
        assert segment(ack, "MSA")[1] == "AA"          # ACKed while the destination is down
    await harness.wait_for(lambda: harness.sql(
        "SELECT count(*) AS n FROM delivery_attempts WHERE outcome='retry'")[0].n >= 3)
    fhir_server.start()
    await harness.wait_for(lambda: harness.sql(
        "SELECT count(*) AS n FROM deliveries WHERE status='delivered'")[0].n == 3)
    patients = fhir_server.resources("Patient")
    assert sorted(p["identifier"][0]["value"] for p in patients) == ["MR0", "MR1", "MR2"]
    assert harness.sql("SELECT count(*) AS n FROM dead_letters")[0].n == 0


async def test_5xx_is_retried_until_accepted_in_order(harness, fhir_server):
    port = free_port()
    fhir_server.fail_next(2, status=503)
    await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)})
    await send_one(port, adt("FIVE-1", patient="MR5"))
    await send_one(port, adt("FIVE-2", patient="MR5", event="A08"))
    await harness.wait_for(lambda: harness.sql(
        "SELECT count(*) AS n FROM deliveries WHERE status='delivered'")[0].n == 2)
    attempts = harness.sql("SELECT m.control_id, a.outcome FROM delivery_attempts a "
                           "JOIN deliveries d ON d.id = a.delivery_id JOIN messages m ON m.id = d.message_id "
                           "ORDER BY a.id")
    assert [(a.control_id, a.outcome) for a in attempts] == [
        ("FIVE-1", "retry"), ("FIVE-1", "retry"), ("FIVE-1", "delivered"), ("FIVE-2", "delivered")]
    assert len(fhir_server.resources("Patient")) == 1


async def test_a_bundle_resent_after_its_answer_was_lost_creates_no_second_patient(harness, fhir_server):
    """The server applies the Bundle but its answer comes after the client's timeout: the engine
    retries with the same Bundle, which the server applies again without a second Patient or a
    new Patient version (conditional update, no-op detection)."""
    port = free_port()
    fhir_server.delay(3.0)                                  # longer than the channel's 2 s timeout
    await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)})
    await send_one(port, adt("LOST-1", patient="MRLOST"))
    await harness.wait_for(lambda: [r for r in fhir_server.requests if r.method == "POST"])
    fhir_server.delay(0)                                    # the retry is answered at once
    await harness.wait_for(lambda: harness.sql(
        "SELECT count(*) AS n FROM deliveries WHERE status='delivered'")[0].n == 1, timeout=20)
    posts = [r for r in fhir_server.requests if r.method == "POST"]
    assert len(posts) == 2 and posts[0].body == posts[1].body          # the same Bundle, sent twice
    assert [a.outcome for a in harness.sql("SELECT outcome FROM delivery_attempts ORDER BY id")] == [
        "retry", "delivered"]
    [patient] = fhir_server.resources("Patient")
    assert len(fhir_server.history("Patient", patient["id"])) == 1


async def test_400_goes_to_dead_letters_with_the_operation_outcome(harness, fhir_server):
    port = free_port()
    fhir_server.reject_next(1)
    await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)})
    raw = adt("BAD-1", patient="MR400")
    await send_one(port, raw)
    await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
    dead = harness.sql("SELECT * FROM dead_letters")[0]
    assert (dead.channel, dead.destination, dead.stage, dead.error_class) == ("adt", "fhir", "fhir", "ConnectorRejected")
    assert bytes(dead.raw) == raw and dead.patient_id == "MR400" and dead.control_id == "BAD-1"
    assert "400" in dead.error
    delivery = harness.sql("SELECT status, attempts, last_response FROM deliveries")[0]
    assert delivery.status == "dead" and delivery.attempts == 1
    assert json.loads(delivery.last_response)["resourceType"] == "OperationOutcome"


def _deliveries(harness) -> dict[str, tuple[str, int]]:
    return {r.control_id: (r.status, r.attempts) for r in harness.sql(
        "SELECT m.control_id, d.status, d.attempts FROM deliveries d JOIN messages m ON m.id = d.message_id")}


async def test_a_failing_patient_blocks_only_its_own_messages(harness, fhir_server):
    """MRA's Bundles fail (503) while MRB's are accepted, at the same time: MRB's messages are
    delivered while MRA's head is still being retried and MRA's second message waits, unsent."""
    port = free_port()
    fhir_server.fail_identifier("MRA", status=503)
    await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)})
    await send_one(port, adt("ORD-1", patient="MRA"))
    await send_one(port, adt("B-1", patient="MRB"))
    await send_one(port, adt("ORD-2", patient="MRA", event="A08"))
    await send_one(port, adt("B-2", patient="MRB", event="A08"))
    await harness.wait_for(lambda: _deliveries(harness).get("B-2", ("",))[0] == "delivered")
    # Read at once, while MRA is still failing (its retry policy allows 50 attempts).
    states = _deliveries(harness)
    assert states["B-1"][0] == "delivered"
    assert states["ORD-1"][0] in ("pending", "in_flight") and states["ORD-1"][1] > 0
    # Never sent ahead of its patient's head: no attempt. (It may be claimed with its head's run
    # for a moment, in_flight, until the head's failure puts it back to pending unsent.)
    assert states["ORD-2"][0] in ("pending", "in_flight") and states["ORD-2"][1] == 0
    assert harness.sql("SELECT count(*) AS n FROM dead_letters")[0].n == 0
    fhir_server.clear_identifier("MRA")
    await harness.wait_for(lambda: harness.sql(
        "SELECT count(*) AS n FROM deliveries WHERE status='delivered'")[0].n == 4)
    order = [r.control_id for r in harness.sql(
        "SELECT m.control_id FROM deliveries d JOIN messages m ON m.id = d.message_id "
        "WHERE m.patient_id = 'MRA' ORDER BY d.delivered_at")]
    assert order == ["ORD-1", "ORD-2"]


async def test_other_patients_flow_while_one_patient_is_dead_lettered_then_the_key_moves_on(harness, fhir_server):
    """Every MRX Bundle is rejected (400, final) while MRY's are accepted: MRY flows, and each MRX
    message becomes its own dead letter in turn (skip policy: the key moves on)."""
    port = free_port()
    fhir_server.reject_identifier("MRX", "MRX rejected by the receiver")
    await harness.start({"adt.yaml": fhir_channel(port, fhir_server.base_url)})
    await send_one(port, adt("K-1", patient="MRX"))
    await send_one(port, adt("K-3", patient="MRY"))
    await send_one(port, adt("K-2", patient="MRX", event="A08"))
    await send_one(port, adt("K-4", patient="MRY", event="A08"))
    await harness.wait_for(lambda: harness.sql("SELECT count(*) AS n FROM dead_letters")[0].n == 2)
    await harness.wait_for(lambda: harness.sql(
        "SELECT count(*) AS n FROM deliveries WHERE status='delivered'")[0].n == 2)
    states = _deliveries(harness)
    assert states == {"K-1": ("dead", 1), "K-2": ("dead", 1), "K-3": ("delivered", 1), "K-4": ("delivered", 1)}
    dead = [r.control_id for r in harness.sql("SELECT control_id FROM dead_letters ORDER BY id")]
    assert dead == ["K-1", "K-2"]                         # in the patient's order
    assert sorted(p["identifier"][0]["value"] for p in fhir_server.resources("Patient")) == ["MRY"]


async def test_retry_policy_exhaustion_dead_letters_with_every_attempt_recorded(harness, fhir_server):
    port = free_port()
    fhir_server.stop()
    await harness.start({"adt.yaml": fhir_channel(
        port, fhir_server.base_url, retry="retry: {max_attempts: 3, initial_delay: 20ms, max_delay: 50ms}")})
    await send_one(port, adt("EX-1"))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
    dead = harness.sql("SELECT attempts, error_class, stage FROM dead_letters")[0]
    assert (dead.attempts, dead.error_class, dead.stage) == (3, "ConnectorUnavailable", "fhir")
    attempts = harness.sql("SELECT outcome FROM delivery_attempts ORDER BY id")
    assert [a.outcome for a in attempts] == ["retry", "retry", "failed"]


def mllp_channel(port: int, lis_port: int) -> str:
    return channel_yaml("to-lis", port, f"""\
        - label: lis
          mllp: {{host: 127.0.0.1, port: {lis_port}, response_timeout: 2s}}
          {FAST_RETRY}
        """)


async def test_mllp_destination_retries_ae_and_forwards_the_original_bytes(harness):
    async with FakeLis(ack_codes=["AE", "AE", "AA"]) as lis:
        port = free_port()
        await harness.start({"lis.yaml": mllp_channel(port, lis.port)})
        raw = adt("FWD-1")
        await send_one(port, raw)
        await harness.wait_for(lambda: harness.sql("SELECT id FROM deliveries WHERE status='delivered'"))
        assert lis.received == [raw, raw, raw]
        assert lis.answered == ["AE", "AE", "AA"]
        response = harness.sql("SELECT last_response FROM deliveries")[0].last_response
        assert "MSA|AA|FWD-1" in response


async def test_mllp_destination_ar_is_final(harness):
    async with FakeLis(ack_code="AR") as lis:
        port = free_port()
        await harness.start({"lis.yaml": mllp_channel(port, lis.port)})
        await send_one(port, adt("REJ-1"))
        await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
        assert len(lis.received) == 1
        assert harness.sql("SELECT error_class FROM dead_letters")[0].error_class == "ConnectorRejected"


@pytest.mark.parametrize("knob", ["close_before_ack_every", "wrong_control_id_every", "drop_end_block_every"])
async def test_mllp_destination_recovers_from_a_misbehaving_peer(harness, knob):
    async with FakeLis(**{knob: 1}) as lis:
        port = free_port()
        await harness.start({"lis.yaml": mllp_channel(port, lis.port)})
        await send_one(port, adt("ODD-1"))
        await harness.wait_for(lambda: harness.sql(
            "SELECT count(*) AS n FROM delivery_attempts WHERE outcome='retry'")[0].n >= 2)
        setattr(lis, knob, 0)
        await harness.wait_for(lambda: harness.sql("SELECT id FROM deliveries WHERE status='delivered'"))


async def test_one_busy_key_streams_in_order_and_a_failure_mid_stream_is_retried_before_its_successors(harness):
    """One patient's messages keep arriving while earlier ones are sent (the worker claims each
    key's continuation while sending it). The LIS refuses message 60 once (AE): the receiver sees
    every message, the refused one again right after itself and before anything that follows it."""
    refused: list[str] = []

    def answer(index: int, payload: bytes) -> str:
        control_id = payload.split(b"\r", 1)[0].split(b"|")[9].decode()
        if control_id == "ONE-060" and not refused:
            refused.append(control_id)
            return "AE"
        return "AA"

    async with FakeLis(answer=answer) as lis:
        port = free_port()
        await harness.start({"lis.yaml": channel_yaml("to-lis", port, f"""\
            - label: lis
              run_length: 20
              mllp: {{host: 127.0.0.1, port: {lis.port}, response_timeout: 2s}}
              {FAST_RETRY}
            """)})
        connection = await open_mllp_connection("127.0.0.1", port)
        try:
            for n in range(150):
                await connection.send(adt(f"ONE-{n:03d}", patient="MRBUSY"))
        finally:
            await connection.close()
        await harness.wait_for(lambda: harness.sql(
            "SELECT count(*) AS n FROM deliveries WHERE status='delivered'")[0].n == 150, timeout=60)
    received = [payload.split(b"\r", 1)[0].split(b"|")[9].decode() for payload in lis.received]
    assert refused == ["ONE-060"]
    expected = [f"ONE-{n:03d}" for n in range(150)]
    assert received == expected[:61] + expected[60:]
