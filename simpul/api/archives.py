"""/archives: retention passes, the archive list and index, and restore."""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from simpul.access.principal import Principal
from simpul.access.roles import Permission
from simpul.api.auth import requires
from simpul.api.deps import EngineDep, StoreDep
from simpul.dead_letters.audit import record_audit
from simpul.dead_letters.retention import find_archived, list_archives, restore_archived, run_retention
from simpul.errors import ArchiveIncomplete

router = APIRouter(prefix="/archives", tags=["archives"])


class ArchiveRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = Field(False, description="Count what would be archived and removed; change nothing.")


class RestoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    archive_id: int | None = Field(None, description="Restore every message of this archive.")
    control_id: str | None = Field(None, description="MSH-10 of the message(s) to restore.")
    patient_id: str | None = Field(None, description="PID-3 identifier of the patient whose messages to restore.")
    reason: str = Field(description="Why; required (kept in the audit trail).")


@router.get("", summary="Archive files, newest first (no patient data)",
            dependencies=[requires(Permission.DASHBOARD_READ)])
async def archives(store: StoreDep, channel: str | None = None, limit: int = Query(50, ge=1, le=1000),
                   offset: int = Query(0, ge=0)) -> Any:
    return await store.read(lambda c: list_archives(c, channel=channel, limit=limit, offset=offset))


@router.get("/entries", summary="Archived messages by control id or patient id (the archive index)")
async def archive_entries(store: StoreDep, control_id: str | None = None, patient_id: str | None = None,
                          archive_id: int | None = None, limit: int = Query(100, ge=1, le=10000),
                          who: Principal = requires(Permission.ARCHIVES_READ)) -> Any:
    found = await store.read(lambda c: find_archived(c, control_id=control_id, patient_id=patient_id,
                                                     archive_id=archive_id, limit=limit))
    if found:
        criteria = {"control_id": control_id, "patient_id": patient_id, "archive_id": archive_id}
        await store.write(lambda c: record_audit(c, actor=who.actor, action="archive.search", target="archive_entries",
                                                 reason=None, detail={k: v for k, v in criteria.items() if v}))
    return found


@router.post("/run", summary="One retention pass now: archive (fsynced), then remove from the store")
async def archive_run(body: ArchiveRunBody, engine: EngineDep,
                      who: Principal = requires(Permission.ARCHIVES_WRITE)) -> Any:
    actor = who.actor
    channels = dict(engine.channels)
    report = await asyncio.to_thread(run_retention, engine.db, channels, base_dir=engine.settings.base_dir,
                                     actor=actor, dry_run=body.dry_run)
    if report.failures:
        raise ArchiveIncomplete("; ".join(f"{f['channel']}: {f['error']}" for f in report.failures),
                                report=report.as_dict())
    return report.as_dict()


@router.post("/restore", summary="Put archived messages back into the store (for replay)")
async def archive_restore(body: RestoreBody, engine: EngineDep,
                          who: Principal = requires(Permission.ARCHIVES_WRITE)) -> Any:
    actor = who.actor
    result = await asyncio.to_thread(restore_archived, engine.db, actor=actor, reason=body.reason,
                                     archive_id=body.archive_id, control_id=body.control_id,
                                     patient_id=body.patient_id)
    return {"audit_event_id": result.audit_event_id, "restored": result.restored,
            "already_in_store": result.already_in_store, "archives": result.archives}
