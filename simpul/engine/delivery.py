"""Delivery workers: one per destination, sending queued deliveries with leases, FIFO per key.

A delivery is eligible when it is due and it is the oldest unfinished delivery of its ordering
key, so a failing message holds back only its own patient (or accession...). Claiming sets a
lease; a worker that dies leaves the lease to expire and any worker takes the delivery over.
After the retry policy is spent (attempts or age) the delivery becomes a dead letter that
keeps the original bytes, the stage label and every attempt, and the key moves on — or, with
`on_failure: block`, the delivery is `held` and its key waits until the dead letter is replayed
or discarded (dead_letters/).

Before claiming, the worker asks its `DeliveryControl` (downtime windows, circuit breaker, rate
limit) how many it may take, and the claim itself returns nothing while the destination is
paused in the store (`destination_controls`), so a pause from the CLI or HTTP survives restarts.
A replay is a new delivery row: `ordered_as` gives it the FIFO place of the held delivery it
replaces, and connectors see the first delivery's id (`replay_of`) so file names and other
idempotency keys stay the same.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import tenacity
from sqlalchemy import BindParameter, Connection, and_, bindparam, exists, func, or_, select, tuple_, update
from sqlalchemy.orm import aliased

from simpul.connectors.base import Connector, Outgoing
from simpul.engine.delivery_gate import DeliveryControl
from simpul.engine.config.channel import RetryPolicy
from simpul.engine.metrics import Metrics
from simpul.store.schema import (
    dead_letters, deliveries, delivery_attempts, destination_controls, messages,
)
from simpul.store.rows import Message, dead_letter_row, delivery_attempt_row
from simpul.store.status import UNFINISHED_DELIVERY, AttemptOutcome, DeliveryStatus
from simpul.store.writer import StoreWriter
from simpul.errors import ConnectorError, ConnectorRejected, ConnectorUnavailable

log = logging.getLogger("simpul.delivery")

# Called in the transaction that records a batch of outcomes, with (message id, payload, outcome,
# whole response) of each; order tracking (engine/orders.py) reads the receiver's answer this way.
OutcomeHook = Callable[[Connection, list[tuple[int, bytes, str, "str | None"]]], None]

MAX_KEPT_TEXT = 8000


def backoff_seconds(policy: RetryPolicy, attempt: int) -> float:
    """Delay after the `attempt`-th failure: exponential from initial_delay, capped, with jitter."""
    wait: Any = tenacity.wait_exponential(multiplier=policy.initial_delay, max=policy.max_delay,
                                          exp_base=policy.multiplier)
    if policy.jitter:
        wait = wait + tenacity.wait_random(0, policy.initial_delay)
    return min(float(wait(SimpleNamespace(attempt_number=attempt))), policy.max_delay + policy.initial_delay)


@dataclass
class Claimed:
    id: int
    message_id: int
    payload: bytes
    content_type: str
    attempts: int
    created_at: float
    control_id: str
    message_type: str
    idempotency_id: int = 0      # the first delivery of a replay chain; connectors key on it
    lease_token: str = ""        # this claim's token: the outcome is recorded only while the row still has it


def _claim_statements() -> tuple[Any, Any, Any]:
    """The claim's three queries, built once (SQLAlchemy then reuses their compiled SQL)."""
    d = deliveries
    channel: BindParameter[str] = bindparam("channel")
    label: BindParameter[str] = bindparam("label")
    earlier = aliased(deliveries)
    position = func.coalesce(d.c.ordered_as, d.c.id)
    earlier_position = func.coalesce(earlier.c.ordered_as, earlier.c.id)
    # FIFO per key: a delivery waits while an earlier one of its key is unfinished. The check
    # seeks ix_deliveries_order (channel, destination, order_key, status), so it reads only the
    # few unfinished rows of one key however long the history is.
    blocked = exists().where(and_(
        earlier.c.channel == d.c.channel, earlier.c.destination == d.c.destination,
        earlier.c.order_key == d.c.order_key, earlier.c.status.in_(UNFINISHED_DELIVERY),
        or_(earlier_position < position, and_(earlier_position == position, earlier.c.id < d.c.id))))
    columns = (d.c.id, d.c.message_id, d.c.payload, d.c.content_type, d.c.attempts, d.c.created_at,
               messages.c.control_id, messages.c.message_type, func.coalesce(d.c.replay_of, d.c.id))
    mine = (d.c.channel == channel, d.c.destination == label)
    # Work whose worker died (lease expired) first, then due pending work in id order: walking
    # ix_deliveries_queue (channel, destination, status, id) stops at the limit. Order between
    # keys is only fairness; order within a key is the `blocked` check. A worker never takes
    # over what it is sending itself (`sending`), however slow.
    # Several processes (PostgreSQL): FOR UPDATE OF deliveries SKIP LOCKED, so a row another
    # process is claiming (or recording) right now is passed over instead of taken twice; a row it
    # claimed and committed meanwhile fails the status/lease re-check PostgreSQL makes on lock. The
    # `blocked` check sees the predecessor as unfinished until its outcome is committed, so a
    # key's next delivery is never claimed while any process holds the previous one. SQLite
    # ignores the clause: its writers are serialised by BEGIN IMMEDIATE.
    orphaned = (select(*columns).join(messages, messages.c.id == d.c.message_id)
                .where(*mine, d.c.status == DeliveryStatus.IN_FLIGHT, d.c.lease_until < bindparam("now"),
                       d.c.id.notin_(bindparam("sending", expanding=True)), ~blocked)
                .order_by(d.c.id).limit(bindparam("limit")).with_for_update(of=d, skip_locked=True))
    due = (select(*columns).join(messages, messages.c.id == d.c.message_id)
           .where(*mine, d.c.status == DeliveryStatus.PENDING, d.c.next_attempt_at <= bindparam("now"), ~blocked)
           .order_by(d.c.id).limit(bindparam("limit")).with_for_update(of=d, skip_locked=True))
    c = destination_controls.c
    paused = select(c.paused_at).where(c.channel == channel, c.destination == label)
    return paused, orphaned, due


