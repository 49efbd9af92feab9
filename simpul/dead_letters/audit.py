"""The audit trail: who (actor and role), from where (client address), when, what, on which object,
why — as a hash chain that shows tampering.

Rows are append-only: this module inserts and lists, and no CLI command or HTTP route updates or
deletes them. Each event carries the hash of the event before it (`prev_hash`) and its own hash
over its content and `prev_hash` (simpul/store/audit_chain.py). `verify_chain` walks the chain in
id order and names the first event that does not fit: a changed row no longer matches its own
hash, a removed row leaves the next one pointing at a hash that is not there. A removed *tail*
leaves no such trace in the table itself, so every archive file written by retention carries the
chain head of its time (`chain_head`), and the verifier checks that each recorded head is still in
the chain.

Appending reads the current head and inserts after it in one transaction: SQLite writers hold
the database write lock for the whole transaction (BEGIN IMMEDIATE, store/database.py); on
PostgreSQL a transaction-scoped advisory lock serialises appenders of every process, so two
engine processes never fork the chain.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, func, select, text

from simpul.store.audit_chain import GENESIS, event_hash
from simpul.store.database import inserted_id
from simpul.store.rows import audit_event_row
from simpul.store.schema import audit_events

# Every action the trail records (for readers and filters; `record_audit` does not restrict it).
ACTIONS = ("dead_letter.replay", "dead_letter.edit", "dead_letter.discard", "dead_letter.view", "dead_letter.search",
           "destination.pause", "destination.resume", "retention.archive", "retention.purge", "retention.restore",
           "archive.search", "message.view", "message.search", "login", "login.failed", "login.second_factor",
           "logout", "mfa.enrol", "user.create", "user.update", "token.create", "token.revoke", "channels.load",
           "channels.reload")

# An arbitrary constant key for pg_advisory_xact_lock: "the audit chain's head".
_PG_CHAIN_LOCK = 0x53494D50_41554454 & 0x7FFFFFFFFFFFFFFF   # "SIMPAUDT"
_VERIFY_BATCH = 5000


class Actor(str):
    """A person or machine acting, with the role it acted in and the address it came from.

    A `str` (the actor's name) so that every operation that takes `actor: str` and stores the
    name (`resolved_by`, `paused_by`, ...) passes it along unchanged; `record_audit` reads the
    role and client from it. A plain string is an actor with no role or address (a test, an old
    caller)."""

    role: str
    client: str

    def __new__(cls, name: str, *, role: str = "", client: str = "") -> "Actor":
        actor = super().__new__(cls, name)
        actor.role = role
        actor.client = client
        return actor


def record_audit(connection: Connection, *, actor: str, action: str, target: str, reason: str | None,
                 detail: dict[str, Any], role: str | None = None, client: str | None = None) -> int:
    """Append one audit event in the caller's transaction (so it commits with the change it records)."""
    if role is None:
        role = actor.role if isinstance(actor, Actor) else ""
    if client is None:
        client = actor.client if isinstance(actor, Actor) else ""
    prev = _lock_and_read_head(connection)
    row = audit_event_row(at=time.time(), actor=str(actor), action=action, target=target, reason=reason,
                          detail=orjson.dumps(detail).decode(), role=role, client=client, prev_hash=prev)
    return inserted_id(connection.execute(audit_events.insert().values(row)))


def _lock_and_read_head(connection: Connection) -> str:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_CHAIN_LOCK})
    last = connection.execute(select(audit_events.c.hash).order_by(audit_events.c.id.desc()).limit(1)).scalar()
    return str(last) if last else GENESIS


def chain_head(connection: Connection) -> dict[str, Any]:
    """The newest event's id and hash ({"id": 0, "hash": GENESIS} for an empty trail)."""
    row = connection.execute(select(audit_events.c.id, audit_events.c.hash)
                             .order_by(audit_events.c.id.desc()).limit(1)).first()
    return {"id": int(row.id), "hash": row.hash} if row else {"id": 0, "hash": GENESIS}


@dataclass
class ChainReport:
    """What `verify_chain` found: how many events it checked and the first broken link, if any."""

    checked: int = 0
    head: dict[str, Any] = field(default_factory=lambda: {"id": 0, "hash": GENESIS})
    broken_at: int | None = None
    problem: str | None = None
    heads_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "head": self.head, "broken_at": self.broken_at,
                "problem": self.problem, "heads_checked": self.heads_checked}


def verify_chain(connection: Connection, known_heads: Iterable[tuple[str, dict[str, Any]]] = ()) -> ChainReport:
    """Walk the trail oldest first and stop at the first event that does not fit.

    `known_heads` are (where, {"id", "hash"}) pairs recorded elsewhere (archive headers): each must
    still be an event of the chain with that hash, or the events from there on were removed."""
    report = ChainReport()
    a = audit_events.c
    columns = [a.id, a.at, a.actor, a.role, a.action, a.target, a.reason, a.detail, a.client, a.prev_hash, a.hash]
    prev, prev_id, after = GENESIS, None, 0
    while True:
        rows = connection.execute(select(*columns).where(a.id > after).order_by(a.id).limit(_VERIFY_BATCH)).all()
        if not rows:
            break
        for row in rows:
            event = row._mapping
            if event["prev_hash"] != prev:
                before = f"event {prev_id}" if prev_id is not None else "the start of the chain"
                report.broken_at = int(row.id)
                report.problem = (f"event {row.id}: its prev_hash does not match the hash of {before} "
                                  "(an event between them was removed, or one of them was changed)")
                return report
            if event_hash(dict(event), prev) != event["hash"]:
                report.broken_at = int(row.id)
                report.problem = f"event {row.id}: its content does not match its hash (changed after it was written)"
                return report
            prev, prev_id = str(row.hash), int(row.id)
            report.checked += 1
        after = int(rows[-1].id)
    report.head = {"id": prev_id or 0, "hash": prev}
    for where, head in known_heads:
        report.heads_checked += 1
        head_id, head_hash = int(head.get("id", 0)), str(head.get("hash", ""))
        if head_id == 0:
            continue
        found = connection.execute(select(a.hash).where(a.id == head_id)).scalar()
        if found is None:
            report.broken_at = head_id
            last = prev_id or 0
            report.problem = (f"event {head_id}, the chain head recorded in {where}, is gone: the chain ends at "
                              f"event {last} (events after it were removed)" if head_id > last else
                              f"event {head_id}, the chain head recorded in {where}, is gone")
            return report
        if found != head_hash:
            report.broken_at = head_id
            report.problem = f"event {head_id}: its hash differs from the chain head recorded in {where}"
            return report
    return report


def count_audit(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(audit_events)).scalar_one())


def list_audit(connection: Connection, *, action: str | None = None, actor: str | None = None,
               since: float | None = None, until: float | None = None, limit: int = 100,
               offset: int = 0) -> list[dict[str, Any]]:
    """Newest first."""
    a = audit_events.c
    statement = select(a.id, a.at, a.actor, a.role, a.client, a.action, a.target, a.reason, a.detail, a.hash)
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
