"""The lab loop end to end: a FHIR ServiceRequest in, OML^O21 to a (fake) LIS over MLLP, its ORL
back, ORU results in, correlated to the order, to the FHIR server, with a timeline and an SLA."""
from __future__ import annotations

import asyncio
import json
import textwrap
import time
from typing import Any

import httpx
import pytest

from tests.dead_letters.test_cli import simpul
from tests.fakes.fake_lis import FakeLis, order_result
from tests.helpers import EngineHarness, bearer, write_settings

PLAC = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]}


def service_request(placer: str = "PL1001", *, priority: str = "stat", status: str = "active",
                    code: str = "2823-3") -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest", "id": placer, "status": status, "intent": "order", "priority": priority,
        "identifier": [{"type": PLAC, "system": "urn:oid:1.2.360.1.1", "value": placer}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": "Potassium"}]},
        "subject": {"reference": "#pat"}, "encounter": {"reference": "#enc"}, "specimen": [{"reference": "#spm"}],
        "contained": [
            {"resourceType": "Patient", "id": "pat", "identifier": [{"system": "urn:oid:1.2.360.1.2", "value": "MR001"}],
             "name": [{"family": "Suharto", "given": ["Budi"]}], "gender": "male", "birthDate": "1980-05-17"},
            {"resourceType": "Encounter", "id": "enc", "status": "in-progress",
             "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"}},
            {"resourceType": "Specimen", "id": "spm",
             "type": {"coding": [{"system": "http://snomed.info/sct", "code": "119297000", "display": "Blood"}]}},
        ],
    }


def channels(lis_port: int, fhir_base: str, *, stat_sla: str = "60m") -> dict[str, str]:
    orders = textwrap.dedent(f"""\
        name: lab-orders
        source:
          fhir_orders: {{port: 0, message_type: OML^O21, receiving_application: LIS, receiving_facility: LAB}}
        orders:
          kind: lab
          sla: {{stat: {stat_sla}, routine: 24h}}
        destinations:
          - label: lis
            order_by: placer
            mllp: {{host: 127.0.0.1, port: {lis_port}, response_timeout: 2s}}
            retry: {{max_attempts: 3, initial_delay: 100ms, max_delay: 200ms, jitter: false}}
        """)
    results = textwrap.dedent(f"""\
        name: lab-results
        source:
          mllp: {{port: 0}}
        filter:
          message_types: [ORU^R01]
        orders:
          kind: lab
          critical_rules: [{{code: "2823-3", below: 2.8, above: 6.2}}]
        destinations:
          - label: fhir
            fhir_server: {{base_url: {fhir_base}}}
        """)
    return {"lab-orders.yaml": orders, "lab-results.yaml": results}


async def post_order(port: int, body: dict[str, Any], method: str = "POST") -> httpx.Response:
    async with httpx.AsyncClient() as client:
        url = f"http://127.0.0.1:{port}/fhir/ServiceRequest"
        if method == "PUT":
            return await client.put(f"{url}/{body['id']}", json=body)
        return await client.post(url, json=body)


def steps(harness: EngineHarness, placer: str) -> list[str]:
    rows = harness.sql("SELECT e.step FROM order_events e JOIN orders o ON o.id = e.order_id "
                       "WHERE o.placer_number = :p ORDER BY e.id", p=placer)
    return [row[0] for row in rows]


def answer_ok(control_id: bytes, payload: bytes) -> list[str]:
    placer = payload.split(b"\rORC|", 1)[1].split(b"\r")[0].split(b"|")[1].split(b"^")[0].decode()
    return [f"ORC|OK|{placer}|FL-{placer}||IP"]


@pytest.fixture
async def harness(tmp_path, database_url):
    harness = EngineHarness(tmp_path, database_url)
    yield harness
    await harness.stop()


