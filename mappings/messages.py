"""Message maps: which segment maps run for which message type, and how segments group (§1.3 of
specs/v2-to-fhir.md). ADT events without a map of their own use the structure the IG names
(A04/A08/A13 -> ADT_A01, A28/A31 -> ADT_A05, A40 -> ADT_A39)."""
from __future__ import annotations

from typing import Any, Callable

from simpul.errors import MappingError
from simpul.mappings import datatypes as dt
from simpul.mappings import vocabulary as vocab
from simpul.mappings.context import MapContext
from simpul.mappings.segments import clinical, documents, financial, orders, results, scheduling
from simpul.mappings.segments.encounter import map_encounter
from simpul.mappings.segments.patient import business_identifier, map_patient
from simpul.mappings.v2 import Segment

MessageMap = Callable[[MapContext], None]


def _has_content(seg: Segment) -> bool:
    return any(f and f != '""' for f in seg.fields[2:])


def _patient_and_visit(ctx: MapContext, *, event_status: str | None = None, required: bool = False) -> None:
    msg = ctx.msg
    pid = msg.one("PID")
    if pid is None:
        if required:
            raise MappingError("PID segment missing", segment="PID")
        return
    ctx.patient = map_patient(ctx, pid, msg.one("PD1"))
    pv1 = msg.one("PV1")
    if pv1 is not None and _has_content(pv1):
        map_encounter(ctx, pv1, msg.one("PV2"), event_status=event_status)


def map_adt(ctx: MapContext) -> None:
    msg = ctx.msg
    status = vocab.table("0003-encounter-status").entries.get(msg.trigger_event)
    _patient_and_visit(ctx, event_status=status, required=True)
    for nk1 in msg.all("NK1"):
        clinical.map_related_person(ctx, nk1)
    for al1 in msg.all("AL1"):
        clinical.map_allergy(ctx, al1)
    for dg1 in msg.all("DG1"):
        clinical.map_condition(ctx, dg1)
    for pr1 in msg.all("PR1"):
        clinical.map_procedure(ctx, pr1)
    in2s = msg.all("IN2")
    for i, in1 in enumerate(msg.all("IN1")):
        clinical.map_coverage(ctx, in1, in2s[i] if i < len(in2s) else None)
    for gt1 in msg.all("GT1"):
        clinical.map_guarantor(ctx, gt1)


def map_merge(ctx: MapContext) -> None:
    """ADT^A40 (ADT_A39): each PID/MRG pair -> the surviving Patient (link `replaces`) and the merged-away
    Patient (active=false, link `replaced-by`), as FHIR core practice and LinuxForHealth do."""
    segs = ctx.msg.segments
    pairs: list[tuple[Segment, Segment | None]] = []
    for i, seg in enumerate(segs):
        if seg.name == "PID":
            mrg = next((s for s in segs[i + 1:] if s.name in ("MRG", "PID")), None)
            pairs.append((seg, mrg if mrg is not None and mrg.name == "MRG" else None))
    if not pairs:
        raise MappingError("PID segment missing", segment="PID")
    for pid, mrg in pairs:
        survivor = map_patient(ctx, pid, None, active=True)
        ctx.patient = ctx.patient or survivor
        if mrg is None:
            raise MappingError("MRG segment missing after PID", segment="MRG")
        old_ids = [i for i in (dt.cx(ctx, r) for r in mrg.reps(1) + mrg.reps(4)) if i]
        if not old_ids:
            raise MappingError("no prior patient identifier (MRG-1 empty)", segment="MRG", field=1)
        old: dict[str, Any] = {"resourceType": "Patient", "identifier": old_ids, "active": False,
                               "link": [{"other": {"reference": survivor}, "type": "replaced-by"}]}
        names = [n for n in (dt.xpn(ctx, r) for r in mrg.reps(7)) if n]
        if names:
            old["name"] = names
        match = business_identifier(old_ids)
        key = f"{match['system']}|{match['value']}" if match else f"{old_ids[0]['value']}|merged|{ctx.control_id}"
        merged = ctx.builder.add(old, key, identifier=match)
        surviving = ctx.builder.get(survivor)
        if surviving is not None:
            surviving.setdefault("link", []).append({"other": {"reference": merged}, "type": "replaces"})


