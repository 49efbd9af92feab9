"""One function per outbound segment: FHIR resources in, ER7 segment text out."""
from __future__ import annotations

from typing import Any

from simpul.errors import MappingError
from simpul.mappings.fhir_to_v2 import datatypes as dt
from simpul.mappings.fhir_to_v2.inputs import Located
from simpul.mappings.fhir_to_v2.vocabulary import (
    ENCOUNTER_CLASS_TO_0004,
    GENDER_TO_0001,
    PRIORITY_TEXT,
    PRIORITY_TO_0027,
    STATUS_TO_ORDER_CONTROL,
    V2_TABLE_PREFIX,
)
from simpul.v2 import er7, study_uid_for_accession

BUSINESS_EVENT_SUFFIX = "businessEvent"  # event-/workflow-businessEvent extension carrying ORC-1


def _repeat(values: list[dt.Components | None]) -> str:
    return er7.repeated([dt.field(v) for v in values if v])


# --- PID ------------------------------------------------------------------------------------------

def pid(patient: Located) -> str:
    res, path = patient.resource, patient.path
    seg = er7.SegmentBuilder("PID")
    seg.set(1, "1")
    identifiers = [dt.cx(i, f"{path}.identifier[{n}]") for n, i in enumerate(res.get("identifier") or [])]
    if not any(identifiers):
        raise MappingError(f"{path}.identifier: PID-3 needs at least one identifier with a value",
                           segment="PID", field=3)
    seg.set(3, _repeat(identifiers))  # PID-3 patient identifier list, CX.4 from Identifier.system
    names = [dt.xpn(n) for n in res.get("name") or []]
    if not any(names):
        raise MappingError(f"{path}.name: PID-5 needs a name", segment="PID", field=5)
    seg.set(5, _repeat(names))
    if res.get("birthDate"):
        seg.set(7, dt.dtm(res["birthDate"], f"{path}.birthDate", segment="PID", field=7))
    if res.get("gender"):
        code = GENDER_TO_0001.get(res["gender"])
        if code is None:
            raise MappingError(f"{path}.gender: not an administrative-gender code", segment="PID", field=8)
        seg.set(8, code)
    seg.set(11, _repeat([_xad(a) for a in res.get("address") or []]))
    telecoms = res.get("telecom") or []
    seg.set(13, _repeat([_xtn(t) for t in telecoms if t.get("use") != "work"]))  # PID-13 home
    seg.set(14, _repeat([_xtn(t) for t in telecoms if t.get("use") == "work"]))  # PID-14 business
    if res.get("deceasedDateTime"):
        seg.set(29, dt.dtm(res["deceasedDateTime"], f"{path}.deceasedDateTime", segment="PID", field=29))
        seg.set(30, "Y")
    elif isinstance(res.get("deceasedBoolean"), bool):
        seg.set(30, "Y" if res["deceasedBoolean"] else "N")
    return seg.text()


def _xad(address: dict[str, Any]) -> dt.Components | None:
    """Address -> XAD: line[0] street, line[1] other designation, city, state, postal code, country, use."""
    lines = address.get("line") or []
    use = {"home": "H", "work": "B", "temp": "C", "old": "BA", "billing": "BI"}.get(
        address.get("use") or "", "")
    parts = [lines[0] if lines else "", " ".join(lines[1:]), address.get("city") or "",
             address.get("state") or "", address.get("postalCode") or "", address.get("country") or "",
             use]
    if not any(parts[:6]):
        return None
    return [[parts[0]], *parts[1:]]  # XAD.1 is SAD: its first subcomponent holds the street line


