"""INA-CBG E-Klaim web service simulator (ws.php), classic (5.8) and iDRG (5.10) flows.

- The body must decrypt with the site key and its 10-byte HMAC prefix must match (else E2031 Key
  Mismatch, as the service answers); answers are encrypted and framed with
  ----BEGIN/END ENCRYPTED DATA---- and CRLF, base64 wrapped at 76 as PHP's chunk_split does.
- `?mode=debug` exchanges plain JSON only when `enable_debug` is on (else refused).
- Enforced: every metadata.method known; new_claim fields (duplicate SEP -> E2007); set_claim_data
  needs a registered coder_nik (E2006), an existing claim (E2004), not final (E2009) and only the 18
  tarif_rs buckets; grouper needs a diagnosis; claim_final needs a grouping (E2017); send needs a
  final claim (E2002). The grouper answer is deterministic: a table by principal diagnosis.
"""
from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any

from simpul.connectors.bpjs.crypto import CryptoError, eklaim_decrypt, eklaim_encrypt, eklaim_frame
from simpul.connectors.bpjs.eklaim import TARIF_RS_BUCKETS

from tests.fakes.national_http import Reply, Seen, SimServer

GROUPS = {"E10": ("E-4-10-I", "DIABETES MELLITUS RINGAN", 2_850_600),
          "A09": ("A-4-14-I", "INFEKSI USUS RINGAN", 1_923_400),
          "S71.0": ("M-1-04-I", "PROSEDUR PADA SENDI PANGGUL DAN FEMUR RINGAN", 31_713_400)}
DEFAULT_GROUP = ("Q-5-44-0", "PENYAKIT KRONIS KECIL LAIN-LAIN", 1_250_000)
NEW_CLAIM_FIELDS = ("nomor_kartu", "nomor_sep", "nomor_rm", "nama_pasien", "tgl_lahir", "gender")
METHODS = {"new_claim", "set_claim_data", "grouper", "claim_final", "send_claim_individual", "get_claim_status",
           "get_claim_data", "reedit_claim", "delete_claim", "idrg_diagnosa_set", "idrg_procedure_set",
           "idrg_grouper_final", "idrg_to_inacbg_import", "inacbg_diagnosa_set", "inacbg_procedure_set",
           "inacbg_grouper_final"}


