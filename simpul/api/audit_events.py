"""/audit-events: the audit trail, read-only (no route changes or deletes an audit event)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from simpul.access.principal import Principal
from simpul.access.roles import Permission
from simpul.api.auth import requires
from simpul.api.deps import StoreDep
from simpul.dead_letters.audit import list_audit

router = APIRouter(tags=["audit events"])


@router.get("/audit-events", summary="The audit trail (read-only; newest first)")
async def list_audit_events(store: StoreDep, action: str | None = Query(None, description="e.g. dead_letter.replay "
                                                                       "or retention.* (wildcard)"),
                            actor: str | None = None, since: float | None = None, until: float | None = None,
                            limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
                            _: Principal = requires(Permission.AUDIT_READ)) -> Any:
    return await store.read(lambda c: list_audit(c, action=action, actor=actor, since=since, until=until,
                                                 limit=limit, offset=offset))
