"""/messages: the stored-message search (the same as `simpul messages search`) and one message's
content. Both show patient data, so both need messages.read and each answer that shows any is
an audit event (who searched for what, who opened which message)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from simpul.access.principal import Principal
from simpul.access.roles import Permission
from simpul.api.auth import requires
from simpul.api.deps import StoreDep
from simpul.dead_letters.audit import record_audit
from simpul.engine.search import MessageQuery, search_messages, show_message

router = APIRouter(tags=["messages"])


@router.get("/messages", summary="Find stored messages with their deliveries (newest first; no message bodies)")
async def list_messages(store: StoreDep, patient_id: str | None = None, control_id: str | None = None,
                        message_type: str | None = None, status: str | None = None,
                        accession_number: str | None = None, visit_number: str | None = None,
                        since: float | None = None, until: float | None = None,
                        text: str | None = Query(None, description="Text inside the raw message."),
                        limit: int = Query(100, ge=1, le=1000),
                        who: Principal = requires(Permission.MESSAGES_READ)) -> dict[str, Any]:
    query = MessageQuery(patient_id=patient_id, control_id=control_id, message_type=message_type,
                         status=status, accession_number=accession_number, visit_number=visit_number,
                         since=since, until=until, text=text, limit=limit)
    rows = await store.read(lambda connection: search_messages(connection, query))
    if rows:
        await audit_search(store, who, query, len(rows))
    return {"count": len(rows), "messages": rows}


@router.get("/messages/{message_id}", summary="One message: raw v2, each delivery's payload and attempts")
async def get_message(message_id: int, store: StoreDep,
                      who: Principal = requires(Permission.MESSAGES_READ)) -> dict[str, Any]:
    found: dict[str, Any] = await store.read(lambda connection: show_message(connection, message_id))
    await audit_view(store, who, message_id)
    return found


async def audit_search(store: Any, who: Principal, query: MessageQuery, found: int) -> None:
    await store.write(lambda c: record_audit(c, actor=who.actor, action="message.search", target="messages",
                                             reason=None, detail={"filter": query.criteria(), "found": found}))


async def audit_view(store: Any, who: Principal, message_id: int) -> None:
    await store.write(lambda c: record_audit(c, actor=who.actor, action="message.view",
                                             target=f"messages:{message_id}", reason=None, detail={}))
