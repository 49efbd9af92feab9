"""Finding messages by what on-call staff know: patient, control id, type, status, time, text.

Every filter but `text` is an equality or range on an indexed column. `text` looks for the words
inside the raw bytes (a scan of the rows the other filters leave, newest first, stopping at
`limit`), so narrow it with a time range or a type on a large store.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select

from simpul.errors import NotFound
from simpul.v2.charset import codec_for
from simpul.store.schema import dead_letters, deliveries, delivery_attempts, messages


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
    text: str | None = None
    limit: int = 100

    def criteria(self) -> dict[str, Any]:
        """The filters given (for the audit trail of a search)."""
        return {k: v for k, v in vars(self).items() if v not in (None, "") and k != "limit"}


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
        statement = statement.where(_type_matches(query.message_type))
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
    if query.since is not None or query.until is not None:
        bounds = _id_bounds(connection, query.since, query.until)
        if bounds is None:
            return []
        statement = statement.where(m.id.between(*bounds))
    if query.text:
        statement = statement.where(_raw_contains(connection, query.text.encode("utf-8")))
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


def _type_matches(wanted: str) -> Any:
    """MSH-9 equal to `wanted`, or starting with its prefix for a trailing `*` (ADT^*): written as
    a range, not LIKE, so the message_type index serves it (SQLite uses an index for LIKE only
    with case-sensitive LIKE or a NOCASE column)."""
    m = messages.c
    if "*" not in wanted:
        return m.message_type == wanted
    prefix = wanted.rstrip("*")
    if "*" in prefix or not prefix:
        return m.message_type.like(wanted.replace("*", "%"))
    return (m.message_type >= prefix) & (m.message_type < prefix[:-1] + chr(ord(prefix[-1]) + 1))


def _id_bounds(connection: Connection, since: float | None, until: float | None) -> tuple[int, int] | None:
    """The lowest and highest message id received within [since, until), or None when none was.

    Two index-only passes over the received_at index. With them the search also constrains the
    id, so the other indexes (type, status: each ordered by id within a value) and the table's
    own id order seek straight to the time window instead of walking every row of the type, and
    a text search reads only the window. Exact: the bounds come from the times themselves, so a
    message stored out of time order is still inside them.
    """
    m = messages.c
    window = []
    if since is not None:
        window.append(m.received_at >= since)
    if until is not None:
        window.append(m.received_at < until)
    row = connection.execute(select(func.min(m.id), func.max(m.id)).where(*window)).one()
    return None if row[0] is None else (int(row[0]), int(row[1]))


def _raw_contains(connection: Connection, needle: bytes) -> Any:
    """The raw bytes contain `needle` (exact, case-sensitive): instr() on SQLite, LIKE on bytea
    (backslash is PostgreSQL's default LIKE escape) on PostgreSQL."""
    if connection.dialect.name == "sqlite":
        return func.instr(messages.c.raw, needle) > 0
    escaped = needle.replace(b"\\", b"\\\\").replace(b"%", b"\\%").replace(b"_", b"\\_")
    return messages.c.raw.op("LIKE")(b"%" + escaped + b"%")


def show_message(connection: Connection, message_id: int) -> dict[str, Any]:
    """One message with everything about it: raw bytes (as text), each delivery with its payload
    (the stage output sent, e.g. the FHIR Bundle) and every attempt with the receiver's answer."""
    row = connection.execute(select(messages).where(messages.c.id == message_id)).first()
    if row is None:
        raise NotFound(f"no message {message_id}")
    found = {str(k): v for k, v in row._mapping.items() if k not in ("raw", "ack")}
    # Decoded as MSH-18 declares (the stored charset column), unreadable bytes shown as U+FFFD.
    found["raw"] = bytes(row.raw).decode(codec_for(row.charset, "utf-8"), errors="replace")
    found["ack"] = bytes(row.ack).decode("utf-8", errors="replace") if row.ack is not None else None
    d, a = deliveries.c, delivery_attempts.c
    items = []
    for delivery in connection.execute(select(deliveries).where(d.message_id == message_id).order_by(d.id)):
        item = {str(k): v for k, v in delivery._mapping.items() if k != "payload"}
        item["payload"] = bytes(delivery.payload).decode("utf-8", errors="replace")
        item["attempts"] = [{str(k): v for k, v in attempt._mapping.items()} for attempt in connection.execute(
            select(a.attempt, a.started_at, a.finished_at, a.outcome, a.error_class, a.error, a.response)
            .where(a.delivery_id == delivery.id).order_by(a.id))]
        items.append(item)
    found["deliveries"] = items
    x = dead_letters.c
    found["dead_letters"] = [{str(k): v for k, v in r._mapping.items()} for r in connection.execute(
        select(x.id, x.created_at, x.channel, x.destination, x.stage, x.error_class, x.error, x.status)
        .where(x.message_id == message_id).order_by(x.id))]
    return found
