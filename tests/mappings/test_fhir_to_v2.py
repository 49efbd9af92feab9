"""FHIR ServiceRequest (+ Patient, Encounter, Specimen, Practitioner) -> ORM^O01 / OML^O21 v2.5.1."""
from __future__ import annotations

import copy
from typing import Any

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from simpul.errors import MappingError
from simpul.mappings.fhir_to_v2 import MessageHeader, build_oml_o21, build_orm_o01

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
HEADER = MessageHeader(sending_application="HIS", receiving_application="LIS", control_id="CTRL-1",
                       message_datetime="20240501100000+0700")


def typed(code: str, system: str, value: str) -> dict[str, Any]:
    return {"type": {"coding": [{"system": V2_0203, "code": code}]}, "system": system, "value": value}


def order_bundle() -> dict[str, Any]:
    """A transaction Bundle as the engine would hold it: urn:uuid references between entries."""
    resources = [
        ("urn:uuid:p", {"resourceType": "Patient",
                        "identifier": [{"system": "https://fhir.kemkes.go.id/id/nik", "value": "3174012345"},
                                       typed("MR", "urn:oid:1.2.360.9", "RM-0042")],
                        "name": [{"family": "Santoso", "given": ["Budi", "Adi"], "use": "official"}],
                        "birthDate": "1980-02-03", "gender": "male"}),
        ("urn:uuid:e", {"resourceType": "Encounter", "status": "in-progress",
                        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                  "code": "AMB"},
                        "identifier": [typed("VN", "urn:id:RSUD", "V-77")],
                        "subject": {"reference": "urn:uuid:p"},
                        "period": {"start": "2024-05-01T08:00:00+07:00"}}),
        ("urn:uuid:dr", {"resourceType": "Practitioner",
                         "identifier": [{"system": "urn:id:SIP", "value": "D-12"}],
                         "name": [{"family": "Wijaya", "given": ["Sari"], "prefix": ["dr."]}]}),
        ("urn:uuid:s", {"resourceType": "Specimen",
                        "identifier": [typed("PLAC", "urn:oid:1.2.3.4", "SP-1")],
                        "type": {"coding": [{"system": "http://snomed.info/sct", "code": "119297000",
                                             "display": "Blood specimen"}]},
                        "collection": {"collectedDateTime": "2024-05-01T09:15:00+07:00"},
                        "subject": {"reference": "urn:uuid:p"}}),
        ("urn:uuid:sr", {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                         "priority": "stat",
                         "identifier": [typed("PLAC", "urn:oid:1.2.3.4", "ORD-1"),
                                        typed("FILL", "urn:id:LAB", "F-9")],
                         "code": {"coding": [
                             {"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"},
                             {"system": "urn:id:L", "code": "GLU", "display": "Glukosa"}]},
                         "subject": {"reference": "urn:uuid:p"}, "encounter": {"reference": "urn:uuid:e"},
                         "requester": {"reference": "urn:uuid:dr"},
                         "specimen": [{"reference": "urn:uuid:s"}],
                         "authoredOn": "2024-05-01T08:30:00+07:00",
                         "note": [{"text": "fasting | 8h\nsecond line"}]}),
    ]
    return {"resourceType": "Bundle", "type": "transaction",
            "entry": [{"fullUrl": url, "resource": r,
                       "request": {"method": "POST", "url": r["resourceType"]}} for url, r in resources]}


def segments(text: str, name: str) -> list[list[str]]:
    """Fields of every segment called `name`, indexed as the standard numbers them (fields[1] = X-1)."""
    return [s.split("|") for s in text.split("\r") if s.startswith(name + "|")]


def one(text: str, name: str) -> list[str]:
    (found,) = segments(text, name)
    return found + [""] * 40


def resource(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    return next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type)


