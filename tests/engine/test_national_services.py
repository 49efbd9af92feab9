"""BPJS VClaim, E-Klaim and SATUSEHAT through the real engine, against the simulators on loopback.

Admission -> eligibility + SEP kept for the visit; discharge -> E-Klaim claim with the INA-CBG code
and tariff kept for the invoice; ADT + ORU + discharge -> SATUSEHAT Encounter (arrived, then
finished with its discharge diagnoses), Condition, Observation; every simulator failure mode ends
in a retry that delivers or a dead letter whose response carries the service's own message.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.connectors.peers.bpjs_vclaim import bpjs_admission
from tests.connectors.peers.eklaim import KEY, CODER, bpjs_discharge
from tests.fakes.eklaim_sim import EKlaimSimulator
from tests.fakes.satusehat_sim import SatusehatSimulator
from tests.fakes.vclaim_sim import VClaimSimulator
from tests.helpers import SIMPUL_CLI, bearer, channel_yaml, free_port, segment, send_one, write_settings

RETRY = "retry: {max_attempts: 6, initial_delay: 50ms, max_delay: 200ms, jitter: false}"
CARD = "0000000000001"
NIK = "3319022010800001"     # what bpjs_admission(1) puts in PID-3 with type NIK
ORG = "10000004"


@pytest.fixture
def vclaim() -> Iterator[VClaimSimulator]:
    with VClaimSimulator(secret="vclaim-secret") as sim:
        sim.add_participant(CARD, NIK)
        sim.referrals["RUJ0001"] = {"noKunjungan": "RUJ0001", "tglKunjungan": "2026-11-30",
                                    "provPerujuk": {"kode": "0138U020"}, "diagnosa": {"kode": "E10"}}
        yield sim


@pytest.fixture
def eklaim() -> Iterator[EKlaimSimulator]:
    with EKlaimSimulator(key_hex=KEY) as sim:
        yield sim


@pytest.fixture
def satusehat() -> Iterator[SatusehatSimulator]:
    with SatusehatSimulator(client_secret="satusehat-secret", org_id=ORG) as sim:
        sim.patients[NIK] = "P02478375538"
        yield sim


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "national.env"
    path.write_text(f"BPJS_CONS_ID=1234\nBPJS_SECRET_KEY=vclaim-secret\nBPJS_USER_KEY=uk-vclaim\nEKLAIM_KEY={KEY}\n"
                    "SATUSEHAT_CLIENT_ID=client-abc\nSATUSEHAT_CLIENT_SECRET=satusehat-secret\n")
    return path


def national_channel(port: int, secrets: Path, ledger: str, *, vclaim: Any = None, eklaim: Any = None,
                     satusehat: Any = None, submit: str = "single", tarif_rs_from: str = "message") -> str:
    destinations = ""
    if vclaim is not None:
        destinations += f"""\
- label: sep
  {RETRY}
  bpjs_vclaim: {{base_url: "{vclaim.base_url}", ppk_pelayanan: "0301R011", secrets_file: "{secrets}",
                 ledger_url: "{ledger}", timeout: 2s, poli: {{POLI-INT: INT}}, dpjp: {{"31574": "31574"}}}}
"""
    if eklaim is not None:
        destinations += f"""\
- label: claim
  {RETRY}
  eklaim: {{url: "{eklaim.url}", coder_nik: "{CODER}", secrets_file: "{secrets}", ledger_url: "{ledger}",
            timeout: 2s, tarif_rs_from: {tarif_rs_from}, charge_buckets: {{KONS: konsultasi, LAB: laboratorium}}}}
"""
    if satusehat is not None:
        destinations += f"""\
- label: satusehat
  {RETRY}
  satusehat: {{org_id: "{ORG}", auth_url: "{satusehat.auth_url}", fhir_url: "{satusehat.fhir_url}",
               secrets_file: "{secrets}", ledger_url: "{ledger}", timeout: 2s, submit: {submit},
               locations: {{"RSUD/POLI-INT": "loc-1", "POLI-INT": "loc-1"}}, practitioners: {{"31574": "N10000001"}}}}
