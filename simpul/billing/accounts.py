"""Accounts per encounter and charges, from the stored message stream.

What changes an account (each transition is a row in billing_account_events naming its message):
    ADT^A01 / A04 / A05, patient_admitted   opened (visit PV1-19, patient PID-3, payer IN1, class PV2-2)
    ADT^A08                                 updated (payer, class)
    ADT^A02                                 transferred (the new class; bed-days split here)
    ADT^A03, patient_discharged             closed (bed-days charged, then the invoice)
    ADT^A13                                 reopened (cancel discharge: uninvoiced bed-days withdrawn)
    ADT^A11                                 voided (cancel admit: nothing is invoiced)
What charges it:
    DFT^P03 / P11 FT1 lines                 FT1-7 code, FT1-10 quantity; FT1-6 CD/CR (credit) negative
    ORU^R01 OBR with OBR-25 = F             OBR-4 code; lab, or radiology when OBR-24 is an imaging section
    ORM^O01 / OML^O21 ORC-5 = CM            the same charge as the final result (same key: charged once)
    RDS^O13, medication_dispensed           pharmacy dispenses (simpul/billing/inventory.py)
    bed-days                                computed at close from the transitions (see bed_days)

Once only: every transition and charge has a source_key (sender + MSH-10, or the FT1-2
transaction id, or the filler order number + code) kept unique by the store, so a replayed or
resent stream changes nothing. A service with no tariff is stored `unpriced` (never priced at
zero) and waits in the unpriced queue; `reprice` prices it when the table has it.
"""
from __future__ import annotations

import calendar
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select, update

from simpul.billing.tariffs import TariffTable
from simpul.engine.events import emit_event
from simpul.store.schema import billing_account_events, billing_accounts, billing_charges
from simpul.v2.message import Message

OPENING = {"ADT^A01", "ADT^A04", "ADT^A05"}
ADT_TRANSITIONS = {**{code: "opened" for code in OPENING}, "ADT^A08": "updated", "ADT^A02": "transferred",
                   "ADT^A03": "closed", "ADT^A13": "reopened", "ADT^A11": "voided"}
EVENT_TRANSITIONS = {"patient_admitted": "opened", "patient_discharged": "closed"}
DFT_TYPES = {"DFT^P03", "DFT^P11"}
RESULT_TYPES = {"ORU^R01"}
ORDER_TYPES = {"ORM^O01", "OML^O21"}
CREDIT_TYPES = {"CD", "CR"}        # FT1-6 transaction type (HL7 table 0017): credit
IMAGING_SECTIONS = {"RAD", "RX", "CT", "MR", "US", "NM", "XR", "CUS", "VUS", "RT"}   # OBR-24 (HL7 table 0074)
CONSUMABLE_BUCKETS = {"bmhp", "alkes"}   # FT1 lines priced under these are consumables: posted to ERP stock
BED_SERVICE_CODE = "BED"           # the tariff code of a bed-day; its `class` column gives the price per class


@dataclass(frozen=True, slots=True)
class Source:
    """The stored message a change came from."""

    message_id: int | None
    sender: str          # MSH-3|MSH-4, or the CloudEvents source
    control_id: str      # MSH-10, or the CloudEvents id
    event_code: str      # ADT^A02, patient_discharged, ...
    at: float            # MSH-7 / event time, the fallback clinical time

    def key(self, kind: str) -> str:
        return f"{kind}:{self.sender}:{self.control_id}"[:250]


@dataclass(frozen=True, slots=True)
class Visit:
    """What a message says about the encounter (empty strings: not stated)."""

    visit_number: str
    patient_id: str = ""
    payer_type: str = ""
    payer_id: str = ""
    payer_ref: str = ""
    room_class: str = ""
    occurred_at: float | None = None


def hl7_time(text: str) -> float | None:
    """HL7 DTM (YYYY[MM[DD[HH[MM[SS]]]]], offset ignored) as naive-UTC epoch seconds: bed-days count dates."""
    digits = text.split("+")[0].split("-")[0].split(".")[0]
    if len(digits) < 8 or not digits.isdigit():
        return None
    try:
        moment = dt.datetime(int(digits[0:4]), int(digits[4:6]), int(digits[6:8]), int(digits[8:10] or 0),
                             int(digits[10:12] or 0), int(digits[12:14] or 0))
        return float(calendar.timegm(moment.timetuple()))
    except ValueError:
        return None