def _walk_orders(ctx: MapContext) -> None:
    """ORM^O01 / OML^O21: each ORC (+OBR) -> ServiceRequest; DG1 -> reasonReference, OBX -> supportingInfo,
    NTE -> note, SPM -> specimen."""
    groups: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    last_obx: list[Any] | None = None
    for seg in ctx.msg.segments:
        name = seg.name
        if name == "ORC":
            current = {"orc": seg, "obr": None, "ntes": [], "obx": [], "dg1": [], "spm": []}
            groups.append(current)
            last_obx = None
        elif name in ("OBR", "RXO", "ODS") and name == "OBR":
            if current is None or current["obr"] is not None:
                current = {"orc": current["orc"] if current else None, "obr": seg, "ntes": [], "obx": [],
                           "dg1": [], "spm": []}
                groups.append(current)
            else:
                current["obr"] = seg
            last_obx = None
        elif current is None:
            continue
        elif name == "NTE":
            (last_obx[1] if last_obx is not None else current["ntes"]).append(seg)
        elif name == "OBX":
            last_obx = [seg, []]
            current["obx"].append(last_obx)
        elif name == "DG1":
            current["dg1"].append(seg)
        elif name == "SPM":
            current["spm"].append(seg)
    for g in groups:
        reasons = [r for r in (clinical.map_condition(ctx, d) for d in g["dg1"]) if r]
        specimens = [s for s in (orders.map_specimen(ctx, s) for s in g["spm"]) if s]
        request, key = orders.map_service_request(ctx, g["orc"], g["obr"], ntes=g["ntes"], reasons=reasons,
                                                  specimens=specimens)
        supporting = []
        for obx, ntes in g["obx"]:
            ref = results.map_observation(ctx, obx, ntes=ntes, order_key=key, obr=g["obr"], based_on=None,
                                          specimen=specimens[0] if specimens else None)
            if ref:
                supporting.append({"reference": ref})
        sr = ctx.builder.get(request)
        if supporting and sr is not None:
            sr["supportingInfo"] = supporting


def map_order(ctx: MapContext) -> None:
    _patient_and_visit(ctx)
    in2s = ctx.msg.all("IN2")
    for i, in1 in enumerate(ctx.msg.all("IN1")):
        clinical.map_coverage(ctx, in1, in2s[i] if i < len(in2s) else None)
    _walk_orders(ctx)


def map_result(ctx: MapContext) -> None:
    """ORU^R01: one DiagnosticReport per OBR, one Observation per OBX; radiology narrative and Study UIDs
    go to the report and an ImagingStudy."""
    _patient_and_visit(ctx)
    groups: list[dict[str, Any]] = []
    pending_orc: Segment | None = None
    current: dict[str, Any] | None = None
    last_obx: list[Any] | None = None
    zds_uids: list[str] = []
    for seg in ctx.msg.segments:
        name = seg.name
        if name == "ORC":
            pending_orc = seg
        elif name == "OBR":
            current = {"orc": pending_orc, "obr": seg, "ntes": [], "obx": [], "spm": []}
            pending_orc = None
            groups.append(current)
            last_obx = None
        elif current is None:
            continue
        elif name == "NTE":
            (last_obx[1] if last_obx is not None else current["ntes"]).append(seg)
        elif name == "OBX":
            last_obx = [seg, []]
            current["obx"].append(last_obx)
        elif name == "SPM":
            current["spm"].append(seg)
        elif name == "ZDS":
            uid = seg.text(1)
            if uid:
                zds_uids.append(uid)
    for g in groups:
        obr, orc = g["obr"], g["orc"]
        specimens = [s for s in (orders.map_specimen(ctx, s) for s in g["spm"]) if s]
        request, key = orders.map_service_request(ctx, orc, obr, ntes=[], specimens=specimens)
        uids = [u for u in (results.study_uid(ctx, obx) for obx, _ in g["obx"]) if u]
        if g is groups[0]:
            uids += zds_uids
        imaging_report = bool(uids) or obr.text(24).upper() in results.IMAGING_SECTIONS
        observations, narrative, attachments = [], [], []
        for obx, ntes in g["obx"]:
            vtype = obx.text(2).upper()
            if results.study_uid(ctx, obx):
                continue
            if vtype == "ED":
                att = results.ed_attachment(ctx, obx.first(5))
                if att:
                    attachments.append(att)
                else:
                    ctx.skip(obx, 5, "ED value unreadable")
                continue
            if imaging_report and vtype in results.NARRATIVE_TYPES:
                narrative.extend(ctx.enc.decode(r) for r in obx.reps(5))
                continue
            ref = results.map_observation(ctx, obx, ntes=ntes, order_key=key, obr=obr, based_on=request,
                                          specimen=specimens[0] if specimens else None)
            if ref:
                observations.append(ref)
        imaging = [r for r in (results.map_imaging_study(ctx, u, based_on=request, obr=obr)
                               for u in dict.fromkeys(uids)) if r]
        report = results.map_diagnostic_report(ctx, obr, orc, results=observations, narrative=narrative,
                                               attachments=attachments, imaging=imaging, based_on=request,
                                               order_key=key, specimens=specimens)
        if g["ntes"]:
            dr = ctx.builder.get(report)
            if dr is not None:
                text = "\n".join(n["text"] for n in orders.notes(ctx, g["ntes"]))
                if text:
                    dr["conclusion"] = (dr["conclusion"] + "\n" + text) if "conclusion" in dr else text


