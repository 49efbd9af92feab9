"""ORC + RXA + RXR -> Immunization (IG RXA[Immunization], RXR[Immunization], ORC[Immunization]).

| v2 | Immunization |
|---|---|
| ORC-2 / ORC-3 | identifier PLAC / FILL (ORC-3 is the match key) |
| ORC-12 ordering provider | performer, function OP |
| RXA-3 start of administration | occurrenceDateTime (required; missing -> MappingError) |
| RXA-5 administered code (CVX, NDC) | vaccineCode |
| RXA-6 amount (999 = unknown), RXA-7 units | doseQuantity |
| RXA-9 administration notes (NIP001: 00 new, 01 historical) | primarySource (+ reportOrigin) |
| RXA-10 administering provider | performer, function AP |
| RXA-11 administered-at location | location |
| RXA-15 lot number, RXA-16 expiration date | lotNumber, expirationDate |
| RXA-17 manufacturer (MVX) | manufacturer (Organization) |
| RXA-18 refusal reason | statusReason |
| RXA-20 completion status (0322) | status: CP/PA completed (PA also isSubpotent), RE/NA not-done |
| RXA-21 action code D | status entered-in-error |
| RXR-1 route, RXR-2 site | route, site |
"""
from __future__ import annotations

from typing import Any

from simpul.errors import MappingError
from simpul.mappings import datatypes as dt
from simpul.mappings.context import MapContext
from simpul.mappings.segments.orders import order_identifiers, order_key
from simpul.v2 import Segment

PERFORMER_FUNCTION = "http://terminology.hl7.org/CodeSystem/v2-0443"
MVX = "http://hl7.org/fhir/sid/mvx"
# table 0322 completion status -> Immunization.status
COMPLETION_STATUS = {"CP": "completed", "PA": "completed", "RE": "not-done", "NA": "not-done"}


def _performer(ctx: MapContext, raw: str, function: str) -> dict[str, Any] | None:
    who = dt.practitioner(ctx, raw) if raw else None
    if who is None:
        return None
    return {"function": {"coding": [{"system": PERFORMER_FUNCTION, "code": function}]},
            "actor": {"reference": who}}


def map_immunization(ctx: MapContext, orc: Segment | None, rxa: Segment, rxr: Segment | None) -> str | None:
    if ctx.patient is None:
        return None
    res: dict[str, Any] = {"resourceType": "Immunization"}
    identifiers = order_identifiers(ctx, orc, None)
    if identifiers:
        res["identifier"] = identifiers
    completion = rxa.text(20).upper()
    status = COMPLETION_STATUS.get(completion, "completed")
    if rxa.text(21).upper() == "D":
        status = "entered-in-error"
    res["status"] = status
    refusal = dt.cwe(ctx, rxa.first(18)) if rxa.first(18) else None
    if refusal:
        res["statusReason"] = refusal
    vaccine = dt.cwe(ctx, rxa.first(5)) if rxa.first(5) else None
    if vaccine is None:
        raise MappingError("administered code missing", segment="RXA", field=5)
    res["vaccineCode"] = vaccine
    res["patient"] = {"reference": ctx.patient}
    if ctx.encounter:
        res["encounter"] = {"reference": ctx.encounter}
    occurred = dt.ts_field(ctx, rxa.first(3))
    if not occurred:
        raise MappingError("date/time start of administration missing or unreadable", segment="RXA", field=3)
    res["occurrenceDateTime"] = occurred
    notes = [dt.leaf(ctx.enc, dt.comps(ctx.enc, r), 1) for r in rxa.reps(9)]
    if "00" in notes:
        res["primarySource"] = True
    elif "01" in notes:
        res["primarySource"] = False
        res["reportOrigin"] = dt.cwe(ctx, rxa.reps(9)[notes.index("01")]) or {"text": "historical"}
    where = dt.location(ctx, rxa.first(11)) if rxa.first(11) else None
    if where:
        res["location"] = {"reference": where}
    manufacturer_raw = rxa.first(17)
    if manufacturer_raw:
        p = dt.comps(ctx.enc, manufacturer_raw)
        code, name = dt.leaf(ctx.enc, p, 1), dt.leaf(ctx.enc, p, 2)
        system = MVX if dt.leaf(ctx.enc, p, 3).upper() == "MVX" else None
        org = dt.organization(ctx, name, code, system)
        if org:
            res["manufacturer"] = {"reference": org}
    lot = rxa.text(15)
    if lot:
        res["lotNumber"] = lot
    expires = dt.date_only(rxa.text(16))
    if expires:
        res["expirationDate"] = expires
    if rxr is not None:
        route = dt.cwe(ctx, rxr.first(1)) if rxr.first(1) else None
        if route:
            res["route"] = route
        site = dt.cwe(ctx, rxr.first(2)) if rxr.first(2) else None
        if site:
            res["site"] = site
    amount = dt.number(rxa.text(6))
    if amount is not None and amount != 999:  # 999: amount unknown (CDC IIS guide)
        dose: dict[str, Any] = {"value": amount}
        dose.update(dt.units(ctx, rxa.first(7)))
        res["doseQuantity"] = dose
    if completion == "PA":
        res["isSubpotent"] = True
    performers = [p for p in (_performer(ctx, r, "AP") for r in rxa.reps(10)) if p]
    if orc is not None:
        performers += [p for p in (_performer(ctx, r, "OP") for r in orc.reps(12)) if p]
    if performers:
        res["performer"] = performers
    match = next((i for i in reversed(identifiers) if i.get("system")), None)  # ORC-3 filler first
    key = f"{match['system']}|{match['value']}" if match else order_key(ctx, identifiers, rxa)
    return ctx.builder.add(res, "immunization|" + key, identifier=match)
