"""SATUSEHAT (Kemenkes FHIR R4 platform) client: OAuth2 client credentials and FHIR calls.

The token comes from `POST {auth}/accesstoken?grant_type=client_credentials` (form body
client_id, client_secret); it is cached and fetched again `refresh_margin` seconds before it
expires (issued_at in ms and expires_in in s, both strings). After refused credentials the next
token request waits `failed_token_wait` seconds (SATUSEHAT allows one a minute then); a network
failure or 5xx may be retried at once. A 401 on a FHIR call
drops the token and tries once more with a fresh one. A 4xx OperationOutcome is a refusal with
`issue[0].details.text` as the message.
"""
from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from simpul.connectors.bpjs.service import (
    CallRecord, RateLimit, ServiceRejected, ServiceUnavailable, audit, hide_paths_of, status_error, transport_error,
)

SERVICE = "SATUSEHAT"
ENVIRONMENTS = {
    "dev": ("https://api-satusehat-dev.dto.kemkes.go.id/oauth2/v1", "https://api-satusehat-dev.dto.kemkes.go.id/fhir-r4/v1"),
    "staging": ("https://api-satusehat-stg.dto.kemkes.go.id/oauth2/v1", "https://api-satusehat-stg.dto.kemkes.go.id/fhir-r4/v1"),
    "prod": ("https://api-satusehat.kemkes.go.id/oauth2/v1", "https://api-satusehat.kemkes.go.id/fhir-r4/v1"),
}
NIK_SYSTEM = "https://fhir.kemkes.go.id/id/nik"


@dataclass
class _Token:
    value: str = field(repr=False)
    expires_at: float


