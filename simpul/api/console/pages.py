"""The console's pages: the same permissions, operations and audit events as /api/v1, as HTML.

Every page declares its permission with `requires(...)` like an API route, so a viewer who opens
a message page gets the same 403 the API gives. Actions are HTML form POSTs carrying the
session's CSRF token, answered with a redirect (post/redirect/get). Searches are POSTs too, so a
patient id typed into the search form never ends up in a URL, a proxy log or the browser history.
"""
from __future__ import annotations

import asyncio
import difflib
import json
import time
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from simpul.access.passwords import hash_password
from simpul.access.principal import Principal
from simpul.access.roles import ROLES, Permission
from simpul.access.tokens import create_token, list_tokens, revoke_token
from simpul.access.users import create_user, list_users
from simpul.api.auth import requires
from simpul.api.console.hl7view import segments_of
from simpul.api.console.render import page
from simpul.api.deps import EngineDep, StoreDep
from simpul.api.messages import audit_search, audit_view
from simpul.dead_letters.audit import list_audit, record_audit, verify_chain
from simpul.dead_letters.controls import delivery_counts, destination_status, pause_destination, resume_destination
from simpul.dead_letters.discard import discard_dead_letters
from simpul.dead_letters.edits import edit_dead_letter
from simpul.dead_letters.query import DeadLetterFilter, search_dead_letters, show_dead_letter
from simpul.dead_letters.replay import execute_replay, plan_replay
from simpul.dead_letters.retention import archived_chain_heads
from simpul.engine.config.channels import load_channels
from simpul.engine.listeners import source_key
from simpul.engine.search import MessageQuery, search_messages, show_message
from simpul.errors import OperationRefused

router = APIRouter(prefix="/console", include_in_schema=False)


