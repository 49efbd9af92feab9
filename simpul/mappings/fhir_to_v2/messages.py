"""Assemble ORM^O01 and OML^O21 (HL7 v2.5.1) from the resources of one or more orders."""
from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from simpul.errors import MappingError
from simpul.mappings.fhir_to_v2 import datatypes as dt
from simpul.mappings.fhir_to_v2 import segments
from simpul.mappings.fhir_to_v2.inputs import Located, OrderInputs, collect
from simpul.mappings.fhir_to_v2.structure import check_structure
from simpul.v2 import DEFAULT, MessageHeader, er7, transcode


def msh_segment(header: MessageHeader, message_type: str, non_ascii: bool) -> str:
    """MSH from the caller's header: ER7 values in the header's own delimiters (as a header read from
    a message holds them), rewritten for ours. MSH-3 defaults to SIMPUL, MSH-7 to now, MSH-10 to a
    fresh id, MSH-11 to P."""
    source = header.delimiters
    values = {3: header.sending_application or "SIMPUL", 4: header.sending_facility,
              5: header.receiving_application, 6: header.receiving_facility,
              7: header.message_datetime, 10: header.control_id, 11: header.processing_id or "P"}
    for number, value in values.items():
        if source.field in value or "\r" in value or "\n" in value:
            raise MappingError("header value holds a field separator or a line break", segment="MSH",
                               field=number)
        values[number] = transcode(value, source, DEFAULT)
    fields = {
        **values,
        7: values[7] or datetime.datetime.now().astimezone().strftime("%Y%m%d%H%M%S%z"),
        9: message_type,
        10: values[10] or uuid.uuid4().hex[:20],  # MSH-10 is ST(20) in v2.5.1
        12: "2.5.1",
    }
    if non_ascii:
        fields[18] = "UNICODE UTF-8"  # MSH-18: the receiver must not read the text as ASCII
    return er7.msh_text(fields)


@dataclass
class _Order:
    request: Located
    requester: dt.Components | None
    specimens: list[Located]


def _patient(inputs: OrderInputs, orders: list[Located]) -> Located:
    patients = inputs.of_type("Patient")
    found: Located | None = None
    for order in orders:
        subject = inputs.resolve(order.resource.get("subject"), order)
        if subject is None and len(patients) == 1:
            subject = patients[0]  # an unresolvable subject with exactly one Patient in the input
        if subject is None or subject.resource.get("resourceType") != "Patient":
            raise MappingError(f"{order.path}.subject: no Patient for it in the input", segment="PID")
        if found is not None and subject.resource is not found.resource:
            raise MappingError(f"{order.path}.subject: one message carries the orders of one patient",
                               segment="PID")
        found = subject
    assert found is not None
    return found


def _encounter(inputs: OrderInputs, orders: list[Located]) -> Located | None:
    for order in orders:
        encounter = inputs.resolve(order.resource.get("encounter"), order)
        if encounter is not None and encounter.resource.get("resourceType") == "Encounter":
            return encounter
    encounters = inputs.of_type("Encounter")
    return encounters[0] if len(encounters) == 1 else None


def _requester(inputs: OrderInputs, order: Located) -> dt.Components | None:
    reference = order.resource.get("requester")
    target = inputs.resolve(reference, order)
    if target is not None and target.resource.get("resourceType") == "PractitionerRole":
        role_reference = target.resource.get("practitioner")
        target = inputs.resolve(role_reference, target)
        reference = role_reference
    practitioner = target.resource if target is not None and \
        target.resource.get("resourceType") == "Practitioner" else None
    return dt.xcn(practitioner, reference)


