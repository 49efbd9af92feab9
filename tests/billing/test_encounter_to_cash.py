"""Encounter-to-cash end to end: HL7v2 over MLLP in, invoices to a real SOAP ERP (spyne) out, payments back."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simpul.billing.accounts import unpriced_queue
from simpul.billing.invoices import invoice_view, set_claimed_amount
from simpul.billing.reconciliation import daily_report, open_items, report_csv
from simpul.engine.events import emit_event
from simpul.engine.runtime import Engine

from tests.fakes.spyne_erp import SpyneErp
from tests.helpers import EngineHarness, free_port, send_one

TARIFFS = """service_code,description,class,payer,price,valid_from,valid_to,tarif_rs
BED,Kamar Kelas 3,KELAS3,*,150000,2026-01-01,,kamar
BED,Kamar VIP,VIP,*,750000,2026-01-01,,kamar
KONS-INT,Konsultasi Sp.PD,*,*,150000,2026-01-01,,konsultasi
OBAT-PCT,Paracetamol 500mg,*,*,2000,2026-01-01,,obat
LAB-HB,Hemoglobin,*,*,45000,2026-01-01,,laboratorium
RAD-THORAX,Thorax PA,*,BPJS,120000,2026-01-01,,radiologi
RAD-THORAX,Thorax PA,*,*,180000,2026-01-01,,radiologi
"""
VISIT = "V2026-0001"


def _fields(name: str, values: dict[int, str]) -> str:
    top = max(values)
    return "|".join([name] + [values.get(n, "") for n in range(1, top + 1)])


def msh(control_id: str, code: str, at: str = "20261201080000") -> str:
    return f"MSH|^~\\&|SIMRS|RSUD|SIMPUL|RSUD|{at}||{code}|{control_id}|P|2.5"


def pv1(*, admit: str = "", discharge: str = "") -> str:
    return _fields("PV1", {1: "1", 2: "I", 3: "W1^101^1", 19: VISIT, 44: admit, 45: discharge})


PID = "PID|1||MR001^^^RSUD^MR||PASIEN^TEST"
IN1_BPJS = _fields("IN1", {1: "1", 2: "JKN", 3: "BPJS", 4: "BPJS Kesehatan", 36: "0001234567890"})


def adt(control_id: str, event: str, *, at: str, room_class: str = "", admit: str = "", discharge: str = "") -> str:
    segments = [msh(control_id, f"ADT^{event}", at), f"EVN|{event}|{at}", PID, pv1(admit=admit, discharge=discharge)]
    if room_class:
        segments.append(f"PV2||{room_class}")
    if event == "A01":
        segments.append(IN1_BPJS)
    return "\r".join(segments)


def oru(control_id: str, filler: str, code: str, *, section: str = "", status: str = "F") -> str:
    obr = _fields("OBR", {1: "1", 2: f"P{filler}", 3: filler, 4: code, 7: "20261201100000", 24: section,
                          25: status})
    return "\r".join([msh(control_id, "ORU^R01", "20261201110000"), PID, pv1(), obr,
                      "OBX|1|NM|718-7^Hemoglobin^LN||13.5|g/dL|||||F"])


def dft(control_id: str, lines: list[tuple[str, str, str, int]]) -> str:
    """lines: (FT1-2 transaction id, FT1-6 type, FT1-7 code, FT1-10 quantity)."""
    ft1s = [_fields("FT1", {1: str(n), 2: tid, 4: "20261201120000", 6: kind, 7: code, 10: str(qty)})
            for n, (tid, kind, code, qty) in enumerate(lines, start=1)]
    return "\r".join([msh(control_id, "DFT^P03", "20261201120000"), "EVN|P03|20261201120000", PID, pv1(), *ft1s])


STREAM = [
    adt("ADM1", "A01", at="20261201080000", room_class="KELAS3", admit="20261201080000"),
    oru("LAB1", "F100", "LAB-HB^Hemoglobin"),
    oru("LAB2", "F100", "LAB-HB^Hemoglobin", status="C"),        # a corrected result charges nothing more
    oru("RAD1", "F200", "RAD-THORAX^Thorax PA", section="RAD"),
    dft("DFT1", [("T1", "CG", "KONS-INT^Konsultasi", 1), ("T2", "CG", "OBAT-PCT^Paracetamol", 10)]),
    dft("DFT2", [("T3", "CD", "OBAT-PCT^Paracetamol", 2)]),       # reversal of two tablets
    adt("TRF1", "A02", at="20261202100000", room_class="VIP"),
    adt("DIS1", "A03", at="20261204090000", room_class="VIP", discharge="20261204090000"),
]
# BPJS prices: bed KELAS3 1 day + VIP 2 days, consult, 8 tablets, Hb, thorax (BPJS row)
EXPECTED_TOTAL = 150000 + 2 * 750000 + 150000 + 8 * 2000 + 45000 + 120000


@pytest.fixture
def erp() -> Iterator[SpyneErp]:
    server = SpyneErp().start()
    yield server
    server.stop()


def channels(port: int, erp: SpyneErp, tmp_path: Path) -> dict[str, str]:
    feed = (f"name: hospital-feed\nsource:\n  mllp: {{host: 127.0.0.1, port: {port}}}\n"
            f"destinations:\n  - label: archive\n    payload: raw\n    order_by: none\n"
            f"    file: {{directory: {tmp_path / 'archive'}}}\n")
    to_erp = ("name: invoices-to-erp\nsource:\n  events: {types: [invoice_generated]}\n"
              "destinations:\n  - label: erp\n    order_by: none\n"
              "    retry: {max_attempts: 1000, initial_delay: 0.1s, max_delay: 0.3s, jitter: false}\n"
              f"    erp: {{soap: {{wsdl: '{erp.wsdl_url}'}}, timeout: 5s}}\n")
    return {"feed.yaml": feed, "erp.yaml": to_erp}


async def start(harness: EngineHarness, erp: SpyneErp, tmp_path: Path, tariffs: str = TARIFFS,
                http: bool = False) -> tuple[Engine, int]:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "tariffs.csv").write_text(tariffs)
    port = free_port()
    engine = await harness.start(channels(port, erp, tmp_path), http=http, billing={
        "enabled": True, "interval": 0.05, "settle": 0.2, "poll_interval": 0.2, "erp": {"soap": {"wsdl": erp.wsdl_url}}})
    return engine, port


async def send_all(port: int, stream: list[str]) -> None:
    for text in stream:
        ack = await send_one(port, text.encode())
        assert b"MSA|AA|" in ack or b"MSA|CA|" in ack


async def read(engine: Engine, fn):  # noqa: ANN001, ANN201 - tiny test helper
    return await engine.read(fn)


async def test_admission_to_partial_payment_through_a_soap_erp(both_stores: EngineHarness, erp: SpyneErp,
                                                               tmp_path: Path) -> None:
    harness = both_stores
    engine, port = await start(harness, erp, tmp_path)
    await send_all(port, STREAM)

    # The invoice reaches the ERP once, with the itemized lines and the total.
    await harness.wait_for(lambda: erp.state.invoices, timeout=20)
    (posted,) = erp.state.invoices.values()
    assert posted.billed == EXPECTED_TOTAL and posted.payer == "BPJS" and posted.encounter_id == VISIT
    lines = sorted((line["code"], line["qty"], line["amount"]) for line in posted.lines)
    assert lines == sorted([("BED", 1, 150000), ("BED", 2, 1500000), ("KONS-INT", 1, 150000),
                            ("OBAT-PCT", 10, 20000), ("OBAT-PCT", -2, -4000), ("LAB-HB", 1, 45000),
                            ("RAD-THORAX", 1, 120000)])
    assert {line["tarifRsBucket"] for line in posted.lines} == {"kamar", "konsultasi", "obat", "laboratorium",
                                                                "radiologi"}
    invoice_no = harness.sql("SELECT invoice_no FROM billing_invoices")[0][0]
    view = await read(engine, lambda c: invoice_view(c, invoice_no))
    assert view["totals"]["tarif_rs"] == {"kamar": 1650000, "konsultasi": 150000, "laboratorium": 45000,
                                          "obat": 16000, "radiologi": 120000}
    # every account transition is kept with the message it came from
    transitions = harness.sql("SELECT transition, event_code, message_id IS NOT NULL FROM billing_account_events "
                              "ORDER BY id")
    assert [tuple(t) for t in transitions] == [("opened", "ADT^A01", 1), ("transferred", "ADT^A02", 1),
                                               ("closed", "ADT^A03", 1)]

    # The ERP records a partial payment; the next poll reconciles it and the report shows the rest open.
    erp.state.record_payment(posted.erp_invoice_no, 1_000_000)
    await harness.wait_for(lambda: harness.sql("SELECT status, paid_amount, posted_amount, erp_invoice_no "
                                               "FROM billing_invoices WHERE paid_amount > 0"), timeout=10)
    status, paid, booked, erp_no = harness.sql("SELECT status, paid_amount, posted_amount, erp_invoice_no "
                                               "FROM billing_invoices")[0]
    assert (status, paid, booked, erp_no) == ("partially_paid", 1_000_000, EXPECTED_TOTAL, posted.erp_invoice_no)
    report = await read(engine, daily_report)
    (balance,) = report["open_balances"]
    assert balance["balance"] == EXPECTED_TOTAL - 1_000_000 and balance["ageing"] == "0-30"
    assert report["per_payer"]["BPJS"]["open"] == EXPECTED_TOTAL - 1_000_000
    assert f"open_balance,{invoice_no},{posted.erp_invoice_no}," in report_csv(report)
    kinds = [row[0] for row in harness.sql("SELECT message_type FROM messages WHERE source LIKE 'event:%' "
                                           "ORDER BY id")]
    assert kinds == ["invoice_generated", "payment_reconciled"]

    # Replaying the whole stream (same control ids, then fresh ones) charges and invoices nothing again.
    charges_before = harness.sql("SELECT count(*) FROM billing_charges")[0][0]
    await send_all(port, STREAM)
    await send_all(port, [text.replace("|P|2.5", "-R|P|2.5", 1) for text in STREAM])
    total_messages = len(harness.sql("SELECT id FROM messages WHERE source NOT LIKE 'event:%'"))
    assert total_messages == 2 * len(STREAM)
    await harness.wait_for(lambda: harness.sql(
        "SELECT value FROM billing_state WHERE name = 'intake_cursor' AND CAST(value AS INTEGER) >= "
        "(SELECT max(id) FROM messages WHERE source NOT LIKE 'event:%')"))
    assert harness.sql("SELECT count(*) FROM billing_charges")[0][0] == charges_before == 7
    assert harness.sql("SELECT count(*) FROM billing_invoices")[0][0] == 1
    assert len(erp.state.invoices) == 1 and erp.state.posts == 1


async def test_the_erp_down_for_a_while_delays_the_invoice_but_never_loses_it(harness: EngineHarness,
                                                                              erp: SpyneErp, tmp_path: Path) -> None:
    erp.state.down = True
    _, port = await start(harness, erp, tmp_path)
    await send_all(port, STREAM)
    await harness.wait_for(lambda: harness.sql(
        "SELECT attempts FROM deliveries WHERE destination = 'erp' AND attempts >= 3"), timeout=15)
    assert not erp.state.invoices
    assert harness.sql("SELECT status FROM deliveries WHERE destination = 'erp'")[0][0] != "dead"
    erp.state.down = False
    await harness.wait_for(lambda: erp.state.invoices, timeout=15)
    await harness.wait_for(lambda: harness.sql("SELECT 1 FROM deliveries WHERE destination = 'erp' "
                                               "AND status = 'delivered'"))
    (posted,) = erp.state.invoices.values()
    assert posted.billed == EXPECTED_TOTAL and erp.state.posts == 1


async def test_an_unpriced_service_waits_in_the_queue_and_is_invoiced_once_priced(harness: EngineHarness,
                                                                                  erp: SpyneErp, tmp_path: Path) -> None:
    engine, port = await start(harness, erp, tmp_path)
    stream = STREAM[:-1] + [dft("DFT9", [("T9", "CG", "FISIO-1^Fisioterapi", 2)]), STREAM[-1]]
    await send_all(port, stream)
    queue = await harness.wait_for(lambda: harness.sql(
        "SELECT service_code, quantity, unit_price FROM billing_charges WHERE status = 'unpriced'"))
    assert [tuple(row) for row in queue] == [("FISIO-1", 2, None)]      # never priced at zero
    await harness.wait_for(lambda: harness.sql("SELECT 1 FROM billing_charges WHERE origin = 'bed'"))
    listed = await read(engine, unpriced_queue)
    assert [(row["service_code"], row["visit_number"]) for row in listed] == [("FISIO-1", VISIT)]
    assert not harness.sql("SELECT 1 FROM billing_invoices") and not erp.state.invoices

    with (tmp_path / "config" / "tariffs.csv").open("a") as table:
        table.write("FISIO-1,Fisioterapi,*,*,85000,2026-01-01,,rehabilitasi\n")
    await harness.wait_for(lambda: erp.state.invoices, timeout=15)
    (posted,) = erp.state.invoices.values()
    assert posted.billed == EXPECTED_TOTAL + 2 * 85000
    assert ("FISIO-1", 2, 170000) in [(line["code"], line["qty"], line["amount"]) for line in posted.lines]
    assert not await read(engine, unpriced_queue)


async def test_mismatches_become_work_items(harness: EngineHarness, erp: SpyneErp, tmp_path: Path) -> None:
    engine, port = await start(harness, erp, tmp_path)
    await send_all(port, STREAM)
    await harness.wait_for(lambda: erp.state.invoices, timeout=20)
    (posted,) = erp.state.invoices.values()
    with erp.state.lock:
        posted.billed -= 5000          # the ERP booked less than the lines add up to
        erp.state._touch(posted)
    erp.state.reject_claim(posted.erp_invoice_no)
    erp.state.add_foreign_payment("INV-9999999", 250000)
    await harness.wait_for(lambda: len(harness.sql("SELECT 1 FROM billing_reconciliation_items")) >= 3, timeout=10)
    items = await read(engine, open_items)
    assert sorted((item["kind"], item["expected"], item["actual"]) for item in items) == sorted([
        ("amount_differs", EXPECTED_TOTAL, EXPECTED_TOTAL - 5000), ("claim_rejected", EXPECTED_TOTAL, 0),
        ("payment_without_invoice", None, 250000)])
    events = harness.sql("SELECT raw FROM messages WHERE message_type = 'reconciliation_mismatch'")
    assert sorted(json.loads(bytes(row[0]))["data"]["kind"] for row in events) == sorted(
        ["amount_differs", "claim_rejected", "payment_without_invoice"])


def visit_stream(number: int) -> list[str]:
    """The stream for another visit, with its own control ids, transaction ids and order numbers."""
    return [text.replace(VISIT, f"V2026-{number:04d}").replace("|P|2.5", f"-{number}|P|2.5", 1)
            .replace("|T", f"|T{number}-").replace("F100", f"F1{number}").replace("F200", f"F2{number}")
            for text in STREAM]


async def test_the_erp_pulls_reconciliations_page_by_page(harness: EngineHarness, erp: SpyneErp,
                                                          tmp_path: Path) -> None:
    engine, port = await start(harness, erp, tmp_path, http=True)
    for number in (1, 2, 3):
        await send_all(port, visit_stream(number))
    await harness.wait_for(lambda: len(erp.state.invoices) == 3, timeout=20)
    # the poll has read the ERP's three postings back; the ERP changes nothing after that
    await harness.wait_for(lambda: len(harness.sql("SELECT 1 FROM billing_invoices WHERE erp_invoice_no != ''")) == 3,
                           timeout=10)
    # the INA-CBG grouping claims more than the itemized tariff for one stay: the gap shows per invoice
    grouped = harness.sql("SELECT i.invoice_no FROM billing_invoices i JOIN billing_accounts a ON a.id = i.account_id "
                          "WHERE a.visit_number = 'V2026-0002'")[0][0]
    assert engine.writer is not None
    assert await engine.writer.run(lambda c: set_claimed_amount(c, grouped, 2_100_000))
    base = f"http://127.0.0.1:{engine.http_port}/api/v1"
    async with httpx.AsyncClient(base_url=base) as client:
        first = (await client.get("/reconciliations", params={"since": "2020-01-01T00:00:00Z", "limit": 2})).json()
        assert len(first["items"]) == 2 and first["nextCursor"]
        second = (await client.get("/reconciliations", params={"cursor": first["nextCursor"], "limit": 2})).json()
        assert len(second["items"]) == 1 and second["nextCursor"] is None
        listed = {item["encounterId"]: item for item in first["items"] + second["items"]}
        assert sorted(listed) == ["V2026-0001", "V2026-0002", "V2026-0003"]
        assert listed["V2026-0002"]["claimDifference"] == 2_100_000 - EXPECTED_TOTAL
        assert listed["V2026-0001"]["claimDifference"] is None
        assert second["items"][0]["encounterId"] == "V2026-0002"    # changed last, listed last
        item = second["items"][0]
        assert item["expectedAmount"] == EXPECTED_TOTAL and item["paidAmount"] == 0 and item["payer"] == "BPJS"
        bad = await client.get("/reconciliations", params={"cursor": "not-ours"})
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
        assert (await client.get("/reconciliations", params={"since": "yesterday"})).status_code == 400
        page = await client.get("/reconciliation-report.html")
        assert page.status_code == 200 and "Open balances" in page.text and "BPJS" in page.text
        csv_text = (await client.get("/reconciliation-report.csv")).text
        assert csv_text.count("open_balance,") == 3
        assert (await client.get("/billing/unpriced")).json() == []


async def test_fhir_admission_and_discharge_events_open_and_close_the_account(harness: EngineHarness, erp: SpyneErp,
                                                                             tmp_path: Path) -> None:
    engine, port = await start(harness, erp, tmp_path)
    assert engine.writer is not None
    admitted = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Encounter", "id": "e1", "status": "in-progress",
                      "identifier": [{"value": "V-EVT-1"}], "class": {"code": "IMP"},
                      "period": {"start": "2026-12-01T08:00:00Z"},
                      "location": [{"location": {"display": "W1"}, "physicalType": {"text": "KELAS3"}}]}},
        {"resource": {"resourceType": "Patient", "id": "p1", "identifier": [{"value": "MR-EVT"}]}},
        {"resource": {"resourceType": "Coverage", "id": "c1", "status": "active", "subscriberId": "0009",
                      "beneficiary": {"reference": "Patient/p1"},
                      "payor": [{"display": "BPJS Kesehatan", "identifier": {"value": "BPJS"}}]}}]}
    discharged = {"resourceType": "Encounter", "id": "e1", "status": "finished", "identifier": [{"value": "V-EVT-1"}],
                  "class": {"code": "IMP"}, "period": {"start": "2026-12-01T08:00:00Z", "end": "2026-12-03T10:00:00Z"},
                  "subject": {"identifier": {"value": "MR-EVT"}}}
    await engine.writer.run(lambda c: emit_event(c, "patient_admitted", subject="Encounter/e1", data=admitted,
                                                 source="emr/adt"))
    await engine.writer.run(lambda c: emit_event(c, "patient_discharged", subject="Encounter/e1", data=discharged,
                                                 source="emr/adt"))
    await harness.wait_for(lambda: erp.state.invoices, timeout=15)
    (posted,) = erp.state.invoices.values()
    assert posted.encounter_id == "V-EVT-1" and posted.payer == "BPJS"
    assert [(line["code"], line["qty"], line["amount"]) for line in posted.lines] == [("BED", 2, 300000)]
    rows = harness.sql("SELECT transition, event_code FROM billing_account_events ORDER BY id")
    assert [tuple(row) for row in rows] == [("opened", "patient_admitted"), ("closed", "patient_discharged")]


async def test_a_reopened_stay_gets_a_supplementary_invoice_and_a_cancelled_admission_none(
        harness: EngineHarness, erp: SpyneErp, tmp_path: Path) -> None:
    _, port = await start(harness, erp, tmp_path)
    await send_all(port, STREAM)
    await harness.wait_for(lambda: len(erp.state.invoices) == 1, timeout=20)
    # A13 cancels the discharge; the patient stays two more days, gets a consult, and leaves on the 6th.
    await send_all(port, [
        adt("CXL1", "A13", at="20261204100000", room_class="VIP"),
        dft("DFT3", [("T4", "CG", "KONS-INT^Konsultasi", 1)]),
        adt("DIS2", "A03", at="20261206090000", room_class="VIP", discharge="20261206090000")])
    await harness.wait_for(lambda: len(erp.state.invoices) == 2, timeout=20)
    second = max(erp.state.invoices.values(), key=lambda invoice: invoice.erp_invoice_no)
    assert sorted((line["code"], line["qty"], line["amount"]) for line in second.lines) == [
        ("BED", 2, 1500000), ("KONS-INT", 1, 150000)]     # only the two new VIP days and the new consult
    transitions = [row[0] for row in harness.sql("SELECT transition FROM billing_account_events ORDER BY id")]
    assert transitions == ["opened", "transferred", "closed", "reopened", "closed"]

    # A11 cancels another admission: its charges stay on record, nothing is invoiced.
    other = [text.replace(VISIT, "V-CXL").replace("|P|2.5", "-X|P|2.5", 1).replace("|T", "|TX") for text in STREAM[:2]]
    await send_all(port, other + [adt("CXA1", "A11", at="20261201090000").replace(VISIT, "V-CXL"),
                                  adt("CXA2", "A03", at="20261201100000", discharge="20261201100000")
                                  .replace(VISIT, "V-CXL")])
    await harness.wait_for(lambda: harness.sql("SELECT status FROM billing_accounts WHERE visit_number = 'V-CXL' "
                                               "AND status = 'voided'"))
    await harness.wait_for(lambda: harness.sql(
        "SELECT value FROM billing_state WHERE name = 'intake_cursor' AND CAST(value AS INTEGER) >= "
        "(SELECT max(id) FROM messages WHERE source NOT LIKE 'event:%')"))
    assert len(erp.state.invoices) == 2     # the stray discharge after A11 neither closed nor invoiced it
    rows = harness.sql("SELECT e.transition FROM billing_account_events e JOIN billing_accounts a "
                       "ON a.id = e.account_id WHERE a.visit_number = 'V-CXL' ORDER BY e.id")
    assert [row[0] for row in rows] == ["opened", "voided", "ignored"]
