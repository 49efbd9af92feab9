"""BPJS VClaim simulator: checks what the real service checks and answers as it does.

- Signature: X-cons-id must be known, X-signature = base64(HMAC-SHA256(secret, consid&timestamp)),
  X-timestamp within `tolerance` seconds of the simulator's clock, user_key matching; header names
  and paths are matched case-insensitively (clients in the wild differ).
- Answers `{"metaData":{"code","message"},"response":...}` with `response` encrypted (lz-string
  compressToEncodedURIComponent, PKCS#7, AES-256-CBC, key SHA-256(consid+secret+timestamp)), except
  SEP update/delete which answer the plain noSep. Business refusals: code "201", response null.
- SEP insert enforces the required fields and an active participant; numbers are
  {ppk}{MM}{YY}V{6 digits}. Faults from SimServer plus `refuse_next(message)`.
"""
from __future__ import annotations

import datetime
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from simpul.connectors.bpjs.crypto import vclaim_encrypt, vclaim_signature

from tests.fakes.national_http import Reply, Seen, SimServer

REQUIRED_SEP = ["noKartu", "tglSep", "ppkPelayanan", "jnsPelayanan", "klsRawat.klsRawatHak", "noMR",
                "rujukan.asalRujukan", "diagAwal", "poli.tujuan", "poli.eksekutif", "cob.cob", "katarak.katarak",
                "jaminan.lakaLantas", "tujuanKunj", "noTelp", "user"]


def participant(no_kartu: str, nik: str, name: str, *, active: bool = True, klass: str = "3") -> dict[str, Any]:
    return {"noKartu": no_kartu, "nik": nik, "nama": name, "sex": "L", "tglLahir": "1981-10-10", "pisa": "1",
            "statusPeserta": {"kode": "0" if active else "1", "keterangan": "AKTIF" if active else "TIDAK AKTIF"},
            "hakKelas": {"kode": klass, "keterangan": f"KELAS {'I' * int(klass)}"},
            "jenisPeserta": {"kode": "13", "keterangan": "PEGAWAI SWASTA"},
            "provUmum": {"kdProvider": "0138U020", "nmProvider": "KPRJ PALA MEDIKA"},
            "mr": {"noMR": None, "noTelepon": None}}


