"""E-Klaim client against the simulator: the discharge flow, both versions, and every refusal."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simpul.connectors.bpjs.eklaim import ClaimInput, ClaimSettings, EKlaimClient
from simpul.connectors.bpjs.service import ServiceRejected, ServiceUnavailable

from tests.fakes.eklaim_sim import EKlaimSimulator

KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
CODER = "3201234567890001"


def claim(sep: str = "0301R0111226V000001", diagnoses: list[str] | None = None) -> ClaimInput:
    return ClaimInput(nomor_sep=sep, nomor_kartu="0000000000001", nomor_rm="MR001", nama_pasien="BUDI",
                      tgl_lahir="1981-10-10 00:00:00", gender=1, tgl_masuk="2026-12-02 08:30:00",
                      tgl_pulang="2026-12-02 11:00:00", jenis_rawat="2", kelas_rawat="3", discharge_status="1",
                      diagnoses=diagnoses or ["E10", "I10"], procedures=["89.03"],
                      tarif_rs={"konsultasi": 150000, "laboratorium": 120000, "obat": 85000})


@pytest.fixture
def sim() -> Iterator[EKlaimSimulator]:
    with EKlaimSimulator(key_hex=KEY) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: EKlaimSimulator) -> Any:
    made = EKlaimClient(sim.url, KEY, timeout=2.0)
    yield made
    await made.close()


@pytest.mark.parametrize("version", ["5.8", "5.10"])
async def test_discharge_flow_groups_finalises_and_sends(client: EKlaimClient, sim: EKlaimSimulator,
                                                         version: str) -> None:
    result = await client.submit_claim(claim(), ClaimSettings(coder_nik=CODER, version=version))  # type: ignore[arg-type]
    assert (result.cbg_code, result.tariff, result.sent) == ("E-4-10-I", 2_850_600, True)
    stored = sim.claims["0301R0111226V000001"]
    assert stored["final"] and stored["diagnosa"] == ["E10", "I10"] and stored["procedure"] == ["89.03"]
    assert stored["data"]["tarif_rs"]["konsultasi"] == "150000" and stored["data"]["tarif_rs"]["kamar"] == "0"


async def test_special_cmg_goes_to_stage_two_when_offered_and_configured(client: EKlaimClient,
                                                                         sim: EKlaimSimulator) -> None:
    sim.special_cmg_for["S71.0"] = [{"code": "YY01", "description": "Hip Replacement", "type": "Special Procedure"}]
    result = await client.submit_claim(claim(diagnoses=["S71.0"]), ClaimSettings(coder_nik=CODER, special_cmg=("YY01",)))
    assert result.special_cmg == ("YY01",) and result.tariff == 31_713_400 + 500_000


async def test_a_retried_flow_reuses_its_claim(client: EKlaimClient) -> None:
    settings = ClaimSettings(coder_nik=CODER)
    await client.call("new_claim", {"nomor_kartu": "1", "nomor_sep": "0301R0111226V000001", "nomor_rm": "MR001",
                                    "nama_pasien": "BUDI", "tgl_lahir": "1981-10-10 00:00:00", "gender": 1})
    assert (await client.submit_claim(claim(), settings)).sent


async def test_unknown_coder_is_refused_with_eklaim_message(client: EKlaimClient) -> None:
    with pytest.raises(ServiceRejected) as refused:
        await client.submit_claim(claim(), ClaimSettings(coder_nik="9999"))
    assert refused.value.code == "E2006" and refused.value.service_message == "NIK Coder tidak ditemukan"
    assert refused.value.response is not None and "NIK Coder tidak ditemukan" in str(refused.value.response)


async def test_wrong_key_is_key_mismatch(sim: EKlaimSimulator) -> None:
    wrong = EKlaimClient(sim.url, "ff" * 32, timeout=2.0)
    with pytest.raises(ServiceRejected, match="E2031"):
        await wrong.call("get_claim_status", {"nomor_sep": "X"})
    await wrong.close()


async def test_debug_mode_only_when_enabled(sim: EKlaimSimulator) -> None:
    debug = EKlaimClient(sim.url, KEY, timeout=2.0, debug=True)
    with pytest.raises(ServiceRejected) as refused:
        await debug.call("get_claim_status", {"nomor_sep": "X"})
    assert "Debug mode is disabled" in refused.value.service_message
    sim.enable_debug = True
    with pytest.raises(ServiceRejected, match="E2004"):
        await debug.call("get_claim_status", {"nomor_sep": "X"})
    await debug.close()


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "malformed", "drop"])
async def test_transport_faults_are_retryable(client: EKlaimClient, sim: EKlaimSimulator, fault: str) -> None:
    sim.fail_next(fault)
    with pytest.raises(ServiceUnavailable):
        await client.submit_claim(claim(), ClaimSettings(coder_nik=CODER))
    assert (await client.submit_claim(claim(), ClaimSettings(coder_nik=CODER))).sent
