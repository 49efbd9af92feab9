"""Logging in and out of the console: password, throttling, second factor (TOTP or WebAuthn).

1. GET /console/login sets a login CSRF cookie and shows the form (the form carries the same
   value: a cross-site page cannot read the cookie, so it cannot forge the pair).
2. POST /console/login: refused while the user name or the address has too many recent failures
   (429); the password is checked with argon2 outside any store transaction; every failure and
   every login is an audit event. A good password opens a session.
3. When the user has a second factor, or must have one (`auth.require_mfa` and a role that sees
   patient data), the session is *pending*: only /console/login/totp and the WebAuthn endpoints
   accept it until the factor is passed (or, for a user without one, enrolled).
"""
from __future__ import annotations

import asyncio
import hmac
import secrets
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from simpul.access.passwords import dummy_hash, verify_password
from simpul.access.roles import sees_patient_data
from simpul.access.sessions import Session, close_session, mark_second_factor, open_session, set_challenge
from simpul.access.totp import matching_step, new_secret, provisioning_uri
from simpul.access.users import (
    Throttle, clear_failures, get_user, login_candidate, record_failed_login, throttled, update_user, use_totp_step,
)
from simpul.api.auth import (
    SECURE_SESSION_COOKIE, SESSION_COOKIE, client_address, current_session, public, second_factor_pending,
)
from simpul.api.console.render import page
from simpul.api.deps import StoreDep
from simpul.dead_letters.audit import Actor, record_audit
from simpul.engine.runtime import Engine
from simpul.errors import LoginThrottled

router = APIRouter(prefix="/console", include_in_schema=False)

LOGIN_CSRF_COOKIE = "simpul_login_csrf"


def _secure(request: Request) -> bool:
    engine: Engine = request.app.state.engine
    mode = engine.settings.auth.secure_cookies
    return mode == "always" or (mode == "auto" and request.url.scheme == "https")


def _limits(engine: Engine) -> Throttle:
    auth = engine.settings.auth
    return Throttle(auth.max_failures_per_user, auth.max_failures_per_client, auth.failure_window)


def _login_form(request: Request, *, status: int = 200, error: str | None = None) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    response = page(request, "login.html", status=status, error=error, csrf_token=token)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request),
                        path="/console/login")
    return response


@router.get("/login", dependencies=[public()])
async def login_page(request: Request) -> HTMLResponse:
    return _login_form(request)


@router.post("/login", dependencies=[public()])
async def login(request: Request, store: StoreDep, username: str = Form(""), password: str = Form(""),
                csrf_token: str = Form("")) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf_token):
        return _login_form(request, status=403, error="The form expired; please log in again.")
    engine: Engine = request.app.state.engine
    client = client_address(request)
    name = username.strip()[:120]
    why = await store.read(lambda c: throttled(c, name, client, _limits(engine)))
    if why:
        await store.write(lambda c: record_audit(c, actor=name or "?", action="login.failed", target=f"users:{name}",
                                                 reason=why, detail={"throttled": True}, role="", client=client))
        raise LoginThrottled(why)
    user = await store.read(lambda c: login_candidate(c, name))
    # Verified against a dummy hash when the name is unknown: the answer takes as long either way.
    good = await asyncio.to_thread(verify_password, user.password_hash if user else dummy_hash(), password)
    if user is None or not good:
        await store.write(lambda c: record_failed_login(c, name, client, "wrong user name or password"))
        return _login_form(request, status=401, error="Wrong user name or password.")
    lifetime = engine.settings.auth.session_lifetime

    def opened(connection: Any) -> tuple[str, str]:
        clear_failures(connection, user.name)
        opened_session = open_session(connection, user.id, client, lifetime)
        record_audit(connection, actor=Actor(user.name, role=user.role, client=client), action="login",
                     target=f"users:{user.name}", reason=None, detail={"second_factor_pending": needs_factor})
        return opened_session

    needs_factor = user.has_second_factor or (engine.settings.auth.require_mfa and sees_patient_data(user.role))
    cookie, _csrf = await store.write(opened)
    target = "/console/login/totp" if needs_factor else "/console/"
    response = RedirectResponse(target, status_code=303)
    secure = _secure(request)
    response.set_cookie(SECURE_SESSION_COOKIE if secure else SESSION_COOKIE, cookie, httponly=True,
                        samesite="strict", secure=secure, path="/", max_age=int(lifetime))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


