"""VClaim client against the simulator: signed requests, decrypted answers, each failure mode."""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from simpul.connectors.base import Outgoing
from simpul.connectors.bpjs.service import ServiceRejected, ServiceUnavailable
from simpul.connectors.bpjs_vclaim import VClaimConfig, VClaimConnector
from simpul.connectors.bpjs.vclaim import VClaimClient, VClaimCredentials

from tests.connectors.peers.bpjs_vclaim import bpjs_admission
from tests.fakes.vclaim_sim import VClaimSimulator

CARD, NIK = "0000000000001", "3319022010810007"


def t_sep(card: str = CARD) -> dict[str, Any]:
    return {"noKartu": card, "tglSep": "2026-12-02", "ppkPelayanan": "0301R011", "jnsPelayanan": "2",
            "klsRawat": {"klsRawatHak": "3", "klsRawatNaik": "", "pembiayaan": "", "penanggungJawab": ""},
            "noMR": "MR001", "rujukan": {"asalRujukan": "1", "tglRujukan": "2026-11-30", "noRujukan": "R1",
                                         "ppkRujukan": "0138U020"},
            "catatan": "", "diagAwal": "E10", "poli": {"tujuan": "INT", "eksekutif": "0"}, "cob": {"cob": "0"},
            "katarak": {"katarak": "0"}, "jaminan": {"lakaLantas": "0", "noLP": "", "penjamin": {}},
            "tujuanKunj": "0", "flagProcedure": "", "kdPenunjang": "", "assesmentPel": "",
            "skdp": {"noSurat": "", "kodeDPJP": ""}, "dpjpLayan": "31574", "noTelp": "081111111101", "user": "simpul"}


@pytest.fixture
def sim() -> Iterator[VClaimSimulator]:
    with VClaimSimulator() as simulator:
        simulator.add_participant(CARD, NIK)
        yield simulator


@pytest.fixture
async def client(sim: VClaimSimulator) -> Any:
    made = VClaimClient(sim.base_url, VClaimCredentials("1234", "abcd", "uk-vclaim"), timeout=2.0)
    yield made
    await made.close()


async def test_eligibility_by_card_and_by_nik(client: VClaimClient) -> None:
    assert (await client.participant_by_card(CARD, "2026-12-02"))["statusPeserta"]["keterangan"] == "AKTIF"
    assert (await client.participant_by_nik(NIK, "2026-12-02"))["noKartu"] == CARD


async def test_sep_insert_get_update_delete(client: VClaimClient, sim: VClaimSimulator) -> None:
    sep = await client.sep_insert(t_sep())
    no_sep = sep["noSep"]
    assert len(no_sep) == 19 and no_sep[8:12] == "1226" and no_sep[12] == "V"
    assert (await client.sep_get(no_sep))["noSep"] == no_sep
    assert await client.sep_update({"noSep": no_sep, "catatan": "x", "user": "simpul"}) == no_sep
    assert await client.sep_delete(no_sep, "simpul") == no_sep
    assert no_sep not in sim.seps


async def test_business_refusal_carries_the_bpjs_message(client: VClaimClient, sim: VClaimSimulator) -> None:
    sim.add_participant("0000000000002", "3319022010810008", active=False)
    with pytest.raises(ServiceRejected) as refused:
        await client.sep_insert(t_sep("0000000000002"))
    assert refused.value.code == "201" and "TIDAK AKTIF" in refused.value.service_message
    missing = t_sep()
    del missing["diagAwal"]
    with pytest.raises(ServiceRejected) as refused_again:
        await client.sep_insert(missing)
    assert refused_again.value.service_message == "diagAwal tidak boleh kosong"


