"""/channels: what the engine runs now (after the last hot reload)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from simpul.api.deps import EngineDep
from simpul.engine.listeners import source_key

router = APIRouter(tags=["channels"])


@router.get("/channels", summary="Loaded channels: source, listening port, destinations")
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
