"""Health and metrics, where monitoring looks for them: /healthz and /metrics (not versioned)."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from simpul.api.deps import EngineDep

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="ok, or 503 when the store or the ingest process does not answer")
async def healthz(engine: EngineDep) -> JSONResponse:
    report = await engine.health()
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)


@router.get("/metrics", summary="Prometheus exposition of the engine and its ingest process")
async def metrics(engine: EngineDep) -> Response:
    return Response(await engine.metrics_text(), media_type=CONTENT_TYPE_LATEST)
