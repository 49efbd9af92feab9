"""Invoices: when an account closes (or on demand), its priced charges become one invoice.

An invoice waits while any charge of the account is unpriced (the unpriced queue shows why) and
is made as soon as the last one is priced. It holds every charge not on an earlier invoice, so a
reopened and re-closed stay gets a supplementary invoice for what came after, and a replayed
stream (no new charges) gets none. Its idempotencyKey is `<prefix>:<visit>:<n>`: the ERP answers
a second post of it with DUPLICATE and the same invoice number.

Made in the transaction that closed the account: the invoice row, its charges marked, and the
`invoice_generated` event (FHIR Bundle: Account, ChargeItem per line, Invoice) that a channel
with an `erp` destination delivers, with retries and dead letters like every destination.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from simpul.billing.accounts import count_unpriced
from simpul.connectors.erp import (
    IDEMPOTENCY_SYSTEM, INVOICE_SYSTEM, PAYER_EXTENSION, TARIF_BUCKET_EXTENSION, request_from_bundle,
)
from simpul.engine.events import emit_event
from simpul.store.schema import billing_accounts, billing_charges, billing_invoices

TARIFF_SYSTEM = "urn:simpul:tariff"
VISIT_SYSTEM = "urn:simpul:visit-number"
MRN_SYSTEM = "urn:simpul:mrn"


def invoice_if_ready(connection: Connection, account: dict[str, Any], *, prefix: str, on_demand: bool = False) -> \
        str | None:
    """Make the account's next invoice if it is closed (or on demand), nothing is unpriced and
    something is left to bill; returns the invoice number or None."""
    if account["status"] == "voided" or (account["status"] != "closed" and not on_demand):
        return None
    if count_unpriced(connection, account["id"]):
        return None
    charges = [dict(r._mapping) for r in connection.execute(
        select(billing_charges).where(and_(billing_charges.c.account_id == account["id"],
                                           billing_charges.c.status == "priced",
                                           billing_charges.c.invoice_id.is_(None)))
        .order_by(billing_charges.c.id))]
    if not charges:
        return None
    sequence = int(connection.execute(select(func.count()).select_from(billing_invoices)
                                      .where(billing_invoices.c.account_id == account["id"])).scalar_one()) + 1
    invoice_no = f"{prefix}-{account['id']:06d}-{sequence}"
    key = f"{prefix}:{account['visit_number']}:{sequence}"
    now = time.time()
    total = sum(int(c["amount"]) for c in charges)
    bundle = invoice_bundle(account, charges, invoice_no=invoice_no, idempotency_key=key, total=total, now=now)
    document = request_from_bundle(bundle)
    result = connection.execute(billing_invoices.insert().values(
        invoice_no=invoice_no, account_id=account["id"], idempotency_key=key, status="generated", total=total,
        claimed_amount=None, posted_amount=None, paid_amount=0, erp_invoice_no="", erp_status="",
        document=json.dumps(document, sort_keys=True), created_at=now, updated_at=now))
    invoice_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    connection.execute(update(billing_charges).where(billing_charges.c.id.in_([c["id"] for c in charges]))
                       .values(invoice_id=invoice_id))
    emit_event(connection, "invoice_generated", subject=f"Invoice/{invoice_no}", data=bundle, source="simpul/billing")
    return invoice_no


def totals(charges: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Totals by category (where the charge came from) and by E-Klaim tarif_rs bucket."""
    by_category: dict[str, int] = defaultdict(int)
    by_bucket: dict[str, int] = defaultdict(int)
    for charge in charges:
        by_category[charge["origin"]] += int(charge["amount"])
        by_bucket[charge["tarif_bucket"]] += int(charge["amount"])
    return {"category": dict(sorted(by_category.items())), "tarif_rs": dict(sorted(by_bucket.items()))}