def _xtn(telecom: dict[str, Any]) -> dt.Components | None:
    """ContactPoint -> XTN: use (0201), equipment (0202), e-mail in XTN.4, a number in XTN.1 and XTN.12."""
    value = telecom.get("value")
    if not value:
        return None
    system = telecom.get("system") or "phone"
    use = "PRS" if telecom.get("use") == "mobile" else ("WPN" if telecom.get("use") == "work" else "PRN")
    if system == "email":
        return ["", "NET", "Internet", value]
    equipment = {"phone": "CP" if telecom.get("use") == "mobile" else "PH", "fax": "FX",
                 "pager": "BP"}.get(system, "PH")
    return [value, use, equipment, "", "", "", "", "", "", "", "", value]


# --- PV1 ------------------------------------------------------------------------------------------

def pv1(encounter: Located) -> str:
    res, path = encounter.resource, encounter.path
    seg = er7.SegmentBuilder("PV1")
    seg.set(1, "1")
    klass = res.get("class") or {}
    code = str(klass.get("code") or "")
    if klass.get("system") == V2_TABLE_PREFIX + "0004":
        patient_class = code  # already a v2 patient class
    else:
        patient_class = ENCOUNTER_CLASS_TO_0004.get(code, "U")  # PV1-2 is required; U = unknown
    seg.set(2, patient_class)
    identifiers = res.get("identifier") or []
    visit = next((i for i in identifiers if dt.has_type(i, "VN")), identifiers[0] if identifiers else None)
    if visit:
        seg.set(19, dt.field(dt.cx(visit, f"{path}.identifier")))  # PV1-19 visit number
    start = (res.get("period") or {}).get("start")
    if start:
        seg.set(44, dt.dtm(start, f"{path}.period.start", segment="PV1", field=44))
    return seg.text()


# --- ORC / OBR ------------------------------------------------------------------------------------

def order_control(order: Located) -> str:
    """ORC-1 from ServiceRequest.status; an active order keeps the v2-0119 code of a businessEvent extension."""
    res, path = order.resource, order.path
    status = res.get("status")
    control = STATUS_TO_ORDER_CONTROL.get(status or "")
    if control is None:
        raise MappingError(f"{path}.status: status '{status}' is not sent as an order (ORC-1)",
                           segment="ORC", field=1)
    if control == "NW":
        for extension in res.get("extension") or []:
            if str(extension.get("url", "")).endswith(BUSINESS_EVENT_SUFFIX):
                for coding in (extension.get("valueCodeableConcept") or {}).get("coding") or []:
                    if coding.get("system") == V2_TABLE_PREFIX + "0119" and coding.get("code"):
                        return str(coding["code"])
    return control


def order_numbers(order: Located) -> tuple[dt.Components, dt.Components | None]:
    """(placer, filler) EIs: identifiers typed PLAC and FILL; an untyped identifier stands in for PLAC."""
    identifiers = order.resource.get("identifier") or []
    placer = next((i for i in identifiers if dt.has_type(i, "PLAC")), None) or next(
        (i for i in identifiers if not i.get("type")), None)
    filler = next((i for i in identifiers if dt.has_type(i, "FILL")), None)
    placer_ei = dt.ei(placer) if placer else None
    if placer_ei is None:
        raise MappingError(f"{order.path}.identifier: ORC-2 needs a placer order number "
                           "(identifier of type PLAC)", segment="ORC", field=2)
    return placer_ei, dt.ei(filler) if filler else None


def priority_code(order: Located) -> str:
    priority = order.resource.get("priority")
    if priority is None:
        return ""
    code = PRIORITY_TO_0027.get(priority)
    if code is None:
        raise MappingError(f"{order.path}.priority: not a request-priority code", segment="OBR", field=5)
    return code


def _date_time_or_period(element: dict[str, Any], path: str, name: str) -> tuple[str, str]:
    """(start, end) DTM of the choice element `<name>[x]`: `<name>DateTime` (end "") or `<name>Period`."""
    if element.get(f"{name}DateTime"):
        return dt.dtm(element[f"{name}DateTime"], f"{path}.{name}DateTime"), ""
    period = element.get(f"{name}Period") or {}
    start = dt.dtm(period["start"], f"{path}.{name}Period.start") if period.get("start") else ""
    end = dt.dtm(period["end"], f"{path}.{name}Period.end") if period.get("end") else ""
    return start, end