class SatusehatClient:
    def __init__(self, auth_url: str, fhir_url: str, client_id: str, client_secret: str, *, timeout: float = 30.0,
                 refresh_margin: float = 300.0, failed_token_wait: float = 60.0, rate_per_second: float = 0.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.auth_url = auth_url.rstrip("/")
        self.fhir_url = fhir_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self.timeout = timeout
        self.refresh_margin = refresh_margin
        self.failed_token_wait = failed_token_wait
        self.clock = clock
        self._token: _Token | None = None
        self._token_failed_at: float | None = None
        self._limit = RateLimit(rate_per_second)
        self._client: httpx.AsyncClient | None = None
        self.token_requests = 0
        hide_paths_of(self.fhir_url)

    def __repr__(self) -> str:
        return f"SatusehatClient({self.fhir_url!r})"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self._client

    async def token(self) -> str:
        now = self.clock()
        if self._token is not None and now < self._token.expires_at - self.refresh_margin:
            return self._token.value
        if self._token_failed_at is not None and now - self._token_failed_at < self.failed_token_wait:
            raise ServiceUnavailable(f"{SERVICE} token: the last token request failed; the next is allowed "
                                     f"{self.failed_token_wait - (now - self._token_failed_at):.0f}s from now")
        started = time.monotonic()
        outcome, code = "unavailable", ""
        try:
            self.token_requests += 1
            try:
                answer = await self._http().post(
                    f"{self.auth_url}/accesstoken", params={"grant_type": "client_credentials"},
                    data={"client_id": self._client_id, "client_secret": self._client_secret})
            except httpx.HTTPError as exc:
                raise transport_error(SERVICE, "token", exc) from None
            code = str(answer.status_code)
            retry = status_error(SERVICE, "token", answer)
            if retry is not None:
                raise retry
            try:
                body = answer.json()
                value = str(body["access_token"])
                issued = float(body.get("issued_at") or now * 1000) / 1000
                expires_at = issued + float(body.get("expires_in") or 3599)
            except (ValueError, KeyError, TypeError):
                if answer.status_code >= 400:
                    outcome = "refused"
                    raise ServiceRejected(SERVICE, "token", code, _outcome_text(answer) or "client credentials "
                                          "refused") from None
                raise ServiceUnavailable(f"{SERVICE} token: HTTP {answer.status_code} without an access_token") from None
            outcome = "ok"
            self._token = _Token(value, expires_at)
            self._token_failed_at = None
            return value
        finally:
            if outcome == "refused":     # refused credentials: SATUSEHAT allows one more try a minute
                self._token_failed_at = now
            audit(CallRecord(SERVICE, "token", outcome, code, time.monotonic() - started))

    async def fhir(self, method: str, path: str, operation: str, *, body: dict[str, Any] | None = None,
                   params: dict[str, str] | None = None) -> dict[str, Any]:
        for attempt in (1, 2):
            token = await self.token()
            await self._limit.wait()
            started = time.monotonic()
            outcome, code = "unavailable", ""
            try:
                url = f"{self.fhir_url}/{path}" if path else self.fhir_url
                if params:
                    url += "?" + urllib.parse.urlencode(params)   # the '|' of a token search goes as %7C
                try:
                    answer = await self._http().request(method, url, json=body, headers={
                        "Authorization": f"Bearer {token}", "Accept": "application/fhir+json"})
                except httpx.HTTPError as exc:
                    raise transport_error(SERVICE, operation, exc) from None
                code = str(answer.status_code)
                if answer.status_code == 401 and attempt == 1:
                    self._token = None        # expired or revoked early: one more try with a new token
                    outcome = "token-expired"
                    continue
                retry = status_error(SERVICE, operation, answer)
                if retry is not None:
                    raise retry
                if answer.status_code >= 400:
                    outcome = "refused"
                    raise ServiceRejected(SERVICE, operation, code, _outcome_text(answer) or f"HTTP {code}",
                                          response=answer.text[:4096])
                try:
                    found = answer.json()
                except ValueError:
                    raise ServiceUnavailable(f"{SERVICE} {operation}: HTTP {code} with a body that is not JSON",
                                             response=answer.text[:4096]) from None
                if not isinstance(found, dict):
                    raise ServiceUnavailable(f"{SERVICE} {operation}: answer is not a JSON object")
                outcome = "ok"
                return found
            finally:
                audit(CallRecord(SERVICE, operation, outcome, code, time.monotonic() - started))
        raise ServiceRejected(SERVICE, operation, "401", "token refused twice")

    async def patient_ihs(self, nik: str) -> str | None:
        found = await self.fhir("GET", "Patient", "patient_by_nik", params={"identifier": f"{NIK_SYSTEM}|{nik}"})
        for entry in found.get("entry", []) or []:
            resource = entry.get("resource", {}) if isinstance(entry, dict) else {}
            if resource.get("id"):
                return str(resource["id"])
        return None

    async def create(self, resource: dict[str, Any]) -> str:
        kind = str(resource["resourceType"])
        created = await self.fhir("POST", kind, f"create_{kind}", body=resource)
        if not created.get("id"):
            raise ServiceUnavailable(f"{SERVICE} create_{kind}: answer has no id")
        return str(created["id"])

    async def update(self, resource: dict[str, Any]) -> str:
        kind = str(resource["resourceType"])
        updated = await self.fhir("PUT", f"{kind}/{resource['id']}", f"update_{kind}", body=resource)
        return str(updated.get("id", resource["id"]))

    async def transaction(self, bundle: dict[str, Any]) -> list[tuple[str, str]]:
        """(resourceType, id) per entry, from SATUSEHAT's resourceID or else the location."""
        answer = await self.fhir("POST", "", "transaction", body=bundle)
        results: list[tuple[str, str]] = []
        for entry in answer.get("entry", []) or []:
            response = entry.get("response", {}) if isinstance(entry, dict) else {}
            kind, rid = str(response.get("resourceType", "")), str(response.get("resourceID", ""))
            if not rid:
                parts = str(response.get("location", "")).split("/_history")[0].split("/")
                kind, rid = (parts[-2], parts[-1]) if len(parts) >= 2 else ("", "")
            results.append((kind, rid))
        return results


def _outcome_text(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    issues = body.get("issue") or []
    if isinstance(issues, list) and issues and isinstance(issues[0], dict):
        first = issues[0]
        details = first.get("details", {}) if isinstance(first.get("details"), dict) else {}
        return str(details.get("text") or first.get("diagnostics") or first.get("code") or "")
    return str(body.get("error_description") or body.get("message") or "")
