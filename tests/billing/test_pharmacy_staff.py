"""The other ERP domains: dispenses and consumables move ERP stock, low-stock notices and the staff master come back."""
from __future__ import annotations

import json
from pathlib import Path

from tests.billing.test_encounter_to_cash import (
    PID, TARIFFS, _fields, adt, erp, msh, pv1, send_all,  # noqa: F401 - erp is the spyne ERP fixture
)
from tests.fakes.fake_lis import FakeLis
from tests.fakes.spyne_erp import SpyneErp
from tests.helpers import EngineHarness, free_port

CONSUMABLE = "BMHP-SPUIT,Spuit 3 ml,*,*,5000,2026-01-01,,bmhp\n"


def rds(control_id: str, code: str, amount: int, prescription: str) -> str:
    rxd = _fields("RXD", {1: "1", 2: code, 3: "20261201130000", 4: str(amount), 7: prescription, 13: "APOTEK-RI"})
    return "\r".join([msh(control_id, "RDS^O13", "20261201130000"), PID, pv1(), rxd])


def dft_consumable(control_id: str) -> str:
    ft1 = _fields("FT1", {1: "1", 2: "TC1", 4: "20261201140000", 6: "CG", 7: "BMHP-SPUIT^Spuit", 10: "3",
                          16: "OK-1"})
    return "\r".join([msh(control_id, "DFT^P03", "20261201140000"), PID, pv1(), ft1])


def events_of(harness: EngineHarness, kind: str) -> list[dict]:
    return [json.loads(bytes(row[0]))["data"] for row in
            harness.sql("SELECT raw FROM messages WHERE message_type = :kind ORDER BY id", kind=kind)]


async def test_dispenses_and_consumables_move_erp_stock_and_low_stock_comes_back(harness: EngineHarness,
                                                                                 erp: SpyneErp, tmp_path: Path) -> None:
    erp.state.stock.update({"OBAT-PCT": 12, "BMHP-SPUIT": 100})
    erp.state.reorder_level.update({"OBAT-PCT": 5, "BMHP-SPUIT": 10})
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "tariffs.csv").write_text(TARIFFS + CONSUMABLE)
    port = free_port()
    feed = (f"name: feed\nsource:\n  mllp: {{host: 127.0.0.1, port: {port}}}\n"
            f"destinations:\n  - label: archive\n    payload: raw\n    order_by: none\n"
            f"    file: {{directory: {tmp_path / 'archive'}}}\n")
    to_erp = ("name: erp\nsource:\n  events: {types: [invoice_generated, stock_movement]}\n"
              "destinations:\n  - label: erp\n    order_by: none\n"
              "    retry: {max_attempts: 100, initial_delay: 0.1s, max_delay: 0.3s}\n"
              f"    erp: {{soap: {{wsdl: '{erp.wsdl_url}'}}}}\n")
    await harness.start({"feed.yaml": feed, "erp.yaml": to_erp}, billing={
        "enabled": True, "interval": 0.05, "settle": 0.2, "poll_interval": 0.2, "erp": {"soap": {"wsdl": erp.wsdl_url}}})
    stream = [adt("ADM1", "A01", at="20261201080000", room_class="KELAS3", admit="20261201080000"),
              rds("RX1", "OBAT-PCT^Paracetamol", 10, "R-100"), dft_consumable("DC1")]
    await send_all(port, stream)

    await harness.wait_for(lambda: len(erp.state.movements) == 2, timeout=15)
    assert sorted((m["kind"], m["itemCode"], m["qty"]) for m in erp.state.movements.values()) == [
        ("CONSUME", "BMHP-SPUIT", 3), ("DISPENSE", "OBAT-PCT", 10)]
    assert erp.state.stock == {"OBAT-PCT": 2, "BMHP-SPUIT": 97}
    # the dispensed drug is also a charge on the account
    charges = harness.sql("SELECT origin, service_code, quantity, amount FROM billing_charges ORDER BY id")
    assert [tuple(c) for c in charges] == [("pharmacy", "OBAT-PCT", 10, 20000), ("dft", "BMHP-SPUIT", 3, 15000)]
    # the ERP's low-stock notice comes back as an event
    alerts = await harness.wait_for(lambda: events_of(harness, "low_stock"), timeout=10)
    assert alerts == [{"itemCode": "OBAT-PCT", "location": "APOTEK-RI", "onHand": 2, "reorderLevel": 5}]

    # a resent dispense (new control id) moves no stock again
    await send_all(port, [rds("RX1-R", "OBAT-PCT^Paracetamol", 10, "R-100")])
    await harness.wait_for(lambda: harness.sql(
        "SELECT 1 FROM billing_state WHERE name = 'intake_cursor' AND CAST(value AS INTEGER) >= "
        "(SELECT max(id) FROM messages WHERE source NOT LIKE 'event:%')"))
    assert len(erp.state.movements) == 2 and erp.state.stock["OBAT-PCT"] == 2
    assert len(events_of(harness, "stock_movement")) == 2


