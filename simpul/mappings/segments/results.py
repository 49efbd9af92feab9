"""OBR -> DiagnosticReport, OBX -> Observation (IG OBR/OBX maps), radiology narrative and
Study Instance UID -> DiagnosticReport.conclusion/presentedForm and ImagingStudy (our map)."""
from __future__ import annotations

import base64
import re
from typing import Any

from simpul.mappings import datatypes as dt
from simpul.mappings import vocabulary as vocab
from simpul.mappings.context import MapContext
from simpul.mappings.segments.orders import notes, order_identifiers
from simpul.mappings.segments.patient import unmapped_code
from simpul.v2 import Segment

TERM = "http://terminology.hl7.org/CodeSystem/"
NARRATIVE_TYPES = {"TX", "FT"}
# OBR-24 diagnostic service sections (table 0074) that make a report "radiology"
IMAGING_SECTIONS = {"RAD", "CT", "RUS", "VUS", "OUS", "NMR", "NMS", "CUS", "RX", "XRC", "IMG", "MR", "US"}
# OBX-3 codes that name a section of a text report rather than a measurement (Epic and other RIS:
# GDT general description text, IMP impression, ADT addendum, TCM technologist comment, REC
# recommendation): such OBX lines are the report's narrative, not Observations.
REPORT_SECTION_CODES = {"GDT", "IMP", "ADT", "TCM", "REC", "RPT", "REPORT", "IMPRESSION", "FINDINGS", "ADDENDUM",
                        "CONCLUSION", "FND", "HX", "HISTORY", "TECHNIQUE", "COMPARISON"}
IMPRESSION_CODES = {"IMP", "IMPRESSION", "CONCLUSION"}
# OBX-3 codes that carry a DICOM Study Instance UID (DICOM CID 7060: 113014 "DICOM Study"; 110180 "Study Instance UID")
STUDY_UID_CODES = {"113014", "110180"}


def obx_value(ctx: MapContext, obx: Segment, out: dict[str, Any]) -> bool:
    """OBX-5 by OBX-2 into Observation.value[x]; OBX-6 units. Returns False when nothing was set."""
    enc = ctx.enc
    vtype = obx.text(2).upper()
    reps = obx.reps(5)
    if not reps:
        return False
    first = reps[0]
    if vtype in ("ST", "TX", "FT", "") or vtype not in _TYPED:
        text = "\n".join(enc.decode(r) for r in reps)
        if text.strip():
            out["valueString"] = text
            return True
        return False
    return _TYPED[vtype](ctx, obx, first, out)


def _nm(ctx: MapContext, obx: Segment, raw: str, out: dict[str, Any]) -> bool:
    text = ctx.enc.decode(raw)
    value = dt.number(text)
    if value is None:
        out["valueString"] = text  # "<5" or "see note" sent as NM: kept as text, not lost
        ctx.skip(obx, 5, "NM value is not a number, kept as valueString")
        return True
    q: dict[str, Any] = {"value": value}
    q.update(dt.units(ctx, obx.first(6)))
    out["valueQuantity"] = q
    return True


def _sn(ctx: MapContext, obx: Segment, raw: str, out: dict[str, Any]) -> bool:
    """SN: comparator ^ num1 ^ separator/suffix ^ num2 (IG: ':' or '/' ratio, '-' range, else quantity)."""
    enc = ctx.enc
    p = dt.comps(enc, raw)
    comparator, n1, sep, n2 = (dt.leaf(enc, p, i) for i in (1, 2, 3, 4))
    a, b = dt.number(n1), dt.number(n2)
    unit = dt.units(ctx, obx.first(6))
    if sep in (":", "/") and a is not None and b is not None and not comparator:
        out["valueRatio"] = {"numerator": {"value": a, **unit}, "denominator": {"value": b}}
        return True
    if sep == "-" and a is not None and b is not None and not comparator:
        out["valueRange"] = {"low": {"value": a, **unit}, "high": {"value": b, **unit}}
        return True
    if a is not None and not sep and not n2 and comparator in ("", "<", ">", "<=", ">="):
        q: dict[str, Any] = {"value": a}
        if comparator:
            q["comparator"] = comparator
        q.update(unit)
        out["valueQuantity"] = q
        return True
    text = "".join((comparator, n1, sep, n2)).strip()
    if text:
        out["valueString"] = text
        return True
    return False


def _cwe(ctx: MapContext, obx: Segment, raw: str, out: dict[str, Any]) -> bool:
    cc = dt.cwe(ctx, raw)
    if cc:
        out["valueCodeableConcept"] = cc
        return True
    return False


def _is(ctx: MapContext, obx: Segment, raw: str, out: dict[str, Any]) -> bool:
    code = ctx.enc.decode(raw.split(ctx.enc.component)[0]).strip()
    if code:
        out["valueCodeableConcept"] = {"coding": [{"code": code}], "text": code}
        return True
    return False


