"""Reconciliation: what the ERP says about our invoices, applied; mismatches become work items.

Each invoice carries four amounts: expected (the itemized total), posted (what the ERP booked,
its billedAmount), paid, and claimed (BPJS: the INA-CBG tariff). The poller reads the ERP's
changes (`GetReconciliations(since, cursor)`, its cursor kept in billing_state) and applies each
item here, in the transaction that moves the cursor:

    item for an invoice we sent        amounts and ERP status copied; PAID / PARTIALLY_PAID set ours;
                                       a new payment emits `payment_reconciled`
    billedAmount != expected           work item amount_differs
    status REJECTED                    work item claim_rejected
    an ERP invoice we never sent       work item unknown_invoice (payment_without_invoice if paid)
A new work item emits `reconciliation_mismatch`. Work items are unique per (kind, invoice, ERP
invoice): a re-read page opens nothing twice. Items resolve themselves when a later poll shows
the amounts agree, or by `simpul reconciliation resolve`.
"""
from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import time
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from simpul.engine.events import emit_event
from simpul.store.schema import billing_accounts, billing_invoices, billing_reconciliation_items

ERP_STATUS = {"PAID": "paid", "PARTIALLY_PAID": "partially_paid", "REJECTED": "rejected"}
AGE_BUCKETS = ((0, 30, "0-30"), (31, 60, "31-60"), (61, 90, "61-90"), (91, 10**6, ">90"))


def apply_erp_item(connection: Connection, item: dict[str, Any]) -> list[str]:
    """Apply one ERP reconciliation item; returns the events it emitted (for logs and tests)."""
    emitted: list[str] = []
    key, number = str(item.get("idempotencyKey") or ""), str(item.get("erpInvoiceNo") or "")
    row = connection.execute(
        select(billing_invoices, billing_accounts.c.payer_type)
        .join(billing_accounts, billing_accounts.c.id == billing_invoices.c.account_id)
        .where(or_(billing_invoices.c.idempotency_key == key,
                   and_(billing_invoices.c.erp_invoice_no == number, billing_invoices.c.erp_invoice_no != "")))
    ).first()
    paid = int(item.get("paidAmount") or 0)
    billed = item.get("billedAmount")
    if row is None:
        kind = "payment_without_invoice" if paid else "unknown_invoice"
        if _open_item(connection, kind, "", number, expected=None, actual=paid or billed, payer_type="",
                      detail=f"ERP invoice {number} has no Simpul invoice"):
            emitted.append(_mismatch(connection, kind, "", number))
        return emitted
    invoice = row._mapping
    status = ERP_STATUS.get(str(item.get("status") or ""), "posted")
    changes: dict[str, Any] = {
        "erp_invoice_no": number or invoice["erp_invoice_no"], "erp_status": str(item.get("status") or ""),
        "posted_amount": int(billed) if billed is not None else invoice["posted_amount"], "paid_amount": paid,
        "approved_amount": item.get("approvedAmount"), "status": status, "updated_at": time.time()}
    if item.get("claimedAmount") is not None and invoice["claimed_amount"] is None:
        changes["claimed_amount"] = int(item["claimedAmount"])
    connection.execute(update(billing_invoices).where(billing_invoices.c.id == invoice["id"]).values(**changes))
    if paid != invoice["paid_amount"] and paid > 0:
        emit_event(connection, "payment_reconciled", subject=f"Invoice/{invoice['invoice_no']}", source="simpul/billing",
                   data={"invoiceNo": invoice["invoice_no"], "erpInvoiceNo": changes["erp_invoice_no"],
                         "expected": invoice["total"], "paid": paid, "balance": invoice["total"] - paid,
                         "status": status})
        emitted.append("payment_reconciled")
    if billed is not None and int(billed) != invoice["total"]:
        if _open_item(connection, "amount_differs", invoice["invoice_no"], changes["erp_invoice_no"],
                      expected=invoice["total"], actual=int(billed), payer_type=invoice["payer_type"],
                      detail="ERP billedAmount differs from the itemized total"):
            emitted.append(_mismatch(connection, "amount_differs", invoice["invoice_no"], changes["erp_invoice_no"]))
    else:
        _resolve(connection, "amount_differs", invoice["invoice_no"])
    if status == "rejected":
        if _open_item(connection, "claim_rejected", invoice["invoice_no"], changes["erp_invoice_no"],
                      expected=invoice["total"], actual=0, payer_type=invoice["payer_type"],
                      detail="the ERP reports the claim rejected"):
            emitted.append(_mismatch(connection, "claim_rejected", invoice["invoice_no"], changes["erp_invoice_no"]))
    return emitted


