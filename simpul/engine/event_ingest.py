"""Ingest for message-broker sources: CloudEvents JSON or raw HL7v2, committed before the broker ack.

`EventIngest.handle(body)` is the `Receive` a broker source (rabbitmq) is built with. It stores
the message and returns an answer the source acts on; it raises StoreError when nothing could
be stored, and the source then leaves the message with the broker (requeue) to come again.

- A CloudEvents 1.0 JSON event (the body starts with '{'): dedup by CloudEvents `source` + `id`
  (the spec's identity of an event), then committed on this source with `id` as control id,
  `source` as sending application, `type` as message type and the business keys of FHIR data.
  Answer: `{"outcome": "stored" | "duplicate", "id": ...}`.
- A body that is not a readable event: stored with status `rejected` and the reason, answered
  `{"outcome": "rejected", "error": ...}`; the source dead-letters it (never requeued).
- Anything else is HL7v2: the same Ingest as MLLP (MSH dedup, AR for an unreadable message);
  the answer is its ACK.

Dedup survives a restart: the index is refilled from the store when the source starts
(engine/listeners.py), so a redelivery after a crash between commit and broker ack is answered
`duplicate` and acked, and the message is stored once.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time

from simpul.connectors.cloudevents import answer, event_keys, looks_like_event, read_event
from simpul.engine.ingest import DedupIndex, Ingest, _Seen
from simpul.engine.metrics import IngestMetrics
from simpul.errors import EventUnreadable, StoreError
from simpul.store.rows import message_row
from simpul.store.status import MessageStatus
from simpul.store.writer import StoreWriter

log = logging.getLogger("simpul.event_ingest")


class EventIngest:
    def __init__(self, source: str, writer: StoreWriter, dedup: DedupIndex, metrics: IngestMetrics,
                 v2: Ingest) -> None:
        self.source = source
        self.writer = writer
        self.dedup = dedup
        self.v2 = v2
        self.on_committed = v2.on_committed
        self._received = metrics.received.labels(source)
        self._acked = metrics.acked.labels(source)
        self._duplicates = metrics.duplicates.labels(source)
        self._metrics = metrics

    async def handle(self, body: bytes) -> bytes | None:
        if not looks_like_event(body):
            reply, stored = await self.v2.receive(body)
            if not stored:
                raise StoreError(f"source {self.source}: the message could not be stored")
            return reply
        self._received.inc()
        now = time.time()
        content_hash = hashlib.blake2b(body, digest_size=16).hexdigest()
        try:
            event = read_event(body)
        except EventUnreadable as error:
            return await self._reject(body, error, now, content_hash)
        key = (event.source[:180], "", event.id[:199])
        seen = self.dedup.get(key, now)
        if seen is not None:
            if seen.committed is not None:
                # The first copy's commit (shielded: a cancelled redelivery must not cancel it for
                # the first); StoreError means this copy is not stored either.
                await asyncio.shield(seen.committed)
            self._duplicates.inc()
            log.info("duplicate event acknowledged", extra={"control_id": event.id, "source": self.source})
            return answer("duplicate", id=event.id)
        reply = answer("stored", id=event.id)
        committed = self.writer.insert_message(message_row(
            self.source, MessageStatus.RECEIVED, now, body, reply, "", charset="utf-8", content_hash=content_hash,
            header=event, keys=event_keys(event)))
        entry = _Seen(content_hash, reply, now, committed)
        self.dedup.put(key, entry)
        try:
            await committed
        except StoreError:
            self.dedup.forget(key, entry)
            self._metrics.commit_failures.inc()
            log.error("commit failed; the event stays with the broker", extra={"control_id": event.id,
                                                                               "source": self.source})
            raise
        entry.committed = None
        self._acked.inc()
        if self.on_committed is not None:
            self.on_committed()
        return reply

    async def _reject(self, body: bytes, error: EventUnreadable, now: float, content_hash: str) -> bytes:
        """Stored for staff to see, then dead-lettered by the source; StoreError if even that fails."""
        self._metrics.rejected.labels(self.source, "event").inc()
        log.warning("event rejected", extra={"source": self.source, "error": str(error)})
        reply = answer("rejected", error=str(error))
        await self.writer.insert_message(message_row(
            self.source, MessageStatus.REJECTED, now, body, reply, "", charset="utf-8", content_hash=content_hash,
            error=str(error)))
        return reply
