"""The ERP's staff master (doctors, nurses) as FHIR Practitioner / PractitionerRole, and ERP stock alerts.

Both are pulled by the billing job every `billing.poll_interval` (GetStaff, GetStockAlerts from the
kept cursors) and published as events: `practitioner_updated` (a Bundle of the Practitioner and its
PractitionerRole, ids from the ERP's staff id so a re-read updates rather than duplicates) and
`low_stock` (itemCode, location, onHand, reorderLevel).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from simpul.engine.events import emit_event

STAFF_SYSTEM = "urn:simpul:erp-staff-id"
NIK_SYSTEM = "https://fhir.kemkes.go.id/id/nik"            # SATUSEHAT's NIK identifier system
LICENSE_SYSTEM = "urn:simpul:sip"                          # Surat Izin Praktik (practice licence)
ROLE_CODES = {"doctor": ("doctor", "Doctor"), "nurse": ("nurse", "Nurse")}   # HL7 practitioner-role codes


def practitioner_bundle(member: dict[str, Any]) -> dict[str, Any]:
    staff_id = str(member.get("staffId") or "")
    identifiers = [{"system": STAFF_SYSTEM, "value": staff_id}]
    if member.get("nik"):
        identifiers.append({"system": NIK_SYSTEM, "value": str(member["nik"])})
    active = member.get("active") is not False
    practitioner: dict[str, Any] = {"resourceType": "Practitioner", "id": f"erp-{staff_id}", "active": active,
                                    "identifier": identifiers, "name": [{"text": str(member.get("name") or "")}]}
    if member.get("licenseNo"):
        practitioner["qualification"] = [{"identifier": [{"system": LICENSE_SYSTEM, "value": str(member["licenseNo"])}],
                                          "code": {"text": "SIP"}}]
    code, display = ROLE_CODES.get(str(member.get("role") or "").lower(), ("", str(member.get("role") or "")))
    role: dict[str, Any] = {"resourceType": "PractitionerRole", "id": f"erp-{staff_id}-role", "active": active,
                            "practitioner": {"reference": f"Practitioner/erp-{staff_id}"},
                            "code": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/practitioner-role",
                                                  "code": code, "display": display}]}] if code else
                            [{"text": display}]}
    if member.get("specialty"):
        role["specialty"] = [{"text": str(member["specialty"])}]
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"resource": practitioner}, {"resource": role}]}


def publish_staff_member(connection: Connection, member: dict[str, Any]) -> None:
    emit_event(connection, "practitioner_updated", subject=f"Practitioner/erp-{member.get('staffId')}",
               data=practitioner_bundle(member), source="simpul/billing")


def publish_stock_alert(connection: Connection, alert: dict[str, Any]) -> None:
    data = {key: alert.get(key) for key in ("itemCode", "location", "onHand", "reorderLevel")}
    emit_event(connection, "low_stock", subject=f"Medication/{alert.get('itemCode')}", data=data,
               source="simpul/billing")
