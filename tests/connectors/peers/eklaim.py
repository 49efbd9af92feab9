"""The eklaim destination's peer: the E-Klaim simulator. `received()` gives back, per new_claim the
simulator was sent (served or faulted; decrypted with the site key), the discharge with that MRN."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Literal

from simpul.connectors.base import Outgoing
from simpul.connectors.bpjs.crypto import CryptoError, eklaim_decrypt

from tests.connectors.conformance import PATIENT_MARKER, Peer
from tests.fakes.eklaim_sim import EKlaimSimulator

KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
CODER = "3201234567890001"


def bpjs_discharge(number: int, *, card: str, sep: str = "", name: str = PATIENT_MARKER, visit: str | None = None,
                   charges: tuple[tuple[str, int], ...] = (("KONS", 150000), ("LAB", 120000), ("obat", 85000))) -> bytes:
    pv1 = ["PV1", "1", "O", "POLI-INT^^^RSUD", "", "", "", "31574^Dokter^Andi"] + [""] * 11 + [visit or f"V{number}"]
    pv1 += [""] * 24 + ["20261202083000+0700", "20261202110000+0700"] + [""] * 4 + [sep]
    in1 = ["IN1", "1", "BPJS^BPJS Kesehatan", "BPJS", "BPJS Kesehatan"] + [""] * 31 + [card]
    segments = [f"MSH|^~\\&|SIMRS|RSUD|SIMPUL|RSUD|20261202110000+0700||ADT^A03^ADT_A03|DIS-{number}|P|2.5.1",
                "EVN|A03|20261202110000+0700",
                f"PID|1||MR{number}^^^RSUD^MR||{name}||19810101|M", "|".join(pv1),
                "DG1|1||E10^Diabetes^I10||20261202|F||||||||||1", "DG1|2||I10^Hipertensi^I10||20261202|F||||||||||2",
                "PR1|1||89.03^Anamnesis^I9C||20261202090000+0700", "|".join(in1)]
    segments += [f"FT1|{i}|||20261202||CG|{code}^charge|||1|{amount}" for i, (code, amount) in enumerate(charges, 1)]
    return ("\r".join(segments) + "\r").encode()


class EKlaimPeer(Peer):
    connector = "eklaim"
    secret = KEY

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.sim = EKlaimSimulator(key_hex=KEY)
        self.payloads: dict[str, bytes] = {}
        self.secrets_file = tmp_path / "eklaim.env"
        self.secrets_file.write_text(f"EKLAIM_KEY={KEY}\n")

    async def start(self) -> None:
        await asyncio.to_thread(self.sim.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.sim.stop)

    def config(self, *, timeout: float) -> dict[str, Any]:
        return {"url": self.sim.url, "coder_nik": CODER, "timeout": timeout, "secrets_file": str(self.secrets_file),
                "tarif_rs_from": "message", "charge_buckets": {"KONS": "konsultasi", "LAB": "laboratorium"}}

    def answer_next(self, outcome: Literal["retryable", "final"]) -> None:
        if outcome == "retryable":
            self.sim.fail_next("server_error")
        else:
            self.sim.refuse_next("E2099", f"Klaim {PATIENT_MARKER} ditolak")

    def stall(self, on: bool) -> None:
        self.sim.delay(3600.0 if on else 0.0)

    def received(self) -> list[bytes]:
        mrns = []
        for seen in self.sim.requests:
            try:
                request = json.loads(eklaim_decrypt(KEY, seen.body.decode()))
            except (CryptoError, ValueError):
                continue
            if request["metadata"]["method"] == "new_claim":
                mrns.append(request["data"]["nomor_rm"])
        return [self.payloads[mrn] for mrn in mrns if mrn in self.payloads]

    def outgoing(self, number: int) -> Outgoing:
        payload = bpjs_discharge(number, card=f"{number:013d}", sep=f"0301R0111226V{number:06d}")
        self.payloads[f"MR{number}"] = payload
        return Outgoing(payload=payload, content_type="x-application/hl7-v2+er7", control_id=f"DIS-{number}",
                        channel="conformance", destination="out", delivery_id=number, message_type="ADT^A03")


PEER = EKlaimPeer
