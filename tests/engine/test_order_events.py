"""Order tracking raises business events through emit_event: lab_result_received for every result,
critical_result at once (ahead of a backlog), order_overdue when a STAT order misses its SLA."""
from __future__ import annotations

import hashlib
import json
import textwrap
import time
from pathlib import Path

from simpul.store.database import open_database
from simpul.store.migrate import upgrade_to_head
from simpul.store.rows import message_row
from simpul.store.schema import messages
from simpul.store.status import MessageStatus
from simpul.v2 import extract_business_keys, read_body, read_header
from simpul.engine.events import emit_event

from tests.engine.test_events import events_channel
from tests.engine.test_lab_loop import answer_ok, service_request, steps
from tests.fakes.fake_lis import FakeLis, order_result
from tests.helpers import EngineHarness, free_port, send_one


def results_channel(port: int, directory: Path) -> str:
    return textwrap.dedent(f"""\
        name: lab-results
        source:
          mllp: {{host: 127.0.0.1, port: {port}}}
        filter:
          message_types: [ORU^R01]
        orders:
          kind: lab
        destinations:
          - label: archive
            payload: raw
            order_by: none
            file: {{directory: {directory}}}
        """)


def events_of(directory: Path) -> list[dict]:
    return [json.loads(path.read_bytes()) for path in sorted(directory.glob("*.json"))]


async def test_result_events_carry_the_order_and_critical_values(tmp_path: Path, sqlite_url: str) -> None:
    port = free_port()
    harness = EngineHarness(tmp_path, sqlite_url)
    await harness.start({"results.yaml": results_channel(port, tmp_path / "archive"),
                         "critical.yaml": events_channel("critical", ["critical_result"], tmp_path / "critical"),
                         "lab.yaml": events_channel("lab", ["lab_result_received"], tmp_path / "lab")})
    try:
        await send_one(port, order_result("E1", placer="PLE1", filler="FLE1", value="7.2", flag="HH"))
        await harness.wait_for(lambda: events_of(tmp_path / "critical") and events_of(tmp_path / "lab"))
        critical = events_of(tmp_path / "critical")[0]
        assert critical["type"] == "critical_result" and critical["source"] == "simpul/orders"
        # Without a FHIR mapping on the channel, the Observation is built from the OBX.
        observation = critical["data"]
        assert observation["resourceType"] == "Observation" and observation["valueString"] == "7.2 mmol/L"
        assert observation["interpretation"][0]["coding"][0]["code"] == "HH"
        assert observation["basedOn"][0]["identifier"]["value"] == "PLE1"
        assert critical["subject"] == "ServiceRequest/PLE1"
        lab = events_of(tmp_path / "lab")[0]
        assert lab["data"]["result_status"] == "final" and lab["data"]["patient_id"] == "MR001"
        assert lab["data"]["unknown"] is True and lab["data"]["filler_number"] == "FLE1"
    finally:
        await harness.stop()


async def test_a_critical_result_event_is_delivered_before_the_backlog(tmp_path: Path, sqlite_url: str) -> None:
    """600 results wait to be routed, the critical one last; its critical_result event is delivered
    before any lab_result_received event of the results that came before it."""
    port = free_port()
    harness = EngineHarness(tmp_path, sqlite_url)
    channels = {"results.yaml": results_channel(port, tmp_path / "archive"),
                "critical.yaml": events_channel("critical", ["critical_result"], tmp_path / "critical"),
                "lab.yaml": events_channel("lab", ["lab_result_received"], tmp_path / "lab")}
    db = open_database(sqlite_url)
    upgrade_to_head(db)         # the backlog is stored before any engine runs
    now = time.time()
    with db.begin() as connection:
        rows = []
        for n in range(600):
            critical = n == 599
            raw = order_result(f"B{n}", placer=f"PLB{n}", filler=f"FLB{n}", value="7.4" if critical else "4.2",
                               flag="HH" if critical else "N")
            header = read_header(raw)
            body = read_body(raw, header)
            keys = extract_business_keys(body.lines, header.field_separator, header.component_separator,
                                         header.repetition_separator)
            rows.append(message_row(f"mllp:127.0.0.1:{port}", MessageStatus.RECEIVED, now, raw, None, "AA",
                                    charset="utf-8", content_hash=hashlib.md5(raw).hexdigest(),
                                    header=header, keys=keys))
        connection.execute(messages.insert(), rows)
    db.dispose()
    await harness.start(channels)
    try:
        await harness.wait_for(lambda: harness.sql(
            "SELECT count(*) FROM deliveries WHERE channel = 'lab' AND status = 'delivered'")[0][0] == 600,
            timeout=120)
        first = {row[0]: row[1] for row in harness.sql(
            "SELECT channel, min(delivered_at) FROM deliveries WHERE channel IN ('critical', 'lab') "
            "GROUP BY channel")}
        assert first["critical"] < first["lab"]
    finally:
        await harness.stop()


