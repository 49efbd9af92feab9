"""Finding messages by what on-call staff know: patient, control id, type, status, time."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from simpul.store.schema import deliveries, messages


@dataclass
class MessageQuery:
    patient_id: str | None = None
    control_id: str | None = None
    message_type: str | None = None
    status: str | None = None
    accession_number: str | None = None
    visit_number: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100


def search_messages(connection: Connection, query: MessageQuery) -> list[dict[str, Any]]:
    m = messages.c
    statement = select(m.id, m.received_at, m.source, m.status, m.message_type, m.control_id,
                       m.sending_application, m.sending_facility, m.patient_id, m.visit_number,
                       m.accession_number, m.ack_code, m.error)
    if query.patient_id:
        statement = statement.where(m.patient_id == query.patient_id)
    if query.control_id:
        statement = statement.where(m.control_id == query.control_id)
    if query.message_type:
        pattern = query.message_type.replace("*", "%")
        statement = statement.where(m.message_type.like(pattern) if "%" in pattern
                                    else m.message_type == pattern)
    if query.status:
        statement = statement.where(m.status == query.status)
    if query.accession_number:
        statement = statement.where(m.accession_number == query.accession_number)
    if query.visit_number:
        statement = statement.where(m.visit_number == query.visit_number)
    if query.since is not None:
        statement = statement.where(m.received_at >= query.since)
    if query.until is not None:
        statement = statement.where(m.received_at < query.until)
    statement = statement.order_by(m.id.desc()).limit(query.limit)
    # str(): SQLAlchemy names columns with a str subclass, which orjson refuses as a dict key.
    found = [{str(key): value for key, value in row._mapping.items()} for row in connection.execute(statement)]
    if found:
        ids = [item["id"] for item in found]
        summary = connection.execute(
            select(deliveries.c.message_id, deliveries.c.channel, deliveries.c.destination, deliveries.c.status,
                   deliveries.c.attempts)
            .where(deliveries.c.message_id.in_(ids)))
        by_message: dict[int, list[dict[str, Any]]] = {}
        for row in summary:
            by_message.setdefault(row.message_id, []).append(
                {"channel": row.channel, "destination": row.destination, "status": row.status,
                 "attempts": row.attempts})
        for item in found:
            item["deliveries"] = by_message.get(item["id"], [])
    return found
