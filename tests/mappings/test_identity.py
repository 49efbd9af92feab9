"""Patient identity policy: what may find an existing Patient, and what never does (finding 1)."""
from __future__ import annotations

import pytest

from simpul.mappings.identity import is_placeholder
from tests.mappings.conftest import check_bundle, entry_of, make_mapping, msg, seg

MSH = "MSH|^~\\&|SIMRS|RSUD|HUB|HUB|20240115083000+0700||ADT^A04|CTRL-{n}|P|2.5.1{tail}"


def adt(pid: str, *, n: int = 1, country: str = "", **options):  # type: ignore[no-untyped-def]
    tail = f"|||||{country}" if country else ""
    mapping = make_mapping(**options)
    bundle = mapping.map(msg(MSH.format(n=n, tail=tail), "EVN|A04|20240115083000+0700", pid))
    check_bundle(bundle)
    return bundle, mapping


def test_placeholder_ssn_without_assigning_authority_never_becomes_a_match_key() -> None:
    # The reported shape: PID-3 without CX-4, PID-19 holding the placeholder 999999999.
    pid = seg("PID", f1="1", f3="448812", f5="Doe^Jane", f8="F", f19="999999999")
    first, mapping = adt(pid, n=1)
    second, _ = adt(pid.replace("Jane", "Anne"), n=2)
    for bundle in (first, second):
        request = entry_of(bundle, "Patient")["request"]
        assert "?" not in request["url"], "a conditional match on an unscoped value would merge patients"
        assert request["method"] == "PUT" and request["url"].startswith("Patient/")
    # Two messages, two records: a duplicate can be merged later, an overwrite cannot be undone.
    assert entry_of(first, "Patient")["request"]["url"] != entry_of(second, "Patient")["request"]["url"]
    assert mapping.last_report.counts["unmatched_patient"] == 1
    ssn = [i for i in entry_of(first, "Patient")["resource"]["identifier"] if i["value"] == "999999999"][0]
    assert "system" not in ssn  # no MSH-17: not claimed to be a US SSN


def test_mr_with_assigning_authority_is_the_match_key_before_pi() -> None:
    pid = seg("PID", f1="1", f3="E-77^^^ENT^PI~RM-1^^^RSUD^MR", f5="Santoso^Budi")
    bundle, mapping = adt(pid)
    assert entry_of(bundle, "Patient")["request"]["url"] == "Patient?identifier=urn:id:RSUD|RM-1"
    assert mapping.last_report.counts["unmatched_patient"] == 0


def test_configured_system_scopes_a_bare_pid_3_and_placeholders_are_skipped() -> None:
    policy = {"system": "https://rsud.example.id/id/mrn", "placeholders": ["TMP-1"]}
    bundle, _ = adt(seg("PID", f1="1", f3="000000~RM-9", f5="Santoso^Budi"), patient_identity=policy)
    assert entry_of(bundle, "Patient")["request"]["url"] == \
        "Patient?identifier=https://rsud.example.id/id/mrn|RM-9"
    bundle, mapping = adt(seg("PID", f1="1", f3="TMP-1", f5="Santoso^Budi"), patient_identity=policy)
    assert "?" not in entry_of(bundle, "Patient")["request"]["url"]
    assert mapping.last_report.counts["unmatched_patient"] == 1


def test_nik_is_matched_only_when_the_channel_lists_it() -> None:
    pid = seg("PID", f1="1", f3="3171234567890001^^^NIK^NNIDN", f5="Santoso^Budi")
    bundle, _ = adt(pid)
    assert "?" not in entry_of(bundle, "Patient")["request"]["url"]
    bundle, _ = adt(pid, patient_identity={"match": ["MR", "NNIDN"]})
    assert entry_of(bundle, "Patient")["request"]["url"] == \
        "Patient?identifier=https://fhir.kemkes.go.id/id/nik|3171234567890001"


def test_pid_19_system_follows_msh_17_and_matches_only_when_configured() -> None:
    pid = seg("PID", f1="1", f3="RM-1", f5="Santoso^Budi", f19="3171234567890001")
    bundle, _ = adt(pid, country="IDN")
    nik = entry_of(bundle, "Patient")["resource"]["identifier"][-1]
    assert nik["system"] == "https://fhir.kemkes.go.id/id/nik"
    assert nik["type"]["coding"][0]["code"] == "NNIDN"
    assert "?" not in entry_of(bundle, "Patient")["request"]["url"]
    bundle, _ = adt(pid, country="IDN", patient_identity={"match": ["MR", "PID-19"]})
    assert entry_of(bundle, "Patient")["request"]["url"] == \
        "Patient?identifier=https://fhir.kemkes.go.id/id/nik|3171234567890001"
    bundle, _ = adt(pid, country="USA")
    assert entry_of(bundle, "Patient")["resource"]["identifier"][-1]["system"] == "http://hl7.org/fhir/sid/us-ssn"


@pytest.mark.parametrize("value, placeholder", [
    ("999999999", True), ("000-00-0000", True), ("123456789", True), ("UNKNOWN", True), ("1", True),
    ("RM-000123", False), ("3171234567890001", False), ("448812", False)])
def test_placeholder_values(value: str, placeholder: bool) -> None:
    assert is_placeholder(value) is placeholder
