"""Typed rows of the store: one frozen class per table for reads, one builder per table for writes.

A read turns a SQLAlchemy row of `select(table)` into its class with `Class.from_row(row)`;
status columns come back as their enums (simpul.store.status). A write builds the table's
values with its `*_row` builder, the only place that knows the columns' defaults and sizes, so
two writers of one table cannot drift apart. Builders return plain dicts, not the classes: the
ingest and delivery paths insert thousands of rows a second through the driver's executemany
(writer.insert_rows), and a dict is what it takes.

tests/store/test_rows.py checks that every class and builder names exactly its table's columns.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, Self

from simpul.store.audit_chain import GENESIS, event_hash
from simpul.store.status import AttemptOutcome, DeadLetterStatus, DeliveryStatus, MessageStatus


class _Row(Protocol):
    """What a read hands over: a SQLAlchemy `Row` (its `_mapping`) of a `select(table)`."""

    @property
    def _mapping(self) -> Mapping[Any, Any]: ...  # RowMapping keys are str or Column


_FIELDS: dict[type, tuple[str, ...]] = {}


def _values(cls: type, row: _Row) -> dict[str, Any]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(field.name for field in dataclasses.fields(cls))
    mapping = row._mapping
    return {name: mapping[name] for name in names}


def _cut(value: str, size: int) -> str:
    """A sender's field may be longer than its column; the column keeps the start."""
    return value[:size]


# ---- messages ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Message:
    """One received message, byte-exact (`raw`), with its header fields and business keys."""

    id: int
    received_at: float
    source: str
    status: MessageStatus
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    message_type: str
    control_id: str
    version_id: str
    charset: str
    content_hash: str
    patient_id: str
    visit_number: str
    placer_number: str
    filler_number: str
    accession_number: str
    raw: bytes
    ack: bytes | None
    ack_code: str
    error: str | None
    duplicates: int
    restored_at: float | None
    priority: int

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        values = _values(cls, row)
        values["status"] = MessageStatus(values["status"])
        return cls(**values)


class HeaderFields(Protocol):
    """The MSH fields a `messages` row keeps (simpul.v2.MessageHeader has them)."""

    @property
    def sending_application(self) -> str: ...
    @property
    def sending_facility(self) -> str: ...
    @property
    def receiving_application(self) -> str: ...
    @property
    def receiving_facility(self) -> str: ...
    @property
    def message_type(self) -> str: ...
    @property
    def control_id(self) -> str: ...
    @property
    def version_id(self) -> str: ...


class KeyFields(Protocol):
    """The business keys staff search messages by (simpul.v2.BusinessKeys)."""

    @property
    def patient_id(self) -> str: ...
    @property
    def visit_number(self) -> str: ...
    @property
    def placer_number(self) -> str: ...
    @property
    def filler_number(self) -> str: ...
    @property
    def accession_number(self) -> str: ...


def message_row(source: str, status: MessageStatus, received_at: float, raw: bytes, ack: bytes | None,
                ack_code: str, *, charset: str, content_hash: str, header: HeaderFields | None = None,
                keys: KeyFields | None = None, error: str | None = None, priority: int = 0) -> dict[str, Any]:
    """The values of one new `messages` row; header fields are cut to their columns' sizes.

    Without a header (the message was unreadable) the header columns are empty; without keys,
    the key columns. Positional and flat on purpose: ingest calls it once per message before the
    ACK, and keyword-heavy calls cost microseconds there.
    """
    h, k = header, keys
    return {
        "received_at": received_at, "source": source, "status": status,
        "sending_application": h.sending_application[:180] if h else "",
        "sending_facility": h.sending_facility[:180] if h else "",
        "receiving_application": h.receiving_application[:180] if h else "",
        "receiving_facility": h.receiving_facility[:180] if h else "",
        "message_type": h.message_type[:32] if h else "", "control_id": h.control_id[:199] if h else "",
        "version_id": h.version_id[:16] if h else "", "charset": charset[:32], "content_hash": content_hash,
        "patient_id": k.patient_id if k else "", "visit_number": k.visit_number if k else "",
        "placer_number": k.placer_number if k else "", "filler_number": k.filler_number if k else "",
        "accession_number": k.accession_number if k else "",
        "raw": raw, "ack": ack, "ack_code": ack_code, "error": error, "duplicates": 0, "restored_at": None,
        "priority": priority,
    }


# ---- deliveries and their attempts ------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one destination: a work item with a lease (the store is the queue)."""

    id: int
    message_id: int
    channel: str
    destination: str
    order_key: str
    status: DeliveryStatus
    attempts: int
    created_at: float
    next_attempt_at: float
    lease_until: float | None
    lease_owner: str | None
    delivered_at: float | None
    last_error: str | None
    last_response: str | None
    payload: bytes
    content_type: str
    replay_of: int | None
    ordered_as: int | None
    lease_token: str | None      # the current claim's token (engine/delivery.py); None when not claimed

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        values = _values(cls, row)
        values["status"] = DeliveryStatus(values["status"])
        return cls(**values)