"""
    return channel_yaml("bpjs", port, destinations)


def ledger_rows(harness: Any, service: str) -> list[Any]:
    return harness.sql("SELECT * FROM national_submissions WHERE service = :s ORDER BY id", s=service)


def deliveries(harness: Any, label: str) -> list[Any]:
    return harness.sql("SELECT status, attempts, last_response FROM deliveries WHERE destination = :d ORDER BY id",
                       d=label)


async def test_admission_checks_eligibility_and_keeps_the_sep_on_the_visit(harness, vclaim, secrets_file, sqlite_url):
    port = free_port()
    await harness.start({"bpjs.yaml": national_channel(port, secrets_file, sqlite_url, vclaim=vclaim)})
    ack = await send_one(port, bpjs_admission(1, card=CARD, name="Suharto^Budi", visit="V001"))
    assert segment(ack, "MSA")[1] == "AA"
    await harness.wait_for(lambda: [d for d in deliveries(harness, "sep") if d.status == "delivered"])
    [row] = ledger_rows(harness, "vclaim")
    assert (row.kind, row.visit, row.remote_id) == ("sep", "V001", next(iter(vclaim.seps)))
    assert json.loads(row.detail)["status"] == "AKTIF" and json.loads(row.detail)["class"] == "3"
    [delivered] = deliveries(harness, "sep")
    assert delivered.status == "delivered" and row.remote_id in delivered.last_response
    sent = json.loads([s for s in vclaim.requests if s.method == "POST"][0].body)["request"]["t_sep"]
    assert (sent["poli"]["tujuan"], sent["dpjpLayan"], sent["rujukan"]["noRujukan"], sent["diagAwal"]) == (
        "INT", "31574", "RUJ0001", "E10")
    # the same admission again (a resend, an A04 after the A01): no second SEP
    await send_one(port, bpjs_admission(1, card=CARD, visit="V001", event="A04"))
    await harness.wait_for(lambda: len(deliveries(harness, "sep")) == 2 and deliveries(harness, "sep")[1].status == "delivered")
    assert len(vclaim.seps) == 1 and "already issued" in deliveries(harness, "sep")[1].last_response


async def test_inactive_participant_is_a_dead_letter_with_the_bpjs_message_and_the_correction_links(
        harness, vclaim, secrets_file, sqlite_url):
    vclaim.add_participant("0000000000009", "3319022010800009", active=False)
    port = free_port()
    await harness.start({"bpjs.yaml": national_channel(port, secrets_file, sqlite_url, vclaim=vclaim)})
    await send_one(port, bpjs_admission(9, card="0000000000009", visit="V009"))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
    dead = harness.sql("SELECT error, error_class FROM dead_letters")[0]
    assert dead.error_class == "ServiceRejected" and "eligibility" in dead.error
    assert "participant is not active (TIDAK AKTIF)" in deliveries(harness, "sep")[0].last_response
    [refused] = ledger_rows(harness, "vclaim")
    assert refused.status == "refused" and "TIDAK AKTIF" in refused.message
    vclaim.add_participant("0000000000009", "3319022010800009", active=True)    # BPJS reactivated the card
    await send_one(port, bpjs_admission(9, card="0000000000009", visit="V009", event="A04"))
    await harness.wait_for(lambda: any(r.status == "sent" for r in ledger_rows(harness, "vclaim")))
    corrected = ledger_rows(harness, "vclaim")[-1]
    assert corrected.supersedes == refused.id and corrected.remote_id in vclaim.seps


async def test_discharge_claims_through_eklaim_and_keeps_the_inacbg_code_and_tariff(
        harness, vclaim, eklaim, secrets_file, sqlite_url):
    port = free_port()
    await harness.start({"bpjs.yaml": national_channel(port, secrets_file, sqlite_url, vclaim=vclaim, eklaim=eklaim)})
    await send_one(port, bpjs_admission(1, card=CARD, visit="V001"))
    await harness.wait_for(lambda: [r for r in ledger_rows(harness, "vclaim") if r.status == "sent"])
    no_sep = ledger_rows(harness, "vclaim")[0].remote_id
    await send_one(port, bpjs_discharge(1, card=CARD, visit="V001"))      # no SEP in PV1-50: the ledger has it
    await harness.wait_for(lambda: [r for r in ledger_rows(harness, "eklaim") if r.status == "sent"])
    [claim] = ledger_rows(harness, "eklaim")
    detail = json.loads(claim.detail)
    assert (claim.remote_id, detail["tariff"], detail["sep"], detail["tarif_rs_total"]) == (
        "E-4-10-I", 2_850_600, no_sep, 355_000)
    stored = eklaim.claims[no_sep]
    assert stored["final"] and stored["sent"] and stored["diagnosa"] == ["E10", "I10"]
    assert stored["data"]["tarif_rs"]["konsultasi"] == "150000" and stored["data"]["tarif_rs"]["obat"] == "85000"


async def test_charges_without_a_bucket_are_a_dead_letter_naming_the_codes(harness, eklaim, secrets_file, sqlite_url):
    port = free_port()
    await harness.start({"bpjs.yaml": national_channel(port, secrets_file, sqlite_url, eklaim=eklaim)})
    await send_one(port, bpjs_discharge(2, card=CARD, sep="0301R0111226V000002", charges=(("XRAY-7", 1000),)))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
    assert "XRAY-7" in harness.sql("SELECT error FROM dead_letters")[0].error and not eklaim.claims


def oru_for_visit(control_id: str, visit: str) -> bytes:
    segments = [f"MSH|^~\\&|LIS|RSUD|SIMPUL|RSUD|20261202093000+0700||ORU^R01^ORU_R01|{control_id}|P|2.5.1",
                "PID|1||MR1^^^RSUD^MR||Suharto^Budi||19810101|M",
                "PV1|1|O|POLI-INT^^^RSUD" + "|" * 16 + visit,
                "OBR|1|ORD1|FIL1|8867-4^Heart rate^LN|||20261202090000+0700||||||||||||ACC1||||||F",
                "OBX|1|NM|8867-4^Heart rate^LN||72|/min^/min^UCUM|||||F|||20261202090000+0700"]
    return ("\r".join(segments) + "\r").encode()


@pytest.mark.parametrize("submit", ["single", "transaction"])
async def test_adt_and_oru_reach_satusehat_as_encounter_condition_observation(harness, satusehat, secrets_file,
                                                                              sqlite_url, submit):
    port = free_port()
    await harness.start({"bpjs.yaml": national_channel(port, secrets_file, sqlite_url, satusehat=satusehat,
                                                       submit=submit)})
    await send_one(port, bpjs_admission(1, card=CARD, visit="V001"))
    await harness.wait_for(lambda: deliveries(harness, "satusehat") and deliveries(harness, "satusehat")[0].status in ("delivered", "dead"))
    assert deliveries(harness, "satusehat")[0].status == "delivered", deliveries(harness, "satusehat")
    await send_one(port, oru_for_visit("LAB-1", "V001"))
    await send_one(port, bpjs_discharge(1, card=CARD, visit="V001", sep="X"))
    await harness.wait_for(lambda: len(deliveries(harness, "satusehat")) == 3 and all(
        d.status in ("delivered", "dead") for d in deliveries(harness, "satusehat")))
    assert [d.status for d in deliveries(harness, "satusehat")] == ["delivered"] * 3, deliveries(harness, "satusehat")
    [encounter] = satusehat.of_type("Encounter")
    assert encounter["status"] == "finished" and encounter["subject"]["reference"] == "Patient/P02478375538"
    assert encounter["identifier"] == [{"system": f"http://sys-ids.kemkes.go.id/encounter/{ORG}", "value": "V001"}]
    assert [h["status"] for h in encounter["statusHistory"]] == ["arrived", "in-progress", "finished"]
    conditions = satusehat.of_type("Condition")
    assert {c["code"]["coding"][0]["code"] for c in conditions} == {"E10", "I10"}
    assert {d["condition"]["reference"] for d in encounter["diagnosis"]} == {f"Condition/{c['id']}" for c in conditions}
    [observation] = satusehat.of_type("Observation")
    assert observation["category"][0]["coding"][0]["code"] == "vital-signs"
    assert observation["encounter"]["reference"] == f"Encounter/{encounter['id']}"
    assert observation["effectiveDateTime"] == "2026-12-02T02:00:00+00:00"
    assert len(satusehat.of_type("Procedure")) == 1
    nik_lookups = [s for s in satusehat.requests if s.path.startswith("/fhir-r4/v1/Patient")]
    assert len(nik_lookups) == 1                      # the IHS number is remembered for the later messages
    kinds = {(r.kind, r.status) for r in ledger_rows(harness, "satusehat")}
    assert {("Encounter", "sent"), ("Condition", "sent"), ("Observation", "sent"), ("Procedure", "sent")} <= kinds


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "malformed", "drop", "expired_token"])
async def test_satusehat_faults_are_retried_until_delivered(harness, satusehat, secrets_file, sqlite_url, fault):
    port = free_port()
    await harness.start({"bpjs.yaml": national_channel(port, secrets_file, sqlite_url, satusehat=satusehat)})
    await send_one(port, bpjs_admission(1, card=CARD, visit="V001"))
    await harness.wait_for(lambda: deliveries(harness, "satusehat") and deliveries(harness, "satusehat")[0].status == "delivered")
    if fault == "expired_token":
        satusehat.expire_tokens()
    else:
        satusehat.fail_next(fault)
    await send_one(port, bpjs_discharge(1, card=CARD, visit="V001", sep="X"))
    await harness.wait_for(lambda: len(deliveries(harness, "satusehat")) == 2
                           and deliveries(harness, "satusehat")[1].status == "delivered")
    assert satusehat.of_type("Encounter")[0]["status"] == "finished"
    assert len(satusehat.of_type("Encounter")) == 1 and len(satusehat.of_type("Procedure")) == 1
    attempts = deliveries(harness, "satusehat")[1].attempts
    assert attempts == (1 if fault == "expired_token" else 2)     # a 401 is renewed within the same attempt


async def test_satusehat_refusal_is_a_dead_letter_with_its_own_text(harness, satusehat, secrets_file, sqlite_url):
    port = free_port()
    satusehat.reject_next("Data Encounter tidak valid: location tidak terdaftar")
    await harness.start({"bpjs.yaml": national_channel(port, secrets_file, sqlite_url, satusehat=satusehat)})
    await send_one(port, bpjs_admission(1, card=CARD, visit="V001"))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
    assert "location tidak terdaftar" in deliveries(harness, "satusehat")[0].last_response
    [refused] = [r for r in ledger_rows(harness, "satusehat") if r.status == "refused"]
    assert refused.message == "Data Encounter tidak valid: location tidak terdaftar"


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "malformed", "drop"])
async def test_vclaim_and_eklaim_faults_are_retried_until_delivered(harness, vclaim, eklaim, secrets_file,
                                                                    sqlite_url, fault):
    port = free_port()
    await harness.start({"bpjs.yaml": national_channel(port, secrets_file, sqlite_url, vclaim=vclaim, eklaim=eklaim)})
    vclaim.fail_next(fault)
    await send_one(port, bpjs_admission(1, card=CARD, visit="V001"))
    await harness.wait_for(lambda: [r for r in ledger_rows(harness, "vclaim") if r.status == "sent"])
    eklaim.fail_next(fault)
    await send_one(port, bpjs_discharge(1, card=CARD, visit="V001"))
    await harness.wait_for(lambda: [r for r in ledger_rows(harness, "eklaim") if r.status == "sent"])
    assert len(vclaim.seps) == 1 and len(eklaim.claims) == 1
    assert [d.attempts for d in deliveries(harness, "sep")][0] == 2


# ---- on call: simpul bpjs sep show|retry, simpul satusehat status ---------------------------------

async def _cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(str(SIMPUL_CLI), *args, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_on_call_sees_the_refused_sep_retries_it_and_sees_satusehat_status(
        harness, vclaim, satusehat, secrets_file, sqlite_url, tmp_path):
    vclaim.add_participant("0000000000009", "3319022010800009", active=False)
    port = free_port()
    engine = await harness.start({"bpjs.yaml": national_channel(port, secrets_file, sqlite_url, vclaim=vclaim,
                                                                satusehat=satusehat)}, http=True)
    settings = write_settings(tmp_path, sqlite_url, http_port=free_port(), channels_dir=harness.channels_dir)
    satusehat.reject_next("Location tidak terdaftar pada organisasi")
    await send_one(port, bpjs_admission(9, card="0000000000009", visit="V009"))
    await harness.wait_for(lambda: len(harness.sql("SELECT id FROM dead_letters")) == 2)

    code, out, err = await _cli("bpjs", "sep", "show", "--visit", "V009", "-c", str(settings), cwd=tmp_path)
    assert code == 0, err
    assert "visit V009 sep: participant is not active (TIDAK AKTIF) [refused]" in out
    code, out, err = await _cli("satusehat", "status", "-c", str(settings), cwd=tmp_path)
    assert code == 0, err
    assert "refused: 1" in out and "Location tidak terdaftar pada organisasi" in out
    assert harness.admin_token is not None
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{engine.http_port}/api/v1", timeout=10,
                                 headers=bearer(harness.admin_token)) as http:
        status = (await http.get("/satusehat/status")).json()
        assert status["refused"][0]["message"] == "Location tidak terdaftar pada organisasi"
        assert status["pending"] == [] and status["sent"] == {}
        [sep] = (await http.get("/bpjs/seps", params={"visit": "V009"})).json()
        assert sep["status"] == "refused" and "TIDAK AKTIF" in sep["message"]

    vclaim.add_participant("0000000000009", "3319022010800009", active=True)
    code, out, err = await _cli("bpjs", "sep", "retry", "V009", "--reason", "card reactivated by BPJS", "--yes",
                                "-c", str(settings), cwd=tmp_path)
    assert code == 0, err
    await harness.wait_for(lambda: any(r.status == "sent" for r in ledger_rows(harness, "vclaim")))
    code, out, err = await _cli("bpjs", "sep", "show", "--visit", "V009", "--json", "-c", str(settings), cwd=tmp_path)
    shown = json.loads(out)
    assert shown[0]["status"] == "sent" and shown[0]["remote_id"] in vclaim.seps
    assert shown[1]["status"] == "refused" and shown[1]["corrected_by"] == shown[0]["id"]
    code, out, err = await _cli("bpjs", "sep", "retry", "V404", "--reason", "x", "--yes", "-c", str(settings),
                                cwd=tmp_path)
    assert code == 1 and "no open SEP dead letter" in err and "Traceback" not in err


async def test_eklaim_refusals_are_dead_letters_with_the_error_number(harness, eklaim, tmp_path, sqlite_url):
    """A key that is not the site's (E2031) and an unregistered coder (E2006): final, with E-Klaim's words."""
    wrong = tmp_path / "wrong.env"
    wrong.write_text("EKLAIM_KEY=" + "ff" * 32 + "\n")
    port = free_port()
    await harness.start({"bpjs.yaml": national_channel(port, wrong, sqlite_url, eklaim=eklaim)})
    await send_one(port, bpjs_discharge(3, card=CARD, sep="0301R0111226V000003"))
    await harness.wait_for(lambda: harness.sql("SELECT id FROM dead_letters"))
    assert "code E2031" in harness.sql("SELECT error FROM dead_letters")[0].error
    assert "Key Mismatch" in deliveries(harness, "claim")[0].last_response
    eklaim.coders.clear()
    right = tmp_path / "right.env"
    right.write_text(f"EKLAIM_KEY={KEY}\n")
    (harness.channels_dir / "bpjs.yaml").write_text(national_channel(port, right, sqlite_url, eklaim=eklaim))
    await harness.stop()
    await harness.start()
    await send_one(port, bpjs_discharge(4, card=CARD, sep="0301R0111226V000004"))
    await harness.wait_for(lambda: len(harness.sql("SELECT id FROM dead_letters")) == 2)
    assert "code E2006" in harness.sql("SELECT error FROM dead_letters ORDER BY id")[1].error
    refused = [r for r in ledger_rows(harness, "eklaim") if r.status == "refused"]
    assert [r.message for r in refused][-1] == "NIK Coder tidak ditemukan"


# ---- discharge -> E-Klaim through encounter-to-cash's invoice ---------------------------------------

TARIFFS = """service_code,description,class,payer,price,valid_from,valid_to,tarif_rs
BED,Kamar Kelas 3,KELAS3,*,150000,2026-01-01,,kamar
KONS-INT,Konsultasi Sp.PD,*,*,150000,2026-01-01,,konsultasi
LAB-HB,Hemoglobin,*,*,45000,2026-01-01,,laboratorium
"""


def _fields(name: str, values: dict[int, str]) -> str:
    return "|".join([name] + [values.get(n, "") for n in range(1, max(values) + 1)])


def _stay(control_id: str, event: str, at: str, *, discharge: str = "", extra: list[str] | None = None) -> bytes:
    segments = [f"MSH|^~\\&|SIMRS|RSUD|SIMPUL|RSUD|{at}||ADT^{event}|{control_id}|P|2.5", f"EVN|{event}|{at}",
                f"PID|1||MR1^^^RSUD^MR~{NIK}^^^KEMKES^NIK||PASIEN^TEST||19810101|M",
                _fields("PV1", {1: "1", 2: "I", 3: "W1^101^1", 7: "31574^Dokter^Andi", 19: "VB1",
                                44: "20261201080000", 45: discharge}),
                "PV2||KELAS3", "DG1|1||E10^Diabetes^I10||20261201|A",
                _fields("IN1", {1: "1", 2: "JKN", 3: "BPJS", 4: "BPJS Kesehatan", 36: CARD})]
    return ("\r".join(segments + (extra or [])) + "\r").encode()


def _charges(control_id: str) -> bytes:
    ft1s = [_fields("FT1", {1: str(n), 2: tid, 4: "20261201120000", 6: "CG", 7: code, 10: "1"})
            for n, (tid, code) in enumerate([("T1", "KONS-INT^Konsultasi"), ("T2", "LAB-HB^Hemoglobin")], start=1)]
    segments = [f"MSH|^~\\&|SIMRS|RSUD|SIMPUL|RSUD|20261201120000||DFT^P03|{control_id}|P|2.5",
                "EVN|P03|20261201120000", "PID|1||MR1^^^RSUD^MR||PASIEN^TEST",
                _fields("PV1", {1: "1", 2: "I", 3: "W1^101^1", 19: "VB1"}), *ft1s]
    return ("\r".join(segments) + "\r").encode()


async def test_discharge_claim_uses_the_invoice_charges_and_writes_the_inacbg_tariff_on_the_invoice(
        harness, vclaim, eklaim, secrets_file, sqlite_url, tmp_path):
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "tariffs.csv").write_text(TARIFFS)
    port = free_port()
    channel = national_channel(port, secrets_file, sqlite_url, vclaim=vclaim, eklaim=eklaim, tarif_rs_from="billing")
    channel = channel.replace("max_attempts: 6", "max_attempts: 200")    # the claim waits for the invoice
    await harness.start({"bpjs.yaml": channel}, billing={"enabled": True, "interval": 0.05, "settle": 0.2})
    await send_one(port, _stay("ADM1", "A01", "20261201080000"))
    await harness.wait_for(lambda: [r for r in ledger_rows(harness, "vclaim") if r.status == "sent"])
    no_sep = ledger_rows(harness, "vclaim")[0].remote_id
    await send_one(port, _charges("DFT1"))
    await send_one(port, _stay("DIS1", "A03", "20261202080000", discharge="20261202080000",
                               extra=["PR1|1||89.03^Anamnesis^I9C||20261201090000"]))
    await harness.wait_for(lambda: [r for r in ledger_rows(harness, "eklaim") if r.status == "sent"], timeout=30)
    [invoice] = harness.sql("SELECT invoice_no, total, claimed_amount, inacbg_code FROM billing_invoices")
    assert (invoice.inacbg_code, invoice.claimed_amount) == ("E-4-10-I", 2_850_600)
    tarif_rs = eklaim.claims[no_sep]["data"]["tarif_rs"]
    assert (tarif_rs["konsultasi"], tarif_rs["laboratorium"]) == ("150000", "45000")
    assert sum(int(value) for value in tarif_rs.values()) == invoice.total
    [claim] = ledger_rows(harness, "eklaim")
    assert json.loads(claim.detail)["invoice_no"] == invoice.invoice_no
    assert eklaim.claims[no_sep]["data"]["jenis_rawat"] == "1" and eklaim.claims[no_sep]["data"]["kelas_rawat"] == "3"
