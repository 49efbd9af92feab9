"""SATUSEHAT simulator: OAuth2 client credentials and the FHIR R4 rules the platform enforces.

- `POST /oauth2/v1/accesstoken?grant_type=client_credentials` with a form body client_id /
  client_secret; the answer has SATUSEHAT's fields (issued_at in ms and expires_in in s, both
  strings; token_type BearerToken). `expire_tokens()` makes every issued token invalid (401).
- `/fhir-r4/v1`: bearer token required. `GET Patient?identifier=<nik system>|<nik>`; POST
  Encounter/Condition/Observation/Procedure checking the required elements (Encounter: the
  org-scoped identifier, class, subject Patient/<known IHS>, participant, period.start, location,
  statusHistory, serviceProvider = this client's organization, else 403 business rule);
  `PUT Encounter/{id}` (finished: statusHistory arrived -> in-progress -> finished, each end = next
  start); `POST` of a transaction Bundle with urn:uuid references, answered with resourceID.
- Refusals are 4xx OperationOutcome with issue[0].details.text; `reject_next(text)`.
"""
from __future__ import annotations

import datetime
import json
import secrets
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.national_http import Reply, Seen, SimServer

NIK_SYSTEM = "https://fhir.kemkes.go.id/id/nik"
EARLIEST = datetime.datetime(2014, 6, 3, tzinfo=datetime.timezone.utc)


def outcome(status: int, text: str, code: str = "invalid") -> Reply:
    body = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "details": {"text": text}}]}
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


