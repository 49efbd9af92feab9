"""/destinations: status, queue, pause and resume (persisted in the store, so they survive restarts)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from simpul.access.principal import Principal
from simpul.access.roles import Permission
from simpul.api.auth import requires
from simpul.api.deps import EngineDep, Store, StoreDep
from simpul.dead_letters.controls import destination_status, pause_destination, queued_deliveries, resume_destination
from simpul.engine.runtime import Engine

router = APIRouter(prefix="/destinations", tags=["destinations"])


class ControlBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(description="Why; required.")


@router.get("", summary="Per destination: paused, queue by status, oldest age, next attempt, downtime, circuit")
async def list_destinations(engine: EngineDep, store: StoreDep,
                            _: Principal = requires(Permission.DASHBOARD_READ)) -> Any:
    known = engine.known_destinations()
    rows = await store.read(lambda c: destination_status(c, known))
    for row in rows:
        control = engine.delivery_control(row["channel"], row["destination"])
        if control is not None:
            row.update(in_downtime=control.in_downtime(), circuit=control.circuit_state)
    return rows


@router.get("/{channel}/{destination}/queue", summary="Why each delivery waits, in claim order")
async def queue(store: StoreDep, channel: str, destination: str, limit: int = Query(50, ge=1, le=1000),
                offset: int = Query(0, ge=0), _: Principal = requires(Permission.DEAD_LETTERS_READ)) -> Any:
    return await store.read(lambda c: queued_deliveries(c, channel, destination, limit=limit, offset=offset))


async def _control(change: Callable[..., int], engine: Engine, store: Store, channel: str, destination: str,
                   reason: str, actor: str) -> int:
    """Write one pause/resume control row (refused for a destination no channel has); its audit event id."""
    known = engine.known_destinations()
    audit_id: int = await store.write(lambda c: change(c, channel, destination, actor=actor, reason=reason,
                                                       known=known))
    return audit_id


@router.post("/{channel}/{destination}/pause", summary="Pause one destination (persisted)")
async def pause(channel: str, destination: str, body: ControlBody, engine: EngineDep, store: StoreDep,
                who: Principal = requires(Permission.DESTINATIONS_WRITE)) -> Any:
    audit_id = await _control(pause_destination, engine, store, channel, destination, body.reason, who.actor)
    return {"paused": True, "audit_event_id": audit_id}


@router.post("/{channel}/{destination}/resume", summary="Resume one destination; its queue drains in order")
async def resume(channel: str, destination: str, body: ControlBody, engine: EngineDep, store: StoreDep,
                 who: Principal = requires(Permission.DESTINATIONS_WRITE)) -> Any:
    audit_id = await _control(resume_destination, engine, store, channel, destination, body.reason, who.actor)
    engine.wake_workers({(channel, destination)})
    return {"paused": False, "audit_event_id": audit_id}
