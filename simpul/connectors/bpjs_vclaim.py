"""bpjs_vclaim: at admission of a BPJS patient, check eligibility and issue the SEP.

Features
    Takes the raw HL7v2 ADT (A01 admit, A04 register; other events and patients without a BPJS
    IN1 are passed over). Checks the participant by card number (IN1-36) on the admission date
    (by NIK when the card is missing), refuses an inactive participant, and, with `create_sep`,
    inserts the SEP (referral from IN1-14 looked up first) and keeps its number, the participant's
    class and type for the visit (PV1-19) in the ledger: the E-Klaim claim at discharge reads it.
    A visit that already has a SEP is not sent again, so a retried delivery issues one SEP.
Connection
    `environment` (dev, prod) or `base_url`; X-cons-id, the secret and user_key come from the
    environment or `secrets_file`.
Options
    ppk_pelayanan, payer_ids, poli, dpjp, create_sep, referral_from, user, default_phone,
    success_codes, ledger_url, timeout, rate_per_second.
Errors
    transport failures, 429, 5xx, an unreadable or undecryptable answer: retryable. A metaData
    code other than 200 (BPJS's own message kept on the delivery and in the ledger), an inactive
    participant, missing data: final, so the admission becomes a dead letter with that reason.
"""
from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from simpul.config_types import Duration
from simpul.connectors.base import ConnectorSpec, Outgoing
from simpul.connectors.bpjs.ledger import Ledger, open_ledger
from simpul.connectors.bpjs.service import ServiceRejected, read_secrets
from simpul.connectors.bpjs.vclaim import BASE_URLS, VClaimClient, VClaimCredentials
from simpul.connectors.bpjs.visit_v2 import VisitFacts, read_visit
from simpul.errors import SimpulError

SERVICE = "vclaim"
ADMISSIONS = {"A01", "A04"}


class VClaimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ppk_pelayanan: str = Field(description="The hospital's BPJS provider code (kode PPK, 8 characters).",
                               examples=["0301R011"])
    environment: Literal["dev", "prod"] = Field("dev", description="Which VClaim to call.")
    base_url: str | None = Field(None, description="VClaim base URL instead of the environment's (simulators).")
    payer_ids: list[str] = Field(default_factory=lambda: ["BPJS", "JKN"],
                                 description="IN1-2.1 / IN1-3.1 values that mean the patient is covered by BPJS.")
    poli: dict[str, str] = Field(default_factory=dict, description="Our clinic (PV1-3.1) to BPJS poli code.")
    dpjp: dict[str, str] = Field(default_factory=dict, description="Our doctor id (PV1-7.1) to BPJS DPJP code.")
    create_sep: bool = Field(True, description="Issue the SEP after the eligibility check (else check only).")
    referral_from: Literal["fktp", "rs"] = Field("fktp", description="Where referrals come from (Rujukan or Rujukan/RS).")
    user: str = Field("simpul", description="The user BPJS records on the SEP.")
    default_phone: str = Field("0", description="noTelp when PID-13 is empty.")
    success_codes: list[str] = Field(default_factory=lambda: ["200"], description="metaData codes meaning success.")
    cons_id_env: str = Field("BPJS_CONS_ID", description="Variable holding X-cons-id.")
    secret_env: str = Field("BPJS_SECRET_KEY", description="Variable holding the consumer secret.")
    user_key_env: str = Field("BPJS_USER_KEY", description="Variable holding the VClaim user_key.")
    secrets_file: str | None = Field(None, description="KEY=VALUE file read before the environment.")
    ledger_url: str | None = Field(None, description="Database keeping SEP numbers and refusals; normally "
                                   "${SIMPUL_DATABASE_URL} (read by simpul bpjs sep show).")
    timeout: Duration = Field(30.0, description="Per-request timeout.")
    rate_per_second: float = Field(0.0, description="At most this many calls a second (0: no limit).")


