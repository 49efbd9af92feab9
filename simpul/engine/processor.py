"""The processor: takes committed messages in arrival order, routes and maps them, and queues
one delivery per destination — all of a message's results in one transaction with its new status.

A crash between reading and writing leaves the messages `received`, so they are processed
again after restart; nothing is half-done because the write is one transaction.

Several engine processes may share the store. A process takes only messages from sources its
own channels listen on: one without a channel for a message's source cannot know whether it
is unrouted, so it leaves the message `received` for a process that has (engine/nodes.py
reports messages that no live process can take).

Mapping is CPU work, so it runs in the mapping pool's worker process, off the event loop
that sends ACKs.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select, text, update

from simpul.engine import orders
from simpul.engine.channel_runtime import ChannelRuntime
from simpul.engine.config.channel import OrderTracking
from simpul.engine.mapping_pool import MappingPool
from simpul.engine.metrics import Metrics
from simpul.store.rows import dead_letter_row, delivery_row
from simpul.store.schema import dead_letters, deliveries, messages
from simpul.store.status import MessageStatus
from simpul.store.writer import StoreWriter, insert_rows

log = logging.getLogger("simpul.processor")

BATCH = 200
# PostgreSQL transaction lock that serialises writing routing outcomes across engine processes
# (any fixed number; this one spells "simroute" in ASCII, recognisable in pg_locks).
ROUTING_LOCK_KEY = 0x73696D726F757465
_ROUTING_LOCK = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=ROUTING_LOCK_KEY)
MESSAGE_COLUMNS = _COLUMNS = (messages.c.id, messages.c.source, messages.c.raw, messages.c.charset, messages.c.message_type,
            messages.c.sending_application, messages.c.sending_facility, messages.c.receiving_application,
            messages.c.receiving_facility, messages.c.control_id, messages.c.version_id,
            messages.c.patient_id, messages.c.visit_number, messages.c.placer_number,
            messages.c.filler_number, messages.c.accession_number, messages.c.received_at)


@dataclass
class _Outcome:
    message_id: int
    status: MessageStatus
    delivery_rows: list[dict[str, Any]] = field(default_factory=list)
    dead_letter_rows: list[dict[str, Any]] = field(default_factory=list)
    routed_channels: list[str] = field(default_factory=list)
    source: str = ""
    control_id: str = ""
    message_type: str = ""
    # (channel, its `orders:` settings, what the message says about orders): applied with the outcome
    order_facts: list[tuple[str, OrderTracking, orders.MessageFacts]] = field(default_factory=list)


def message_fields(row: Any) -> dict[str, str]:
    message_type = row.message_type
    return {
        "message_type": message_type, "event": message_type.partition("^")[2],
        "sending_application": row.sending_application.split("^", 1)[0],
        "sending_facility": row.sending_facility.split("^", 1)[0],
        "receiving_application": row.receiving_application.split("^", 1)[0],
        "receiving_facility": row.receiving_facility.split("^", 1)[0],
        "control_id": row.control_id, "version_id": row.version_id, "processing_id": "",
        "patient_id": row.patient_id, "visit_number": row.visit_number,
        "placer_number": row.placer_number, "filler_number": row.filler_number,
        "accession_number": row.accession_number,
    }


class Processor:
    def __init__(self, writer: StoreWriter, metrics: Metrics,
                 channels_for: Callable[[str], list[ChannelRuntime]],
                 on_queued: Callable[[set[tuple[str, str]]], None],
                 read: Callable[[Callable[[Connection], Any]], Any],
                 pool_for: Callable[[], MappingPool], sources: Callable[[], Collection[str]]) -> None:
        self.writer = writer
        self.sources = sources
        self.pool_for = pool_for
        self.read = read
        self.metrics = metrics
        self.channels_for = channels_for
        self.on_queued = on_queued
        self.wake = asyncio.Event()
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self.wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                await self._process_one_batch()
            except Exception as exc:  # noqa: BLE001 - the store or a mapping worker failed: retry later
                log.error("processing batch failed; retrying", extra={"error_class": type(exc).__name__})
                await asyncio.sleep(1.0)

    async def _process_one_batch(self) -> None:
        sources = list(self.sources())
        rows = await self.read(lambda connection: _fetch_received(connection, sources)) if sources else []
        if not rows:
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=1.0)
            except TimeoutError:
                pass
            return
        outcomes = await self._route_all(rows)
        await self.writer.run(lambda connection: _write_outcomes(connection, outcomes))
        touched: set[tuple[str, str]] = set()
        for outcome in outcomes:
            for row in outcome.delivery_rows:
                touched.add((row["channel"], row["destination"]))
                self.metrics.queued.labels(row["channel"], row["destination"]).inc()
            for channel in outcome.routed_channels:
                self.metrics.routed.labels(channel).inc()
            if outcome.status == MessageStatus.UNROUTED:
                self.metrics.unrouted.labels(outcome.source).inc()
                # ACKed, stored, and no channel wants it: one line so staff see it was not lost
                # (header facts only; patient data stays in the store).
                log.info("message taken by no channel", extra={
                    "control_id": outcome.control_id, "message_type": outcome.message_type,
                    "source": outcome.source})
        if touched:
            self.on_queued(touched)

    async def _route_all(self, rows: list[Any]) -> list[_Outcome]:
        """Filter here (cheap), map the accepted ones in the mapping pool, then plan deliveries."""
        plans: list[tuple[Any, _Outcome, dict[str, str], list[ChannelRuntime]]] = []
        jobs: list[tuple[str, bytes, str]] = []
        for row in rows:
            outcome = _Outcome(row.id, MessageStatus.UNROUTED, source=row.source, control_id=row.control_id,
                               message_type=row.message_type)
            fields = message_fields(row)
            accepted = [channel for channel in self.channels_for(row.source) if channel.accepts(fields)]
            if accepted:
                outcome.status = MessageStatus.ROUTED
            plans.append((row, outcome, fields, accepted))
            jobs.extend((channel.name, row.raw, row.charset) for channel in accepted if channel.needs_mapping)
        results = iter(await self.pool_for().map_batch(jobs))
        now = time.time()
        for row, outcome, fields, accepted in plans:
            for channel in accepted:
                outcome.routed_channels.append(channel.name)
                mapped: bytes | None = None
                if channel.needs_mapping:
                    mapped, error_class, error_text, counts = next(results)
                    if counts:
                        self.metrics.count_mapping(channel.name, counts)
                    if mapped is None:
                        self._mapping_failed(row, outcome, channel.name, error_class or "", error_text or "", now)
                self._track_orders(row, outcome, channel, mapped)
                for delivery in channel.deliveries_for(row.raw, mapped, fields, row.id):
                    outcome.delivery_rows.append(delivery_row(
                        message_id=row.id, channel=channel.name, destination=delivery.destination.label,
                        order_key=delivery.order_key, payload=delivery.payload,
                        content_type=delivery.content_type, created_at=row.received_at, next_attempt_at=now))
        return [outcome for _, outcome, _, _ in plans]

    @staticmethod
    def _track_orders(row: Any, outcome: _Outcome, channel: ChannelRuntime, mapped: bytes | None) -> None:
        """The first accepting channel with `orders:` tracks the message: what the message itself says,
        or, for an event whose mapping wrote the order (fhir_to_oml_o21 ...), what the written HL7v2 says."""
        tracking = channel.channel.orders
        if tracking is None or outcome.order_facts:
            return
        facts = orders.read_facts(row.raw, tracking)
        if (facts is None or not facts.groups) and mapped is not None and mapped.startswith(b"MSH"):
            facts = orders.read_facts(mapped, tracking)
        if facts is not None and facts.groups:
            if facts.code == "ORU" and mapped is not None and mapped.startswith(b"{"):
                facts.fhir = orjson.loads(mapped)     # the result events carry the channel's FHIR
            outcome.order_facts.append((channel.name, tracking, facts))

    def _mapping_failed(self, row: Any, outcome: _Outcome, channel: str, error_class: str, error: str,
                        now: float) -> None:
        self.metrics.mapping_failed.labels(channel).inc()
        log.warning("mapping failed", extra={"channel": channel, "stage": "mapping", "control_id": row.control_id,
                                             "error_class": error_class})
        outcome.dead_letter_rows.append(dead_letter_row(
            row, created_at=now, channel=channel, stage="mapping", error_class=error_class, error=error,
            attempts=1))


_RECEIVED = (select(*_COLUMNS).where(messages.c.status == MessageStatus.RECEIVED,
                                     messages.c.source.in_(bindparam("sources", expanding=True)))
             .order_by(messages.c.id).limit(BATCH))
# Priority events (engine/events.py) first: ix_messages_priority (status, priority, id) answers
# this at once, whatever the backlog, and it is empty almost always.
_PRIORITY = _RECEIVED.where(messages.c.priority > 0)


def _fetch_received(connection: Connection, sources: list[str]) -> list[Any]:
    urgent = list(connection.execute(_PRIORITY, {"sources": sources}))
    if urgent:
        return urgent
    return list(connection.execute(_RECEIVED, {"sources": sources}))


def _write_outcomes(connection: Connection, outcomes: list[_Outcome]) -> None:
    """Only messages still `received` are taken: if another processor (a second engine process,
    or one that outlived a crash for a moment) already handled one, its deliveries are not queued
    twice. The writer holds the write lock (SQLite) or the row locks (PostgreSQL, FOR UPDATE), so
    nobody changes these rows between the check and the update.

    PostgreSQL with several processes on one source: routing outcomes are written one process at
    a time (a transaction advisory lock). Delivery ids give the FIFO order per key, so two
    processes inserting the deliveries of interleaved batches at once could give a later message
    a smaller id; serialised, a batch is always the oldest messages still `received`."""
    if connection.dialect.name == "postgresql":
        connection.execute(_ROUTING_LOCK)
    ids = [outcome.message_id for outcome in outcomes]
    still_received = set(connection.execute(
        select(messages.c.id).where(messages.c.id.in_(ids), messages.c.status == MessageStatus.RECEIVED)
        .with_for_update()).scalars())
    taken = [outcome for outcome in outcomes if outcome.message_id in still_received]
    for status in (MessageStatus.ROUTED, MessageStatus.UNROUTED):
        chosen = [outcome.message_id for outcome in taken if outcome.status == status]
        if chosen:
            connection.execute(update(messages).where(messages.c.id.in_(chosen)).values(status=status))
    delivery_rows = [row for outcome in taken for row in outcome.delivery_rows]
    if delivery_rows:
        insert_rows(connection, deliveries, delivery_rows)
    dead_rows = [row for outcome in taken for row in outcome.dead_letter_rows]
    if dead_rows:
        connection.execute(dead_letters.insert(), dead_rows)
    # Order timelines (engine/orders.py) change in the same transaction as the routing outcome,
    # so a crash never leaves a result routed but missing from its order (or counted twice).
    now = time.time()
    for outcome in taken:
        for channel, tracking, facts in outcome.order_facts:
            orders.apply_message(connection, facts, tracking, channel, outcome.message_id, now)