@dataclass
class VClaimSimulator(SimServer):
    cons_id: str = "1234"
    secret: str = "abcd"
    user_key: str = "uk-vclaim"
    tolerance: float = 300.0
    clock_offset: float = 0.0
    participants: dict[str, dict[str, Any]] = field(default_factory=dict)
    referrals: dict[str, dict[str, Any]] = field(default_factory=dict)
    seps: dict[str, dict[str, Any]] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)
    _refusals: list[str] = field(default_factory=list)
    _counter: int = 0
    _state_lock: threading.Lock = field(default_factory=threading.Lock)

    def add_participant(self, no_kartu: str, nik: str, name: str = "BUDI", **kwargs: Any) -> None:
        self.participants[no_kartu] = participant(no_kartu, nik, name, **kwargs)

    def refuse_next(self, message: str, code: str = "201") -> None:
        self._refusals.append(f"{code}|{message}")

    # ---------------------------------------------------------------------------------------

    def _meta(self, code: str, message: str, response: Any = None, timestamp: str = "",
              encrypt: bool = True) -> Reply:
        if response is not None and encrypt:
            response = vclaim_encrypt(self.cons_id, self.secret, timestamp, json.dumps(response, separators=(",", ":")))
        body = {"metaData": {"code": code, "message": message}, "response": response}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    def handle(self, seen: Seen) -> Reply:
        headers = {key.lower(): value for key, value in seen.headers.items()}
        cons_id, timestamp = headers.get("x-cons-id", ""), headers.get("x-timestamp", "")
        if cons_id != self.cons_id or not timestamp.isdigit():
            return self._meta("401", "Consumer ID atau timestamp tidak valid")
        if abs(int(timestamp) - (time.time() + self.clock_offset)) > self.tolerance:
            return self._meta("401", "Timestamp di luar batas toleransi")
        if headers.get("x-signature") != vclaim_signature(self.cons_id, self.secret, timestamp):
            return self._meta("401", "Signature tidak valid")
        if headers.get("user_key") != self.user_key:
            return self._meta("401", "user_key tidak valid")
        if self._refusals:
            code, message = self._refusals.pop(0).split("|", 1)
            return self._meta(code, message)
        path = seen.path.split("?")[0].strip("/")
        lowered = path.lower()
        body: dict[str, Any] = {}
        if seen.body:
            try:
                body = json.loads(seen.body)
            except ValueError:
                return self._meta("201", "Format request tidak valid")
        ok = "OK"
        if match := re.fullmatch(r"peserta/(nokartu|nik)/([^/]+)/tglsep/([^/]+)", lowered):
            kind, number = match.group(1), match.group(2)
            found = next((p for p in self.participants.values()
                          if (p["noKartu"] if kind == "nokartu" else p["nik"]) == number), None)
            if found is None:
                return self._meta("201", "Peserta Tidak Ditemukan")
            return self._meta("200", ok, {"peserta": found}, timestamp)
        if match := re.fullmatch(r"rujukan(/rs)?/([^/]+)", lowered):
            referral = self.referrals.get(path.split("/")[-1])
            if referral is None:
                return self._meta("201", "Data rujukan tidak ditemukan")
            return self._meta("200", ok, {"rujukan": referral}, timestamp)
        if lowered == "sep/2.0/insert" and seen.method == "POST":
            return self._sep_insert(body, timestamp)
        if lowered == "sep/2.0/update" and seen.method == "PUT":
            t_sep = body.get("request", {}).get("t_sep", {})
            if t_sep.get("noSep") not in self.seps:
                return self._meta("201", "No.SEP Tidak Ditemukan")
            self.seps[t_sep["noSep"]].update({k: v for k, v in t_sep.items() if k != "noSep"})
            return self._meta("200", ok, t_sep["noSep"], encrypt=False)
        if lowered == "sep/2.0/delete" and seen.method == "DELETE":
            t_sep = body.get("request", {}).get("t_sep", {})
            if self.seps.pop(t_sep.get("noSep", ""), None) is None:
                return self._meta("201", "No.SEP Tidak Ditemukan")
            return self._meta("200", ok, t_sep["noSep"], encrypt=False)
        if match := re.fullmatch(r"sep/([^/]+)", lowered):
            sep = self.seps.get(path.split("/")[-1])
            if sep is None:
                return self._meta("201", "No.SEP Tidak Ditemukan")
            return self._meta("200", ok, sep, timestamp)
        if match := re.fullmatch(r"monitoring/klaim/tanggal/([^/]+)/jnspelayanan/(\d)/status/(\d)", lowered):
            return self._meta("200", ok, {"klaim": self.claims}, timestamp)
        return 404, {"Content-Type": "text/html"}, b"<html>404 Not Found</html>"

    def _sep_insert(self, body: dict[str, Any], timestamp: str) -> Reply:
        t_sep = body.get("request", {}).get("t_sep")
        if not isinstance(t_sep, dict):
            return self._meta("201", "Request t_sep tidak ditemukan")
        for name in REQUIRED_SEP:
            value: Any = t_sep
            for part in name.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            optional_empty = name == "poli.tujuan" and t_sep.get("jnsPelayanan") == "1"   # inpatients: no poli
            if value is None or (value == "" and not optional_empty):
                return self._meta("201", f"{name} tidak boleh kosong")
        member = self.participants.get(t_sep["noKartu"])
        if member is None:
            return self._meta("201", "Peserta Tidak Ditemukan")
        if member["statusPeserta"]["kode"] != "0":
            return self._meta("201", f"Status Kepesertaan {member['statusPeserta']['keterangan']}")
        if t_sep["jnsPelayanan"] == "2" and not t_sep.get("dpjpLayan"):
            return self._meta("201", "DPJP Layan tidak boleh kosong")
        with self._state_lock:
            self._counter += 1
            day = datetime.date.fromisoformat(t_sep["tglSep"])
            no_sep = f"{t_sep['ppkPelayanan'][:8]}{day:%m%y}V{self._counter:06d}"
        sep = {"noSep": no_sep, "tglSep": t_sep["tglSep"], "jnsPelayanan": "R.Jalan" if t_sep["jnsPelayanan"] == "2"
               else "R.Inap", "kdPoli": t_sep["poli"]["tujuan"], "diagnosa": t_sep["diagAwal"],
               "noRujukan": t_sep["rujukan"].get("noRujukan", ""), "kelasRawat": t_sep["klsRawat"]["klsRawatHak"],
               "peserta": {"noKartu": member["noKartu"], "nama": member["nama"], "noMr": t_sep["noMR"],
                           "hakKelas": member["hakKelas"]["keterangan"]}}
        self.seps[no_sep] = sep
        return self._meta("200", "OK", {"sep": sep}, timestamp)
