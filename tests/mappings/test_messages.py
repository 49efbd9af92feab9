"""Message maps: ADT events, merge, orders, lab and radiology results, DFT, SIU, MDM; determinism and replay."""
from __future__ import annotations

import base64

import httpx
import orjson
import pytest

from tests.fakes.fhir_server import FakeFhirServer
from tests.mappings.conftest import MSH, check_bundle, entry_of, make_mapping, msg, resources, seg

PID = seg("PID", f1="1", f3="3171234567890001^^^NIK^NNIDN~RM-7^^^RSUD^MR", f5="Santoso^Budi", f7="19800212",
          f8="M", f18="ACC-1^^^RSUD^AN")


def adt(event: str, *segs: str):  # type: ignore[no-untyped-def]
    b = make_mapping().map(msg(MSH.format(type=f"ADT^{event}"), f"EVN|{event}|20240115083000+0700", PID, *segs))
    check_bundle(b)
    return b


def test_adt_a01_patient_encounter_and_conditional_requests() -> None:
    b = adt("A01", seg("PV1", f1="1", f2="I", f3="W3^301^A^RSUD", f7="D1^Pratama^Rudi^^^^^^RSUD", f10="MED",
                       f19="V-9^^^RSUD^VN", f44="20240115080000+0700"), "NK1|1|Santoso^Siti|SPO^Spouse", "AL1|1|DA|70618^Penicillin^RXNORM|SV|Rash",
            "DG1|1||A09^Gastroenteritis^I10|||A", seg("IN1", f1="1", f2="JKN", f3="BPJS01", f4="BPJS Kesehatan", f12="20240101", f13="20241231", f17="SEL"),
            "PR1|1||0DTJ4ZZ^Appendectomy^I10P||20240115120000+0700", "GT1|1||Santoso^Budi")
    pat = entry_of(b, "Patient")
    # The identity policy matches on the hospital's MR, not on the NIK listed first (not configured).
    assert pat["request"] == {"method": "PUT", "url": "Patient?identifier=urn:id:RSUD|RM-7"}
    enc = entry_of(b, "Encounter")
    assert enc["resource"]["status"] == "in-progress"
    assert enc["resource"]["class"]["code"] == "IMP"
    assert enc["resource"]["subject"]["reference"] == pat["fullUrl"]
    assert enc["resource"]["period"] == {"start": "2024-01-15T08:00:00+07:00"}
    assert enc["resource"]["participant"][0]["type"][0]["coding"][0]["code"] == "ATND"
    assert enc["resource"]["diagnosis"][0]["use"]["coding"][0]["code"] == "AD"
    assert entry_of(b, "Practitioner")["request"]["method"] == "POST"  # conditional create, never overwrite
    rp = resources(b, "RelatedPerson")[0]
    assert rp["relationship"][0]["coding"][0] == {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
                                                  "code": "SPS", "display": "Spouse"}
    allergy = resources(b, "AllergyIntolerance")[0]
    assert allergy["category"] == ["medication"] and allergy["reaction"][0]["severity"] == "severe"
    cov = resources(b, "Coverage")[0]
    assert cov["subscriber"]["reference"] == pat["fullUrl"] and cov["period"]["start"] == "2024-01-01"
    assert resources(b, "Procedure")[0]["performedDateTime"] == "2024-01-15T12:00:00+07:00"


@pytest.mark.parametrize("event, pv1_tail, status", [
    ("A03", "", "finished"), ("A11", "", "cancelled"), ("A04", "", "planned"), ("A08", "", "in-progress"),
    ("A02", "", "in-progress"), ("A13", "", "in-progress"),
])
def test_adt_event_decides_encounter_status(event: str, pv1_tail: str, status: str) -> None:
    b = adt(event, "PV1|1|I|W3^301^A" + pv1_tail)
    assert resources(b, "Encounter")[0]["status"] == status


def test_discharge_time_finishes_the_encounter() -> None:
    pv1 = "|".join(["PV1", "1", "I"] + [""] * 41 + ["20240110", "20240115093000+0700"])
    b = adt("A08", pv1)
    enc = resources(b, "Encounter")[0]
    assert enc["status"] == "finished" and enc["period"]["end"] == "2024-01-15T09:30:00+07:00"