async def test_the_staff_master_is_published_as_practitioner_role_and_mfn_m02(harness: EngineHarness, erp: SpyneErp,
                                                                     tmp_path: Path) -> None:
    erp.state.add_staff(staffId="D001", nik="3201234567890001", name="dr. Rudy, Sp.PD", role="doctor",
                        specialty="Penyakit Dalam", licenseNo="SIP-503/2026", active=True)
    erp.state.add_staff(staffId="N007", nik="3201234567890002", name="Ns. Ani", role="nurse", specialty=None,
                        licenseNo=None, active=True)
    lis = await FakeLis().start()          # a clinical system that takes the staff master as MFN^M02
    staff_to_mllp = ("name: staff-master\nsource:\n  events: {types: [practitioner_updated]}\n"
                     "mapping:\n  builtin: fhir_to_mfn_m02\n"
                     "destinations:\n  - label: his\n    payload: mapped\n    order_by: none\n"
                     f"    mllp: {{host: 127.0.0.1, port: {lis.port}}}\n")
    await harness.start({"staff.yaml": staff_to_mllp}, billing={
        "enabled": True, "interval": 0.05, "settle": 0.2, "poll_interval": 0.2, "erp": {"soap": {"wsdl": erp.wsdl_url}}})
    bundles = await harness.wait_for(lambda: len(events_of(harness, "practitioner_updated")) == 2 and
                                     events_of(harness, "practitioner_updated"), timeout=10)
    doctor, role = (entry["resource"] for entry in bundles[0]["entry"])
    assert doctor["resourceType"] == "Practitioner" and doctor["id"] == "erp-D001" and doctor["active"] is True
    assert {"system": "https://fhir.kemkes.go.id/id/nik", "value": "3201234567890001"} in doctor["identifier"]
    assert role["practitioner"] == {"reference": "Practitioner/erp-D001"}
    assert role["code"][0]["coding"][0]["code"] == "doctor" and role["specialty"] == [{"text": "Penyakit Dalam"}]
    nurse_role = bundles[1]["entry"][1]["resource"]
    assert nurse_role["code"][0]["coding"][0]["code"] == "nurse"
    # the next poll starts after the kept cursor: nothing is published twice
    erp.state.add_staff(staffId="D001", nik="3201234567890001", name="dr. Rudy, Sp.PD", role="doctor",
                        specialty="Penyakit Dalam", licenseNo="SIP-503/2026", active=False)
    await harness.wait_for(lambda: len(events_of(harness, "practitioner_updated")) == 3, timeout=10)
    assert events_of(harness, "practitioner_updated")[2]["entry"][0]["resource"]["active"] is False
    # ... and as MFN^M02 over MLLP, one message per change, in order
    await harness.wait_for(lambda: len(lis.received) == 3, timeout=10)
    await lis.stop()
    first = lis.received[0].decode().split("\r")
    assert first[0].split("|")[8] == "MFN^M02^MFN_M02"
    assert [line.split("|")[0] for line in first if line] == ["MSH", "MFI", "MFE", "STF", "PRA"]
    stf = next(line for line in first if line.startswith("STF|")).split("|")
    assert (stf[1], stf[4], stf[7]) == ("D001", "doctor", "A")
    last = lis.received[2].decode().split("\r")
    assert next(line for line in last if line.startswith("MFE|")).split("|")[1] == "MDC"   # deactivated
