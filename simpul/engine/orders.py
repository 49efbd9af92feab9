"""Order-to-result tracking: each order's timeline, its SLA, critical results (docs/lab-and-radiology.md).

A channel with `orders:` tracks what it carries. Three things add steps to an order:
- a message the channel routes (`read_facts` + `apply_message`, in the processor's routing
  transaction): ORM/OML/OMI place, change (XO) or cancel (CA) an order; ORR/ORL accept (OK) or
  refuse (UA) it and carry the filler's status (ORC-5); ORU adds specimen collected (OBR-7 /
  SPM-17), preliminary, final or corrected (OBR-25) and critical values (OBX-8, or a per-test rule);
- the receiver's answer to an order the channel sent (`apply_delivery`, in the delivery
  worker's outcome transaction): AA sent, AR rejected, AE error, or an ORR/ORL as the ACK;
- the clock (`mark_overdue`): an order without a final result past its priority's SLA.
Orders are found by placer number (ORC-2/OBR-2), then filler number (ORC-3/OBR-3), then
accession number; a result for an order nobody placed gets a row flagged `unknown`.

Business events (lab_result_received, critical_result, order_overdue, ...) leave through one
function, `publish_order_event`, in the same transaction as the step that raised them.
Nothing here logs patient data: steps carry codes such as "OBR-25 F", never values.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, or_, select, update

from simpul.engine.config.channel import OrderTracking
from simpul.engine.events import emit_event
from simpul.errors import MessageError
from simpul.store.rows import delivery_row, order_event_row, order_row
from simpul.store.schema import deliveries, order_events, orders
from simpul.v2 import Segment, parse_message, read_message

log = logging.getLogger("simpul.orders")

FHIR_JSON = "application/fhir+json"

# OBR-5 / TQ1-9 / ORC-7.6 priority (HL7 table 0027 and 0485) -> the SLA class.
PRIORITY = {"S": "stat", "A": "asap", "R": "routine", "P": "routine", "C": "asap", "T": "asap"}
# OBR-25 result status (table 0123) -> timeline step.
RESULT_STEP = {"P": "preliminary", "F": "final", "C": "corrected", "X": "cancelled", "I": "status",
               "S": "status", "R": "status", "A": "preliminary"}
# ORC-1 of an order message (table 0119) -> step; NW (and an empty ORC-1) places the order.
PLACER_CONTROL = {"NW": "placed", "XO": "changed", "CA": "cancelled", "DC": "cancelled", "HD": "held"}
# ORC-1 of an order response from the filler.
FILLER_CONTROL = {"OK": "accepted", "UA": "rejected", "CR": "cancelled", "OC": "cancelled",
                  "UX": "rejected", "UC": "rejected", "SC": "status", "XR": "changed", "DR": "cancelled"}
# ORC-5 order status (table 0038): what the filler says it is doing.
ORDER_STATUS = {"IP": "in_progress", "SC": "scheduled", "A": "in_progress", "CM": "completed",
                "CA": "cancelled", "DC": "cancelled", "HD": "held", "ER": "rejected"}
# Statuses after which the SLA no longer runs.
CLOSED = {"final", "corrected", "cancelled", "rejected"}


@dataclass
class Critical:
    code: str
    flag: str          # the OBX-8 flag, or "rule" for a per-test limit
    value: str
    units: str
    interpretation: str = ""    # HH, LL, AA ... (a rule: LL below its limit, HH above)


@dataclass
class OrderGroup:
    """One ORC/OBR pair (or a lone OBR) of a message and what it says about its order."""

    control: str = ""            # ORC-1
    placer: str = ""             # ORC-2.1, else OBR-2.1
    filler: str = ""             # ORC-3.1, else OBR-3.1
    order_status: str = ""       # ORC-5
    accession: str = ""          # OBR-18 or IPC-1
    code: str = ""               # OBR-4.1
    priority: str = ""           # TQ1-9.1, OBR-5, ORC-7.6
    result_status: str = ""      # OBR-25
    collected: str = ""          # OBR-7, SPM-17.1
    has_obr: bool = False
    critical: list[Critical] = field(default_factory=list)


@dataclass
class MessageFacts:
    code: str                    # MSH-9.1: ORM, OML, OMI, ORR, ORL, ORU ...
    patient_id: str
    groups: list[OrderGroup]
    fhir: dict[str, Any] | None = None   # the channel's FHIR Bundle of this message, when it maps to one


def facts_from_text(text: str, tracking: OrderTracking) -> MessageFacts:
    message = parse_message(text)
    groups: list[OrderGroup] = []
    current: OrderGroup | None = None
    pid = message.one("PID")
    patient_id = pid.text(3) if pid is not None else ""
    for segment in message:
        name = segment.name
        if name == "ORC":
            current = OrderGroup(control=segment.text(1).upper(), placer=segment.text(2),
                                 filler=segment.text(3), order_status=segment.text(5).upper(),
                                 priority=segment.text(7, 6).upper())
            groups.append(current)
        elif name == "OBR":
            if current is None or current.has_obr:
                current = OrderGroup()
                groups.append(current)
            _read_obr(segment, current)
        elif current is None:
            continue
        elif name == "TQ1" and segment.text(9):
            current.priority = segment.text(9).upper()
        elif name == "IPC" and segment.text(1):
            current.accession = segment.text(1)
        elif name == "SPM" and segment.text(17) and not current.collected:
            current.collected = segment.text(17)
        elif name == "OBX":
            critical = _critical(segment, tracking)
            if critical is not None:
                current.critical.append(critical)
    return MessageFacts(message.message_code.upper(), patient_id,
                        [g for g in groups if g.placer or g.filler or g.accession])


def _read_obr(segment: Segment, group: OrderGroup) -> None:
    group.has_obr = True
    group.placer = group.placer or segment.text(2)
    group.filler = group.filler or segment.text(3)
    group.code = segment.text(4)
    group.priority = group.priority or segment.text(5).upper() or segment.text(27, 6).upper()
    group.collected = segment.text(7)
    group.accession = group.accession or segment.text(18)
    group.result_status = segment.text(25).upper()


def _critical(obx: Segment, tracking: OrderTracking) -> Critical | None:
    code, value, units = obx.text(3), obx.text(5), obx.text(6)
    flags = [flag.upper() for flag in obx.reps(8)]
    for flag in flags:
        if flag in tracking.critical_flags:
            return Critical(code, flag, value, units, flag)
    for rule in tracking.critical_rules:
        if rule.code != code:
            continue
        try:
            number = float(value)
        except ValueError:
            continue
        if rule.below is not None and number < rule.below:
            return Critical(code, "rule", value, units, "LL")
        if rule.above is not None and number > rule.above:
            return Critical(code, "rule", value, units, "HH")
    return None


def read_facts(raw: bytes, tracking: OrderTracking) -> MessageFacts | None:
    """What a stored message says about orders; None for a message no reader accepts."""
    try:
        return facts_from_text(read_message(raw, fallback_charset="latin-1").text, tracking)
    except MessageError:
        return None


# ---- events --------------------------------------------------------------------------------------

def publish_order_event(connection: Connection, type: str, *, subject: str, data: dict[str, Any],
                        priority: bool = False) -> None:
    """The one place order tracking hands a business event on: a CloudEvents message stored in the
    caller's transaction (engine/events.py), routed to the channels whose source is
    `events: {types: [...]}`. `priority` (critical results, overdue orders) routes it ahead of any
    backlog of received messages."""
    emit_event(connection, type, subject=subject, data=data, source="simpul/orders", priority=priority)


# ---- applying steps ------------------------------------------------------------------------------

@dataclass
class Step:
    """A step applied to an order, returned to the caller (tests, metrics)."""

    order_id: int
    step: str
    detail: str


# Statements built once: SQLAlchemy then reuses their compiled SQL (building a statement per call
# cost more than running it: 2,000 tracked results took 15 s to route instead of 1.5 s).
_BY_NUMBER = {column.name: select(orders).where(column == bindparam("number")).order_by(orders.c.id.desc()).limit(1)
              for column in (orders.c.placer_number, orders.c.filler_number, orders.c.accession_number)}
_INSERT_ORDER = orders.insert()
_UPDATE_ORDER = update(orders).where(orders.c.id == bindparam("b_id"))
_INSERT_STEP = order_events.insert()
_HAS_STEP = select(order_events.c.id).where(order_events.c.order_id == bindparam("order_id"),
                                            order_events.c.step == bindparam("step")).limit(1)


def _find(connection: Connection, group: OrderGroup) -> Any | None:
    """The order a group names (placer, else filler, else accession number), as a mutable record."""
    for column, value in (("placer_number", group.placer), ("filler_number", group.filler),
                          ("accession_number", group.accession)):
        if value:
            row = connection.execute(_BY_NUMBER[column], {"number": value}).first()
            if row is not None:
                return SimpleNamespace(**row._mapping)
    return None


def _order_data(row: Any) -> dict[str, Any]:
    return {"order_id": row.id, "kind": row.kind, "placer_number": row.placer_number,
            "filler_number": row.filler_number, "accession_number": row.accession_number,
            "patient_id": row.patient_id, "code": row.code, "priority": row.priority, "status": row.status,
            "unknown": bool(row.unknown)}


def _subject(row: Any) -> str:
    return f"ServiceRequest/{row.placer_number or row.filler_number or row.id}"


def _add_step(connection: Connection, order_id: int, step: str, detail: str, at: float,
              message_id: int | None, steps: list[Step]) -> None:
    connection.execute(_INSERT_STEP, order_event_row(order_id=order_id, at=at, step=step, detail=detail,
                                                     message_id=message_id))
    steps.append(Step(order_id, step, detail))


def _due(tracking: OrderTracking, priority: str, placed_at: float) -> float | None:
    sla = tracking.sla.get(priority)  # type: ignore[call-overload]
    return placed_at + sla if sla is not None else None


def _create(connection: Connection, group: OrderGroup, facts: MessageFacts, tracking: OrderTracking,
            channel: str, status: str, now: float, *, unknown: bool) -> Any:
    priority = PRIORITY.get(group.priority[:1], "routine")
    values = order_row(kind=tracking.kind, channel=channel, placer_number=group.placer, filler_number=group.filler,
                       accession_number=group.accession, patient_id=facts.patient_id, code=group.code,
                       priority=priority, status=status, unknown=unknown, placed_at=now,
                       due_at=None if unknown else _due(tracking, priority, now))
    inserted = connection.execute(_INSERT_ORDER, values).inserted_primary_key
    assert inserted is not None
    return SimpleNamespace(id=inserted[0], **values)


def _set(connection: Connection, row: Any, now: float, **values: Any) -> Any:
    """Write `values` to the order and return the record with them."""
    values["updated_at"] = now
    connection.execute(_UPDATE_ORDER, {"b_id": row.id, **values})
    return SimpleNamespace(**{**vars(row), **values})


def _fill_numbers(group: OrderGroup, row: Any) -> dict[str, str]:
    """Numbers the order did not know yet (the filler number arrives with the LIS's answer)."""
    values = {}
    if group.filler and not row.filler_number:
        values["filler_number"] = group.filler
    if group.accession and not row.accession_number:
        values["accession_number"] = group.accession
    if group.placer and not row.placer_number:
        values["placer_number"] = group.placer
    return values


def apply_message(connection: Connection, facts: MessageFacts, tracking: OrderTracking, channel: str,
                  message_id: int, now: float) -> list[Step]:
    """Add what one routed message says to the timelines of its orders (see the module docstring)."""
    steps: list[Step] = []
    for group in facts.groups:
        row = _find(connection, group)
        if facts.code in ("ORM", "OML", "OMI") and group.control not in FILLER_CONTROL:
            row = _placer_message(connection, row, group, facts, tracking, channel, message_id, now, steps)
        elif facts.code == "ORU":
            row = _result(connection, row, group, facts, tracking, channel, message_id, now, steps)
        elif row is not None:
            row = _filler_answer(connection, row, group, message_id, now, steps)
    return steps


def _placer_message(connection: Connection, row: Any, group: OrderGroup, facts: MessageFacts,
                    tracking: OrderTracking, channel: str, message_id: int, now: float, steps: list[Step]) -> Any:
    step = PLACER_CONTROL.get(group.control or "NW", "changed")
    if row is None:
        if step == "cancelled":
            return None                     # a cancel for an order we never saw: nothing to track
        row = _create(connection, group, facts, tracking, channel, "placed", now, unknown=False)
        _add_step(connection, row.id, "placed", f"ORC-1 {group.control or 'NW'}", now, message_id, steps)
        publish_order_event(connection, "order_placed", subject=_subject(row), data=_order_data(row))
        return row
    if step == "placed":
        return row                          # the same order again (a resend): no new step
    values: dict[str, Any] = {}
    if step == "cancelled":
        values["status"] = "cancelled"
    elif step == "changed" and group.priority:
        priority = PRIORITY.get(group.priority[:1], row.priority)
        values.update(priority=priority, due_at=_due(tracking, priority, row.placed_at))
    row = _set(connection, row, now, **values)
    _add_step(connection, row.id, step, f"ORC-1 {group.control}", now, message_id, steps)
    return row


def _filler_answer(connection: Connection, row: Any, group: OrderGroup, message_id: int | None, now: float,
                   steps: list[Step]) -> Any:
    """ORR/ORL (or an ORM/OSU status message from the filler): ORC-1 and ORC-5."""
    values: dict[str, Any] = _fill_numbers(group, row)
    step = FILLER_CONTROL.get(group.control, "")
    if step and step != "status":
        if row.status not in CLOSED or step == "cancelled":
            values["status"] = step
        _add_step(connection, row.id, step, f"ORC-1 {group.control}", now, message_id, steps)
    if group.order_status:
        status = ORDER_STATUS.get(group.order_status, "")
        if status and row.status not in CLOSED and status != "completed":
            values["status"] = status
        _add_step(connection, row.id, "status", f"ORC-5 {group.order_status}", now, message_id, steps)
    if values:
        row = _set(connection, row, now, **values)
    if step == "rejected":
        publish_order_event(connection, "order_rejected", subject=_subject(row), data=_order_data(row))
    return row


def _result(connection: Connection, row: Any, group: OrderGroup, facts: MessageFacts, tracking: OrderTracking,
            channel: str, message_id: int, now: float, steps: list[Step]) -> Any:
    step = RESULT_STEP.get(group.result_status, "preliminary")
    if row is None:
        # Results for an order nobody placed are kept (the clinician still needs them) and flagged.
        row = _create(connection, group, facts, tracking, channel, step, now, unknown=True)
        _add_step(connection, row.id, "unknown_order", "no order with these placer/filler numbers", now,
                  message_id, steps)
    values: dict[str, Any] = _fill_numbers(group, row)
    if group.collected and not _has_step(connection, row.id, "specimen_collected"):
        _add_step(connection, row.id, "specimen_collected", f"OBR-7 {group.collected}", now, message_id, steps)
    if group.order_status:
        _add_step(connection, row.id, "status", f"ORC-5 {group.order_status}", now, message_id, steps)
    if step in ("final", "corrected") and row.final_at is None:
        values["final_at"] = now
    if step != "status" and (row.status not in ("final", "corrected") or step in ("final", "corrected")):
        values["status"] = step
    _add_step(connection, row.id, step, f"OBR-25 {group.result_status or '-'}", now, message_id, steps)
    row = _set(connection, row, now, **values)
    if group.critical:
        codes = ", ".join(f"{c.code} {c.flag}" for c in group.critical)
        _add_step(connection, row.id, "critical", codes, now, message_id, steps)
        for critical in group.critical:
            observation = _critical_observation(facts.fhir, critical, row)
            publish_order_event(connection, "critical_result", priority=True, data=observation,
                                subject=_reference_of(facts.fhir, observation) or _subject(row))
    if tracking.kind == "lab":
        report = _first(facts.fhir, "DiagnosticReport")
        publish_order_event(connection, "lab_result_received", data=facts.fhir or {**_order_data(row),
                                                                                  "result_status": step},
                            subject=_reference_of(facts.fhir, report) or _subject(row))
    return row


# ---- event data: FHIR, as the event catalogue (docs/channels/events.md) describes it ---------------

INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def _resources(bundle: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [e["resource"] for e in (bundle or {}).get("entry", []) if isinstance(e.get("resource"), dict)]


def _first(bundle: dict[str, Any] | None, resource_type: str) -> dict[str, Any] | None:
    return next((r for r in _resources(bundle) if r.get("resourceType") == resource_type), None)


def _reference_of(bundle: dict[str, Any] | None, resource: dict[str, Any] | None) -> str | None:
    """`Type/id` of a resource of the channel's Bundle (its id, else the id in its PUT url)."""
    if resource is None:
        return None
    if resource.get("id"):
        return f"{resource['resourceType']}/{resource['id']}"
    for entry in (bundle or {}).get("entry", []):
        url = (entry.get("request") or {}).get("url", "")
        if entry.get("resource") is resource and "/" in url and "?" not in url:
            return str(url)
    return None


def _critical_observation(bundle: dict[str, Any] | None, critical: Critical, row: Any) -> dict[str, Any]:
    """The Observation of the critical OBX from the channel's Bundle (else one built from the OBX),
    its interpretation holding the critical flag (a per-test rule gives HH or LL)."""
    flag = critical.interpretation
    found = next((r for r in _resources(bundle) if r.get("resourceType") == "Observation"
                  and any(c.get("code") == critical.code for c in (r.get("code") or {}).get("coding", []))), None)
    if found is not None:
        observation = dict(found)
    else:
        observation = {"resourceType": "Observation", "status": "final",
                       "code": {"coding": [{"code": critical.code}]},
                       "subject": {"identifier": {"value": row.patient_id}},
                       "valueString": f"{critical.value} {critical.units}".strip()}
    if row.placer_number and "basedOn" not in observation:
        observation["basedOn"] = [{"type": "ServiceRequest", "identifier": {"value": row.placer_number}}]
    codes = {c.get("code") for i in observation.get("interpretation", []) for c in i.get("coding", [])}
    if flag not in codes:
        observation["interpretation"] = [*observation.get("interpretation", []),
                                         {"coding": [{"system": INTERPRETATION, "code": flag}]}]
    return observation


def _has_step(connection: Connection, order_id: int, step: str) -> bool:
    return connection.execute(_HAS_STEP, {"order_id": order_id, "step": step}).first() is not None


@dataclass
class Answer:
    """One recorded delivery attempt of a channel that tracks orders (the delivery worker's hook)."""

    message_id: int
    payload: bytes          # what was sent: the order message
    outcome: str            # delivered | retry | failed
    response: str | None    # the receiver's whole answer (an ACK, an ORR/ORL, a dicomweb Bundle)
    channel: str
    destination: str        # the destination's label
    connector: str          # its connector: what the answer means depends on it


def apply_delivery(connection: Connection, answer: Answer, tracking: OrderTracking, now: float) -> list[Step]:
    """Add the receiver's answer to the timelines of the orders in the sent message.

    A LIS or RIS (mllp and other senders): AA sent, AE retrying, AR (or retries spent) rejected,
    an ORR/ORL answer its ORC-1 and ORC-5. A worklist: the item is scheduled (or removed). A PACS
    (dicomweb): the study was found, its ImagingStudy goes to `study_destination`; retries spent
    means no study within the deadline: study_missing.
    """
    sent = read_facts(answer.payload, tracking)
    if sent is None or sent.code not in ("ORM", "OML", "OMI"):
        return []
    steps: list[Step] = []
    for group in sent.groups:
        row = _find(connection, group)
        # Only the channel that placed the order speaks for its receivers: a status update from the
        # LIS that another channel archives is not "sent" to anybody.
        if row is None or row.channel != answer.channel or group.control in FILLER_CONTROL:
            continue
        if answer.connector == "dicomweb":
            _study_answer(connection, row, answer, tracking, now, steps)
        elif answer.connector == "worklist":
            if answer.outcome == "delivered":
                _add_step(connection, row.id, "worklist", (answer.response or "")[:120], now, None, steps)
            elif answer.outcome == "failed":
                _add_step(connection, row.id, "worklist_failed", answer.destination, now, None, steps)
        else:
            _receiver_answer(connection, row, group, answer, tracking, now, steps)
    return steps


def _receiver_answer(connection: Connection, row: Any, group: OrderGroup, answer: Answer, tracking: OrderTracking,
                     now: float, steps: list[Step]) -> None:
    ack_code = _msa_code(answer.response)
    if answer.outcome == "delivered":
        _add_step(connection, row.id, "sent", f"MSA-1 {ack_code or 'AA'}", now, None, steps)
        if row.status == "placed":
            row = _set(connection, row, now, status="sent")
        reply = None
        if answer.response and "ORC" in answer.response:
            try:
                reply = facts_from_text(answer.response.replace("\n", "\r"), tracking)
            except MessageError:
                reply = None
        for answered in (reply.groups if reply is not None else []):
            if answered.placer in ("", group.placer):
                row = _filler_answer(connection, row, answered, None, now, steps)
    elif answer.outcome == "failed":
        _add_step(connection, row.id, "rejected", f"MSA-1 {ack_code or 'none'} from {answer.destination}", now,
                  None, steps)
        row = _set(connection, row, now, status="rejected")
        publish_order_event(connection, "order_rejected", subject=_subject(row), data=_order_data(row))
    else:
        _add_step(connection, row.id, "send_failed", f"MSA-1 {ack_code or 'none'}; retrying", now, None, steps)


def _study_answer(connection: Connection, row: Any, answer: Answer, tracking: OrderTracking, now: float,
                  steps: list[Step]) -> None:
    if answer.outcome == "failed":
        _add_step(connection, row.id, "study_missing", f"no study on the PACS ({answer.destination})", now, None,
                  steps)
        row = _set(connection, row, now, study_alerted_at=now)
        publish_order_event(connection, "study_missing", subject=_subject(row), data=_order_data(row),
                            priority=True)
        return
    if answer.outcome != "delivered" or not answer.response or not answer.response.startswith("{"):
        return
    bundle = orjson.loads(answer.response)
    studies = [entry["resource"] for entry in bundle.get("entry", [])
               if entry.get("resource", {}).get("resourceType") == "ImagingStudy"]
    if not studies:
        return
    uid = studies[0]["identifier"][0]["value"].removeprefix("urn:oid:")
    _add_step(connection, row.id, "study_acquired", f"{studies[0].get('numberOfInstances', 0)} instance(s)", now,
              None, steps)
    row = _set(connection, row, now, study_found_at=now)
    if tracking.study_destination:
        connection.execute(deliveries.insert(), delivery_row(
            message_id=answer.message_id, channel=answer.channel, destination=tracking.study_destination,
            order_key=f"study:{uid}", payload=answer.response.encode(), content_type=FHIR_JSON,
            created_at=now, next_attempt_at=now))
    study = dict(studies[0])
    endpoint = _first(bundle, "Endpoint")
    if endpoint is not None:     # alone in an event, the study carries its Endpoint inside
        study["contained"] = [{**endpoint, "id": "endpoint"}]
        study["endpoint"] = [{"reference": "#endpoint"}]
    publish_order_event(connection, "imaging_study_available", subject=f"ImagingStudy/{uid}", data=study)


def _msa_code(response: str | None) -> str:
    for line in (response or "").replace("\n", "\r").split("\r"):
        if line.startswith("MSA") and len(line) > 4:
            return line.split(line[3])[1][:2] if len(line.split(line[3])) > 1 else ""
    return ""


# ---- the SLA clock -------------------------------------------------------------------------------

def mark_overdue(connection: Connection, now: float) -> list[dict[str, Any]]:
    """Orders past their SLA without a final result: mark each once and raise order_overdue."""
    late = list(connection.execute(select(orders).where(
        orders.c.final_at.is_(None), orders.c.due_at.is_not(None), orders.c.due_at <= now,
        orders.c.overdue_at.is_(None), orders.c.status.notin_(CLOSED))))
    marked = []
    for row in late:
        # Claimed with the condition re-checked: with several engine processes on PostgreSQL, the
        # second one's UPDATE waits for the first to commit, then matches nothing (one event per order).
        claimed = connection.execute(update(orders).where(orders.c.id == row.id, orders.c.overdue_at.is_(None))
                                     .values(overdue_at=now))
        if claimed.rowcount == 0:
            continue
        connection.execute(order_events.insert().values(order_event_row(
            order_id=row.id, at=now, step="overdue", message_id=None,
            detail=f"no final result {now - row.placed_at:.0f}s after placing ({row.priority} SLA)")))
        data = {**_order_data(row), "due_at": row.due_at, "late_by_seconds": round(now - row.due_at, 1)}
        publish_order_event(connection, "order_overdue", subject=_subject(row), data=data, priority=True)
        marked.append(data)
    return marked


# ---- reading: the API and the CLI ----------------------------------------------------------------

def _as_dict(row: Any) -> dict[str, Any]:
    return {**_order_data(row), "channel": row.channel, "placed_at": row.placed_at, "updated_at": row.updated_at,
            "due_at": row.due_at, "final_at": row.final_at, "overdue_at": row.overdue_at,
            "study_found_at": row.study_found_at}


def find_order(connection: Connection, reference: str) -> dict[str, Any] | None:
    """One order with its timeline, by id, placer, filler or accession number."""
    conditions = [orders.c.placer_number == reference, orders.c.filler_number == reference,
                  orders.c.accession_number == reference]
    if reference.isdigit():
        conditions.append(orders.c.id == int(reference))
    row = connection.execute(select(orders).where(or_(*conditions)).order_by(orders.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    order = _as_dict(row)
    order["timeline"] = [{"at": e.at, "step": e.step, "detail": e.detail, "message_id": e.message_id}
                         for e in connection.execute(select(order_events).where(order_events.c.order_id == row.id)
                                                     .order_by(order_events.c.id))]
    return order


def list_orders(connection: Connection, *, overdue: bool = False, kind: str | None = None,
                status: str | None = None, unknown: bool | None = None, now: float,
                limit: int = 100) -> list[dict[str, Any]]:
    """Orders, newest first; `overdue`: past their SLA without a final result (marked or not yet)."""
    query = select(orders)
    if overdue:
        query = query.where(and_(orders.c.final_at.is_(None), orders.c.due_at.is_not(None),
                                 orders.c.due_at <= now, orders.c.status.notin_(CLOSED)))
    if kind:
        query = query.where(orders.c.kind == kind)
    if status:
        query = query.where(orders.c.status == status)
    if unknown is not None:
        query = query.where(orders.c.unknown == int(unknown))
    rows = connection.execute(query.order_by(orders.c.due_at if overdue else orders.c.id.desc()).limit(limit))
    return [_as_dict(row) for row in rows]


__all__ = ["Answer", "MessageFacts", "OrderGroup", "Step", "apply_delivery", "apply_message", "facts_from_text",
           "find_order", "list_orders", "mark_overdue", "publish_order_event", "read_facts"]
