"""Our FHIR output (the v2_to_fhir transaction Bundle) rebuilt as SATUSEHAT wants each resource.

SATUSEHAT keeps its own ids: the Patient is its IHS number (looked up by NIK), Practitioners and
Locations are registered beforehand (their ids come from the organization's configuration), and
an Encounter carries the org-scoped identifier `http://sys-ids.kemkes.go.id/encounter/{org_id}`
with our visit number. Times go as UTC with an explicit +00:00 offset.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

NIK_SYSTEM = "https://fhir.kemkes.go.id/id/nik"
VITAL_SIGNS = {"8867-4", "9279-1", "8480-6", "8462-4", "8310-5", "29463-7", "8302-2", "59408-5"}
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
CLASS_DISPLAY = {"AMB": "ambulatory", "EMER": "emergency", "IMP": "inpatient encounter", "HH": "home health",
                 "TELE": "telehealth"}


class BuildError(ValueError):
    """Our data lacks something SATUSEHAT requires; the text says what and where it comes from."""


@dataclass
class Visit:
    """The resources of one of our Bundles that SATUSEHAT takes, by kind."""

    patient: dict[str, Any] | None = None
    encounter: dict[str, Any] | None = None
    conditions: list[dict[str, Any]] = field(default_factory=list)
    observations: list[dict[str, Any]] = field(default_factory=list)
    procedures: list[dict[str, Any]] = field(default_factory=list)
    by_url: dict[str, dict[str, Any]] = field(default_factory=dict)

    def referenced(self, reference: dict[str, Any] | None) -> dict[str, Any] | None:
        ref = str((reference or {}).get("reference", ""))
        return self.by_url.get(ref) or self.by_url.get(ref.split("/")[-1])


def read_bundle(bundle: dict[str, Any]) -> Visit:
    if bundle.get("resourceType") != "Bundle":
        raise BuildError("payload is not a FHIR Bundle (use payload: mapped with the v2_to_fhir mapping)")
    visit = Visit()
    for entry in bundle.get("entry", []) or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict):
            continue
        for key in (entry.get("fullUrl"), resource.get("id"), f"{resource.get('resourceType')}/{resource.get('id')}"):
            if key:
                visit.by_url[str(key)] = resource
        kind = resource.get("resourceType")
        if kind == "Patient":
            visit.patient = resource
        elif kind == "Encounter":
            visit.encounter = resource
        elif kind == "Condition":
            visit.conditions.append(resource)
        elif kind == "Observation":
            visit.observations.append(resource)
        elif kind == "Procedure":
            visit.procedures.append(resource)
    return visit


def patient_keys(patient: dict[str, Any]) -> tuple[str, str | None]:
    """(our MRN key 'system|value', NIK or None)."""
    mrn, nik = "", None
    for identifier in patient.get("identifier", []) or []:
        type_ = identifier.get("type", {}) or {}
        codes = {str(c.get("code", "")).upper() for c in type_.get("coding", []) or []} | {str(type_.get("text", "")).upper()}
        if identifier.get("system") == NIK_SYSTEM or "NIK" in codes or "NNIDN" in codes:
            nik = nik or str(identifier.get("value", "")) or None
        elif "MR" in codes and not mrn:
            mrn = f"{identifier.get('system', '')}|{identifier.get('value', '')}"
    if not mrn:
        first = (patient.get("identifier") or [{}])[0]
        mrn = f"{first.get('system', '')}|{first.get('value', '')}"
    return mrn, nik


def visit_number(encounter: dict[str, Any]) -> str:
    for identifier in encounter.get("identifier", []) or []:
        if identifier.get("value"):
            return str(identifier["value"])
    raise BuildError("the Encounter has no visit number (PV1-19): SATUSEHAT needs it as the encounter identifier")


def utc(value: str | None) -> str | None:
    """An instant as UTC with +00:00 (a date alone stays a date)."""
    if not value:
        return None
    if len(value) == 10:
        return value
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc).isoformat(timespec="seconds")


def _local_location_keys(location: dict[str, Any] | None) -> list[str]:
    if not location:
        return []
    keys = [str(i.get("value")) for i in location.get("identifier", []) or [] if i.get("value")]
    return keys + [str(location["name"])] if location.get("name") else keys


def _practitioner_keys(practitioner: dict[str, Any] | None) -> list[str]:
    if not practitioner:
        return []
    return [str(i.get("value")) for i in practitioner.get("identifier", []) or [] if i.get("value")]


@dataclass(frozen=True)
class OrgSettings:
    org_id: str
    locations: dict[str, str]          # our location (PV1-3 key or name) -> SATUSEHAT Location id
    practitioners: dict[str, str]      # our practitioner id (XCN.1) -> SATUSEHAT Practitioner IHS id
    default_location: str | None = None

    def location_for(self, visit: Visit, encounter: dict[str, Any]) -> str:
        for item in encounter.get("location", []) or []:
            for key in _local_location_keys(visit.referenced(item.get("location"))):
                if key in self.locations:
                    return self.locations[key]
        if self.default_location:
            return self.default_location
        raise BuildError("the visit's location has no SATUSEHAT Location id: add it under `locations:` "
                         f"(ours: {', '.join(_local_location_keys_all(visit, encounter)) or 'none in PV1-3'})")

    def practitioner_for(self, visit: Visit, resource: dict[str, Any]) -> str | None:
        for item in resource.get("participant", []) or []:
            for key in _practitioner_keys(visit.referenced(item.get("individual"))):
                if key in self.practitioners:
                    return self.practitioners[key]
        return None


def _local_location_keys_all(visit: Visit, encounter: dict[str, Any]) -> list[str]:
    return [key for item in encounter.get("location", []) or []
            for key in _local_location_keys(visit.referenced(item.get("location")))]


def encounter_resource(visit: Visit, settings: OrgSettings, *, ihs: str, remote_id: str | None,
                       condition_ids: list[str]) -> dict[str, Any]:
    ours = visit.encounter or {}
    number = visit_number(ours)
    period = ours.get("period", {}) or {}
    start, end = utc(period.get("start")), utc(period.get("end"))
    if not start:
        raise BuildError("the Encounter has no start (PV1-44 admit date/time): SATUSEHAT requires period.start")
    practitioner = settings.practitioner_for(visit, ours)
    if practitioner is None:
        raise BuildError("the attending practitioner (PV1-7) has no SATUSEHAT id: add it under `practitioners:`")
    finished = ours.get("status") == "finished" and end is not None
    class_code = str((ours.get("class") or {}).get("code") or "AMB")
    resource: dict[str, Any] = {
        "resourceType": "Encounter",
        "identifier": [{"system": f"http://sys-ids.kemkes.go.id/encounter/{settings.org_id}", "value": number}],
        "status": "finished" if finished else "arrived",
        "class": {"system": ACT_CODE, "code": class_code, "display": CLASS_DISPLAY.get(class_code, class_code)},
        "subject": {"reference": f"Patient/{ihs}"},
        "participant": [{"type": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                                               "code": "ATND", "display": "attender"}]}],
                         "individual": {"reference": f"Practitioner/{practitioner}"}}],
        "period": {"start": start, **({"end": end} if finished else {})},
        "location": [{"location": {"reference": f"Location/{settings.location_for(visit, ours)}"}}],
        "serviceProvider": {"reference": f"Organization/{settings.org_id}"},
    }
    if finished:
        assert end is not None
        resource["statusHistory"] = [
            {"status": "arrived", "period": {"start": start, "end": start}},
            {"status": "in-progress", "period": {"start": start, "end": end}},
            {"status": "finished", "period": {"start": end, "end": end}}]
        if condition_ids:
            resource["diagnosis"] = [
                {"condition": {"reference": ref}, "rank": rank,
                 "use": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/diagnosis-role", "code": "DD",
                                     "display": "Discharge diagnosis"}]}}
                for rank, ref in enumerate(condition_ids, start=1)]
    else:
        resource["statusHistory"] = [{"status": "arrived", "period": {"start": start}}]
    if remote_id:
        resource["id"] = remote_id
    return resource


def _coding(resource: dict[str, Any], system: str, what: str) -> dict[str, Any]:
    codings = (resource.get("code") or {}).get("coding", []) or []
    found = next((c for c in codings if c.get("system") == system), None)
    if found is None:
        raise BuildError(f"{resource.get('resourceType')} has no {what} code ({system})")
    return {"system": system, "code": found.get("code"), **({"display": found["display"]} if found.get("display") else {})}


def condition_resource(condition: dict[str, Any], *, ihs: str, encounter_ref: str) -> dict[str, Any]:
    onset = utc(condition.get("onsetDateTime") or condition.get("recordedDate"))
    return {
        "resourceType": "Condition",
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active", "display": "Active"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                  "code": "encounter-diagnosis", "display": "Encounter Diagnosis"}]}],
        "code": {"coding": [_coding(condition, "http://hl7.org/fhir/sid/icd-10", "ICD-10")]},
        "subject": {"reference": f"Patient/{ihs}"},
        "encounter": {"reference": encounter_ref},
        **({"onsetDateTime": onset, "recordedDate": onset} if onset else {}),
    }


def observation_resource(observation: dict[str, Any], *, ihs: str, encounter_ref: str, performer: str) -> dict[str, Any]:
    loinc = _coding(observation, "http://loinc.org", "LOINC")
    vital = loinc["code"] in VITAL_SIGNS
    effective = utc(observation.get("effectiveDateTime") or observation.get("issued"))
    resource: dict[str, Any] = {
        "resourceType": "Observation", "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                  "code": "vital-signs" if vital else "laboratory",
                                  "display": "Vital Signs" if vital else "Laboratory"}]}],
        "code": {"coding": [loinc]},
        "subject": {"reference": f"Patient/{ihs}"},
        "performer": [{"reference": performer}],
        "encounter": {"reference": encounter_ref},
    }
    if effective:
        resource["effectiveDateTime"] = effective
        resource["issued"] = utc(observation.get("issued")) or effective
    for key in ("valueQuantity", "valueString", "valueCodeableConcept"):
        if key in observation:
            resource[key] = observation[key]
    return resource


def procedure_resource(procedure: dict[str, Any], *, ihs: str, encounter_ref: str, performer: str) -> dict[str, Any]:
    performed = utc(procedure.get("performedDateTime") or (procedure.get("performedPeriod") or {}).get("start"))
    resource: dict[str, Any] = {
        "resourceType": "Procedure", "status": "completed",
        "category": {"coding": [{"system": "http://snomed.info/sct", "code": "103693007", "display": "Diagnostic procedure"}]},
        "code": {"coding": [_coding(procedure, "http://hl7.org/fhir/sid/icd-9-cm", "ICD-9-CM")]},
        "subject": {"reference": f"Patient/{ihs}"},
        "encounter": {"reference": encounter_ref},
        "performer": [{"actor": {"reference": performer}}],
    }
    if performed:
        resource["performedPeriod"] = {"start": performed, "end": performed}
    return resource