def delivery_row(*, message_id: int, channel: str, destination: str, order_key: str, payload: bytes,
                 content_type: str, created_at: float, next_attempt_at: float, replay_of: int | None = None,
                 ordered_as: int | None = None) -> dict[str, Any]:
    """The values of one new, pending `deliveries` row (a first delivery or a replay)."""
    return {
        "message_id": message_id, "channel": channel, "destination": destination,
        "order_key": _cut(order_key, 250), "status": DeliveryStatus.PENDING, "attempts": 0,
        "created_at": created_at, "next_attempt_at": next_attempt_at, "lease_until": None, "lease_owner": None,
        "delivered_at": None, "last_error": None, "last_response": None, "payload": payload,
        "content_type": content_type, "replay_of": replay_of, "ordered_as": ordered_as, "lease_token": None,
    }


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One send of a delivery and how it ended."""

    id: int
    delivery_id: int
    attempt: int
    started_at: float
    finished_at: float
    outcome: AttemptOutcome
    error_class: str | None
    error: str | None
    response: str | None

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        values = _values(cls, row)
        values["outcome"] = AttemptOutcome(values["outcome"])
        return cls(**values)


def delivery_attempt_row(*, delivery_id: int, attempt: int, started_at: float, finished_at: float,
                         outcome: AttemptOutcome, error_class: str | None = None, error: str | None = None,
                         response: str | None = None) -> dict[str, Any]:
    return {"delivery_id": delivery_id, "attempt": attempt, "started_at": started_at, "finished_at": finished_at,
            "outcome": outcome, "error_class": error_class, "error": error, "response": response}


# ---- dead letters, their edits and replays ----------------------------------------------------

@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that failed at a stage, with its original bytes and the mapped output if any."""

    id: int
    created_at: float
    message_id: int
    delivery_id: int | None
    channel: str
    destination: str
    stage: str
    error_class: str
    error: str
    attempts: int
    status: DeadLetterStatus
    raw: bytes
    payload: bytes | None
    message_type: str
    control_id: str
    patient_id: str
    visit_number: str
    accession_number: str
    resolved_at: float | None
    resolved_by: str | None
    resolution: str | None

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        values = _values(cls, row)
        values["status"] = DeadLetterStatus(values["status"])
        return cls(**values)


class FailedMessage(Protocol):
    """What a dead letter copies from its message: a `Message`, or a row with these columns."""

    @property
    def id(self) -> int: ...
    @property
    def raw(self) -> bytes: ...
    @property
    def message_type(self) -> str: ...
    @property
    def control_id(self) -> str: ...
    @property
    def patient_id(self) -> str: ...
    @property
    def visit_number(self) -> str: ...
    @property
    def accession_number(self) -> str: ...


def dead_letter_row(message: FailedMessage, *, created_at: float, channel: str, stage: str, error_class: str,
                    error: str, attempts: int, destination: str = "", delivery_id: int | None = None,
                    payload: bytes | None = None) -> dict[str, Any]:
    """The values of one new, open `dead_letters` row: the message's original bytes and the keys
    on-call staff search by go with it, so the entry stands on its own after the message is archived."""
    return {
        "created_at": created_at, "message_id": message.id, "delivery_id": delivery_id, "channel": channel,
        "destination": destination, "stage": stage, "error_class": error_class, "error": error,
        "attempts": attempts, "status": DeadLetterStatus.OPEN, "raw": message.raw, "payload": payload,
        "message_type": message.message_type, "control_id": message.control_id,
        "patient_id": message.patient_id, "visit_number": message.visit_number,
        "accession_number": message.accession_number, "resolved_at": None, "resolved_by": None,
        "resolution": None,
    }


@dataclass(frozen=True, slots=True)
class DeadLetterEdit:
    """Edited bytes of a dead letter (the original never changes), re-mapped when the channel maps."""

    id: int
    dead_letter_id: int
    at: float
    actor: str
    reason: str
    raw: bytes
    payload: bytes | None
    content_type: str

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        return cls(**_values(cls, row))


def dead_letter_edit_row(*, dead_letter_id: int, at: float, actor: str, reason: str, raw: bytes,
                         payload: bytes | None, content_type: str) -> dict[str, Any]:
    return {"dead_letter_id": dead_letter_id, "at": at, "actor": _cut(actor, 120), "reason": reason, "raw": raw,
            "payload": payload, "content_type": content_type}


@dataclass(frozen=True, slots=True)
class Replay:
    """A dead letter sent again: the new delivery, the audit event and the edit it used."""

    id: int
    at: float
    audit_event_id: int
    dead_letter_id: int
    original_delivery_id: int | None
    delivery_id: int
    edit_id: int | None
    destination: str

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        return cls(**_values(cls, row))