@pytest.mark.parametrize("build, structure", [(build_orm_o01, "ORM_O01"), (build_oml_o21, "OML_O21")])
def test_message_is_v2_5_1_with_cr_separated_segments_that_hl7apy_accepts(build, structure) -> None:
    text = build(order_bundle(), HEADER)

    assert "\n" not in text and text.endswith("\r")
    msh = text.split("\r")[0].split("|")
    assert msh[8] == f"{structure[:3]}^{structure[4:]}^{structure}"
    assert msh[9] == "CTRL-1" and msh[11] == "2.5.1" and msh[6] == "20240501100000+0700"
    parsed = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    assert parsed.name == structure
    assert [c.name for c in parsed.children] == ["MSH", f"{structure}_PATIENT", f"{structure}_ORDER"]


def test_pid_carries_identifiers_with_assigning_authority_name_birth_date_and_gender() -> None:
    pid = one(build_oml_o21(order_bundle(), HEADER), "PID")

    assert pid[3] == "3174012345^^^NIK~RM-0042^^^&1.2.360.9&ISO^MR"
    assert pid[5] == "Santoso^Budi^Adi^^^^L"
    assert pid[7] == "19800203"
    assert pid[8] == "M"


def test_pv1_carries_patient_class_and_visit_number() -> None:
    pv1 = one(build_orm_o01(order_bundle(), HEADER), "PV1")

    assert pv1[2] == "O"
    assert pv1[19] == "V-77^^^RSUD^VN"
    assert pv1[44] == "20240501080000+0700"


def test_orc_and_obr_carry_order_numbers_code_priority_and_requester() -> None:
    text = build_oml_o21(order_bundle(), HEADER)
    orc, obr = one(text, "ORC"), one(text, "OBR")

    assert orc[1] == "NW"
    assert orc[2] == obr[2] == "ORD-1^^1.2.3.4^ISO"
    assert orc[3] == obr[3] == "F-9^LAB"
    assert orc[9] == "20240501083000+0700"
    assert orc[12] == obr[16] == "D-12^Wijaya^Sari^^^dr.^^^SIP"
    assert obr[4] == "2345-7^Glucose^LN^GLU^Glukosa^L"
    assert obr[5] == "S"
    assert obr[7] == "20240501091500+0700"
    assert one(text, "TQ1")[9] == "S^Stat^HL70485"


def test_orm_puts_timing_in_orc_7_and_specimen_in_obr_15() -> None:
    text = build_orm_o01(order_bundle(), HEADER)
    assert one(text, "ORC")[7] == "^^^^^S"
    assert one(text, "OBR")[15] == "119297000&Blood specimen&SCT"
    assert segments(text, "TQ1") == [] and segments(text, "SPM") == []


def test_oml_has_one_spm_per_specimen() -> None:
    spm = one(build_oml_o21(order_bundle(), HEADER), "SPM")
    assert spm[2] == "SP-1&&1.2.3.4&ISO"
    assert spm[4] == "119297000^Blood specimen^SCT"
    assert spm[17] == "20240501091500+0700"


def test_notes_are_escaped_into_nte() -> None:
    nte = one(build_orm_o01(order_bundle(), HEADER), "NTE")
    assert nte[1:4] == ["1", "P", "fasting \\F\\ 8h\\.br\\second line"]


@pytest.mark.parametrize("status, control", [("active", "NW"), ("revoked", "CA"),
                                             ("entered-in-error", "CA"), ("on-hold", "HD")])
def test_order_control_follows_the_request_status(status: str, control: str) -> None:
    bundle = order_bundle()
    resource(bundle, "ServiceRequest")["status"] = status
    assert one(build_orm_o01(bundle, HEADER), "ORC")[1] == control


@pytest.mark.parametrize("priority, code", [("stat", "S"), ("asap", "A"), ("urgent", "A"), ("routine", "R")])
def test_priority_codes(priority: str, code: str) -> None:
    bundle = order_bundle()
    resource(bundle, "ServiceRequest")["priority"] = priority
    assert one(build_orm_o01(bundle, HEADER), "OBR")[5] == code


