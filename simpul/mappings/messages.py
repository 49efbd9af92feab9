"""Message maps: which segment maps run for which message type, and how segments group (§1.3 of
specs/v2-to-fhir.md). ADT events without a map of their own use the structure the IG names
(A04/A08/A13 -> ADT_A01, A28/A31 -> ADT_A05, A40 -> ADT_A39)."""
from __future__ import annotations

from typing import Any, Callable

from simpul.errors import MappingError
from simpul.mappings import datatypes as dt
from simpul.mappings import vocabulary as vocab
from simpul.mappings.context import MapContext
from simpul.mappings.segments import clinical, documents, financial, imaging, immunization, orders, results, scheduling
from simpul.mappings.segments.encounter import map_encounter
from simpul.mappings.segments.encounter_events import apply_adt_event
from simpul.mappings.segments.patient import business_identifier, map_patient
from simpul.mappings.segments.patient_admin import (
    map_account_merge,
    map_identifier_change,
    map_patient_delete,
    pid_mrg_pairs,
)
from simpul.v2 import Segment

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


def _map_history(ctx: MapContext) -> None:
    """NK1 -> RelatedPerson, AL1 -> AllergyIntolerance, DG1 -> Condition, PR1 -> Procedure, in that order."""
    msg = ctx.msg
    for nk1 in msg.all("NK1"):
        clinical.map_related_person(ctx, nk1)
    for al1 in msg.all("AL1"):
        clinical.map_allergy(ctx, al1)
    for dg1 in msg.all("DG1"):
        clinical.map_condition(ctx, dg1)
    for pr1 in msg.all("PR1"):
        clinical.map_procedure(ctx, pr1)


def _map_patient_observations(ctx: MapContext) -> None:
    """OBX in ADT/BAR (height, weight, chief complaint; the NTEs after each) -> Observations of the
    Patient and the Encounter (IG OBX[Observation])."""
    pairs: list[list[Any]] = []
    for seg in ctx.msg.segments:
        if seg.name == "OBX":
            pairs.append([seg, []])
        elif seg.name == "NTE" and pairs and pairs[-1][0].index + 1 + len(pairs[-1][1]) == seg.index:
            pairs[-1][1].append(seg)  # only NTEs right after the OBX are its notes
    for obx, ntes in pairs:
        results.map_observation(ctx, obx, ntes=ntes, order_key=f"{ctx.control_id}|ADT", obr=None,
                                based_on=None, specimen=None)


def _map_coverages(ctx: MapContext) -> list[str]:
    """Each IN1 (with the IN2 at the same position, if any) -> Coverage; returns their references."""
    in2s = ctx.msg.all("IN2")
    return [c for c in (clinical.map_coverage(ctx, in1, in2s[i] if i < len(in2s) else None)
                        for i, in1 in enumerate(ctx.msg.all("IN1"))) if c]


def _map_guarantors(ctx: MapContext) -> list[str]:
    """Each GT1 -> the guarantor's resource; returns their references."""
    return [g for g in (clinical.map_guarantor(ctx, gt1) for gt1 in ctx.msg.all("GT1")) if g]


def map_adt(ctx: MapContext) -> None:
    """ADT patient/visit events; the trigger's own Encounter rules are in segments/encounter_events.py."""
    msg = ctx.msg
    event = msg.trigger_event
    status = vocab.table("0003-encounter-status").entries.get(event)
    pv1 = msg.one("PV1")
    if event == "A08" and pv1 is not None and pv1.text(2):
        # An update replaces the Encounter: take the status PV1 implies rather than the IG's
        # A08 -> unknown, which would overwrite a known status on every A08.
        status = None
    _patient_and_visit(ctx, event_status=status, required=True)
    apply_adt_event(ctx, event, ctx.encounter, pv1)
    _map_patient_observations(ctx)
    _map_history(ctx)
    _map_coverages(ctx)
    _map_guarantors(ctx)