def iso_time(text: str) -> float | None:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return float(calendar.timegm(moment.replace(tzinfo=None).timetuple()))


def day_of(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).date().isoformat()


# ---- reading messages ------------------------------------------------------------------------

def payer_of(message: Message) -> tuple[str, str, str]:
    """(payer type, insurer id, card/SEP number) from the first IN1; no IN1: self-pay."""
    in1 = message.one("IN1")
    if in1 is None:
        return "SELF_PAY", "", ""
    plan, company = in1.text(2).upper(), in1.text(3).upper()
    plan_type = in1.text(15).upper()
    if "BPJS" in (plan + company) or plan_type == "JKN":
        return "BPJS", in1.text(3), in1.text(36)
    if plan in ("SELF", "SELF_PAY", "UMUM") or company in ("SELF", "UMUM"):
        return "SELF_PAY", "", ""
    return "INSURANCE", in1.text(3), in1.text(36)


def visit_of_v2(message: Message) -> Visit:
    pv1, pid, pv2, evn = message.one("PV1"), message.one("PID"), message.one("PV2"), message.one("EVN")
    payer = payer_of(message) if message.one("IN1") is not None else ("", "", "")
    code = f"{message.message_code}^{message.trigger_event}"
    occurred: float | None = None
    if pv1 is not None and code in OPENING:
        occurred = hl7_time(pv1.text(44))
    elif pv1 is not None and code == "ADT^A03":
        occurred = hl7_time(pv1.text(45))
    if occurred is None and evn is not None:
        occurred = hl7_time(evn.text(6)) or hl7_time(evn.text(2))
    return Visit(visit_number=pv1.text(19) if pv1 is not None else "",
                 patient_id=pid.text(3) if pid is not None else "",
                 payer_type=payer[0], payer_id=payer[1], payer_ref=payer[2],
                 room_class=pv2.text(2) if pv2 is not None else "", occurred_at=occurred)


def visit_of_event(event_type: str, data: Any) -> Visit:
    """patient_admitted (Bundle with Encounter, Patient, optional Coverage) / patient_discharged (Encounter)."""
    resources = [e.get("resource", {}) for e in data.get("entry", [])] if data.get("resourceType") == "Bundle" \
        else [data]
    encounter: dict[str, Any] = next((r for r in resources if r.get("resourceType") == "Encounter"), {})
    patient: dict[str, Any] = next((r for r in resources if r.get("resourceType") == "Patient"), {})
    coverage = next((r for r in resources if r.get("resourceType") == "Coverage"), None)
    patient_id = str((patient.get("identifier") or [{}])[0].get("value", "")) or \
        str(encounter.get("subject", {}).get("identifier", {}).get("value", ""))
    payer = ("", "", "")
    if coverage is not None:
        payor = (coverage.get("payor") or [{}])[0]
        name = str(payor.get("display", "")) + str(payor.get("identifier", {}).get("value", ""))
        kind = "BPJS" if "BPJS" in name.upper() else "SELF_PAY" if coverage.get("type", {}).get("text") == "self-pay" \
            else "INSURANCE"
        payer = (kind, str(payor.get("identifier", {}).get("value", "")), str(coverage.get("subscriberId", "")))
    period = encounter.get("period", {})
    occurred = iso_time(period.get("end" if event_type == "patient_discharged" else "start", "") or "")
    room_class = ""
    for location in encounter.get("location", []):
        room_class = str(location.get("physicalType", {}).get("text", "")) or room_class
    return Visit(visit_number=str((encounter.get("identifier") or [{}])[0].get("value", "")),
                 patient_id=patient_id, payer_type=payer[0], payer_id=payer[1], payer_ref=payer[2],
                 room_class=room_class, occurred_at=occurred)


# ---- accounts --------------------------------------------------------------------------------

def find_account(connection: Connection, visit_number: str) -> dict[str, Any] | None:
    row = connection.execute(select(billing_accounts).where(billing_accounts.c.visit_number == visit_number)).first()
    return dict(row._mapping) if row else None