def occurrence(order: Located) -> tuple[str, str]:
    """(start, end) DTM of occurrenceDateTime or occurrencePeriod."""
    return _date_time_or_period(order.resource, order.path, "occurrence")


def orc(order: Located, requester: dt.Components | None, *, with_timing: bool) -> str:
    res, path = order.resource, order.path
    seg = er7.SegmentBuilder("ORC")
    seg.set(1, order_control(order))
    placer, filler = order_numbers(order)
    seg.set(2, dt.field(placer))
    seg.set(3, dt.field(filler))
    if isinstance(res.get("requisition"), dict):
        seg.set(4, dt.field(dt.ei(res["requisition"])))  # ORC-4 placer group number
    if with_timing:  # ORM^O01 v2.5.1 has no TQ1: ORC-7 TQ.4 start and TQ.6 priority carry the timing
        start, end = occurrence(order)
        seg.set(7, dt.field(["", "", "", start, end, priority_code(order)]))
    if res.get("authoredOn"):
        seg.set(9, dt.dtm(res["authoredOn"], f"{path}.authoredOn", segment="ORC", field=9))
    seg.set(12, dt.field(requester))
    return seg.text()


def obr(order: Located, set_id: int, requester: dt.Components | None, specimens: list[Located], *,
        with_timing: bool) -> str:
    res, path = order.resource, order.path
    seg = er7.SegmentBuilder("OBR")
    seg.set(1, str(set_id))
    placer, filler = order_numbers(order)
    seg.set(2, dt.field(placer))
    seg.set(3, dt.field(filler))
    code = dt.cwe(res.get("code"))
    if code is None:
        raise MappingError(f"{path}.code: OBR-4 needs the ordered service", segment="OBR", field=4)
    seg.set(4, dt.field(code))
    seg.set(5, priority_code(order))  # OBR-5: what the IG maps back to ServiceRequest.priority
    start, end = occurrence(order)
    seg.set(6, start)  # OBR-6 requested date/time
    collected = [s for s in (_collected(s)[0] for s in specimens) if s]
    if collected:
        seg.set(7, collected[0])  # OBR-7 observation (collection) date/time
    if res.get("intent") == "reflex-order":
        seg.set(11, "G")  # OBR-11 specimen action code G: generated order (reflex)
    if with_timing and specimens:
        kind = dt.cwe(specimens[0].resource.get("type"))
        if kind:
            seg.set(15, er7.component(kind[:3]))  # OBR-15 SPS.1: specimen source as subcomponents
    seg.set(16, dt.field(requester))
    accession = next((i for i in res.get("identifier") or [] if dt.has_type(i, "ACSN")), None)
    if accession and accession.get("value"):
        seg.set(18, er7.escape(str(accession["value"])))  # OBR-18 placer field 1: the RIS accession number
    if with_timing:
        seg.set(27, dt.field(["", "", "", start, end, priority_code(order)]))
    seg.set(31, _repeat([dt.cwe(c) for c in res.get("reasonCode") or []]))
    return seg.text()


def ntes(order: Located) -> list[str]:
    """ServiceRequest.note -> one NTE each (NTE-2 P: the placer wrote it, table 0105)."""
    out: list[str] = []
    for note in order.resource.get("note") or []:
        text = note.get("text")
        if text:
            seg = er7.SegmentBuilder("NTE")
            seg.set(1, str(len(out) + 1))
            seg.set(2, "P")
            seg.set(3, er7.escape(text))
            out.append(seg.text())
    return out