def _specimens(inputs: OrderInputs, order: Located, order_count: int) -> list[Located]:
    linked = [s for s in (inputs.resolve(r, order) for r in order.resource.get("specimen") or []) if s]
    if not linked:
        for specimen in inputs.of_type("Specimen"):
            requests = [inputs.resolve(r, specimen) for r in specimen.resource.get("request") or []]
            if any(r is not None and r.resource is order.resource for r in requests):
                linked.append(specimen)
    if not linked and order_count == 1:
        linked = inputs.of_type("Specimen")  # a single order owns the input's specimens
    return [s for s in linked if s.resource.get("resourceType") == "Specimen"]


def _orders(bundle_or_resources: Any) -> tuple[list[_Order], list[str]]:
    """The input's orders, and the segments of their patient: PID, then PV1 when there is an Encounter."""
    inputs = collect(bundle_or_resources)
    requests = inputs.of_type("ServiceRequest")
    if not requests:
        raise MappingError("no ServiceRequest in the input", segment="ORC")
    orders = [_Order(r, _requester(inputs, r), _specimens(inputs, r, len(requests))) for r in requests]
    patient, encounter = _patient(inputs, requests), _encounter(inputs, requests)
    patient_part = [segments.pid(patient)]
    if encounter is not None:
        patient_part.append(segments.pv1(encounter))
    return orders, patient_part


def _finish(message_type: str, structure: str, patient_part: list[str], order_parts: list[list[str]],
            header: MessageHeader | None) -> str:
    header = header or MessageHeader()
    body = patient_part + [segment for part in order_parts for segment in part]
    msh = msh_segment(header, message_type, any(not s.isascii() for s in body))
    # Checked one ORDER group at a time: hl7apy's greedy group finder reads a second ORC of OML^O21
    # as the start of the first order's PRIOR_RESULT group, which the standard allows too.
    for part in order_parts:
        check_structure(er7.join_segments([msh, *patient_part, *part]), structure)
    return er7.join_segments([msh, *body])


def build_orm_o01(bundle_or_resources: dict[str, Any], header: MessageHeader | None = None) -> str:
    """ServiceRequest(s) (+ Patient, Encounter, Specimen, Practitioner) -> one ORM^O01 v2.5.1 message.

    Segments: MSH, PID, [PV1], then per ServiceRequest ORC, OBR, NTE*. Timing and priority also go
    to ORC-7/OBR-27 (TQ) because ORM^O01 has no TQ1; the specimen type goes to OBR-15.
    Raises MappingError (FHIR element path, segment and field; never values) for unusable input.
    """
    orders, patient_part = _orders(bundle_or_resources)
    order_parts = []
    for set_id, order in enumerate(orders, start=1):
        part = [segments.orc(order.request, order.requester, with_timing=True),
                segments.obr(order.request, set_id, order.requester, order.specimens, with_timing=True)]
        part.extend(segments.ntes(order.request))
        order_parts.append(part)
    return _finish("ORM^O01^ORM_O01", "ORM_O01", patient_part, order_parts, header)


def build_oml_o21(bundle_or_resources: dict[str, Any], header: MessageHeader | None = None) -> str:
    """ServiceRequest(s) (+ Patient, Encounter, Specimen, Practitioner) -> one OML^O21 v2.5.1 message.

    Segments: MSH, PID, [PV1], then per ServiceRequest ORC, [TQ1], OBR, NTE*, SPM* (one per Specimen).
    Raises MappingError (FHIR element path, segment and field; never values) for unusable input.
    """
    orders, patient_part = _orders(bundle_or_resources)
    order_parts = []
    for set_id, order in enumerate(orders, start=1):
        part = [segments.orc(order.request, order.requester, with_timing=False)]
        timing = segments.tq1(order.request)
        if timing:
            part.append(timing)
        part.append(segments.obr(order.request, set_id, order.requester, order.specimens,
                                 with_timing=False))
        part.extend(segments.ntes(order.request))
        part.extend(segments.spm(s, n) for n, s in enumerate(order.specimens, start=1))
        order_parts.append(part)
    return _finish("OML^O21^OML_O21", "OML_O21", patient_part, order_parts, header)
