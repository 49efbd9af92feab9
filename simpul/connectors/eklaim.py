"""eklaim: at discharge of a BPJS patient, submit the INA-CBG claim through E-Klaim.

Features
    Takes the raw HL7v2 discharge (A03). For a visit with a SEP (issued by bpjs_vclaim and kept in
    the ledger, or read from `sep_field`), runs new_claim -> set_claim_data (ICD-10 from DG1,
    ICD-9-CM from PR1, tarif_rs buckets from the visit's invoiced charges, or the message's FT1s) ->
    grouper -> claim_final -> send_claim_individual, and writes the INA-CBG code and tariff onto the
    visit's invoice (claimed_amount, which reconciliation compares with the itemized total).
    A claim already sent for the visit is not sent again; a retried flow resumes its own claim.
Connection
    `url` of ws.php on the hospital LAN; the 64-hex key from the environment or `secrets_file`.
Options
    coder_nik, kode_tarif, payor_id, payor_cd, version (5.8 classic, 5.10 iDRG), special_cmg,
    tarif_rs_from, charge_buckets, sep_field, payer_ids, cara_masuk, discharge_status, debug, ledger_url, timeout.
Errors
    transport failures, 429, 5xx, an answer that does not decrypt: retryable. An E-Klaim error
    (E20xx, its message kept on the delivery and in the ledger), a key mismatch (E2031), charges
    without a bucket, no SEP: final, so the discharge becomes a dead letter with that reason.
"""
from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from simpul.config_types import Duration
from simpul.connectors.base import ConnectorSpec, Outgoing
from simpul.connectors.bpjs.eklaim import ClaimInput, ClaimSettings, EKlaimClient
from simpul.connectors.bpjs.ledger import Ledger, open_ledger
from simpul.connectors.bpjs.service import ServiceRejected, ServiceUnavailable, read_secrets
from simpul.connectors.bpjs.tariff import claim_result_for_invoice, tarif_rs_for_visit
from simpul.connectors.bpjs.visit_v2 import VisitFacts, read_visit
from simpul.errors import SimpulError
from simpul.v2 import parse_message

SERVICE = "eklaim"
DISCHARGES = {"A03"}


class EKlaimConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="The E-Klaim web service URL.", examples=["http://10.0.0.5/E-Klaim/ws.php"])
    coder_nik: str = Field(description="NIK of the coder registered in E-Klaim (claim_final needs it).")
    kode_tarif: str = Field("CP", description="The hospital's tariff class (AP, AS, BP, ..., RSCM, RSJP, RSD, RSAB).")
    payor_id: str = Field("3", description="payor_id of the 'Jaminan' setup (JKN = 3).")
    payor_cd: str = Field("JKN", description="payor_cd of the 'Jaminan' setup.")
    version: Literal["5.8", "5.10"] = Field("5.8", description="E-Klaim flow: 5.8 classic or 5.10 with iDRG.")
    special_cmg: list[str] = Field(default_factory=list, description="Special CMG codes to apply when offered.")
    tarif_rs_from: Literal["billing", "message"] = Field(
        "billing", description="Where the charges come from: the visit's invoice in encounter-to-cash (billing: "
        "the claim waits, retrying, until the invoice is made) or the discharge message's FT1 segments (message).")
    charge_buckets: dict[str, str] = Field(default_factory=dict, description="Charge code (FT1-7.1) to tarif_rs "
                                           "bucket, for tarif_rs_from: message.")
    sep_field: str = Field("PV1-50", description="Where the SEP number is when the ledger has none (SEG-field).")
    payer_ids: list[str] = Field(default_factory=lambda: ["BPJS", "JKN"], description="IN1 values meaning BPJS.")
    cara_masuk: str = Field("gp", description="cara_masuk sent with every claim.")
    discharge_status: str = Field("1", description="discharge_status sent with every claim (1 = home).")
    debug: bool = Field(False, description="Plain JSON (?mode=debug); only on a test E-Klaim with enable_debug=1.")
    key_env: str = Field("EKLAIM_KEY", description="Variable holding the 64-hex encryption key.")
    secrets_file: str | None = Field(None, description="KEY=VALUE file read before the environment.")
    ledger_url: str | None = Field(None, description="Database with the SEP numbers and the claims; normally "
                                   "${SIMPUL_DATABASE_URL}.")
    timeout: Duration = Field(30.0, description="Per-request timeout.")
    rate_per_second: float = Field(0.0, description="At most this many calls a second (0: no limit).")


