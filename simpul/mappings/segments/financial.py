"""FT1 -> ChargeItem (+ PID-18 -> Account). The V2-to-FHIR IG has no FT1 map; this one is ours,
documented in docs/mappings/index.md ("DFT^P03 / P11 -> ChargeItem").

FT1-6 transaction type (v2 table 0017) decides the sign:
  CG charge, CO co-payment, AJ adjustment -> billable, quantity as sent;
  CD credit (a reversal of an earlier charge) -> billable with the quantity and price negated, so the
     credit offsets the charge it reverses when the account is summed;
  PY payment -> not a charge: no ChargeItem, counted as skipped;
A negative FT1-10 quantity on a CG is also a reversal and is kept negative.
"""
from __future__ import annotations

from typing import Any

from simpul.mappings import datatypes as dt
from simpul.mappings.context import MapContext
from simpul.v2 import Segment

TRANSACTION_TYPE_EXT = "https://simpul.dev/fhir/StructureDefinition/v2-ft1-transaction-type"


def map_account(ctx: MapContext, pid: Segment) -> str | None:
    """PID-18 patient account number -> Account (IG PID[Account])."""
    raw = pid.first(18)
    ident = dt.cx(ctx, raw) if raw else None
    if ident is None or ctx.patient is None:
        return None
    res = {"resourceType": "Account", "identifier": [ident], "status": "active",
           "subject": [{"reference": ctx.patient}]}
    return ctx.builder.add(res, f"{ident.get('system', ctx.patient)}|{ident['value']}", identifier=ident)


def map_charge_item(ctx: MapContext, ft1: Segment, account: str | None) -> str | None:
    enc = ctx.enc
    kind = ft1.text(6).upper()
    if kind == "PY":
        ctx.skip(ft1, 6, "payment transaction, not a charge")
        return None
    if ctx.patient is None:
        return None
    res: dict[str, Any] = {"resourceType": "ChargeItem", "status": "billable"}
    txn_id = ft1.text(2)
    msh_fac = ctx.msg.msh.comps(4)
    system = dt.hd_system(ctx, dt.leaf(enc, msh_fac, 1), dt.leaf(enc, msh_fac, 2), dt.leaf(enc, msh_fac, 3))
    identifier = None
    if txn_id:
        identifier = {"type": {"coding": [{"system": dt.V2 + "0203", "code": "FILL"}]},
                      **({"system": system} if system else {}), "value": txn_id}
        res["identifier"] = [identifier]
    if kind:
        res["extension"] = [{"url": TRANSACTION_TYPE_EXT, "valueCoding": {"system": dt.V2 + "0017", "code": kind}}]
    code = dt.cwe(ctx, ft1.first(7)) if ft1.first(7) else None
    if code is None:
        description = ft1.text(8)
        code = {"text": description} if description else {"text": "no transaction code (FT1-7 empty)"}
    res["code"] = code
    res["subject"] = {"reference": ctx.patient}
    if ctx.encounter:
        res["context"] = {"reference": ctx.encounter}
    occurred = dt.dtm(ctx, ft1.text(4, 1))
    if occurred:
        res["occurrenceDateTime"] = occurred
    entered = dt.ts_field(ctx, ft1.first(5))
    if entered and "T" in entered:
        res["enteredDate"] = entered
    sign = -1 if kind == "CD" else 1
    quantity = dt.number(ft1.text(10))
    if quantity is not None:
        value = quantity if sign == 1 or quantity < 0 else -quantity
        res["quantity"] = {"value": value}
    price = dt.number(ft1.text(11, 1, 1))
    if price is not None:
        money: dict[str, Any] = {"value": price if sign == 1 or price < 0 else -price}
        currency = ft1.text(11, 1, 2)
        if len(currency) == 3 and currency.isalpha():
            money["currency"] = currency.upper()
        res["priceOverride"] = money
    cost_center = ft1.first(13)
    if cost_center:
        org = dt.organization(ctx, dt.leaf(enc, dt.comps(enc, cost_center), 2)
                              or dt.leaf(enc, dt.comps(enc, cost_center), 1))
        if org:
            res["costCenter"] = {"reference": org}
    reasons = [c for c in (dt.cwe(ctx, r) for r in ft1.reps(19)) if c]
    if reasons:
        res["reason"] = reasons
    performers = [p for p in (dt.practitioner(ctx, r) for r in ft1.reps(20)) if p]
    if performers:
        res["performer"] = [{"actor": {"reference": p}} for p in performers]
    enterer = dt.practitioner(ctx, ft1.first(24)) if ft1.first(24) else None
    if enterer:
        res["enterer"] = {"reference": enterer}
    if account:
        res["account"] = [{"reference": account}]
    key = f"{system or ''}|{txn_id}" if txn_id else ctx.key(ft1)
    return ctx.builder.add(res, key, identifier=identifier)