async def _pending(request: Request, store: Any) -> Session | None:
    session = await current_session(request, store)
    return session if session is not None and second_factor_pending(request, session) else None


@router.get("/login/totp", dependencies=[public()])
async def second_factor_page(request: Request, store: StoreDep) -> Response:
    session = await _pending(request, store)
    if session is None:
        return RedirectResponse("/console/", status_code=303)
    user = await store.read(lambda c: get_user(c, session.user_id))
    context: dict[str, Any] = {"has_totp": bool(user.totp_secret), "has_webauthn": user.webauthn_credentials > 0}
    if not user.has_second_factor:
        # Enrolment: the secret waits in the session until a code proves the app has it.
        secret = session.challenge if session.challenge and session.challenge.startswith("totp:") else None
        if secret is None:
            secret = "totp:" + new_secret()
            await store.write(lambda c: set_challenge(c, session.id, secret))
        context.update(enrol_secret=secret[5:], enrol_uri=provisioning_uri(secret[5:], user.name))
    return page(request, "second_factor.html", csrf_token=session.csrf_token, **context)


@router.post("/login/totp", dependencies=[public()])
async def second_factor(request: Request, store: StoreDep, code: str = Form(""), csrf_token: str = Form("")) -> Response:
    session = await _pending(request, store)
    if session is None or not hmac.compare_digest(csrf_token, session.csrf_token):
        return RedirectResponse("/console/login", status_code=303)
    engine: Engine = request.app.state.engine
    client = client_address(request)
    why = await store.read(lambda c: throttled(c, session.user_name, client, _limits(engine)))
    if why:
        raise LoginThrottled(why)
    user = await store.read(lambda c: get_user(c, session.user_id))
    enrolling = None
    if user.totp_secret:
        step = matching_step(user.totp_secret, code)
    else:
        enrolling = session.challenge[5:] if session.challenge and session.challenge.startswith("totp:") else None
        step = matching_step(enrolling, code) if enrolling is not None else None
    actor = Actor(user.name, role=user.role, client=client)

    def passed(connection: Any) -> bool:
        if enrolling:
            update_user(connection, user.name, actor=actor, totp_secret=enrolling)
        if step is None or not use_totp_step(connection, user.id, step):
            return False            # wrong, or a code already used (replayed)
        mark_second_factor(connection, session.id, "totp")
        record_audit(connection, actor=actor, action="login.second_factor", target=f"users:{user.name}",
                     reason=None, detail={"factor": "totp", "enrolled": bool(enrolling)})
        return True

    if step is None or not await store.write(passed):
        await store.write(lambda c: record_failed_login(c, user.name, client, "wrong or already used code"))
        response = await second_factor_page(request, store)
        response.status_code = 401
        return response
    return RedirectResponse("/console/", status_code=303)


@router.post("/logout", dependencies=[public()])
async def logout(request: Request, store: StoreDep, csrf_token: str = Form("")) -> Response:
    session = await current_session(request, store)
    if session is not None and hmac.compare_digest(csrf_token, session.csrf_token):
        actor = Actor(session.user_name, role=session.role, client=client_address(request))

        def closed(connection: Any) -> None:
            close_session(connection, session.id)
            record_audit(connection, actor=actor, action="logout", target=f"users:{session.user_name}",
                         reason=None, detail={})

        await store.write(closed)
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(SECURE_SESSION_COOKIE, path="/", secure=True)
    return response
