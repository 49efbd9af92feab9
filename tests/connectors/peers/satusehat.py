"""The satusehat destination's peer: the SATUSEHAT simulator (OAuth2 + FHIR rules).

SATUSEHAT never sees our Bundle as it is: the connector rebuilds it into SATUSEHAT's resources.
So `received()` reads back, per Encounter the simulator was sent (served or faulted), the Bundle
that carried that visit number: the payload the connector delivered.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, Literal

from simpul.connectors.base import Outgoing

from tests.connectors.conformance import PATIENT_MARKER, Peer
from tests.fakes.satusehat_sim import SatusehatSimulator

ORG = "10000004"


def visit_bundle(visit: str, *, nik: str, mrn: str, status: str = "in-progress", name: str = PATIENT_MARKER,
                 end: str | None = None) -> dict[str, Any]:
    encounter: dict[str, Any] = {
        "resourceType": "Encounter", "id": f"enc-{visit}", "status": status,
        "identifier": [{"system": "urn:id:RSUD:visit", "value": visit}],
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "urn:uuid:pat"},
        "participant": [{"individual": {"reference": "urn:uuid:doc"}}],
        "period": {"start": "2026-12-02T08:30:00+07:00", **({"end": end} if end else {})},
        "location": [{"location": {"reference": "urn:uuid:loc"}}]}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:pat", "resource": {"resourceType": "Patient", "identifier": [
            {"type": {"coding": [{"code": "MR"}]}, "system": "urn:id:RSUD", "value": mrn},
            {"type": {"text": "NIK"}, "system": "urn:id:KEMKES", "value": nik}], "name": [{"family": name}]}},
        {"fullUrl": "urn:uuid:doc", "resource": {"resourceType": "Practitioner", "identifier": [{"value": "31574"}]}},
        {"fullUrl": "urn:uuid:loc", "resource": {"resourceType": "Location", "name": "POLI-INT",
                                                 "identifier": [{"system": "urn:simpul:v2:pl", "value": "RSUD/POLI-INT"}]}},
        {"fullUrl": f"urn:uuid:enc-{visit}", "resource": encounter},
        {"fullUrl": f"urn:uuid:cond-{visit}", "resource": {
            "resourceType": "Condition", "id": f"cond-{visit}", "subject": {"reference": "urn:uuid:pat"},
            "encounter": {"reference": f"urn:uuid:enc-{visit}"}, "onsetDateTime": "2026-12-02",
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E10"}]}}},
    ]}


class SatusehatPeer(Peer):
    connector = "satusehat"
    secret = "conformance-satusehat-s3cret"

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.sim = SatusehatSimulator(client_secret=self.secret, org_id=ORG)
        self.payloads: dict[str, bytes] = {}
        self.secrets_file = tmp_path / "satusehat.env"
        self.secrets_file.write_text(f"SATUSEHAT_CLIENT_ID=client-abc\nSATUSEHAT_CLIENT_SECRET={self.secret}\n")

    async def start(self) -> None:
        await asyncio.to_thread(self.sim.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.sim.stop)

    def config(self, *, timeout: float) -> dict[str, Any]:
        return {"org_id": ORG, "auth_url": self.sim.auth_url, "fhir_url": self.sim.fhir_url, "timeout": timeout,
                "secrets_file": str(self.secrets_file), "locations": {"RSUD/POLI-INT": "loc-uuid-1"},
                "practitioners": {"31574": "N10000001"}}

    def answer_next(self, outcome: Literal["retryable", "final"]) -> None:
        if outcome == "retryable":
            self.sim.fail_next("server_error")
        else:
            self.sim.reject_next(f"conformance refuses {PATIENT_MARKER}")

    def stall(self, on: bool) -> None:
        self.sim.delay(3600.0 if on else 0.0)

    def received(self) -> list[bytes]:
        visits = []
        for seen in self.sim.requests:
            if seen.method == "POST" and seen.path.endswith("/Encounter"):
                for identifier in json.loads(seen.body).get("identifier", []):
                    visits.append(identifier["value"])
        return [self.payloads[visit] for visit in visits if visit in self.payloads]

    def outgoing(self, number: int) -> Outgoing:
        nik = f"33190220108{number:05d}"
        self.sim.patients[nik] = f"P{number:011d}"
        visit = f"CONF-{number}"
        payload = json.dumps(visit_bundle(visit, nik=nik, mrn=f"MR{number}")).encode()
        self.payloads[visit] = payload
        return Outgoing(payload=payload, content_type="application/fhir+json", control_id=visit, channel="conformance",
                        destination="out", delivery_id=number, message_type="ADT^A01")


PEER = SatusehatPeer