def map_financial(ctx: MapContext) -> None:
    """DFT^P03: FT1 -> ChargeItem (our map), DG1 -> Condition, PID-18 -> Account."""
    _patient_and_visit(ctx)
    pid = ctx.msg.one("PID")
    account = financial.map_account(ctx, pid) if pid is not None else None
    for dg1 in ctx.msg.all("DG1"):
        clinical.map_condition(ctx, dg1)
    ft1s = ctx.msg.all("FT1")
    if not ft1s:
        raise MappingError("no FT1 segment", segment="FT1")
    for ft1 in ft1s:
        financial.map_charge_item(ctx, ft1, account)


def map_schedule(ctx: MapContext) -> None:
    """SIU^S12..S15: SCH + resource groups -> Appointment."""
    _patient_and_visit(ctx, required=False)
    sch = ctx.msg.one("SCH")
    resources = [s for s in ctx.msg.segments if s.name in ("AIS", "AIG", "AIL", "AIP")]
    if sch is None:
        if not resources:
            raise MappingError("SCH segment missing", segment="SCH")
        sch = Segment("SCH", ["SCH"], ctx.enc, len(ctx.msg.segments))  # lenient: AIS/AIL/AIP still say what was booked
    ntes = []
    for seg in ctx.msg.segments:
        if seg.name == "NTE":
            ntes.append(seg)
        elif seg.name == "PID":
            break
    scheduling.map_appointment(ctx, sch, resources, ntes)


def map_document(ctx: MapContext) -> None:
    """MDM^T02: TXA + OBX -> DocumentReference."""
    _patient_and_visit(ctx)
    txa = ctx.msg.one("TXA")
    if txa is None:
        raise MappingError("TXA segment missing", segment="TXA")
    documents.map_document(ctx, txa, ctx.msg.all("OBX"))


MESSAGE_MAPS: dict[str, MessageMap] = {
    "ADT^A40": map_merge,
    "ORM^O01": map_order,
    "OML^O21": map_order,
    "ORU^R01": map_result,
    "DFT^P03": map_financial,
    "SIU^S12": map_schedule,
    "SIU^S13": map_schedule,
    "SIU^S14": map_schedule,
    "SIU^S15": map_schedule,
    "MDM^T02": map_document,
}
for _event in ("A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A11", "A12", "A13", "A28", "A31"):
    MESSAGE_MAPS[f"ADT^{_event}"] = map_adt


def message_map(code: str, event: str) -> MessageMap | None:
    return MESSAGE_MAPS.get(f"{code}^{event}")
