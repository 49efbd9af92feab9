"""SCH + AIS/AIG/AIL/AIP -> Appointment (IG SCH[Appointment], AIS/AIL/AIP[Appointment])."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from simpul.mappings import datatypes as dt
from simpul.mappings import vocabulary as vocab
from simpul.mappings.context import MapContext
from simpul.mappings.segments.orders import notes
from simpul.mappings.segments.patient import unmapped_code
from simpul.v2 import Segment

EVENT_STATUS = {"S12": "booked", "S13": "booked", "S14": "booked", "S15": "cancelled", "S16": "cancelled",
                "S17": "entered-in-error", "S26": "noshow"}


def _minutes(value: str, units: str) -> int | None:
    n = dt.number(value)
    if n is None or n <= 0:
        return None
    u = units.upper()
    factor = {"S": 1 / 60, "SEC": 1 / 60, "H": 60, "HR": 60, "HOUR": 60, "D": 1440, "DAY": 1440}.get(u, 1)
    return max(1, int(round(n * factor)))


def map_appointment(ctx: MapContext, sch: Segment, resources: list[Segment], ntes: list[Segment]) -> str:
    enc = ctx.enc
    res: dict[str, Any] = {"resourceType": "Appointment"}
    identifiers = []
    for field, code in ((1, "PLAC"), (2, "FILL")):
        ident = dt.ei(ctx, sch.first(field), code) if sch.first(field) else None
        if ident:
            identifiers.append(ident)
    if identifiers:
        res["identifier"] = identifiers
    filler_status = sch.text(25)
    status = vocab.lookup("0278", filler_status, ctx.unmapped) if filler_status else None
    event_status = EVENT_STATUS.get(ctx.msg.trigger_event)
    if event_status in ("cancelled", "entered-in-error", "noshow"):
        status = event_status  # the trigger event is the act; SCH-25 may still say "Booked"
    res["status"] = status or event_status or "booked"
    if res["status"] == "cancelled" and sch.first(6):
        reason = dt.cwe(ctx, sch.first(6))
        if reason:
            res["cancelationReason"] = reason
    reason = dt.cwe(ctx, sch.first(7)) if sch.first(7) else None
    if reason:
        res["reasonCode"] = [reason]
    kind = dt.cwe(ctx, sch.first(8)) if sch.first(8) else None
    if kind:
        res["appointmentType"] = kind
    start = end = None
    tq = sch.comps(11)
    if len(tq) >= 4:
        start = dt.dtm(ctx, dt.leaf(enc, tq, 4))
        end = dt.dtm(ctx, dt.leaf(enc, tq, 5)) if len(tq) >= 5 else None
    minutes = _minutes(sch.text(9), sch.text(10, 1))
    participants: list[dict[str, Any]] = []
    if ctx.patient:
        participants.append({"actor": {"reference": ctx.patient}, "status": "accepted"})
    service_types = []
    for seg in resources:
        seg_start = dt.ts_field(ctx, seg.first(6 if seg.name in ("AIL", "AIP", "AIG") else 4))
        if seg_start and (start is None or len(seg_start) > len(start)):
            start = start or seg_start
        if seg.name == "AIS":
            cc = dt.cwe(ctx, seg.first(3)) if seg.first(3) else None
            if cc:
                service_types.append(cc)
            if minutes is None:
                minutes = _minutes(seg.text(7), seg.text(8, 1))
        elif seg.name == "AIP":
            who = dt.practitioner(ctx, seg.first(3)) if seg.first(3) else None
            if who:
                part: dict[str, Any] = {"actor": {"reference": who}, "status": "accepted"}
                role = dt.cwe(ctx, seg.first(4)) if seg.first(4) else None
                if role:
                    part["type"] = [role]
                participants.append(part)
        elif seg.name == "AIL":
            where = dt.location(ctx, seg.first(3)) if seg.first(3) else None
            if where:
                participants.append({"actor": {"reference": where}, "status": "accepted"})
    if service_types:
        res["serviceType"] = service_types
    if start and "T" in start:
        if not (end and "T" in end) and minutes:
            try:
                end = (datetime.fromisoformat(start) + timedelta(minutes=minutes)).isoformat()
            except ValueError:
                end = None
        if end and "T" in end:
            res["start"], res["end"] = start, end
    if "start" not in res:
        # app-2/app-3: start and end come together, and only proposed, cancelled or waitlisted
        # appointments may lack them. Without a full time (no offset known, or no end) the slot is
        # kept as requestedPeriod (dates allowed) and the appointment is proposed, not booked:
        # a server rejects a booked appointment without times, and a guess would be wrong.
        if start or end:
            res["requestedPeriod"] = [dt._period(start, end)]
        if res["status"] not in ("proposed", "cancelled", "waitlist"):
            if filler_status:
                res["_status"] = unmapped_code("0278", filler_status)
            res["status"] = "proposed"
            ctx.counts["appointment_without_time"] += 1
    if minutes:
        res["minutesDuration"] = minutes
    if sch.text(5):
        res["description"] = sch.text(5)
    comments = notes(ctx, ntes)
    if comments:
        res["comment"] = "\n".join(c["text"] for c in comments)
    if not participants:
        participants.append({"actor": {"display": "unknown"}, "status": "needs-action"})
    res["participant"] = participants
    match = next((i for i in identifiers if i.get("system")), None)
    key = f"{identifiers[0].get('system', '')}|{identifiers[0]['value']}" if identifiers else ctx.key(sch)
    return ctx.builder.add(res, key, identifier=match)
