"""The FHIR destination's peer: the FHIR R4 server simulator (503 = retryable, 400 = final)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Literal

from simpul.connectors.base import Outgoing

from tests.connectors.conformance import PATIENT_MARKER, Peer
from tests.fakes.fhir_server import FakeFhirServer


class FhirServerPeer(Peer):
    connector = "fhir_server"
    secret = "conformance-bearer-s3cret"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.server = FakeFhirServer()

    async def start(self) -> None:
        await asyncio.to_thread(self.server.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.server.stop)

    def config(self, *, timeout: float) -> dict[str, Any]:
        return {"base_url": self.server.base_url, "timeout": timeout, "bearer_token": self.secret}

    def answer_next(self, outcome: Literal["retryable", "final"]) -> None:
        if outcome == "retryable":
            self.server.fail_next(1, status=503)
        else:
            self.server.reject_next(1, reason=f"conformance says no to {PATIENT_MARKER}")

    def stall(self, on: bool) -> None:
        self.server.delay(3600.0 if on else 0.0)

    def received(self) -> list[bytes]:
        return [request.body for request in self.server.requests if request.method == "POST"]

    def outgoing(self, number: int) -> Outgoing:
        bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{number:012d}",
            "resource": {"resourceType": "Patient", "identifier": [{"system": "urn:mr", "value": f"MR{number}"}],
                         "name": [{"family": PATIENT_MARKER}]},
            "request": {"method": "PUT", "url": f"Patient?identifier=urn:mr|MR{number}"}}]}
        return Outgoing(payload=json.dumps(bundle).encode(), content_type="application/fhir+json",
                        control_id=f"CONF-{number}", channel="conformance", destination="out",
                        delivery_id=number, message_type="ADT^A01")


PEER = FhirServerPeer
