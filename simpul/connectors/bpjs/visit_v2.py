"""The facts of one visit the BPJS connectors read from an HL7v2 ADT message.

Where each comes from (HL7 v2.5.1 positions):
    visit number PV1-19.1 · patient class PV1-2 (I = inpatient) · clinic PV1-3.1 · attending PV1-7.1
    admitted PV1-44 · discharged PV1-45 · MRN PID-3 (first repetition) · NIK PID-3 with type NIK
    card number IN1-36.1 of the IN1 whose plan (IN1-2.1) or company id (IN1-3.1) is a BPJS payer id
    referral number IN1-14.1 · diagnoses DG1-3.1 (ICD-10; DG1-6 'A' admitting, principal first by
    DG1-15 priority) · procedures PR1-3.1 (ICD-9-CM) · charges FT1-7.1 (code), FT1-11.1 (amount)
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from simpul.v2 import Message, parse_message


@dataclass
class Charge:
    code: str
    amount: int


@dataclass
class VisitFacts:
    event: str
    control_id: str
    visit: str
    inpatient: bool
    clinic: str
    attending: str
    admitted: datetime.datetime | None
    discharged: datetime.datetime | None
    mrn: str
    nik: str
    name: str = field(repr=False)
    birth_date: str
    sex: str
    phone: str = field(repr=False)
    card: str | None
    referral: str
    diagnoses: list[str]
    procedures: list[str]
    charges: list[Charge]


def _dtm(value: str) -> datetime.datetime | None:
    """HL7 DTM (YYYYMMDD[HHMM[SS]][+ZZZZ]) as an aware datetime (no zone: WIB, UTC+7)."""
    if len(value) < 8 or not value[:8].isdigit():
        return None
    zone = datetime.timezone(datetime.timedelta(hours=7))
    body = value
    for sign in "+-":
        if sign in value[8:]:
            body, offset = value.split(sign, 1) if value.count(sign) == 1 else (value, "")
            if len(offset) == 4 and offset.isdigit():
                minutes = int(offset[:2]) * 60 + int(offset[2:])
                zone = datetime.timezone(datetime.timedelta(minutes=minutes if sign == "+" else -minutes))
    digits = body.split(".")[0].ljust(14, "0")[:14]
    try:
        return datetime.datetime.strptime(digits, "%Y%m%d%H%M%S").replace(tzinfo=zone)
    except ValueError:
        return None


def read_visit(raw: bytes, payer_ids: list[str]) -> VisitFacts:
    message: Message = parse_message(raw.decode("utf-8", "replace"))
    pid, pv1 = message.one("PID"), message.one("PV1")
    mrn = nik = ""
    if pid is not None:
        for rep in pid.reps(3):
            parts = rep.split(message.enc.component)
            value, kind = parts[0], (parts[4] if len(parts) > 4 else "")
            if kind.upper() in ("NIK", "NNIDN") and not nik:
                nik = value
            elif not mrn:
                mrn = value
    card: str | None = None
    referral = ""
    wanted = {payer.upper() for payer in payer_ids}
    for in1 in message.all("IN1"):
        if in1.text(2).upper() in wanted or in1.text(3).upper() in wanted:
            card = in1.text(36) or None
            referral = in1.text(14)
            break
    dg1s = sorted(message.all("DG1"), key=lambda seg: (seg.text(15) or "9", int(seg.text(1) or 0) if seg.text(1).isdigit() else 0))
    charges = []
    for ft1 in message.all("FT1"):
        try:
            amount = int(round(float(ft1.text(11) or "0")))
        except ValueError:
            amount = 0
        charges.append(Charge(ft1.text(7), amount))
    return VisitFacts(
        event=message.trigger_event, control_id=message.control_id,
        visit=pv1.text(19) if pv1 is not None else "", inpatient=(pv1.text(2) if pv1 is not None else "") == "I",
        clinic=pv1.text(3) if pv1 is not None else "", attending=pv1.text(7) if pv1 is not None else "",
        admitted=_dtm(pv1.text(44)) if pv1 is not None else None,
        discharged=_dtm(pv1.text(45)) if pv1 is not None else None,
        mrn=mrn, nik=nik, name=" ".join(p for p in (pid.text(5, 2), pid.text(5, 1)) if p) if pid is not None else "",
        birth_date=pid.text(7)[:8] if pid is not None else "", sex=pid.text(8) if pid is not None else "",
        phone=pid.text(13) if pid is not None else "", card=card, referral=referral,
        diagnoses=[seg.text(3) for seg in dg1s if seg.text(3)],
        procedures=[seg.text(3) for seg in message.all("PR1") if seg.text(3)], charges=charges)