_PAUSED, _ORPHANED, _DUE = _claim_statements()


class DestinationWorker:
    def __init__(self, channel: str, label: str, connector: Connector, policy: RetryPolicy, *,
                 writer: StoreWriter, metrics: Metrics, max_in_flight: int, lease: float,
                 poll_interval: float, owner: str, send_timeout: float = 300.0,
                 control: DeliveryControl | None = None, on_outcomes: OutcomeHook | None = None) -> None:
        self.channel = channel
        self.label = label
        self.connector = connector
        self.policy = policy
        self.writer = writer
        self.max_in_flight = max_in_flight
        self.lease = lease
        self.poll_interval = poll_interval
        self.owner = owner
        self.send_timeout = send_timeout
        self.control = control or DeliveryControl()
        self.wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._sending: dict[int, str] = {}       # delivery id -> lease token, sent or being sent, not yet recorded
        self._sends = 0                          # sends in progress (the in-flight slots taken)
        self._renewed_at = time.monotonic()
        self._delivered = metrics.delivered.labels(channel, label)
        self._retried = metrics.retried.labels(channel, label)
        self._dead = metrics.dead_lettered.labels(channel, label)
        self._latency = metrics.delivery_latency.labels(channel, label)
        self._metrics = metrics
        self._recorder = _Recorder(writer, channel, label, on_outcomes)

    async def run(self) -> None:
        try:
            await self.connector.connect()
        except ConnectorError:
            pass  # the first send reconnects and its failure is retried like any other
        while not self._stopping:
            # A slot frees when its send returns; recording the outcome is batched behind it
            # (until then the delivery stays in_flight in the store, so its key stays blocked).
            free = self.max_in_flight - self._sends

            claimed: list[Claimed] = []
            limit = self.control.claim_limit(free)
            if limit > 0:
                claimed, self.control.paused = await self.writer.run(self._claim_job(limit))
                self.control.claimed(len(claimed))
            self._report_state()
            await self._renew_leases()
            for item in claimed:
                self._sending[item.id] = item.lease_token
                self._sends += 1
                task = asyncio.create_task(self._deliver(item))
                self._in_flight.add(task)
                task.add_done_callback(self._finished)
            if not claimed or free <= len(claimed):
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=self.control.next_wake(self.poll_interval))
                except TimeoutError:
                    pass

    def _report_state(self) -> None:
        self._metrics.set_destination_state(self.channel, self.label, paused=self.control.paused,
                                            in_downtime=self.control.in_downtime(),
                                            circuit=self.control.circuit_state)

    async def _renew_leases(self) -> None:
        """A slow send must not look abandoned: extend the leases of what is being sent, so no
        worker (this one included) takes it over while it is still in flight."""
        if not self._sending or time.monotonic() - self._renewed_at < self.lease / 3:
            return
        self._renewed_at = time.monotonic()
        held, until = list(self._sending.items()), time.time() + self.lease
        await self.writer.run(lambda connection: connection.execute(
            _RENEW, {"ids": [pair[0] for pair in held], "held": held, "until": until}))

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self.wake.set()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let sends in flight finish (their leases cover a crash if they do not)."""
        self._stopping = True
        self.wake.set()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace)
        for task in list(self._in_flight):
            task.cancel()
        await self.connector.close()

    def _claim_job(self, limit: int) -> Callable[[Connection], tuple[list[Claimed], bool]]:
        """Claim up to `limit` due deliveries; returns (claimed, paused). A paused destination claims none."""
        params = {"channel": self.channel, "label": self.label, "sending": list(self._sending)}
        owner, lease = self.owner, self.lease
        token = uuid.uuid4().hex

        def claim(connection: Connection) -> tuple[list[Claimed], bool]:
            if connection.execute(_PAUSED, params).scalar() is not None:
                return [], True
            now = time.time()
            rows = [Claimed(*row) for row in connection.execute(_ORPHANED, {**params, "now": now, "limit": limit})]
            if len(rows) < limit:
                rows.extend(Claimed(*row) for row in connection.execute(
                    _DUE, {**params, "now": now, "limit": limit - len(rows)}))
            for item in rows:
                item.lease_token = token
            if rows:
                connection.execute(update(deliveries).where(deliveries.c.id.in_([r.id for r in rows]))
                                   .values(status=DeliveryStatus.IN_FLIGHT, lease_until=now + lease, lease_owner=owner,
                                           lease_token=token))
            return rows, False
        return claim

    async def _deliver(self, item: Claimed) -> None:
        released = False

        def release_slot() -> None:
            nonlocal released
            if not released:
                released = True
                self._sends -= 1
                self.wake.set()

        try:
            await self._send_and_record(item, release_slot)
        finally:
            release_slot()
            self._sending.pop(item.id, None)

    async def _send_and_record(self, item: Claimed, release_slot: Callable[[], None]) -> None:
        started = time.time()
        outgoing = Outgoing(item.payload, item.content_type, item.control_id, self.channel, self.label,
                            item.idempotency_id or item.id, item.message_type)
        error: ConnectorError | None = None
        response = ""
        try:
            response = await asyncio.wait_for(self.connector.send(outgoing), timeout=self.send_timeout)
        except ConnectorError as exc:
            error = exc
        except TimeoutError as exc:
            error = ConnectorUnavailable(f"send did not finish within {self.send_timeout:g}s")
            error.__cause__ = exc
        except Exception as exc:  # noqa: BLE001 - a connector bug must not kill the worker; retry it
            log.exception("connector raised an unexpected error", extra={"channel": self.channel,
                                                                         "stage": self.label})
            error = ConnectorUnavailable(f"unexpected {type(exc).__name__} in connector")
        finished = time.time()
        self._latency.observe(finished - started)
        attempt = item.attempts + 1
        if error is None:
            outcome = AttemptOutcome.DELIVERED
            self._delivered.inc()
        elif isinstance(error, ConnectorRejected):
            outcome = AttemptOutcome.FAILED
        else:
            exhausted = attempt >= self.policy.max_attempts or (
                self.policy.max_age is not None and finished - item.created_at >= self.policy.max_age)
            outcome = AttemptOutcome.FAILED if exhausted else AttemptOutcome.RETRY
        # The circuit counts only endpoint trouble: a rejection proves the receiver is up.
        self.control.record(not isinstance(error, ConnectorUnavailable))
        if outcome == AttemptOutcome.RETRY:
            self._retried.inc()
        if outcome == AttemptOutcome.FAILED:
            self._dead.inc()
        if error is not None:
            log.warning("delivery attempt failed", extra={
                "channel": self.channel, "stage": self.label, "control_id": item.control_id,
                "attempt": attempt, "outcome": outcome, "error_class": type(error).__name__, "error": str(error)})
        next_at = finished + backoff_seconds(self.policy, attempt) if outcome == AttemptOutcome.RETRY else None
        release_slot()
        await self._recorder.record(_Result(item, attempt, outcome, error, response, started, finished, next_at,
                                            hold=self.control.on_failure == "block"))
        if outcome == AttemptOutcome.RETRY:
            self.wake.set()


@dataclass
class _Result:
    item: Claimed
    attempt: int
    outcome: AttemptOutcome
    error: ConnectorError | None
    response: str
    started: float
    finished: float
    next_at: float | None
    hold: bool = False


class _Recorder:
    """Writes attempt outcomes in batches: every send that finished while the previous batch was
    being written shares one store job (a few executemany statements instead of a job each).
    `record` returns once its outcome is committed, so the delivery's slot frees only then."""

    def __init__(self, writer: StoreWriter, channel: str, label: str, on_outcomes: OutcomeHook | None = None) -> None:
        self.writer = writer
        self.on_outcomes = on_outcomes
        self.channel = channel
        self.label = label
        self._pending: list[_Result] = []
        self._flush: asyncio.Future[None] | None = None

    async def record(self, result: _Result) -> None:
        self._pending.append(result)
        if self._flush is None:
            self._flush = asyncio.ensure_future(self._write())
        await asyncio.shield(self._flush)

    async def _write(self) -> None:
        await asyncio.sleep(0)       # let sends finishing in this loop turn join the batch
        batch, self._pending, self._flush = self._pending, [], None
        channel, label, hook = self.channel, self.label, self.on_outcomes
        refused = await self.writer.run(lambda connection: _record_batch(connection, batch, channel, label, hook))
        for result in refused:
            # Another process took the delivery over (this one stalled past its lease): its
            # outcome is the one that counts. Ids and the outcome only; no message content.
            log.warning("delivery outcome refused: the lease was taken over", extra={
                "channel": channel, "stage": label, "delivery_id": result.item.id, "outcome": result.outcome,
                "attempt": result.attempt})


