"""Finding dead letters by what on-call staff know, and showing one with its whole story.

A `DeadLetterFilter` is shared by list, counts, batch replay and batch discard, so the preview
of a replay counts exactly the rows a list with the same options shows.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.sql.elements import ColumnElement

from simpul.store.schema import (
    dead_letter_edits, dead_letters, deliveries, delivery_attempts, messages, replays,
)
from simpul.store.rows import DeadLetter
from simpul.store.status import DeadLetterStatus
from simpul.errors import NotFound, OperationRefused

STATUSES = tuple(status.value for status in DeadLetterStatus)
COUNT_BY = ("channel", "destination", "error_class", "stage", "status", "message_type")
LIST_COLUMNS = ("id", "created_at", "message_id", "delivery_id", "channel", "destination", "stage",
                "error_class", "error", "attempts", "status", "message_type", "control_id", "patient_id",
                "visit_number", "accession_number", "resolved_at", "resolved_by", "resolution")


@dataclass
class DeadLetterFilter:
    """Empty fields match everything. `status=None` means any status."""

    ids: list[int] = field(default_factory=list)
    channel: str | None = None
    destination: str | None = None
    status: str | None = None
    error: str | None = None              # substring of the error class or text, case-insensitive
    patient_id: str | None = None
    control_id: str | None = None
    message_type: str | None = None       # ORU^R01, or with * wildcards: ADT^*
    visit_number: str | None = None
    accession_number: str | None = None
    since: float | None = None
    until: float | None = None

    def is_empty(self) -> bool:
        return not any(value not in (None, "", []) for value in vars(self).values())

    def clauses(self) -> list[ColumnElement[bool]]:
        x = dead_letters.c
        found: list[ColumnElement[bool]] = []
        if self.status is not None and self.status not in STATUSES:
            raise OperationRefused(f"unknown status '{self.status}' (one of {', '.join(STATUSES)})")
        if self.ids:
            found.append(x.id.in_(self.ids))
        for column, value in ((x.channel, self.channel), (x.destination, self.destination),
                              (x.status, self.status), (x.patient_id, self.patient_id),
                              (x.control_id, self.control_id), (x.visit_number, self.visit_number),
                              (x.accession_number, self.accession_number)):
            if value:
                found.append(column == value)
        if self.message_type:
            pattern = self.message_type.replace("*", "%")
            found.append(x.message_type.like(pattern) if "%" in pattern else x.message_type == pattern)
        if self.error:
            needle = f"%{self.error.lower()}%"
            found.append(func.lower(x.error).like(needle) | func.lower(x.error_class).like(needle))
        if self.since is not None:
            found.append(x.created_at >= self.since)
        if self.until is not None:
            found.append(x.created_at < self.until)
        return found


def search_dead_letters(connection: Connection, query: DeadLetterFilter, *, limit: int = 50,
                        offset: int = 0) -> dict[str, Any]:
    """One page, newest first, with the total that matched (no message bytes in a list)."""
    x = dead_letters.c
    clauses = query.clauses()
    total = connection.execute(select(func.count()).select_from(dead_letters).where(*clauses)).scalar_one()
    rows = connection.execute(select(*(getattr(x, name) for name in LIST_COLUMNS)).where(*clauses)
                              .order_by(x.id.desc()).limit(limit).offset(offset))
    return {"total": total, "limit": limit, "offset": offset, "items": [dict(row._mapping) for row in rows]}


def count_dead_letters(connection: Connection, query: DeadLetterFilter, by: list[str]) -> list[dict[str, Any]]:
    """Counts grouped by any of COUNT_BY, largest first."""
    unknown = [name for name in by if name not in COUNT_BY]
    if unknown or not by:
        raise OperationRefused(f"count by one or more of {', '.join(COUNT_BY)}")
    columns = [getattr(dead_letters.c, name) for name in by]
    rows = connection.execute(select(*columns, func.count().label("count")).where(*query.clauses())
                              .group_by(*columns).order_by(func.count().desc()))
    return [dict(row._mapping) for row in rows]


def as_text(data: bytes | None) -> str | None:
    """Bytes for a person to read; the exact bytes stay available base64-encoded."""
    if data is None:
        return None
    return bytes(data).decode("utf-8", errors="replace")


def show_dead_letter(connection: Connection, dead_letter_id: int) -> dict[str, Any]:
    """Everything about one entry: bytes, mapped output, attempts, edits and replays (with their outcome)."""
    found = connection.execute(select(dead_letters).where(dead_letters.c.id == dead_letter_id)).first()
    if found is None:
        raise NotFound(f"no dead letter {dead_letter_id}")
    row = DeadLetter.from_row(found)
    entry = {name: getattr(row, name) for name in LIST_COLUMNS}
    entry["raw"] = as_text(row.raw)
    entry["raw_base64"] = base64.b64encode(bytes(row.raw)).decode()
    entry["payload"] = as_text(row.payload)
    message = connection.execute(select(messages.c.received_at, messages.c.source, messages.c.sending_application,
                                        messages.c.sending_facility).where(messages.c.id == row.message_id)).first()
    entry["message"] = dict(message._mapping) if message is not None else None
    attempts: list[dict[str, Any]] = []
    if row.delivery_id is not None:
        a = delivery_attempts.c
        attempts = [dict(r._mapping) for r in connection.execute(
            select(a.attempt, a.started_at, a.finished_at, a.outcome, a.error_class, a.error, a.response)
            .where(a.delivery_id == row.delivery_id).order_by(a.id))]
    entry["attempts"] = attempts
    e = dead_letter_edits.c
    entry["edits"] = [{**r._mapping, "raw": as_text(r.raw), "payload": as_text(r.payload)} for r in connection.execute(
        select(e.id, e.at, e.actor, e.reason, e.raw, e.payload, e.content_type)
        .where(e.dead_letter_id == dead_letter_id).order_by(e.id))]
    r, d = replays.c, deliveries.c
    entry["replays"] = [dict(x._mapping) for x in connection.execute(
        select(r.id, r.at, r.audit_event_id, r.delivery_id, r.edit_id, r.destination, d.status, d.attempts,
               d.next_attempt_at, d.delivered_at, d.last_error)
        .join(deliveries, d.id == r.delivery_id).where(r.dead_letter_id == dead_letter_id).order_by(r.id))]
    return entry
