"""Edit and replay: store corrected bytes beside the original, never over it.

The edited message must still be an HL7v2 message (it starts with MSH and its header reads);
when the channel maps, the edit is mapped with the channel's current mapping now, so a message
that still does not map is refused at edit time rather than dead-lettered again. Replaying the
entry afterwards sends the newest edit (see replay.py).
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, select

from simpul.dead_letters.audit import record_audit
from simpul.dead_letters.replay import remap
from simpul.engine.channel_runtime import FHIR_JSON, ChannelRuntime
from simpul.errors import MessageError, OperationRefused
from simpul.store.database import inserted_id
from simpul.store.rows import DeadLetter, dead_letter_edit_row
from simpul.store.schema import dead_letter_edits, dead_letters, messages
from simpul.store.status import DeadLetterStatus
from simpul.v2 import read_header, split_messages


def normalise_segments(raw: bytes) -> bytes:
    """Segments end with CR on the wire; editors save LF or CRLF. One message: OperationRefused
    when the edited text holds several."""
    found = split_messages(raw)
    if len(found) > 1:
        raise OperationRefused(f"the edited text holds {len(found)} messages; edit one message")
    return found[0] if found else b""


@dataclass
class EditResult:
    edit_id: int
    audit_event_id: int
    mapped: bool


def edit_dead_letter(connection: Connection, dead_letter_id: int, new_raw: bytes, *, actor: str, reason: str,
                     channels: Mapping[str, ChannelRuntime]) -> EditResult:
    if not reason or not reason.strip():
        raise OperationRefused("a reason is required to edit (--reason)")
    found = connection.execute(select(dead_letters).where(dead_letters.c.id == dead_letter_id)).first()
    if found is None:
        raise OperationRefused(f"no dead letter {dead_letter_id}")
    row = DeadLetter.from_row(found)
    if row.status != DeadLetterStatus.OPEN:
        raise OperationRefused(f"dead letter {dead_letter_id} is {row.status}; only open entries are edited")
    raw = normalise_segments(new_raw)
    try:
        header = read_header(raw)
    except MessageError as exc:
        raise OperationRefused(f"the edited message is not readable HL7v2: {exc}") from None
    if bytes(row.raw) == raw:
        raise OperationRefused("the edited message is identical to the original")
    runtime = channels.get(row.channel)
    if runtime is None:
        raise OperationRefused(f"channel '{row.channel}' is not loaded")
    payload: bytes | None = None
    if runtime.needs_mapping:
        charset = connection.execute(select(messages.c.charset).where(messages.c.id == row.message_id)).scalar()
        payload, problem = remap(runtime, raw, header.charset or charset or "")
        if problem is not None:
            raise OperationRefused(f"the edited message does not map: {problem}")
    edit_id = inserted_id(connection.execute(dead_letter_edits.insert().values(dead_letter_edit_row(
        dead_letter_id=dead_letter_id, at=time.time(), actor=actor, reason=reason, raw=raw,
        payload=payload, content_type=FHIR_JSON if payload is not None else ""))))
    audit_id = record_audit(connection, actor=actor, action="dead_letter.edit", target=f"dead_letters:{dead_letter_id}",
                            reason=reason, detail={"count": 1, "edit_id": edit_id, "bytes": len(raw),
                                                   "control_id": header.control_id})
    return EditResult(edit_id, audit_id, payload is not None)