def _open_item(connection: Connection, kind: str, invoice_no: str, erp_invoice_no: str, *, expected: int | None,
               actual: int | None, payer_type: str, detail: str) -> bool:
    existing = connection.execute(select(billing_reconciliation_items).where(and_(
        billing_reconciliation_items.c.kind == kind, billing_reconciliation_items.c.invoice_no == invoice_no,
        billing_reconciliation_items.c.erp_invoice_no == erp_invoice_no))).first()
    if existing is not None:
        connection.execute(update(billing_reconciliation_items).where(billing_reconciliation_items.c.id == existing.id)
                           .values(expected=expected, actual=actual))
        if existing.status == "open":
            return False
        connection.execute(update(billing_reconciliation_items).where(billing_reconciliation_items.c.id == existing.id)
                           .values(status="open", resolved_at=None, opened_at=time.time()))
        return True
    connection.execute(billing_reconciliation_items.insert().values(
        kind=kind, invoice_no=invoice_no, erp_invoice_no=erp_invoice_no, expected=expected, actual=actual,
        payer_type=payer_type, detail=detail, status="open", opened_at=time.time()))
    return True


def _resolve(connection: Connection, kind: str, invoice_no: str) -> None:
    connection.execute(update(billing_reconciliation_items).where(and_(
        billing_reconciliation_items.c.kind == kind, billing_reconciliation_items.c.invoice_no == invoice_no,
        billing_reconciliation_items.c.status == "open")).values(status="resolved", resolved_at=time.time()))


def resolve_item(connection: Connection, item_id: int) -> bool:
    result = connection.execute(update(billing_reconciliation_items).where(and_(
        billing_reconciliation_items.c.id == item_id, billing_reconciliation_items.c.status == "open"))
        .values(status="resolved", resolved_at=time.time()))
    return bool(result.rowcount)


def _mismatch(connection: Connection, kind: str, invoice_no: str, erp_invoice_no: str) -> str:
    emit_event(connection, "reconciliation_mismatch", subject=f"Invoice/{invoice_no or erp_invoice_no}",
               source="simpul/billing", data={"kind": kind, "invoiceNo": invoice_no, "erpInvoiceNo": erp_invoice_no})
    return "reconciliation_mismatch"


