"""Pause and resume one destination, and "why is it queued?" status, through the store.

The pause is a row in `destination_controls` that the destination's worker reads inside every
claim transaction, so it works the same whether the CLI writes the row directly or the HTTP API
does, and it survives restarts. Paused, the worker claims nothing (no attempts are made or
counted); the rest of the channel keeps flowing and the paused queue keeps growing, visibly.
A send already in flight when the pause lands finishes normally.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, func, select, update

from simpul.dead_letters.audit import record_audit
from simpul.store.rows import DestinationControl, destination_control_row
from simpul.store.schema import dead_letters, deliveries, destination_controls, messages
from simpul.store.status import UNFINISHED_DELIVERY, DeadLetterStatus, DeliveryStatus
from simpul.errors import OperationRefused

def _check_known(channel: str, destination: str, known: Iterable[tuple[str, str]] | None) -> None:
    if known is None:
        return
    known = set(known)
    if (channel, destination) not in known:
        labels = sorted(f"{c}/{d}" for c, d in known)
        raise OperationRefused(f"no destination '{channel}/{destination}' (known: {', '.join(labels) or 'none'})")


def pause_destination(connection: Connection, channel: str, destination: str, *, actor: str, reason: str,
                      known: Iterable[tuple[str, str]] | None = None) -> int:
    """Pause; returns the audit event id. Pausing a paused destination is refused (nothing to do)."""
    if not reason or not reason.strip():
        raise OperationRefused("a reason is required to pause (--reason)")
    _check_known(channel, destination, known)
    c = destination_controls.c
    now = time.time()
    current = connection.execute(select(c.paused_at).where(c.channel == channel, c.destination == destination)).first()
    if current is not None and current.paused_at is not None:
        raise OperationRefused(f"{channel}/{destination} is already paused")
    if current is None:
        connection.execute(destination_controls.insert().values(destination_control_row(
            channel=channel, destination=destination, paused_at=now, paused_by=actor, reason=reason,
            updated_at=now)))
    else:
        connection.execute(update(destination_controls).where(c.channel == channel, c.destination == destination)
                           .values(paused_at=now, paused_by=actor[:120], reason=reason, updated_at=now))
    queued = _queued_count(connection, channel, destination)
    return record_audit(connection, actor=actor, action="destination.pause", target=f"{channel}/{destination}",
                        reason=reason, detail={"count": queued})


def resume_destination(connection: Connection, channel: str, destination: str, *, actor: str, reason: str,
                       known: Iterable[tuple[str, str]] | None = None) -> int:
    if not reason or not reason.strip():
        raise OperationRefused("a reason is required to resume (--reason)")
    _check_known(channel, destination, known)
    c = destination_controls.c
    changed = connection.execute(update(destination_controls).where(
        c.channel == channel, c.destination == destination, c.paused_at.is_not(None)).values(
        paused_at=None, paused_by=None, reason=None, updated_at=time.time())).rowcount
    if not changed:
        raise OperationRefused(f"{channel}/{destination} is not paused")
    queued = _queued_count(connection, channel, destination)
    return record_audit(connection, actor=actor, action="destination.resume", target=f"{channel}/{destination}",
                        reason=reason, detail={"count": queued})


def _queued_count(connection: Connection, channel: str, destination: str) -> int:
    d = deliveries.c
    return int(connection.execute(select(func.count()).select_from(deliveries).where(
        d.channel == channel, d.destination == destination, d.status.in_(UNFINISHED_DELIVERY))).scalar_one())


def destination_status(connection: Connection, known: Iterable[tuple[str, str]] = ()) -> list[dict[str, Any]]:
    """One row per destination: paused (by whom, why), queue by status, oldest age, next attempt, last error."""
    now = time.time()
    d = deliveries.c
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(key: tuple[str, str]) -> dict[str, Any]:
        return rows.setdefault(key, {
            "channel": key[0], "destination": key[1], "paused": False, "paused_at": None, "paused_by": None,
            "pause_reason": None, "queued": {status.value: 0 for status in UNFINISHED_DELIVERY},
            "oldest_age_seconds": None, "next_attempt_at": None, "last_error": None, "open_dead_letters": 0})

    for key in known:
        entry(key)
    for row in connection.execute(select(d.channel, d.destination, d.status, func.count().label("n"),
                                         func.min(d.created_at).label("oldest"))
                                  .where(d.status.in_(UNFINISHED_DELIVERY))
                                  .group_by(d.channel, d.destination, d.status)):
        item = entry((row.channel, row.destination))
        item["queued"][row.status] = row.n
        age = now - row.oldest
        item["oldest_age_seconds"] = max(item["oldest_age_seconds"] or 0.0, round(age, 3))
    for row in connection.execute(select(d.channel, d.destination, func.min(d.next_attempt_at).label("next_at"))
                                  .where(d.status == DeliveryStatus.PENDING).group_by(d.channel, d.destination)):
        entry((row.channel, row.destination))["next_attempt_at"] = row.next_at
    for key, item in rows.items():
        last = connection.execute(select(d.last_error).where(
            d.channel == key[0], d.destination == key[1], d.status.in_(UNFINISHED_DELIVERY), d.last_error.is_not(None))
            .order_by(d.id.desc()).limit(1)).scalar()
        item["last_error"] = last
    for control in map(DestinationControl.from_row, connection.execute(select(destination_controls))):
        if control.paused_at is None and (control.channel, control.destination) not in rows:
            continue
        item = entry((control.channel, control.destination))
        item.update(paused=control.paused_at is not None, paused_at=control.paused_at,
                    paused_by=control.paused_by, pause_reason=control.reason)
    x = dead_letters.c
    for row in connection.execute(select(x.channel, x.destination, func.count().label("n"))
                                  .where(x.status == DeadLetterStatus.OPEN).group_by(x.channel, x.destination)):
        if (row.channel, row.destination) in rows:
            rows[(row.channel, row.destination)]["open_dead_letters"] = row.n
    return [rows[key] for key in sorted(rows)]


def queued_deliveries(connection: Connection, channel: str, destination: str, *, limit: int = 50,
                      offset: int = 0) -> list[dict[str, Any]]:
    """The queue of one destination in claim order: why each delivery waits and when it is tried next."""
    d, m = deliveries.c, messages.c
    position = func.coalesce(d.ordered_as, d.id)
    rows = connection.execute(
        select(d.id, d.status, d.order_key, d.attempts, d.created_at, d.next_attempt_at, d.last_error,
               d.replay_of, m.control_id, m.message_type, m.patient_id)
        .join(messages, m.id == d.message_id)
        .where(d.channel == channel, d.destination == destination, d.status.in_(UNFINISHED_DELIVERY))
        .order_by(position, d.id).limit(limit).offset(offset))
    return [dict(row._mapping) for row in rows]


def delivery_counts(connection: Connection) -> dict[tuple[str, str], dict[str, int]]:
    """(channel, destination) -> {status: count} over every delivery row, plus `received`: the
    first deliveries (not replays), one per message the channel took. One grouped scan of the
    queue index."""
    d = deliveries.c
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for row in connection.execute(select(d.channel, d.destination, d.status, (d.replay_of.is_(None)).label("first"),
                                         func.count().label("n"))
                                  .group_by(d.channel, d.destination, d.status, d.replay_of.is_(None))):
        item = counts.setdefault((row.channel, row.destination), {"received": 0})
        item[row.status] = item.get(row.status, 0) + row.n
        if row.first:
            item["received"] += row.n
    return counts