def map_merge(ctx: MapContext) -> None:
    """ADT^A40 (ADT_A39): each PID/MRG pair -> the surviving Patient (link `replaces`) and the merged-away
    Patient (active=false, link `replaced-by`), as FHIR core practice and LinuxForHealth do."""
    for pid, mrg in pid_mrg_pairs(ctx):
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
        match = business_identifier(ctx, old_ids)
        key = f"{match['system']}|{match['value']}" if match else f"{old_ids[0]['value']}|merged|{ctx.control_id}"
        merged = ctx.builder.add(old, key, identifier=match)
        surviving = ctx.builder.get(survivor)
        if surviving is not None:
            surviving.setdefault("link", []).append({"other": {"reference": merged}, "type": "replaces"})


def _order_group(orc: Segment | None, obr: Segment | None) -> dict[str, Any]:
    """One order group (ORM/OML/OMI, ORU): its ORC and OBR, and the segments filed under it."""
    return {"orc": orc, "obr": obr, "ntes": [], "obx": [], "dg1": [], "spm": [], "ipc": [], "tq1": []}


def _file_in_group(group: dict[str, Any], seg: Segment, last_obx: list[Any] | None) -> list[Any] | None:
    """File one segment of an order group: an NTE goes with the OBX before it, else with the group; an
    OBX opens an [obx, ntes] pair; DG1, SPM and IPC go to their lists; anything else is passed over.
    Returns the OBX pair the next NTE joins."""
    name = seg.name
    if name == "NTE":
        (last_obx[1] if last_obx is not None else group["ntes"]).append(seg)
    elif name == "OBX":
        last_obx = [seg, []]
        group["obx"].append(last_obx)
    elif name in ("DG1", "SPM", "IPC", "TQ1"):
        group[name.lower()].append(seg)
    return last_obx


def _walk_orders(ctx: MapContext) -> list[dict[str, Any]]:
    """ORM^O01 / OML^O21: each ORC (+OBR) -> ServiceRequest; DG1 -> reasonReference, OBX -> supportingInfo,
    NTE -> note, SPM -> specimen."""
    groups: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    last_obx: list[Any] | None = None
    for seg in ctx.msg.segments:
        name = seg.name
        if name == "ORC":
            current = _order_group(seg, None)
            groups.append(current)
            last_obx = None
        elif name in ("OBR", "RXO", "ODS") and name == "OBR":
            if current is None or current["obr"] is not None:
                current = _order_group(current["orc"] if current else None, seg)
                groups.append(current)
            else:
                current["obr"] = seg
            last_obx = None
        elif current is not None:
            last_obx = _file_in_group(current, seg, last_obx)
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
        orders.apply_timing(ctx, sr, g["tq1"])
        if supporting and sr is not None:
            sr["supportingInfo"] = supporting
        g["request"] = request
    return groups


def map_order(ctx: MapContext) -> None:
    _patient_and_visit(ctx)
    _map_coverages(ctx)
    _walk_orders(ctx)


def map_imaging_order(ctx: MapContext) -> None:
    """OMI^O23: ORC/OBR -> ServiceRequest as for ORM/OML; each IPC -> ImagingStudy (basedOn the request)
    and its accession number also on the ServiceRequest (segments/imaging.py)."""
    _patient_and_visit(ctx)
    for g in _walk_orders(ctx):
        sr = ctx.builder.get(g["request"])
        for ipc in g["ipc"]:
            accession = imaging.accession_identifier(ctx, ipc)
            if accession and sr is not None and accession not in sr.setdefault("identifier", []):
                sr["identifier"].append(accession)
            imaging.map_ipc(ctx, ipc, based_on=g["request"])


