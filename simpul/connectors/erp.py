"""erp: post encounter invoices to the hospital ERP (SOAP through zeep, or REST) and read its reconciliations.

Features
    One call per event. `stock_movement` (a dispensed drug or a consumable used) becomes
    PostStockMovement {idempotencyKey, kind DISPENSE|CONSUME, itemCode, qty, encounterId, location,
    occurredAt}. `invoice_generated` (the default) (a FHIR Bundle of Invoice, ChargeItems and
    Account) becomes the ERP contract's `EncounterCharges` request (idempotencyKey, encounterId,
    payer, total, lines with tarif_rs bucket, integer rupiah). The ERP answers ACCEPTED or
    DUPLICATE with its invoice number (a replay gets DUPLICATE and the same number), or REJECTED.
    The same client reads `GetReconciliations(since, cursor)`, `GetStockAlerts(cursor)` and
    `GetStaff(cursor)` for the billing poller.
Connection
    `soap: {wsdl: ...}`: document/literal, operations PostEncounterCharges and GetReconciliations
    taken from the WSDL (zeep). `rest: {base_url, api_key, api_secret}`: ERPNext-style token auth
    (`Authorization: token key:secret`), POST /api/v1/encounter-charges and GET /api/v1/reconciliations.
Options
    timeout (per call). The payload is the channel's raw event (`invoice_generated`) or an
    EncounterCharges request as JSON.
Errors
    unreachable, timeouts, HTTP 5xx/429 and transport faults are retryable (ConnectorUnavailable);
    a SOAP Fault, HTTP 4xx or status REJECTED is final (ConnectorRejected).
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simpul.config_types import Duration
from simpul.connectors.base import ConnectorSpec, Outgoing
from simpul.connectors.cloudevents import read_event
from simpul.errors import ConnectorRejected, ConnectorUnavailable, EventUnreadable

SOAP_NAMESPACE = "urn:hospital:billing:v1"
TARIF_BUCKET_EXTENSION = "https://simpul.dev/fhir/StructureDefinition/tarif-rs-bucket"
PAYER_EXTENSION = "https://simpul.dev/fhir/StructureDefinition/payer"
IDEMPOTENCY_SYSTEM = "urn:simpul:idempotency-key"
INVOICE_SYSTEM = "urn:simpul:invoice"
RETRYABLE_STATUS = {408, 425, 429}
STOCK_KINDS = ("DISPENSE", "CONSUME")     # a stock_movement event's `kind`: pharmacy dispense, procedure consumable


class ErpSoap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wsdl: str = Field(description="URL (or file path) of the ERP's WSDL; the operations are read from it.",
                      examples=["http://erp.example.local/billing?wsdl"])


class ErpRest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base_url: str = Field(description="ERP base URL; /api/v1/encounter-charges and /api/v1/reconciliations "
                                      "are under it.", examples=["https://erp.example.local"])
    api_key: str = Field(description="ERPNext-style API key; use ${VAR}.")
    api_secret: str = Field(description="ERPNext-style API secret; use ${VAR}.")


class ErpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    soap: ErpSoap | None = Field(None, description="Talk SOAP (document/literal) to a WSDL-described ERP.",
                                 examples=[{"wsdl": "http://erp.example.local/billing?wsdl"}])
    rest: ErpRest | None = Field(None, description="Talk REST with token auth (ERPNext style).")
    timeout: Duration = Field(30.0, description="Per-call timeout.")

    @model_validator(mode="after")
    def _one_transport(self) -> ErpConfig:
        # exactly one: a channel that names both would leave open which one booked the invoice
        if (self.soap is None) == (self.rest is None):
            raise ValueError("give exactly one of 'soap' or 'rest'")
        return self


# ---- the contract, from FHIR -----------------------------------------------------------------

def request_from_bundle(bundle: dict[str, Any]) -> dict[str, Any]:
    """The ERP's EncounterCharges request (specs: indonesia.md 4.2) from an invoice Bundle."""
    resources = [entry.get("resource", {}) for entry in bundle.get("entry", [])]
    invoice = next((r for r in resources if r.get("resourceType") == "Invoice"), None)
    if invoice is None:
        raise ConnectorRejected("the invoice event carries no Invoice resource")
    charges = {f"ChargeItem/{r.get('id')}": r for r in resources if r.get("resourceType") == "ChargeItem"}
    identifiers = {i.get("system"): i.get("value") for i in invoice.get("identifier", [])}
    payer = _extension(invoice, PAYER_EXTENSION) or {}
    lines = []
    for item in invoice.get("lineItem", []):
        charge = charges.get(item.get("chargeItemReference", {}).get("reference", ""), {})
        coding = (charge.get("code", {}).get("coding") or [{}])[0]
        quantity = int(charge.get("quantity", {}).get("value", 1))
        unit_price = int(charge.get("priceOverride", {}).get("value", 0))
        lines.append({"lineId": str(item.get("sequence")), "code": coding.get("code", ""),
                      "description": charge.get("code", {}).get("text", ""),
                      "tarifRsBucket": _extension(charge, TARIF_BUCKET_EXTENSION) or "",
                      "qty": quantity, "unitPrice": unit_price, "amount": quantity * unit_price})
    return {"idempotencyKey": identifiers.get(IDEMPOTENCY_SYSTEM, ""),
            "invoiceNo": identifiers.get(INVOICE_SYSTEM, ""),
            "encounterId": _encounter_of(resources),
            "mrn": invoice.get("subject", {}).get("identifier", {}).get("value", ""),
            "payer": {"type": payer.get("type", "SELF_PAY"), "id": payer.get("id", ""), "ref": payer.get("ref", "")},
            "serviceDate": str(invoice.get("date", ""))[:10], "currency": "IDR",
            "total": int(invoice.get("totalNet", {}).get("value", 0)),
            "claimedAmount": payer.get("claimed"),
            "lines": lines}


