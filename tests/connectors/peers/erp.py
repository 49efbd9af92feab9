"""The ERP destination's peer: the spyne SOAP ERP (HTTP 503 = retryable, status REJECTED = final)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Literal

from simpul.connectors.base import Outgoing

from tests.connectors.conformance import PATIENT_MARKER, Peer
from tests.fakes.spyne_erp import SpyneErp


class ErpPeer(Peer):
    connector = "erp"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.server = SpyneErp()
        self._payloads: dict[str, bytes] = {}

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)

    def config(self, *, timeout: float) -> dict[str, Any]:
        if not self.server.wsdl_url:
            self.server.start()
        return {"soap": {"wsdl": self.server.wsdl_url}, "timeout": timeout}

    def answer_next(self, outcome: Literal["retryable", "final"]) -> None:
        if outcome == "retryable":
            self.server.state.fail_next += 1
        else:
            self.server.state.reject_next += 1

    def stall(self, on: bool) -> None:
        self.server.state.stalled = on

    def received(self) -> list[bytes]:
        """The ERP keeps the request's fields, not its bytes: map each idempotencyKey back to the payload sent."""
        return [self._payloads[key] for key in self.server.state.received_keys]

    def outgoing(self, number: int) -> Outgoing:
        request = {"idempotencyKey": f"conf-{number}", "invoiceNo": f"CONF-{number}", "encounterId": f"V{number}",
                   "mrn": f"MR{number}", "payer": {"type": "SELF_PAY", "id": "", "ref": PATIENT_MARKER},
                   "serviceDate": "2026-12-01", "currency": "IDR", "total": 1000 * number, "claimedAmount": None,
                   "lines": [{"lineId": "1", "code": "KONS", "description": PATIENT_MARKER, "tarifRsBucket": "konsultasi",
                              "qty": 1, "unitPrice": 1000 * number, "amount": 1000 * number}]}
        payload = json.dumps(request).encode()
        self._payloads[request["idempotencyKey"]] = payload
        return Outgoing(payload=payload, content_type="application/json", control_id=f"CONF-{number}",
                        channel="conformance", destination="out", delivery_id=number, message_type="invoice_generated")


PEER = ErpPeer