async def test_order_goes_to_the_lis_and_results_come_back_correlated(harness, fhir_server):
    async with FakeLis(order_answer=answer_ok) as lis:
        await harness.start(channels(lis.port, fhir_server.base_url))
        fhir_port = harness.port_of("lab-orders")
        response = await post_order(fhir_port, service_request())
        assert response.status_code == 201, response.text
        await harness.wait_for(lambda: "accepted" in steps(harness, "PL1001"))
        sent = lis.received[0].decode()
        assert "OML^O21" in sent and "ORC|NW|PL1001" in sent
        order = harness.sql("SELECT filler_number, status, priority FROM orders WHERE placer_number = 'PL1001'")[0]
        assert tuple(order) == ("FL-PL1001", "in_progress", "stat")

        # Preliminary, then corrected results: one order timeline, one DiagnosticReport at the FHIR server.
        ack = await lis.send_to(harness.port_of("lab-results"),
                                order_result("R1", placer="PL1001", filler="FL-PL1001", status="P", value="3.9"))
        assert b"MSA|AA" in ack
        await harness.wait_for(lambda: "preliminary" in steps(harness, "PL1001"))
        await lis.send_to(harness.port_of("lab-results"),
                          order_result("R2", placer="PL1001", filler="FL-PL1001", status="F", value="4.0"))
        await lis.send_to(harness.port_of("lab-results"),
                          order_result("R3", placer="PL1001", filler="FL-PL1001", status="C", value="4.1"))
        await harness.wait_for(lambda: "corrected" in steps(harness, "PL1001"))
        await harness.wait_for(lambda: len(harness.sql("SELECT id FROM deliveries WHERE channel = 'lab-results' "
                                                       "AND status = 'delivered'")) == 3)
        assert steps(harness, "PL1001") == ["placed", "sent", "accepted", "status", "specimen_collected",
                                            "status", "preliminary", "status", "final", "status", "corrected"]
        reports = fhir_server.resources("DiagnosticReport")
        assert len(reports) == 1 and reports[0]["status"] == "corrected"
        observations = fhir_server.resources("Observation")
        assert len(observations) == 1 and observations[0]["valueQuantity"]["value"] == 4.1
        final = harness.sql("SELECT status, final_at IS NOT NULL, unknown FROM orders WHERE placer_number = 'PL1001'")
        assert tuple(final[0]) == ("corrected", True, 0)


async def test_results_for_an_unknown_order_are_kept_and_flagged(harness, fhir_server):
    async with FakeLis() as lis:
        await harness.start(channels(lis.port, fhir_server.base_url))
        ack = await lis.send_to(harness.port_of("lab-results"),
                                order_result("U1", placer="NOBODY1", filler="FX9", status="F"))
        assert b"MSA|AA" in ack
        await harness.wait_for(lambda: harness.sql("SELECT unknown, status FROM orders WHERE filler_number = 'FX9'"))
        assert tuple(harness.sql("SELECT unknown, status FROM orders WHERE filler_number = 'FX9'")[0]) == (1, "final")
        await harness.wait_for(lambda: fhir_server.resources("DiagnosticReport"))


async def test_critical_value_by_flag_and_by_rule(harness, fhir_server):
    async with FakeLis(order_answer=answer_ok) as lis:
        await harness.start(channels(lis.port, fhir_server.base_url))
        fhir_port = harness.port_of("lab-orders")
        assert (await post_order(fhir_port, service_request("PL2001"))).status_code == 201
        assert (await post_order(fhir_port, service_request("PL2002"))).status_code == 201
        await harness.wait_for(lambda: "accepted" in steps(harness, "PL2002"))
        results = harness.port_of("lab-results")
        await lis.send_to(results, order_result("K1", placer="PL2001", filler="FL-PL2001", value="6.9", flag="HH"))
        # No flag from the LIS, but below the configured limit for 2823-3.
        await lis.send_to(results, order_result("K2", placer="PL2002", filler="FL-PL2002", value="2.1", flag=""))
        await harness.wait_for(lambda: "critical" in steps(harness, "PL2002"))
        assert "critical" in steps(harness, "PL2001")
        details = harness.sql("SELECT detail FROM order_events WHERE step = 'critical' ORDER BY id")
        assert [row[0] for row in details] == ["2823-3 HH", "2823-3 rule"]


