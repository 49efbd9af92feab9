"""FHIR R4 -> HL7 v2.5.1 for outbound orders: ORM^O01 and OML^O21 (and the staff master, MFN^M02: staff.py).

    text = build_oml_o21(bundle)                      # Bundle, one ServiceRequest, or {type: resource}
    text = build_orm_o01(bundle, MessageHeader(sending_application="HIS", control_id="42"))

Each ServiceRequest in the input becomes one ORDER group; all of them must be for the same Patient.
The message is assembled as ER7 text (segments ended by \\r), then parsed and validated by hl7apy
against the v2.5.1 message structure; a failure, like any unusable input, raises
`simpul.errors.MappingError` naming the FHIR element path, segment and field, never a value.

Mapping (the inverse of the HL7 V2-to-FHIR IG maps, so v2 -> FHIR -> v2 keeps the order):

| v2 field          | FHIR source                                         | rule                                      |
|-------------------|-----------------------------------------------------|-------------------------------------------|
| MSH-3..7, 10, 11  | `simpul.v2.MessageHeader` argument (ER7 values)     | MSH-3 SIMPUL, MSH-7 now, MSH-10 fresh, MSH-11 P when empty; MSH-12 2.5.1, MSH-18 UNICODE UTF-8 if non-ASCII |
| PID-3             | Patient.identifier[]                                | CX: value, CX.4 from system (urn:oid -> HD.2+ISO, urn:uuid -> UUID, urn:id:X -> X, table name, other URI -> HD.2+URI), CX.5 type (0203), CX.7/8 period |
| PID-5             | Patient.name[]                                      | XPN: family, given[0], further given, suffix, prefix, use (L/D/N/M/BAD/TEMP/MSK) |
| PID-7             | Patient.birthDate                                   | DTM at the same precision                 |
| PID-8             | Patient.gender                                      | male M, female F, other O, unknown U      |
| PID-11            | Patient.address[]                                   | XAD: line, city, state, postalCode, country, use |
| PID-13 / PID-14   | Patient.telecom[] (home / work)                     | XTN: number in XTN.1 and XTN.12, e-mail in XTN.4 |
| PID-29 / PID-30   | Patient.deceasedDateTime / deceasedBoolean          | DTM / Y, N                                |
| PV1-2             | Encounter.class                                     | EMER E, IMP/ACUTE/NONAC I, AMB/OBSENC/SS/HH/VR/FLD O, PRENC P, v2-0004 code as is, else U |
| PV1-19            | Encounter.identifier (type VN, else the first)      | CX                                        |
| PV1-44            | Encounter.period.start                              | DTM                                       |
| ORC-1             | ServiceRequest.status                               | active NW (or the v2-0119 code of a businessEvent extension), revoked/entered-in-error CA, on-hold HD; others refused |
| ORC-2 / OBR-2     | ServiceRequest.identifier type PLAC (else untyped)  | EI; required                              |
| ORC-3 / OBR-3     | ServiceRequest.identifier type FILL                 | EI                                        |
| ORC-4             | ServiceRequest.requisition                          | EI (placer group number)                  |
| ORC-7 / OBR-27    | occurrence[x], priority (ORM only)                  | TQ.4 start, TQ.5 end, TQ.6 priority       |
| ORC-9             | ServiceRequest.authoredOn                           | DTM                                       |
| ORC-12 / OBR-16   | ServiceRequest.requester (Practitioner, PractitionerRole.practitioner, or Reference.identifier/display) | XCN: id, name, HD, type |
| OBR-4             | ServiceRequest.code                                 | CWE: coding[0] -> 1-3, coding[1] -> 4-6, versions 7/8, text 9; system LOINC LN, SNOMED SCT, v2 tables HL7nnnn, urn:id:X -> X, other L; required |
| OBR-5             | ServiceRequest.priority                             | stat S, asap A, urgent A, routine R       |
| OBR-6             | occurrenceDateTime / occurrencePeriod.start         | DTM                                       |
| OBR-7             | Specimen.collection.collected[x]                    | DTM of the first specimen                 |
| OBR-11            | ServiceRequest.intent = reflex-order                | G                                         |
| OBR-15            | Specimen.type (ORM only)                            | SPS.1 as subcomponents                    |
| OBR-31            | ServiceRequest.reasonCode[]                         | CWE                                       |
| NTE-3             | ServiceRequest.note[].text                          | one NTE per note, NTE-2 P                 |
| TQ1-7/8/9         | occurrence[x], priority (OML only)                  | DTM, DTM, CWE priority^text^HL70485       |
| SPM-2             | Specimen.identifier (PLAC / FILL), accessionIdentifier | EIP placer EI ^ filler EI             |
| SPM-4             | Specimen.type                                       | CWE; required                             |
| SPM-7 / SPM-8     | Specimen.collection.method / bodySite               | CWE                                       |
| SPM-12            | Specimen.collection.quantity                        | CQ                                        |
| SPM-17 / SPM-18   | Specimen.collection.collected[x] / receivedTime     | DR / DTM                                  |
"""
from simpul.mappings.fhir_to_v2.messages import build_oml_o21, build_orm_o01
from simpul.mappings.fhir_to_v2.staff import build_mfn_m02
from simpul.v2 import MessageHeader

__all__ = ["MessageHeader", "build_mfn_m02", "build_oml_o21", "build_orm_o01"]
