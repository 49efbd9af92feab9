"""fhir_server: POST each mapped transaction Bundle to a FHIR R4 server.

Features
    One HTTP POST of the Bundle to the server base per delivery, over a pooled httpx client.
    Idempotent by construction: the built-in mappings use conditional create/update, so a
    retried or replayed Bundle does not create a second Patient.
Connection
    `base_url` of the FHIR server; optional bearer token (use ${VAR}) and extra headers.
Options
    timeout, verify_tls / ca_file.
Errors
    timeouts, refused connections, 408, 429 and 5xx are retryable (ConnectorUnavailable);
    any other 4xx is final (ConnectorRejected) and the OperationOutcome is kept as the response.
"""
from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field

from simpul.config_types import Duration
from simpul.connectors.base import ConnectorSpec, Outgoing
from simpul.errors import ConnectorRejected, ConnectorUnavailable

RETRYABLE_STATUS = {408, 425, 429}
MAX_KEPT_RESPONSE = 64 * 1024


class FhirServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = Field(description="FHIR server base URL; the Bundle is POSTed here.",
                          examples=["https://fhir.example.org/fhir"])
    timeout: Duration = Field(30.0, description="Per-request timeout (connect + response).")
    bearer_token: str | None = Field(None, description="Sent as 'Authorization: Bearer ...'; use ${VAR}.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers.")
    verify_tls: bool = Field(True, description="Verify the server certificate.")
    ca_file: str | None = Field(None, description="CA bundle for a private PKI.")


class FhirServerConnector:
    def __init__(self, config: FhirServerConfig) -> None:
        self.config = config
        self._client: httpx.AsyncClient | None = None

    async def connect(self) -> None:
        await self.close()      # a second connect() replaces the client instead of leaking its pool
        headers = {"Accept": "application/fhir+json", **self.config.headers}
        if self.config.bearer_token:
            headers["Authorization"] = f"Bearer {self.config.bearer_token}"
        verify: Any = self.config.ca_file or self.config.verify_tls
        self._client = httpx.AsyncClient(timeout=self.config.timeout, headers=headers, verify=verify)

    async def send(self, outgoing: Outgoing) -> str:
        if self._client is None:
            await self.connect()
        assert self._client is not None
        try:
            response = await self._client.post(
                self.config.base_url, content=outgoing.payload,
                headers={"Content-Type": "application/fhir+json"})
        except httpx.TimeoutException as exc:
            raise ConnectorUnavailable(f"FHIR server timed out ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise ConnectorUnavailable(f"FHIR server unreachable ({type(exc).__name__})") from exc
        body = response.text[:MAX_KEPT_RESPONSE]
        status = response.status_code
        if 200 <= status < 300:
            return f"{status} {_summary(response)}"
        if status >= 500 or status in RETRYABLE_STATUS:
            raise ConnectorUnavailable(f"FHIR server answered {status}", response=body)
        raise ConnectorRejected(f"FHIR server answered {status}{_outcome_summary(response)}", response=body)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _summary(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        statuses = [entry.get("response", {}).get("status", "") for entry in body.get("entry", [])]
        return f"{body.get('type', '')} {len(statuses)} entries: " + ", ".join(statuses[:20])
    return str(body.get("resourceType", "")) if isinstance(body, dict) else ""


def _outcome_summary(response: httpx.Response) -> str:
    """The OperationOutcome's issue codes (not its diagnostics, which may echo patient data)."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome":
        return ""
    codes = [str(issue.get("code", "")) for issue in body.get("issue", []) if isinstance(issue, dict)]
    return f" (OperationOutcome: {', '.join(codes)})" if codes else ""


CONNECTOR = ConnectorSpec(
    name="fhir_server", destination=FhirServerConfig, create_destination=FhirServerConnector,
    destination_description="POST the mapped Bundle to a FHIR server.")
