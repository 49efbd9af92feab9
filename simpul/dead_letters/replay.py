"""Guarded replay: plan (preview), then execute — never one without the other.

`plan_replay` selects the dead letters a filter matches (open ones unless a status is given),
works out for each what would be sent where (re-mapping when needed: that is the dry run) and
summarises the blast radius: how many, which patients, which destinations, a sample.
`execute_replay` refuses without a reason, above the cap, or with nothing to do; otherwise in
ONE transaction it inserts a new delivery per item (history is never rewritten), links it to
the dead letter and original delivery (`replays`), closes the dead letter and writes the audit
event. A crash before the commit leaves nothing behind; after it, the workers deliver.

Idempotency: the new delivery carries the same payload and `replay_of` = the first delivery of
the chain, which is the id connectors see, so a receiver that dedups (FHIR conditional create,
file names) sees the message once. FIFO: a replay of a `held` delivery (on_failure: block)
takes its place in the key's queue (`ordered_as`); other replays queue behind what is pending.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select, update

from simpul.dead_letters.audit import record_audit
from simpul.dead_letters.query import DeadLetterFilter
from simpul.engine.channel_runtime import FHIR_JSON, ChannelRuntime, order_key
from simpul.engine.processor import message_fields
from simpul.errors import OperationRefused
from simpul.store.database import inserted_id
from simpul.store.rows import DeadLetter, DeadLetterEdit, Delivery, Message, delivery_row, replay_row
from simpul.store.schema import dead_letter_edits, dead_letters, deliveries, messages, replays
from simpul.store.status import DeadLetterStatus, DeliveryStatus

DEFAULT_CAP = 100
SAMPLE_SIZE = 5


@dataclass
class ReplayItem:
    dead_letter_id: int
    message_id: int
    channel: str
    destination: str
    patient_id: str
    control_id: str
    message_type: str
    status: DeadLetterStatus
    payload: bytes | None = None
    content_type: str = ""
    order_key: str = ""
    original_delivery_id: int | None = None
    replay_of: int | None = None
    ordered_as: int | None = None
    release_held_delivery: int | None = None
    edit_id: int | None = None
    problem: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"dead_letter_id": self.dead_letter_id, "channel": self.channel, "destination": self.destination,
                "control_id": self.control_id, "message_type": self.message_type, "patient_id": self.patient_id,
                "edited": self.edit_id is not None, "bytes": len(self.payload or b""), "problem": self.problem}


@dataclass
class ReplayPlan:
    """The preview. `items` has one entry per (dead letter, target destination)."""

    filter: DeadLetterFilter
    cap: int
    to_destination: str | None
    matched: int = 0
    items: list[ReplayItem] = field(default_factory=list)

    @property
    def ready(self) -> list[ReplayItem]:
        return [item for item in self.items if item.problem is None]

    @property
    def over_cap(self) -> bool:
        return self.matched > self.cap

    def preview(self) -> dict[str, Any]:
        destinations = Counter(f"{item.channel}/{item.destination}" for item in self.items)
        return {
            "dead_letters": self.matched, "deliveries": len(self.ready), "cap": self.cap, "over_cap": self.over_cap,
            "patients": sorted({item.patient_id for item in self.items if item.patient_id}),
            "destinations": dict(destinations),
            "problems": [item.summary() for item in self.items if item.problem is not None],
            "sample": [item.summary() for item in self.items[:SAMPLE_SIZE]],
        }


def plan_replay(connection: Connection, query: DeadLetterFilter, channels: Mapping[str, ChannelRuntime], *,
                to_destination: str | None = None, cap: int = DEFAULT_CAP) -> ReplayPlan:
    """Select and map; changes nothing. An empty filter is refused: say what to replay."""
    if query.is_empty():
        raise OperationRefused("say what to replay: an id or at least one filter (channel, error, patient...)")
    if cap < 1:
        raise OperationRefused("--max must be at least 1")
    if not query.ids and query.status is None:
        query = DeadLetterFilter(**{**vars(query), "status": DeadLetterStatus.OPEN})
    plan = ReplayPlan(query, cap, to_destination)
    x = dead_letters.c
    rows = [DeadLetter.from_row(row) for row in connection.execute(
        select(dead_letters).where(*query.clauses()).order_by(x.id).limit(cap + 1))]
    plan.matched = connection.execute(select(func.count()).select_from(dead_letters)
                                      .where(*query.clauses())).scalar_one()
    for row in rows[:cap]:
        plan.items.extend(_items_for(connection, row, channels, to_destination))
    return plan


def _items_for(connection: Connection, row: DeadLetter, channels: Mapping[str, ChannelRuntime],
               to_destination: str | None) -> list[ReplayItem]:
    base: dict[str, Any] = dict(dead_letter_id=row.id, message_id=row.message_id, channel=row.channel, patient_id=row.patient_id,
                control_id=row.control_id, message_type=row.message_type, status=row.status)
    runtime = channels.get(row.channel)
    if runtime is None:
        return [ReplayItem(destination=to_destination or row.destination, **base,
                           problem=f"channel '{row.channel}' is not loaded")]
    labels = [d.label for d in runtime.channel.destinations]
    if to_destination:
        targets = [to_destination]
    elif row.destination:
        targets = [row.destination]
    else:                       # a mapping failure: it never reached any destination
        targets = labels
    newest_edit = connection.execute(select(dead_letter_edits).where(dead_letter_edits.c.dead_letter_id == row.id)
                                     .order_by(dead_letter_edits.c.id.desc()).limit(1)).first()
    edit = DeadLetterEdit.from_row(newest_edit) if newest_edit is not None else None
    message = Message.from_row(connection.execute(select(messages).where(messages.c.id == row.message_id)).one())
    delivered_as = (connection.execute(select(deliveries).where(deliveries.c.id == row.delivery_id)).first()
                    if row.delivery_id is not None else None)
    original = Delivery.from_row(delivered_as) if delivered_as is not None else None
    raw = bytes(edit.raw) if edit is not None else bytes(row.raw)
    mapped: bytes | None = None
    mapping_problem: str | None = None
    items = []
    for label in targets:
        item = ReplayItem(destination=label, **base, edit_id=edit.id if edit is not None else None)
        items.append(item)
        destination = next((d for d in runtime.channel.destinations if d.label == label), None)
        if destination is None:
            item.problem = f"channel '{row.channel}' has no destination '{label}' (has: {', '.join(labels)})"
            continue
        same_destination = original is not None and original.destination == label
        if destination.sends == "raw":
            item.payload, item.content_type = raw, runtime.raw_content_type(raw)
        elif edit is not None and edit.payload is not None:
            item.payload, item.content_type = bytes(edit.payload), edit.content_type or FHIR_JSON
        elif edit is None and same_destination and original is not None:
            item.payload, item.content_type = bytes(original.payload), original.content_type
        else:
            if mapped is None and mapping_problem is None:
                mapped, mapping_problem = remap(runtime, raw, message.charset)
            if mapping_problem is not None:
                item.problem = mapping_problem
                continue
            item.payload, item.content_type = mapped, runtime.mapping.output_content_type
        if same_destination and original is not None:
            item.original_delivery_id = original.id
            item.order_key = original.order_key
            item.replay_of = original.replay_of or original.id
            if original.status == DeliveryStatus.HELD:
                item.ordered_as = original.ordered_as or original.id
                item.release_held_delivery = original.id
        else:
            item.original_delivery_id = original.id if original is not None else None
            item.replay_of = (original.replay_of or original.id) if original is not None else None
            item.order_key = order_key(destination.order_by, message_fields(message), message.id)[:250]
    return items


def remap(runtime: ChannelRuntime, raw: bytes, charset: str) -> tuple[bytes | None, str | None]:
    """Map with the channel's current mapping; (payload, None) or (None, reason)."""
    try:
        return runtime.map_stored(raw, charset)[0], None
    except Exception as exc:  # noqa: BLE001 - analyst mappings may raise anything; report its class
        reason = getattr(exc, "reason", None)
        return None, f"mapping failed: {type(exc).__name__}" + (f": {reason}" if reason else "")


