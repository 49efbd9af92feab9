"""An ERPNext-style REST ERP for the encounter-to-cash tests (stdlib HTTP server on loopback).

`Authorization: token <key>:<secret>` on every call (401 otherwise, as ERPNext answers).
POST /api/v1/encounter-charges: idempotent by idempotencyKey (a replay answers DUPLICATE and the
same erpInvoiceNo); GET /api/v1/reconciliations?since=..&cursor=..: changes after the cursor.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

API_KEY, API_SECRET = "rest-key", "rest-s3cret"


class RestErp:
    def __init__(self) -> None:
        self.invoices: dict[str, dict[str, Any]] = {}   # by idempotencyKey
        self.change = 0
        self.posts = 0
        self.lock = threading.Lock()
        self.base_url = ""
        self._server: ThreadingHTTPServer | None = None

    def record_payment(self, erp_invoice_no: str, amount: int) -> None:
        with self.lock:
            invoice = next(i for i in self.invoices.values() if i["erpInvoiceNo"] == erp_invoice_no)
            invoice["paidAmount"] += amount
            invoice["status"] = "PAID" if invoice["paidAmount"] >= invoice["billedAmount"] else "PARTIALLY_PAID"
            self.change += 1
            invoice["change"] = self.change

    def start(self) -> RestErp:
        erp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
                return None

            def _answer(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _authorised(self) -> bool:
                if self.headers.get("Authorization") == f"token {API_KEY}:{API_SECRET}":
                    return True
                self._answer(401, {"exc_type": "AuthenticationError"})
                return False

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                if not self._authorised():
                    return
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                with erp.lock:
                    erp.posts += 1
                    known = erp.invoices.get(request["idempotencyKey"])
                    if known is not None:
                        return self._answer(200, {"status": "DUPLICATE", "erpInvoiceNo": known["erpInvoiceNo"]})
                    erp.change += 1
                    number = f"SINV-{len(erp.invoices) + 1:05d}"
                    erp.invoices[request["idempotencyKey"]] = {
                        "erpInvoiceNo": number, "idempotencyKey": request["idempotencyKey"],
                        "encounterId": request["encounterId"], "billedAmount": request["total"],
                        "claimedAmount": request.get("claimedAmount"), "approvedAmount": None, "paidAmount": 0,
                        "status": "OPEN", "change": erp.change, "lines": request["lines"]}
                self._answer(200, {"status": "ACCEPTED", "erpInvoiceNo": number, "messages": []})

            def do_GET(self) -> None:  # noqa: N802
                if not self._authorised():
                    return
                query = parse_qs(urlparse(self.path).query)
                after = int(query.get("cursor", ["0"])[0] or 0)
                with erp.lock:
                    changed = sorted((i for i in erp.invoices.values() if i["change"] > after), key=lambda i: i["change"])
                    items = [{k: v for k, v in i.items() if k not in ("change", "lines")} for i in changed]
                    cursor = str(changed[-1]["change"]) if changed else None
                self._answer(200, {"items": items, "nextCursor": cursor})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="rest-erp", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
