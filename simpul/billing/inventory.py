"""Pharmacy stock and consumables: what is dispensed or used becomes a stock movement for the ERP.

    RDS^O13, one per RXD          RXD-2 give code, RXD-4 amount, RXD-3 date, RXD-7 prescription number;
                                  charged to the account (tariff bucket, usually `obat`) and posted as DISPENSE
    medication_dispensed event    a FHIR MedicationDispense (medicationCodeableConcept, quantity,
                                  whenHandedOver, context = the Encounter by identifier): the same
    DFT FT1 lines priced under    a consumable used during a procedure: posted as CONSUME
    `bmhp` or `alkes`

A movement goes out as a `stock_movement` event (committed with the charge that caused it), which
a channel delivers to the `erp` destination (PostStockMovement, idempotent by the charge's key).
Low-stock notices come back from the ERP's GetStockAlerts poll as `low_stock` events.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from simpul.billing.accounts import (
    Source, Visit, add_charge, day_of, emit_stock_movement, ensure_account, hl7_time, int_field, iso_time,
)
from simpul.billing.tariffs import TariffTable
from simpul.v2.message import Message

DISPENSE_TYPES = {"RDS^O13"}
DISPENSE_EVENTS = {"medication_dispensed"}


def dispenses_from_rds(connection: Connection, message: Message, visit: Visit, source: Source,
                       tariffs: TariffTable) -> int:
    if not visit.visit_number:
        return 0
    account = ensure_account(connection, visit, source)
    added = 0
    for index, rxd in enumerate(message.all("RXD"), start=1):
        code = rxd.text(2)
        if not code:
            continue
        quantity = int_field(rxd.text(4)) or 1
        prescription = rxd.text(7) or f"{source.control_id}:{index}"
        key = f"rxd:{source.sender}:{prescription}:{rxd.text(1) or index}:{code}"
        when = hl7_time(rxd.text(3)) or source.at
        if add_charge(connection, account, tariffs, source_key=key, origin="pharmacy", code=code,
                      description=rxd.text(2, 2), quantity=quantity, service_date=day_of(when),
                      message_id=source.message_id) is not None:
            emit_stock_movement(connection, key=key, kind="DISPENSE", item_code=code, quantity=quantity,
                                visit_number=visit.visit_number, location=rxd.text(13), occurred_at=when)
            added += 1
    return added


def dispense_from_event(connection: Connection, data: dict[str, Any], source: Source, tariffs: TariffTable) -> int:
    """A FHIR MedicationDispense (event `medication_dispensed`)."""
    visit_number = str(data.get("context", {}).get("identifier", {}).get("value", ""))
    coding = (data.get("medicationCodeableConcept", {}).get("coding") or [{}])[0]
    code = str(coding.get("code", ""))
    if not visit_number or not code or data.get("status", "completed") != "completed":
        return 0
    patient = str(data.get("subject", {}).get("identifier", {}).get("value", ""))
    account = ensure_account(connection, Visit(visit_number, patient_id=patient), source)
    quantity = int_field(str(data.get("quantity", {}).get("value", 1))) or 1
    when = iso_time(str(data.get("whenHandedOver", ""))) or source.at
    key = f"dispense:{source.sender}:{data.get('id') or source.control_id}"
    if add_charge(connection, account, tariffs, source_key=key, origin="pharmacy", code=code,
                  description=str(coding.get("display", "")), quantity=quantity, service_date=day_of(when),
                  message_id=source.message_id) is None:
        return 0
    location = str(data.get("location", {}).get("display", ""))
    emit_stock_movement(connection, key=key, kind="DISPENSE", item_code=code, quantity=quantity,
                        visit_number=visit_number, location=location, occurred_at=when)
    return 1