async def test_lis_errors_retry_and_rejects_end_in_the_timeline(harness, fhir_server):
    # 1st order: AE then AA (retried); 2nd order: AR (final: rejected, dead letter).
    codes = iter(["AE", "AA", "AR"])
    async with FakeLis(answer=lambda index, payload: next(codes)) as lis:
        await harness.start(channels(lis.port, fhir_server.base_url))
        fhir_port = harness.port_of("lab-orders")
        assert (await post_order(fhir_port, service_request("PL3001"))).status_code == 201
        await harness.wait_for(lambda: "sent" in steps(harness, "PL3001"))
        assert steps(harness, "PL3001") == ["placed", "send_failed", "sent"]
        assert (await post_order(fhir_port, service_request("PL3002"))).status_code == 201
        await harness.wait_for(lambda: "rejected" in steps(harness, "PL3002"))
        status = harness.sql("SELECT status FROM orders WHERE placer_number = 'PL3002'")[0][0]
        assert status == "rejected"


async def test_lis_that_closes_the_connection_or_answers_late_gets_the_order_again(harness, fhir_server):
    async with FakeLis(close_before_ack_every=2, ack_delay=0.2) as lis:
        await harness.start(channels(lis.port, fhir_server.base_url))
        fhir_port = harness.port_of("lab-orders")
        for placer in ("PL4001", "PL4002"):
            assert (await post_order(fhir_port, service_request(placer))).status_code == 201
        await harness.wait_for(lambda: "sent" in steps(harness, "PL4002"))
        await harness.wait_for(lambda: "sent" in steps(harness, "PL4001"))
        assert len(lis.received) >= 3       # the one cut off was sent again


async def test_change_and_cancel_follow_the_service_request_status(harness, fhir_server):
    async with FakeLis() as lis:
        await harness.start(channels(lis.port, fhir_server.base_url))
        fhir_port = harness.port_of("lab-orders")
        assert (await post_order(fhir_port, service_request("PL5001", priority="routine"))).status_code == 201
        changed = await post_order(fhir_port, service_request("PL5001", priority="stat"), method="PUT")
        assert changed.status_code == 200
        cancelled = await post_order(fhir_port, service_request("PL5001", status="revoked"), method="PUT")
        assert cancelled.status_code == 200
        await harness.wait_for(lambda: len(lis.received) == 3)
        assert [m.split(b"ORC|")[1][:2] for m in lis.received] == [b"NW", b"XO", b"CA"]
        await harness.wait_for(lambda: "cancelled" in steps(harness, "PL5001"))
        row = harness.sql("SELECT status, priority FROM orders WHERE placer_number = 'PL5001'")[0]
        assert tuple(row) == ("cancelled", "stat")


async def test_a_resent_order_is_not_placed_twice_and_bad_input_gets_an_operation_outcome(harness, fhir_server):
    async with FakeLis() as lis:
        await harness.start(channels(lis.port, fhir_server.base_url))
        fhir_port = harness.port_of("lab-orders")
        body = service_request("PL6001")
        assert (await post_order(fhir_port, body)).status_code == 201
        assert (await post_order(fhir_port, body)).status_code == 201
        await harness.wait_for(lambda: "sent" in steps(harness, "PL6001"))
        await asyncio.sleep(0.3)
        assert len(lis.received) == 1
        no_code = service_request("PL6002")
        del no_code["code"]
        refused = await post_order(fhir_port, no_code)
        assert refused.status_code == 422
        issue = refused.json()["issue"][0]
        assert "OBR-4" in issue["diagnostics"] and "ServiceRequest.code" in issue["diagnostics"]
        async with httpx.AsyncClient() as client:
            broken = await client.post(f"http://127.0.0.1:{fhir_port}/fhir/ServiceRequest", content=b"{not json")
        assert broken.status_code == 400 and broken.json()["resourceType"] == "OperationOutcome"


