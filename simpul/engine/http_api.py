"""The engine's HTTP side: /healthz, /metrics and the read-only message API.

Errors are RFC 9457 problem documents (application/problem+json), never tracebacks.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST

from simpul.engine.config.reference import channel_json_schema
from simpul.engine.search import MessageQuery, search_messages

if TYPE_CHECKING:
    from simpul.engine.runtime import Engine


def problem(status: int, title: str, detail: str = "") -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def create_app(engine: "Engine") -> FastAPI:
    app = FastAPI(title="Simpul", version="0.1.0", docs_url="/api/docs", openapi_url="/api/openapi.json")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return problem(400, "Invalid request", f"{where}: {first.get('msg', '')}")

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return problem(500, "Internal error", type(exc).__name__)

    def openapi() -> dict[str, Any]:
        # The channel file's schema (every registered connector's config) joins the components.
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, routes=app.routes)
            channel = channel_json_schema("#/components/schemas/{model}")
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(channel.pop("$defs", {}))
            schemas["Channel"] = channel
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/api/channels/schema", response_class=JSONResponse, responses={200: {
        "description": "JSON Schema of a channel file (components/schemas/Channel)",
        "content": {"application/schema+json": {"schema": {"type": "object"}}}}})
    async def channel_schema() -> JSONResponse:
        """The channel YAML schema, generated from the connector registry (for editors and tools)."""
        return JSONResponse(channel_json_schema(), media_type="application/schema+json")

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        report = await engine.health()
        return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(await engine.metrics_text(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/messages")
    async def messages(patient_id: str | None = None, control_id: str | None = None,
                       message_type: str | None = None, status: str | None = None,
                       accession_number: str | None = None, visit_number: str | None = None,
                       since: float | None = None, until: float | None = None,
                       limit: int = Query(100, ge=1, le=1000)) -> dict[str, Any]:
        query = MessageQuery(patient_id=patient_id, control_id=control_id, message_type=message_type,
                             status=status, accession_number=accession_number, visit_number=visit_number,
                             since=since, until=until, limit=limit)
        rows = await engine.read(lambda connection: search_messages(connection, query))
        return {"count": len(rows), "messages": rows}

    from simpul.dead_letters.http_api import install as install_dead_letters  # dead letters, replay, destinations
    install_dead_letters(app, engine)

    # The docs site (mkdocs build output) for people who reach the engine but not the internet.
    site = engine.settings.docs_site_path() if engine is not None else None
    if site is not None:   # `simpul run` checked that it holds a built site
        app.mount("/docs-site", StaticFiles(directory=site, html=True, check_dir=False), name="docs-site")
    return app
