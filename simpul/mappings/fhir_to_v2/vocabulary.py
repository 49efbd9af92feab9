"""FHIR -> HL7 v2 code tables used by the outbound order maps.

Each table is the inverse of an inbound (v2 -> FHIR) table of the HL7 V2-to-FHIR IG, so a round trip
v2 -> FHIR -> v2 gives the original code back. The URI -> v2 name tables start from the inbound
tables in mappings/vocab/ when they are installed (so a channel that maps "LN" to LOINC inbound gets "LN"
back outbound) and fall back to the entries below.
"""
from __future__ import annotations

import json
from functools import cache
from importlib import resources

V2_TABLE_PREFIX = "http://terminology.hl7.org/CodeSystem/v2-"

# FHIR administrative-gender -> HL7 table 0001 (inverse of the IG's AdministrativeSex map).
GENDER_TO_0001 = {"male": "M", "female": "F", "other": "O", "unknown": "U"}

# ServiceRequest.priority -> HL7 table 0027 / 0485 (inverse of the IG's ExtendedPriority map:
# S stat, A asap, R routine). FHIR "urgent" has no v2 code: it goes out as A, the next higher
# urgency, so an order is never sent less urgent than it was placed.
PRIORITY_TO_0027 = {"stat": "S", "asap": "A", "urgent": "A", "routine": "R"}
PRIORITY_TEXT = {"S": "Stat", "A": "ASAP", "R": "Routine"}

# ServiceRequest.status -> ORC-1 order control (HL7 table 0119), for a placer sending orders:
# a new or still active order is NW (new order), a revoked or erroneous one CA (cancel request),
# an order put on hold HD (hold request). Other statuses (draft, completed, unknown) are not
# something a placer sends, so they are refused with a MappingError.
STATUS_TO_ORDER_CONTROL = {"active": "NW", "revoked": "CA", "entered-in-error": "CA", "on-hold": "HD"}

# Encounter.class (v3 ActCode) -> PV1-2 patient class (HL7 table 0004); inverse of the IG's
# PatientClass map (E EMER, I IMP, O AMB, P PRENC) plus the other v3 codes folded onto the nearest class.
ENCOUNTER_CLASS_TO_0004 = {"EMER": "E", "IMP": "I", "ACUTE": "I", "NONAC": "I", "AMB": "O",
                           "OBSENC": "O", "SS": "O", "HH": "O", "VR": "O", "FLD": "O", "PRENC": "P"}

# Fallback URI -> v2 coding system name (table 0396) when mappings/vocab is not installed.
_CODING_SYSTEM_NAMES = {
    "http://loinc.org": "LN",
    "http://snomed.info/sct": "SCT",
    "http://hl7.org/fhir/sid/icd-10": "I10",
    "http://hl7.org/fhir/sid/icd-10-cm": "I10C",
    "http://hl7.org/fhir/sid/icd-9-cm": "I9C",
    "http://unitsofmeasure.org": "UCUM",
    "http://www.ama-assn.org/go/cpt": "C4",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RXNORM",
}
# Fallback URI -> assigning authority namespace (HD-1).
_IDENTIFIER_SYSTEM_NAMES = {
    "https://fhir.kemkes.go.id/id/nik": "NIK",
    "https://fhir.kemkes.go.id/id/ihs-number": "IHS",
    "http://hl7.org/fhir/sid/us-ssn": "USSSA",
}


def _inbound_table(file_name: str) -> dict[str, str]:
    """name -> URI from mappings/vocab/<file_name>, or {} when that table is not installed."""
    try:
        text = (resources.files("simpul.mappings") / "vocab" / file_name).read_text("utf-8")
        return dict(json.loads(text)["map"])
    except (OSError, KeyError, ValueError, ModuleNotFoundError):
        return {}


def _inverse(names_to_uris: dict[str, str]) -> dict[str, str]:
    """URI -> the first name listed for it (the tables list the preferred name first)."""
    inverse: dict[str, str] = {}
    for name, uri in names_to_uris.items():
        inverse.setdefault(uri, name)
    return inverse


@cache
def coding_system_names() -> dict[str, str]:
    return {**_CODING_SYSTEM_NAMES, **_inverse(_inbound_table("coding-systems.json"))}


@cache
def identifier_system_names() -> dict[str, str]:
    return {**_IDENTIFIER_SYSTEM_NAMES, **_inverse(_inbound_table("identifier-systems.json"))}
