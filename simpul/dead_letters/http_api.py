"""HTTP API for dead letters, replay, destinations and the audit trail (under /api).

Writes need an `X-Simpul-Actor` header naming who acts (real users arrive with the console's
authentication); without it they answer 400. Refusals are 409 problem documents that carry the
preview, so a client sees why. There is no route that changes or deletes an audit event.
Batch replay is two calls: without `"confirm": true` the answer is only the preview.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from simpul.dead_letters.audit import list_audit
from simpul.dead_letters.controls import (
    destination_status, pause_destination, queued_deliveries, resume_destination,
)
from simpul.dead_letters.discard import discard_dead_letters
from simpul.dead_letters.edits import edit_dead_letter
from simpul.dead_letters.query import DeadLetterFilter, count_dead_letters, search_dead_letters, show_dead_letter
from simpul.dead_letters.replay import DEFAULT_CAP, execute_replay, plan_replay
from simpul.dead_letters.retention import find_archived, list_archives, restore_archived, run_retention
from simpul.errors import ConfigError, OperationRefused, StoreError

if TYPE_CHECKING:
    from simpul.engine.runtime import Engine

ACTOR_HEADER = "X-Simpul-Actor"


def _problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


class Selection(BaseModel):
    """Which dead letters: ids, or a filter (the same fields as the list endpoint)."""

    model_config = ConfigDict(extra="forbid")
    ids: list[int] = Field(default_factory=list, description="Dead letter ids.")
    channel: str | None = None
    destination: str | None = None
    status: Literal["open", "replayed", "discarded"] | None = Field(
        None, description="Default for replay and discard: open (any status when ids are given to replay).")
    error: str | None = Field(None, description="Text in the error class or message.")
    patient_id: str | None = None
    control_id: str | None = None
    message_type: str | None = Field(None, description="MSH-9, e.g. ORU^R01 or ADT^*.")
    since: float | None = Field(None, description="Unix seconds.")
    until: float | None = Field(None, description="Unix seconds.")

    def to_filter(self) -> DeadLetterFilter:
        return DeadLetterFilter(**self.model_dump(include=set(Selection.model_fields)))


class ReplayBody(Selection):
    to_destination: str | None = Field(None, description="Another destination label of the channel "
                                                         "(e.g. a shadow/test endpoint).")
    dry_run: bool = Field(False, description="Map and preview; send nothing.")
    max: int = Field(DEFAULT_CAP, ge=1, description="Refuse when more dead letters match than this.")
    confirm: bool = Field(False, description="Without it the answer is the preview only.")
    reason: str | None = Field(None, description="Why; required to execute.")


class DiscardBody(Selection):
    max: int = Field(DEFAULT_CAP, ge=1)
    reason: str = Field(description="Why; required.")


class EditBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    message: str = Field(description="The corrected HL7v2 message (segments separated by CR or LF).")
    encoding: str = Field("utf-8", description="How to turn `message` into bytes (use the MSH-18 charset).")
    reason: str = Field(description="Why; required.")
    replay: bool = Field(False, description="Queue the edited message right away.")


class ArchiveRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dry_run: bool = Field(False, description="Count what would be archived and removed; change nothing.")


class RestoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    archive_id: int | None = Field(None, description="Restore every message of this archive.")
    control_id: str | None = Field(None, description="MSH-10 of the message(s) to restore.")
    patient_id: str | None = Field(None, description="PID-3 identifier of the patient whose messages to restore.")
    reason: str = Field(description="Why; required (kept in the audit trail).")


class ControlBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(description="Why; required.")


def _actor(actor: str | None) -> str:
    if not actor or not actor.strip():
        raise OperationRefused(f"the {ACTOR_HEADER} header is required for changes")
    return actor.strip()


def create_router(engine: "Engine") -> APIRouter:
    router = APIRouter(prefix="/api", tags=["dead letters and delivery control"])

    def known() -> set[tuple[str, str]]:
        return {(name, d.label) for name, runtime in engine.channels.items() for d in runtime.channel.destinations}

    def wake(touched: set[tuple[str, str]]) -> None:
        for key in touched:
            entry = engine.workers.get(key)
            if entry is not None:
                entry[1].wake.set()

    async def write(fn: Any) -> Any:
        assert engine.writer is not None
        return await engine.writer.run(fn, durable=True)   # a person did this: wait for the disk

    async def control(change: Any, channel: str, destination: str, reason: str, actor_header: str | None) -> int:
        """Write one pause/resume control row; returns its audit event id."""
        actor = _actor(actor_header)
        keys = known()
        return await write(lambda c: change(c, channel, destination, actor=actor, reason=reason, known=keys))

    @router.get("/dead-letters", summary="List and search dead letters (newest first, paginated)")
    async def list_dead_letters(channel: str | None = None, destination: str | None = None,
                                status: str | None = None, error: str | None = None, patient_id: str | None = None,
                                control_id: str | None = None, message_type: str | None = None,
                                since: float | None = None, until: float | None = None,
                                limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0)) -> Any:
        query = DeadLetterFilter(channel=channel, destination=destination, status=status, error=error,
                                 patient_id=patient_id, control_id=control_id, message_type=message_type,
                                 since=since, until=until)
        return await engine.read(lambda c: search_dead_letters(c, query, limit=limit, offset=offset))

    @router.get("/dead-letters/counts", summary="Counts per channel/destination/error")
    async def counts(by: str = Query("channel,destination", description="Comma list of channel, destination, "
                                     "error_class, stage, status, message_type."),
                     status: str | None = "open", channel: str | None = None) -> Any:
        query = DeadLetterFilter(status=status, channel=channel)
        return await engine.read(lambda c: count_dead_letters(c, query, [b.strip() for b in by.split(",")]))

    @router.get("/dead-letters/{dead_letter_id}", summary="One dead letter: bytes, attempts, edits, replays")
    async def show(dead_letter_id: int) -> Any:
        try:
            return await engine.read(lambda c: show_dead_letter(c, dead_letter_id))
        except OperationRefused as exc:
            return _problem(404, "Not found", str(exc))

    @router.post("/dead-letters/replay", summary="Preview, or (with confirm and reason) execute, a replay")
    async def replay(body: ReplayBody, x_simpul_actor: str | None = Header(None)) -> Any:
        query = body.to_filter()
        channels = engine.channels
        plan = await engine.read(lambda c: plan_replay(c, query, channels, to_destination=body.to_destination,
                                                       cap=body.max))
        preview = plan.preview()
        if body.dry_run or not body.confirm:
            return {"executed": False, "dry_run": body.dry_run, "preview": preview}
        if plan.over_cap:
            return _problem(409, "Replay over the cap", f"{plan.matched} dead letters match, above the cap of "
                            f"{body.max}; narrow the filter or raise max explicitly", preview=preview)
        actor = _actor(x_simpul_actor)
        result = await write(lambda c: execute_replay(
            c, plan_replay(c, query, channels, to_destination=body.to_destination, cap=body.max),
            actor=actor, reason=body.reason or ""))
        wake(result.touched)
        return {"executed": True, "audit_event_id": result.audit_event_id, "delivery_ids": result.delivery_ids,
                "skipped": result.skipped, "preview": preview}

    @router.post("/dead-letters/{dead_letter_id}/edit", summary="Store corrected bytes (optionally replay them)")
    async def edit(dead_letter_id: int, body: EditBody, x_simpul_actor: str | None = Header(None)) -> Any:
        actor = _actor(x_simpul_actor)
        try:
            raw = body.message.encode(body.encoding)
        except (LookupError, UnicodeEncodeError) as exc:
            raise OperationRefused(f"cannot encode the message as {body.encoding}: {type(exc).__name__}") from None
        channels = engine.channels
        result = await write(lambda c: edit_dead_letter(c, dead_letter_id, raw, actor=actor, reason=body.reason,
                                                        channels=channels))
        answer: dict[str, Any] = {"edit_id": result.edit_id, "audit_event_id": result.audit_event_id,
                                  "mapped": result.mapped}
        if body.replay:
            query = DeadLetterFilter(ids=[dead_letter_id])
            done = await write(lambda c: execute_replay(c, plan_replay(c, query, channels, cap=1), actor=actor,
                                                        reason=body.reason))
            wake(done.touched)
            answer["replay"] = {"audit_event_id": done.audit_event_id, "delivery_ids": done.delivery_ids}
        return answer

    @router.post("/dead-letters/discard", summary="Close dead letters without sending (kept, searchable)")
    async def discard(body: DiscardBody, x_simpul_actor: str | None = Header(None)) -> Any:
        actor = _actor(x_simpul_actor)
        query = body.to_filter()
        count, touched = await write(lambda c: discard_dead_letters(c, query, actor=actor, reason=body.reason,
                                                                    cap=body.max))
        wake(touched)
        return {"discarded": count}

    @router.get("/destinations", summary="Per destination: paused, queue by status, oldest age, next attempt")
    async def destinations() -> Any:
        keys = known()
        rows = await engine.read(lambda c: destination_status(c, keys))
        for row in rows:
            entry = engine.workers.get((row["channel"], row["destination"]))
            if entry is not None:
                control = entry[1].control
                row.update(in_downtime=control.in_downtime(), circuit=control.circuit_state)
        return rows

    @router.get("/destinations/{channel}/{destination}/queue", summary="Why each delivery waits, in claim order")
    async def queue(channel: str, destination: str, limit: int = Query(50, ge=1, le=1000),
                    offset: int = Query(0, ge=0)) -> Any:
        return await engine.read(lambda c: queued_deliveries(c, channel, destination, limit=limit, offset=offset))

    @router.post("/destinations/{channel}/{destination}/pause", summary="Pause one destination (persisted)")
    async def pause(channel: str, destination: str, body: ControlBody,
                    x_simpul_actor: str | None = Header(None)) -> Any:
        audit_id = await control(pause_destination, channel, destination, body.reason, x_simpul_actor)
        return {"paused": True, "audit_event_id": audit_id}

    @router.post("/destinations/{channel}/{destination}/resume", summary="Resume one destination")
    async def resume(channel: str, destination: str, body: ControlBody,
                     x_simpul_actor: str | None = Header(None)) -> Any:
        audit_id = await control(resume_destination, channel, destination, body.reason, x_simpul_actor)
        wake({(channel, destination)})
        return {"paused": False, "audit_event_id": audit_id}

    @router.get("/audit-events", summary="The audit trail (read-only; newest first)")
    async def audit(action: str | None = None, actor: str | None = None, since: float | None = None,
                    until: float | None = None, limit: int = Query(100, ge=1, le=1000),
                    offset: int = Query(0, ge=0)) -> Any:
        return await engine.read(lambda c: list_audit(c, action=action, actor=actor, since=since, until=until,
                                                      limit=limit, offset=offset))

    @router.get("/archives", summary="Archive files, newest first (no patient data)")
    async def archives(channel: str | None = None, limit: int = Query(50, ge=1, le=1000),
                       offset: int = Query(0, ge=0)) -> Any:
        return await engine.read(lambda c: list_archives(c, channel=channel, limit=limit, offset=offset))

    @router.get("/archives/entries", summary="Archived messages by control id or patient id (the archive index)")
    async def archive_entries(control_id: str | None = None, patient_id: str | None = None,
                              archive_id: int | None = None, limit: int = Query(100, ge=1, le=10000)) -> Any:
        return await engine.read(lambda c: find_archived(c, control_id=control_id, patient_id=patient_id,
                                                         archive_id=archive_id, limit=limit))

    @router.post("/archives/run", summary="One retention pass now: archive (fsynced), then remove from the store")
    async def archive_run(body: ArchiveRunBody, x_simpul_actor: str | None = Header(None)) -> Any:
        actor = "dry-run" if body.dry_run and not x_simpul_actor else _actor(x_simpul_actor)
        channels = dict(engine.channels)
        report = await asyncio.to_thread(run_retention, engine.db, channels, base_dir=engine.settings.base_dir,
                                         actor=actor, dry_run=body.dry_run)
        if report.failures:
            return _problem(503, "Archive incomplete", "; ".join(f"{f['channel']}: {f['error']}"
                                                                 for f in report.failures), report=report.as_dict())
        return report.as_dict()

    @router.post("/archives/restore", summary="Put archived messages back into the store (for replay)")
    async def archive_restore(body: RestoreBody, x_simpul_actor: str | None = Header(None)) -> Any:
        actor = _actor(x_simpul_actor)
        try:
            result = await asyncio.to_thread(restore_archived, engine.db, actor=actor, reason=body.reason,
                                             archive_id=body.archive_id, control_id=body.control_id,
                                             patient_id=body.patient_id)
        except (StoreError, ConfigError) as exc:
            return _problem(503, "Archive unreadable", str(exc))
        return {"audit_event_id": result.audit_event_id, "restored": result.restored,
                "already_in_store": result.already_in_store, "archives": result.archives}

    return router


def install(app: Any, engine: "Engine") -> None:
    """Add the router and turn refusals into 409 problem documents (400 for a missing actor)."""
    app.include_router(create_router(engine))

    @app.exception_handler(OperationRefused)
    async def _refused(_request: Request, exc: OperationRefused) -> JSONResponse:
        status = 400 if ACTOR_HEADER in str(exc) else 409
        return _problem(status, "Refused", str(exc))
