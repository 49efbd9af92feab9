"""Message types added after the first cut: A29, A41, A47, OMI^O23, VXU^V04, SIU S16/S17/S26, DFT^P11, BAR^P01/P12."""
from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from simpul.errors import MappingError, UnsupportedMessageType
from tests.fakes.fhir_server import FakeFhirServer
from tests.mappings.conftest import MSH, check_bundle, entry_of, make_mapping, msg, resources, seg

PID = seg("PID", f1="1", f3="RM-7^^^RSUD^MR", f5="Santoso^Budi", f7="19800212", f8="M", f18="ACC-1^^^RSUD^AN")


def mapped(mtype: str, *segs: str) -> dict[str, Any]:
    b = make_mapping().map(msg(MSH.format(type=mtype), *segs))
    check_bundle(b)
    return b


def test_a29_marks_the_patient_inactive_and_maps_no_visit() -> None:
    b = mapped("ADT^A29", "EVN|A29|20240115083000+0700", PID, "PV1|1|I|W3^301^A")
    (patient,) = resources(b, "Patient")
    assert patient["active"] is False
    assert entry_of(b, "Patient")["request"]["method"] == "PUT"  # never DELETE: references stay valid
    assert resources(b, "Encounter") == []


def test_a41_keeps_the_surviving_account_and_deactivates_the_merged_one() -> None:
    b = mapped("ADT^A41", "EVN|A41|20240115083000+0700", PID, "MRG|||ACC-OLD^^^RSUD^AN")
    accounts = {a["identifier"][0]["value"]: a for a in resources(b, "Account")}
    assert accounts["ACC-1"]["status"] == "active" and accounts["ACC-OLD"]["status"] == "inactive"
    patient_url = entry_of(b, "Patient")["fullUrl"]
    assert accounts["ACC-OLD"]["subject"] == [{"reference": patient_url}]


def test_a41_without_mrg_3_is_a_clear_error() -> None:
    with pytest.raises(MappingError, match="MRG-3"):
        make_mapping().map(msg(MSH.format(type="ADT^A41"), PID, "MRG|RM-1^^^RSUD"))


def test_a47_updates_the_identifier_of_the_same_patient() -> None:
    b = mapped("ADT^A47", "EVN|A47|20240115083000+0700", seg("PID", f1="1", f3="RM-NEW^^^RSUD^MR", f5="Santoso^Budi"),
               "MRG|RM-7^^^RSUD^MR")
    entry = entry_of(b, "Patient")
    assert entry["request"] == {"method": "PUT", "url": "Patient?identifier=urn:id:RSUD|RM-7"}
    assert [(i["value"], i.get("use")) for i in entry["resource"]["identifier"]] == [("RM-NEW", None), ("RM-7", "old")]


def test_a47_against_a_fhir_server_keeps_the_patient_id_and_its_references() -> None:
    m = make_mapping()
    admit = msg(MSH.format(type="ADT^A01"), "EVN|A01|20240115083000+0700", PID, "PV1|1|I|W3^301^A||||||||||||||||V-1^^^RSUD^VN")
    change = msg(MSH.format(type="ADT^A47"), "EVN|A47|20240115090000+0700",
                 seg("PID", f1="1", f3="RM-NEW^^^RSUD^MR", f5="Santoso^Budi"), "MRG|RM-7^^^RSUD^MR")
    with FakeFhirServer(validate=True) as fhir, httpx.Client(base_url=fhir.base_url, timeout=10) as client:
        for text in (admit, change, change):  # the A47 replayed once
            r = client.post("", content=orjson.dumps(m.map(text)), headers={"Content-Type": "application/fhir+json"})
            assert r.status_code == 200, r.text
        (patient,) = fhir.resources("Patient")
        assert {i["value"] for i in patient["identifier"]} == {"RM-NEW", "RM-7"}
        (encounter,) = fhir.resources("Encounter")
        assert encounter["subject"]["reference"] == f"Patient/{patient['id']}"


