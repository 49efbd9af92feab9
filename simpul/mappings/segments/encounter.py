"""PV1 (+ PV2) -> Encounter (IG PV1[Encounter], PV2[Encounter]); event code decides the status for ADT."""
from __future__ import annotations

from typing import Any

from simpul.mappings import datatypes as dt
from simpul.mappings import vocabulary as vocab
from simpul.mappings.context import MapContext
from simpul.v2 import Segment

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

# PV1 field -> participant type (v3-ParticipationType), IG PV1[Encounter]
_PARTICIPANTS = ((7, "ATND", "attender"), (8, "REF", "referrer"), (9, "CON", "consultant"),
                 (17, "ADM", "admitter"), (52, "PART", "Participation"))


def map_encounter(ctx: MapContext, pv1: Segment, pv2: Segment | None = None, *,
                  event_status: str | None = None) -> str | None:
    """Map PV1/PV2. `event_status` (from the ADT trigger, table 0003) wins over PV1-2 unless PV1-45 is valued."""
    enc = ctx.enc
    res: dict[str, Any] = {"resourceType": "Encounter"}
    identifiers: list[dict[str, Any]] = []
    visit = pv1.first(19)
    if visit:
        ident = dt.cx(ctx, visit, default_type="VN")
        if ident:
            identifiers.append(ident)
    alt = pv1.first(50)
    if alt:
        ident = dt.cx(ctx, alt)
        if ident:
            identifiers.append(ident)
    if identifiers:
        res["identifier"] = identifiers
    patient_class = pv1.text(2).upper()
    discharged = dt.dtm(ctx, pv1.text(45))
    if discharged:
        status = "finished"
    elif event_status:
        status = event_status
    elif patient_class:
        status = vocab.lookup("0004-status", patient_class, ctx.unmapped) or "unknown"
    else:
        status = "unknown"
    res["status"] = status
    if patient_class:
        mapped = vocab.lookup("0004", patient_class, ctx.unmapped)
        res["class"] = ({"system": ACT_CODE, "code": mapped} if mapped
                        else vocab.original_coding("0004", patient_class))
    else:
        # class is 1..1 in R4: the IG gives no default, v3 NullFlavor UNK says "not sent"
        res["class"] = {"system": "http://terminology.hl7.org/CodeSystem/v3-NullFlavor", "code": "UNK"}
    admission_type = pv1.text(4)
    if admission_type:
        res["type"] = [dt.coded(ctx, "0007", admission_type)]
    service = pv1.first(10)
    if service:
        cc = dt.cwe(ctx, service)
        if cc:
            res["serviceType"] = cc
    if ctx.patient:
        res["subject"] = {"reference": ctx.patient}
    participants = []
    for field, code, display in _PARTICIPANTS:
        for raw in pv1.reps(field):
            who = dt.practitioner(ctx, raw)
            if who:
                participants.append({"type": [{"coding": [{"system": PARTICIPATION, "code": code,
                                                           "display": display}]}],
                                     "individual": {"reference": who}})
    if pv2 is not None:
        for raw in pv2.reps(13):
            who = dt.practitioner(ctx, raw)
            if who:
                participants.append({"type": [{"coding": [{"system": PARTICIPATION, "code": "REF",
                                                           "display": "referrer"}]}],
                                     "individual": {"reference": who}})
    if participants:
        res["participant"] = participants
    start = dt.dtm(ctx, pv1.text(44))
    if start or discharged:
        res["period"] = dt._period(start, discharged)
    if pv2 is not None:
        reason = pv2.first(3)
        if reason:
            cc = dt.cwe(ctx, reason)
            if cc:
                res["reasonCode"] = [cc]
        priority = pv2.first(25)
        if priority:
            code = dt.leaf(enc, dt.comps(enc, priority), 1)
            if code:
                res["priority"] = {"coding": [{"system": dt.V2 + "0217", "code": code}]}
    hospitalization: dict[str, Any] = {}
    pre_admit = pv1.first(5)
    if pre_admit:
        ident = dt.cx(ctx, pre_admit)
        if ident:
            hospitalization["preAdmissionIdentifier"] = ident
    for field, key, table in ((14, "admitSource", "0023"), (13, "reAdmission", "0092"),
                              (36, "dischargeDisposition", "0112")):
        code = pv1.text(field)
        if code:
            hospitalization[key] = {"coding": [{"system": dt.V2 + table, "code": code}]}
    for field, key, table in ((15, "specialArrangement", "0009"), (16, "specialCourtesy", "0045"),
                              (38, "dietPreference", "0114")):
        codes = [dt.leaf(enc, dt.comps(enc, r), 1) for r in pv1.reps(field)]
        codes = [c for c in codes if c]
        if codes:
            hospitalization[key] = [{"coding": [{"system": dt.V2 + table, "code": c}]} for c in codes]
    if hospitalization:
        res["hospitalization"] = hospitalization
    locations = []
    for field, loc_status in ((3, "planned" if patient_class == "P" else "active"), (6, "completed"),
                              (11, "active"), (42, "reserved")):
        raw = pv1.first(field)
        if raw:
            loc = dt.location(ctx, raw)
            if loc:
                locations.append({"location": {"reference": loc}, "status": loc_status})
    if locations:
        res["location"] = locations
    match = next((i for i in identifiers if i.get("system")), None)
    if match:
        key = f"{match['system']}|{match['value']}"
    elif identifiers:
        key = f"{ctx.patient}|{identifiers[0]['value']}"
    else:
        key = ctx.key(pv1)
    ref = ctx.builder.add(res, key, identifier=match)
    ctx.encounter = ref
    return ref
