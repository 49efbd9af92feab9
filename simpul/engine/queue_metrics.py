"""Queue gauges for "why is it queued?": depth by status and age of the oldest delivery.

Counted from the store (not from events since start) every `interval` seconds, so the numbers
are right after a restart and include deliveries queued by the CLI. A destination whose queue
emptied is set back to 0 rather than left at its last value.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select

from simpul.store.schema import dead_letters, deliveries
from simpul.store.status import UNFINISHED_DELIVERY, DeadLetterStatus

if TYPE_CHECKING:
    from simpul.engine.runtime import Engine

log = logging.getLogger("simpul.dead_letters")


def queue_snapshot(connection: Connection) -> dict[str, Any]:
    """Depth per (channel, destination, status), oldest created_at per destination, open dead letters."""
    d = deliveries.c
    depth = {(row.channel, row.destination, row.status): row.n for row in connection.execute(
        select(d.channel, d.destination, d.status, func.count().label("n"))
        .where(d.status.in_(UNFINISHED_DELIVERY)).group_by(d.channel, d.destination, d.status))}
    oldest = {(row.channel, row.destination): row.oldest for row in connection.execute(
        select(d.channel, d.destination, func.min(d.created_at).label("oldest"))
        .where(d.status.in_(UNFINISHED_DELIVERY)).group_by(d.channel, d.destination))}
    x = dead_letters.c
    open_dead = {(row.channel, row.destination): row.n for row in connection.execute(
        select(x.channel, x.destination, func.count().label("n"))
        .where(x.status == DeadLetterStatus.OPEN).group_by(x.channel, x.destination))}
    return {"depth": depth, "oldest": oldest, "dead_letters": open_dead}


class QueueGauges:
    """Writes snapshots into the engine's gauges, zeroing series that went away."""

    def __init__(self, metrics: Any) -> None:
        self.metrics = metrics
        self._seen_depth: set[tuple[str, str, str]] = set()
        self._seen_destinations: set[tuple[str, str]] = set()
        self._seen_dead: set[tuple[str, str]] = set()

    def apply(self, snapshot: dict[str, Any], destinations: set[tuple[str, str]], now: float) -> None:
        depth, oldest, dead = snapshot["depth"], snapshot["oldest"], snapshot["dead_letters"]
        every_destination = destinations | {key[:2] for key in depth} | self._seen_destinations
        for channel, destination in every_destination:
            for status in UNFINISHED_DELIVERY:
                self.metrics.queue_depth.labels(channel, destination, status).set(
                    depth.get((channel, destination, status), 0))
            first = oldest.get((channel, destination))
            self.metrics.queue_oldest_age.labels(channel, destination).set(
                max(0.0, now - first) if first is not None else 0.0)
        for key in set(dead) | self._seen_dead:
            self.metrics.dead_letters_open.labels(*key).set(dead.get(key, 0))
        self._seen_destinations = every_destination
        self._seen_dead = set(dead) | self._seen_dead


async def refresh_queue_gauges(engine: "Engine", interval: float = 5.0) -> None:
    """Engine task: refresh the queue gauges until cancelled; a failed read is logged and retried."""
    gauges = QueueGauges(engine.metrics)
    while True:
        try:
            snapshot = await engine.read(queue_snapshot)
            gauges.apply(snapshot, set(engine.workers), time.time())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - metrics must never stop the engine
            log.warning("queue gauges not refreshed", extra={"error_class": type(exc).__name__})
        await asyncio.sleep(interval)
