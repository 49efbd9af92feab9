"""Datatype rules: DTM precision/offsets, CX systems (NIK), XPN, XAD, XTN, CWE systems, SN, units."""
from __future__ import annotations

import pytest

from simpul.mappings import vocabulary
from tests.mappings.conftest import MSH, check_bundle, make_mapping, msg, resources, seg


def patient(bundle):  # type: ignore[no-untyped-def]
    return resources(bundle, "Patient")[0]


def adt(pid: str, *extra: str, **options):  # type: ignore[no-untyped-def]
    bundle = make_mapping(**options).map(msg(MSH.format(type="ADT^A01^ADT_A01"), pid, *extra))
    check_bundle(bundle)
    return bundle


@pytest.mark.parametrize("v2, fhir, tz", [
    ("2024", "2024", None), ("202401", "2024-01", None), ("20240115", "2024-01-15", None),
    ("202401150830+0700", "2024-01-15T08:30:00+07:00", None),
    ("20240115083012.123-0500", "2024-01-15T08:30:12.123-05:00", None),
    ("20240115083012", "2024-01-15T08:30:12+07:00", None),  # no channel default: MSH-7 offset
    ("20240115083012", "2024-01-15T08:30:12+07:00", "+07:00"),
    ("2024011508", "2024-01-15T08:00:00+07:00", "+07:00"),
])
def test_dtm_precision_and_offsets(v2: str, fhir: str, tz: str | None) -> None:
    opts = {"default_timezone": tz} if tz else {}
    b = adt(seg("PID", f3="42^^^RSUD^MR", f5="Doe^Jo", f29=v2), **opts)
    assert patient(b)["deceasedDateTime"] == fhir


def test_birth_time_goes_to_extension_and_bad_date_is_skipped() -> None:
    b = adt("PID|1||42^^^RSUD||Doe||198002120830+0700|M")
    p = patient(b)
    assert p["birthDate"] == "1980-02-12"
    assert p["_birthDate"]["extension"][0]["valueDateTime"] == "1980-02-12T08:30:00+07:00"
    b = adt("PID|1||42^^^RSUD||Doe||Aug 15, 1942|M")
    assert "birthDate" not in patient(b)


def test_nik_assigning_authority_maps_to_kemkes_system() -> None:
    b = adt("PID|1||3171234567890001^^^NIK^NNIDN~RM1^^^RSUD&2.16.840.1.113883.3.1&ISO^MR||Doe")
    ids = patient(b)["identifier"]
    assert ids[0]["system"] == "https://fhir.kemkes.go.id/id/nik" and ids[0]["value"] == "3171234567890001"
    assert ids[1]["system"] == "urn:oid:2.16.840.1.113883.3.1"
    assert ids[1]["type"]["coding"][0]["code"] == "MR"


def test_identifier_system_override_per_authority() -> None:
    b = adt("PID|1||RM1^^^RSUD^MR||Doe", identifier_systems={"RSUD": "https://rsud.example.id/mrn"})
    assert patient(b)["identifier"][0]["system"] == "https://rsud.example.id/mrn"


def test_xpn_repetitions_and_name_use() -> None:
    b = adt("PID|1||42^^^X||Santoso^Budi^Adi^Jr^Bpk^^L~Budi^^^^^^N|Siti")
    names = patient(b)["name"]
    assert names[0] == {"use": "official", "family": "Santoso", "given": ["Budi", "Adi"], "prefix": ["Bpk"],
                        "suffix": ["Jr"]}
    assert names[1]["use"] == "nickname"
    assert patient(b)["extension"][0]["valueString"] == "Siti"


def test_xad_address() -> None:
    b = adt(seg("PID", f3="42^^^X", f5="Doe", f11="Jl. Merdeka 10^RT 01^Jakarta^DKI^10110^ID^H^^Gambir"))
    assert patient(b)["address"] == [{"use": "home", "line": ["Jl. Merdeka 10", "RT 01"], "city": "Jakarta",
                                      "district": "Gambir", "state": "DKI", "postalCode": "10110",
                                      "country": "ID"}]


