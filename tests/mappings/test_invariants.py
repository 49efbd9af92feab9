"""FHIR R4 invariants: the checker finds what a server would reject, and our maps never emit it."""
from __future__ import annotations

import pytest

from simpul.errors import MappingError
from simpul.mappings.invariants import broken_invariants, bundle_findings
from simpul.mappings.validation import validate_bundle
from tests.mappings.conftest import make_mapping, msg, seg


def test_a_booked_appointment_without_times_breaks_app_3() -> None:
    appointment = {"resourceType": "Appointment", "status": "booked",
                   "participant": [{"actor": {"display": "x"}, "status": "accepted"}]}
    assert [f.split(":")[0] for f in broken_invariants(appointment)] == ["app-3"]
    assert broken_invariants({**appointment, "status": "proposed"}) == []


@pytest.mark.parametrize("resource, key", [
    ({"resourceType": "Encounter", "status": "finished", "class": {"code": "IMP"},
      "period": {"start": "2024-01-16", "end": "2024-01-15"}}, "per-1"),
    ({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueString": "a",
      "dataAbsentReason": {"text": "unknown"}}, "obs-6"),
    ({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
      "valueQuantity": {"value": 1, "code": "mg"}}, "qty-3"),
    ({"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "x"},
      "presentedForm": [{"data": "AAAA"}]}, "att-1"),
    ({"resourceType": "Organization"}, "org-1"),
])
def test_each_kind_of_invariant_is_caught(resource: dict, key: str) -> None:
    assert key in [f.split(":")[0] for f in broken_invariants(resource)]


def test_validate_true_refuses_a_bundle_that_breaks_an_invariant() -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "fullUrl": "urn:uuid:0b0e4b8a-2f4e-4d0e-9d7c-1a2b3c4d5e6f",
        "resource": {"resourceType": "Appointment", "status": "booked",
                     "participant": [{"actor": {"display": "x"}, "status": "accepted"}]},
        "request": {"method": "POST", "url": "Appointment"}}]}
    with pytest.raises(MappingError, match="app-3"):
        validate_bundle(bundle)


def test_a_siu_without_any_zone_maps_to_a_bundle_without_findings() -> None:
    text = msg("MSH|^~\\&|SCHED|RSUD|HUB|RSUD|20240115090000||SIU^S12|S-1|P|2.5.1",
               seg("SCH", f1="A-1^SCHED", f11="^^^20240120093000^20240120100000", f25="Booked"),
               seg("PID", f1="1", f3="RM-1^^^RSUD^MR", f5="Wijaya^Sari"))
    bundle = make_mapping(validate=True).map(text)   # validate: true raises on any finding
    assert bundle_findings(bundle) == []