def tq1(order: Located) -> str | None:
    """OML timing: TQ1-7 start, TQ1-8 end, TQ1-9 priority (table 0485)."""
    start, end = occurrence(order)
    priority = priority_code(order)
    if not (start or end or priority):
        return None
    seg = er7.SegmentBuilder("TQ1")
    seg.set(1, "1")
    seg.set(7, start)
    seg.set(8, end)
    if priority:
        seg.set(9, dt.field([priority, PRIORITY_TEXT[priority], "HL70485"]))
    return seg.text()


# --- SPM ------------------------------------------------------------------------------------------

def _collected(specimen: Located) -> tuple[str, str]:
    collection = specimen.resource.get("collection") or {}
    return _date_time_or_period(collection, f"{specimen.path}.collection", "collected")


def spm(specimen: Located, set_id: int) -> str:
    res, path = specimen.resource, specimen.path
    seg = er7.SegmentBuilder("SPM")
    seg.set(1, str(set_id))
    identifiers = res.get("identifier") or []
    placer = next((i for i in identifiers if dt.has_type(i, "PLAC")), None) or next(
        (i for i in identifiers if not dt.has_type(i, "FILL")), None)
    filler = next((i for i in identifiers if dt.has_type(i, "FILL")), None) or res.get("accessionIdentifier")
    placer_ei = dt.ei(placer) if placer else None
    filler_ei = dt.ei(filler) if filler else None
    if placer_ei or filler_ei:  # SPM-2 EIP: placer EI ^ filler EI, each as subcomponents
        seg.set(2, er7.composite([placer_ei or [], filler_ei or []]))
    kind = dt.cwe(res.get("type"))
    if kind is None:
        raise MappingError(f"{path}.type: SPM-4 needs the specimen type", segment="SPM", field=4)
    seg.set(4, dt.field(kind))
    collection = res.get("collection") or {}
    seg.set(7, dt.field(dt.cwe(collection.get("method"))))
    seg.set(8, dt.field(dt.cwe(collection.get("bodySite"))))
    seg.set(12, dt.field(dt.cq(collection.get("quantity"))))
    start, end = _collected(specimen)
    if start or end:
        seg.set(17, dt.field([start, end]))  # SPM-17 DR: collection start ^ end
    if res.get("receivedTime"):
        seg.set(18, dt.dtm(res["receivedTime"], f"{path}.receivedTime", segment="SPM", field=18))
    return seg.text()


# --- IPC (OMI^O23) --------------------------------------------------------------------------------

DCM_SYSTEM = "http://dicom.nema.org/resources/ontology/DCM"


def accession_number(order: Located) -> str:
    """The identifier typed ACSN, else the placer number: the RIS and the PACS key the study on it."""
    identifiers = order.resource.get("identifier") or []
    accession = next((i for i in identifiers if dt.has_type(i, "ACSN")), None)
    if accession and accession.get("value"):
        return str(accession["value"])
    placer, _ = order_numbers(order)
    return str(placer[0])


def ipc(order: Located) -> str:
    """IPC-1 accession, IPC-2 requested procedure id (the placer number), IPC-3 Study Instance UID
    (derived from the accession number: simpul.v2.study_uid_for_accession), IPC-4 scheduled step id,
    IPC-5 modality from a DICOM (DCM) coding of ServiceRequest.code or orderDetail."""
    placer, _ = order_numbers(order)
    accession = accession_number(order)
    seg = er7.SegmentBuilder("IPC")
    seg.set(1, er7.escape(accession))
    seg.set(2, er7.escape(str(placer[0])))
    seg.set(3, study_uid_for_accession(accession))
    seg.set(4, er7.escape(str(placer[0])))
    res = order.resource
    concepts = [res.get("code") or {}, *(res.get("orderDetail") or [])]
    modality = next((c for concept in concepts for c in concept.get("coding") or []
                     if c.get("system") == DCM_SYSTEM and c.get("code")), None)
    if modality:
        seg.set(5, er7.composite([er7.escape(str(modality["code"])), er7.escape(str(modality.get("display", ""))),
                                  "DCM"]))
    return seg.text()
