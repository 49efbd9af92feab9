"""The bpjs_vclaim destination's peer: the VClaim simulator. `received()` gives back, per SEP insert
the simulator was sent (served or faulted), the admission that carried that MRN."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Literal

from simpul.connectors.base import Outgoing

from tests.connectors.conformance import PATIENT_MARKER, Peer
from tests.fakes.vclaim_sim import VClaimSimulator


def bpjs_admission(number: int, *, card: str, event: str = "A01", name: str = PATIENT_MARKER,
                   visit: str | None = None, extra: str = "") -> bytes:
    pv1 = ["PV1", "1", "O", "POLI-INT^^^RSUD", "", "", "", "31574^Dokter^Andi"] + [""] * 11 + [visit or f"V{number}"]
    pv1 += [""] * 24 + ["20261202083000+0700"]
    in1 = ["IN1", "1", "BPJS^BPJS Kesehatan", "BPJS", "BPJS Kesehatan"] + [""] * 9 + ["RUJ0001"] + [""] * 21 + [card]
    segments = [f"MSH|^~\\&|SIMRS|RSUD|SIMPUL|RSUD|20261202083000+0700||ADT^{event}^ADT_A01|BPJS-{number}|P|2.5.1",
                f"EVN|{event}|20261202082900+0700",
                f"PID|1||MR{number}^^^RSUD^MR~33190220108{number:05d}^^^KEMKES^NIK||{name}||19810101|M|||||081234",
                "|".join(pv1), "DG1|1||E10^Diabetes^I10||20261202|A", "|".join(in1)]
    return ("\r".join(segments) + "\r" + extra).encode()


class VClaimPeer(Peer):
    connector = "bpjs_vclaim"
    secret = "conformance-vclaim-s3cret"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.sim = VClaimSimulator(secret=self.secret)
        self.sim.referrals["RUJ0001"] = {"noKunjungan": "RUJ0001", "tglKunjungan": "2026-11-30",
                                         "provPerujuk": {"kode": "0138U020"}, "diagnosa": {"kode": "E10"}}
        self.payloads: dict[str, bytes] = {}
        self.secrets_file = tmp_path / "bpjs.env"
        self.secrets_file.write_text(f"BPJS_CONS_ID=1234\nBPJS_SECRET_KEY={self.secret}\nBPJS_USER_KEY=uk-vclaim\n")

    async def start(self) -> None:
        await asyncio.to_thread(self.sim.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.sim.stop)

    def config(self, *, timeout: float) -> dict[str, Any]:
        return {"ppk_pelayanan": "0301R011", "base_url": self.sim.base_url, "timeout": timeout,
                "secrets_file": str(self.secrets_file), "poli": {"POLI-INT": "INT"}, "dpjp": {"31574": "31574"}}

    def answer_next(self, outcome: Literal["retryable", "final"]) -> None:
        if outcome == "retryable":
            self.sim.fail_next("server_error")
        else:
            self.sim.refuse_next(f"Peserta {PATIENT_MARKER} tidak aktif")

    def stall(self, on: bool) -> None:
        self.sim.delay(3600.0 if on else 0.0)

    def received(self) -> list[bytes]:
        mrns = [json.loads(seen.body)["request"]["t_sep"]["noMR"] for seen in self.sim.requests
                if seen.method == "POST" and seen.path.lower().endswith("/sep/2.0/insert")]
        return [self.payloads[mrn] for mrn in mrns if mrn in self.payloads]

    def outgoing(self, number: int) -> Outgoing:
        card = f"{number:013d}"
        self.sim.add_participant(card, f"33190220108{number:05d}")
        payload = bpjs_admission(number, card=card)
        self.payloads[f"MR{number}"] = payload
        return Outgoing(payload=payload, content_type="x-application/hl7-v2+er7", control_id=f"BPJS-{number}",
                        channel="conformance", destination="out", delivery_id=number, message_type="ADT^A01")


PEER = VClaimPeer
