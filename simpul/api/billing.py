"""/reconciliations, /reconciliation-items, /reconciliation-report, /billing: encounter-to-cash for the ERP and staff.

The ERP pulls `GET /api/v1/reconciliations?since=..&cursor=..`: invoices and their state
(expected, posted, paid, claimed), oldest change first, `limit` per page and `nextCursor` until
the list is exhausted. A cursor names the last row of the page it came with, so paging is stable
while invoices change (a changed invoice comes again, later, with its new state).
"""
from __future__ import annotations

import datetime as dt
import html
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse

from simpul.api.deps import ActorDep, EngineDep, StoreDep
from simpul.billing.accounts import find_account, unpriced_queue
from simpul.billing.invoices import invoice_if_ready, invoice_view
from simpul.billing.reconciliation import (
    daily_report, decode_cursor, open_items, reconciliation_page, report_csv, resolve_item,
)
from simpul.engine.runtime import Engine
from simpul.errors import InvalidParameter, NotFound, OperationRefused

router = APIRouter(tags=["billing"])


def _since(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter("since: not an ISO 8601 date-time (e.g. 2026-12-01T00:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


@router.get("/reconciliations", summary="Invoices and their state for the ERP (paginated, stable cursor)")
async def reconciliations(store: StoreDep, since: str | None = Query(None, description="ISO 8601; invoices "
                                                                                       "changed at or after it."),
                          cursor: str | None = Query(None, description="nextCursor of the previous page."),
                          limit: int = Query(100, ge=1, le=1000)) -> Any:
    start = _since(since)
    if cursor:
        try:
            decode_cursor(cursor)
        except ValueError:
            raise InvalidParameter("cursor: not one this API handed out") from None
    items, next_cursor = await store.read(lambda c: reconciliation_page(c, since=start, cursor=cursor, limit=limit))
    return {"items": items, "nextCursor": next_cursor}


@router.get("/reconciliation-items", summary="Reconciliation work items (mismatches), open ones by default")
async def reconciliation_items(store: StoreDep) -> Any:
    return await store.read(open_items)


@router.post("/reconciliation-items/{item_id}/resolve", summary="Mark a work item resolved")
async def resolve(item_id: int, store: StoreDep, actor: ActorDep) -> Any:
    if not await store.write(lambda c: resolve_item(c, item_id)):
        raise NotFound(f"no open reconciliation item {item_id}")
    return {"id": item_id, "status": "resolved", "resolved_by": actor}


@router.get("/reconciliation-report", summary="The daily reconciliation report (JSON)")
async def report(store: StoreDep) -> Any:
    return await store.read(daily_report)


@router.get("/reconciliation-report.csv", summary="The daily reconciliation report as CSV",
            response_class=PlainTextResponse)
async def report_as_csv(store: StoreDep) -> PlainTextResponse:
    document = await store.read(daily_report)
    return PlainTextResponse(report_csv(document), media_type="text/csv",
                             headers={"Content-Disposition": "attachment; filename=reconciliation.csv"})


@router.get("/reconciliation-report.html", summary="The daily reconciliation report as a page",
            response_class=HTMLResponse)
async def report_as_html(store: StoreDep) -> HTMLResponse:
    return HTMLResponse(render_report(await store.read(daily_report)))


@router.get("/billing/unpriced", summary="Charges waiting for a tariff (the unpriced work queue)")
async def unpriced(store: StoreDep) -> Any:
    return await store.read(unpriced_queue)


@router.get("/billing/invoices/{invoice_no}", summary="One invoice: lines, totals by category and tarif_rs bucket")
async def invoice(invoice_no: str, store: StoreDep) -> Any:
    found = await store.read(lambda c: invoice_view(c, invoice_no))
    if found is None:
        raise NotFound(f"no invoice {invoice_no}")
    return found


@router.post("/billing/accounts/{visit_number}/invoice", summary="Invoice an account now (on demand)")
async def invoice_now(visit_number: str, store: StoreDep, engine: EngineDep, actor: ActorDep) -> Any:
    prefix = _prefix(engine)

    def make(connection: Any) -> str | None:
        account = find_account(connection, visit_number)
        if account is None:
            raise NotFound(f"no account for visit {visit_number}")
        return invoice_if_ready(connection, account, prefix=prefix, on_demand=True)

    number = await store.write(make)
    if number is None:
        raise OperationRefused("nothing to invoice: no priced charge left, a charge is unpriced, or the account "
                               "is voided")
    return {"invoice_no": number, "requested_by": actor}


def _prefix(engine: Engine) -> str:
    return str(engine.settings.billing.invoice_prefix)


def _money(value: Any) -> str:
    return "" if value is None else f"{int(value):,}".replace(",", ".")


def render_report(report: dict[str, Any]) -> str:
    """The report as one self-contained page (no scripts): open balances, work items, payer totals."""
    def table(headers: list[str], rows: list[list[Any]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    balances = table(["Invoice", "ERP invoice", "Payer", "Status", "Expected", "Posted", "Paid", "Claimed",
                      "Open", "Age (days)", "Ageing"],
                     [[b["invoice_no"], b["erp_invoice_no"], b["payer_type"], b["status"], _money(b["expected"]),
                       _money(b["posted"]), _money(b["paid"]), _money(b["claimed"]), _money(b["balance"]),
                       b["age_days"], b["ageing"]] for b in report["open_balances"]])
    items = table(["#", "Kind", "Invoice", "ERP invoice", "Expected", "Actual", "Payer", "Age (days)", "Detail"],
                  [[i["id"], i["kind"], i["invoice_no"], i["erp_invoice_no"], _money(i["expected"]),
                    _money(i["actual"]), i["payer_type"], i["age_days"], i["detail"]] for i in report["work_items"]])
    payers = table(["Payer", "Invoices", "Expected", "Posted", "Paid", "Claimed", "Open"],
                   [[payer, s["invoices"], _money(s["expected"]), _money(s["posted"]), _money(s["paid"]),
                     _money(s["claimed"]), _money(s["open"])] for payer, s in sorted(report["per_payer"].items())])
    when = dt.datetime.fromtimestamp(report["generated_at"], dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Reconciliation report</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
            "td,th{border:1px solid #bbb;padding:4px 8px;text-align:right}th{background:#eee}</style></head><body>"
            f"<h1>Reconciliation report</h1><p>Generated {when}. Amounts in rupiah.</p>"
            f"<h2>Open balances</h2>{balances}<h2>Open work items</h2>{items}<h2>Totals per payer</h2>{payers}"
            "<p><a href='/api/v1/reconciliation-report.csv'>Download CSV</a></p></body></html>")
