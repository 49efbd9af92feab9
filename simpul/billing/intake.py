"""The billing intake: reads the stored message stream in id order and applies it to accounts.

It follows the store rather than being a channel destination, so billing sees every ADT, DFT,
ORU and order message whichever channels route it (or none), and in the order they were stored.
It reads an ADT/DFT/ORU message only once the processor has routed it (not `received`), keeps
its place in billing_state (`intake_cursor`), and applies a batch and moves the cursor in one
transaction: a crash re-reads at most the batch, whose keys are then found taken.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

from sqlalchemy import Connection, select

from simpul.billing.accounts import (
    ADT_TRANSITIONS, DFT_TYPES, EVENT_TRANSITIONS, ORDER_TYPES, RESULT_TYPES, Source, apply_transition,
    charge_bed_days, charges_from_dft, charges_from_orders, find_account, hl7_time, iso_time, visit_of_event,
    visit_of_v2,
)
from simpul.billing.inventory import DISPENSE_EVENTS, DISPENSE_TYPES, dispense_from_event, dispenses_from_rds
from simpul.billing.invoices import invoice_if_ready
from simpul.billing.tariffs import TariffTable
from simpul.errors import SimpulError
from simpul.store.schema import billing_state, messages
from simpul.store.status import MessageStatus
from simpul.v2.message import parse_message

log = logging.getLogger("simpul.billing")

BILLED_TYPES = set(ADT_TRANSITIONS) | DFT_TYPES | RESULT_TYPES | ORDER_TYPES | set(EVENT_TRANSITIONS) \
    | DISPENSE_TYPES | DISPENSE_EVENTS
BATCH = 200
CURSOR = "intake_cursor"
# Simpul's own events (emit_event) never wait for routing here: one no channel takes stays `received`.
EVENT_PREFIX = "event:"


def read_state(connection: Connection, name: str, default: str = "") -> str:
    value = connection.execute(select(billing_state.c.value).where(billing_state.c.name == name)).scalar()
    return str(value) if value is not None else default


def write_state(connection: Connection, name: str, value: str) -> None:
    if connection.execute(select(billing_state.c.name).where(billing_state.c.name == name)).first():
        connection.execute(billing_state.update().where(billing_state.c.name == name).values(value=value))
    else:
        connection.execute(billing_state.insert().values(name=name, value=value))


def intake_batch(connection: Connection, tariffs: TariffTable, *, prefix: str, settle: float = 0.0) -> int:
    """Apply the next routed messages after the cursor; returns how many were read (0: caught up).

    `settle`: messages younger than this many seconds wait. On PostgreSQL several writers take ids
    from one sequence and may commit out of id order; waiting until a message has settled keeps
    the cursor from passing an id whose transaction was still open.
    """
    horizon = time.time() - settle
    cursor = int(read_state(connection, CURSOR, "0"))
    rows = connection.execute(
        select(messages.c.id, messages.c.status, messages.c.source, messages.c.message_type, messages.c.raw, messages.c.charset,
               messages.c.sending_application, messages.c.sending_facility, messages.c.control_id,
               messages.c.received_at)
        .where(messages.c.id > cursor).order_by(messages.c.id).limit(BATCH)).all()
    read = 0
    for row in rows:
        if row.received_at > horizon:
            break
        if row.status == MessageStatus.RECEIVED and row.message_type in BILLED_TYPES \
                and not row.source.startswith(EVENT_PREFIX):
            break           # not routed yet: the stream is read in order, so wait for it
        read += 1
        cursor = row.id
        if row.status == MessageStatus.REJECTED or row.message_type not in BILLED_TYPES:
            continue
        try:
            with connection.begin_nested():     # a message billing cannot read leaves no half-applied rows
                apply_message(connection, row._mapping, tariffs, prefix=prefix)
        except (SimpulError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # A message billing cannot read (broken PV1, odd event data) must not stop the stream:
            # it is logged by id and type, and the processor's dead letters already hold bad input.
            log.warning("billing skipped a message it cannot read",
                        extra={"message_id": row.id, "message_type": row.message_type,
                               "error_class": type(exc).__name__})
    if read:
        write_state(connection, CURSOR, str(cursor))
    return read


def apply_message(connection: Connection, row: Any, tariffs: TariffTable, *, prefix: str) -> None:
    code = row["message_type"]
    sender = f"{row['sending_application']}|{row['sending_facility']}"
    if code in EVENT_TRANSITIONS or code in DISPENSE_EVENTS:
        event = json.loads(bytes(row["raw"]))
        data = event.get("data") or {}
        source = Source(row["id"], sender, row["control_id"], code, iso_time(event.get("time", "")) or row["received_at"])
        if code in DISPENSE_EVENTS:
            if dispense_from_event(connection, data, source, tariffs):
                _invoice_late_charges(connection, str(data.get("context", {}).get("identifier", {}).get("value", "")),
                                      prefix)
            return
        _transition(connection, EVENT_TRANSITIONS[code], visit_of_event(code, data), source, tariffs, prefix)
        return
    text = bytes(row["raw"]).decode(row["charset"] or "utf-8", errors="replace")
    message = parse_message(text)
    source = Source(row["id"], sender, row["control_id"], code, hl7_time(message.msh.text(7)) or row["received_at"])
    if code in ADT_TRANSITIONS:
        _transition(connection, ADT_TRANSITIONS[code], visit_of_v2(message), source, tariffs, prefix)
        return
    if code in DFT_TYPES:
        added = charges_from_dft(connection, message, source, tariffs)
    elif code in DISPENSE_TYPES:
        added = dispenses_from_rds(connection, message, visit_of_v2(message), source, tariffs)
    else:
        added = charges_from_orders(connection, message, source, tariffs)
    if added:
        _invoice_late_charges(connection, visit_of_v2(message).visit_number, prefix)


def _invoice_late_charges(connection: Connection, visit_number: str, prefix: str) -> None:
    """A charge after the close (a late DFT or dispense) goes on a supplementary invoice once priced."""
    account = find_account(connection, visit_number)
    if account is not None and account["status"] == "closed":
        invoice_if_ready(connection, account, prefix=prefix)


def _transition(connection: Connection, transition: str, visit: Any, source: Source, tariffs: TariffTable,
                prefix: str) -> None:
    applied = apply_transition(connection, transition, visit, source)
    if applied != "closed":
        return
    account = find_account(connection, visit.visit_number)
    assert account is not None
    charge_bed_days(connection, account, tariffs)
    invoice_if_ready(connection, account, prefix=prefix)
