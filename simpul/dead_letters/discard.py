"""Discard: close dead letters with a reason. Nothing is deleted — they stay searchable
(status `discarded`) until retention archives them. A held delivery (on_failure: block) is
released, so its key moves on."""
from __future__ import annotations

import time

from sqlalchemy import Connection, func, select, update

from simpul.dead_letters.audit import record_audit
from simpul.dead_letters.query import DeadLetterFilter
from simpul.store.schema import dead_letters, deliveries
from simpul.store.status import DeadLetterStatus, DeliveryStatus
from simpul.errors import OperationRefused


def discard_dead_letters(connection: Connection, query: DeadLetterFilter, *, actor: str, reason: str,
                         cap: int = 100) -> tuple[int, set[tuple[str, str]]]:
    """Discard the open entries the filter matches; returns (count, destinations whose keys may move)."""
    if not reason or not reason.strip():
        raise OperationRefused("a reason is required to discard (--reason)")
    if query.is_empty():
        raise OperationRefused("say what to discard: an id or at least one filter")
    query = DeadLetterFilter(**{**vars(query), "status": DeadLetterStatus.OPEN})
    x = dead_letters.c
    matched = connection.execute(select(func.count()).select_from(dead_letters).where(*query.clauses())).scalar_one()
    if matched == 0:
        raise OperationRefused("no open dead letter matches")
    if matched > cap:
        raise OperationRefused(f"{matched} dead letters match, above the cap of {cap}; "
                               f"narrow the filter or raise the cap explicitly (--max {matched})")
    rows = list(connection.execute(select(x.id, x.delivery_id, x.channel, x.destination).where(*query.clauses())))
    now = time.time()
    ids = [row.id for row in rows]
    connection.execute(update(dead_letters).where(x.id.in_(ids), x.status == DeadLetterStatus.OPEN).values(
        status=DeadLetterStatus.DISCARDED, resolved_at=now, resolved_by=actor[:120], resolution=reason))
    held = [row.delivery_id for row in rows if row.delivery_id is not None]
    if held:
        connection.execute(update(deliveries)
                           .where(deliveries.c.id.in_(held), deliveries.c.status == DeliveryStatus.HELD)
                           .values(status=DeliveryStatus.DEAD))
    record_audit(connection, actor=actor, action="dead_letter.discard",
                 target="dead_letters:" + ",".join(str(i) for i in ids[:20]), reason=reason,
                 detail={"count": len(ids), "ids": ids[:1000]})
    return len(ids), {(row.channel, row.destination) for row in rows}
