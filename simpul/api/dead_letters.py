"""/dead-letters: find, show, replay, edit and discard dead letters.

Batch replay is two calls: without `"confirm": true` the answer is only the preview. The audit
trail names the authenticated caller; refusals are 409 problem documents (an over-cap replay
carries the preview). Lists and bodies show patient data: each one that does is an audit event.
"""
from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from simpul.access.principal import Principal
from simpul.access.roles import Permission
from simpul.api.auth import requires
from simpul.api.deps import EngineDep, StoreDep
from simpul.dead_letters.audit import record_audit
from simpul.dead_letters.discard import discard_dead_letters
from simpul.dead_letters.edits import edit_dead_letter
from simpul.dead_letters.query import DeadLetterFilter, count_dead_letters, search_dead_letters, show_dead_letter
from simpul.dead_letters.replay import DEFAULT_CAP, execute_replay, plan_replay
from simpul.errors import OperationRefused, ReplayOverCap

router = APIRouter(prefix="/dead-letters", tags=["dead letters"])


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


@router.get("", summary="List and search dead letters (newest first, paginated)")
async def list_dead_letters(store: StoreDep, channel: str | None = None, destination: str | None = None,
                            status: str | None = None, error: str | None = None, patient_id: str | None = None,
                            control_id: str | None = None, message_type: str | None = None,
                            since: float | None = None, until: float | None = None,
                            limit: int = Query(50, ge=1, le=1000), offset: int = Query(0, ge=0),
                            who: Principal = requires(Permission.DEAD_LETTERS_READ)) -> Any:
    query = DeadLetterFilter(channel=channel, destination=destination, status=status, error=error,
                             patient_id=patient_id, control_id=control_id, message_type=message_type,
                             since=since, until=until)
    found = await store.read(lambda c: search_dead_letters(c, query, limit=limit, offset=offset))
    if found["items"]:
        criteria = {k: v for k, v in vars(query).items() if v not in (None, [], "")}
        await store.write(lambda c: record_audit(c, actor=who.actor, action="dead_letter.search", target="dead_letters",
                                                 reason=None, detail={"filter": criteria, "offset": offset}))
    return found


@router.get("/counts", summary="Counts per channel/destination/error")
async def counts(store: StoreDep, by: str = Query("channel,destination", description="Comma list of channel, "
                                                  "destination, error_class, stage, status, message_type."),
                 status: str | None = "open", channel: str | None = None,
                 _: Principal = requires(Permission.DASHBOARD_READ)) -> Any:
    query = DeadLetterFilter(status=status, channel=channel)
    return await store.read(lambda c: count_dead_letters(c, query, [b.strip() for b in by.split(",")]))


@router.get("/{dead_letter_id}", summary="One dead letter: bytes, attempts, edits, replays")
async def show(store: StoreDep, dead_letter_id: int, who: Principal = requires(Permission.DEAD_LETTERS_READ)) -> Any:
    found = await store.read(lambda c: show_dead_letter(c, dead_letter_id))
    await store.write(lambda c: record_audit(c, actor=who.actor, action="dead_letter.view",
                                             target=f"dead_letters:{dead_letter_id}", reason=None, detail={}))
    return found


@router.post("/replay", summary="Preview, or (with confirm and reason) execute, a replay")
async def replay(body: ReplayBody, engine: EngineDep, store: StoreDep,
                 who: Principal = requires(Permission.DEAD_LETTERS_WRITE)) -> Any:
    query = body.to_filter()
    channels = engine.channels
    plan = await store.read(lambda c: plan_replay(c, query, channels, to_destination=body.to_destination,
                                                  cap=body.max))
    preview = plan.preview()
    if body.dry_run or not body.confirm:
        return {"executed": False, "dry_run": body.dry_run, "preview": preview}
    if plan.over_cap:
        raise ReplayOverCap(f"{plan.matched} dead letters match, above the cap of {body.max}; narrow the filter "
                            "or raise max explicitly", preview=preview)
    actor = who.actor
    result = await store.write(lambda c: execute_replay(
        c, plan_replay(c, query, channels, to_destination=body.to_destination, cap=body.max),
        actor=actor, reason=body.reason or ""))
    engine.wake_workers(result.touched)
    return {"executed": True, "audit_event_id": result.audit_event_id, "delivery_ids": result.delivery_ids,
            "skipped": result.skipped, "preview": preview}


@router.post("/{dead_letter_id}/edit", summary="Store corrected bytes (optionally replay them)")
async def edit(dead_letter_id: int, body: EditBody, engine: EngineDep, store: StoreDep,
               who: Principal = requires(Permission.DEAD_LETTERS_WRITE)) -> Any:
    actor = who.actor
    try:
        raw = body.message.encode(body.encoding)
    except (LookupError, UnicodeEncodeError) as exc:
        raise OperationRefused(f"cannot encode the message as {body.encoding}: {type(exc).__name__}") from None
    channels = engine.channels
    result = await store.write(lambda c: edit_dead_letter(c, dead_letter_id, raw, actor=actor, reason=body.reason,
                                                          channels=channels))
    answer: dict[str, Any] = {"edit_id": result.edit_id, "audit_event_id": result.audit_event_id,
                              "mapped": result.mapped}
    if body.replay:
        query = DeadLetterFilter(ids=[dead_letter_id])
        done = await store.write(lambda c: execute_replay(c, plan_replay(c, query, channels, cap=1), actor=actor,
                                                          reason=body.reason))
        engine.wake_workers(done.touched)
        answer["replay"] = {"audit_event_id": done.audit_event_id, "delivery_ids": done.delivery_ids}
    return answer


@router.post("/discard", summary="Close dead letters without sending (kept, searchable)")
async def discard(body: DiscardBody, engine: EngineDep, store: StoreDep,
                  who: Principal = requires(Permission.DEAD_LETTERS_WRITE)) -> Any:
    actor = who.actor
    query = body.to_filter()
    count, touched = await store.write(lambda c: discard_dead_letters(c, query, actor=actor, reason=body.reason,
                                                                      cap=body.max))
    engine.wake_workers(touched)
    return {"discarded": count}
