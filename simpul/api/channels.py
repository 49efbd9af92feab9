"""/channels: what the engine runs now (after the last hot reload)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from simpul.access.roles import Permission
from simpul.api.auth import requires
from simpul.api.deps import EngineDep
from simpul.engine.config.reference import channel_json_schema
from simpul.engine.listeners import source_key

router = APIRouter(tags=["channels"])


@router.get("/channels", summary="Loaded channels: source, listening port, destinations",
            dependencies=[requires(Permission.DASHBOARD_READ)])
async def list_channels(engine: EngineDep) -> list[dict[str, Any]]:
    ports = engine.listener_ports()
    answer = []
    for name, runtime in sorted(engine.channels.items()):
        channel = runtime.channel
        source = source_key(channel)
        answer.append({
            "name": name, "description": channel.description, "source": source, "port": ports.get(source),
            "destinations": [{"label": d.label, "connector": d.connector_name, "order_by": d.order_by}
                             for d in channel.destinations],
        })
    return answer


@router.get("/channels/schema", response_class=JSONResponse, responses={200: {
    "description": "JSON Schema of a channel file (components/schemas/Channel)",
    "content": {"application/schema+json": {"schema": {"type": "object"}}}}},
            dependencies=[requires(Permission.DASHBOARD_READ)])
async def channel_schema() -> JSONResponse:
    """The channel YAML schema, generated from the connector registry (for editors and tools)."""
    return JSONResponse(channel_json_schema(), media_type="application/schema+json")