def test_a40_merge_links_both_patients() -> None:
    b = adt("A40", "MRG|RM-OLD^^^RSUD^MR")
    survivor, merged = resources(b, "Patient")
    by_url = {e["resource"]["identifier"][0]["value"]: e["fullUrl"] for e in b["entry"]
              if e["resource"]["resourceType"] == "Patient"}
    assert survivor["link"] == [{"other": {"reference": by_url["RM-OLD"]}, "type": "replaces"}]
    assert merged["active"] is False
    assert merged["link"] == [{"other": {"reference": by_url["3171234567890001"]}, "type": "replaced-by"}]


def lab_oru() -> str:
    return msg(MSH.format(type="ORU^R01^ORU_R01"), PID, "PV1|1|O",
               "ORC|RE|PO1^SIMRS|FO1^LIS^2.16.1^ISO||CM",
               seg("OBR", f1="1", f2="PO1^SIMRS", f3="FO1^LIS^2.16.1^ISO", f4="58410-2^CBC^LN",
                   f7="20240115090000+0700", f25="F"),
               "OBX|1|NM|718-7^Hemoglobin^LN||13.5|g/dL^g/dL^UCUM|12-16|N|||F",
               "NTE|1||haemolysed \\T\\ repeated",
               "OBX|2|NM|789-8^RBC^LN||4.1|10*6/uL^^UCUM|4-5|L|||C",
               seg("SPM", f1="1", f2="SP1&LIS", f4="BLD^Blood^HL70487", f17="20240115084500+0700"))


def test_oru_lab_report_observations_and_specimen() -> None:
    b = make_mapping().map(lab_oru())
    check_bundle(b)
    dr = resources(b, "DiagnosticReport")[0]
    obs = resources(b, "Observation")
    assert dr["status"] == "final" and len(dr["result"]) == 2 == len(obs)
    assert obs[0]["valueQuantity"]["value"] == 13.5 and obs[0]["referenceRange"][0]["text"] == "12-16"
    assert obs[0]["referenceRange"][0]["low"]["value"] == 12 and obs[0]["referenceRange"][0]["high"]["code"] == "g/dL"
    assert obs[0]["note"] == [{"text": "haemolysed & repeated"}]
    assert obs[1]["status"] == "corrected" and obs[1]["interpretation"][0]["coding"][0]["code"] == "L"
    sr = entry_of(b, "ServiceRequest")
    assert sr["request"]["url"] == "ServiceRequest?identifier=urn:id:SIMRS|PO1"
    assert dr["basedOn"][0]["reference"] == sr["fullUrl"]
    assert resources(b, "Specimen")[0]["collection"]["collectedDateTime"] == "2024-01-15T08:45:00+07:00"


def test_radiology_narrative_and_study_uid() -> None:
    text = msg(MSH.format(type="ORU^R01^ORU_R01"), PID,
               seg("OBR", f1="1", f3="ACC1^RIS", f4="71020^Chest XR^C4", f7="20240115090000+0700", f24="RAD",
                   f25="F"),
               "OBX|1|UI|113014^DICOM Study^DCM||1.2.840.113619.2.55.3||||||F",
               "OBX|2|TX|59776-5^Findings^LN||No consolidation.~Heart size normal.||||||F",
               "OBX|3|TX|19005-8^Impression^LN||Normal chest.||||||F")
    b = make_mapping().map(text)
    check_bundle(b)
    dr = resources(b, "DiagnosticReport")[0]
    assert dr["conclusion"] == "No consolidation.\nHeart size normal.\nNormal chest."
    assert base64.b64decode(dr["presentedForm"][0]["data"]).decode() == dr["conclusion"]
    study = entry_of(b, "ImagingStudy")
    assert study["resource"]["identifier"] == [{"system": "urn:dicom:uid", "value": "urn:oid:1.2.840.113619.2.55.3"}]
    assert study["request"]["ifNoneExist"] == "identifier=urn:dicom:uid|urn:oid:1.2.840.113619.2.55.3"
    assert dr["imagingStudy"][0]["reference"] == study["fullUrl"]
    assert not resources(b, "Observation")


