"""RabbitMQ source and destination in a running engine, against the real broker on 127.0.0.1:5672."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simpul.connectors.cloudevents import build_event
from simpul.engine.events import emit_event

from tests.broker import connect_or_skip, depth, drain, publish, remove, unique
from tests.helpers import EngineHarness, oru
from tests.mappings.test_fhir_to_v2 import order_bundle

DISCHARGE = {"resourceType": "Encounter", "status": "finished", "class": {"code": "IMP"},
             "identifier": [{"value": "V-1"}], "subject": {"identifier": {"value": "RM-0042"}}}


@pytest.fixture
async def names() -> AsyncIterator[dict[str, str]]:
    connection = await connect_or_skip()
    await connection.close()
    made = {"exchange": unique("emr"), "queue": unique("in"), "out": unique("out")}
    yield made
    await remove(queues=[made["queue"], made["queue"] + ".dead", made["out"]],
                 exchanges=[made["exchange"], made["queue"] + ".dead"])


def source_channel(names: dict[str, str], out: Path, *, mapping: str = "fhir_to_oml_o21",
                   event_types: str = "[lab_order_*]") -> str:
    return f"""\
name: emr-orders
source:
  rabbitmq:
    exchange: {names['exchange']}
    queue: {names['queue']}
    binding_keys: ["#"]
filter:
  event_types: {event_types}
mapping:
  builtin: {mapping}
  header: {{sending_application: SIMPUL, receiving_application: LIS}}
destinations:
  - label: lis
    order_by: placer
    file: {{directory: {out}}}
"""


async def test_an_order_event_is_stored_once_and_goes_to_the_lis_as_oml(
        names: dict[str, str], harness: EngineHarness, tmp_path: Path) -> None:
    out = tmp_path / "out"
    await harness.start({"orders.yaml": source_channel(names, out)})
    order = build_event("lab_order_created", data=order_bundle(), source="emr/orders", id="evt-1",
                        subject="ServiceRequest/sr")
    for _ in range(3):      # the EMR publishes it three times (its own retry): one message
        await publish(names["exchange"], "lab_order_created", order)
    discharged = build_event("patient_discharged", data=DISCHARGE, source="emr/adt", id="evt-2")
    await publish(names["exchange"], "patient_discharged", discharged)

    files = await harness.wait_for(lambda: list(out.glob("*.hl7")))
    text = files[0].read_text()
    assert text.startswith("MSH|^~\\&|SIMPUL||LIS||") and "OML^O21^OML_O21" in text
    assert "|ORD-1^" in text and "RM-0042" in text
    await harness.wait_for(lambda: harness.sql(
        "SELECT count(*) FROM messages WHERE status IN ('routed', 'unrouted')")[0][0] == 2)
    rows = harness.sql("SELECT control_id, sending_application, message_type, status, patient_id, placer_number "
                       "FROM messages ORDER BY id")
    assert [tuple(row) for row in rows] == [
        ("evt-1", "emr/orders", "lab_order_created", "routed", "RM-0042", "ORD-1"),
        # the channel's filter takes lab_order_* only; the discharge is stored, taken by no channel
        ("evt-2", "emr/adt", "patient_discharged", "unrouted", "RM-0042", "")]
    assert await depth(names["queue"]) == 0
    assert len(list(out.iterdir())) == 1


async def test_an_unreadable_body_is_stored_rejected_and_dead_lettered_once(
        names: dict[str, str], harness: EngineHarness, tmp_path: Path) -> None:
    await harness.start({"orders.yaml": source_channel(names, tmp_path / "out")})
    await publish(names["exchange"], "lab_order_created", b'{"specversion": "1.0", "type": "lab_order_created"}')
    await publish(names["exchange"], "lab_order_created", b'{"this is": not json')
    await harness.wait_for(lambda: harness.sql("SELECT count(*) FROM messages")[0][0] == 2)
    rows = harness.sql("SELECT status, error FROM messages ORDER BY id")
    assert [row[0] for row in rows] == ["rejected", "rejected"]
    assert rows[0][1] == "id: required, a non-empty string" and "not JSON" in rows[1][1]
    dead = []
    for _ in range(50):
        dead += await drain(names["queue"] + ".dead")
        if len(dead) == 2:
            break
        await harness.wait_for(lambda: True, timeout=0.1)
    assert sorted(message.body for message in dead) == sorted(
        [b'{"specversion": "1.0", "type": "lab_order_created"}', b'{"this is": not json'])
    assert await depth(names["queue"]) == 0


async def test_raw_hl7v2_on_the_queue_takes_the_mllp_path(
        names: dict[str, str], harness: EngineHarness, tmp_path: Path) -> None:
    out = tmp_path / "out"
    channel = source_channel(names, out, mapping="v2_to_fhir", event_types="[]")
    await harness.start({"lab.yaml": channel.replace("order_by: placer", "order_by: patient")})
    await publish(names["exchange"], "lab_result", oru("L-77"), content_type="x-application/hl7-v2+er7")
    await publish(names["exchange"], "lab_result", oru("L-77"), content_type="x-application/hl7-v2+er7")
    files = await harness.wait_for(lambda: list(out.glob("*.json")))
    bundle = json.loads(files[0].read_bytes())
    assert bundle["resourceType"] == "Bundle"
    await harness.wait_for(lambda: harness.sql("SELECT duplicates FROM messages") == [(1,)])
    rows = harness.sql("SELECT control_id, message_type, sending_application FROM messages")
    assert [tuple(row) for row in rows] == [("L-77", "ORU^R01", "LIS")]


async def test_an_emitted_event_is_published_persistent_with_its_idempotency_key(
        names: dict[str, str], harness: EngineHarness, tmp_path: Path) -> None:
    channel = f"""\
name: notify
source:
  events: {{types: [critical_result]}}
destinations:
  - label: emr
    order_by: none
    rabbitmq:
      exchange: {names['exchange']}
      queue: {names['out']}
"""
    engine = await harness.start({"notify.yaml": channel})
    assert engine.writer is not None
    data = {"resourceType": "Observation", "status": "final", "code": {"text": "K"},
            "subject": {"identifier": {"value": "MR9"}}}
    await engine.writer.run(lambda connection: emit_event(connection, "critical_result", subject="Observation/k",
                                                          data=data, priority=True))
    await harness.wait_for(lambda: harness.sql("SELECT status FROM deliveries") == [("delivered",)])
    (message,) = await drain(names["out"])
    event = json.loads(message.body)
    assert event["type"] == "critical_result" and event["data"] == data
    assert message.routing_key == "critical_result" and message.message_id == event["id"]
    assert message.delivery_mode == 2 and message.content_type == "application/cloudevents+json"
    delivery_id = harness.sql("SELECT id FROM deliveries")[0][0]
    assert message.headers["idempotency-key"] == f"notify/emr/{delivery_id}"
