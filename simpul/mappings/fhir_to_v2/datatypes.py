"""FHIR datatypes -> HL7 v2.5.1 datatypes (as lists of components for er7.composite).

Paths in MappingError name the FHIR element ("ServiceRequest.authoredOn"), never its value.
"""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from simpul.errors import MappingError
from simpul.mappings.fhir_to_v2.vocabulary import V2_TABLE_PREFIX, coding_system_names, identifier_system_names
from simpul.v2 import er7

Components = list[Any]  # each item a string or a list of subcomponent strings

_FHIR_DATE_TIME = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$")


def dtm(value: Any, path: str, *, segment: str = "", field: int = 0) -> str:
    """FHIR date/dateTime/instant -> v2 DTM (YYYY[MM[DD[HHMM[SS[.S+]]]]][+/-ZZZZ]), keeping its precision."""
    match = _FHIR_DATE_TIME.match(value) if isinstance(value, str) else None
    if match is None:
        raise MappingError(f"{path}: not a FHIR date or dateTime", segment=segment, field=field)
    parts = match.groupdict()
    text = "".join(parts[k] or "" for k in ("y", "m", "d", "H", "M", "S"))
    if parts["f"]:
        text += parts["f"][:5]  # DTM allows at most four fractional digits
    tz = parts["tz"]
    if tz:
        text += "+0000" if tz == "Z" else tz.replace(":", "")
    return text


def hd_from_system(system: str | None) -> list[str]:
    """Identifier.system -> HD (namespace, universal id, universal id type), inverse of the inbound CX.4 map."""
    if not system:
        return []
    named = identifier_system_names().get(system)
    if named:
        return [named]
    if system.startswith("urn:oid:"):
        return ["", system[len("urn:oid:"):], "ISO"]
    if system.startswith("urn:uuid:"):
        return ["", system[len("urn:uuid:"):], "UUID"]
    if system.startswith("urn:id:"):  # the inbound map's local URI for a bare namespace
        return [unquote(system[len("urn:id:"):])]
    return ["", system, "URI"]


def type_code(identifier: dict[str, Any]) -> str:
    """Identifier.type coding from v2 table 0203 (else the first code) -> CX-5 / XCN-13."""
    codings = (identifier.get("type") or {}).get("coding") or []
    for coding in codings:
        if coding.get("system") == V2_TABLE_PREFIX + "0203" and coding.get("code"):
            return str(coding["code"])
    return str(codings[0].get("code", "")) if codings else ""


def has_type(identifier: dict[str, Any], code: str) -> bool:
    codings = (identifier.get("type") or {}).get("coding") or []
    return any(c.get("code") == code for c in codings)


def cx(identifier: dict[str, Any], path: str) -> Components | None:
    """Identifier -> CX: CX.1 value, CX.4 assigning authority from system, CX.5 type, CX.7/8 period."""
    value = identifier.get("value")
    if not value:
        return None
    if not isinstance(value, str):
        raise MappingError(f"{path}.value: must be a string")
    period = identifier.get("period") or {}
    start = dtm(period["start"], f"{path}.period.start")[:8] if period.get("start") else ""
    end = dtm(period["end"], f"{path}.period.end")[:8] if period.get("end") else ""
    return [value, "", "", hd_from_system(identifier.get("system")), type_code(identifier), "",
            start, end]


def ei(identifier: dict[str, Any]) -> Components | None:
    """Identifier -> EI: EI.1 value, EI.2-4 the assigning authority (HD laid flat)."""
    value = identifier.get("value")
    if not value:
        return None
    return [str(value), *hd_from_system(identifier.get("system"))]


def xpn(name: dict[str, Any]) -> Components | None:
    """HumanName -> XPN: family, given[0], further given, suffix, prefix, use (table 0200)."""
    given = [g for g in name.get("given") or [] if g]
    family = name.get("family") or ""
    if not family and not given:
        text = name.get("text") or ""
        return [text] if text else None  # only a text name: the whole of it as the family name
    use = {"official": "L", "usual": "D", "nickname": "N", "maiden": "M", "old": "BAD",
           "temp": "TEMP", "anonymous": "MSK"}.get(name.get("use") or "", "")
    return [family, given[0] if given else "", " ".join(given[1:]),
            " ".join(name.get("suffix") or []), " ".join(name.get("prefix") or []), "", use]


def coding_system_name(system: str | None) -> str:
    """Coding.system URI -> CWE.3 name (table 0396): LN, SCT, HL7nnnn, a local name, or L."""
    if not system:
        return ""
    named = coding_system_names().get(system)
    if named:
        return named
    if system.startswith(V2_TABLE_PREFIX) and system[len(V2_TABLE_PREFIX):].isdigit():
        return "HL7" + system[len(V2_TABLE_PREFIX):]
    if system.startswith("urn:id:local:"):  # the inbound map's sender-scoped local system: L or 99zzz
        return unquote(system.rsplit(":", 1)[1])
    if system.startswith("urn:id:"):
        return unquote(system[len("urn:id:"):])
    return "L"  # a local code system with no registered name


def cwe(concept: dict[str, Any] | None) -> Components | None:
    """CodeableConcept -> CWE: coding[0] -> CWE.1-3 (+7), coding[1] -> CWE.4-6 (+8), text -> CWE.9.

    v2.5.1 CWE has room for two codings; a third and later coding is left out.
    """
    if not concept:
        return None
    codings = [c for c in concept.get("coding") or [] if c.get("code") or c.get("display")]
    text = concept.get("text") or ""
    if not codings and not text:
        return None
    out: Components = ["", "", "", "", "", "", "", "", ""]
    for slot, coding in enumerate(codings[:2]):
        out[slot * 3] = str(coding.get("code", ""))
        out[slot * 3 + 1] = str(coding.get("display", ""))
        out[slot * 3 + 2] = coding_system_name(coding.get("system"))
        out[6 + slot] = str(coding.get("version", ""))
    if not codings:
        out[1] = text  # text only: CWE.2 is what receivers display
    else:
        out[8] = text if text and text != codings[0].get("display") else ""
    return out


def xcn(practitioner: dict[str, Any] | None, reference: dict[str, Any] | None) -> Components | None:
    """Practitioner (or a Reference with identifier/display) -> XCN: id, name, assigning authority, type."""
    identifiers = list((practitioner or {}).get("identifier") or [])
    if reference and isinstance(reference.get("identifier"), dict):
        identifiers.append(reference["identifier"])
    identifier: dict[str, Any] = next((i for i in identifiers if i.get("value")), {})
    names = (practitioner or {}).get("name") or []
    name = xpn(names[0]) if names else None
    if name is None and reference and reference.get("display"):
        name = [reference["display"]]
    if not identifier and name is None:
        return None
    name = (name or []) + [""] * 7
    return [str(identifier.get("value", "")), name[0], name[1], name[2], name[3], name[4], "", "",
            hd_from_system(identifier.get("system")), name[6], "", "", type_code(identifier)]


def cq(quantity: dict[str, Any] | None) -> Components | None:
    """Quantity -> CQ: value ^ units (CE with the UCUM code)."""
    if not quantity or quantity.get("value") is None:
        return None
    unit = quantity.get("code") or quantity.get("unit") or ""
    system = coding_system_name(quantity.get("system")) if quantity.get("code") else ""
    return [str(quantity["value"]), [unit, quantity.get("unit") or "", system] if unit else ""]


def field(components: Components | None) -> str:
    """Components -> the ER7 text of one field repetition ('' for None)."""
    return er7.composite(components) if components else ""