@dataclass
class EKlaimSimulator(SimServer):
    key_hex: str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
    coders: set[str] = field(default_factory=lambda: {"3201234567890001"})
    enable_debug: bool = False
    special_cmg_for: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    claims: dict[str, dict[str, Any]] = field(default_factory=dict)
    _refusals: list[tuple[str, str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.base_url}/E-Klaim/ws.php"

    def refuse_next(self, error_no: str, message: str) -> None:
        self._refusals.append((error_no, message))

    def _reply(self, body: dict[str, Any], debug: bool) -> Reply:
        text = json.dumps(body).encode()
        if debug:
            return 200, {"Content-Type": "application/json"}, text
        return 200, {"Content-Type": "text/plain"}, eklaim_frame(eklaim_encrypt(self.key_hex, text)).encode()

    def _error(self, error_no: str, message: str, debug: bool, code: int = 400, **extra: Any) -> Reply:
        return self._reply({"metadata": {"code": code, "message": message, "error_no": error_no}, **extra}, debug)

    def _ok(self, debug: bool, **body: Any) -> Reply:
        return self._reply({"metadata": {"code": 200, "message": "Ok"}, **body}, debug)

    def handle(self, seen: Seen) -> Reply:
        path, _, query = seen.path.partition("?")
        if path != "/E-Klaim/ws.php" or seen.method != "POST":
            return 404, {"Content-Type": "text/html"}, b"<html>Not Found</html>"
        debug = "mode=debug" in query
        if debug and not self.enable_debug:
            return self._error("E2099", "Debug mode is disabled (enable_debug=0)", False)
        try:
            plain = seen.body if debug else eklaim_decrypt(self.key_hex, seen.body.decode("ascii"))
        except (CryptoError, UnicodeDecodeError) as exc:
            if "SIGNATURE_NOT_MATCH" in str(exc):
                return self._error("E2031", "Key Mismatch", debug)
            return self._error("E2099", "Payload tidak dapat dibaca", debug)
        try:
            request = json.loads(plain)
            method = request["metadata"]["method"]
            data = request["data"]
        except (ValueError, KeyError, TypeError):
            return self._error("E2001", "Method tidak ditemukan / format request salah", debug)
        if method not in METHODS:
            return self._error("E2001", f"Method {method} tidak dikenal", debug)
        if self._refusals:
            error_no, message = self._refusals.pop(0)
            return self._error(error_no, message, debug)
        return self._dispatch(method, request["metadata"], data, debug)

    def _dispatch(self, method: str, meta: dict[str, Any], data: dict[str, Any], debug: bool) -> Reply:
        sep = str(data.get("nomor_sep") or meta.get("nomor_sep") or "")
        if method == "new_claim":
            missing = [name for name in NEW_CLAIM_FIELDS if not data.get(name)]
            if missing:
                return self._error("E2003", f"Data {missing[0]} tidak boleh kosong", debug)
            if sep in self.claims:
                return self._error("E2007", "Duplikasi nomor SEP", debug, duplicate=[{"nomor_sep": sep}])
            self.claims[sep] = {"new": data, "data": {}, "diagnosa": [], "procedure": [], "group": None,
                                "final": False, "sent": None}
            return self._ok(debug, response={"patient_id": 453, "admission_id": len(self.claims),
                                             "hospital_admission_id": 678})
        claim = self.claims.get(sep)
        if claim is None:
            return self._error("E2004", "Nomor SEP tidak ditemukan", debug)
        if method == "set_claim_data":
            if data.get("coder_nik") not in self.coders:
                return self._error("E2006", "NIK Coder tidak ditemukan", debug)
            if claim["final"]:
                return self._error("E2009", "Klaim sudah final", debug)
            unknown = set(data.get("tarif_rs", {})) - set(TARIF_RS_BUCKETS)
            if unknown:
                return self._error("E2099", f"tarif_rs tidak dikenal: {sorted(unknown)}", debug)
            claim["data"].update(data)
            for name in ("diagnosa", "procedure"):
                if data.get(name):
                    claim[name] = [] if data[name] == "#" else data[name].split("#")
            claim["group"] = None
            return self._ok(debug)
        if method in ("idrg_diagnosa_set", "inacbg_diagnosa_set", "idrg_procedure_set", "inacbg_procedure_set"):
            name = "diagnosa" if "diagnosa" in method else "procedure"
            value = str(data.get(name, ""))
            if value:
                claim[name] = [] if value == "#" else value.split("#")
            return self._ok(debug, response={"data": {"string": value, "expanded": [
                {"code": code, "validcode": "1"} for code in claim[name]]}})
        if method in ("idrg_grouper_final", "idrg_to_inacbg_import", "inacbg_grouper_final"):
            return self._ok(debug)
        if method == "grouper":
            if not claim["diagnosa"]:
                return self._error("E2099", "Diagnosa belum diisi", debug)
            code, description, tariff = GROUPS.get(claim["diagnosa"][0], DEFAULT_GROUP)
            stage = str(meta.get("stage", "1"))
            special = [c for c in str(data.get("special_cmg", "")).split("#") if c] if stage == "2" else []
            tariff += 500_000 * len(special)
            claim["group"] = {"cbg": {"code": code, "description": description}, "base_tariff": str(tariff),
                              "tariff": str(tariff), "kelas": "kelas_3", "inacbg_version": "5.10.7",
                              "status_cd": "normal", "special_cmg": special}
            body: dict[str, Any] = {"response_inacbg": claim["group"], "response": claim["group"]}
            options = self.special_cmg_for.get(claim["diagnosa"][0])
            if options and stage == "1":
                body["special_cmg_option"] = options
            return self._ok(debug, **body)
        if method == "claim_final":
            if claim["group"] is None:
                return self._error("E2017", "Klaim belum di-grouping", debug)
            if data.get("coder_nik") not in self.coders:
                return self._error("E2006", "NIK Coder tidak ditemukan", debug)
            claim["final"] = True
            return self._ok(debug)
        if method == "reedit_claim":
            claim["final"] = False
            return self._ok(debug)
        if method == "send_claim_individual":
            if not claim["final"]:
                return self._error("E2002", "Klaim belum final", debug)
            claim["sent"] = datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            return self._ok(debug, response={"data": [{"SEP": sep, "tgl_pulang": claim["data"].get("tgl_pulang"),
                                                       "kemkes_dc_Status": "sent", "bpjs_dc_Status": "sent"}]})
        if method == "get_claim_status":
            return self._ok(debug, response={"status_kirim": "1" if claim["sent"] else "0",
                                             "tgl_kirim": claim["sent"] or ""})
        if method == "get_claim_data":
            group = claim["group"] or {}
            return self._ok(debug, response={**claim["data"], "diagnosa": "#".join(claim["diagnosa"]),
                                             "procedure": "#".join(claim["procedure"]),
                                             "cbg_code": group.get("cbg", {}).get("code", ""),
                                             "cbg_tariff": group.get("tariff", "0"),
                                             "status_klaim": "final" if claim["final"] else "normal"})
        if method == "delete_claim":
            self.claims.pop(sep, None)
            return self._ok(debug)
        return self._error("E2001", "Method tidak ditemukan", debug)
