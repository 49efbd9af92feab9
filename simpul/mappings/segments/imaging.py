"""IPC (imaging procedure control, OMI^O23) -> ImagingStudy, plus the accession number on the
ServiceRequest. The IG has no IPC map; this one follows the IHE Radiology Scheduled Workflow
meaning of the fields (v2.5.1 chapter 4.5.6):

| IPC | ImagingStudy |
|---|---|
| IPC-1 accession identifier (EI) | identifier (type ACSN); also ServiceRequest.identifier |
| IPC-2 requested procedure ID | identifier (type PLAC-less local id, system from EI) |
| IPC-3 study instance UID | identifier `urn:dicom:uid` / `urn:oid:<uid>` - the match key |
| IPC-5 modality (DICOM CID 29 code) | modality (DCM) |
| IPC-6 protocol code | procedureCode |
| IPC-4 scheduled procedure step ID, IPC-7/8/9 station | description text |

Status is `registered`: the study is scheduled, no images exist yet (an ORU or the PACS fills it in).
"""
from __future__ import annotations

from typing import Any

from simpul.mappings import datatypes as dt
from simpul.mappings.context import MapContext
from simpul.v2 import Segment

DCM = "http://dicom.nema.org/resources/ontology/DCM"
_UID_CHARS = set("0123456789.")


def accession_identifier(ctx: MapContext, ipc: Segment) -> dict[str, Any] | None:
    """IPC-1 accession number as an Identifier of type ACSN."""
    raw = ipc.first(1)
    return dt.ei(ctx, raw, "ACSN") if raw else None


def map_ipc(ctx: MapContext, ipc: Segment, *, based_on: str | None) -> str | None:
    """One IPC -> ImagingStudy (conditional create on the Study Instance UID; without a UID on the
    accession number). Returns the reference, or None without a patient or any identifier."""
    if ctx.patient is None:
        return None
    identifiers: list[dict[str, Any]] = []
    uid = ipc.text(3).strip()
    uid_ident = None
    if uid:
        if set(uid) <= _UID_CHARS:
            uid_ident = {"system": "urn:dicom:uid", "value": "urn:oid:" + uid}
            identifiers.append(uid_ident)
        else:
            ctx.skip(ipc, 3, "study instance UID is not a DICOM UID")
    accession = accession_identifier(ctx, ipc)
    if accession:
        identifiers.append(accession)
    requested = dt.ei(ctx, ipc.first(2)) if ipc.first(2) else None
    if requested:
        identifiers.append(requested)
    if not identifiers:
        return None
    res: dict[str, Any] = {"resourceType": "ImagingStudy", "identifier": identifiers, "status": "registered",
                           "subject": {"reference": ctx.patient}}
    if ctx.encounter:
        res["encounter"] = {"reference": ctx.encounter}
    if based_on:
        res["basedOn"] = [{"reference": based_on}]
    modality = ipc.text(5).strip()
    if modality:
        res["modality"] = [{"system": DCM, "code": modality}]
    protocol = dt.cwe(ctx, ipc.first(6)) if ipc.first(6) else None
    if protocol:
        res["procedureCode"] = [protocol]
    step = ipc.text(4)
    station = ipc.text(7)
    description = "; ".join(x for x in (f"scheduled procedure step {step}" if step else "",
                                        f"station {station}" if station else "") if x)
    if description:
        res["description"] = description
    # Match on the Study Instance UID (the key results.map_imaging_study uses too, so a later ORU
    # finds this study); else on an accession number with a system.
    match: dict[str, Any] | None = None
    if uid_ident is not None:
        match, key = uid_ident, "uid|" + uid
    elif accession is not None and accession.get("system"):
        match, key = accession, f"{accession['system']}|{accession['value']}"
    else:
        key = ctx.key(ipc)
    return ctx.builder.add(res, key, identifier=match, create_only=True)