def _dtm(ctx: MapContext, obx: Segment, raw: str, out: dict[str, Any]) -> bool:
    text = dt.leaf(ctx.enc, dt.comps(ctx.enc, raw), 1)
    value = dt.dtm(ctx, text)
    if value:
        out["valueDateTime"] = value
    elif text:
        out["valueString"] = text
    return bool(value or text)


def _tm(ctx: MapContext, obx: Segment, raw: str, out: dict[str, Any]) -> bool:
    t = ctx.enc.decode(raw).strip()
    digits = t[:6].split("+")[0].split("-")[0]
    if digits.isdigit() and len(digits) in (2, 4, 6):
        digits = digits.ljust(6, "0")
        out["valueTime"] = f"{digits[:2]}:{digits[2:4]}:{digits[4:6]}"
        return True
    if t:
        out["valueString"] = t
    return bool(t)


def _nr(ctx: MapContext, obx: Segment, raw: str, out: dict[str, Any]) -> bool:
    p = dt.comps(ctx.enc, raw)
    lo, hi = dt.number(dt.leaf(ctx.enc, p, 1)), dt.number(dt.leaf(ctx.enc, p, 2))
    if lo is None and hi is None:
        return False
    rng: dict[str, Any] = {}
    if lo is not None:
        rng["low"] = {"value": lo}
    if hi is not None:
        rng["high"] = {"value": hi}
    out["valueRange"] = rng
    return True


def _dr(ctx: MapContext, obx: Segment, raw: str, out: dict[str, Any]) -> bool:
    p = dt.comps(ctx.enc, raw)
    start, end = dt.dtm(ctx, dt.leaf(ctx.enc, p, 1)), dt.dtm(ctx, dt.leaf(ctx.enc, p, 2))
    if start or end:
        out["valuePeriod"] = dt._period(start, end)
        return True
    return False


def _cq(ctx: MapContext, obx: Segment, raw: str, out: dict[str, Any]) -> bool:
    q = dt.cq(ctx, raw)
    if q:
        out["valueQuantity"] = q
        return True
    return False


_TYPED = {"NM": _nm, "SN": _sn, "CE": _cwe, "CWE": _cwe, "CNE": _cwe, "CF": _cwe, "IS": _is, "ID": _is,
          "DT": _dtm, "DTM": _dtm, "TS": _dtm, "TM": _tm, "NR": _nr, "DR": _dr, "CQ": _cq}


_RANGE = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*(?:-|\.\.|to)\s*([+-]?\d+(?:\.\d+)?)\s*$")
_BOUND = re.compile(r"^\s*([<>]=?)\s*([+-]?\d+(?:\.\d+)?)\s*$")


def reference_range(ctx: MapContext, text: str, raw_units: str) -> dict[str, Any]:
    """OBX-7 -> Observation.referenceRange: `12.0-16.0` -> low/high, `<5` -> high, `>10` -> low (in
    OBX-6 units); the text as sent is kept beside them. Anything else stays text only."""
    out: dict[str, Any] = {}
    unit = dt.units(ctx, raw_units)
    m = _RANGE.match(text)
    if m:
        low, high = dt.number(m.group(1)), dt.number(m.group(2))
        if low is not None and high is not None and low <= high:
            out["low"] = {"value": low, **unit}
            out["high"] = {"value": high, **unit}
    else:
        b = _BOUND.match(text)
        value = dt.number(b.group(2)) if b else None
        if b and value is not None:
            out["high" if b.group(1).startswith("<") else "low"] = {"value": value, **unit}
    out["text"] = text
    return out


def ed_attachment(ctx: MapContext, raw: str) -> dict[str, Any] | None:
    """ED (source ^ type ^ subtype ^ encoding ^ data) -> Attachment; Base64 data kept, text data encoded."""
    enc = ctx.enc
    p = dt.comps(enc, raw)
    data = dt.leaf(enc, p, 5)
    if not data:
        return None
    subtype = dt.leaf(enc, p, 3).lower()
    kind = dt.leaf(enc, p, 2).lower()
    content_type = {"pdf": "application/pdf", "rtf": "application/rtf", "html": "text/html", "xml": "text/xml",
                    "jpeg": "image/jpeg", "png": "image/png", "tiff": "image/tiff"}.get(
        subtype, f"{kind}/{subtype}" if kind in ("application", "image", "text", "audio", "video") and subtype
        else "application/octet-stream")
    if dt.leaf(enc, p, 4).upper() == "BASE64":
        payload = "".join(data.split())
        try:
            base64.b64decode(payload, validate=True)
        except ValueError:
            return None
    else:
        payload = base64.b64encode(data.encode("utf-8")).decode("ascii")
    return {"contentType": content_type, "data": payload}