def _back(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


# ---- dashboard and destinations ------------------------------------------------------------------

@router.get("/")
async def dashboard(request: Request, engine: EngineDep, store: StoreDep,
                    who: Principal = requires(Permission.DASHBOARD_READ)) -> HTMLResponse:
    known = engine.known_destinations()
    rows = await store.read(lambda c: destination_status(c, known))
    counts = await store.read(delivery_counts)
    ports = engine.listener_ports()
    for row in rows:
        control = engine.delivery_control(row["channel"], row["destination"])
        if control is not None:
            row.update(in_downtime=control.in_downtime(), circuit=control.circuit_state)
        row["queued_total"] = sum(row["queued"].values())
        row["delivered"] = counts.get((row["channel"], row["destination"]), {}).get("delivered", 0)
    channels = []
    for name, runtime in sorted(engine.channels.items()):
        source = source_key(runtime.channel)
        first = runtime.channel.destinations[0].label if runtime.channel.destinations else ""
        channels.append({"name": name, "source": source, "port": ports.get(source),
                         "received": counts.get((name, first), {}).get("received", 0)})
    return page(request, "dashboard.html", who=who, destinations=rows, channels=channels,
                can_control=who.can(Permission.DESTINATIONS_WRITE), notice=request.query_params.get("done"))


@router.post("/destinations/{channel}/{destination}/{change}")
async def control_destination(channel: str, destination: str, change: str, engine: EngineDep, store: StoreDep,
                              reason: str = Form(...),
                              who: Principal = requires(Permission.DESTINATIONS_WRITE)) -> Response:
    operations = {"pause": pause_destination, "resume": resume_destination}
    if change not in operations:
        raise OperationRefused(f"no such change {change!r}: pause or resume")
    known = engine.known_destinations()
    await store.write(lambda c: operations[change](c, channel, destination, actor=who.actor, reason=reason,
                                                   known=known))
    if change == "resume":
        engine.wake_workers({(channel, destination)})
    return _back("/console/?done=" + ("paused" if change == "pause" else "resumed"))


# ---- messages ------------------------------------------------------------------------------------

def _moment(value: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise OperationRefused(f"'{value}' is not a date and time such as 2026-11-26T08:00") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


@router.get("/messages")
async def messages_page(request: Request, who: Principal = requires(Permission.MESSAGES_READ)) -> HTMLResponse:
    return page(request, "messages.html", who=who, q=MessageQuery(), results=None, elapsed=None)


@router.post("/messages")
async def messages_search(request: Request, store: StoreDep, control_id: str = Form(""), patient_id: str = Form(""),
                          message_type: str = Form(""), status: str = Form(""), since: str = Form(""),
                          until: str = Form(""), text: str = Form(""),
                          who: Principal = requires(Permission.MESSAGES_READ)) -> HTMLResponse:
    query = MessageQuery(control_id=control_id.strip() or None, patient_id=patient_id.strip() or None,
                         message_type=message_type.strip() or None, status=status or None,
                         since=_moment(since), until=_moment(until), text=text or None, limit=200)
    started = time.perf_counter()
    results = await store.read(lambda c: search_messages(c, query))
    elapsed = time.perf_counter() - started
    if results:
        await audit_search(store, who, query, len(results))
    return page(request, "messages.html", who=who, q=query, results=results, elapsed=elapsed, since=since,
                until=until)


@router.get("/messages/{message_id}")
async def message_page(request: Request, message_id: int, store: StoreDep,
                       who: Principal = requires(Permission.MESSAGES_READ)) -> HTMLResponse:
    found = await store.read(lambda c: show_message(c, message_id))
    await audit_view(store, who, message_id)
    return page(request, "message.html", who=who, m=found, segments=segments_of(found["raw"]))


# ---- dead letters ----------------------------------------------------------------------------------

@router.get("/dead-letters")
async def dead_letters_page(request: Request, store: StoreDep, status: str = "open",
                            who: Principal = requires(Permission.DEAD_LETTERS_READ)) -> HTMLResponse:
    query = DeadLetterFilter(status=status if status in ("open", "replayed", "discarded") else "open")
    found = await store.read(lambda c: search_dead_letters(c, query, limit=200))
    if found["items"]:
        await store.write(lambda c: record_audit(c, actor=who.actor, action="dead_letter.search",
                                                 target="dead_letters", reason=None, detail={"filter": {"status": status}}))
    return page(request, "dead_letters.html", who=who, page=found, shown=query.status)


@router.get("/dead-letters/{dead_letter_id}")
async def dead_letter_page(request: Request, dead_letter_id: int, store: StoreDep,
                           who: Principal = requires(Permission.DEAD_LETTERS_READ)) -> HTMLResponse:
    found = await store.read(lambda c: show_dead_letter(c, dead_letter_id))
    await store.write(lambda c: record_audit(c, actor=who.actor, action="dead_letter.view",
                                             target=f"dead_letters:{dead_letter_id}", reason=None, detail={}))
    return page(request, "dead_letter.html", who=who, x=found, can_write=who.can(Permission.DEAD_LETTERS_WRITE),
                notice=request.query_params.get("done"))


@router.post("/dead-letters/{dead_letter_id}/replay")
async def replay_one(dead_letter_id: int, engine: EngineDep, store: StoreDep, reason: str = Form(...),
                     who: Principal = requires(Permission.DEAD_LETTERS_WRITE)) -> Response:
    # The same guards as the CLI and the API: the plan refuses what it refuses there.
    query = DeadLetterFilter(ids=[dead_letter_id])
    channels = engine.channels
    result = await store.write(lambda c: execute_replay(c, plan_replay(c, query, channels, cap=1), actor=who.actor,
                                                        reason=reason))
    engine.wake_workers(result.touched)
    return _back(f"/console/dead-letters/{dead_letter_id}?done=replayed")


@router.post("/dead-letters/{dead_letter_id}/edit")
async def edit_and_replay(dead_letter_id: int, engine: EngineDep, store: StoreDep, message: str = Form(...),
                          reason: str = Form(...), who: Principal = requires(Permission.DEAD_LETTERS_WRITE)) -> Response:
    raw = message.replace("\r\n", "\r").replace("\n", "\r").encode("utf-8")
    channels = engine.channels
    await store.write(lambda c: edit_dead_letter(c, dead_letter_id, raw, actor=who.actor, reason=reason,
                                                 channels=channels))
    query = DeadLetterFilter(ids=[dead_letter_id])
    done = await store.write(lambda c: execute_replay(c, plan_replay(c, query, channels, cap=1), actor=who.actor,
                                                      reason=reason))
    engine.wake_workers(done.touched)
    return _back(f"/console/dead-letters/{dead_letter_id}?done=edited+and+replayed")


@router.post("/dead-letters/{dead_letter_id}/discard")
async def discard_one(dead_letter_id: int, engine: EngineDep, store: StoreDep, reason: str = Form(...),
                      who: Principal = requires(Permission.DEAD_LETTERS_WRITE)) -> Response:
    query = DeadLetterFilter(ids=[dead_letter_id])
    _count, touched = await store.write(lambda c: discard_dead_letters(c, query, actor=who.actor, reason=reason,
                                                                        cap=1))
    engine.wake_workers(touched)
    return _back(f"/console/dead-letters/{dead_letter_id}?done=discarded")


# ---- channels (with the diff of what reload would change) -----------------------------------------

def _channel_text(runtime_channel: Any) -> list[str]:
    dumped = runtime_channel.model_dump(mode="json", exclude_none=True)
    return json.dumps(dumped, indent=2, sort_keys=True).splitlines()


@router.get("/channels")
async def channels_page(request: Request, engine: EngineDep,
                        who: Principal = requires(Permission.CHANNELS_READ)) -> HTMLResponse:
    settings = engine.settings
    loaded, _findings = await asyncio.to_thread(load_channels, [settings.channels_path()],
                                                relative_to=settings.base_dir)
    on_disk = {item.channel.name: item.channel for item in loaded}
    found = []
    for name, runtime in sorted(engine.channels.items()):
        disk = on_disk.get(name)
        diff = None if disk is None else "\n".join(difflib.unified_diff(
            _channel_text(runtime.channel), _channel_text(disk), "running", "on disk", lineterm=""))
        found.append({"name": name, "description": runtime.channel.description, "path": str(runtime.path),
                      "diff": diff})
    return page(request, "channels.html", who=who, channels=found)


# ---- audit -------------------------------------------------------------------------------------------

@router.get("/audit")
async def audit_page(request: Request, store: StoreDep, who: Principal = requires(Permission.AUDIT_READ)) -> HTMLResponse:
    events = await store.read(lambda c: list_audit(c, limit=200))
    report = await store.read(lambda c: verify_chain(c, archived_chain_heads(c)))
    return page(request, "audit.html", who=who, events=events, report=report)


# ---- users and tokens (admins) ---------------------------------------------------------------------

async def _users_page(request: Request, store: Any, who: Principal, **extra: Any) -> HTMLResponse:
    users = await store.read(list_users)
    tokens = await store.read(list_tokens)
    return page(request, "users.html", who=who, users=users, tokens=tokens, roles=list(ROLES), **extra)


@router.get("/users")
async def users_page(request: Request, store: StoreDep, who: Principal = requires(Permission.USERS_ADMIN)) -> HTMLResponse:
    return await _users_page(request, store, who, notice=request.query_params.get("done"))


@router.post("/users")
async def users_create(store: StoreDep, name: str = Form(...), role: str = Form(...), password: str = Form(...),
                       who: Principal = requires(Permission.USERS_ADMIN)) -> Response:
    password_hash = await asyncio.to_thread(hash_password, password)
    await store.write(lambda c: create_user(c, name=name, role=role, password_hash=password_hash, actor=who.actor))
    return _back("/console/users?done=user+created")


@router.post("/tokens")
async def tokens_create(request: Request, store: StoreDep, name: str = Form(...), role: str = Form(...),
                        scope: str = Form(""), expires_in_days: float = Form(90),
                        who: Principal = requires(Permission.USERS_ADMIN)) -> HTMLResponse:
    issued = await store.write(lambda c: create_token(c, name=name, role=role, scope=scope,
                                                      lifetime=expires_in_days * 86400, actor=who.actor))
    # Rendered, not redirected: the token is in this one answer (no-store) and nowhere else.
    return await _users_page(request, store, who, new_token=issued.token)


@router.post("/tokens/{token_id}/revoke")
async def tokens_revoke(token_id: str, store: StoreDep, who: Principal = requires(Permission.USERS_ADMIN)) -> Response:
    await store.write(lambda c: revoke_token(c, token_id, actor=who.actor))
    return _back("/console/users?done=token+revoked")