def open_items(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(select(billing_reconciliation_items)
                              .where(billing_reconciliation_items.c.status == "open")
                              .order_by(billing_reconciliation_items.c.id)).all()
    return [dict(r._mapping) for r in rows]


# ---- the pull API: invoices and their state, with a stable cursor ---------------------------

def encode_cursor(updated_at: float, invoice_id: int) -> str:
    return base64.urlsafe_b64encode(f"{updated_at!r}:{invoice_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, int]:
    """ValueError for a cursor this API did not hand out."""
    padded = cursor + "=" * (-len(cursor) % 4)
    text = base64.urlsafe_b64decode(padded.encode()).decode()
    at, _, ident = text.partition(":")
    return float(at), int(ident)


def reconciliation_page(connection: Connection, *, since: float, cursor: str | None, limit: int) -> \
        tuple[list[dict[str, Any]], str | None]:
    """Invoices changed at or after `since`, after `cursor`, in (updated_at, id) order.

    The cursor names the last row returned, so a page never skips or repeats a row that did not
    change meanwhile; a row that changes moves to the end and is listed again with its new state.
    """
    query = select(billing_invoices, billing_accounts.c.visit_number, billing_accounts.c.payer_type,
                   billing_accounts.c.payer_ref) \
        .join(billing_accounts, billing_accounts.c.id == billing_invoices.c.account_id) \
        .where(billing_invoices.c.updated_at >= since)
    if cursor:
        at, ident = decode_cursor(cursor)
        query = query.where(or_(billing_invoices.c.updated_at > at,
                                and_(billing_invoices.c.updated_at == at, billing_invoices.c.id > ident)))
    rows = connection.execute(query.order_by(billing_invoices.c.updated_at, billing_invoices.c.id).limit(limit + 1)).all()
    items = [_api_item(r._mapping) for r in rows[:limit]]
    next_cursor = encode_cursor(rows[limit - 1].updated_at, rows[limit - 1].id) if len(rows) > limit else None
    return items, next_cursor


def _api_item(row: Any) -> dict[str, Any]:
    posted = row["posted_amount"]
    return {"invoiceNo": row["invoice_no"], "idempotencyKey": row["idempotency_key"],
            "encounterId": row["visit_number"], "payer": row["payer_type"], "sepNo": row["payer_ref"] or None,
            "status": row["status"], "erpInvoiceNo": row["erp_invoice_no"] or None, "erpStatus": row["erp_status"] or None,
            "expectedAmount": row["total"], "postedAmount": posted, "paidAmount": row["paid_amount"],
            "claimedAmount": row["claimed_amount"],
            # BPJS pays the INA-CBG tariff, not the itemized total: the gap is tracked per invoice
            "claimDifference": row["claimed_amount"] - row["total"] if row["claimed_amount"] is not None else None,
            "approvedAmount": row["approved_amount"],
            "balance": (posted if posted is not None else row["total"]) - row["paid_amount"],
            "updatedAt": dt.datetime.fromtimestamp(row["updated_at"], dt.UTC).isoformat().replace("+00:00", "Z")}


# ---- the daily report ------------------------------------------------------------------------

def daily_report(connection: Connection, *, now: float | None = None) -> dict[str, Any]:
    """Open work items with their age, invoices with a balance, and totals per payer."""
    now = now or time.time()
    invoices = [dict(r._mapping) for r in connection.execute(
        select(billing_invoices, billing_accounts.c.payer_type, billing_accounts.c.visit_number)
        .join(billing_accounts, billing_accounts.c.id == billing_invoices.c.account_id)
        .order_by(billing_invoices.c.id))]
    per_payer: dict[str, dict[str, int]] = {}
    open_balances = []
    for invoice in invoices:
        sums = per_payer.setdefault(invoice["payer_type"], {"invoices": 0, "expected": 0, "posted": 0, "paid": 0,
                                                            "claimed": 0, "open": 0})
        balance = (invoice["posted_amount"] if invoice["posted_amount"] is not None else invoice["total"]) \
            - invoice["paid_amount"]
        sums["invoices"] += 1
        sums["expected"] += invoice["total"]
        sums["posted"] += invoice["posted_amount"] or 0
        sums["paid"] += invoice["paid_amount"]
        sums["claimed"] += invoice["claimed_amount"] or 0
        sums["open"] += max(balance, 0)
        if balance > 0 and invoice["status"] != "rejected":
            age = int((now - invoice["created_at"]) // 86400)
            open_balances.append({"invoice_no": invoice["invoice_no"], "erp_invoice_no": invoice["erp_invoice_no"],
                                  "payer_type": invoice["payer_type"], "status": invoice["status"],
                                  "expected": invoice["total"], "posted": invoice["posted_amount"],
                                  "paid": invoice["paid_amount"], "claimed": invoice["claimed_amount"],
                                  "balance": balance, "age_days": age, "ageing": _age_bucket(age)})
    items = []
    for item in open_items(connection):
        age = int((now - item["opened_at"]) // 86400)
        items.append({**item, "age_days": age, "ageing": _age_bucket(age)})
    return {"generated_at": now, "open_balances": open_balances, "work_items": items, "per_payer": per_payer}


def _age_bucket(days: int) -> str:
    return next(label for low, high, label in AGE_BUCKETS if low <= days <= high)


REPORT_COLUMNS = ("section", "invoice_no", "erp_invoice_no", "kind", "payer_type", "status", "expected", "posted",
                  "paid", "claimed", "balance", "age_days", "ageing")


def report_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in report["open_balances"]:
        writer.writerow({"section": "open_balance", **row})
    for item in report["work_items"]:
        writer.writerow({"section": "work_item", **item, "posted": item["actual"]})
    for payer, sums in sorted(report["per_payer"].items()):
        writer.writerow({"section": "payer_total", "payer_type": payer, "expected": sums["expected"],
                         "posted": sums["posted"], "paid": sums["paid"], "claimed": sums["claimed"],
                         "balance": sums["open"]})
    return out.getvalue()
