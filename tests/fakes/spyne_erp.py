"""A SOAP hospital ERP for the encounter-to-cash tests: a real spyne service with a WSDL on loopback.

Operations (document/literal, namespace urn:hospital:billing:v1, the contract of docs/billing.md):
PostEncounterCharges(charges) -> PostResult (idempotent by idempotencyKey: a replay answers
DUPLICATE and the same erpInvoiceNo) and GetReconciliations(since, cursor) -> ReconciliationPage
(items changed after the cursor, `page_size` at a time, a stable cursor = the ERP's change number).
The test drives the ERP's side directly: `record_payment`, `reject_claim`, `add_foreign_payment`,
and `down = True` answers every call with HTTP 503, as an ERP behind a failing proxy would
(`fail_next`, `reject_next` and `stalled` are the conformance suite's knobs).
"""
from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

with warnings.catch_warnings():
    # spyne 2.14 bundles six and imports cgi: both warn on Python 3.11 (components.md section 4)
    warnings.simplefilter("ignore")
    from spyne import Application, Boolean, ComplexModel, Integer, ServiceBase, Unicode, rpc
    from spyne.model.complex import Array
    from spyne.protocol.soap import Soap11
    from spyne.server.wsgi import WsgiApplication

NS = "urn:hospital:billing:v1"


class ChargeLine(ComplexModel):
    __namespace__ = NS
    lineId = Unicode
    code = Unicode
    description = Unicode
    tarifRsBucket = Unicode
    qty = Integer
    unitPrice = Integer
    amount = Integer


class EncounterCharges(ComplexModel):
    __namespace__ = NS
    idempotencyKey = Unicode(min_occurs=1, nillable=False)
    invoiceNo = Unicode
    encounterId = Unicode
    mrn = Unicode
    payerType = Unicode
    payerId = Unicode
    payerRef = Unicode
    serviceDate = Unicode
    currency = Unicode
    total = Integer
    claimedAmount = Integer
    lines = Array(ChargeLine)


class PostResult(ComplexModel):
    __namespace__ = NS
    status = Unicode
    erpInvoiceNo = Unicode


class ReconciliationItem(ComplexModel):
    __namespace__ = NS
    erpInvoiceNo = Unicode
    idempotencyKey = Unicode
    encounterId = Unicode
    payer = Unicode
    billedAmount = Integer
    claimedAmount = Integer
    approvedAmount = Integer
    paidAmount = Integer
    status = Unicode
    updatedAt = Unicode


class ReconciliationPage(ComplexModel):
    __namespace__ = NS
    items = Array(ReconciliationItem)
    nextCursor = Unicode


class StockMovement(ComplexModel):
    __namespace__ = NS
    idempotencyKey = Unicode(min_occurs=1, nillable=False)
    kind = Unicode
    itemCode = Unicode
    qty = Integer
    encounterId = Unicode
    location = Unicode
    occurredAt = Unicode


class StockResult(ComplexModel):
    __namespace__ = NS
    status = Unicode
    onHand = Integer


class StockAlert(ComplexModel):
    __namespace__ = NS
    itemCode = Unicode
    location = Unicode
    onHand = Integer
    reorderLevel = Integer


class StockAlertPage(ComplexModel):
    __namespace__ = NS
    items = Array(StockAlert)
    nextCursor = Unicode


class StaffMember(ComplexModel):
    __namespace__ = NS
    staffId = Unicode
    nik = Unicode
    name = Unicode
    role = Unicode
    specialty = Unicode
    licenseNo = Unicode
    active = Boolean


class StaffPage(ComplexModel):
    __namespace__ = NS
    items = Array(StaffMember)
    nextCursor = Unicode


@dataclass
class ErpInvoice:
    erp_invoice_no: str
    idempotency_key: str
    encounter_id: str
    payer: str
    billed: int
    claimed: int | None
    lines: list[dict[str, Any]]
    paid: int = 0
    approved: int | None = None
    status: str = "OPEN"
    change: int = 0


