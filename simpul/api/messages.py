"""/messages: the stored-message search (the same as `simpul messages search`)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from simpul.api.deps import StoreDep
from simpul.engine.search import MessageQuery, search_messages

router = APIRouter(tags=["messages"])


@router.get("/messages", summary="Find stored messages with their deliveries (newest first; no message bodies)")
async def list_messages(store: StoreDep, patient_id: str | None = None, control_id: str | None = None,
                        message_type: str | None = None, status: str | None = None,
                        accession_number: str | None = None, visit_number: str | None = None,
                        since: float | None = None, until: float | None = None,
                        limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
    query = MessageQuery(patient_id=patient_id, control_id=control_id, message_type=message_type,
                         status=status, accession_number=accession_number, visit_number=visit_number,
                         since=since, until=until, limit=limit)
    rows = await store.read(lambda connection: search_messages(connection, query))
    return {"count": len(rows), "messages": rows}