def ensure_account(connection: Connection, visit: Visit, source: Source) -> dict[str, Any]:
    """The visit's account; a charge or transfer before its admission opens one (nothing is dropped)."""
    account = find_account(connection, visit.visit_number)
    if account is not None:
        return account
    at = visit.occurred_at or source.at
    connection.execute(billing_accounts.insert().values(
        visit_number=visit.visit_number, patient_id=visit.patient_id, payer_type=visit.payer_type or "SELF_PAY",
        payer_id=visit.payer_id, payer_ref=visit.payer_ref, room_class=visit.room_class, status="open",
        admitted_at=at, updated_at=time.time()))
    account = find_account(connection, visit.visit_number)
    assert account is not None
    return account


def apply_transition(connection: Connection, transition: str, visit: Visit, source: Source) -> str | None:
    """Record one ADT / event transition once; returns the transition applied, None for a repeat."""
    if not visit.visit_number:
        return None
    at = visit.occurred_at or source.at
    # Keyed on what happened (visit, event, its time, the sender), not on MSH-10: a stream resent
    # with fresh control ids after the dedup window still finds every transition taken.
    key = f"adt:{source.sender}:{visit.visit_number}:{source.event_code}:{at:.0f}"[:250]
    if connection.execute(select(billing_account_events.c.id).where(billing_account_events.c.source_key == key)).first():
        return None
    account = ensure_account(connection, visit, source)
    if transition == "closed" and account["status"] == "closed":
        transition = "updated"      # a second discharge of a closed stay corrects data; bed-days stay
    if account["status"] == "voided" and transition != "opened":
        # a cancelled admission stays cancelled: only a new admission message opens it again
        connection.execute(billing_account_events.insert().values(
            account_id=account["id"], transition="ignored", event_code=source.event_code,
            room_class=visit.room_class or account["room_class"], occurred_at=at, message_id=source.message_id,
            source_key=key))
        return None
    changes: dict[str, Any] = {"updated_at": time.time()}
    for column in ("patient_id", "payer_type", "payer_id", "payer_ref", "room_class"):
        value = getattr(visit, column)
        if value:
            changes[column] = value
    room_class = visit.room_class or account["room_class"]
    if transition == "opened":
        changes.update(status="open", admitted_at=at if account["status"] != "open" or not account["admitted_at"]
                       else account["admitted_at"])
        if account["status"] == "voided":
            changes["admitted_at"] = at
    elif transition == "closed":
        changes.update(status="closed", discharged_at=at)
    elif transition == "reopened":
        changes.update(status="open", discharged_at=None)
        _withdraw_uninvoiced_bed_days(connection, account["id"])
    elif transition == "voided":
        changes.update(status="voided")
    connection.execute(update(billing_accounts).where(billing_accounts.c.id == account["id"]).values(**changes))
    connection.execute(billing_account_events.insert().values(
        account_id=account["id"], transition=transition, event_code=source.event_code, room_class=room_class,
        occurred_at=at, message_id=source.message_id, source_key=key))
    return transition


def _withdraw_uninvoiced_bed_days(connection: Connection, account_id: int) -> None:
    connection.execute(delete(billing_charges).where(and_(
        billing_charges.c.account_id == account_id, billing_charges.c.origin == "bed",
        billing_charges.c.invoice_id.is_(None))))


def bed_days(events: list[dict[str, Any]], discharged_at: float) -> list[tuple[str, int, str]]:
    """(room class, days, first day) per stretch of one room class, days counted as dates crossed: admitted Mon KELAS3, moved Tue to VIP, discharged Thu = KELAS3 1
    (Mon), VIP 2 (Tue, Wed). A stay that starts and ends on one date is one day of its last class.
    """
    stretches: list[tuple[str, float]] = []
    for event in events:
        if event["transition"] in ("opened", "transferred", "updated", "reopened"):
            if event["transition"] == "opened" and stretches:
                continue
            if not stretches or stretches[-1][0] != event["room_class"]:
                stretches.append((event["room_class"], event["occurred_at"]))
    if not stretches:
        return []
    out = []
    end_day = dt.date.fromisoformat(day_of(discharged_at))
    for index, (room_class, start) in enumerate(stretches):
        stop = stretches[index + 1][1] if index + 1 < len(stretches) else discharged_at
        first = dt.date.fromisoformat(day_of(start))
        days = (min(dt.date.fromisoformat(day_of(stop)), end_day) - first).days
        if days > 0:
            out.append((room_class, days, first.isoformat()))
    if not out:
        out.append((stretches[-1][0], 1, day_of(stretches[-1][1])))
    return out