def _encounter_of(resources: list[dict[str, Any]]) -> str:
    account = next((r for r in resources if r.get("resourceType") == "Account"), {})
    return str((account.get("identifier") or [{}])[0].get("value", ""))


def _extension(resource: dict[str, Any], url: str) -> Any:
    for extension in resource.get("extension", []):
        if extension.get("url") == url:
            if "valueCode" in extension:
                return extension["valueCode"]
            return {sub.get("url"): next((v for k, v in sub.items() if k.startswith("value")), None)
                    for sub in extension.get("extension", [])}
    return None


# ---- the client ----------------------------------------------------------------------------

class ErpClient:
    """Blocking calls to the ERP (zeep is synchronous); the connector and the poller run them in a thread."""

    def __init__(self, config: ErpConfig) -> None:
        self.config = config
        self._soap: Any = None
        self._http: httpx.Client | None = None

    def _soap_client(self) -> Any:
        if self._soap is None:
            assert self.config.soap is not None
            # zeep (and lxml, requests) load only when a channel talks SOAP to an ERP: ~0.3 s of imports.
            import zeep
            from zeep.transports import Transport
            # zeep logs every envelope (patient names, MRNs) at DEBUG: never let it, whatever the root level.
            logging.getLogger("zeep.transports").setLevel(logging.INFO)
            try:
                transport = Transport(timeout=self.config.timeout,  # type: ignore[no-untyped-call]
                                      operation_timeout=self.config.timeout)
                self._soap = zeep.Client(self.config.soap.wsdl, transport=transport)  # type: ignore[no-untyped-call]
            except Exception as exc:  # noqa: BLE001 - requests/lxml/zeep errors while fetching the WSDL
                raise ConnectorUnavailable(f"ERP WSDL could not be loaded ({type(exc).__name__})") from exc
        return self._soap

    def _rest_client(self) -> httpx.Client:
        if self._http is None:
            assert self.config.rest is not None
            rest = self.config.rest
            self._http = httpx.Client(base_url=rest.base_url, timeout=self.config.timeout,
                                      headers={"Authorization": f"token {rest.api_key}:{rest.api_secret}"})
        return self._http

    def post_charges(self, request: dict[str, Any]) -> tuple[str, str]:
        """(status, erpInvoiceNo); raises ConnectorUnavailable / ConnectorRejected."""
        if self.config.soap is not None:
            result = self._soap_call("PostEncounterCharges", {"charges": _soap_request(request)})
            status, number = str(result.status), str(result.erpInvoiceNo or "")
        else:
            body = self._rest_call("POST", "/api/v1/encounter-charges", json=request)
            status, number = str(body.get("status", "")), str(body.get("erpInvoiceNo") or "")
        if status not in ("ACCEPTED", "DUPLICATE"):
            raise ConnectorRejected(f"ERP answered {status or 'no status'} for invoice {request.get('invoiceNo')}")
        return status, number

    def get_reconciliations(self, since: str, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        if self.config.soap is not None:
            page = self._soap_call("GetReconciliations", {"since": since, "cursor": cursor})
            raw_items = page.items.ReconciliationItem if page.items is not None else []
            items = [_soap_item(item) for item in raw_items or []]
            return items, page.nextCursor or None
        params = {"since": since, **({"cursor": cursor} if cursor else {})}
        body = self._rest_call("GET", "/api/v1/reconciliations", params=params)
        return list(body.get("items", [])), body.get("nextCursor") or None

    def post_stock_movement(self, movement: dict[str, Any]) -> tuple[str, int | None]:
        """(status, on hand after it); the ERP is idempotent by the movement's idempotencyKey."""
        if self.config.soap is not None:
            result = self._soap_call("PostStockMovement", {"movement": movement})
            status, on_hand = str(result.status), result.onHand
        else:
            body = self._rest_call("POST", "/api/v1/stock-movements", json=movement)
            status, on_hand = str(body.get("status", "")), body.get("onHand")
        if status not in ("ACCEPTED", "DUPLICATE"):
            raise ConnectorRejected(f"ERP answered {status or 'no status'} for stock movement of "
                                    f"{movement.get('itemCode')}")
        return status, int(on_hand) if on_hand is not None else None

    def get_stock_alerts(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """Low-stock notices after the cursor: itemCode, location, onHand, reorderLevel."""
        return self._page("GetStockAlerts", "/api/v1/stock-alerts", cursor,
                          ("itemCode", "location", "onHand", "reorderLevel"), "StockAlert")

    def get_staff(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        """The staff master's changes after the cursor: staffId, nik, name, role, specialty, licenseNo, active."""
        return self._page("GetStaff", "/api/v1/staff", cursor,
                          ("staffId", "nik", "name", "role", "specialty", "licenseNo", "active"), "StaffMember")

    def _page(self, operation: str, path: str, cursor: str | None, fields: tuple[str, ...],
              element: str) -> tuple[list[dict[str, Any]], str | None]:
        if self.config.soap is not None:
            page = self._soap_call(operation, {"cursor": cursor})
            raw = getattr(page.items, element) if page.items is not None else []
            return [{name: getattr(item, name, None) for name in fields} for item in raw or []], page.nextCursor or None
        body = self._rest_call("GET", path, params={"cursor": cursor} if cursor else {})
        return list(body.get("items", [])), body.get("nextCursor") or None

    def _soap_call(self, operation: str, argument: dict[str, Any]) -> Any:
        client = self._soap_client()
        # zeep's exceptions, translated at this boundary; zeep is imported in _soap_client for the same reason
        from zeep.exceptions import Fault, TransportError, ValidationError
        try:
            return getattr(client.service, operation)(**argument)
        except Fault as exc:
            raise ConnectorRejected(f"ERP SOAP fault on {operation}: {exc.code or ''}".strip()) from exc
        except ValidationError as exc:
            raise ConnectorRejected(f"ERP request for {operation} does not match the WSDL") from exc
        except TransportError as exc:
            if exc.status_code >= 500 or exc.status_code in RETRYABLE_STATUS:
                raise ConnectorUnavailable(f"ERP answered HTTP {exc.status_code} on {operation}") from exc
            raise ConnectorRejected(f"ERP answered HTTP {exc.status_code} on {operation}") from exc
        except OSError as exc:
            raise ConnectorUnavailable(f"ERP unreachable on {operation} ({type(exc).__name__})") from exc
        except Exception as exc:  # noqa: BLE001 - requests' ConnectionError/Timeout are not OSError
            if type(exc).__module__.startswith(("requests", "urllib3")):
                raise ConnectorUnavailable(f"ERP unreachable on {operation} ({type(exc).__name__})") from exc
            raise

    def _rest_call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._rest_client().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ConnectorUnavailable(f"ERP unreachable ({type(exc).__name__})") from exc
        if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
            raise ConnectorUnavailable(f"ERP answered HTTP {response.status_code}")
        if response.status_code >= 400:
            raise ConnectorRejected(f"ERP answered HTTP {response.status_code}", response=response.text[:2000])
        try:
            body = response.json()
        except ValueError as exc:
            raise ConnectorRejected("ERP answered with a body that is not JSON") from exc
        return body if isinstance(body, dict) else {}

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None
        self._soap = None


def _soap_request(request: dict[str, Any]) -> dict[str, Any]:
    """The request as the WSDL's EncounterCharges: arrays are wrapped (spyne's <Name>Array)."""
    soap = {key: value for key, value in request.items() if key not in ("lines", "payer")}
    soap["payerType"] = request["payer"]["type"]
    soap["payerId"] = request["payer"]["id"]
    soap["payerRef"] = request["payer"]["ref"]
    soap["lines"] = {"ChargeLine": request["lines"]}
    return soap


def _soap_item(item: Any) -> dict[str, Any]:
    fields = ("erpInvoiceNo", "idempotencyKey", "encounterId", "billedAmount", "claimedAmount", "approvedAmount",
              "paidAmount", "status", "updatedAt", "payer")
    out: dict[str, Any] = {name: getattr(item, name, None) for name in fields}
    for name in ("billedAmount", "claimedAmount", "approvedAmount", "paidAmount"):
        value = out[name]
        if value is not None:
            out[name] = int(value)
    if out["updatedAt"] is not None:
        out["updatedAt"] = str(out["updatedAt"])
    return out


class ErpConnector:
    """The `erp` destination: invoice_generated -> PostEncounterCharges; stock_movement -> PostStockMovement."""

    def __init__(self, config: ErpConfig) -> None:
        self.client = ErpClient(config)

    async def connect(self) -> None:
        return None     # the WSDL is read at the first send, so a down ERP delays, not fails, the start

    async def send(self, outgoing: Outgoing) -> str:
        document = _document_of(outgoing.payload)
        if document.get("kind") in STOCK_KINDS:
            status, on_hand = await asyncio.to_thread(self.client.post_stock_movement, document)
            return f"{status} {document.get('itemCode')} on hand {on_hand}"
        status, number = await asyncio.to_thread(self.client.post_charges, _request_of(document))
        return f"{status} {number}"

    async def close(self) -> None:
        self.client.close()


def _document_of(payload: bytes) -> dict[str, Any]:
    """The event's data (or the bare JSON document) the destination was given."""
    try:
        document = json.loads(payload)
    except ValueError as exc:
        raise ConnectorRejected("the ERP destination takes an invoice or stock event, or request JSON") from exc
    if isinstance(document, dict) and "specversion" in document:
        try:
            document = read_event(payload).data
        except EventUnreadable as exc:
            raise ConnectorRejected(f"unreadable event: {exc}") from exc
    if not isinstance(document, dict):
        raise ConnectorRejected("the ERP destination takes a JSON object")
    return document


def _request_of(document: dict[str, Any]) -> dict[str, Any]:
    if document.get("resourceType") == "Bundle":
        return request_from_bundle(document)
    if "idempotencyKey" in document:
        return document
    raise ConnectorRejected("the ERP destination takes an invoice event (FHIR Bundle) or an EncounterCharges request")


CONNECTOR = ConnectorSpec(
    name="erp", destination=ErpConfig, create_destination=ErpConnector, default_payload="raw",
    destination_description="Post invoices to the hospital ERP (SOAP via zeep, or REST).")
