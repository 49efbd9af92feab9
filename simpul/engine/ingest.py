"""Ingest: read the header, decode, dedup, commit the raw bytes, THEN build the ACK.

One `Ingest` per source (listener). `handle(raw)` is the listener's handler: it returns the
ACK payload, or None when the sender asked for no accept ACK (enhanced mode, MSH-15 NE/ER).

Why not python-hl7 or hl7apy here: parsing a 15-segment ADT costs them milliseconds, the
whole budget of an ACK at 10,000 msg/s. The hot path reads only MSH (simpul.v2.read_header) and
a few fields of PID/PV1/ORC/OBR (simpul.v2.business_keys); full parsing happens behind the ACK, when
the channel maps the message.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from simpul.engine.metrics import IngestMetrics
from simpul.errors import CharsetError, HeaderError, MessageError, StoreError
from simpul.mllp.ack import build_ack
from simpul.store.rows import message_row
from simpul.store.schema import messages
from simpul.store.status import MessageStatus
from simpul.store.writer import StoreWriter
from simpul.v2 import MessageHeader, extract_business_keys, is_enhanced_mode, read_body, read_header

log = logging.getLogger("simpul.ingest")

DedupKey = tuple[str, str, str]


@dataclass(slots=True)
class _Seen:
    content_hash: str
    ack: bytes | None
    at: float
    committed: asyncio.Future[None] | None


class DedupIndex:
    """Recently ACKed messages by MSH-3 + MSH-4 + MSH-10, bounded by a time window and a size cap.

    Entries are in arrival order, so expiry pops from the front. It is refilled from the store at
    start-up, so a resend after a restart still gets its original ACK.
    """

    def __init__(self, window: float, max_entries: int = 1_000_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self._entries: OrderedDict[DedupKey, _Seen] = OrderedDict()

    def get(self, key: DedupKey, now: float) -> _Seen | None:
        self._expire(now)
        return self._entries.get(key)

    def put(self, key: DedupKey, seen: _Seen) -> None:
        self._entries[key] = seen
        self._entries.move_to_end(key)
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, key: DedupKey, seen: _Seen) -> None:
        if self._entries.get(key) is seen:
            del self._entries[key]

    def _expire(self, now: float) -> None:
        horizon = now - self.window
        entries = self._entries
        while entries:
            key, first = next(iter(entries.items()))
            if first.at >= horizon:
                break
            del entries[key]

    def __len__(self) -> int:
        return len(self._entries)


def _consume(future: asyncio.Future[Any]) -> None:
    """A failed bookkeeping write is already logged by the writer; do not warn again."""
    if not future.cancelled():
        future.exception()


_ack_ids = itertools.count(1)
_ACK_PREFIX = f"S{int(time.time() * 1000):x}-"


def next_ack_control_id() -> str:
    return f"{_ACK_PREFIX}{next(_ack_ids)}"


def accept_ack_wanted(header: MessageHeader, success: bool) -> bool:
    """Enhanced mode, MSH-15 (table 0155): AL always, NE never, ER only on error, SU only on success."""
    condition = header.accept_ack_type.strip().upper()
    if condition == "NE":
        return False
    if condition == "ER":
        return not success
    if condition == "SU":
        return success
    return True


def _commit_failed_ack(header: MessageHeader) -> bytes:
    """AE (CE in enhanced mode) with ERR 207: not stored, so the sender must send it again."""
    failure = MessageError("the message could not be stored; send it again", hl7_error_code="207")
    return build_ack(header, "CE" if is_enhanced_mode(header) else "AE", error=failure,
                     ack_control_id=next_ack_control_id())


class Ingest:
    def __init__(self, source: str, writer: StoreWriter, dedup: DedupIndex, metrics: IngestMetrics, *,
                 default_charset: str = "utf-8", fallback_charset: str | None = None,
                 on_committed: Callable[[], Any] | None = None) -> None:
        self.source = source
        self.writer = writer
        self.dedup = dedup
        self.default_charset = default_charset
        self.fallback_charset = fallback_charset
        self.on_committed = on_committed
        self._received = metrics.received.labels(source)
        self._acked = metrics.acked.labels(source)
        self._duplicates = metrics.duplicates.labels(source)
        self._latency = metrics.ack_latency.labels(source)
        self._metrics = metrics
        # Set by every handle(): True when the last message could not be stored. A sender on a
        # socket learns it from the AE; the file source reads it here, because a message whose
        # MSH-15 says NE gets no ACK at all, and it must leave such a file in place to retry.
        self.last_commit_failed = False

    async def handle(self, raw: bytes) -> bytes | None:
        ack, stored = await self.receive(raw)
        self.last_commit_failed = not stored
        return ack

    async def receive(self, raw: bytes) -> tuple[bytes | None, bool]:
        """`handle`, plus whether the message is in the store (False: the commit failed, resend).
        Sources that handle several messages at once read this instead of `last_commit_failed`."""
        started = time.perf_counter()
        self._received.inc()
        now = time.time()
        try:
            header = read_header(raw)
        except HeaderError as error:
            return await self._reject(raw, None, error, now, started), True
        try:
            body = read_body(raw, header, default_charset=self.default_charset,
                             fallback_charset=self.fallback_charset)
        except MessageError as error:      # undecodable bytes (AE) or binary data (AR)
            return await self._reject(raw, header, error, now, started), True

        key = (header.sending_application, header.sending_facility, header.control_id)
        content_hash = hashlib.blake2b(raw, digest_size=16).hexdigest()
        seen = self.dedup.get(key, now)
        if seen is not None and seen.content_hash == content_hash:
            return await self._replay(seen, header, started, key)
        if seen is not None:
            # Same MSH-10 from the same sender with other content: the sender reuses control ids.
            log.warning("control id reused with different content", extra={"control_id": header.control_id,
                                                                            "source": self.source})

        enhanced = is_enhanced_mode(header)
        ack = build_ack(header, "CA" if enhanced else "AA", ack_control_id=next_ack_control_id())
        keys = extract_business_keys(body.lines, header.field_separator, header.component_separator,
                                     header.repetition_separator)
        committed = self.writer.insert_message(message_row(
            self.source, MessageStatus.RECEIVED, now, raw, ack, "CA" if enhanced else "AA",
            charset=body.codec, content_hash=content_hash, header=header, keys=keys))
        entry = _Seen(content_hash, ack, now, committed)
        self.dedup.put(key, entry)
        try:
            await committed
        except StoreError:
            self.dedup.forget(key, entry)
            self._metrics.commit_failures.inc()
            self._metrics.rejected.labels(self.source, "commit").inc()
            log.error("commit failed; answered negatively", extra={"control_id": header.control_id,
                                                                   "source": self.source})
            nack = _commit_failed_ack(header)
            self._latency.observe(time.perf_counter() - started)
            return (nack if not enhanced or accept_ack_wanted(header, False) else None), False
        entry.committed = None
        self._acked.inc()
        if self.on_committed is not None:
            self.on_committed()
        self._latency.observe(time.perf_counter() - started)
        return (ack if not enhanced or accept_ack_wanted(header, True) else None), True

    async def _replay(self, seen: _Seen, header: MessageHeader, started: float,
                      key: DedupKey) -> tuple[bytes | None, bool]:
        if seen.committed is not None:
            try:
                await asyncio.shield(seen.committed)
            except StoreError:      # the original was never stored: this resend is told to retry too
                self._latency.observe(time.perf_counter() - started)
                return _commit_failed_ack(header), False
        self._duplicates.inc()
        # Count the resend on the stored message (staff see how often a sender resent it); the
        # ACK does not wait for this write.
        source, content_hash = self.source, seen.content_hash

        def count_resend(connection: Any) -> None:
            m = messages.c
            connection.execute(update(messages).where(
                m.source == source, m.sending_application == key[0][:180], m.sending_facility == key[1][:180],
                m.control_id == key[2][:199], m.content_hash == content_hash).values(duplicates=m.duplicates + 1))
        self.writer.run(count_resend).add_done_callback(_consume)
        log.info("duplicate answered with the stored ACK", extra={"control_id": header.control_id,
                                                                  "source": self.source})
        self._latency.observe(time.perf_counter() - started)
        return seen.ack, True

    async def _reject(self, raw: bytes, header: MessageHeader | None, error: MessageError, now: float,
                      started: float) -> bytes | None:
        """Unreadable messages are stored too (status rejected) so staff can see what arrived."""
        # AR: the message itself is wrong, resending it unchanged cannot help. A charset the engine
        # cannot decode is AE instead: configuring a fallback charset makes the resend succeed.
        negative = "AE" if isinstance(error, CharsetError) else "AR"
        enhanced = header is not None and is_enhanced_mode(header)
        if enhanced:
            negative = "CE" if negative == "AE" else "CR"
        ack = build_ack(header, negative, error=error, ack_control_id=next_ack_control_id())
        reason = ("charset" if isinstance(error, CharsetError) else "header" if isinstance(error, HeaderError)
                  else "binary")
        self._metrics.rejected.labels(self.source, reason).inc()
        log.warning("message rejected", extra={"source": self.source, "ack_code": negative,
                                               "control_id": header.control_id if header else "",
                                               "error": str(error)})
        try:
            await self.writer.insert_message(message_row(
                self.source, MessageStatus.REJECTED, now, raw, ack, negative, header=header,
                charset=header.charset if header else "",
                content_hash=hashlib.blake2b(raw, digest_size=16).hexdigest(), error=str(error)))
        except StoreError:
            self._metrics.commit_failures.inc()
        self._latency.observe(time.perf_counter() - started)
        if header is not None and enhanced and not accept_ack_wanted(header, False):
            return None
        return ack