def charge_bed_days(connection: Connection, account: dict[str, Any], tariffs: TariffTable) -> None:
    """At close: one bed charge per room-class stretch, less what earlier closes already charged.

    After a reopen (A13) and a second close, the stay is counted again from all its transitions;
    days already on an invoice are not charged again, and days no longer in the stay (a discharge
    moved earlier) are credited with a negative line.
    """
    events = [dict(r._mapping) for r in connection.execute(
        select(billing_account_events).where(billing_account_events.c.account_id == account["id"])
        .order_by(billing_account_events.c.occurred_at, billing_account_events.c.id))]
    closes = sum(1 for e in events if e["transition"] == "closed")
    charged: dict[str, int] = {}
    for row in connection.execute(select(billing_charges.c.room_class, billing_charges.c.quantity).where(and_(
            billing_charges.c.account_id == account["id"], billing_charges.c.origin == "bed"))):
        charged[row.room_class] = charged.get(row.room_class, 0) + row.quantity
    visit = account["visit_number"]
    for index, (room_class, days, first_day) in enumerate(bed_days(events, account["discharged_at"])):
        covered = min(charged.get(room_class, 0), days)
        charged[room_class] = charged.get(room_class, 0) - covered
        if days > covered:
            add_charge(connection, account, tariffs, source_key=f"bed:{visit}:{closes}:{index}", origin="bed",
                       code=BED_SERVICE_CODE, description=f"Bed-day {room_class}".strip(), quantity=days - covered,
                       service_date=first_day, room_class=room_class, message_id=None)
    for room_class, left in sorted(charged.items()):
        if left > 0:
            add_charge(connection, account, tariffs, source_key=f"bed:{visit}:{closes}:credit:{room_class}",
                       origin="bed", code=BED_SERVICE_CODE, description=f"Bed-day {room_class} credit".strip(),
                       quantity=-left, service_date=day_of(account["discharged_at"]), room_class=room_class,
                       message_id=None)


# ---- charges ---------------------------------------------------------------------------------

def add_charge(connection: Connection, account: dict[str, Any], tariffs: TariffTable, *, source_key: str,
               origin: str, code: str, description: str, quantity: int, service_date: str,
               room_class: str | None = None, message_id: int | None) -> str | None:
    """Insert one charge unless its key exists; priced from the table or left unpriced.

    Returns None when the key was taken (nothing changed), else the tarif_rs bucket ("" while unpriced)."""
    key = source_key[:250]
    if connection.execute(select(billing_charges.c.id).where(billing_charges.c.source_key == key)).first():
        return None
    room_class = account["room_class"] if room_class is None else room_class
    tariff = tariffs.lookup(code, service_date=service_date, room_class=room_class,
                            payer_type=account["payer_type"], payer_id=account["payer_id"])
    connection.execute(billing_charges.insert().values(
        account_id=account["id"], source_key=key, origin=origin, service_code=code[:80],
        description=(tariff.description if tariff else description)[:250], quantity=quantity,
        unit_price=tariff.price if tariff else None, amount=tariff.price * quantity if tariff else None,
        tarif_bucket=tariff.tarif_rs if tariff else "", room_class=room_class, service_date=service_date,
        status="priced" if tariff else "unpriced", message_id=message_id, created_at=time.time()))
    return tariff.tarif_rs if tariff else ""


def charges_from_dft(connection: Connection, message: Message, source: Source, tariffs: TariffTable) -> int:
    visit = visit_of_v2(message)
    if not visit.visit_number:
        return 0
    account = ensure_account(connection, visit, source)
    added = 0
    for index, ft1 in enumerate(message.all("FT1"), start=1):
        code = ft1.text(7)
        if not code:
            continue
        transaction_id = ft1.text(2)
        key = f"ft1:{source.sender}:{transaction_id}" if transaction_id else \
            f"ft1:{source.sender}:{source.control_id}:{ft1.text(1) or index}"
        quantity = int_field(ft1.text(10)) or 1
        if ft1.text(6).upper() in CREDIT_TYPES:
            quantity = -abs(quantity)
        when = hl7_time(ft1.text(4)) or source.at
        bucket = add_charge(connection, account, tariffs, source_key=key, origin="dft", code=code,
                            description=ft1.text(7, 2) or ft1.text(8), quantity=quantity, service_date=day_of(when),
                            message_id=source.message_id)
        if bucket is None:
            continue
        added += 1
        if bucket in CONSUMABLE_BUCKETS:
            # a consumable used during a procedure leaves the ward's stock: the ERP inventory hears of it
            emit_stock_movement(connection, key=key, kind="CONSUME", item_code=code, quantity=quantity,
                                visit_number=visit.visit_number, location=ft1.text(16), occurred_at=when)
    return added