@dataclass
class SatusehatSimulator(SimServer):
    client_id: str = "client-abc"
    client_secret: str = "secret-xyz"
    org_id: str = "10000004"
    token_lifetime: int = 14399
    patients: dict[str, str] = field(default_factory=dict)       # NIK -> IHS
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)   # "Type/id" -> resource
    tokens: dict[str, float] = field(default_factory=dict)        # token -> expires at
    _rejections: list[str] = field(default_factory=list)
    _state: threading.Lock = field(default_factory=threading.Lock)

    @property
    def auth_url(self) -> str:
        return f"{self.base_url}/oauth2/v1"

    @property
    def fhir_url(self) -> str:
        return f"{self.base_url}/fhir-r4/v1"

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def reject_next(self, text: str) -> None:
        self._rejections.append(text)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for key, r in self.resources.items() if key.startswith(f"{kind}/")]

    def malformed(self) -> Reply:
        return 200, {"Content-Type": "application/json"}, b'{"resourceType": "Encounter", "id": '

    def handle(self, seen: Seen) -> Reply:
        parsed = urllib.parse.urlsplit(seen.path)
        query = urllib.parse.parse_qs(parsed.query)
        if parsed.path == "/oauth2/v1/accesstoken":
            return self._token(seen, query)
        if not parsed.path.startswith("/fhir-r4/v1"):
            return 404, {"Content-Type": "text/plain"}, b"Not Found"
        auth = seen.headers.get("Authorization") or seen.headers.get("authorization") or ""
        token = auth.removeprefix("Bearer ")
        if self.tokens.get(token, 0) < time.time():
            return outcome(401, "Invalid access token", "login")
        if self._rejections:
            return outcome(400, self._rejections.pop(0))
        path = parsed.path.removeprefix("/fhir-r4/v1").strip("/")
        body: dict[str, Any] = {}
        if seen.body:
            try:
                body = json.loads(seen.body)
            except ValueError:
                return outcome(400, "Request body is not valid JSON", "structure")
        with self._state:
            return self._fhir(seen.method, path, query, body)

    def _token(self, seen: Seen, query: dict[str, list[str]]) -> Reply:
        if query.get("grant_type") != ["client_credentials"]:
            return 400, {"Content-Type": "application/json"}, b'{"error":"invalid_request","error_description":"grant_type"}'
        form = urllib.parse.parse_qs(seen.body.decode())
        if form.get("client_id") != [self.client_id] or form.get("client_secret") != [self.client_secret]:
            return 401, {"Content-Type": "application/json"}, json.dumps(
                {"fault": {"faultstring": "Invalid client identifier"}, "issue": [{"details": {"text": "Invalid client identifier"}}]}).encode()
        token = secrets.token_urlsafe(24)
        now = time.time()
        self.tokens[token] = now + self.token_lifetime
        body = {"refresh_token_expires_in": "0", "api_product_list": "[api-dev]", "api_product_list_json": ["api-dev"],
                "organization_name": "simulated", "developer.email": "dev@example.org", "token_type": "BearerToken",
                "issued_at": str(int(now * 1000)), "client_id": self.client_id, "access_token": token,
                "application_name": "simpul-sim", "scope": "", "expires_in": str(self.token_lifetime),
                "refresh_count": "0", "status": "approved"}
        return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()

    # ------------------------------------------------------------------------------------ FHIR

    def _fhir(self, method: str, path: str, query: dict[str, list[str]], body: dict[str, Any]) -> Reply:
        if method == "GET" and path == "Patient":
            system, _, nik = (query.get("identifier") or [""])[0].partition("|")
            if system != NIK_SYSTEM:
                return outcome(400, "identifier system must be " + NIK_SYSTEM)
            entries = ([{"fullUrl": f"{self.fhir_url}/Patient/{self.patients[nik]}",
                         "resource": {"resourceType": "Patient", "id": self.patients[nik],
                                      "identifier": [{"system": "https://fhir.kemkes.go.id/id/ihs-number",
                                                      "value": self.patients[nik]}]}}]
                       if nik in self.patients else [])
            return self._json(200, {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries})
        if method == "POST" and path == "":
            return self._transaction(body)
        if method == "POST" and "/" not in path:
            problem = self._check(path, body, {})
            if problem:
                return problem
            return self._json(201, self._store(path, body))
        if method == "PUT" and path.count("/") == 1:
            kind, rid = path.split("/")
            if f"{kind}/{rid}" not in self.resources:
                return outcome(404, f"{kind}/{rid} not found", "not-found")
            if body.get("id") != rid:
                return outcome(400, "id in the body must match the URL")
            problem = self._check(kind, body, {})
            if problem:
                return problem
            self.resources[f"{kind}/{rid}"] = body
            return self._json(200, body)
        return outcome(400, f"unsupported interaction {method} /{path}", "not-supported")

    def _json(self, status: int, body: dict[str, Any]) -> Reply:
        return status, {"Content-Type": "application/fhir+json"}, json.dumps(body).encode()

    def _store(self, kind: str, resource: dict[str, Any]) -> dict[str, Any]:
        stored = {**resource, "id": str(uuid.uuid4()), "meta": {"versionId": "1",
                                                                "lastUpdated": datetime.datetime.now(datetime.timezone.utc).isoformat()}}
        self.resources[f"{kind}/{stored['id']}"] = stored
        return stored

    def _exists(self, reference: str, urn: dict[str, str]) -> bool:
        return urn.get(reference, reference) in self.resources or reference in urn

    def _check(self, kind: str, r: dict[str, Any], urn: dict[str, str]) -> Reply | None:
        if r.get("resourceType") != kind:
            return outcome(400, f"resourceType must be {kind}")
        ref = lambda name: str((r.get(name) or {}).get("reference", ""))   # noqa: E731
        subject = ref("subject")
        if not subject.startswith("Patient/") or subject.removeprefix("Patient/") not in self.patients.values():
            return outcome(400, "subject: Patient IHS number not found")
        for name in ("period", "effectiveDateTime", "onsetDateTime"):
            value = r.get(name, {}).get("start") if name == "period" else r.get(name)
            if value and len(value) > 10:
                moment = datetime.datetime.fromisoformat(value)
                if moment.tzinfo is None:
                    return outcome(400, f"{name}: a time zone offset is required")
                if moment < EARLIEST:
                    return outcome(400, f"{name}: dates before 2014-06-03 are not accepted")
        if kind == "Encounter":
            system = f"http://sys-ids.kemkes.go.id/encounter/{self.org_id}"
            if ref("serviceProvider") != f"Organization/{self.org_id}":
                return outcome(403, "resource cannot be accessed due to business rule", "forbidden")
            if not any(i.get("system") == system and i.get("value") for i in r.get("identifier", [])):
                return outcome(400, f"identifier with system {system} is required")
            for name in ("status", "class", "participant", "location", "statusHistory"):
                if not r.get(name):
                    return outcome(400, f"Encounter.{name} is required")
            if not (r.get("period") or {}).get("start"):
                return outcome(400, "Encounter.period.start is required")
            if r["status"] == "finished":
                history = [h.get("status") for h in r["statusHistory"]]
                if history != ["arrived", "in-progress", "finished"]:
                    return outcome(400, "statusHistory must go arrived, in-progress, finished")
                periods = [h.get("period", {}) for h in r["statusHistory"]]
                if any(periods[i].get("end") != periods[i + 1].get("start") for i in range(2)):
                    return outcome(400, "statusHistory: each period end must equal the next start")
                if not r["period"].get("end"):
                    return outcome(400, "a finished Encounter needs period.end")
            return None
        encounter = ref("encounter")
        if not encounter or not self._exists(encounter, urn):
            return outcome(400, "encounter: Encounter not found")
        required = {"Condition": ("clinicalStatus", "category", "code"),
                    "Observation": ("status", "category", "code", "performer", "effectiveDateTime"),
                    "Procedure": ("status", "category", "code", "performer")}.get(kind)
        if required is None:
            return outcome(400, f"{kind} is not accepted by this simulator", "not-supported")
        for name in required:
            if not r.get(name):
                return outcome(400, f"{kind}.{name} is required")
        if kind == "Condition" and not any(c.get("system") == "http://hl7.org/fhir/sid/icd-10"
                                           for c in r["code"].get("coding", [])):
            return outcome(400, "Condition.code must be ICD-10")
        return None

    def _transaction(self, bundle: dict[str, Any]) -> Reply:
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            return outcome(400, "a transaction Bundle is required")
        urn: dict[str, str] = {}
        staged: list[tuple[str, dict[str, Any], str]] = []
        for entry in bundle.get("entry", []):
            resource = dict(entry.get("resource", {}))
            kind = entry.get("request", {}).get("url", "")
            full_url = entry.get("fullUrl", "")
            problem = self._check(kind, resource, urn)
            if problem:
                return problem
            if "encounter" in resource and resource["encounter"]["reference"] in urn:   # resolve urn:uuid
                resource["encounter"] = {"reference": urn[resource["encounter"]["reference"]]}
            rid = str(uuid.uuid4())
            urn[full_url] = f"{kind}/{rid}"
            staged.append((kind, {**resource, "id": rid}, full_url))
        entries = []
        for kind, resource, _ in staged:
            self.resources[f"{kind}/{resource['id']}"] = resource
            entries.append({"response": {"status": "201 Created", "resourceType": kind, "resourceID": resource["id"],
                                         "location": f"{self.fhir_url}/{kind}/{resource['id']}/_history/1",
                                         "etag": "W/\"1\"", "lastModified": datetime.datetime.now(datetime.timezone.utc).isoformat()}})
        return self._json(200, {"resourceType": "Bundle", "type": "transaction-response", "entry": entries})