def invoice_bundle(account: dict[str, Any], charges: list[dict[str, Any]], *, invoice_no: str, idempotency_key: str,
                   total: int, now: float) -> dict[str, Any]:
    """FHIR R4 collection Bundle: Account, one ChargeItem per charge, the Invoice."""
    account_id = f"acct-{account['id']}"
    subject = {"identifier": {"system": MRN_SYSTEM, "value": account["patient_id"]}}
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    resources: list[dict[str, Any]] = [{
        "resourceType": "Account", "id": account_id, "status": "active",
        "identifier": [{"system": VISIT_SYSTEM, "value": account["visit_number"]}],
        "subject": [subject], "name": f"Encounter {account['visit_number']}",
    }]
    line_items = []
    for sequence, charge in enumerate(charges, start=1):
        item_id = f"charge-{charge['id']}"
        resources.append({
            "resourceType": "ChargeItem", "id": item_id, "status": "billable",
            "extension": [{"url": TARIF_BUCKET_EXTENSION, "valueCode": charge["tarif_bucket"]}],
            "code": {"coding": [{"system": TARIFF_SYSTEM, "code": charge["service_code"]}],
                     "text": charge["description"]},
            "subject": subject, "occurrenceDateTime": charge["service_date"],
            "quantity": {"value": charge["quantity"]},
            "priceOverride": {"value": charge["unit_price"], "currency": "IDR"},
            "account": [{"reference": f"Account/{account_id}"}],
        })
        line_items.append({"sequence": sequence, "chargeItemReference": {"reference": f"ChargeItem/{item_id}"},
                           "priceComponent": [{"type": "base", "amount": {"value": charge["amount"],
                                                                          "currency": "IDR"}}]})
    sums = totals(charges)
    resources.append({
        "resourceType": "Invoice", "id": invoice_no, "status": "issued",
        "identifier": [{"system": INVOICE_SYSTEM, "value": invoice_no},
                       {"system": IDEMPOTENCY_SYSTEM, "value": idempotency_key}],
        "extension": [{"url": PAYER_EXTENSION, "extension": [
            {"url": "type", "valueCode": account["payer_type"]},
            {"url": "id", "valueString": account["payer_id"] or "-"},
            {"url": "ref", "valueString": account["payer_ref"] or "-"}]}],
        "subject": subject, "date": date, "account": {"reference": f"Account/{account_id}"},
        "lineItem": line_items,
        # one component per tarif_rs bucket: the E-Klaim breakdown the BPJS claim needs
        "totalPriceComponent": [{"type": "informational", "code": {"text": bucket}, "amount": {"value": amount,
                                                                                             "currency": "IDR"}}
                                for bucket, amount in sums["tarif_rs"].items()],
        "totalNet": {"value": total, "currency": "IDR"}, "totalGross": {"value": total, "currency": "IDR"},
    })
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def set_claimed_amount(connection: Connection, invoice_no: str, amount: int) -> bool:
    """BPJS: the INA-CBG tariff the claim asks for; the gap to the itemized total is reported."""
    result = connection.execute(update(billing_invoices).where(billing_invoices.c.invoice_no == invoice_no)
                                .values(claimed_amount=amount, updated_at=time.time()))
    return bool(result.rowcount)


def invoice_view(connection: Connection, invoice_no: str) -> dict[str, Any] | None:
    row = connection.execute(
        select(billing_invoices, billing_accounts.c.visit_number, billing_accounts.c.payer_type)
        .join(billing_accounts, billing_accounts.c.id == billing_invoices.c.account_id)
        .where(billing_invoices.c.invoice_no == invoice_no)).first()
    if row is None:
        return None
    view = dict(row._mapping)
    charges = [dict(r._mapping) for r in connection.execute(
        select(billing_charges).where(billing_charges.c.invoice_id == view["id"]).order_by(billing_charges.c.id))]
    view["document"] = json.loads(view["document"])
    view["lines"] = charges
    view["totals"] = totals(charges)
    return view
