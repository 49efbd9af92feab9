"""Business events the engine emits: `emit_event(connection, "critical_result", subject=..., data=...)`.

The event is written in the caller's transaction as a `received` message on the source
`event:<type>` (a CloudEvents 1.0 JSON envelope as its raw bytes), so it is committed exactly when
the work that caused it is, and never without it. From there it takes the normal path: the
processor routes it to the channels whose source is `events: {types: [<type>, ...]}`, and each
destination delivers it durably, with retries and dead letters.

Priority (`priority=True`, e.g. a critical result): the processor takes priority messages before
any backlog of `received` messages (engine/processor.py), so routing never waits behind a burst.
Delivery is per destination worker, so an urgent type given a channel of its own has a worker and
a queue of its own and never waits behind the bulk channel's pending deliveries either. Ordering
all deliveries of one destination by priority was not chosen: it would break the FIFO per patient
that the bulk channels promise.
"""
from __future__ import annotations

import hashlib
import time

from sqlalchemy import Connection

from simpul.connectors.cloudevents import build_event, event_keys, read_event, valid_type
from simpul.connectors.events import event_source
from simpul.errors import ConfigError
from simpul.store.rows import message_row
from simpul.store.schema import messages
from simpul.store.status import MessageStatus


def emit_event(connection: Connection, type: str, *, subject: str, data: dict, source: str = "simpul",
               priority: bool = False) -> None:
    """Store one event (a fresh uuid as its id) in the caller's transaction; see the module docstring.

    `data`: a FHIR resource or Bundle (sent as application/fhir+json) or any JSON object
    (application/json). `subject`: what the event is about, e.g. "ServiceRequest/123" (CloudEvents
    `subject`). Raises ConfigError for a type that cannot be a source key or routing key.
    """
    if not valid_type(type):
        raise ConfigError(f"event type '{type}' is not a valid name (letters, digits, _ . -; at most 58)")
    raw = build_event(type, data=data, source=source, subject=subject)
    event = read_event(raw)
    row = message_row(event_source(type), MessageStatus.RECEIVED, time.time(), raw, None, "",
                      charset="utf-8", content_hash=hashlib.blake2b(raw, digest_size=16).hexdigest(),
                      header=event, keys=event_keys(event), priority=1 if priority else 0)
    connection.execute(messages.insert(), row)
