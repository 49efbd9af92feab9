"""FHIR ServiceRequest -> OMI^O23: the imaging order the RIS gets; its IPC agrees with the worklist."""
from __future__ import annotations

import pathlib
from typing import Any

import pytest

from simpul.errors import MappingError
from simpul.mappings import load_mapping
from simpul.mappings.fhir_to_v2 import MessageHeader, build_omi_o23
from simpul.v2 import study_uid_for_accession

PLAC = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "PLAC"}]}
ACSN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]}


def request(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order", "priority": "stat",
        "identifier": [{"type": PLAC, "value": "RAD-7"}, {"type": ACSN, "value": "ACC-7"}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "24627-2", "display": "CT Chest"},
                            {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT"}]},
        "subject": {"reference": "#p"},
        "contained": [{"resourceType": "Patient", "id": "p", "identifier": [{"value": "MR7"}],
                       "name": [{"family": "Wibowo", "given": ["Sari"]}]}]}
    base.update(changes)
    return base


def segment(text: str, name: str) -> list[str]:
    (found,) = [s for s in text.split("\r") if s.startswith(name + "|")]
    return found.split("|") + [""] * 20


def test_ipc_carries_accession_ids_study_uid_and_modality() -> None:
    text = build_omi_o23(request(), MessageHeader(receiving_application="RIS", control_id="C7"))
    assert segment(text, "MSH")[8] == "OMI^O23^OMI_O23"
    ipc = segment(text, "IPC")
    assert ipc[1:6] == ["ACC-7", "RAD-7", study_uid_for_accession("ACC-7"), "RAD-7", "CT^^DCM"]
    assert segment(text, "OBR")[18] == "ACC-7"
    assert segment(text, "TQ1")[9].startswith("S^")


def test_without_an_accession_identifier_the_placer_number_is_the_accession() -> None:
    plain = request(identifier=[{"type": PLAC, "value": "RAD-8"}])
    assert segment(build_omi_o23(plain), "IPC")[1] == "RAD-8"


def test_an_order_without_a_placer_number_is_refused_naming_the_element() -> None:
    with pytest.raises(MappingError, match=r"ORC-2: ServiceRequest.identifier"):
        build_omi_o23(request(identifier=[]))


def test_the_inbound_map_reads_the_same_study_uid_back() -> None:
    bundle = load_mapping("v2_to_fhir", base_dir=pathlib.Path(__file__).parent).map(build_omi_o23(request()))
    studies = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"]
    assert studies and studies[0]["identifier"][0]["value"] == f"urn:oid:{study_uid_for_accession('ACC-7')}"