def omi() -> str:
    return msg(MSH.format(type="OMI^O23^OMI_O23"), PID, "PV1|1|O",
               "ORC|NW|PO-9^SIMRS|FO-9^RIS||SC",
               seg("OBR", f1="1", f2="PO-9^SIMRS", f3="FO-9^RIS", f4="71045^Chest X-ray^C4"),
               "IPC|ACC-55^RIS|RP-1|1.2.840.99.1.7|SPS-1|CR|P1^Chest PA^L|STATION1")


def test_omi_o23_gives_service_request_and_registered_imaging_study() -> None:
    b = mapped("OMI^O23", *omi().split("\r")[1:])
    sr = entry_of(b, "ServiceRequest")
    assert any(i["type"]["coding"][0]["code"] == "ACSN" and i["value"] == "ACC-55"
               for i in sr["resource"]["identifier"])
    study = entry_of(b, "ImagingStudy")
    assert study["request"] == {"method": "POST", "url": "ImagingStudy",
                                "ifNoneExist": "identifier=urn:dicom:uid|urn:oid:1.2.840.99.1.7"}
    res = study["resource"]
    assert res["status"] == "registered" and res["modality"][0]["code"] == "CR"
    assert res["basedOn"] == [{"reference": sr["fullUrl"]}]
    assert res["procedureCode"][0]["coding"][0]["code"] == "P1"


def test_omi_and_a_later_oru_share_one_imaging_study() -> None:
    oru = msg(MSH.format(type="ORU^R01"), PID, "ORC|RE|PO-9^SIMRS|FO-9^RIS||CM",
              seg("OBR", f1="1", f2="PO-9^SIMRS", f3="FO-9^RIS", f4="71045^Chest X-ray^C4", f24="RAD", f25="F"),
              "OBX|1|UI|113014^DICOM Study^DCM||1.2.840.99.1.7||||||F")
    m = make_mapping()
    urls = {entry_of(m.map(t), "ImagingStudy")["fullUrl"] for t in (omi(), oru)}
    assert len(urls) == 1


VXU_SEGMENTS = (
    PID, "PV1|1|R",
    "ORC|RE|4422^SIMRS^2.16.1.1^ISO|13696^IIS^2.16.1.1^ISO|||||||7824^Jackson^Lily",
    seg("RXA", f1="0", f2="1", f3="20210818", f4="20210818", f5="08^HepB^CVX", f6="0.5", f7="mL^mL^UCUM",
        f9="00^New Record^NIP001", f10="7824^Jackson^Lily", f15="LOT-1", f16="20221216", f17="MSD^Merck^MVX",
        f20="CP", f21="A"),
    "RXR|C28161^Intramuscular^NCIT|LD^Left Deltoid^HL70163",
    "OBX|1|CE|64994-7^Funding eligibility^LN|1|V02^VFC eligible^HL70064||||||F|||20210818",
)


def test_vxu_v04_immunization() -> None:
    b = mapped("VXU^V04^VXU_V04", *VXU_SEGMENTS)
    entry = entry_of(b, "Immunization")
    imm = entry["resource"]
    assert entry["request"]["url"] == "Immunization?identifier=urn:oid:2.16.1.1|13696"
    assert imm["status"] == "completed" and imm["primarySource"] is True
    assert imm["vaccineCode"]["coding"][0] == {"system": "http://hl7.org/fhir/sid/cvx", "code": "08", "display": "HepB"}
    assert imm["occurrenceDateTime"] == "2021-08-18"
    assert imm["doseQuantity"] == {"value": 0.5, "unit": "mL", "system": "http://unitsofmeasure.org", "code": "mL"}
    assert imm["lotNumber"] == "LOT-1" and imm["expirationDate"] == "2022-12-16"
    assert imm["route"]["coding"][0]["code"] == "C28161" and imm["site"]["coding"][0]["code"] == "LD"
    maker = next(r for r in resources(b, "Organization") if r.get("name") == "Merck")
    assert maker["identifier"][0] == {"system": "http://hl7.org/fhir/sid/mvx", "value": "MSD"}
    (obs,) = resources(b, "Observation")
    assert obs["partOf"] == [{"reference": entry["fullUrl"]}]