@dataclass
class ErpState:
    invoices: dict[str, ErpInvoice] = field(default_factory=dict)   # by idempotencyKey
    posts: int = 0          # calls of PostEncounterCharges, replays included
    change: int = 0
    page_size: int = 50
    down: bool = False
    fail_next: int = 0           # the next n calls get HTTP 503
    reject_next: int = 0         # the next n posts get status REJECTED
    stalled: bool = False        # take calls and answer none (until cleared)
    received_keys: list[str] = field(default_factory=list)   # idempotencyKey of every post, rejected ones too
    stock: dict[str, int] = field(default_factory=dict)        # itemCode -> on hand
    reorder_level: dict[str, int] = field(default_factory=dict)
    movements: dict[str, dict[str, Any]] = field(default_factory=dict)   # by idempotencyKey
    alerts: list[dict[str, Any]] = field(default_factory=list)           # each with its change number
    staff: list[dict[str, Any]] = field(default_factory=list)            # each with its change number
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _touch(self, invoice: ErpInvoice) -> None:
        self.change += 1
        invoice.change = self.change

    def by_number(self, erp_invoice_no: str) -> ErpInvoice:
        return next(i for i in self.invoices.values() if i.erp_invoice_no == erp_invoice_no)

    def record_payment(self, erp_invoice_no: str, amount: int) -> None:
        with self.lock:
            invoice = self.by_number(erp_invoice_no)
            invoice.paid += amount
            invoice.status = "PAID" if invoice.paid >= invoice.billed else "PARTIALLY_PAID"
            self._touch(invoice)

    def reject_claim(self, erp_invoice_no: str) -> None:
        with self.lock:
            invoice = self.by_number(erp_invoice_no)
            invoice.status = "REJECTED"
            self._touch(invoice)

    def add_staff(self, **member: Any) -> None:
        with self.lock:
            self.change += 1
            self.staff.append({**member, "change": self.change})

    def add_foreign_payment(self, erp_invoice_no: str, amount: int) -> None:
        """A payment the ERP holds for an invoice Simpul never sent (payment without invoice)."""
        with self.lock:
            invoice = ErpInvoice(erp_invoice_no, f"foreign-{erp_invoice_no}", "", "SELF_PAY", 0, None, [],
                                 paid=amount, status="PAID")
            self.invoices[invoice.idempotency_key] = invoice
            self._touch(invoice)