_UPDATE_DELIVERY = (update(deliveries).where(deliveries.c.id == bindparam("b_id"),
                                             deliveries.c.lease_token == bindparam("b_token")).values(
    attempts=bindparam("b_attempts"), lease_until=None, lease_owner=None, lease_token=None,
    last_error=bindparam("b_error"), last_response=bindparam("b_response"), status=bindparam("b_status"),
    next_attempt_at=func.coalesce(bindparam("b_next_at"), deliveries.c.next_attempt_at),
    delivered_at=bindparam("b_delivered_at")))

# The rows whose lease this worker still holds (id and token match), locked until the outcome is
# written: a takeover (SKIP LOCKED) passes over them meanwhile, and this waits for one in progress.
# (`id IN` as well: SQLite scans the whole table for a row-value IN alone.)
_HELD = (select(deliveries.c.id)
         .where(deliveries.c.id.in_(bindparam("ids", expanding=True)),
                tuple_(deliveries.c.id, deliveries.c.lease_token).in_(bindparam("held", expanding=True)))
         .order_by(deliveries.c.id).with_for_update())

_RENEW = (update(deliveries)
          .where(deliveries.c.id.in_(bindparam("ids", expanding=True)),
                 tuple_(deliveries.c.id, deliveries.c.lease_token).in_(bindparam("held", expanding=True)),
                 deliveries.c.status == DeliveryStatus.IN_FLIGHT)
          .values(lease_until=bindparam("until")))


