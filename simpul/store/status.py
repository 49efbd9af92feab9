"""The values the store's status columns take, one enum per column.

`StrEnum`, so a member is the very string stored in the column: it binds as text on SQLite and
PostgreSQL, compares equal to the text read back, and JSON-encodes as that text.
"""
from __future__ import annotations

import enum
from typing import Final


class MessageStatus(enum.StrEnum):
    """`messages.status`: received -> routed | unrouted; rejected is kept for staff, never processed."""

    RECEIVED = "received"
    ROUTED = "routed"
    UNROUTED = "unrouted"
    REJECTED = "rejected"


class DeliveryStatus(enum.StrEnum):
    """`deliveries.status`: pending -> in_flight -> delivered | dead | held.

    An in_flight row whose lease expired is taken over as if pending. `held` is a dead-lettered
    delivery that keeps its ordering key waiting (`on_failure: block`) until it is replayed or
    discarded.
    """

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    DEAD = "dead"
    HELD = "held"


# Deliveries that are not finished: they hold later deliveries of their key back (FIFO per key),
# count as queued, and keep their message out of the archive.
UNFINISHED_DELIVERY: Final = (DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT, DeliveryStatus.HELD)

# Messages the processor is done with (retention may archive them once their deliveries finished).
FINISHED_MESSAGE: Final = (MessageStatus.ROUTED, MessageStatus.UNROUTED, MessageStatus.REJECTED)


class AttemptOutcome(enum.StrEnum):
    """`delivery_attempts.outcome`: how one send ended."""

    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"


class DeadLetterStatus(enum.StrEnum):
    """`dead_letters.status`: open until on-call staff replay or discard it."""

    OPEN = "open"
    REPLAYED = "replayed"
    DISCARDED = "discarded"
