"""What an ADT trigger event says about the Encounter beyond PV1 (v2.5.1 chapter 3 event definitions;
IG message maps ADT_A02, ADT_A03 structure, ADT_A06, ADT_A11).

`map_encounter` maps PV1/PV2 the same way for every event; `apply_adt_event` then adjusts the
Encounter for the trigger:

- A02 transfer: PV1-3 (new location) `active` from the event time; PV1-6 (prior location) kept as
  `completed` history ending at the event time.
- A03 discharge: status `finished`, period.end = PV1-45 (else the event time); PV1-3 `completed`.
- A06 outpatient -> inpatient, A07 inpatient -> outpatient: the class before the change in
  `classHistory` (AMB for A06, IMP for A07) ending at the event time; MRG-5 (prior visit number)
  kept as an `old` identifier.
- A11 cancel admit: status `cancelled` (from table 0003).
- A12 cancel transfer: PV1-3 carries the location the patient returns to (`active`); PV1-6, the
  transfer being cancelled, is left out - the conditional update replaces Encounter.location, so the
  server's Encounter is back at the prior location.
- A13 cancel discharge: the Encounter re-opens: status `in-progress`, no period.end, no
  dischargeDisposition, PV1-3 `active`, even when the sender still repeats PV1-45.
- A08 update: the Encounter is replaced by what PV1 says now; its status comes from PV1-45/PV1-2
  (not the IG's A08 -> `unknown`, which would overwrite a known status on every update).

The event time is EVN-6 (event occurred), else EVN-2 (recorded), else MSH-7.
"""
from __future__ import annotations

from typing import Any, Callable

from simpul.mappings import datatypes as dt
from simpul.mappings.context import MapContext
from simpul.v2 import Segment

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

EventRule = Callable[[MapContext, dict[str, Any], Segment, "str | None"], None]


def event_time(ctx: MapContext) -> str | None:
    """EVN-6 event occurred, else EVN-2 recorded date/time, else MSH-7 (FHIR dateTime or None)."""
    evn = ctx.msg.one("EVN")
    if evn is not None:
        when = dt.ts_field(ctx, evn.first(6)) or dt.ts_field(ctx, evn.first(2))
        if when:
            return when
    return dt.ts_field(ctx, ctx.msg.msh.first(7))


def _location_entry(ctx: MapContext, res: dict[str, Any], pv1: Segment, field: int) -> dict[str, Any] | None:
    """The Encounter.location entry built from PV1-<field> (the Location's fullUrl is deterministic)."""
    raw = pv1.first(field)
    ref = dt.location(ctx, raw) if raw else None
    if ref is None:
        return None
    return next((e for e in res.get("location", []) if e["location"]["reference"] == ref), None)


def _transfer(ctx: MapContext, res: dict[str, Any], pv1: Segment, when: str | None) -> None:
    new = _location_entry(ctx, res, pv1, 3)
    prior = _location_entry(ctx, res, pv1, 6)
    if new is not None:
        new["status"] = "active"
        if when:
            new["period"] = {"start": when}
    if prior is not None and prior is not new:
        prior["status"] = "completed"
        if when:
            prior["period"] = {"end": when}


def _discharge(ctx: MapContext, res: dict[str, Any], pv1: Segment, when: str | None) -> None:
    end = dt.dtm(ctx, pv1.text(45)) or when
    res["status"] = "finished"
    if end:
        res.setdefault("period", {})["end"] = end
    here = _location_entry(ctx, res, pv1, 3)
    if here is not None:
        here["status"] = "completed"
        if end:
            here["period"] = {"end": end}


def _class_change(prior_class: str) -> EventRule:
    def rule(ctx: MapContext, res: dict[str, Any], pv1: Segment, when: str | None) -> None:
        if when and res.get("class", {}).get("code") != prior_class:
            # classHistory.period is 1..1 in R4: without an event time there is no history entry
            res["classHistory"] = [{"class": {"system": ACT_CODE, "code": prior_class}, "period": {"end": when}}]
        mrg = ctx.msg.one("MRG")
        prior_visit = mrg.first(5) if mrg is not None else ""
        old = dt.cx(ctx, prior_visit, default_type="VN") if prior_visit else None
        if old is not None and old not in res.get("identifier", []):
            res.setdefault("identifier", []).append({**old, "use": "old"})
    return rule


def _cancel_transfer(ctx: MapContext, res: dict[str, Any], pv1: Segment, when: str | None) -> None:
    restored = _location_entry(ctx, res, pv1, 3)
    cancelled = _location_entry(ctx, res, pv1, 6)
    if cancelled is not None and cancelled is not restored:
        res["location"] = [e for e in res["location"] if e is not cancelled]
    if restored is not None:
        restored["status"] = "active"


def _cancel_discharge(ctx: MapContext, res: dict[str, Any], pv1: Segment, when: str | None) -> None:
    res["status"] = "in-progress"
    period = res.get("period")
    if period is not None:
        period.pop("end", None)
        if not period:
            del res["period"]
    hospitalization = res.get("hospitalization")
    if hospitalization is not None:
        hospitalization.pop("dischargeDisposition", None)
        if not hospitalization:
            del res["hospitalization"]
    here = _location_entry(ctx, res, pv1, 3)
    if here is not None:
        here["status"] = "active"


EVENT_RULES: dict[str, EventRule] = {
    "A02": _transfer,
    "A03": _discharge,
    "A06": _class_change("AMB"),
    "A07": _class_change("IMP"),
    "A12": _cancel_transfer,
    "A13": _cancel_discharge,
}


def apply_adt_event(ctx: MapContext, event: str, encounter: str | None, pv1: Segment | None) -> None:
    """Adjust the Encounter `map_encounter` built (fullUrl `encounter`) for the ADT trigger `event`."""
    rule = EVENT_RULES.get(event)
    if rule is None or encounter is None or pv1 is None:
        return
    res = ctx.builder.get(encounter)
    if res is not None:
        rule(ctx, res, pv1, event_time(ctx))
