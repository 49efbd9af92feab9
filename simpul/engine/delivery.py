"""Delivery workers: one per destination, sending queued deliveries with leases, FIFO per key.

A delivery is eligible when it is due and it is the oldest unfinished delivery of its ordering
key, so a failing message holds back only its own patient (or accession...). A claim takes a
key's run of waiting deliveries at once (engine/claims.py) and the worker sends the run in order,
one at a time, up to `max_in_flight` keys at once. Claiming sets a lease; a worker that dies
leaves the lease to expire and any worker takes the deliveries over.
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
from collections import deque
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import tenacity
from sqlalchemy import Connection, bindparam, func, select, tuple_, update

from simpul.connectors.base import BatchConnector, Connector, Outgoing
from simpul.engine.claims import Claim, Claimed, claim
from simpul.engine.delivery_gate import DeliveryControl
from simpul.engine.config.channel import RetryPolicy
from simpul.engine.metrics import Metrics
from simpul.store.schema import dead_letters, deliveries, delivery_attempts, messages
from simpul.store.rows import Message, dead_letter_row, delivery_attempt_row
from simpul.store.status import AttemptOutcome, DeliveryStatus
from simpul.store.writer import StoreWriter
from simpul.errors import ConnectorError, ConnectorRejected, ConnectorUnavailable

log = logging.getLogger("simpul.delivery")

# Called in the transaction that records a batch of outcomes, with (message id, payload, outcome,
# whole response) of each; order tracking (engine/orders.py) reads the receiver's answer this way.
OutcomeHook = Callable[[Connection, list[tuple[int, bytes, str, "str | None"]]], None]

MAX_KEPT_TEXT = 8000
# Most deliveries of one key taken under one claim and sent in order (destination option `run_length`).
DEFAULT_RUN_LENGTH = 200
# Outcomes of one run that may wait for their commit while its next deliveries are sent: after a
# crash, at most this many more per run are sent again (at-least-once).
OUTCOMES_AHEAD = 128
# Most deliveries of a run handed at once to a connector that takes batches (`send_batch`).
BATCH = 32
# Keys claimed ahead per in-flight slot (ordered destinations): runs waiting for a slot.
KEYS_AHEAD_PER_SLOT = 8


def backoff_seconds(policy: RetryPolicy, attempt: int) -> float:
    """Delay after the `attempt`-th failure: exponential from initial_delay, capped, with jitter."""
    wait: Any = tenacity.wait_exponential(multiplier=policy.initial_delay, max=policy.max_delay,
                                          exp_base=policy.multiplier)
    if policy.jitter:
        wait = wait + tenacity.wait_random(0, policy.initial_delay)
    return min(float(wait(SimpleNamespace(attempt_number=attempt))), policy.max_delay + policy.initial_delay)


@dataclass(eq=False)
class _Stream:
    """What one slot is sending: a key's claimed, unsent deliveries in FIFO order (continuations
    are appended while it runs), or for an unordered destination a group (key None)."""
    key: str | None
    queue: deque[Claimed]
    last: Claimed                    # the last claimed: a continuation starts after it
    extending: bool = False          # a claim that may bring its continuation is under way
    exhausted: bool = False          # a continuation found nothing: no more asked for
    failed: bool = False             # a send failed and the key waits: nothing more may be sent
    closed: bool = False

    @property
    def ident(self) -> object:
        return self.key if self.key is not None else id(self)


class DestinationWorker:
    def __init__(self, channel: str, label: str, connector: Connector, policy: RetryPolicy, *,
                 writer: StoreWriter, metrics: Metrics, max_in_flight: int, lease: float,
                 poll_interval: float, owner: str, send_timeout: float = 300.0,
                 control: DeliveryControl | None = None, ordered: bool = True,
                 run_length: int = DEFAULT_RUN_LENGTH, on_outcomes: OutcomeHook | None = None) -> None:
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
        self.ordered = ordered
        self.run_length = run_length
        self.wake = asyncio.Event()
        self._stopping = False
        self._in_flight: set[asyncio.Task[None]] = set()
        self._sending: dict[int, str] = {}       # delivery id -> lease token: claimed, outcome not yet recorded
        self._streams: dict[object, _Stream] = {}  # what is being sent, one per slot (a key, or a group)
        self._ready: deque[_Stream] = deque()      # claimed ahead, waiting for a slot
        self._after: str | None = None           # the last key claimed: the next key scan starts after it
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
            self._start_ready()
            # Runs wanted: the free slots and more, claimed ahead and waiting for a slot. While
            # ingest is busy the engine commits its bookkeeping only every 100 ms, so claiming only
            # when a slot frees would cap a destination at a few keys per interval; with many keys
            # of one message each (patients), a claim must bring enough keys for that interval.
            ahead = KEYS_AHEAD_PER_SLOT if self.ordered else 2
            wanted = max(ahead * self.max_in_flight - len(self._streams) - len(self._ready), 0)
            # Keys being sent whose claimed deliveries run low: claim their continuation now, so a
            # busy key streams on instead of waiting for its outcomes to be committed first.
            extend = [stream for stream in self._streams.values()
                      if stream.key is not None and not stream.extending and not stream.exhausted
                      and len(stream.queue) <= self.run_length // 2]
            claimed = Claim([], self.control.paused, self._after)
            budget = self.control.claim_limit((wanted + len(extend)) * self.run_length)
            if (wanted > 0 or extend) and budget > 0:
                for stream in extend:
                    stream.extending = True
                try:
                    claimed = await self.writer.run(self._claim_job(wanted, budget, [s.last for s in extend]))
                except Exception as exc:  # noqa: BLE001 - the store refused the claim: nothing was taken
                    # (locked, a deadlock between processes, connection gone): try again shortly.
                    log.warning("claim failed; retrying", extra={"channel": self.channel, "stage": self.label,
                                                                 "error_class": type(exc).__name__})
                    await asyncio.sleep(self.poll_interval)
                finally:
                    for stream in extend:
                        stream.extending = False
                        self._continue(stream, claimed.continued.get(stream.key or ""), claimed)
                self.control.paused, self._after = claimed.paused, claimed.last_key
                self.control.claimed(sum(map(len, claimed.runs)) + sum(map(len, claimed.continued.values())))
            self._report_state()
            if self._stopping:
                for run in claimed.runs:
                    self._recorder.submit_release(run)
                claimed.runs = []
            for run in claimed.runs:
                self._hold(run)
                stream = _Stream(run[0].order_key if self.ordered else None, deque(run), run[-1])
                running = self._streams.get(stream.ident)
                if running is not None and not running.closed:  # one sender per key
                    running.queue.extend(run)
                    running.last = run[-1]
                    continue
                self._ready.append(stream)
            self._start_ready()
            await self._renew_leases()
            full = len(self._streams) >= self.max_in_flight
            if not (claimed.runs or claimed.continued) or (full and self._ready):
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), timeout=self.control.next_wake(self.poll_interval))
                except TimeoutError:
                    pass
        for stream in self._ready:      # claimed ahead, never started: back to pending at once
            self._recorder.submit_release(list(stream.queue))
        self._ready.clear()

    def _start_ready(self) -> None:
        while self._ready and len(self._streams) < self.max_in_flight:
            stream = self._ready.popleft()
            self._streams[stream.ident] = stream
            task = asyncio.create_task(self._send_stream(stream))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _continue(self, stream: _Stream, more: list[Claimed] | None, claimed: Claim) -> None:
        if not more:
            stream.exhausted = True
        elif stream.failed or self._stopping:
            # Claimed while its key's send failed (that delivery is going back to pending, before
            # these in the key's order) or while stopping: back to pending, unsent.
            self._recorder.submit_release(more)
        elif stream.closed:                 # it finished meanwhile: the continuation is a new run
            claimed.runs.append(more)
        else:
            self._hold(more)
            stream.queue.extend(more)
            stream.last = more[-1]

    def _hold(self, items: list[Claimed]) -> None:
        for item in items:
            self._sending[item.id] = item.lease_token

    def _report_state(self) -> None:
        self._metrics.set_destination_state(self.channel, self.label, paused=self.control.paused,
                                            in_downtime=self.control.in_downtime(),
                                            circuit=self.control.circuit_state)

    async def _renew_leases(self) -> None:
        """A slow send, or a long run, must not look abandoned: extend the leases of what is claimed
        and not yet recorded, so no worker (this one included) takes it over meanwhile."""
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
        """Stop claiming; let sends in flight finish (their leases cover a crash if they do not).
        The unsent rest of each run goes back to pending at once."""
        self._stopping = True
        self.wake.set()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=grace)
        for task in list(self._in_flight):
            task.cancel()
        await self.connector.close()

    def _claim_job(self, runs: int, budget: int, extend: list[Claimed]) -> Callable[[Connection], Claim]:
        """Claim up to `runs` runs of new keys, and the continuations of `extend`, of at most
        `budget` deliveries in all."""
        sending, after = list(self._sending), self._after
        token = uuid.uuid4().hex

        def job(connection: Connection) -> Claim:
            now = time.time()
            return claim(connection, channel=self.channel, label=self.label, ordered=self.ordered, runs=runs,
                         budget=budget, run_length=self.run_length, sending=sending, after=after, now=now,
                         lease_until=now + self.lease, owner=self.owner, token=token,
                         group=BATCH if hasattr(self.connector, "send_batch") else 1, extend=extend)
        return job

    async def _send_stream(self, stream: _Stream) -> None:
        """Send a key's claimed deliveries in order: one at a time, or in batches of up to BATCH
        to a connector that takes batches, while continuations keep being appended. The next send
        does not wait for the previous outcomes' commit (outcomes are written in batches behind the
        sends), but at most OUTCOMES_AHEAD of them may be uncommitted: that bounds what a crash
        makes send again."""
        recorded: list[asyncio.Future[None]] = []
        done: list[Claimed] = []
        batches = hasattr(self.connector, "send_batch")
        try:
            while not self._stopping:
                if not stream.queue:
                    # Done. A continuation claimed meanwhile starts as a new run of this key.
                    break
                chunk = [stream.queue.popleft() for _ in range(min(BATCH if batches else 1, len(stream.queue)))]
                results = await (self._send_batch(chunk) if len(chunk) > 1 else self._send(chunk[0]))
                done.extend(chunk)
                for result in results:
                    recorded.append(self._recorder.submit(result))
                last = results[-1]
                if len(results) < len(chunk) or last.outcome == AttemptOutcome.RETRY or (
                        last.outcome == AttemptOutcome.FAILED and last.hold):
                    # The key waits (for the retry, or for the on-call decision): the rest goes
                    # back to pending in its place, not sent and no attempt counted.
                    stream.failed = True
                    stream.queue.extendleft(reversed(chunk[len(results):]))
                    break
                waiting = [future for future in recorded if not future.done()]
                if len(waiting) > OUTCOMES_AHEAD:
                    await asyncio.wait(waiting[:len(waiting) - OUTCOMES_AHEAD])
                if any(future.done() and future.exception() is not None for future in recorded):
                    # Outcomes cannot be written: stop sending. The leases run out and the
                    # deliveries are sent again from the first unrecorded one.
                    log.error("delivery outcomes could not be recorded", extra={
                        "channel": self.channel, "stage": self.label})
                    stream.failed = True
                    stream.queue.clear()
                    break
        finally:
            stream.closed = True
            self._streams.pop(stream.ident, None)
            rest = list(stream.queue)
            stream.queue.clear()
            if rest:
                recorded.append(self._recorder.submit_release(rest))
            self.wake.set()
            if recorded:
                await asyncio.gather(*(asyncio.shield(future) for future in recorded), return_exceptions=True)
            for item in [*done, *rest]:
                self._sending.pop(item.id, None)

    async def _send(self, item: Claimed) -> list[_Result]:
        started = time.time()
        error: ConnectorError | None = None
        response = ""
        try:
            response = await asyncio.wait_for(self.connector.send(self._outgoing(item)), timeout=self.send_timeout)
        except ConnectorError as exc:
            error = exc
        except TimeoutError as exc:
            error = ConnectorUnavailable(f"send did not finish within {self.send_timeout:g}s")
            error.__cause__ = exc
        except Exception as exc:  # noqa: BLE001 - a connector bug must not kill the worker; retry it
            error = self._connector_bug(exc)
        return [self._result(item, error, response, started, time.time())]

    async def _send_batch(self, items: list[Claimed]) -> list[_Result]:
        """One `send_batch` call: an outcome per delivery the connector attempted."""
        started = time.time()
        connector: BatchConnector = self.connector  # type: ignore[assignment]  # checked by the caller
        answers: list[str | ConnectorError]
        try:
            answers = await asyncio.wait_for(connector.send_batch([self._outgoing(item) for item in items]),
                                             timeout=self.send_timeout)
        except TimeoutError as exc:
            timeout = ConnectorUnavailable(f"send did not finish within {self.send_timeout:g}s")
            timeout.__cause__ = exc
            answers = [timeout]
        except Exception as exc:  # noqa: BLE001 - a connector bug must not kill the worker; retry it
            answers = [self._connector_bug(exc)]
        if not answers:
            answers = [ConnectorUnavailable("connector answered a batch with no outcome")]
        finished = time.time()
        return [self._result(item, answer if isinstance(answer, ConnectorError) else None,
                             answer if isinstance(answer, str) else "", started, finished)
                for item, answer in zip(items, answers)]

    def _connector_bug(self, exc: Exception) -> ConnectorError:
        log.exception("connector raised an unexpected error", extra={"channel": self.channel, "stage": self.label})
        return ConnectorUnavailable(f"unexpected {type(exc).__name__} in connector")

    def _outgoing(self, item: Claimed) -> Outgoing:
        return Outgoing(item.payload, item.content_type, item.control_id, self.channel, self.label,
                        item.idempotency_id or item.id, item.message_type)

    def _result(self, item: Claimed, error: ConnectorError | None, response: str, started: float,
                finished: float) -> _Result:
        """The outcome of one attempt, counted in the metrics, the circuit breaker and the log."""
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
        return _Result(item, attempt, outcome, error, response, started, finished, next_at,
                       hold=self.control.on_failure == "block")


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
    """Writes attempt outcomes in batches: every outcome submitted while the previous batch was
    being written shares one store job (a few executemany statements instead of a job each).
    A submit returns the future of the batch it joined, done once that batch is committed."""

    def __init__(self, writer: StoreWriter, channel: str, label: str, on_outcomes: OutcomeHook | None = None) -> None:
        self.writer = writer
        self.on_outcomes = on_outcomes
        self.channel = channel
        self.label = label
        self._pending: list[_Result] = []
        self._released: list[Claimed] = []
        self._flush: asyncio.Future[None] | None = None

    def submit(self, result: _Result) -> asyncio.Future[None]:
        self._pending.append(result)
        return self._schedule()

    def submit_release(self, items: list[Claimed]) -> asyncio.Future[None]:
        """Claimed deliveries that were not sent: back to pending, lease cleared, no attempt."""
        self._released.extend(items)
        return self._schedule()

    def _schedule(self) -> asyncio.Future[None]:
        if self._flush is None:
            self._flush = asyncio.ensure_future(self._write())
        return self._flush

    async def _write(self) -> None:
        await asyncio.sleep(0)       # let sends finishing in this loop turn join the batch
        batch, released = self._pending, self._released
        self._pending, self._released, self._flush = [], [], None
        channel, label, hook = self.channel, self.label, self.on_outcomes

        def write(connection: Connection) -> list[_Result]:
            if released:
                connection.execute(_RELEASE, [{"b_id": item.id, "b_token": item.lease_token} for item in released])
            return _record_batch(connection, batch, channel, label, hook) if batch else []

        refused = await self.writer.run(write)
        for result in refused:
            # Another process took the delivery over (this one stalled past its lease): its
            # outcome is the one that counts. Ids and the outcome only; no message content.
            log.warning("delivery outcome refused: the lease was taken over", extra={
                "channel": channel, "stage": label, "delivery_id": result.item.id, "outcome": result.outcome,
                "attempt": result.attempt})


_RELEASE = (update(deliveries).where(deliveries.c.id == bindparam("b_id"),
                                     deliveries.c.lease_token == bindparam("b_token"),
                                     deliveries.c.status == DeliveryStatus.IN_FLIGHT)
            .values(status=DeliveryStatus.PENDING, lease_until=None, lease_owner=None, lease_token=None))

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
