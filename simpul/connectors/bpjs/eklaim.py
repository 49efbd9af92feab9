"""INA-CBG E-Klaim web service client (the Kemenkes application on the hospital LAN).

One URL (`.../E-Klaim/ws.php`); each request is `{"metadata":{"method":..},"data":{..}}`
encrypted with the site's 64-hex key and POSTed raw; the answer comes back framed
(----BEGIN/END ENCRYPTED DATA----) and encrypted the same way. `metadata.code` other than 200
is a refusal carrying E-Klaim's `error_no` and message. `debug=True` uses `?mode=debug`
(plain JSON both ways; only for a test installation with enable_debug=1).

`submit_claim` runs the discharge flow: new_claim -> set_claim_data -> grouper (stage 2 when the
site configured special CMGs and stage 1 offered them) -> claim_final -> send_claim_individual.
Version "5.10" runs the iDRG steps in between (idrg_* set/group/final, import to INA-CBG).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from simpul.connectors.bpjs.crypto import CryptoError, eklaim_decrypt, eklaim_encrypt
from simpul.connectors.bpjs.service import (
    CallRecord, RateLimit, ServiceRejected, ServiceUnavailable, audit, status_error, transport_error,
)

SERVICE = "E-Klaim"
TARIF_RS_BUCKETS = ("prosedur_non_bedah", "prosedur_bedah", "konsultasi", "tenaga_ahli", "keperawatan", "penunjang",
                    "radiologi", "laboratorium", "pelayanan_darah", "rehabilitasi", "kamar", "rawat_intensif", "obat",
                    "obat_kronis", "obat_kemoterapi", "alkes", "bmhp", "sewa_alat")
DUPLICATE_CLAIM = "E2007"


@dataclass
class ClaimInput:
    """What the discharge flow sends; amounts are integer rupiah per tarif_rs bucket."""

    nomor_sep: str
    nomor_kartu: str
    nomor_rm: str
    nama_pasien: str = field(repr=False)
    tgl_lahir: str            # YYYY-MM-DD hh:mm:ss
    gender: int               # 1 L, 2 P
    tgl_masuk: str
    tgl_pulang: str
    jenis_rawat: str          # 1 inap, 2 jalan
    kelas_rawat: str
    discharge_status: str
    diagnoses: list[str]      # ICD-10, principal first
    procedures: list[str]     # ICD-9-CM
    tarif_rs: dict[str, int]
    nama_dokter: str = ""
    cara_masuk: str = "gp"


@dataclass(frozen=True)
class ClaimSettings:
    coder_nik: str
    kode_tarif: str = "CP"
    payor_id: str = "3"
    payor_cd: str = "JKN"
    version: Literal["5.8", "5.10"] = "5.8"
    special_cmg: tuple[str, ...] = ()      # codes to apply at stage 2 when stage 1 offers them


@dataclass(frozen=True)
class ClaimResult:
    nomor_sep: str
    cbg_code: str
    cbg_description: str
    tariff: int
    special_cmg: tuple[str, ...]
    sent: bool


class EKlaimClient:
    def __init__(self, url: str, key_hex: str, *, timeout: float = 30.0, debug: bool = False,
                 rate_per_second: float = 0.0) -> None:
        self.url = url
        self._key = key_hex
        self.timeout = timeout
        self.debug = debug
        self._limit = RateLimit(rate_per_second)
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"EKlaimClient({self.url!r})"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def call(self, method: str, data: dict[str, Any], **metadata: Any) -> dict[str, Any]:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        await self._limit.wait()
        plain = json.dumps({"metadata": {"method": method, **metadata}, "data": data}).encode()
        body = plain.decode() if self.debug else eklaim_encrypt(self._key, plain)
        started = time.monotonic()
        outcome, code = "unavailable", ""
        try:
            try:
                answer = await self._client.post(self.url, content=body, params={"mode": "debug"} if self.debug else None,
                                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
            except httpx.HTTPError as exc:
                raise transport_error(SERVICE, method, exc) from None
            code = str(answer.status_code)
            retry = status_error(SERVICE, method, answer)
            if retry is not None:
                raise retry
            reply = self._open(answer, method)
            found_meta = reply.get("metadata")
            meta: dict[str, Any] = found_meta if isinstance(found_meta, dict) else {}
            code = str(meta.get("code", ""))
            if code != "200":
                outcome = "refused"
                error_no = str(meta.get("error_no", code))
                raise ServiceRejected(SERVICE, method, error_no, str(meta.get("message", "")),
                                      response=json.dumps(meta))
            outcome = "ok"
            return reply
        finally:
            audit(CallRecord(SERVICE, method, outcome, code, time.monotonic() - started))

    def _open(self, answer: httpx.Response, method: str) -> dict[str, Any]:
        text = answer.text
        try:
            # plain JSON in debug mode (and when a server refuses before encrypting), else framed ciphertext
            plain = text if text.lstrip().startswith("{") else eklaim_decrypt(self._key, text).decode()
            reply = json.loads(plain)
        except CryptoError as exc:
            if "SIGNATURE_NOT_MATCH" in str(exc):
                raise ServiceRejected(SERVICE, method, "E2031", "Key Mismatch: the E-Klaim key is not this "
                                      "site's key") from None
            raise ServiceUnavailable(f"{SERVICE} {method}: answer does not decrypt ({exc})") from None
        except (ValueError, UnicodeDecodeError):
            raise ServiceUnavailable(f"{SERVICE} {method}: HTTP {answer.status_code} with an unreadable body",
                                     response=text[:4096]) from None
        if not isinstance(reply, dict):
            raise ServiceUnavailable(f"{SERVICE} {method}: answer is not a JSON object")
        return reply

    # -- the discharge flow ----------------------------------------------------------------------

    async def submit_claim(self, claim: ClaimInput, settings: ClaimSettings) -> ClaimResult:
        sep = claim.nomor_sep
        try:
            await self.call("new_claim", {"nomor_kartu": claim.nomor_kartu, "nomor_sep": sep, "nomor_rm": claim.nomor_rm,
                                          "nama_pasien": claim.nama_pasien, "tgl_lahir": claim.tgl_lahir,
                                          "gender": claim.gender})
        except ServiceRejected as refused:
            if refused.code != DUPLICATE_CLAIM:    # a retried flow finds its own claim: carry on with it
                raise
        await self.call("set_claim_data", claim_data(claim, settings), nomor_sep=sep)
        if settings.version == "5.10":
            await self._idrg(claim)
        grouped = await self.call("grouper", {"nomor_sep": sep}, stage=1, grouper="inacbg")
        offered = {str(item.get("code")) for item in grouped.get("special_cmg_option", []) if isinstance(item, dict)}
        chosen = tuple(code for code in settings.special_cmg if code in offered)
        if chosen:
            grouped = await self.call("grouper", {"nomor_sep": sep, "special_cmg": "#".join(chosen)},
                                      stage=2, grouper="inacbg")
        if settings.version == "5.10":
            await self.call("inacbg_grouper_final", {"nomor_sep": sep})
        result = grouped.get("response_inacbg") or grouped.get("response") or {}
        cbg = result.get("cbg", {}) if isinstance(result, dict) else {}
        await self.call("claim_final", {"nomor_sep": sep, "coder_nik": settings.coder_nik})
        await self.call("send_claim_individual", {"nomor_sep": sep})
        status = await self.call("get_claim_status", {"nomor_sep": sep})
        return ClaimResult(nomor_sep=sep, cbg_code=str(cbg.get("code", "")), cbg_description=str(cbg.get("description", "")),
                           tariff=int(float(result.get("tariff", 0) or 0)), special_cmg=chosen,
                           sent=str(status.get("response", {}).get("status_kirim", "")) == "1")

    async def _idrg(self, claim: ClaimInput) -> None:
        sep = claim.nomor_sep
        await self.call("idrg_diagnosa_set", {"nomor_sep": sep, "diagnosa": "#".join(claim.diagnoses) or "#"},
                        nomor_sep=sep)
        await self.call("idrg_procedure_set", {"nomor_sep": sep, "procedure": "#".join(claim.procedures) or "#"},
                        nomor_sep=sep)
        await self.call("grouper", {"nomor_sep": sep}, stage=1, grouper="idrg")
        await self.call("idrg_grouper_final", {"nomor_sep": sep})
        await self.call("idrg_to_inacbg_import", {"nomor_sep": sep})


def claim_data(claim: ClaimInput, settings: ClaimSettings) -> dict[str, Any]:
    unknown = set(claim.tarif_rs) - set(TARIF_RS_BUCKETS)
    if unknown:
        raise ServiceRejected(SERVICE, "set_claim_data", "tarif_rs",
                              f"charges in buckets E-Klaim does not have: {', '.join(sorted(unknown))}", local=True)
    data: dict[str, Any] = {
        "nomor_sep": claim.nomor_sep, "nomor_kartu": claim.nomor_kartu, "tgl_masuk": claim.tgl_masuk,
        "tgl_pulang": claim.tgl_pulang, "cara_masuk": claim.cara_masuk, "jenis_rawat": claim.jenis_rawat,
        "kelas_rawat": claim.kelas_rawat, "discharge_status": claim.discharge_status,
        "tarif_rs": {bucket: str(int(claim.tarif_rs.get(bucket, 0))) for bucket in TARIF_RS_BUCKETS},
        "nama_dokter": claim.nama_dokter, "kode_tarif": settings.kode_tarif, "payor_id": settings.payor_id,
        "payor_cd": settings.payor_cd, "cob_cd": "#", "coder_nik": settings.coder_nik}
    if settings.version == "5.8":     # classic: diagnoses travel in set_claim_data, '#'-joined
        data["diagnosa"] = "#".join(claim.diagnoses) or "#"
        data["procedure"] = "#".join(claim.procedures) or "#"
    return data