def ed_attachments(ctx: MapContext, obxs: list[tuple[Segment, str]]) -> list[dict[str, Any]]:
    """Every ED OBX of a report group -> Attachments. Senders split a large document (a base64 PDF)
    over consecutive OBX: an ED OBX with the same OBX-3 and OBX-4 as the one before, or one whose
    ED header (type, subtype, encoding) is empty, continues it. Unreadable data is counted, not hidden."""
    enc = ctx.enc
    runs: list[tuple[Segment, list[str], str]] = []  # (first OBX, [ED parts], "OBX-3|OBX-4")
    for obx, vtype in obxs:
        if vtype != "ED":
            continue
        raw = obx.first(5)
        p = dt.comps(enc, raw)
        same = f"{obx.text(3, 1)}|{obx.text(4)}"
        headless = not any(dt.leaf(enc, p, n) for n in (2, 3, 4))
        if runs and (runs[-1][2] == same or headless):
            runs[-1][1].append(dt.leaf(enc, p, 5) if len(p) >= 5 else dt.leaf(enc, p, 1))
        else:
            runs.append((obx, [raw], same))
    out = []
    for first, parts, _ in runs:
        raw = parts[0] + "".join(parts[1:])
        att = ed_attachment(ctx, raw)
        if att:
            out.append(att)
        else:
            ctx.skip(first, 5, "ED value unreadable")
    return out


def is_narrative(obx: Segment) -> bool:
    return obx.text(2).upper() in NARRATIVE_TYPES


def report_section(ctx: MapContext, obx: Segment) -> str:
    """The report-section code of a text OBX (GDT, IMP, ...), else ""."""
    cc = dt.cwe(ctx, obx.first(3)) if obx.first(3) else None
    code = ((cc or {}).get("coding") or [{}])[0].get("code", "")
    code = code.upper().rsplit(".", 1)[-1]  # some senders write "1234.IMP"
    return code if code in REPORT_SECTION_CODES else ""


def interpreter(ctx: MapContext, obr: Segment) -> str | None:
    """OBR-32 principal result interpreter (NDL: CNN in component 1, as subcomponents) -> Practitioner."""
    raw = obr.first(32)
    if not raw:
        return None
    cnn = raw.split(ctx.enc.component, 1)[0]
    return dt.practitioner(ctx, cnn.replace(ctx.enc.subcomponent, ctx.enc.component))


def study_uid(ctx: MapContext, obx: Segment, vtype: str | None = None) -> str | None:
    """The DICOM Study Instance UID an OBX carries, else None. `vtype` is OBX-2 upper-cased when the
    caller already has it."""
    code = obx.text(3, 1)
    if vtype is None:
        vtype = obx.text(2).upper()
    if code in STUDY_UID_CODES or vtype == "UI" and "study" in obx.text(3, 2).lower():
        uid = ctx.enc.decode(obx.first(5).split(ctx.enc.component)[0]).strip()
        return uid or None
    return None


def map_observation(ctx: MapContext, obx: Segment, *, ntes: list[Segment], order_key: str,
                    obr: Segment | None, based_on: str | None, specimen: str | None) -> str | None:
    enc = ctx.enc
    res: dict[str, Any] = {"resourceType": "Observation"}
    status_code = obx.text(11).upper()
    status = vocab.lookup("0085", status_code, ctx.unmapped) if status_code else None
    res["status"] = status or "unknown"
    if status_code and not status:
        res["_status"] = unmapped_code("0085", status_code)
    section = obr.text(24) if obr is not None else ""
    if section:
        res["category"] = [{"coding": [{"system": dt.V2 + "0074", "code": section}]}]
    elif obx.first(29):
        res["category"] = [{"coding": [{"system": dt.V2 + "0936", "code": obx.text(29)}]}]
    raw_code = obx.first(3)
    code = dt.cwe(ctx, raw_code) if raw_code else None
    res["code"] = code or {"text": "no observation identifier (OBX-3 empty)"}
    if ctx.patient:
        res["subject"] = {"reference": ctx.patient}
    if ctx.encounter:
        res["encounter"] = {"reference": ctx.encounter}
    if based_on:
        res["basedOn"] = [{"reference": based_on}]
    effective = dt.ts_field(ctx, obx.first(14)) or (dt.ts_field(ctx, obr.first(7)) if obr is not None else None)
    if effective:
        res["effectiveDateTime"] = effective
    if not obx_value(ctx, obx, res):
        reason = {"X": "not-performed", "N": "not-asked"}.get(status_code, "unknown")
        res["dataAbsentReason"] = {"coding": [{"system": TERM + "data-absent-reason", "code": reason}]}
    interpretations = []
    for raw in obx.reps(8):
        flag = enc.decode(raw.split(enc.component)[0]).strip()
        if flag:
            interpretations.append(dt.coded(ctx, "0078", flag))
    if interpretations:
        res["interpretation"] = interpretations
    ref_range = obx.text(7)
    if ref_range:
        res["referenceRange"] = [reference_range(ctx, ref_range, obx.first(6))]
    raw_method = obx.first(17)
    method = dt.cwe(ctx, raw_method) if raw_method else None
    if method:
        res["method"] = method
    raw_site = obx.first(20)
    site = dt.cwe(ctx, raw_site) if raw_site else None
    if site:
        res["bodySite"] = site
    performers = [p for p in (dt.practitioner(ctx, r) for r in obx.reps(16)) if p]
    performers += [o for o in (dt.xon(ctx, r) for r in obx.reps(23)) if o]
    if performers:
        res["performer"] = [{"reference": p} for p in performers]
    if specimen:
        res["specimen"] = {"reference": specimen}
    annotations = notes(ctx, ntes)
    if annotations:
        res["note"] = annotations
    key = "|".join((order_key, "OBX", obx.text(1) or str(obx.index), obx.text(3, 1), obx.text(4)))
    return ctx.builder.add(res, key)