def map_vaccination(ctx: MapContext) -> None:
    """VXU^V04: each ORC/RXA/RXR -> Immunization; OBX after an RXA -> Observation (partOf the
    Immunization); OBX before the first ORC -> patient-level Observation. NK1, IN1, GT1 as in ADT."""
    _patient_and_visit(ctx, required=True)
    msg = ctx.msg
    for nk1 in msg.all("NK1"):
        clinical.map_related_person(ctx, nk1)
    _map_coverages(ctx)
    _map_guarantors(ctx)
    orc: Segment | None = None
    rxa: Segment | None = None
    rxr: Segment | None = None
    observations: list[list[Any]] = []   # [obx, ntes, rxa it belongs to (None: patient level)]
    administrations: list[tuple[Segment | None, Segment, Segment | None]] = []
    for seg in msg.segments:
        name = seg.name
        if name == "ORC":
            orc, rxa, rxr = seg, None, None
        elif name == "RXA":
            rxa, rxr = seg, None
            administrations.append((orc, rxa, None))
        elif name == "RXR" and rxa is not None and rxr is None:
            rxr = seg
            administrations[-1] = (orc, rxa, rxr)
        elif name == "OBX":
            observations.append([seg, [], rxa])
        elif name == "NTE" and observations and observations[-1][2] is rxa:
            observations[-1][1].append(seg)
    if not administrations:
        raise MappingError("no RXA segment", segment="RXA")
    by_rxa: dict[int, tuple[str | None, str]] = {}
    for order, administration, route in administrations:
        ref = immunization.map_immunization(ctx, order, administration, route)
        identifiers = orders.order_identifiers(ctx, order, None)
        by_rxa[administration.index] = (ref, orders.order_key(ctx, identifiers, administration))
    for obx, ntes, parent in observations:
        ref, key = by_rxa.get(parent.index, (None, ctx.key(obx))) if parent is not None else (None, ctx.key(obx))
        obs_ref = results.map_observation(ctx, obx, ntes=ntes, order_key=key, obr=None, based_on=None,
                                          specimen=None)
        obs = ctx.builder.get(obs_ref) if obs_ref else None
        if obs is not None and ref is not None:
            obs["partOf"] = [{"reference": ref}]


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
            current = _order_group(pending_orc, seg)
            pending_orc = None
            groups.append(current)
            last_obx = None
        elif current is None:
            continue
        elif name == "ZDS":
            uid = seg.text(1)
            if uid:
                zds_uids.append(uid)
        else:
            last_obx = _file_in_group(current, seg, last_obx)
    for g in groups:
        obr, orc = g["obr"], g["orc"]
        specimens = [s for s in (orders.map_specimen(ctx, s) for s in g["spm"]) if s]
        request, key = orders.map_service_request(ctx, orc, obr, ntes=[], specimens=specimens)
        orders.apply_timing(ctx, ctx.builder.get(request), g["tq1"])
        vtypes = [obx.text(2).upper() for obx, _ in g["obx"]]
        obx_uids = [results.study_uid(ctx, obx, vtype) for (obx, _), vtype in zip(g["obx"], vtypes)]
        sections = [results.report_section(ctx, obx) if vtype in results.NARRATIVE_TYPES else ""
                    for (obx, _), vtype in zip(g["obx"], vtypes)]
        uids = [u for u in obx_uids if u]
        if g is groups[0]:
            uids += zds_uids
        imaging_report = bool(uids) or obr.text(24).upper() in results.IMAGING_SECTIONS or any(sections)
        observations, narrative, impression = [], [], []
        attachments = results.ed_attachments(ctx, [(obx, v) for (obx, _), v in zip(g["obx"], vtypes)])
        for (obx, ntes), vtype, obx_uid, section in zip(g["obx"], vtypes, obx_uids, sections):
            if obx_uid or vtype == "ED":
                continue
            if imaging_report and vtype in results.NARRATIVE_TYPES:
                lines = [ctx.enc.decode(r) for r in obx.reps(5)] or [""]
                narrative.extend(lines)
                if section in results.IMPRESSION_CODES:
                    impression.extend(lines)
                continue
            ref = results.map_observation(ctx, obx, ntes=ntes, order_key=key, obr=obr, based_on=request,
                                          specimen=specimens[0] if specimens else None)
            if ref:
                observations.append(ref)
        imaging = [r for r in (results.map_imaging_study(ctx, u, based_on=request, obr=obr)
                               for u in dict.fromkeys(uids)) if r]
        report = results.map_diagnostic_report(ctx, obr, orc, results=observations, narrative=narrative,
                                               attachments=attachments, imaging=imaging, based_on=request,
                                               order_key=key, specimens=specimens, impression=impression)
        if g["ntes"] and narrative:
            # Notes under the OBR of a text report are the order's questions and comments, not the
            # radiologist's conclusion: they go to the ServiceRequest.
            sr = ctx.builder.get(request)
            if sr is not None:
                sr.setdefault("note", []).extend(orders.notes(ctx, g["ntes"]))
        elif g["ntes"]:
            dr = ctx.builder.get(report)
            if dr is not None:
                text = "\n".join(n["text"] for n in orders.notes(ctx, g["ntes"]))
                if text:
                    dr["conclusion"] = (dr["conclusion"] + "\n" + text) if "conclusion" in dr else text