def _service(state: ErpState) -> type[ServiceBase]:
    class Billing(ServiceBase):
        @rpc(EncounterCharges, _returns=PostResult, _body_style="wrapped")
        def PostEncounterCharges(ctx, charges):  # noqa: N802, N805 - names are the WSDL's
            with state.lock:
                state.posts += 1
                state.received_keys.append(charges.idempotencyKey)
                if state.reject_next:
                    state.reject_next -= 1
                    return PostResult(status="REJECTED", erpInvoiceNo=None)
                known = state.invoices.get(charges.idempotencyKey)
                if known is not None:
                    return PostResult(status="DUPLICATE", erpInvoiceNo=known.erp_invoice_no)
                number = f"INV-{len(state.invoices) + 1:07d}"
                lines = [{"code": line.code, "qty": line.qty, "unitPrice": line.unitPrice, "amount": line.amount,
                          "tarifRsBucket": line.tarifRsBucket} for line in (charges.lines or [])]
                invoice = ErpInvoice(number, charges.idempotencyKey, charges.encounterId or "", charges.payerType or "",
                                     int(charges.total or 0), charges.claimedAmount, lines)
                state.invoices[charges.idempotencyKey] = invoice
                state._touch(invoice)
                return PostResult(status="ACCEPTED", erpInvoiceNo=number)

        @rpc(Unicode, Unicode, _returns=ReconciliationPage)
        def GetReconciliations(ctx, since, cursor):  # noqa: N802, N805
            after = int(cursor) if cursor else 0
            with state.lock:
                changed = sorted((i for i in state.invoices.values() if i.change > after), key=lambda i: i.change)
                page = changed[:state.page_size]
                more = len(changed) > len(page)
                items = [ReconciliationItem(
                    erpInvoiceNo=i.erp_invoice_no, idempotencyKey=i.idempotency_key, encounterId=i.encounter_id,
                    payer=i.payer, billedAmount=i.billed, claimedAmount=i.claimed, approvedAmount=i.approved,
                    paidAmount=i.paid, status=i.status, updatedAt=str(i.change)) for i in page]
                next_cursor = str(page[-1].change) if page else (cursor or "")
            # nextCursor: where the next poll starts; an empty page keeps the caller's cursor
            return ReconciliationPage(items=items, nextCursor=next_cursor if (more or page) else next_cursor)

        @rpc(StockMovement, _returns=StockResult, _body_style="wrapped")
        def PostStockMovement(ctx, movement):  # noqa: N802, N805
            with state.lock:
                code = movement.itemCode
                if movement.idempotencyKey in state.movements:
                    return StockResult(status="DUPLICATE", onHand=state.stock.get(code, 0))
                state.movements[movement.idempotencyKey] = {"kind": movement.kind, "itemCode": code,
                                                            "qty": movement.qty}
                state.stock[code] = state.stock.get(code, 0) - int(movement.qty or 0)
                if state.stock[code] <= state.reorder_level.get(code, -10**9):
                    state.change += 1
                    state.alerts.append({"itemCode": code, "location": movement.location or "",
                                         "onHand": state.stock[code], "reorderLevel": state.reorder_level[code],
                                         "change": state.change})
                return StockResult(status="ACCEPTED", onHand=state.stock[code])

        @rpc(Unicode, _returns=StockAlertPage)
        def GetStockAlerts(ctx, cursor):  # noqa: N802, N805
            after = int(cursor) if cursor else 0
            with state.lock:
                page = [a for a in state.alerts if a["change"] > after]
                items = [StockAlert(**{k: v for k, v in a.items() if k != "change"}) for a in page]
                return StockAlertPage(items=items, nextCursor=str(page[-1]["change"]) if page else cursor)

        @rpc(Unicode, _returns=StaffPage)
        def GetStaff(ctx, cursor):  # noqa: N802, N805
            after = int(cursor) if cursor else 0
            with state.lock:
                page = [m for m in state.staff if m["change"] > after]
                items = [StaffMember(**{k: v for k, v in m.items() if k != "change"}) for m in page]
                return StaffPage(items=items, nextCursor=str(page[-1]["change"]) if page else cursor)

    return Billing


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - wsgiref's signature
        return None


class SpyneErp:
    """Start with `start()`, read `.wsdl_url`, stop with `stop()`; `start()` again serves the same port."""

    def __init__(self) -> None:
        self.state = ErpState()
        application = Application([_service(self.state)], tns=NS, in_protocol=Soap11(validator="lxml"),
                                  out_protocol=Soap11())
        self._wsgi = WsgiApplication(application)
        self.port = 0
        self.wsdl_url = ""
        self._server: _ThreadingServer | None = None
        self._thread: threading.Thread | None = None

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        while self.state.stalled:
            time.sleep(0.05)
        with self.state.lock:
            # fail_next hits calls (POST), not the WSDL download (GET)
            calling = environ.get("REQUEST_METHOD") == "POST"
            failing = self.state.down or (calling and self.state.fail_next > 0)
            if calling and self.state.fail_next > 0:
                self.state.fail_next -= 1
        if failing:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ERP maintenance"]
        return self._wsgi(environ, start_response)

    def start(self) -> SpyneErp:
        self._server = make_server("127.0.0.1", self.port, self._app, server_class=_ThreadingServer,
                                   handler_class=_QuietHandler)
        self.port = self._server.server_address[1]
        self.wsdl_url = f"http://127.0.0.1:{self.port}/?wsdl"
        self._thread = threading.Thread(target=self._server.serve_forever, name="spyne-erp", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self.state.stalled = False
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None