@dataclass
class ReplayResult:
    audit_event_id: int
    delivery_ids: list[int]
    skipped: list[dict[str, Any]]
    touched: set[tuple[str, str]]


def execute_replay(connection: Connection, plan: ReplayPlan, *, actor: str, reason: str) -> ReplayResult:
    """Queue the plan's deliveries in the caller's transaction (see the module docstring)."""
    if not reason or not reason.strip():
        raise OperationRefused("a reason is required to replay (--reason)")
    if plan.over_cap:
        raise OperationRefused(f"{plan.matched} dead letters match, above the cap of {plan.cap}; "
                               f"narrow the filter or raise the cap explicitly (--max {plan.matched})")
    if not plan.ready:
        raise OperationRefused("nothing to replay" + (": every match has a problem" if plan.items else ""))
    now = time.time()
    target = ",".join(str(i) for i in sorted({item.dead_letter_id for item in plan.ready})[:20])
    audit_id = record_audit(connection, actor=actor, action="dead_letter.replay", target=f"dead_letters:{target}",
                            reason=reason, detail={"count": len(plan.ready), **{
                                k: v for k, v in plan.preview().items() if k in ("patients", "destinations")},
                                "to_destination": plan.to_destination})
    delivery_ids: list[int] = []
    skipped: list[dict[str, Any]] = []
    touched: set[tuple[str, str]] = set()
    closed: set[int] = set()
    for item in plan.ready:
        current = connection.execute(select(dead_letters.c.status).where(
            dead_letters.c.id == item.dead_letter_id)).scalar()
        if current != item.status and item.dead_letter_id not in closed:
            skipped.append({**item.summary(), "problem": f"changed meanwhile (now {current})"})
            continue
        assert item.payload is not None, "a ready item has its payload"
        new_id = inserted_id(connection.execute(deliveries.insert().values(delivery_row(
            message_id=item.message_id, channel=item.channel, destination=item.destination,
            order_key=item.order_key, payload=item.payload, content_type=item.content_type, created_at=now,
            next_attempt_at=now, replay_of=item.replay_of, ordered_as=item.ordered_as))))
        connection.execute(replays.insert().values(replay_row(
            at=now, audit_event_id=audit_id, dead_letter_id=item.dead_letter_id,
            original_delivery_id=item.original_delivery_id, delivery_id=new_id, edit_id=item.edit_id,
            destination=item.destination)))
        if item.release_held_delivery is not None:
            connection.execute(update(deliveries).where(deliveries.c.id == item.release_held_delivery,
                                                        deliveries.c.status == DeliveryStatus.HELD)
                               .values(status=DeliveryStatus.DEAD))
        connection.execute(update(dead_letters).where(dead_letters.c.id == item.dead_letter_id).values(
            status=DeadLetterStatus.REPLAYED, resolved_at=now, resolved_by=actor[:120], resolution=reason))
        closed.add(item.dead_letter_id)
        delivery_ids.append(int(new_id))
        touched.add((item.channel, item.destination))
    if not delivery_ids:
        raise OperationRefused("nothing replayed: every entry changed since the preview")
    return ReplayResult(audit_id, delivery_ids, skipped, touched)
