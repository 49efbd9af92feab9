"""What the benchmark reads from the engine's store while and after it runs (read-only queries).

Backlog = messages not yet routed + deliveries not yet finished. Queue age of a delivered
message = deliveries.delivered_at - messages.received_at (both written by the engine, unix s).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine


def open_store(url: str) -> Engine:
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1)
                         if url.startswith("postgresql://") else url)


def backlog(store: Engine) -> int:
    with store.connect() as connection:
        unrouted = connection.execute(text("SELECT count(*) FROM messages WHERE status = 'received'")).scalar_one()
        waiting = connection.execute(text(
            "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'in_flight')")).scalar_one()
    return int(unrouted) + int(waiting)


def delivered_count(store: Engine) -> int:
    with store.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM deliveries WHERE status = 'delivered'")).scalar_one())


def stored_messages(store: Engine) -> int:
    with store.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM messages")).scalar_one())


@dataclass
class Delivered:
    """Deliveries of the messages received in a window, after the backlog drained (or gave up)."""

    received: int                 # messages received in the window
    delivered: int                # of those, delivered
    duplicates: int               # deliveries beyond one per message
    delivered_in_window: int      # deliveries (any message) finished inside the window
    age_p50_s: float
    age_p99_s: float
    age_max_s: float
    keys: int
    out_of_order_keys: int        # keys whose delivery order differs from their arrival order


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def delivered(store: Engine, window_start: float, window_end: float) -> Delivered:
    with store.connect() as connection:
        received = int(connection.execute(text(
            "SELECT count(*) FROM messages WHERE received_at >= :a AND received_at < :b"),
            {"a": window_start, "b": window_end}).scalar_one())
        rows = connection.execute(text(
            "SELECT m.id, d.order_key, m.received_at, d.delivered_at FROM deliveries d "
            "JOIN messages m ON m.id = d.message_id "
            "WHERE d.status = 'delivered' AND m.received_at >= :a AND m.received_at < :b"),
            {"a": window_start, "b": window_end}).all()
        in_window = int(connection.execute(text(
            "SELECT count(*) FROM deliveries WHERE status = 'delivered' AND delivered_at >= :a AND delivered_at < :b"),
            {"a": window_start, "b": window_end}).scalar_one())
    ages = sorted(row[3] - row[2] for row in rows)
    message_ids = {row[0] for row in rows}
    by_key: dict[str, list[tuple[float, int]]] = {}
    for message_id, key, _, delivered_at in rows:
        by_key.setdefault(key, []).append((delivered_at, message_id))
    out_of_order = 0
    for finished in by_key.values():
        ids = [message_id for _, message_id in sorted(finished)]
        if ids != sorted(ids):
            out_of_order += 1
    return Delivered(received, len(message_ids), len(rows) - len(message_ids), in_window,
                     _percentile(ages, 0.5), _percentile(ages, 0.99), ages[-1] if ages else math.nan,
                     len(by_key), out_of_order)