def map_imaging_study(ctx: MapContext, uid: str, *, based_on: str | None, obr: Segment | None) -> str | None:
    """Study Instance UID (OBX 113014^DICOM Study or ZDS-1) -> ImagingStudy, matched on the UID."""
    if ctx.patient is None:
        return None
    ident = {"system": "urn:dicom:uid", "value": "urn:oid:" + uid}
    res: dict[str, Any] = {"resourceType": "ImagingStudy", "identifier": [ident], "status": "available",
                           "subject": {"reference": ctx.patient}}
    if ctx.encounter:
        res["encounter"] = {"reference": ctx.encounter}
    if based_on:
        res["basedOn"] = [{"reference": based_on}]
    if obr is not None:
        started = dt.ts_field(ctx, obr.first(7))
        if started:
            res["started"] = started
        proc = dt.cwe(ctx, obr.first(4)) if obr.first(4) else None
        if proc:
            res["procedureCode"] = [proc]
    return ctx.builder.add(res, "uid|" + uid, identifier=ident, create_only=True)


def map_diagnostic_report(ctx: MapContext, obr: Segment, orc: Segment | None, *, results: list[str],
                          narrative: list[str], attachments: list[dict[str, Any]], imaging: list[str],
                          based_on: str | None, order_key: str, specimens: list[str],
                          impression: list[str] = ()) -> str:  # type: ignore[assignment]
    res: dict[str, Any] = {"resourceType": "DiagnosticReport"}

    identifiers = order_identifiers(ctx, orc, obr)
    if identifiers:
        res["identifier"] = identifiers
    if based_on:
        res["basedOn"] = [{"reference": based_on}]
    status_code = obr.text(25).upper()
    status = vocab.lookup("0123", status_code, ctx.unmapped) if status_code else None
    res["status"] = status or "unknown"
    if status_code and not status:
        res["_status"] = unmapped_code("0123", status_code)
    section = obr.text(24)
    if section:
        res["category"] = [{"coding": [{"system": dt.V2 + "0074", "code": section}]}]
    code = dt.cwe(ctx, obr.first(4)) if obr.first(4) else None
    res["code"] = code or {"text": "no universal service identifier (OBR-4 empty)"}
    if ctx.patient:
        res["subject"] = {"reference": ctx.patient}
    if ctx.encounter:
        res["encounter"] = {"reference": ctx.encounter}
    reader = interpreter(ctx, obr)
    if reader:
        res["resultsInterpreter"] = [{"reference": reader}]
    start, end = dt.ts_field(ctx, obr.first(7)), dt.ts_field(ctx, obr.first(8))
    if start and end:
        res["effectivePeriod"] = {"start": start, "end": end}
    elif start or end:
        res["effectiveDateTime"] = start or end
    issued = dt.ts_field(ctx, obr.first(22))
    if issued and "T" in issued:  # issued is an instant
        res["issued"] = issued
    if specimens:
        res["specimen"] = [{"reference": s} for s in specimens]
    if results:
        res["result"] = [{"reference": r} for r in results]
    if imaging:
        res["imagingStudy"] = [{"reference": r} for r in imaging]
    forms = list(attachments)
    if narrative:
        text = "\n".join(narrative)
        # The impression section is the conclusion when the sender marks one; the whole text
        # (findings included) is the presented form either way.
        res["conclusion"] = "\n".join(impression).strip() or text
        forms.insert(0, {"contentType": "text/plain; charset=utf-8",
                         "data": base64.b64encode(text.encode("utf-8")).decode("ascii")})
    if forms:
        res["presentedForm"] = forms
    return ctx.builder.add(res, order_key + "|report|" + (obr.text(1) or str(obr.index)))