async def test_stat_order_without_a_final_result_raises_overdue_on_time(harness, fhir_server):
    async with FakeLis() as lis:
        engine = await harness.start(channels(lis.port, fhir_server.base_url, stat_sla="60m"))
        fhir_port = harness.port_of("lab-orders")
        assert (await post_order(fhir_port, service_request("PL7001"))).status_code == 201
        assert (await post_order(fhir_port, service_request("PL7002", priority="routine"))).status_code == 201
        await harness.wait_for(lambda: "sent" in steps(harness, "PL7002"))
        placed_at = harness.sql("SELECT placed_at FROM orders WHERE placer_number = 'PL7001'")[0][0]
        # A fake clock: one second before the STAT deadline nothing is late; one second after, exactly
        # the STAT order is, once.
        assert await engine.check_orders(now=placed_at + 3599) == []
        late = await engine.check_orders(now=placed_at + 3601)
        assert [order["placer_number"] for order in late] == ["PL7001"]
        assert await engine.check_orders(now=placed_at + 3700) == []
        assert steps(harness, "PL7001")[-1] == "overdue"
        # One order_overdue event (a priority CloudEvent for the notification service), for that order only.
        events = harness.sql("SELECT raw, priority FROM messages WHERE source = 'event:order_overdue'")
        assert len(events) == 1 and events[0][1] == 1
        assert json.loads(events[0][0])["data"]["placer_number"] == "PL7001"
        metrics = (await engine.metrics_text()).decode()
        assert 'simpul_orders_overdue_total{kind="lab",priority="stat"} 1.0' in metrics


async def test_the_sla_clock_runs_by_itself(harness, fhir_server):
    async with FakeLis() as lis:
        await harness.start(channels(lis.port, fhir_server.base_url, stat_sla="1s"))
        assert (await post_order(harness.port_of("lab-orders"), service_request("PL8001"))).status_code == 201
        started = time.monotonic()
        await harness.wait_for(lambda: "overdue" in steps(harness, "PL8001"), timeout=5)
        assert time.monotonic() - started < 3.5


async def test_timeline_and_overdue_through_the_api_and_the_cli(harness, fhir_server, tmp_path):
    async with FakeLis(order_answer=answer_ok) as lis:
        await harness.start(channels(lis.port, fhir_server.base_url, stat_sla="1s"), http=True)
        engine = harness.engine
        assert engine is not None and engine.http_port
        fhir_port = harness.port_of("lab-orders")
        assert (await post_order(fhir_port, service_request("PL9001"))).status_code == 201
        assert (await post_order(fhir_port, service_request("PL9002", priority="routine"))).status_code == 201
        await harness.wait_for(lambda: "overdue" in steps(harness, "PL9001"), timeout=5)
        api = f"http://127.0.0.1:{engine.http_port}/api/v1/orders"
        assert harness.admin_token is not None
        async with httpx.AsyncClient(headers=bearer(harness.admin_token)) as client:
            assert (await client.get(api, headers={"Authorization": ""})).status_code == 401   # orders name patients
            shown = (await client.get(f"{api}/FL-PL9001")).json()       # found by the filler number too
            overdue = (await client.get(api, params={"overdue": "true"})).json()
            missing = await client.get(f"{api}/NOPE")
        assert shown["placer_number"] == "PL9001"
        assert [event["step"] for event in shown["timeline"]] == ["placed", "sent", "accepted", "status", "overdue"]
        assert [order["placer_number"] for order in overdue] == ["PL9001"]
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"

        settings = write_settings(tmp_path, harness.database_url, http_port=0, channels_dir=harness.channels_dir)
        code, out, _ = await simpul(settings, "orders", "show", "PL9001")
        assert code == 0 and "placer=PL9001 filler=FL-PL9001" in out and "overdue" in out and "OVERDUE" in out
        code, out, _ = await simpul(settings, "orders", "overdue")
        assert code == 0 and "PL9001" in out and "PL9002" not in out and "stat" in out
        code, _, err = await simpul(settings, "orders", "show", "NOPE")
        assert code == 1 and "no order" in err