def _record_batch(connection: Connection, batch: list[_Result], channel: str, label: str,
                  hook: OutcomeHook | None = None) -> list[_Result]:
    """Write the outcomes whose lease is still held; return the refused ones (lease taken over)."""
    held = set(connection.execute(_HELD, {"ids": [r.item.id for r in batch],
                                          "held": [(r.item.id, r.item.lease_token) for r in batch]}).scalars())
    refused = [result for result in batch if result.item.id not in held]
    batch = [result for result in batch if result.item.id in held]
    if not batch:
        return refused
    attempts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    failed: list[tuple[_Result, str]] = []
    for result in batch:
        error = result.error
        error_text = str(error)[:MAX_KEPT_TEXT] if error is not None else None
        response = _as_text(error.response if error is not None else result.response)
        attempts.append(delivery_attempt_row(
            delivery_id=result.item.id, attempt=result.attempt, started_at=result.started,
            finished_at=result.finished, outcome=result.outcome,
            error_class=type(error).__name__ if error is not None else None, error=error_text, response=response))
        if result.outcome == AttemptOutcome.DELIVERED:
            status = DeliveryStatus.DELIVERED
        elif result.outcome == AttemptOutcome.RETRY:
            status = DeliveryStatus.PENDING
        else:
            # held: dead-lettered, but its key waits for the on-call decision (replay or discard)
            status = DeliveryStatus.HELD if result.hold else DeliveryStatus.DEAD
            failed.append((result, error_text or ""))
        updates.append({"b_id": result.item.id, "b_token": result.item.lease_token, "b_attempts": result.attempt, "b_error": error_text,
                        "b_response": response, "b_status": status, "b_next_at": result.next_at,
                        "b_delivered_at": result.finished if status == DeliveryStatus.DELIVERED else None})
    connection.execute(delivery_attempts.insert(), attempts)
    connection.execute(_UPDATE_DELIVERY, updates)
    if hook is not None:
        hook(connection, [(result.item.message_id, result.item.payload, str(result.outcome),
                           _whole(result.error.response if result.error is not None else result.response))
                          for result in batch])
    if failed:
        ids = [result.item.message_id for result, _ in failed]
        originals = {message.id: message for message in map(Message.from_row, connection.execute(
            select(messages).where(messages.c.id.in_(ids))))}
        connection.execute(dead_letters.insert(), [dead_letter_row(
            originals[result.item.message_id], created_at=result.finished, channel=channel, destination=label,
            stage=label, error_class=type(result.error).__name__, error=error_text, attempts=result.attempt,
            delivery_id=result.item.id, payload=result.item.payload) for result, error_text in failed])
    return refused


def _whole(value: str | bytes | None) -> str | None:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _as_text(value: str | bytes | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return value[:MAX_KEPT_TEXT]
