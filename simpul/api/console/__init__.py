"""The web console at /console: server-rendered pages (Jinja2, plain HTML forms, no build step)
on the same permissions, operations and audit trail as /api/v1.

    login.py     log in (password, throttling), second factor (TOTP), log out
    webauthn.py  security keys (WebAuthn): register, and use as the second factor
    pages.py     dashboard, message search and view, dead letters, destinations, channels, audit, users
    hl7view.py   a raw HL7v2 message by segment and field, with the field names
    render.py    the Jinja2 environment and the headers every page carries

Errors on console paths answer as an HTML page with the status the API would give (a viewer who
opens a message page gets 403, as from the API); an unauthenticated GET is sent to the login page.
"""
from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from simpul.api.auth import public
from simpul.api.console import login, pages, webauthn
from simpul.api.console.render import STATIC, page

router = APIRouter()
router.include_router(login.router)
router.include_router(webauthn.router)
router.include_router(pages.router)


@router.get("/console", include_in_schema=False, dependencies=[public()])
async def console_root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=308)


def error_page(request: Request, status: int, title: str, detail: str) -> Response:
    if status == 401 and request.method == "GET":
        return RedirectResponse("/console/login", status_code=303)
    return page(request, "error.html", status=status, status_code=status, title=title, detail=detail,
                who=getattr(request.state, "principal", None))


def install_console(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    app.state.html_error_page = error_page
