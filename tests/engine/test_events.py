"""Business events the engine emits (simpul/engine/events.py) and the `events` channel source."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from simpul.engine.events import emit_event
from simpul.errors import ConfigError
from simpul.store.database import open_database
from simpul.store.rows import message_row
from simpul.store.schema import messages
from simpul.store.status import MessageStatus
from simpul.v2 import extract_business_keys, read_body, read_header

from tests.helpers import EngineHarness, adt, free_port

CRITICAL = {"resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2823-3"}]},
            "subject": {"identifier": {"value": "MR777"}},
            "interpretation": [{"coding": [{"code": "HH"}]}]}


def events_channel(name: str, types: list[str], directory: Path) -> str:
    return (f"name: {name}\nsource:\n  events: {{types: {json.dumps(types)}}}\n"
            f"destinations:\n  - label: out\n    payload: raw\n    order_by: none\n"
            f"    file: {{directory: {directory}}}\n")


def bulk_channel(port: int, directory: Path) -> str:
    return (f"name: bulk\nsource:\n  mllp: {{host: 127.0.0.1, port: {port}}}\n"
            f"destinations:\n  - label: out\n    payload: raw\n    order_by: none\n"
            f"    file: {{directory: {directory}}}\n")


async def test_an_emitted_event_reaches_the_channels_that_take_its_type(harness: EngineHarness,
                                                                        tmp_path: Path) -> None:
    out, other = tmp_path / "out", tmp_path / "other"
    engine = await harness.start({"critical.yaml": events_channel("critical", ["critical_result"], out),
                                  "admit.yaml": events_channel("admit", ["patient_admitted"], other)})
    assert engine.writer is not None
    await engine.writer.run(lambda connection: emit_event(
        connection, "critical_result", subject="Observation/obs-1", data=CRITICAL, source="simpul/lis-loop",
        priority=True))
    files = await harness.wait_for(lambda: list(out.glob("*.json")))
    event = json.loads(files[0].read_bytes())
    assert event["specversion"] == "1.0" and event["type"] == "critical_result"
    assert event["source"] == "simpul/lis-loop" and event["subject"] == "Observation/obs-1"
    assert event["datacontenttype"] == "application/fhir+json" and event["data"] == CRITICAL
    assert len(event["id"]) == 36 and event["time"].endswith("Z")
    # The row is searchable like any message: type, id, patient.
    row = harness.sql("SELECT source, status, message_type, control_id, patient_id, priority FROM messages")[0]
    assert tuple(row) == ("event:critical_result", "routed", "critical_result", event["id"], "MR777", 1)
    assert not other.exists() or not list(other.iterdir())


async def test_an_event_is_stored_only_with_the_transaction_that_emits_it(harness: EngineHarness,
                                                                          tmp_path: Path) -> None:
    engine = await harness.start({"critical.yaml": events_channel("critical", ["critical_result"], tmp_path / "o")})
    assert engine.writer is not None

    def emit_then_fail(connection: sa.Connection) -> None:
        emit_event(connection, "critical_result", subject="Observation/x", data=CRITICAL)
        raise RuntimeError("the work that caused the event failed")

    with pytest.raises(RuntimeError):
        await engine.writer.run(emit_then_fail)
    assert harness.sql("SELECT count(*) FROM messages")[0][0] == 0


def test_a_type_that_cannot_be_a_routing_key_is_refused(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 's.db'}")
    with db.begin() as connection, pytest.raises(ConfigError, match="not a valid name"):
        emit_event(connection, "critical result!", subject="x", data={})
    db.dispose()


async def test_a_priority_event_is_routed_and_delivered_ahead_of_a_backlog(tmp_path: Path, sqlite_url: str) -> None:
    """2,000 messages already wait to be routed; the critical result emitted after them is
    delivered before every one of them, an ordinary event after them all."""
    port = free_port()
    db = open_database(sqlite_url)
    now = time.time()
    with db.begin() as connection:
        rows = []
        for n in range(2000):
            raw = adt(f"B{n}", patient=f"MR{n}")
            header = read_header(raw)
            body = read_body(raw, header)
            keys = extract_business_keys(body.lines, header.field_separator, header.component_separator,
                                         header.repetition_separator)
            rows.append(message_row(f"mllp:127.0.0.1:{port}", MessageStatus.RECEIVED, now, raw, None, "AA",
                                    charset="utf-8", content_hash=hashlib.md5(raw).hexdigest(),
                                    header=header, keys=keys))
        connection.execute(messages.insert(), rows)
        emit_event(connection, "lab_result_received", subject="Observation/o2", data=CRITICAL)
        emit_event(connection, "critical_result", subject="Observation/o1", data=CRITICAL, priority=True)
    db.dispose()
    harness = EngineHarness(tmp_path, sqlite_url)
    await harness.start({"bulk.yaml": bulk_channel(port, tmp_path / "bulk"),
                         "events.yaml": events_channel("events", ["critical_result", "lab_result_received"],
                                                       tmp_path / "events")})
    try:
        await harness.wait_for(lambda: harness.sql(
            "SELECT count(*) FROM deliveries WHERE status = 'delivered'")[0][0] == 2002, timeout=60)
        order = {row[0]: row[1] for row in harness.sql(
            "SELECT m.message_type, min(d.delivered_at) FROM deliveries d JOIN messages m ON m.id = d.message_id "
            "GROUP BY m.message_type")}
        first_bulk = order["ADT^A01"]
        assert order["critical_result"] < first_bulk
        assert order["lab_result_received"] > first_bulk
    finally:
        await harness.stop()


async def test_an_events_channel_validates_its_types(harness: EngineHarness, tmp_path: Path) -> None:
    harness.write_channel("bad.yaml", "name: bad\nsource:\n  events: {types: [\"no spaces\"]}\n"
                                      "destinations:\n  - label: out\n    file: {directory: out}\n")
    with pytest.raises(ConfigError) as caught:
        await harness.start()
    assert "is not an event type" in " ".join(caught.value.findings)