def test_xtn_phone_email_and_work() -> None:
    b = adt(seg("PID", f3="42^^^X", f5="Doe", f13="^PRN^PH^^62^21^5550101~^NET^Internet^a@b.id~0812345^PRN^CP",
                f14="^WPN^PH^^^^777"))
    assert patient(b)["telecom"] == [
        {"system": "phone", "value": "+62 21 5550101", "use": "home"},
        {"system": "email", "value": "a@b.id", "use": "home"},
        {"system": "phone", "value": "0812345", "use": "mobile"},
        {"system": "phone", "value": "777", "use": "work"},
    ]


def test_unknown_gender_code_is_kept_and_counted() -> None:
    m = make_mapping()
    b = m.map(msg(MSH.format(type="ADT^A01"), "PID|1||42^^^X||Doe|||Q"))
    check_bundle(b)
    p = patient(b)
    assert "gender" not in p
    assert p["_gender"]["extension"][0]["valueCoding"] == {
        "system": "http://terminology.hl7.org/CodeSystem/v2-0001", "code": "Q"}
    assert m.unmapped_codes["0001:Q"] == 1


def oru(*obx: str, **options):  # type: ignore[no-untyped-def]
    b = make_mapping(**options).map(msg(MSH.format(type="ORU^R01^ORU_R01"), "PID|1||42^^^X||Doe",
                                        "OBR|1||F1^LIS|58410-2^CBC^LN", *obx))
    check_bundle(b)
    return resources(b, "Observation")


def test_cwe_coding_systems_and_text() -> None:
    obs = oru("OBX|1|CWE|94500-6^SARS-CoV-2 RNA^LN^LOC1^Covid PCR^L^^^Covid test||260373001^Detected^SCT||||||F")
    assert obs[0]["code"] == {"coding": [
        {"system": "http://loinc.org", "code": "94500-6", "display": "SARS-CoV-2 RNA"},
        {"system": "urn:id:local:RSUD:L", "code": "LOC1", "display": "Covid PCR"}], "text": "Covid test"}
    assert obs[0]["valueCodeableConcept"]["coding"][0]["system"] == "http://snomed.info/sct"


def test_code_system_override() -> None:
    obs = oru("OBX|1|ST|K1^Kolesterol^LABLOCAL||ok||||||F", code_systems={"LABLOCAL": "https://lab.example.id/cs"})
    assert obs[0]["code"]["coding"][0]["system"] == "https://lab.example.id/cs"


@pytest.mark.parametrize("vtype, value, key, expected", [
    ("NM", "7.5", "valueQuantity", {"value": 7.5, "unit": "mmol/L", "system": "http://unitsofmeasure.org",
                                    "code": "mmol/L"}),
    ("SN", "<^5", "valueQuantity", {"value": 5, "comparator": "<", "unit": "mmol/L",
                                    "system": "http://unitsofmeasure.org", "code": "mmol/L"}),
    ("SN", "^10^-^20", "valueRange", {"low": {"value": 10, "unit": "mmol/L", "system": "http://unitsofmeasure.org",
                                              "code": "mmol/L"},
                                      "high": {"value": 20, "unit": "mmol/L", "system": "http://unitsofmeasure.org",
                                               "code": "mmol/L"}}),
    ("SN", "^1^:^128", "valueRatio", {"numerator": {"value": 1, "unit": "mmol/L",
                                                    "system": "http://unitsofmeasure.org", "code": "mmol/L"},
                                      "denominator": {"value": 128}}),
    ("TX", "line one~line two", "valueString", "line one\nline two"),
    ("DT", "20240115", "valueDateTime", "2024-01-15"),
    ("TM", "0830", "valueTime", "08:30:00"),
    ("NM", "see note", "valueString", "see note"),
])
def test_obx_value_types(vtype: str, value: str, key: str, expected: object) -> None:
    obs = oru(f"OBX|1|{vtype}|X1^Test^LN||{value}|mmol/L^mmol/L^UCUM|||||F")
    assert obs[0][key] == expected


def test_obx_status_x_gives_cancelled_and_data_absent() -> None:
    obs = oru("OBX|1|NM|X1^Test^LN||||||||X")
    assert obs[0]["status"] == "cancelled"
    assert obs[0]["dataAbsentReason"]["coding"][0]["code"] == "not-performed"


def test_vocabulary_tables_name_their_source() -> None:
    for name in ("0001", "0004", "0038", "0078", "0085", "0119", "0123", "0203"):
        t = vocabulary.table(name)
        assert t.source and t.entries, name
