"""The audit trail of on-call actions: who, when, what, why, how many.

Rows are append-only: this module inserts and lists, and no CLI command or HTTP route updates
or deletes them. Protection at the database level (a hash chain that makes tampering visible)
comes with the console/audit issue; until then the database's own permissions are the guard.
"""
from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Connection, select

from simpul.store.database import inserted_id
from simpul.store.rows import audit_event_row
from simpul.store.schema import audit_events

ACTIONS = ("dead_letter.replay", "dead_letter.edit", "dead_letter.discard", "destination.pause",
           "destination.resume", "retention.archive", "retention.restore")


def record_audit(connection: Connection, *, actor: str, action: str, target: str, reason: str | None,
                 detail: dict[str, Any]) -> int:
    """Insert one audit event in the caller's transaction (so it commits with the change it records)."""
    result = connection.execute(audit_events.insert().values(audit_event_row(
        at=time.time(), actor=actor, action=action, target=target, reason=reason,
        detail=orjson.dumps(detail).decode())))
    return inserted_id(result)


def list_audit(connection: Connection, *, action: str | None = None, actor: str | None = None,
               since: float | None = None, until: float | None = None, limit: int = 100,
               offset: int = 0) -> list[dict[str, Any]]:
    """Newest first."""
    a = audit_events.c
    statement = select(a.id, a.at, a.actor, a.action, a.target, a.reason, a.detail)
    if action:
        statement = statement.where(a.action.like(action.replace("*", "%")) if "*" in action
                                    else a.action == action)
    if actor:
        statement = statement.where(a.actor == actor)
    if since is not None:
        statement = statement.where(a.at >= since)
    if until is not None:
        statement = statement.where(a.at < until)
    rows = connection.execute(statement.order_by(a.id.desc()).limit(limit).offset(offset))
    return [{**row._mapping, "detail": orjson.loads(row.detail) if row.detail else {}} for row in rows]