def emit_stock_movement(connection: Connection, *, key: str, kind: str, item_code: str, quantity: int,
                        visit_number: str, location: str, occurred_at: float) -> None:
    """A `stock_movement` event for the ERP inventory, committed with the charge that caused it."""
    emit_event(connection, "stock_movement", subject=f"Encounter/{visit_number}", source="simpul/billing", data={
        "idempotencyKey": key, "kind": kind, "itemCode": item_code, "qty": quantity, "encounterId": visit_number,
        "location": location, "occurredAt": day_of(occurred_at)})


def charges_from_orders(connection: Connection, message: Message, source: Source, tariffs: TariffTable) -> int:
    """Final results (OBR-25 F) and completed orders (ORC-5 CM) charge their OBR-4 code once."""
    visit = visit_of_v2(message)
    if not visit.visit_number:
        return 0
    code = f"{message.message_code}^{message.trigger_event}"
    account: dict[str, Any] | None = None
    added = 0
    orcs = message.all("ORC")
    for index, obr in enumerate(message.all("OBR")):
        completed = obr.text(25).upper() == "F" if code in RESULT_TYPES else \
            index < len(orcs) and orcs[index].text(5).upper() == "CM"
        service = obr.text(4)
        if not completed or not service:
            continue
        order_number = obr.text(3) or obr.text(2) or (orcs[index].text(3) if index < len(orcs) else "")
        if not order_number:
            order_number = f"{source.control_id}:{obr.text(1) or index + 1}"
        origin = "radiology" if obr.text(24).upper() in IMAGING_SECTIONS else "lab"
        when = hl7_time(obr.text(7)) or hl7_time(obr.text(22)) or source.at
        account = account or ensure_account(connection, visit, source)
        added += add_charge(connection, account, tariffs, source_key=f"order:{order_number}:{service}", origin=origin,
                            code=service, description=obr.text(4, 2), quantity=1, service_date=day_of(when),
                            message_id=source.message_id) is not None
    return added


def int_field(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return 0


def reprice(connection: Connection, tariffs: TariffTable) -> int:
    """Price the unpriced charges the table now has a tariff for; returns how many."""
    rows = connection.execute(
        select(billing_charges, billing_accounts.c.payer_type, billing_accounts.c.payer_id)
        .join(billing_accounts, billing_accounts.c.id == billing_charges.c.account_id)
        .where(billing_charges.c.status == "unpriced")).all()
    priced = 0
    for row in rows:
        charge = row._mapping
        tariff = tariffs.lookup(charge["service_code"], service_date=charge["service_date"],
                                room_class=charge["room_class"], payer_type=charge["payer_type"],
                                payer_id=charge["payer_id"])
        if tariff is None:
            continue
        connection.execute(update(billing_charges).where(billing_charges.c.id == charge["id"]).values(
            unit_price=tariff.price, amount=tariff.price * charge["quantity"], tarif_bucket=tariff.tarif_rs,
            description=tariff.description[:250], status="priced"))
        priced += 1
    return priced


def unpriced_queue(connection: Connection) -> list[dict[str, Any]]:
    """The work queue of charges waiting for a tariff (codes and visit numbers, no patient data)."""
    rows = connection.execute(
        select(billing_charges.c.id, billing_charges.c.service_code, billing_charges.c.origin,
               billing_charges.c.quantity, billing_charges.c.room_class, billing_charges.c.service_date,
               billing_accounts.c.visit_number, billing_accounts.c.payer_type, billing_charges.c.created_at)
        .join(billing_accounts, billing_accounts.c.id == billing_charges.c.account_id)
        .where(billing_charges.c.status == "unpriced").order_by(billing_charges.c.id)).all()
    return [dict(r._mapping) for r in rows]


def count_unpriced(connection: Connection, account_id: int) -> int:
    return int(connection.execute(select(func.count()).select_from(billing_charges).where(and_(
        billing_charges.c.account_id == account_id, billing_charges.c.status == "unpriced",
        billing_charges.c.invoice_id.is_(None)))).scalar_one())