async def test_bad_signature_and_clock_drift_are_refused(sim: VClaimSimulator) -> None:
    wrong = VClaimClient(sim.base_url, VClaimCredentials("1234", "wrong", "uk-vclaim"), timeout=2.0)
    with pytest.raises(ServiceRejected) as refused:
        await wrong.participant_by_card(CARD, "2026-12-02")
    assert refused.value.service_message == "Signature tidak valid" and "abcd" not in str(refused.value)
    await wrong.close()
    late = VClaimClient(sim.base_url, VClaimCredentials("1234", "abcd", "uk-vclaim"), timeout=2.0,
                        clock=lambda: time.time() - 600)
    with pytest.raises(ServiceRejected) as drifted:
        await late.participant_by_card(CARD, "2026-12-02")
    assert "toleransi" in drifted.value.service_message
    await late.close()


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "malformed", "drop"])
async def test_transport_faults_are_retryable_and_the_next_call_works(client: VClaimClient, sim: VClaimSimulator,
                                                                       fault: str) -> None:
    sim.fail_next(fault)
    with pytest.raises(ServiceUnavailable):
        await client.participant_by_card(CARD, "2026-12-02")
    assert (await client.participant_by_card(CARD, "2026-12-02"))["noKartu"] == CARD


async def test_audit_lines_name_the_operation_never_the_card_or_secret(client: VClaimClient,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await client.participant_by_card(CARD, "2026-12-02")
    assert "operation=participant_by_card outcome=ok code=200" in caplog.text
    assert CARD not in caplog.text and "abcd" not in caplog.text and "uk-vclaim" not in caplog.text


async def test_referral_lookup_and_claim_monitoring(client: VClaimClient, sim: VClaimSimulator) -> None:
    sim.referrals["0301U0011226P000001"] = {"noKunjungan": "0301U0011226P000001", "tglKunjungan": "2026-11-30",
                                            "provPerujuk": {"kode": "0301U001"}, "diagnosa": {"kode": "E10"}}
    assert (await client.referral("0301U0011226P000001"))["diagnosa"]["kode"] == "E10"
    with pytest.raises(ServiceRejected) as missing:
        await client.referral("NOPE")
    assert missing.value.service_message == "Data rujukan tidak ditemukan"
    sim.claims.append({"noSEP": "0301R0111226V000001", "status": "Proses Verifikasi",
                       "Inacbg": {"kode": "E-4-10-I", "nama": "DIABETES"},
                       "biaya": {"byPengajuan": "2850600", "bySetujui": "0", "byTarifGruper": "2850600",
                                 "byTarifRS": "355000", "byTopup": "0"}})
    [claim] = await client.claim_monitoring("2026-12-02", "2", "1")
    assert claim["Inacbg"]["kode"] == "E-4-10-I" and claim["biaya"]["byTarifRS"] == "355000"


async def test_paths_and_header_names_are_matched_case_insensitively(client: VClaimClient) -> None:
    """Clients in the wild write Peserta/nokartu/.../tglSEP and peserta/.../tglsep; both work."""
    assert (await client.call("GET", f"peserta/nokartu/{CARD}/tglsep/2026-12-02", "participant_by_card"))["peserta"]


async def test_inpatient_admission_sep_carries_the_dpjp_in_skdp_and_no_poli(sim: VClaimSimulator, tmp_path: Any) -> None:
    secrets = tmp_path / "bpjs.env"
    secrets.write_text("BPJS_CONS_ID=1234\nBPJS_SECRET_KEY=abcd\nBPJS_USER_KEY=uk-vclaim\n")
    connector = VClaimConnector(VClaimConfig(ppk_pelayanan="0301R011", base_url=sim.base_url, secrets_file=str(secrets),
                                             dpjp={"31574": "31574"}, referral_from="rs"))
    sim.referrals["RUJ0001"] = {"noKunjungan": "RUJ0001", "tglKunjungan": "2026-11-30", "provPerujuk": {"kode": "X"}}
    raw = bpjs_admission(1, card=CARD, visit="V-IN").replace(b"PV1|1|O|", b"PV1|1|I|")
    answer = await connector.send(Outgoing(raw, "x-application/hl7-v2+er7", "C1", "adt", "sep", 1, "ADT^A01"))
    await connector.close()
    assert answer.startswith("SEP ") and "class 3" in answer
    t_sep = [json.loads(s.body) for s in sim.requests if s.method == "POST"][0]["request"]["t_sep"]
    assert (t_sep["jnsPelayanan"], t_sep["poli"]["tujuan"], t_sep["skdp"]["kodeDPJP"], t_sep["dpjpLayan"]) == (
        "1", "", "31574", "")
    assert t_sep["rujukan"]["asalRujukan"] == "2" and any(s.path.startswith("/Rujukan/RS/") for s in sim.requests)
