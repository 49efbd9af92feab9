"""FHIR Practitioner (+ PractitionerRole) -> MFN^M02 v2.5.1: the staff master for systems that take HL7v2.

    text = build_mfn_m02(bundle)        # a Bundle (or list) of Practitioners and their PractitionerRoles

| v2 field      | FHIR source                                    | rule                                     |
|---------------|------------------------------------------------|------------------------------------------|
| MFI-1         | -                                              | `PRA^Practitioner master file^HL70175`; MFI-3 UPD, MFI-6 NE |
| MFE-1         | Practitioner.active                            | MUP (update); MDC (deactivate) when false |
| MFE-4 / STF-1 / PRA-1 | Practitioner.identifier[0]            | CWE: the staff id (the master file key)  |
| MFE-5         | -                                              | CWE                                      |
| STF-2         | Practitioner.identifier[]                      | CX, CX.4 from the system                 |
| STF-3         | Practitioner.name[]                            | XPN                                      |
| STF-4         | PractitionerRole.code (doctor, nurse)          | IS: the code                             |
| STF-7         | Practitioner.active                            | A / I                                    |
| PRA-5         | PractitionerRole.specialty[].text              | SPD.1                                    |
| PRA-6         | Practitioner.qualification[].identifier        | PLN: number ^ type (the qualification code text) |

One MFE + STF + PRA group per Practitioner. Checked against the v2.5.1 MFN_M02 structure by hl7apy
like the order builders; unusable input raises MappingError (path, segment, field; never values).
"""
from __future__ import annotations

from typing import Any

from simpul.errors import MappingError
from simpul.mappings.fhir_to_v2 import datatypes as dt
from simpul.mappings.fhir_to_v2.messages import msh_segment
from simpul.mappings.fhir_to_v2.structure import check_structure
from simpul.v2 import MessageHeader, er7


def _resources(bundle_or_resources: Any) -> list[dict[str, Any]]:
    if isinstance(bundle_or_resources, dict) and bundle_or_resources.get("resourceType") == "Bundle":
        return [entry.get("resource") or {} for entry in bundle_or_resources.get("entry") or []]
    if isinstance(bundle_or_resources, dict):
        return [bundle_or_resources]
    return list(bundle_or_resources or [])


def build_mfn_m02(bundle_or_resources: Any, header: MessageHeader | None = None) -> str:
    resources = _resources(bundle_or_resources)
    practitioners = [(n, r) for n, r in enumerate(resources) if r.get("resourceType") == "Practitioner"]
    if not practitioners:
        raise MappingError("Bundle.entry: no Practitioner to send as MFN^M02", segment="MFE", field=4)
    roles = {str(r.get("practitioner", {}).get("reference", "")): r for r in resources
             if r.get("resourceType") == "PractitionerRole"}
    mfi = er7.SegmentBuilder("MFI")
    mfi.set(1, er7.composite(["PRA", "Practitioner master file", "HL70175"]))
    mfi.set(3, "UPD")
    mfi.set(6, "NE")
    body = [mfi.text()]
    for index, practitioner in practitioners:
        path = f"Bundle.entry[{index}].resource"
        identifiers = practitioner.get("identifier") or []
        key = str((identifiers[0] if identifiers else {}).get("value") or "")
        if not key:
            raise MappingError(f"{path}.identifier: the staff master key needs an identifier value",
                               segment="MFE", field=4)
        active = practitioner.get("active") is not False
        role = roles.get(f"Practitioner/{practitioner.get('id')}", {})
        mfe = er7.SegmentBuilder("MFE")
        mfe.set(1, "MUP" if active else "MDC")     # HL7 table 0180: update / deactivate
        mfe.set(4, er7.escape(key))
        mfe.set(5, "CWE")
        stf = er7.SegmentBuilder("STF")
        stf.set(1, er7.escape(key))
        stf.set(2, er7.repeated([dt.field(dt.cx(i, f"{path}.identifier[{n}]")) for n, i in enumerate(identifiers)
                                 if dt.cx(i, f"{path}.identifier[{n}]")]))
        stf.set(3, er7.repeated([dt.field(dt.xpn(name)) for name in practitioner.get("name") or [] if dt.xpn(name)]))
        role_code = next((c.get("code") for concept in role.get("code") or [] for c in concept.get("coding") or []
                          if c.get("code")), "")
        stf.set(4, er7.escape(str(role_code)))
        stf.set(7, "A" if active else "I")
        pra = er7.SegmentBuilder("PRA")
        pra.set(1, er7.escape(key))
        pra.set(5, er7.repeated([er7.escape(str(s.get("text"))) for s in role.get("specialty") or [] if s.get("text")]))
        licences = [er7.composite([str(i.get("value")), str(q.get("code", {}).get("text") or "")])
                    for q in practitioner.get("qualification") or [] for i in q.get("identifier") or [] if i.get("value")]
        pra.set(6, er7.repeated(licences))
        body += [mfe.text(), stf.text(), pra.text()]
    msh = msh_segment(header or MessageHeader(), "MFN^M02^MFN_M02", any(not s.isascii() for s in body))
    text = er7.join_segments([msh, *body])
    check_structure(text, "MFN_M02")
    return text