def map_financial(ctx: MapContext) -> None:
    """DFT^P03, DFT^P11: FT1 -> ChargeItem (our map), DG1 -> Condition, PR1 -> Procedure, PID-18 -> Account.
    P11 (post detail financial transactions, expanded) carries the same segments in finer groups."""
    _patient_and_visit(ctx)
    pid = ctx.msg.one("PID")
    account = financial.map_account(ctx, pid) if pid is not None else None
    for dg1 in ctx.msg.all("DG1"):
        clinical.map_condition(ctx, dg1)
    for pr1 in ctx.msg.all("PR1"):
        clinical.map_procedure(ctx, pr1)
    ft1s = ctx.msg.all("FT1")
    if not ft1s:
        raise MappingError("no FT1 segment", segment="FT1")
    for ft1 in ft1s:
        financial.map_charge_item(ctx, ft1, account)


def map_billing_account(ctx: MapContext) -> None:
    """BAR^P01 (add patient account), BAR^P12 (update diagnosis/procedure): PID-18 -> Account with its
    Coverage (IN1) and guarantor (GT1); PV1 -> Encounter; DG1 -> Condition; PR1 -> Procedure; AL1, NK1 as in ADT."""
    _patient_and_visit(ctx, required=True)
    msg = ctx.msg
    _map_history(ctx)
    coverages = _map_coverages(ctx)
    guarantors = _map_guarantors(ctx)
    pid = msg.one("PID")
    account_ref = financial.map_account(ctx, pid) if pid is not None else None
    account = ctx.builder.get(account_ref) if account_ref else None
    if account is None:
        ctx.skip(pid or msg.msh, 18, "no patient account number, Account left out")
        return
    if coverages:
        account["coverage"] = [{"coverage": {"reference": c}, "priority": i + 1} for i, c in enumerate(coverages)]
    if guarantors:
        account["guarantor"] = [{"party": {"reference": g}} for g in guarantors]


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
    "OMI^O23": map_imaging_order,
    "VXU^V04": map_vaccination,
    "DFT^P03": map_financial,
    "DFT^P11": map_financial,
    "BAR^P01": map_billing_account,
    "BAR^P12": map_billing_account,
    "MDM^T02": map_document,
    "ADT^A29": map_patient_delete,
    "ADT^A41": map_account_merge,
    "ADT^A47": map_identifier_change,
}
for _event in ("S12", "S13", "S14", "S15", "S16", "S17", "S26"):
    MESSAGE_MAPS[f"SIU^{_event}"] = map_schedule  # status per event: segments/scheduling.py EVENT_STATUS
for _event in ("A01", "A02", "A03", "A04", "A05", "A06", "A07", "A08", "A11", "A12", "A13", "A28", "A31"):
    MESSAGE_MAPS[f"ADT^{_event}"] = map_adt


def message_map(code: str, event: str) -> MessageMap | None:
    return MESSAGE_MAPS.get(f"{code}^{event}")
