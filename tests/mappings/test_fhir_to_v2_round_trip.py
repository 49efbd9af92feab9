"""v2 -> FHIR (the inbound maps) -> v2 (fhir_to_v2) keeps the order's identifiers, codes, priority, patient."""
from __future__ import annotations

import pathlib
from typing import Any

import pytest

from simpul.mappings import load_mapping
from simpul.mappings.fhir_to_v2 import MessageHeader, build_oml_o21, build_orm_o01
from simpul.mappings.messages import message_map

ORDER_SEGMENTS = [
    "PID|1||3174012345^^^NIK~RM-0042^^^RS&1.2.360.9&ISO^MR||Santoso^Budi^Adi||19800203|M",
    "PV1|1|O|||||||||||||||||V-77^^^RSUD^VN",
    "ORC|NW|ORD-1^HIS^1.2.3.4^ISO|F-9^LAB||||||20240501083000+0700",
    "OBR|1|ORD-1^HIS^1.2.3.4^ISO|F-9^LAB|2345-7^Glucose^LN^GLU^Glukosa^L|S",
]
ORM = "\r".join(["MSH|^~\\&|HIS|RS|LIS|LAB|20240501100000+0700||ORM^O01^ORM_O01|C1|P|2.5.1",
                 *ORDER_SEGMENTS]) + "\r"
OML = "\r".join(["MSH|^~\\&|HIS|RS|LIS|LAB|20240501100000+0700||OML^O21^OML_O21|C2|P|2.5.1",
                 *ORDER_SEGMENTS, "SPM|1|SP-1&HIS&1.2.3.4&ISO||119297000^Blood specimen^SCT"]) + "\r"


def inbound_map():  # type: ignore[no-untyped-def]
    """The v2 -> FHIR mapping; a missing ORM/OML map is a failure, not a skip (both are shipped)."""
    assert message_map("ORM", "O01") is not None and message_map("OML", "O21") is not None, \
        "the v2_to_fhir ORM^O01 / OML^O21 maps are missing"
    return load_mapping("v2_to_fhir", base_dir=pathlib.Path(__file__).parent)


def the(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    (found,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]
    return found


def fields(text: str, name: str) -> list[str]:
    (segment,) = [s for s in text.split("\r") if s.startswith(name + "|")]
    return segment.split("|") + [""] * 40


def order_facts(bundle: dict[str, Any]) -> dict[str, Any]:
    request, patient = the(bundle, "ServiceRequest"), the(bundle, "Patient")
    return {
        "order identifiers": request["identifier"],
        "code": request["code"],
        "priority": request.get("priority"),
        "status": request["status"],
        "patient identifiers": patient["identifier"],
        "patient name": patient["name"],
        "birth date": patient.get("birthDate"),
        "gender": patient.get("gender"),
    }


@pytest.mark.parametrize("original, build", [(ORM, build_orm_o01), (OML, build_oml_o21)],
                         ids=["ORM_O01", "OML_O21"])
def test_round_trip_keeps_the_order_and_the_patient(original: str, build) -> None:  # type: ignore[no-untyped-def]
    mapping = inbound_map()
    first = mapping.map(original)
    # Same sender as the original: local (CWE-3 L) code systems are scoped by MSH-4.
    rebuilt = build(first, MessageHeader(sending_application="HIS", sending_facility="RS", control_id="RT-1"))
    second = mapping.map(rebuilt)

    assert order_facts(second) == order_facts(first)
    # The v2 fields themselves survive as well.
    for name in ("ORC", "OBR"):
        assert fields(rebuilt, name)[2].split("^")[0] == "ORD-1"
        assert fields(rebuilt, name)[3].split("^")[0] == "F-9"
    assert fields(rebuilt, "OBR")[4].split("^")[:3] == ["2345-7", "Glucose", "LN"]
    assert fields(rebuilt, "OBR")[4].split("^")[3:6] == ["GLU", "Glukosa", "L"]
    assert fields(rebuilt, "OBR")[5] == "S"
    assert fields(rebuilt, "ORC")[1] == "NW"
    pid = fields(rebuilt, "PID")
    assert [r.split("^")[0] for r in pid[3].split("~")] == ["3174012345", "RM-0042"]
    assert pid[5].split("^")[:3] == ["Santoso", "Budi", "Adi"] and pid[7] == "19800203" and pid[8] == "M"


def test_round_trip_keeps_the_specimen_of_an_oml() -> None:
    mapping = inbound_map()
    first = mapping.map(OML)
    second = mapping.map(build_oml_o21(first, MessageHeader(control_id="RT-2")))

    assert the(second, "Specimen")["type"] == the(first, "Specimen")["type"]
    assert the(second, "Specimen").get("identifier") == the(first, "Specimen").get("identifier")