class VClaimConnector:
    def __init__(self, config: VClaimConfig) -> None:
        self.config = config
        self._client: VClaimClient | None = None
        self._ledger: Ledger | None = None

    async def connect(self) -> None:
        if self._client is not None:
            return
        config = self.config
        secrets = read_secrets([config.cons_id_env, config.secret_env, config.user_key_env],
                               secrets_file=config.secrets_file)
        credentials = VClaimCredentials(secrets[config.cons_id_env], secrets[config.secret_env],
                                        secrets[config.user_key_env])
        self._client = VClaimClient(config.base_url or BASE_URLS[config.environment], credentials,
                                    timeout=config.timeout, rate_per_second=config.rate_per_second,
                                    success_codes=tuple(config.success_codes))
        if self._ledger is None:
            self._ledger = await asyncio.to_thread(open_ledger, config.ledger_url)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def send(self, outgoing: Outgoing) -> str:
        await self.connect()
        assert self._client is not None and self._ledger is not None
        try:
            facts = read_visit(outgoing.payload, self.config.payer_ids)
        except SimpulError as exc:
            raise ServiceRejected("BPJS VClaim", "read", "local", f"not a readable HL7v2 message ({exc})",
                                  local=True) from None
        if facts.event not in ADMISSIONS or (facts.card is None and not facts.nik):
            return f"not a BPJS admission ({facts.event}): nothing sent"
        if not facts.visit:
            raise ServiceRejected("BPJS VClaim", "read", "local", "no visit number (PV1-19) to keep the SEP on",
                                  local=True)
        local_ref = f"sep|{facts.visit}"
        done = await asyncio.to_thread(self._ledger.latest, SERVICE, local_ref)
        if done is not None and done.status == "sent" and done.remote_id:
            return f"SEP {done.remote_id} already issued for this visit"
        try:
            return await self._admit(facts, local_ref, outgoing)
        except ServiceRejected as refused:
            await asyncio.to_thread(self._ledger.record, SERVICE, "sep", facts.visit, local_ref, status="refused",
                                    message=refused.service_message, channel=outgoing.channel,
                                    control_id=outgoing.control_id, detail={"operation": refused.operation,
                                                                            "code": refused.code})
            raise

    async def _admit(self, facts: VisitFacts, local_ref: str, outgoing: Outgoing) -> str:
        assert self._client is not None and self._ledger is not None
        day = (facts.admitted.date() if facts.admitted else None)
        service_date = day.isoformat() if day else ""
        if not service_date:
            raise ServiceRejected("BPJS VClaim", "read", "local", "no admission date (PV1-44) for the SEP", local=True)
        if facts.card:
            member = await self._client.participant_by_card(facts.card, service_date)
        else:
            member = await self._client.participant_by_nik(facts.nik, service_date)
        status = member.get("statusPeserta", {}) or {}
        coverage = {"status": str(status.get("keterangan", "")), "class": str((member.get("hakKelas") or {}).get("kode", "")),
                    "type": str((member.get("jenisPeserta") or {}).get("keterangan", "")),
                    "provider": str((member.get("provUmum") or {}).get("kdProvider", ""))}
        if str(status.get("kode", "")) != "0":
            raise ServiceRejected("BPJS VClaim", "eligibility", "inactive",
                                  f"participant is not active ({coverage['status'] or 'status unknown'})")
        if not self.config.create_sep:
            await asyncio.to_thread(self._ledger.record, SERVICE, "eligibility", facts.visit, f"eligibility|{facts.visit}",
                                    status="sent", detail=coverage, channel=outgoing.channel,
                                    control_id=outgoing.control_id)
            return f"eligible ({coverage['status']}, class {coverage['class']}); no SEP asked for"
        t_sep = await self._t_sep(facts, member, service_date)
        sep = await self._client.sep_insert(t_sep)
        no_sep = str(sep.get("noSep", ""))
        await asyncio.to_thread(self._ledger.record, SERVICE, "sep", facts.visit, local_ref, status="sent",
                                remote_id=no_sep, detail={**coverage, "card": str(member.get("noKartu", ""))},
                                channel=outgoing.channel, control_id=outgoing.control_id)
        return f"SEP {no_sep} issued (participant {coverage['status']}, class {coverage['class']})"

    async def _t_sep(self, facts: VisitFacts, member: dict[str, Any], service_date: str) -> dict[str, Any]:
        assert self._client is not None
        config = self.config
        referral: dict[str, Any] = {}
        if facts.referral:
            referral = await self._client.referral(facts.referral, from_hospital=config.referral_from == "rs")
        poli = config.poli.get(facts.clinic, facts.clinic) if not facts.inpatient else ""
        dpjp = config.dpjp.get(facts.attending, "")
        diagnosis = facts.diagnoses[0] if facts.diagnoses else str((referral.get("diagnosa") or {}).get("kode", ""))
        return {
            "noKartu": str(member.get("noKartu", facts.card or "")), "tglSep": service_date,
            "ppkPelayanan": config.ppk_pelayanan, "jnsPelayanan": "1" if facts.inpatient else "2",
            "klsRawat": {"klsRawatHak": str((member.get("hakKelas") or {}).get("kode", "")), "klsRawatNaik": "",
                         "pembiayaan": "", "penanggungJawab": ""},
            "noMR": facts.mrn,
            "rujukan": {"asalRujukan": "2" if config.referral_from == "rs" else "1",
                        "tglRujukan": str(referral.get("tglKunjungan", "")), "noRujukan": facts.referral,
                        "ppkRujukan": str((referral.get("provPerujuk") or {}).get("kode", ""))},
            "catatan": "", "diagAwal": diagnosis, "poli": {"tujuan": poli, "eksekutif": "0"},
            "cob": {"cob": "0"}, "katarak": {"katarak": "0"},
            "jaminan": {"lakaLantas": "0", "noLP": "", "penjamin": {"tglKejadian": "", "keterangan": "", "suplesi": {
                "suplesi": "0", "noSepSuplesi": "", "lokasiLaka": {"kdPropinsi": "", "kdKabupaten": "", "kdKecamatan": ""}}}},
            "tujuanKunj": "0", "flagProcedure": "", "kdPenunjang": "", "assesmentPel": "",
            "skdp": {"noSurat": "", "kodeDPJP": dpjp if facts.inpatient else ""},
            "dpjpLayan": "" if facts.inpatient else dpjp,
            "noTelp": facts.phone or config.default_phone, "user": config.user}


CONNECTOR = ConnectorSpec(
    name="bpjs_vclaim", destination=VClaimConfig, create_destination=VClaimConnector, default_payload="raw",
    destination_description="At a BPJS admission: check eligibility and issue the SEP (BPJS VClaim).")