def test_orm_service_request() -> None:
    text = msg(MSH.format(type="ORM^O01"), PID, "PV1|1|O",
               seg("ORC", f1="NW", f2="PO9^SIMRS", f7="^^^^^S", f9="20240115080000+0700", f12="D1^Pratama^Rudi"),
               "OBR|1|PO9^SIMRS||24331-1^Lipid panel^LN", "NTE|1||fasting", "DG1|1||E78.5^Hyperlipidemia^I10",
               "OBX|1|NM|29463-7^Weight^LN||70|kg^kg^UCUM|||||F")
    b = make_mapping().map(text)
    check_bundle(b)
    sr = resources(b, "ServiceRequest")[0]
    assert (sr["status"], sr["intent"], sr["priority"]) == ("active", "order", "stat")
    assert sr["code"]["coding"][0]["code"] == "24331-1" and sr["note"] == [{"text": "fasting"}]
    assert sr["authoredOn"] == "2024-01-15T08:00:00+07:00"
    assert len(sr["reasonReference"]) == 1 and len(sr["supportingInfo"]) == 1


def test_dft_charge_and_credit() -> None:
    text = msg(MSH.format(type="DFT^P03"), PID, "PV1|1|O",
               "FT1|1|T100||20240115|20240115083000+0700|CG|99213^Visit^C4|||2|150000&IDR",
               "FT1|2|T101||20240115|20240115083000+0700|CD|99213^Visit^C4|||1|150000&IDR",
               "FT1|3|T102||20240115||PY|PAY^Payment")
    b = make_mapping().map(text)
    check_bundle(b)
    charge, credit = resources(b, "ChargeItem")
    assert charge["quantity"] == {"value": 2} and charge["priceOverride"] == {"value": 150000, "currency": "IDR"}
    assert credit["quantity"] == {"value": -1} and credit["priceOverride"]["value"] == -150000
    assert charge["account"][0]["reference"] == entry_of(b, "Account")["fullUrl"]
    assert entry_of(b, "ChargeItem")["request"]["url"] == "ChargeItem?identifier=urn:id:RSUD|T100"


@pytest.mark.parametrize("event, status", [("S12", "booked"), ("S15", "cancelled")])
def test_siu_appointment(event: str, status: str) -> None:
    text = msg(MSH.format(type=f"SIU^{event}"),
               "SCH|A1^SIMRS|||||ROUTINE^Routine|||30|min|^^^202401200900+0700||||||||||||||Booked", PID,
               "AIS|1||CONS^Consultation", "AIP|1||D1^Pratama^Rudi", "AIL|1||POLI^1")
    b = make_mapping().map(text)
    check_bundle(b)
    appt = resources(b, "Appointment")[0]
    assert appt["status"] == status
    assert appt["start"] == "2024-01-20T09:00:00+07:00" and appt["end"] == "2024-01-20T09:30:00+07:00"
    assert len(appt["participant"]) == 3


def test_mdm_document_with_base64_content() -> None:
    pdf = base64.b64encode(b"%PDF-1.4 test").decode()
    text = msg(MSH.format(type="MDM^T02"), PID, "PV1|1|O",
               seg("TXA", f1="1", f2="DS^Discharge summary", f3="TX", f4="20240115100000+0700", f9="D1^Pratama^Rudi",
                   f12="DOC-1^SIMRS", f17="AU"),
               f"OBX|1|ED|DS^Discharge^L||^application^pdf^Base64^{pdf}||||||F")
    b = make_mapping().map(text)
    check_bundle(b)
    doc = resources(b, "DocumentReference")[0]
    assert doc["docStatus"] == "final" and doc["content"][0]["attachment"] == {"contentType": "application/pdf",
                                                                               "data": pdf}


def test_mapping_twice_is_byte_identical() -> None:
    m = make_mapping()
    assert orjson.dumps(m.map(lab_oru())) == orjson.dumps(make_mapping().map(lab_oru()))


def test_replay_against_fhir_server_creates_nothing_new() -> None:
    """The Bundle goes to a FHIR endpoint with transaction semantics; a replay changes nothing."""
    m = make_mapping()
    with FakeFhirServer(validate=True) as fhir:
        with httpx.Client(base_url=fhir.base_url, timeout=10) as client:
            for _ in range(2):
                for text in (lab_oru(), msg(MSH.format(type="ADT^A01"), PID, "PV1|1|I|W3^301^A")):
                    r = client.post("", content=orjson.dumps(m.map(text)),
                                    headers={"Content-Type": "application/fhir+json"})
                    assert r.status_code == 200, r.text
            patients = fhir.resources("Patient")
            assert len(patients) == 1
            assert len(fhir.resources("Observation")) == 2
            assert len(fhir.resources("Practitioner")) == 0 or len(fhir.resources("Practitioner")) == 1
            versions = [v for p in patients for v in fhir.history("Patient", p["id"])]
            assert len(versions) == 1  # the second and later updates were no-ops