@pytest.mark.parametrize("completion, action, status", [("RE", "A", "not-done"), ("CP", "D", "entered-in-error")])
def test_vxu_refused_and_deleted_doses(completion: str, action: str, status: str) -> None:
    rxa = VXU_SEGMENTS[3].replace("|CP|A", f"|{completion}|{action}")
    b = mapped("VXU^V04", *VXU_SEGMENTS[:3], rxa)
    assert resources(b, "Immunization")[0]["status"] == status


def test_vxu_without_administration_date_is_a_clear_error() -> None:
    rxa = VXU_SEGMENTS[3].replace("|20210818|20210818|", "|||", 1)
    with pytest.raises(MappingError, match="RXA-3"):
        make_mapping().map(msg(MSH.format(type="VXU^V04"), *VXU_SEGMENTS[:3], rxa))


@pytest.mark.parametrize("event, status", [("S16", "cancelled"), ("S17", "entered-in-error"), ("S26", "noshow")])
def test_siu_status_changes(event: str, status: str) -> None:
    b = mapped(f"SIU^{event}", "SCH|A-1^SIMRS|F-1^SCHED||||CANC^Cancelled|||||^^^20240120090000+0700^20240120093000+0700",
               PID, "AIS|1||CONS^Consultation^L")
    assert resources(b, "Appointment")[0]["status"] == status


def test_dft_p11_charges_and_procedures() -> None:
    b = mapped("DFT^P11", "EVN|P11|20240115083000+0700", PID, "PV1|1|O",
               seg("FT1", f1="1", f2="T-1", f4="20240115", f6="CG", f7="71045^Chest X-ray^C4", f10="1", f11="100&IDR"),
               "PR1|1||71045^Chest X-ray^C4||20240115100000+0700",
               seg("FT1", f1="2", f2="T-2", f4="20240115", f6="CD", f7="71045^Chest X-ray^C4", f10="1", f11="100&IDR"))
    charges = {c["identifier"][0]["value"]: c for c in resources(b, "ChargeItem")}
    assert charges["T-1"]["priceOverride"] == {"value": 100, "currency": "IDR"}
    assert charges["T-2"]["priceOverride"]["value"] == -100  # the credit reverses the charge
    assert resources(b, "Procedure")[0]["code"]["coding"][0]["code"] == "71045"


@pytest.mark.parametrize("event", ["P01", "P12"])
def test_bar_account_with_coverage_guarantor_and_diagnoses(event: str) -> None:
    b = mapped(f"BAR^{event}", f"EVN|{event}|20240115083000+0700", PID, "PV1|1|I|W3^301^A",
               "DG1|1||A09^Gastroenteritis^I10|||A", "PR1|1||0DTJ4ZZ^Appendectomy^I10P||20240115120000+0700",
               seg("IN1", f1="1", f2="JKN", f3="BPJS01", f4="BPJS Kesehatan"), "GT1|1||Santoso^Budi")
    account = entry_of(b, "Account")["resource"]
    assert account["identifier"][0]["value"] == "ACC-1"
    coverage_url = entry_of(b, "Coverage")["fullUrl"]
    assert account["coverage"] == [{"coverage": {"reference": coverage_url}, "priority": 1}]
    assert len(account["guarantor"]) == 1
    assert resources(b, "Condition") and resources(b, "Procedure") and resources(b, "Encounter")


def test_ack_stays_unsupported() -> None:
    with pytest.raises(UnsupportedMessageType, match="ACK"):
        make_mapping().map(msg(MSH.format(type="ACK^A01"), "MSA|AA|X1"))
