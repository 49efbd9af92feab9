"""BPJS VClaim REST client (v2, encrypted responses).

Each request carries X-cons-id, X-timestamp (epoch seconds, UTC), X-signature and user_key; the
`response` field of the answer is decrypted with a key derived from this request's timestamp and
lz-string decompressed. `metaData.code` other than "200" is a business refusal: ServiceRejected
with BPJS's own message. SEP update and delete answer a plain string (no decryption).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from simpul.connectors.bpjs.crypto import CryptoError, vclaim_decrypt, vclaim_signature
from simpul.connectors.bpjs.service import (
    CallRecord, RateLimit, ServiceRejected, ServiceUnavailable, audit, hide_paths_of, status_error,
    transport_error,
)

SERVICE = "BPJS VClaim"
BASE_URLS = {"dev": "https://apijkn-dev.bpjs-kesehatan.go.id/vclaim-rest-dev",
             "prod": "https://apijkn.bpjs-kesehatan.go.id/vclaim-rest"}
# Paths whose answer is never encrypted (a plain noSep string).
PLAIN_PATHS = ("SEP/2.0/delete", "SEP/2.0/update")
WRITE_CONTENT_TYPE = "Application/x-www-form-urlencoded"   # BPJS's quirk: the body is raw JSON anyway


@dataclass(frozen=True)
class VClaimCredentials:
    cons_id: str
    secret: str = field(repr=False)
    user_key: str = field(repr=False)


class VClaimClient:
    def __init__(self, base_url: str, credentials: VClaimCredentials, *, timeout: float = 30.0,
                 rate_per_second: float = 0.0, success_codes: tuple[str, ...] = ("200",),
                 clock: Callable[[], float] = time.time) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        self.success_codes = success_codes
        self.clock = clock
        self._limit = RateLimit(rate_per_second)
        self._client: httpx.AsyncClient | None = None
        hide_paths_of(self.base_url)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def signed_headers(self, timestamp: str) -> dict[str, str]:
        creds = self.credentials
        return {"X-cons-id": creds.cons_id, "X-timestamp": timestamp,
                "X-signature": vclaim_signature(creds.cons_id, creds.secret, timestamp),
                "user_key": creds.user_key}

    async def call(self, method: str, path: str, operation: str, body: dict[str, Any] | None = None) -> Any:
        """One request; returns the decrypted `response` (JSON value, plain string or None)."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        await self._limit.wait()
        timestamp = str(int(self.clock()))
        headers = self.signed_headers(timestamp)
        headers["Content-Type"] = "application/json; charset=utf-8" if body is None else WRITE_CONTENT_TYPE
        started = time.monotonic()
        outcome, code = "unavailable", ""
        try:
            try:
                answer = await self._client.request(method, f"{self.base_url}/{path}", headers=headers,
                                                    content=None if body is None else json.dumps(body))
            except httpx.HTTPError as exc:
                raise transport_error(SERVICE, operation, exc) from None
            code = str(answer.status_code)
            retry = status_error(SERVICE, operation, answer)
            if retry is not None:
                raise retry
            meta, response = _envelope(answer, operation)
            code = str(meta.get("code", meta.get("Code", "")))
            if code not in self.success_codes:
                outcome = "refused"
                message = str(meta.get("message", meta.get("Message", "")))
                raise ServiceRejected(SERVICE, operation, code, message, response=answer.text[:4096])
            outcome = "ok"
            return self._open(path, operation, timestamp, response)
        finally:
            audit(CallRecord(SERVICE, operation, outcome, code, time.monotonic() - started))

    def _open(self, path: str, operation: str, timestamp: str, response: Any) -> Any:
        if response is None or not isinstance(response, str) or any(
                path.lower().startswith(plain.lower()) for plain in PLAIN_PATHS):
            return response
        creds = self.credentials
        try:
            text = vclaim_decrypt(creds.cons_id, creds.secret, timestamp, response)
        except CryptoError as exc:
            raise ServiceUnavailable(f"{SERVICE} {operation}: response does not decrypt ({exc})") from None
        try:
            return json.loads(text)
        except ValueError:
            return text       # write endpoints answer a bare noSep / noRujukan

    # -- operations ---------------------------------------------------------------------------

    async def participant_by_card(self, no_kartu: str, service_date: str) -> dict[str, Any]:
        found = await self.call("GET", f"Peserta/nokartu/{no_kartu}/tglSEP/{service_date}", "participant_by_card")
        return _member(found, "peserta")

    async def participant_by_nik(self, nik: str, service_date: str) -> dict[str, Any]:
        found = await self.call("GET", f"Peserta/nik/{nik}/tglSEP/{service_date}", "participant_by_nik")
        return _member(found, "peserta")

    async def referral(self, number: str, *, from_hospital: bool = False) -> dict[str, Any]:
        path = f"Rujukan/RS/{number}" if from_hospital else f"Rujukan/{number}"
        return _member(await self.call("GET", path, "referral"), "rujukan")

    async def sep_insert(self, t_sep: dict[str, Any]) -> dict[str, Any]:
        found = await self.call("POST", "SEP/2.0/insert", "sep_insert", {"request": {"t_sep": t_sep}})
        return _member(found, "sep")

    async def sep_update(self, t_sep: dict[str, Any]) -> str:
        return str(await self.call("PUT", "SEP/2.0/update", "sep_update", {"request": {"t_sep": t_sep}}))

    async def sep_delete(self, no_sep: str, user: str) -> str:
        body = {"request": {"t_sep": {"noSep": no_sep, "user": user}}}
        return str(await self.call("DELETE", "SEP/2.0/delete", "sep_delete", body))

    async def sep_get(self, no_sep: str) -> dict[str, Any]:
        found = await self.call("GET", f"SEP/{no_sep}", "sep_get")
        return found if isinstance(found, dict) else {}

    async def claim_monitoring(self, discharge_date: str, service_type: str, status: str) -> list[dict[str, Any]]:
        found = await self.call("GET", f"Monitoring/Klaim/Tanggal/{discharge_date}/JnsPelayanan/{service_type}"
                                       f"/Status/{status}", "claim_monitoring")
        items = found.get("klaim", []) if isinstance(found, dict) else []
        return items if isinstance(items, list) else []


def _envelope(answer: httpx.Response, operation: str) -> tuple[dict[str, Any], Any]:
    try:
        body = answer.json()
    except ValueError:
        raise ServiceUnavailable(f"{SERVICE} {operation}: HTTP {answer.status_code} with a body that is not JSON",
                                 response=answer.text[:4096]) from None
    meta = body.get("metaData", body.get("metadata")) if isinstance(body, dict) else None
    if not isinstance(meta, dict):
        raise ServiceUnavailable(f"{SERVICE} {operation}: HTTP {answer.status_code} without metaData",
                                 response=answer.text[:4096])
    return meta, body.get("response")


def _member(found: Any, name: str) -> dict[str, Any]:
    value = found.get(name) if isinstance(found, dict) else None
    if not isinstance(value, dict):
        raise ServiceUnavailable(f"{SERVICE}: response has no '{name}' object")
    return value