def test_a_single_service_request_with_contained_resources() -> None:
    bundle = order_bundle()
    request = copy.deepcopy(resource(bundle, "ServiceRequest"))
    patient = {**resource(bundle, "Patient"), "id": "pt"}
    request.update(contained=[patient], subject={"reference": "#pt"})
    for key in ("encounter", "requester", "specimen"):
        request.pop(key)

    text = build_orm_o01(request, HEADER)
    assert one(text, "PID")[5] == "Santoso^Budi^Adi^^^^L"
    assert segments(text, "PV1") == []


def test_two_orders_for_one_patient_make_two_order_groups() -> None:
    bundle = order_bundle()
    second = copy.deepcopy(resource(bundle, "ServiceRequest"))
    second["identifier"] = [typed("PLAC", "urn:oid:1.2.3.4", "ORD-2")]
    second["code"] = {"coding": [{"system": "http://loinc.org", "code": "718-7"}]}
    bundle["entry"].append({"fullUrl": "urn:uuid:sr2", "resource": second})

    text = build_oml_o21(bundle, HEADER)
    assert [o[2] for o in segments(text, "ORC")] == ["ORD-1^^1.2.3.4^ISO", "ORD-2^^1.2.3.4^ISO"]
    assert [o[1] for o in segments(text, "OBR")] == ["1", "2"]


def test_non_ascii_text_declares_utf8() -> None:
    bundle = order_bundle()
    resource(bundle, "Patient")["name"][0]["family"] = "Sörensen"
    text = build_orm_o01(bundle, HEADER)
    assert text.split("\r")[0].split("|")[17] == "UNICODE UTF-8"


def _without(path: list[str | int]):  # type: ignore[no-untyped-def]
    def change(bundle: dict[str, Any]) -> None:
        target: Any = resource(bundle, str(path[0]))
        for key in path[1:-1]:
            target = target[key]
        del target[path[-1]]
    return change


@pytest.mark.parametrize("change, where, segment, field", [
    (_without(["ServiceRequest", "code"]), "Bundle.entry[4].resource.code", "OBR", 4),
    (_without(["ServiceRequest", "identifier"]), "Bundle.entry[4].resource.identifier", "ORC", 2),
    (_without(["Patient", "identifier"]), "Bundle.entry[0].resource.identifier", "PID", 3),
    (_without(["Patient", "name"]), "Bundle.entry[0].resource.name", "PID", 5),
    (_without(["Specimen", "type"]), "Bundle.entry[3].resource.type", "SPM", 4),
    (lambda b: resource(b, "ServiceRequest").update(status="draft"),
     "Bundle.entry[4].resource.status", "ORC", 1),
    (lambda b: resource(b, "ServiceRequest").update(authoredOn="1 May 2024"),
     "Bundle.entry[4].resource.authoredOn", "ORC", 9),
    (lambda b: resource(b, "Patient").update(gender="M"), "Bundle.entry[0].resource.gender", "PID", 8),
])
def test_invalid_input_names_the_element_path_not_the_value(change, where, segment, field) -> None:
    bundle = order_bundle()
    change(bundle)
    with pytest.raises(MappingError) as caught:
        build_oml_o21(bundle, HEADER)
    assert where in str(caught.value)
    assert (caught.value.segment, caught.value.field) == (segment, field)
    assert "Santoso" not in str(caught.value) and "1 May 2024" not in str(caught.value)


def test_missing_patient_or_order_is_a_mapping_error() -> None:
    bundle = order_bundle()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]
    with pytest.raises(MappingError, match="subject"):
        build_orm_o01(bundle, HEADER)
    with pytest.raises(MappingError, match="no ServiceRequest"):
        build_orm_o01({"resourceType": "Bundle", "type": "collection", "entry": []}, HEADER)
    with pytest.raises(MappingError):
        build_orm_o01("not a dict", HEADER)  # type: ignore[arg-type]


def test_the_hl7apy_structure_check_rejects_a_message_without_an_order() -> None:
    from simpul.mappings.fhir_to_v2.structure import check_structure

    text = "MSH|^~\\&|HIS||LIS||20240501100000||OML^O21^OML_O21|C1|P|2.5.1\rPID|1||1^^^X||A^B\r"
    with pytest.raises(MappingError, match="OML_O21_ORDER"):
        check_structure(text, "OML_O21")
