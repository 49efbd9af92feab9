"""Who is calling, and may they: the one place the HTTP app authenticates and authorises.

Every /api/v1 route and console page declares the permission it needs, in one line:

    @router.get("/messages/{message_id}")
    async def show(message_id: int, who: Principal = requires(Permission.MESSAGES_READ)) -> Any: ...

or, when the route does not use the caller, `dependencies=[requires(Permission.DASHBOARD_READ)]`.
`check_permissions_declared` runs when the app is built and refuses a route under /api/ or
/console/ that declares none (`public()` marks the few that are open: the login page).

A caller is one of:
- a machine with `Authorization: Bearer simpul_<id>_<secret>` (simpul/access/tokens.py), or
- a person with the console's session cookie. A cookie is sent by the browser on its own, so a
  state-changing request with a cookie must also carry the session's CSRF token (header
  `X-CSRF-Token` or form field `csrf_token`), and the session must have passed its second factor
  when the user is required to have one.

X-Simpul-Actor is gone: the audit trail names the authenticated caller, never a header.
"""
from __future__ import annotations

import hmac
import time
from typing import Any

from collections.abc import Iterable

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.routing import APIRoute

from simpul.access.principal import Principal
from simpul.access.roles import Permission, ROLES, sees_patient_data
from simpul.access.sessions import Session, find_session, touch_session
from simpul.access.tokens import check_token
from simpul.api.deps import Store, get_store
from simpul.engine.runtime import Engine
from simpul.errors import NotAuthenticated, PermissionDenied

SESSION_COOKIE = "simpul_session"
SECURE_SESSION_COOKIE = "__Host-simpul_session"     # the name when the cookie is Secure
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A session's last_seen_at is written at most this often (each write waits for the disk).
TOUCH_INTERVAL = 60.0


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def session_cookie(request: Request) -> str | None:
    return request.cookies.get(SECURE_SESSION_COOKIE) or request.cookies.get(SESSION_COOKIE)


async def current_session(request: Request, store: Store) -> Session | None:
    """The console session of this request's cookie (pending second factor or not), or None."""
    cookie = session_cookie(request)
    if not cookie:
        return None
    engine: Engine = request.app.state.engine
    idle = engine.settings.auth.idle_timeout
    found: Session | None = await store.read(lambda c: find_session(c, cookie, idle))
    if found is not None and time.time() - found.last_seen_at > TOUCH_INTERVAL:
        await store.write(lambda c: touch_session(c, found.id))
    return found


def second_factor_pending(request: Request, session: Session) -> bool:
    """True while a user who must pass a second factor has not passed it in this session."""
    engine: Engine = request.app.state.engine
    if session.second_factor:
        return False
    return session.has_second_factor or (engine.settings.auth.require_mfa and sees_patient_data(session.role))


async def authenticate(request: Request, store: Store) -> Principal:
    """The caller, or NotAuthenticated (401). Cookie callers of unsafe methods must show the CSRF token."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    client = client_address(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthenticated("the Authorization header must be 'Bearer <token>'")
        holder = await store.read(lambda c: check_token(c, token.strip()))
        if holder is None:
            raise NotAuthenticated("the token is unknown, revoked or expired")
        principal = Principal(f"token:{holder.name}", holder.role, holder.permissions, client, "token")
    else:
        session = await current_session(request, store)
        if session is None:
            raise NotAuthenticated("log in to the console, or send 'Authorization: Bearer <token>'")
        if second_factor_pending(request, session):
            raise NotAuthenticated("this session still needs its second factor")
        if request.method not in SAFE_METHODS:
            await _check_csrf(request, session.csrf_token)
        principal = Principal(session.user_name, session.role, ROLES.get(session.role, frozenset()), client,
                              "session", user_id=session.user_id, session_id=session.id,
                              csrf_token=session.csrf_token)
    request.state.principal = principal
    return principal


async def _check_csrf(request: Request, expected: str) -> None:
    given = request.headers.get(CSRF_HEADER, "")
    if not given and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get("csrf_token")
        given = value if isinstance(value, str) else ""
    if not given or not hmac.compare_digest(given, expected):
        raise PermissionDenied("missing or wrong CSRF token (reload the page and try again)")


def requires(permission: Permission) -> Any:
    """The dependency that lets only callers holding `permission` in; it hands the route the caller."""

    async def allowed(request: Request, store: Store = Depends(get_store)) -> Principal:
        principal = await authenticate(request, store)
        if not principal.can(permission):
            scope = "token scope" if principal.kind == "token" else "role"
            raise PermissionDenied(f"the {scope} of {principal.name} ({principal.role}) does not allow "
                                   f"{permission.value}")
        return principal

    allowed.simpul_permission = permission       # type: ignore[attr-defined]
    return Depends(allowed)


def public() -> Any:
    """Marks a route under /api/ or /console/ as open to anyone (the login page, static files)."""

    def open_to_all() -> None:
        return None

    open_to_all.simpul_permission = None         # type: ignore[attr-defined]
    return Depends(open_to_all)


GUARDED_PREFIXES = ("/api/", "/console")


def check_permissions_declared(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Refuse to build an app with a route that declares no permission (nor `public()`): every
    route of `routers` (the /api/v1 resources, the console), and the app's own routes under
    /api/ and /console. (The routers are walked themselves: FastAPI keeps included routers as
    lazy objects in `app.routes`.)"""
    candidates = [route for router in routers for route in router.routes]
    candidates += [route for route in app.routes if getattr(route, "path", "").startswith(GUARDED_PREFIXES)]
    missing = []
    for route in candidates:
        if isinstance(route, APIRoute) and declared_permission(route) is None and not _is_public(route):
            missing.append(f"{sorted(route.methods or ())} {route.path}")
    if missing:
        raise RuntimeError("routes without a declared permission (add `requires(Permission.X)`): "
                           + ", ".join(missing))


def _is_public(route: APIRoute) -> bool:
    return any(getattr(d.call, "simpul_permission", "") is None for d in _walk(route.dependant))


def declared_permission(route: APIRoute) -> Permission | None:
    for dependant in _walk(route.dependant):
        found = getattr(dependant.call, "simpul_permission", None)
        if isinstance(found, Permission):
            return found
    return None


def _walk(dependant: Any) -> list[Any]:
    found = []
    for child in dependant.dependencies:
        found.append(child)
        found.extend(_walk(child))
    return found