class EKlaimConnector:
    def __init__(self, config: EKlaimConfig) -> None:
        self.config = config
        self.settings = ClaimSettings(coder_nik=config.coder_nik, kode_tarif=config.kode_tarif, payor_id=config.payor_id,
                                      payor_cd=config.payor_cd, version=config.version,
                                      special_cmg=tuple(config.special_cmg))
        self._client: EKlaimClient | None = None
        self._ledger: Ledger | None = None

    async def connect(self) -> None:
        if self._client is not None:
            return
        key = read_secrets([self.config.key_env], secrets_file=self.config.secrets_file)[self.config.key_env]
        self._client = EKlaimClient(self.config.url, key, timeout=self.config.timeout, debug=self.config.debug,
                                    rate_per_second=self.config.rate_per_second)
        if self._ledger is None:
            self._ledger = await asyncio.to_thread(open_ledger, self.config.ledger_url)

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
            raise ServiceRejected("E-Klaim", "read", "local", f"not a readable HL7v2 message ({exc})", local=True) from None
        if facts.event not in DISCHARGES or facts.card is None:
            return f"not a BPJS discharge ({facts.event}): nothing sent"
        sep, klass = await self._sep_number(facts, outgoing.payload)
        local_ref = f"claim|{sep}"
        done = await asyncio.to_thread(self._ledger.latest, SERVICE, local_ref)
        if done is not None and done.status == "sent":
            return f"claim for SEP {sep} already sent (INA-CBG {done.remote_id})"
        try:
            billed = await self._billed(facts)
            claim = self._claim(facts, sep, klass, billed)
            result = await self._client.submit_claim(claim, self.settings)
        except ServiceRejected as refused:
            await asyncio.to_thread(self._ledger.record, SERVICE, "claim", facts.visit, local_ref, status="refused",
                                    message=refused.service_message, channel=outgoing.channel,
                                    control_id=outgoing.control_id, detail={"operation": refused.operation,
                                                                            "code": refused.code, "sep": sep})
            raise
        invoice_no = await asyncio.to_thread(self._ledger.claim_on_invoice, facts.visit, result.cbg_code, result.tariff)
        invoice = {**claim_result_for_invoice(result), "sep": sep, "tarif_rs_total": sum(claim.tarif_rs.values()),
                   "invoice_no": invoice_no}
        await asyncio.to_thread(self._ledger.record, SERVICE, "claim", facts.visit, local_ref, status="sent",
                                remote_id=result.cbg_code, detail=invoice, channel=outgoing.channel,
                                control_id=outgoing.control_id)
        return f"INA-CBG {result.cbg_code} tariff {result.tariff} for SEP {sep} ({'sent' if result.sent else 'final'})"

    async def _sep_number(self, facts: VisitFacts, raw: bytes) -> tuple[str, str]:
        """The visit's SEP number and the participant's class (hak kelas) when bpjs_vclaim issued it."""
        assert self._ledger is not None
        issued = await asyncio.to_thread(self._ledger.latest, "vclaim", f"sep|{facts.visit}")
        if issued is not None and issued.status == "sent" and issued.remote_id:
            return issued.remote_id, str(issued.detail.get("class", ""))
        segment, _, number = self.config.sep_field.partition("-")
        found = parse_message(raw.decode("utf-8", "replace")).one(segment)
        value = found.text(int(number)) if found is not None and number.isdigit() else ""
        if not value:
            raise ServiceRejected("E-Klaim", "read", "local", f"no SEP for this visit (none issued through bpjs_vclaim "
                                  f"and {self.config.sep_field} is empty)", local=True)
        return value, ""

    async def _billed(self, facts: VisitFacts) -> dict[str, int] | None:
        if self.config.tarif_rs_from != "billing":
            return None
        assert self._ledger is not None
        if self.config.ledger_url is None:
            raise ServiceRejected("E-Klaim", "tarif_rs", "local", "tarif_rs_from: billing needs ledger_url (the "
                                  "engine's database, where encounter-to-cash keeps the invoices)", local=True)
        billed = await asyncio.to_thread(self._ledger.billed_tarif_rs, facts.visit)
        if billed is None:
            # the stay's invoice is made once it is closed and every charge is priced: wait for it
            raise ServiceUnavailable("E-Klaim: the visit has no invoice yet (encounter-to-cash has not closed it "
                                     "or a charge is unpriced); the claim waits for it")
        return billed

    def _claim(self, facts: VisitFacts, sep: str, klass: str, billed: dict[str, int] | None) -> ClaimInput:
        if facts.admitted is None or facts.discharged is None:
            raise ServiceRejected("E-Klaim", "read", "local", "admission (PV1-44) and discharge (PV1-45) times are "
                                  "required", local=True)
        if not facts.diagnoses:
            raise ServiceRejected("E-Klaim", "read", "local", "no diagnosis (DG1-3) to group", local=True)
        birth = facts.birth_date
        return ClaimInput(
            nomor_sep=sep, nomor_kartu=facts.card or "", nomor_rm=facts.mrn, nama_pasien=facts.name or "-",
            tgl_lahir=f"{birth[:4]}-{birth[4:6]}-{birth[6:8]} 00:00:00" if len(birth) == 8 else "",
            gender=2 if facts.sex.upper() in ("F", "P") else 1,
            tgl_masuk=facts.admitted.strftime("%Y-%m-%d %H:%M:%S"), tgl_pulang=facts.discharged.strftime("%Y-%m-%d %H:%M:%S"),
            jenis_rawat="1" if facts.inpatient else "2",
            # outpatients claim as regular class 3; inpatients at the class the SEP gave them
            kelas_rawat=klass if facts.inpatient and klass in ("1", "2", "3") else "3", discharge_status=self.config.discharge_status,
            diagnoses=facts.diagnoses, procedures=facts.procedures,
            tarif_rs=tarif_rs_for_visit(facts, self.config.charge_buckets, billed), nama_dokter=facts.attending,
            cara_masuk=self.config.cara_masuk)


CONNECTOR = ConnectorSpec(
    name="eklaim", destination=EKlaimConfig, create_destination=EKlaimConnector, default_payload="raw",
    destination_description="At a BPJS discharge: submit the INA-CBG claim through E-Klaim.")