async def test_a_lab_order_created_event_goes_to_the_lis_as_oml_and_is_tracked(tmp_path: Path, sqlite_url: str) -> None:
    """The EMR's lab_order_created event (a ServiceRequest; here emitted in-process, from RabbitMQ it
    is the same channel with a rabbitmq source) is written as OML^O21 and its order gets a timeline."""
    harness = EngineHarness(tmp_path, sqlite_url)
    async with FakeLis(order_answer=answer_ok) as lis:
        channel = textwrap.dedent(f"""\
            name: emr-lab-orders
            source:
              events: {{types: [lab_order_created]}}
            mapping:
              builtin: fhir_to_oml_o21
              header: {{receiving_application: LIS}}
            orders:
              kind: lab
              sla: {{stat: 60m}}
            destinations:
              - label: lis
                payload: mapped
                mllp: {{host: 127.0.0.1, port: {lis.port}}}
            """)
        engine = await harness.start({"orders.yaml": channel})
        try:
            assert engine.writer is not None
            await engine.writer.run(lambda connection: emit_event(
                connection, "lab_order_created", subject="ServiceRequest/PLEV1", data=service_request("PLEV1")))
            await harness.wait_for(lambda: "accepted" in steps(harness, "PLEV1"))
            assert b"OML^O21" in lis.received[0]
            assert steps(harness, "PLEV1") == ["placed", "sent", "accepted", "status"]
        finally:
            await harness.stop()


async def test_with_a_fhir_mapping_the_events_carry_the_fhir_resources(tmp_path: Path, sqlite_url: str,
                                                                       fhir_server) -> None:
    port = free_port()
    results = textwrap.dedent(f"""\
        name: lab-results
        source:
          mllp: {{host: 127.0.0.1, port: {port}}}
        orders:
          kind: lab
          critical_rules: [{{code: "2823-3", below: 2.8}}]
        destinations:
          - label: fhir
            fhir_server: {{base_url: {fhir_server.base_url}}}
        """)
    harness = EngineHarness(tmp_path, sqlite_url)
    await harness.start({"results.yaml": results,
                         "critical.yaml": events_channel("critical", ["critical_result"], tmp_path / "critical"),
                         "lab.yaml": events_channel("lab", ["lab_result_received"], tmp_path / "lab")})
    try:
        await send_one(port, order_result("F1", placer="PLF1", filler="FLF1", value="2.1", flag="L"))
        await harness.wait_for(lambda: events_of(tmp_path / "critical") and events_of(tmp_path / "lab"))
        lab = events_of(tmp_path / "lab")[0]
        assert lab["data"]["resourceType"] == "Bundle"
        types = {e["resource"]["resourceType"] for e in lab["data"]["entry"]}
        assert {"DiagnosticReport", "Observation", "Patient"} <= types
        assert lab["subject"].startswith("DiagnosticReport/")
        critical = events_of(tmp_path / "critical")[0]
        observation = critical["data"]
        assert observation["resourceType"] == "Observation" and observation["valueQuantity"]["value"] == 2.1
        # The LIS flagged L; the per-test rule makes it critical, and the event says LL.
        assert "LL" in {c["code"] for i in observation["interpretation"] for c in i["coding"]}
        assert critical["subject"].startswith("Observation/")
    finally:
        await harness.stop()