def replay_row(*, at: float, audit_event_id: int, dead_letter_id: int, original_delivery_id: int | None,
               delivery_id: int, edit_id: int | None, destination: str) -> dict[str, Any]:
    return {"at": at, "audit_event_id": audit_event_id, "dead_letter_id": dead_letter_id,
            "original_delivery_id": original_delivery_id, "delivery_id": delivery_id, "edit_id": edit_id,
            "destination": destination}


# ---- audit, delivery control, archives --------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Who (actor, the role they acted in, their address) did what to which target, when and why;
    `detail` is JSON text. `prev_hash` links it to the event before it, `hash` covers both."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    reason: str | None
    detail: str | None
    role: str
    client: str
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        return cls(**_values(cls, row))


def audit_event_row(*, at: float, actor: str, action: str, target: str, reason: str | None,
                    detail: str | None, role: str = "", client: str = "", prev_hash: str = GENESIS) -> dict[str, Any]:
    """The event chained to `prev_hash` (the current head's hash): its own hash is computed here,
    over the values as stored (after cutting), so no writer can build an unchained row."""
    row = {"at": at, "actor": _cut(actor, 120), "action": action, "target": _cut(target, 250), "reason": reason,
           "detail": detail, "role": _cut(role, 32), "client": _cut(client, 64), "prev_hash": prev_hash}
    row["hash"] = event_hash(row, prev_hash)
    return row


@dataclass(frozen=True, slots=True)
class DestinationControl:
    """A destination's pause switch; `paused_at` None means it flows."""

    channel: str
    destination: str
    paused_at: float | None
    paused_by: str | None
    reason: str | None
    updated_at: float

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        return cls(**_values(cls, row))


def destination_control_row(*, channel: str, destination: str, paused_at: float | None, paused_by: str | None,
                            reason: str | None, updated_at: float) -> dict[str, Any]:
    return {"channel": channel, "destination": destination, "paused_at": paused_at,
            "paused_by": _cut(paused_by, 120) if paused_by is not None else None, "reason": reason,
            "updated_at": updated_at}


@dataclass(frozen=True, slots=True)
class Archive:
    """One archive file written by retention; the store keeps only this index of it."""

    id: int
    at: float
    actor: str
    channel: str
    path: str
    sha256: str
    messages: int
    received_from: float | None
    received_until: float | None
    encrypted: int
    restored_at: float | None
    key_id: str | None
    bytes: int | None

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        return cls(**_values(cls, row))


def archive_row(*, at: float, actor: str, channel: str, path: str, sha256: str, messages: int,
                received_from: float | None, received_until: float | None, key_id: str | None,
                size: int | None) -> dict[str, Any]:
    """`encrypted` follows from the key id: an archive is encrypted exactly when it names a key."""
    return {"at": at, "actor": _cut(actor, 120), "channel": channel, "path": path, "sha256": sha256,
            "messages": messages, "received_from": received_from, "received_until": received_until,
            "encrypted": 1 if key_id else 0, "restored_at": None, "key_id": key_id, "bytes": size}


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """An archived message's index entry: enough to find its archive file."""

    id: int
    archive_id: int
    message_id: int
    channel: str
    received_at: float
    message_type: str
    control_id: str
    patient_id: str

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        return cls(**_values(cls, row))


def archive_entry_row(*, archive_id: int, message_id: int, channel: str, received_at: float, message_type: str,
                      control_id: str, patient_id: str) -> dict[str, Any]:
    return {"archive_id": archive_id, "message_id": message_id, "channel": channel, "received_at": received_at,
            "message_type": message_type, "control_id": control_id, "patient_id": patient_id}


# ---- engine processes sharing the store ---------------------------------------------------------

@dataclass(frozen=True, slots=True)
class EngineNode:
    """One engine process as it last reported itself (engine/nodes.py): its channel set and sources."""

    owner: str
    channel_set_hash: str
    sources: str                 # JSON list of source keys
    started_at: float
    heartbeat_at: float

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        return cls(**_values(cls, row))


def engine_node_row(*, owner: str, channel_set_hash: str, sources: str, started_at: float,
                    heartbeat_at: float) -> dict[str, Any]:
    return {"owner": _cut(owner, 120), "channel_set_hash": channel_set_hash, "sources": sources,
            "started_at": started_at, "heartbeat_at": heartbeat_at}


# ---- orders and their timelines (engine/orders.py) ---------------------------------------------

@dataclass(frozen=True, slots=True)
class Order:
    """One order sent to a LIS or RIS, or one result that named no known order (`unknown`)."""

    id: int
    kind: str                    # lab | radiology
    channel: str
    placer_number: str
    filler_number: str
    accession_number: str
    patient_id: str
    code: str
    priority: str                # stat | asap | routine
    status: str
    unknown: int
    placed_at: float
    updated_at: float
    due_at: float | None
    final_at: float | None
    overdue_at: float | None
    study_found_at: float | None
    study_alerted_at: float | None