async def test_status_updates_sent_later_by_the_lis_join_the_timeline(harness, fhir_server, tmp_path):
    status_channel = textwrap.dedent(f"""\
        name: lab-status
        source:
          mllp: {{port: 0}}
        filter:
          message_types: [ORL^O22, ORR^O02, ORM^O01]
        orders:
          kind: lab
        destinations:
          - label: archive
            payload: raw
            file: {{directory: {tmp_path / 'status'}}}
        """)
    async with FakeLis() as lis:
        await harness.start({**channels(lis.port, fhir_server.base_url), "lab-status.yaml": status_channel})
        assert (await post_order(harness.port_of("lab-orders"), service_request("PL9501"))).status_code == 201
        await harness.wait_for(lambda: "sent" in steps(harness, "PL9501"))
        status = harness.port_of("lab-status")
        accepted = ("MSH|^~\\&|LIS|LAB|SIMPUL|RSUD|20261126090000+0700||ORL^O22^ORL_O22|S1|P|2.5.1\r"
                    "MSA|AA|x\rORC|OK|PL9501|FL9501||SC\r").encode()
        in_progress = ("MSH|^~\\&|LIS|LAB|SIMPUL|RSUD|20261126091000+0700||ORM^O01^ORM_O01|S2|P|2.5.1\r"
                       "PID|1||MR001\rORC|SC|PL9501|FL9501||IP\rOBR|1|PL9501|FL9501|2823-3^Potassium^LN\r").encode()
        assert b"MSA|AA" in await lis.send_to(status, accepted)
        assert b"MSA|AA" in await lis.send_to(status, in_progress)
        await harness.wait_for(lambda: steps(harness, "PL9501").count("status") == 2)
        assert steps(harness, "PL9501") == ["placed", "sent", "accepted", "status", "status"]
        row = harness.sql("SELECT status, filler_number FROM orders WHERE placer_number = 'PL9501'")[0]
        assert tuple(row) == ("in_progress", "FL9501")


async def test_a_lis_that_does_not_answer_in_time_gets_the_order_again(harness, fhir_server):
    silent_first = iter([None, "AA"])
    async with FakeLis(answer=lambda index, payload: next(silent_first, "AA")) as lis:
        await harness.start(channels(lis.port, fhir_server.base_url))
        assert (await post_order(harness.port_of("lab-orders"), service_request("PL9601"))).status_code == 201
        await harness.wait_for(lambda: "sent" in steps(harness, "PL9601"), timeout=15)
        assert steps(harness, "PL9601") == ["placed", "send_failed", "sent"]
        assert len(lis.received) == 2


async def test_orders_come_in_through_the_separate_ingest_process_too(harness, fhir_server):
    async with FakeLis(order_answer=answer_ok) as lis:
        await harness.start(channels(lis.port, fhir_server.base_url), ingest_process=True)
        assert (await post_order(harness.port_of("lab-orders"), service_request("PL9701"))).status_code == 201
        await harness.wait_for(lambda: "accepted" in steps(harness, "PL9701"), timeout=20)


async def test_an_order_the_lis_cannot_accept_is_rejected_in_its_timeline(harness, fhir_server):
    def unable(control_id: bytes, payload: bytes) -> list[str]:
        return ["ORC|UA|PL9801"]

    async with FakeLis(order_answer=unable) as lis:
        await harness.start(channels(lis.port, fhir_server.base_url))
        assert (await post_order(harness.port_of("lab-orders"), service_request("PL9801"))).status_code == 201
        await harness.wait_for(lambda: "rejected" in steps(harness, "PL9801"))
        assert steps(harness, "PL9801") == ["placed", "sent", "rejected"]
        assert harness.sql("SELECT status FROM orders WHERE placer_number = 'PL9801'")[0][0] == "rejected"
        # Rejected orders leave the SLA clock alone.
        engine = harness.engine
        assert engine is not None and await engine.check_orders(now=time.time() + 10 * 3600) == []
