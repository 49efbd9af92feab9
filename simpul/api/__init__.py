"""The HTTP API: one FastAPI app per engine, versioned under /api/v1.

    health.py         /healthz, /metrics (not versioned: monitoring's fixed addresses)
    messages.py       /api/v1/messages
    dead_letters.py   /api/v1/dead-letters ...
    destinations.py   /api/v1/destinations ...
    audit_events.py   /api/v1/audit-events
    archives.py       /api/v1/archives ...
    channels.py       /api/v1/channels
    orders.py         /api/v1/orders (order timelines, overdue orders)
    billing.py        /api/v1/reconciliations, /reconciliation-items, /reconciliation-report, /billing/...
    national.py       /api/v1/bpjs/seps, /api/v1/eklaim/claims, /api/v1/satusehat/status
    access_admin.py   /api/v1/users, /api/v1/tokens, /api/v1/whoami
    console/          the web console (/console): server-rendered pages on the same permissions
    auth.py           who is calling and may they: tokens, sessions, CSRF, `requires(permission)`
    deps.py           the engine and the store as FastAPI dependencies
    problems.py       RFC 9457 problem responses, chosen from the error class

Every route under /api/ and /console declares the permission it needs (`requires(...)` from
auth.py); `create_app` refuses to build an app with one that does not.

The API sits above the engine and the operations (dead_letters): it imports them, they never
import it. `simpul run` (simpul/cli/run.py) hands `create_app` to the engine it starts.

The unversioned /api/... paths of earlier releases are the same routes mounted a second time
(left out of the OpenAPI document), so existing scripts keep working; new clients use /api/v1.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

import os

from simpul.access.bootstrap import ensure_admin
from simpul.api import (
    access_admin, archives, audit_events, billing, channels, dead_letters, destinations, health, messages, national,
    orders,
)
from simpul.api.auth import check_permissions_declared, public
from simpul.api.console import install_console, router as console_router
from simpul.api.problems import install_problem_handlers
from simpul.engine.config.reference import channel_json_schema
from simpul.engine.runtime import Engine

API_PREFIX = "/api/v1"
LEGACY_PREFIX = "/api"
RESOURCE_ROUTERS = (messages.router, dead_letters.router, destinations.router, audit_events.router,
                    archives.router, channels.router, orders.router, billing.router, national.router,
                    access_admin.router)


def create_app(engine: Engine | None) -> FastAPI:
    """The app serving `engine`: health, metrics, /api/v1, the legacy /api alias, /docs and the console.

    Without an engine the app still describes itself (the docs site renders its OpenAPI). With
    one, it refuses to be built while the store has no admin (access/bootstrap.py) — blocking:
    the engine builds it in a thread."""
    if engine is not None and engine.db is not None:
        ensure_admin(engine.db, os.environ)
    app = FastAPI(title="Simpul", version="1.0.0", docs_url="/docs", redoc_url=None,
                  openapi_url=f"{API_PREFIX}/openapi.json",
                  description="HL7v2/FHIR integration engine: messages, dead letters, delivery control, "
                              "audit trail, archives. Errors are RFC 9457 problem documents.")
    app.state.engine = engine
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(_versioned(API_PREFIX, in_schema=True))
    app.include_router(_versioned(LEGACY_PREFIX, in_schema=False))
    install_console(app)

    # Where the docs used to be.
    @app.get(f"{LEGACY_PREFIX}/docs", include_in_schema=False, dependencies=[public()])
    async def legacy_docs() -> RedirectResponse:
        return RedirectResponse("/docs", status_code=308)

    @app.get(f"{LEGACY_PREFIX}/openapi.json", include_in_schema=False, dependencies=[public()])
    async def legacy_openapi() -> RedirectResponse:
        return RedirectResponse(f"{API_PREFIX}/openapi.json", status_code=308)

    def openapi() -> dict[str, Any]:
        # The channel file's schema (every registered connector's config) joins the components.
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            channel = channel_json_schema("#/components/schemas/{model}")
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(channel.pop("$defs", {}))
            schemas["Channel"] = channel
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    # The docs site (mkdocs build output) for people who reach the engine but not the internet.
    site = engine.settings.docs_site_path() if engine is not None else None
    if site is not None:   # `simpul run` checked that it holds a built site
        app.mount("/docs-site", StaticFiles(directory=site, html=True, check_dir=False), name="docs-site")
    check_permissions_declared(app, [*RESOURCE_ROUTERS, console_router])
    return app


def _versioned(prefix: str, *, in_schema: bool) -> APIRouter:
    router = APIRouter(prefix=prefix, include_in_schema=in_schema)
    for resource in RESOURCE_ROUTERS:
        router.include_router(resource)
    return router