# ---- access: users, tokens, sessions, login failures, security keys (owned by simpul/access) ------

@dataclass(frozen=True, slots=True)
class User:
    """A console user; `password_hash` is argon2id, `totp_secret` base32 (None: no TOTP)."""

    id: int
    name: str
    role: str
    password_hash: str
    totp_secret: str | None
    totp_last_step: int | None
    created_at: float
    created_by: str
    disabled_at: float | None

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        return cls(**_values(cls, row))


def order_row(*, kind: str, channel: str, placer_number: str, filler_number: str, accession_number: str,
              patient_id: str, code: str, priority: str, status: str, unknown: bool, placed_at: float,
              due_at: float | None) -> dict[str, Any]:
    return {"kind": kind, "channel": _cut(channel, 120), "placer_number": _cut(placer_number, 250),
            "filler_number": _cut(filler_number, 250), "accession_number": _cut(accession_number, 250),
            "patient_id": _cut(patient_id, 250), "code": _cut(code, 250), "priority": priority,
            "status": status, "unknown": int(unknown), "placed_at": placed_at, "updated_at": placed_at,
            "due_at": due_at, "final_at": None, "overdue_at": None, "study_found_at": None,
            "study_alerted_at": None}


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """One step of an order's timeline (placed, sent, accepted, final, ...); `detail` names codes, not data."""

    id: int
    order_id: int
    at: float
    step: str
    detail: str
    message_id: int | None
def user_row(*, name: str, role: str, password_hash: str, created_at: float, created_by: str,
             totp_secret: str | None = None) -> dict[str, Any]:
    return {"name": name, "role": role, "password_hash": password_hash, "totp_secret": totp_secret,
            "totp_last_step": None, "created_at": created_at, "created_by": _cut(created_by, 120), "disabled_at": None}


@dataclass(frozen=True, slots=True)
class ApiToken:
    """A machine's token: only the SHA-256 of its secret half is stored."""

    id: int
    token_id: str
    secret_hash: str
    name: str
    role: str
    scope: str
    created_at: float
    created_by: str
    expires_at: float
    revoked_at: float | None
    last_used_at: float | None

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        return cls(**_values(cls, row))


def api_token_row(*, token_id: str, secret_hash: str, name: str, role: str, scope: str, created_at: float,
                  created_by: str, expires_at: float) -> dict[str, Any]:
    return {"token_id": token_id, "secret_hash": secret_hash, "name": _cut(name, 120), "role": role, "scope": scope,
            "created_at": created_at, "created_by": _cut(created_by, 120), "expires_at": expires_at,
            "revoked_at": None, "last_used_at": None}


@dataclass(frozen=True, slots=True)
class SessionRow:
    """A console session; `id` is the SHA-256 of the cookie value."""

    id: str
    user_id: int
    csrf_token: str
    created_at: float
    expires_at: float
    last_seen_at: float
    second_factor: str
    client: str
    challenge: str | None

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        return cls(**_values(cls, row))


def session_row(*, id: str, user_id: int, csrf_token: str, created_at: float, expires_at: float,
                client: str) -> dict[str, Any]:
    return {"id": id, "user_id": user_id, "csrf_token": csrf_token, "created_at": created_at,
            "expires_at": expires_at, "last_seen_at": created_at, "second_factor": "", "client": _cut(client, 64),
            "challenge": None}


@dataclass(frozen=True, slots=True)
class LoginFailure:
    id: int
    at: float
    user_name: str
    client: str

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        return cls(**_values(cls, row))


def order_event_row(*, order_id: int, at: float, step: str, detail: str, message_id: int | None) -> dict[str, Any]:
    return {"order_id": order_id, "at": at, "step": step, "detail": _cut(detail, 250), "message_id": message_id}
def login_failure_row(*, at: float, user_name: str, client: str) -> dict[str, Any]:
    return {"at": at, "user_name": _cut(user_name, 120), "client": _cut(client, 64)}


@dataclass(frozen=True, slots=True)
class WebauthnCredential:
    """A user's security key: its credential id (base64url) and COSE public key."""

    id: int
    user_id: int
    credential_id: str
    public_key: bytes
    sign_count: int
    created_at: float

    @classmethod
    def from_row(cls, row: _Row) -> Self:
        return cls(**_values(cls, row))


def webauthn_credential_row(*, user_id: int, credential_id: str, public_key: bytes, sign_count: int,
                            created_at: float) -> dict[str, Any]:
    return {"user_id": user_id, "credential_id": credential_id, "public_key": public_key, "sign_count": sign_count,
            "created_at": created_at}
