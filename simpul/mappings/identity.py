"""Patient identity policy: which identifier, if any, may find an existing Patient.

A conditional update `PUT Patient?identifier=system|value` overwrites whatever record holds that
identifier. Matching on a value that is not unique to one person (a placeholder such as 999999999,
an MRN without the hospital that issued it, an SSN field a sender fills with zeros) merges two
people into one record, and that cannot be undone safely. A missed match only makes a duplicate,
which a later merge (ADT^A40) repairs. So the policy is narrow by default:

1. candidates are PID-3 repetitions whose identifier type (CX-5) is in `patient_identity.match`, in
   that order (default MR, then PI); a repetition without CX-5 counts as MR;
2. a candidate needs a system: its assigning authority (CX-4) or the channel's configured
   `patient_identity.system`;
3. national ids (PID-19, types SS/NI/NNxxx, the SSN and NIK systems) take part only when listed;
4. placeholder values never match.

With no candidate left, the Patient is written under an id of its own and the message is counted
as `unmatched_patient`.
"""
from __future__ import annotations

import re
from typing import Any

from simpul.mappings.options import PatientIdentity

US_SSN = "http://hl7.org/fhir/sid/us-ssn"
NIK = "https://fhir.kemkes.go.id/id/nik"
NATIONAL_SYSTEMS = {US_SSN, NIK, "https://fhir.kemkes.go.id/id/nik-ibu"}
# MSH-17 country (ISO 3166 alpha-2 or alpha-3) -> (PID-19 system, v2-0203 type)
NATIONAL_ID_BY_COUNTRY = {"ID": (NIK, "NNIDN"), "IDN": (NIK, "NNIDN"), "US": (US_SSN, "SS"), "USA": (US_SSN, "SS")}
_NATIONAL_TYPES = {"SS", "SSN", "NI", "NH", "NIIP"}
# Words senders put where they have no identifier.
_PLACEHOLDER_WORDS = {"UNKNOWN", "UNK", "NONE", "NULL", "NA", "N/A", "TEMP", "TEST", "NOID", "NO ID"}
_SEQUENCES = {"123456789", "1234567890", "0123456789", "987654321", "12345678", "1234567"}
_SEPARATORS = re.compile(r"[\s\-./]")

PID_19 = "PID-19"


def is_placeholder(value: str, extra: list[str] | tuple[str, ...] = ()) -> bool:
    """True for values that stand for "no identifier": one repeated character, 123456789, UNKNOWN,
    or a value the channel lists."""
    text = value.strip().upper()
    if text in _PLACEHOLDER_WORDS or text in {e.strip().upper() for e in extra}:
        return True
    compact = _SEPARATORS.sub("", text)
    return not compact or len(set(compact)) == 1 or compact in _SEQUENCES


def national_id(policy: PatientIdentity, country: str) -> tuple[str | None, str]:
    """PID-19's system and type: the configured system, else the one MSH-17's country implies."""
    system, type_code = NATIONAL_ID_BY_COUNTRY.get(country.strip().upper(), (None, "NI"))
    if policy.national_id_system:
        system = policy.national_id_system
        type_code = "NNIDN" if system == NIK else "SS" if system == US_SSN else type_code
    return system, type_code


def type_of(identifier: dict[str, Any]) -> str:
    coding = identifier.get("type", {}).get("coding") or [{}]
    return str(coding[0].get("code") or identifier.get("type", {}).get("text") or "").upper()


def is_national(identifier: dict[str, Any]) -> bool:
    kind = type_of(identifier)
    return (identifier.get("system") in NATIONAL_SYSTEMS or kind in _NATIONAL_TYPES
            or (kind.startswith("NN") and len(kind) == 5))


def match_key(policy: PatientIdentity, pid_3: list[dict[str, Any]],
              pid_19: dict[str, Any] | None) -> dict[str, Any] | None:
    """The identifier a Patient may be matched on under `policy`, or None (create without a match)."""
    wanted = [m.upper() for m in policy.match]
    for kind in wanted:
        if kind == PID_19:
            candidates = [pid_19] if pid_19 is not None else []
        else:
            candidates = [i for i in pid_3 if (type_of(i) or "MR") == kind]
        for ident in candidates:
            if not ident.get("system") or is_placeholder(ident["value"], policy.placeholders):
                continue
            if is_national(ident) and kind == "MR" and not type_of(ident):
                continue  # an untyped PID-3 under the NIK/SSN system is a national id, not an MRN
            return ident
    return None
