"""Claiming deliveries: which waiting deliveries of one destination a worker takes now.

A claim is a list of *runs*. A run is a key's waiting deliveries in FIFO position, starting at
the key's head (its oldest unfinished delivery), which the worker sends one after the other
under one lease token; for `order_by: none` every delivery is its own key, so every run has one
delivery. Taking a key's run under one claim instead of one claim per message is what lets one
busy key (one patient, or `order_by: channel`) go at the receiver's speed.

Cost: finding keys skips from key to key in ix_deliveries_key_queue (a loose index scan: one
seek per key looked at), and a run is one range read of that index, so a claim costs the same
whether ten or a million deliveries wait, for one key or many. The scan starts after the last key
this worker claimed and wraps around, so every key gets its turn however busy the first ones are.

Several processes (PostgreSQL): a run starts by locking its head `FOR UPDATE SKIP LOCKED` and
re-checking it is still pending. Every claim of a key goes through its head, so while one
process holds the head lock (or has committed the head in_flight) no other process takes any of
that key's deliveries: per-key FIFO holds across processes. SQLite serialises writers with BEGIN
IMMEDIATE and ignores the locking clauses.

Expired leases (a worker died, or stalled past its lease) are first put back to pending: the
rows then wait in their FIFO place and are claimed like any others, and the stale holder's late
outcome is refused because its lease token no longer matches.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BindParameter, Connection, and_, bindparam, exists, func, literal, or_, select, tuple_, update,
)
from sqlalchemy.orm import aliased

from simpul.store.schema import DELIVERY_POSITION, deliveries, destination_controls, messages
from simpul.store.status import UNFINISHED_DELIVERY, DeliveryStatus

# Keys looked at per key wanted: a key is passed over when its head waits for a retry or is
# blocked behind a delivery in flight, so look a little further than the slots to fill.
KEYS_LOOKED_AT_PER_SLOT = 4
MIN_KEYS_LOOKED_AT = 32


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
    order_key: str = ""
    position: int = 0            # FIFO position within the key (coalesce(ordered_as, id))


@dataclass
class Claim:
    runs: list[list[Claimed]]
    paused: bool
    last_key: str | None        # where the next claim's key scan starts
    # Continuations of keys this worker is sending: key -> the next deliveries after its last claimed.
    continued: dict[str, list[Claimed]] = field(default_factory=dict)


_d = deliveries
_channel: BindParameter[str] = bindparam("channel")
_label: BindParameter[str] = bindparam("label")
_MINE = (_d.c.channel == _channel, _d.c.destination == _label)
_COLUMNS = (_d.c.id, _d.c.message_id, _d.c.payload, _d.c.content_type, _d.c.attempts, _d.c.created_at,
            messages.c.control_id, messages.c.message_type, func.coalesce(_d.c.replay_of, _d.c.id))

_PAUSED = select(destination_controls.c.paused_at).where(
    destination_controls.c.channel == _channel, destination_controls.c.destination == _label)

# Leases that ran out, except on what this worker is sending itself (however slow it is).
_EXPIRED = (select(_d.c.id).where(*_MINE, _d.c.status == DeliveryStatus.IN_FLIGHT,
                                  _d.c.lease_until < bindparam("now"),
                                  _d.c.id.notin_(bindparam("sending", expanding=True)))
            .order_by(_d.c.id).with_for_update(skip_locked=True))
_RELEASE_EXPIRED = (update(_d).where(_d.c.id.in_(bindparam("ids", expanding=True)),
                                     _d.c.status == DeliveryStatus.IN_FLIGHT)
                    .values(status=DeliveryStatus.PENDING, lease_until=None, lease_owner=None, lease_token=None))


def _key_scan(*, inclusive: bool) -> Any:
    """Up to :probes keys from :after on (the key itself too when `inclusive`) that have pending
    deliveries, in key order, each with its head if that head is due and nothing of its key
    before it is in flight or held."""
    inner = aliased(_d)
    after = inner.c.order_key >= bindparam("after") if inclusive else inner.c.order_key > bindparam("after")
    first = select(func.min(inner.c.order_key).label("key"), literal(1).label("n")).where(
        inner.c.channel == _channel, inner.c.destination == _label, inner.c.status == DeliveryStatus.PENDING,
        after)
    keys = first.cte("keys", recursive=True)
    step = aliased(_d)
    following = select(select(func.min(step.c.order_key)).where(
        step.c.channel == _channel, step.c.destination == _label, step.c.status == DeliveryStatus.PENDING,
        step.c.order_key > keys.c.key).scalar_subquery(), keys.c.n + 1).where(
        keys.c.key.is_not(None), keys.c.n < bindparam("probes"))
    keys = keys.union_all(following)

    head_of_key = aliased(_d)
    head_id = (select(head_of_key.c.id).where(
        head_of_key.c.channel == _channel, head_of_key.c.destination == _label,
        head_of_key.c.status == DeliveryStatus.PENDING, head_of_key.c.order_key == keys.c.key)
        .order_by(func.coalesce(head_of_key.c.ordered_as, head_of_key.c.id), head_of_key.c.id)
        .limit(1).scalar_subquery())
    head = aliased(_d)
    earlier = aliased(_d)
    # Pending deliveries cannot be earlier than the head (it is the first pending one); in_flight
    # and held ones can, and then the key waits for them.
    blocked = exists().where(
        earlier.c.channel == _channel, earlier.c.destination == _label,
        earlier.c.status.in_((DeliveryStatus.IN_FLIGHT, DeliveryStatus.HELD)),
        earlier.c.order_key == head.c.order_key,
        tuple_(func.coalesce(earlier.c.ordered_as, earlier.c.id), earlier.c.id)
        < tuple_(func.coalesce(head.c.ordered_as, head.c.id), head.c.id))
    return (select(keys.c.key, head.c.id, func.coalesce(head.c.ordered_as, head.c.id))
            .select_from(keys.join(head, head.c.id == head_id))
            .where(keys.c.key.is_not(None), head.c.next_attempt_at <= bindparam("now"), ~blocked))


_KEYS_FROM = _key_scan(inclusive=True)
_KEYS_AFTER = _key_scan(inclusive=False)

# The head again, locked: another process that claimed it meanwhile holds the lock (skipped) or
# has committed it in_flight (re-checked on lock and gone).
_LOCK_HEAD = (select(_d.c.id).where(_d.c.id == bindparam("head"), _d.c.status == DeliveryStatus.PENDING)
              .with_for_update(skip_locked=True))

# A key's pending deliveries from its head on, in FIFO position. Not SKIP LOCKED: a row passed
# over would be a gap in the run; whoever else locks these (an operator's action) is quick.
_RUN = (select(*_COLUMNS, _d.c.next_attempt_at, DELIVERY_POSITION).join(messages, messages.c.id == _d.c.message_id)
        .where(*_MINE, _d.c.status == DeliveryStatus.PENDING, _d.c.order_key == bindparam("key"),
               tuple_(DELIVERY_POSITION, _d.c.id) >= tuple_(bindparam("position"), bindparam("head")))
        .order_by(DELIVERY_POSITION, _d.c.id).limit(bindparam("limit")).with_for_update(of=_d))

# Where the run must stop: the first delivery of the key after the head that is in flight or
# held (only possible around a replay that took an earlier FIFO place).
_RUN_END = (select(DELIVERY_POSITION, _d.c.id)
            .where(*_MINE, _d.c.status.in_((DeliveryStatus.IN_FLIGHT, DeliveryStatus.HELD)),
                   _d.c.order_key == bindparam("key"),
                   tuple_(DELIVERY_POSITION, _d.c.id) > tuple_(bindparam("position"), bindparam("head")))
            .order_by(DELIVERY_POSITION, _d.c.id).limit(1))


def _unordered_due() -> Any:
    """`order_by: none`: due pending deliveries in id order (each its own key, so none waits for
    another unless a replay took its place)."""
    earlier = aliased(_d)
    position = DELIVERY_POSITION
    blocked = exists().where(and_(
        earlier.c.channel == _d.c.channel, earlier.c.destination == _d.c.destination,
        earlier.c.order_key == _d.c.order_key, earlier.c.status.in_(UNFINISHED_DELIVERY),
        or_(func.coalesce(earlier.c.ordered_as, earlier.c.id) < position,
            and_(func.coalesce(earlier.c.ordered_as, earlier.c.id) == position, earlier.c.id < _d.c.id))))
    return (select(*_COLUMNS).join(messages, messages.c.id == _d.c.message_id)
            .where(*_MINE, _d.c.status == DeliveryStatus.PENDING, _d.c.next_attempt_at <= bindparam("now"),
                   ~blocked)
            .order_by(_d.c.id).limit(bindparam("limit")).with_for_update(of=_d, skip_locked=True))


_UNORDERED_DUE = _unordered_due()


def claim(connection: Connection, *, channel: str, label: str, ordered: bool, runs: int, budget: int,
          run_length: int, sending: list[int], after: str | None, now: float, lease_until: float,
          owner: str, token: str, group: int = 1, extend: Sequence[Claimed] = ()) -> Claim:
    """Claim up to `runs` runs of new keys holding at most `budget` deliveries in all, and mark them
    in_flight under `token`. A paused destination claims nothing. Unordered deliveries are handed
    out in groups of `group` (the worker sends a group as one batch when its connector takes batches).

    `extend`: the last delivery claimed of each key this worker is still sending; the key's next
    waiting deliveries after it are claimed too (its run continues without waiting for the
    outcomes before it to be committed). No other process can take them meanwhile: this worker's
    in_flight deliveries come first in the key, so the key is blocked for everyone else."""
    params: dict[str, Any] = {"channel": channel, "label": label}
    if connection.execute(_PAUSED, params).scalar() is not None:
        return Claim([], True, after)
    expired = list(connection.execute(_EXPIRED, {**params, "now": now, "sending": sending}).scalars())
    if expired:
        connection.execute(_RELEASE_EXPIRED, {"ids": expired})
    continued: dict[str, list[Claimed]] = {}
    if ordered:
        for last in extend:
            if budget <= 0:
                break
            more = _run_from(connection, params, last.order_key, last.position, last.id, min(run_length, budget), now)
            if more:
                continued[last.order_key] = more
                budget -= len(more)
        taken, last_key = _claim_runs(connection, params, runs, budget, run_length, after, now)
    else:
        due = [Claimed(*row) for row in connection.execute(
            _UNORDERED_DUE, {**params, "now": now, "limit": min(runs * group, budget)})]
        taken = [due[start:start + group] for start in range(0, len(due), group)]
        last_key = after
    claimed = [item for run in [*taken, *continued.values()] for item in run]
    if claimed:
        for item in claimed:
            item.lease_token = token
        connection.execute(update(_d).where(_d.c.id.in_([item.id for item in claimed])).values(
            status=DeliveryStatus.IN_FLIGHT, lease_until=lease_until, lease_owner=owner, lease_token=token))
    return Claim(taken, False, last_key, continued)


def _run_from(connection: Connection, params: dict[str, Any], key: str, position: int, start: int, limit: int,
              now: float) -> list[Claimed]:
    """A key's pending deliveries from FIFO place (position, start) on, in order, up to the first
    that is not due or that comes after a delivery of the key in flight or held elsewhere."""
    where = {**params, "key": key, "position": position, "head": start}
    stop = connection.execute(_RUN_END, where).first()
    run: list[Claimed] = []
    for *columns, next_attempt_at, run_position in connection.execute(_RUN, {**where, "limit": limit}):
        if next_attempt_at > now or (stop is not None and (run_position, columns[0]) >= tuple(stop)):
            break       # the run ends at a delivery that waits for a retry or another's outcome
        item = Claimed(*columns)
        item.order_key, item.position = key, run_position
        run.append(item)
    return run


def _claim_runs(connection: Connection, params: dict[str, Any], runs: int, budget: int, run_length: int,
                after: str | None, now: float) -> tuple[list[list[Claimed]], str | None]:
    probes = max(runs * KEYS_LOOKED_AT_PER_SLOT, MIN_KEYS_LOOKED_AT)
    scan = {**params, "now": now, "probes": probes}
    if after is None:
        heads = list(connection.execute(_KEYS_FROM, {**scan, "after": ""}))
    else:
        heads = list(connection.execute(_KEYS_AFTER, {**scan, "after": after}))
        if len(heads) < runs:       # wrap around to the keys up to where this scan started
            seen = {head[0] for head in heads}
            heads += [head for head in connection.execute(_KEYS_FROM, {**scan, "after": ""}) if head[0] not in seen]
    taken: list[list[Claimed]] = []
    last_key = after
    for key, head, position in heads:
        if len(taken) >= runs or budget <= 0:
            break
        if connection.execute(_LOCK_HEAD, {"head": head}).scalar() is None:
            continue        # another process took this key meanwhile
        run = _run_from(connection, params, key, position, head, min(run_length, budget), now)
        if run and run[0].id == head:
            taken.append(run)
            budget -= len(run)
            last_key = key
    return taken, last_key
