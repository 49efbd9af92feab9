"""Security keys (WebAuthn) in the console: JSON endpoints that static/webauthn.js calls.

Registering needs a fully logged-in session (any role); using a key is the second step of a
login, so those two endpoints take the *pending* session and check its CSRF header themselves.
The relying party id is `auth.webauthn_rp_id` or the host the browser used (a host name such as
localhost or simpul.rs.example: WebAuthn does not accept an IP address).
"""
from __future__ import annotations

import hmac
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from simpul.access import webauthn as keys
from simpul.access.principal import Principal
from simpul.access.roles import Permission
from simpul.access.sessions import get_challenge, mark_second_factor, set_challenge
from simpul.api.auth import CSRF_HEADER, client_address, current_session, public, requires, second_factor_pending
from simpul.api.deps import StoreDep
from simpul.dead_letters.audit import Actor, record_audit
from simpul.engine.runtime import Engine
from simpul.errors import NotAuthenticated, OperationRefused

router = APIRouter(prefix="/console/webauthn", include_in_schema=False)


def relying_party(request: Request) -> tuple[str, str]:
    engine: Engine = request.app.state.engine
    auth = engine.settings.auth
    rp_id = auth.webauthn_rp_id or (request.url.hostname or "")
    origin = auth.webauthn_origin or f"{request.url.scheme}://{request.url.netloc}"
    return rp_id, origin


def _options(text: str) -> Response:
    return Response(text, media_type="application/json")


@router.post("/register/options")
async def register_options(request: Request, store: StoreDep,
                           who: Principal = requires(Permission.DASHBOARD_READ)) -> Response:
    if who.user_id is None or who.session_id is None:
        raise OperationRefused("security keys belong to console users, not to tokens")
    rp_id, _ = relying_party(request)
    user_id, session_id = who.user_id, who.session_id

    def prepared(connection: Any) -> str:
        options, challenge = keys.registration_options(connection, user_id=user_id, user_name=who.name, rp_id=rp_id)
        set_challenge(connection, session_id, "webauthn-register:" + challenge)
        return options

    return _options(await store.write(prepared))


@router.post("/register")
async def register(request: Request, store: StoreDep, who: Principal = requires(Permission.DASHBOARD_READ)) -> Any:
    if who.user_id is None or who.session_id is None:
        raise OperationRefused("security keys belong to console users, not to tokens")
    credential = json.loads(await request.body())
    rp_id, origin = relying_party(request)
    user_id, session_id = who.user_id, who.session_id

    def registered(connection: Any) -> str:
        challenge = get_challenge(connection, session_id, "webauthn-register:")
        credential_id = keys.register(connection, user_id=user_id, credential=credential, challenge=challenge,
                                      rp_id=rp_id, origin=origin)
        set_challenge(connection, session_id, None)
        record_audit(connection, actor=who.actor, action="mfa.enrol", target=f"users:{who.name}", reason=None,
                     detail={"factor": "webauthn", "credential_id": credential_id[:16]})
        return credential_id

    return {"registered": await store.write(registered)}


async def _pending_with_csrf(request: Request, store: Any) -> Any:
    session = await current_session(request, store)
    if session is None or not second_factor_pending(request, session):
        raise NotAuthenticated("no login waiting for its second factor")
    if not hmac.compare_digest(request.headers.get(CSRF_HEADER, ""), session.csrf_token):
        raise NotAuthenticated("missing or wrong CSRF token")
    return session


@router.post("/login/options", dependencies=[public()])
async def login_options(request: Request, store: StoreDep) -> Response:
    session = await _pending_with_csrf(request, store)
    rp_id, _ = relying_party(request)

    def prepared(connection: Any) -> str:
        options, challenge = keys.authentication_options(connection, user_id=session.user_id, rp_id=rp_id)
        set_challenge(connection, session.id, "webauthn-login:" + challenge)
        return options

    return _options(await store.write(prepared))


@router.post("/login", dependencies=[public()])
async def login(request: Request, store: StoreDep) -> JSONResponse:
    session = await _pending_with_csrf(request, store)
    credential = json.loads(await request.body())
    rp_id, origin = relying_party(request)
    actor = Actor(session.user_name, role=session.role, client=client_address(request))

    def passed(connection: Any) -> None:
        challenge = get_challenge(connection, session.id, "webauthn-login:")
        keys.authenticate(connection, user_id=session.user_id, credential=credential, challenge=challenge,
                          rp_id=rp_id, origin=origin)
        mark_second_factor(connection, session.id, "webauthn")
        record_audit(connection, actor=actor, action="login.second_factor", target=f"users:{session.user_name}",
                     reason=None, detail={"factor": "webauthn"})

    await store.write(passed)
    return JSONResponse({"next": "/console/"})
